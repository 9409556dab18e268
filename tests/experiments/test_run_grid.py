"""Smoke test of experiments/run_grid.py on a tiny cell, the grid family file
(experiments/grid.py) against the committed results, and the committed held-out judge split.

The grid run uses ``--quick`` (400 rows per benchmark, 3000 training rows, <= 20 steps) and the
weight-free ``hashing:384`` featurizer, so it needs the real data but no encoder weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import _mixtures as M
from experiments import baselines as B
from experiments import grid
from experiments import run_grid as G
from routellm_jax.data.mixtures import MixtureSpec
from routellm_jax.eval.dev_suite import TASK_GROUPS
from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.training.config import arch_config, load_config

REPO = Path(__file__).resolve().parents[2]

CELL = """
import ml_collections
from experiments._mixtures import mixture
from routellm_jax.training.config import default_config

def get_config():
    c = default_config()
    c.arch = "mf"
    c.arch_config = ml_collections.ConfigDict(dict(dim=8, use_outcomes=True, featurizer="hashing:384"))
    c.steps = 5
    c.batch_size = 32
    c.log_every = 5
    c.checkpoint.async_save = False
    c.data.mixture = mixture("judge")
    # The grid's passes on the weight-free encoder the test's store serves.
    c.data.mixture.near_duplicate_encoder = "hashing:384"
    return c
"""
# A small declared mix with every pass (exact, near-duplicate on the weight-free encoder, lexical)
# and a source exempt from decontamination, for the trainer-versus-grid comparison.
SMALL_CELL = """
import ml_collections
from routellm_jax.training.config import default_config

def get_config():
    c = default_config()
    c.arch = "mf"
    c.arch_config = ml_collections.ConfigDict(dict(dim=8, use_outcomes=True, featurizer="hashing:384"))
    c.data.mixture = ml_collections.ConfigDict(dict(
        name="small",
        eval_sets=["gsm8k", "mt_bench"],
        heldout_split="experiments/judge_heldout_split.txt",
        near_duplicate_encoder="hashing:384",
        threshold=0.95,
        lexical_threshold=0.6,
        sources=[
            dict(name="arena_bench_v1"),
            dict(name="routerdc_train", filters=dict(source_prefixes=["routerdc/gsm8k-train"])),
            dict(name="mmlu_golden", decontaminate=False,
                 filters=dict(hash_fraction=dict(fraction=0.1, salt="test"))),
        ],
    ))
    return c
"""
RESULTS = json.loads((REPO / "experiments" / "results" / "results.json").read_text())


def test_committed_split_matches_data(data_dir: Path) -> None:
    prompts = G.judge_prompts(data_dir)
    split = G.compute_judge_split(prompts)
    text = G.render_split(split, {k: len(v) for k, v in prompts.items()})
    assert text == G.SPLIT_FILE.read_text(), "regenerate with run_grid.py --write-split"
    parsed = G.read_split()
    assert len(parsed["alpaca_eval"]) == round(0.3 * 805)
    assert len(parsed["arena_bench_v1"]) == round(0.3 * 300)


def test_split_rejects_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "split.txt"
    bad.write_text("# header\nalpaca_eval notanid\n")
    with pytest.raises(ValueError, match="split.txt:2"):
        G.read_split(bad)


def test_logreg_learns_a_direction() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 1] > 0).astype(np.float32)
    model = B.fit_logreg(x, y, steps=300)
    acc = ((model.predict(x) > 0.5) == (y > 0.5)).mean()
    assert acc > 0.95
    assert abs(model.w[1]) > 3 * abs(model.w[0])


def test_run_grid_smoke(data_dir: Path, tmp_path: Path) -> None:
    cell = tmp_path / "mf_tiny.py"
    cell.write_text(CELL)
    out = tmp_path / "results"
    rows = G.run(
        [str(cell)],
        out,
        workdir=tmp_path / "work",
        data_root=str(data_dir),
        cache=tmp_path / "emb.npz",
        encoder="hashing:384",
        quick=True,
        seeds=(0, 1),
    )
    names = [(r["router"], r["mix"]) for r in rows]
    assert ("mf", "judge") in names and ("prompt_length", "-") in names
    assert ("oracle", "-") in names and ("lr_pair", "judge") in names
    mf, mf1 = [r for r in rows if r["router"] == "mf"]
    assert mf["config"] == str(cell)  # a file outside the repository is recorded as given
    assert (mf1["config"], mf1["seed"]) == (f"{cell}@seed1", 1)
    assert mf["dev"]["apgr"] != mf1["dev"]["apgr"]  # another seed trains another router
    assert math.isfinite(mf["dev"]["mean_apgr"]) and set(mf["dev"]["apgr"]) == set(TASK_GROUPS)
    for key in ("mmlu", "gsm8k", "alpaca_heldout", "arena_heldout"):
        assert math.isfinite(mf["apgr"][key]), key
    saved = json.loads((out / "results.json").read_text())
    card = saved["meta"]["data_cards"]["judge"]
    mix_card = json.loads((tmp_path / "work" / "mixes" / "judge" / "data_card.json").read_text())
    declared = dict(M.mixture("judge").to_dict(), near_duplicate_encoder="hashing:384")
    assert MixtureSpec.from_dict(mix_card["spec"]) == MixtureSpec.from_dict(declared)
    assert mix_card["decontamination"]["near_duplicates_checked"]
    assert card["lexical_pass_by_eval_set"] is not None
    # Held-out judge prompts must have been removed from the judge training sources.
    alpaca = card["per_source"]["alpaca_eval"]["alpaca_heldout"]
    assert alpaca.get("exact", 0) > 0
    assert card["removed_rows"]
    # APGR and CPT tables: one row per seed; the dev-suite table: one row, the mean of the seeds.
    md = (out / "results.md").read_text()
    assert md.count("| mf | judge |") == 5 and "| mf | judge | 2 |" in md
    assert (out / "dev_suite.png").stat().st_size > 0
    assert (out / "mmlu.png").stat().st_size > 0 and (out / "gsm8k.png").stat().st_size > 0


def test_trainer_and_grid_build_the_same_rows(data_dir: Path, tmp_path: Path) -> None:
    """``routellm-jax train CELL`` (the trainer's data preparation) and the grid runner build a
    cell's declared mix into the same rows, in the same order, with every declared pass."""
    from routellm_jax.data.prepare import prepare_data
    from routellm_jax.models.featurizers import make_embedding_featurizer
    from routellm_jax.training.train import near_duplicate_embed_fn

    cell = tmp_path / "small.py"
    cell.write_text(SMALL_CELL)
    cfg = load_config(str(cell))
    cfg.data.data_dir = str(data_dir)
    spec = MixtureSpec.from_dict(cfg.data.mixture.to_dict())
    store = G.EmbeddingStore(tmp_path / "emb.npz", encoder="hashing:384")
    grid_data, grid_card = G.build_mix(spec, data_dir, store)
    featurizer = make_embedding_featurizer("hashing:384")
    prepared = prepare_data(cfg.data, embed_fn=near_duplicate_embed_fn(cfg.data, featurizer, None))
    for table in ("comparisons", "outcomes"):
        a, b = getattr(grid_data, table), getattr(prepared.data, table)
        assert len(a) == len(b)
        assert a.prompt.tolist() == b.prompt.tolist()
    removed = prepared.card["decontamination"]["removed_rows"]
    assert removed == grid_card["decontamination"]["removed_rows"]
    assert removed.get("near_duplicate", 0) > 0 and removed.get("lexical_near_duplicate", 0) > 0
    assert prepared.card["decontamination"]["lexical_pass"]["exempt_prompts"] > 0
    models = set(grid_data.comparisons.models()) | set(grid_data.outcomes.models())
    assert prepared.models == tuple(sorted(models))


def test_store_serves_the_encoder_part_of_a_shape_featurizer(tmp_path: Path) -> None:
    """'<encoder>+shape' cells read the encoder part from the grid's store (no re-embedding)."""
    from routellm_jax.models import irt
    from routellm_jax.models.featurizers import SHAPE_DIM, prompt_shape

    store = G.EmbeddingStore(tmp_path / "emb.npz", encoder="hashing:8")
    store.table["cached prompt"] = np.full(8, 7.0, np.float32)  # not what hashing would give
    feat = store.featurizer("hashing:8+shape")
    out = feat.embed(["cached prompt"])
    np.testing.assert_array_equal(out[0, :8], np.full(8, 7.0, np.float32))
    np.testing.assert_array_equal(out[0, 8:], prompt_shape("cached prompt"))
    assert feat.dim == irt.IRTConfig(featurizer="hashing:8+shape", text_dim=8 + SHAPE_DIM).text_dim
    # A prompt the store lacks is embedded by the real encoder; other specs are not the store's.
    fresh = store.featurizer("hashing:8").embed(["new prompt"])
    assert fresh.shape == (1, 8) and not np.array_equal(fresh[0], np.full(8, 7.0))
    assert store.featurizer("shape") is None and store.featurizer("hashing:16") is None


def test_a_cell_on_another_table_encoder_reads_that_encoders_store(tmp_path, monkeypatch) -> None:
    """A cell on MPNet, in a run whose store (and near-duplicate pass) is MiniLM's, gets MPNet's
    own store: its cached vectors, at MPNet's width, never MiniLM's."""
    from routellm_jax.models.embedding_store import store_path, write_store

    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(G, "_ENCODER_STORES", {})
    path = store_path("all-mpnet-base-v2")
    path.parent.mkdir(parents=True)
    write_store(path, ["cached prompt"], np.full((1, 768), 0.5, np.float32))
    minilm = G.EmbeddingStore(tmp_path / "minilm.npz", encoder="all-MiniLM-L6-v2")
    assert minilm.featurizer("all-mpnet-base-v2+shape") is None  # not the run's store
    store = G.encoder_store("all-mpnet-base-v2+shape")
    assert store is not None and store is G.encoder_store("all-mpnet-base-v2")
    out = store.featurizer("all-mpnet-base-v2+shape").embed(["cached prompt"])
    np.testing.assert_array_equal(out[0, :768], np.full(768, 0.5, np.float32))
    assert G.encoder_store("hashing:8") is None and G.encoder_store("shape") is None


class _RunsOnUnpickle:
    """Unpickling this makes a folder: a stand-in for the code a pickled array can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.path),))


def test_seed_embeddings_never_unpickle(tmp_path: Path) -> None:
    ran = tmp_path / "code-ran"
    evil = tmp_path / "evil.npz"
    np.savez(evil, prompts=np.array([_RunsOnUnpickle(ran)], dtype=object), E=np.zeros((1, 4)))
    store = G.EmbeddingStore(tmp_path / "emb.npz", encoder="hashing:4")
    with pytest.raises(ValueError, match=r"evil.npz: holds a pickled object array"):
        store.seed_from(evil)
    assert not ran.exists() and store.table == {}
    good = tmp_path / "good.npz"
    np.savez(good, prompts=np.array(["a", "b"], dtype=str), embeddings=np.ones((2, 4)))
    assert store.seed_from(good) == 2
    # No loader in the repository may unpickle.
    offenders = [
        str(f.relative_to(REPO))
        for top in ("routellm_jax", "experiments", "tools", "tests")
        for f in (REPO / top).rglob("*.py")
        if "allow_pickle=" + "True" in f.read_text(encoding="utf-8")
    ]
    assert offenders == []


@pytest.mark.parametrize("cell", grid.sweep())
def test_every_grid_cell_resolves(cell: str) -> None:
    """Each cell loads through the trainer's ``FILE:ARG`` form, names a declared mix and gives a
    config its architecture accepts (a typo in a new cell would otherwise surface only after the
    grid's embedding pass)."""
    cfg = load_config(f"experiments/grid.py:{cell}")
    assert cfg.name == cell
    MixtureSpec.from_dict(cfg.data.mixture.to_dict())
    acfg = arch_config(cfg)
    if grid.CELLS[cell].featurizer:  # text_dim is derived, never typed
        assert acfg.text_dim == featurizer_dim(grid.CELLS[cell].featurizer)


def _cell_of(config: str) -> str:
    """A results row's cell: ``experiments/grid.py:<cell>``, or a cell file of the run that
    produced the committed results (``experiments/grid/<cell>.py``, before the family file)."""
    if config.startswith("experiments/grid.py:"):
        return config.split(":", 1)[1]
    assert config.startswith("experiments/grid/") and config.endswith(".py"), config
    return Path(config).stem


def test_sweep_reproduces_the_committed_rows_cell_for_cell() -> None:
    """Every trained row of results.json is a cell of the sweep, in the sweep's order, with the
    label, mix and step count the row records; and every cell of the sweep has its row."""
    rows = [r for r in RESULTS["rows"] if r["config"]]
    assert [_cell_of(r["config"]) for r in rows] == grid.sweep()
    for r in rows:
        cfg = grid.get_config(_cell_of(r["config"]))
        assert (cfg.grid.label, cfg.data.mixture.name) == (r["router"], r["mix"]), r["config"]
        assert int(cfg.steps) == r["info"]["steps"], r["config"]
    assert not RESULTS["meta"]["failed_cells"]


def test_unknown_cell_names_the_known_ones() -> None:
    from routellm_jax.training.config import ConfigError

    with pytest.raises(ConfigError, match="irt_shape_both_mmlu_bw003"):
        load_config("experiments/grid.py:irt_shape_both_mmlu_bw3")
    with pytest.raises(ConfigError, match="needs a cell"):
        load_config("experiments/grid.py")
    assert [c for c, _ in G.load_cells(["experiments/grid.py"])] == [
        f"experiments/grid.py:{c}" for c in grid.sweep()
    ]


def test_full_mix_keeps_every_training_row() -> None:
    """both_mmlu_full: the same sources as both_mmlu, without the hashed cuts, plus ARC-Easy."""
    cut = {s["name"]: s for s in M.MIXES["both_mmlu"]["sources"]}
    full = {s["name"]: s for s in M.MIXES["both_mmlu_full"]["sources"]}
    assert set(cut) == set(full)
    for name in ("routerbench_train", "llmrouter_train"):
        assert "hash_fraction" in cut[name]["filters"] and "filters" not in full[name]
    prefixes = full["routerdc_train"]["filters"]["source_prefixes"]
    assert "routerdc/arc_easy_train" in prefixes
    assert set(cut["routerdc_train"]["filters"]["source_prefixes"]) < set(prefixes)


def test_judge_heldout_benchmarks_are_the_split(data_dir: Path) -> None:
    """The package builds the grid's held-out judge columns (the zoo exporter uses the same)."""
    from routellm_jax.data.judge_split import prompt_id
    from routellm_jax.eval.judge_heldout import judge_heldout_benchmarks

    split = G.read_split()
    benches = judge_heldout_benchmarks(data_dir, split)
    assert (len(benches["alpaca_heldout"]), len(benches["arena_heldout"])) == (242, 89)
    assert {prompt_id(p) for p in benches["alpaca_heldout"].prompts} == split["alpaca_eval"]
    assert {prompt_id(p) for p in benches["arena_heldout"].prompts} <= split["arena_bench_v1"]


def test_routerbench_transfer_columns_route_questions_of_the_same_slice(data_dir: Path) -> None:
    """The slice is the files' own text hashed; each prompt a router sees is that prompt's
    question, without its file's few-shot demonstrations (one block for every ARC-Challenge and
    Winogrande prompt, longer than MiniLM's window)."""
    from routellm_jax.data.hashing import hash_fraction

    full = G._routerbench_test(data_dir)
    in_slice = {p for p in full.prompt if hash_fraction(p, "rb_test") < G.RB_TEST_FRACTION}
    benches = G.build_benchmarks(data_dir, G.read_split())
    bench = benches[f"routerbench_test:{G.STRONG}/{G.WEAK}"]
    prompts = [str(p) for p in bench.prompts]
    # Distinct questions, one per prompt of the slice (one prompt lacks a score of the pair).
    assert len(prompts) == len(set(prompts)) and len(in_slice) - 2 <= len(prompts) <= len(in_slice)
    assert all(any(f.endswith(q) for f in in_slice) for q in prompts)
    # The few-shot files' prompts ran to 1,200-2,200 characters; their questions are a few hundred.
    assert max(map(len, prompts)) < 1200
    assert sum(p not in in_slice for p in prompts) > 80
