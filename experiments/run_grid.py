"""Run a grid of (router x data mix) cells and write ``experiments/results/``.

An experiment runner rather than package code, and long because it writes every table of
``experiments/results/``; each step below is its own function.

The cells are configs: ``experiments/grid.py:<cell>`` is ``get_config(<cell>)`` of the family file
``experiments/grid.py``, and ``experiments/grid.py`` alone is every cell of its ``sweep()``. A
cell's config is the trainer's, with ``data.mixture`` its training mix (a declared spec,
``experiments/_mixtures.py``) and ``grid.label`` its row label. For each cell this script

1. builds the cell's training mix with :func:`routellm_jax.data.mixtures.build_mixture`, as the
   trainer's data preparation does, with the decontamination passes the mix declares (exact +
   MiniLM cosine >= 0.95, then a lexical pass) against every evaluation set: MMLU, GSM8K,
   MT-Bench questions, the held-out judge prompts (below) and the RouterBench test prompts; the data card, with the declared spec and removed counts, is written to
   ``<workdir>/mixes/<mix>/data_card.json`` and summarised in ``results.json``;
2. trains the router with :func:`routellm_jax.training.train.train` (the framework trainer), with
   ``arch_config.models`` = the models of the mix and the MiniLM featurizer served from the
   embedding cache (:meth:`EmbeddingStore.featurizer`, given to the trainer);
3. scores it on every benchmark of :func:`build_benchmarks`: MMLU without the 1,500-question golden
   split (golden-split rule, for every router, so all rows are comparable), GSM8K, held-out
   AlpacaEval and held-out arena-bench-v1 for the paper's pair (gpt-4-1106-preview vs
   Mixtral-8x7B), and transfer pairs never trained as a pair;
4. adds the baselines (random, oracle, prompt length, logistic regressions on MiniLM embeddings:
   :mod:`experiments.baselines`) and writes ``results.md``, ``results.json`` and one
   cost-quality PNG per benchmark (random and oracle on the same plot).

Held-out judge split: of the 805 AlpacaEval prompts and the 300 arena-bench-v1 prompts, a seeded 30%
of each (distinct prompt texts ordered by ``sha256(SPLIT_SEED + "\\n" + set + "\\n" + prompt)``, the
first ``round(0.3 * n)`` taken) is evaluation-only; the ids (sha256 of the prompt text) are
committed in ``experiments/judge_heldout_split.txt`` (``--write-split`` regenerates it).

Embeddings: every prompt is embedded once with all-MiniLM-L6-v2 (mean pooling, L2-normalised,
max length 256) and kept in the machine's embedding store
(:mod:`routellm_jax.models.embedding_store`, shared with the trainer and the exporter).
Missing prompts are embedded with :func:`routellm_jax.models.encoders.embedder.load_embedder`;
``--seed-embeddings X.npz`` (arrays ``prompts`` + ``E`` or ``embeddings``, the same encoder) fills the
store first, to save CPU time.

Usage:
    python -m experiments.run_grid experiments/grid.py --out experiments/results
    python -m experiments.run_grid experiments/grid.py:irt_both experiments/grid.py:mf_both
    python -m experiments.run_grid --write-split
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments import baselines as B
from routellm_jax.data.hashing import hash_fraction
from routellm_jax.data.hashing import prompt_id as _sha  # noqa: F401  (split ids, tests)
from routellm_jax.data.judge_split import heldout_prompts, judge_prompts
from routellm_jax.data.judge_split import read_split as _read_split
from routellm_jax.data.mixtures import MixtureSpec
from routellm_jax.data.records import (
    OutcomeTable,
    TrainingData,
)
from routellm_jax.data.sources.routellm_evals import STRONG_MODEL, WEAK_MODEL
from routellm_jax.eval.baselines import oracle_win_rates
from routellm_jax.eval.benchmarks import Benchmark
from routellm_jax.eval.dev_suite import (
    GROUP_SOURCES,
    DevScores,
    build_dev_suite,
    dev_prompts,
    plot_strong_share,
    route_suite,
    score_dev_suite,
)
from routellm_jax.eval.judge_heldout import (
    heldout_arena,
    judge_heldout_benchmarks,
)
from routellm_jax.models.embedding_store import read_store, store_path, write_store
from routellm_jax.training.evaluators import win_rates_in_chunks

HERE = Path(__file__).resolve().parent
log = logging.getLogger("run_grid")

SPLIT_FILE = HERE / "judge_heldout_split.txt"
SPLIT_SEED = "routellm-jax/judge-heldout/v1"
HELDOUT_FRACTION = 0.3
STRONG, WEAK = STRONG_MODEL, WEAK_MODEL
ROUTERBENCH = Path("shuhao02__RouterDC/datasets/routerbench_zs")
# CPU budget (2 shared cores): MiniLM embeddings cost ~1 ms per token here, so the grid embeds
# seeded, hash-selected parts of the largest sets (a prompt's membership depends only on its text,
# so it is stable under any filtering). Each fraction is recorded in results.json.
MMLU_EVAL_FRACTION = 1.0  # of the 12,537 non-golden MMLU questions (all: embeddings cached)
RB_TEST_FRACTION = 0.15  # of the RouterBench test prompts (transfer benchmark)
# The paper's best per benchmark (Tables 1-3, APGR): the numbers our routers are measured against.
PAPER_BEST = {"mmlu": 0.603, "gsm8k": 0.622, "mt_bench": 0.802}
# (benchmark key, strong, weak): the headline pair first, then transfer pairs (never a training pair
# of their own: the routers see these models only through the mix's other data).
TRANSFER = (
    ("arena_heldout", "claude-2.1", "mistral-7b-instruct-v0.1"),
    ("routerbench_test", "gpt-3.5-turbo-1106", "llama-2-70b-chat"),
    ("routerbench_test", STRONG, WEAK),
)


# ------------------------------------------------------------------------ held-out judge split
# The split file's reader lives in the package (routellm_jax.data.judge_split), shared with
# MixtureSpec.heldout_split, so the experiment configs exclude exactly the prompts scored here.


def compute_judge_split(
    prompts: Mapping[str, Sequence[str]],
    fraction: float = HELDOUT_FRACTION,
    seed: str = SPLIT_SEED,
) -> dict[str, list[str]]:
    """Held-out ids (sha256 of prompt text, sorted) per set, by the module's seeded rule.

    Example:
        >>> len(compute_judge_split({"s": ["a", "b", "c", "d"]}, 0.5)["s"])
        2
    """
    out = {}
    for name, ps in prompts.items():
        distinct = list(dict.fromkeys(ps))
        k = int(round(fraction * len(distinct)))
        chosen = sorted(distinct, key=lambda p: _sha(f"{seed}\n{name}\n{p}"))[:k]
        out[name] = sorted(_sha(p) for p in chosen)
    return out


def render_split(split: Mapping[str, Sequence[str]], sizes: Mapping[str, int]) -> str:
    """The text of ``judge_heldout_split.txt``: header lines, then ``<set> <sha256>`` lines.

    Example:
        >>> render_split({"s": ["ab"]}, {"s": 3}).splitlines()[-1]
        's ab'
    """
    lines = [
        "# routellm-jax held-out judge prompts (experiments/run_grid.py --write-split; do not edit)",
        "# Per set, distinct prompt texts ordered by sha256(seed + '\\n' + set + '\\n' + prompt),",
        f"# seed = {SPLIT_SEED!r}; the first round({HELDOUT_FRACTION} * n) are held out.",
        "# Sizes: " + ", ".join(f"{k} {len(split[k])} of {sizes[k]}" for k in split),
        "# Columns: set, sha256 hex of the UTF-8 prompt text.",
    ]
    for name, ids in split.items():
        lines += [f"{name} {i}" for i in ids]
    return "\n".join(lines) + "\n"


def read_split(path: Path = SPLIT_FILE) -> dict[str, frozenset[str]]:
    """Parse ``judge_heldout_split.txt`` -> ``{set: frozenset(ids)}``; errors name the line.

    Example:
        >>> read_split()["alpaca_eval"].__len__()  # doctest: +SKIP
        242
    """
    return _read_split(path)


# ------------------------------------------------------------------------ benchmarks
def _routerbench_test(root: Path) -> OutcomeTable:
    from routellm_jax.data.sources.correctness import read_routerbench_csv

    files = sorted((root / ROUTERBENCH).glob("*_test.csv"))
    return OutcomeTable.concat([read_routerbench_csv(f, skip_bad_rows=True) for f in files])


def build_benchmarks(
    root: Path, split: Mapping[str, frozenset[str]], *, quick: bool = False
) -> dict[str, Benchmark]:
    """Every benchmark of the grid, keyed ``name`` or ``name:strong/weak`` for transfer pairs.

    ``quick`` keeps 400 seeded rows per benchmark (smoke tests).

    Example:
        >>> sorted(build_benchmarks(data_dir(), read_split()))[:2]  # doctest: +SKIP
        ['alpaca_heldout', 'arena_heldout']
    """
    from routellm_jax.data.sources.correctness import strip_shared_prefixes
    from routellm_jax.eval.benchmarks import benchmark_from_outcomes, load_benchmark

    arena = heldout_arena(root, split)
    rb_test = _routerbench_test(root)
    mmlu = load_benchmark("mmlu", data_dir=root, exclude_golden=True)
    # The slice is of the files' own text; the routers then see each question without its file's
    # few-shot demonstrations (ARC-Challenge and Winogrande repeat one block, longer than
    # MiniLM's window, before every question: with it, a router could only choose per file).
    in_slice = np.array([hash_fraction(p, "rb_test") < RB_TEST_FRACTION for p in rb_test.prompt])
    rb_test = strip_shared_prefixes(rb_test).take(in_slice)
    benches = {
        "mmlu": (
            mmlu
            if MMLU_EVAL_FRACTION >= 1.0
            else _hash_select(mmlu, MMLU_EVAL_FRACTION, "mmlu_eval")
        ),
        "gsm8k": load_benchmark("gsm8k", data_dir=root),
        **judge_heldout_benchmarks(root, split),
    }
    tables = {"arena_heldout": arena, "routerbench_test": rb_test}
    for key, s, w in TRANSFER:
        name = f"{key}:{s}/{w}"
        benches[name] = benchmark_from_outcomes(
            tables[key], s, w, name=name.replace("/", "_vs_"), duplicates="mean"
        )
    if quick:
        benches = {k: _subsample(b, 400) for k, b in benches.items()}
    return benches


def _hash_select(bench: Benchmark, fraction: float, salt: str) -> Benchmark:
    keep = np.array([hash_fraction(p, salt) < fraction for p in bench.prompts], dtype=bool)
    return bench.take(keep, hash_subsample_fraction=fraction, hash_subsample_salt=salt)


def _subsample(bench: Benchmark, n: int) -> Benchmark:
    if len(bench) <= n:
        return bench
    idx = np.sort(np.random.default_rng(0).choice(len(bench), n, replace=False))
    return bench.take(idx, subsample=n)


# ------------------------------------------------------------------------ embeddings
class EmbeddingStore:
    """MiniLM embeddings of prompts, computed once and kept in the machine's embedding store
    (:mod:`routellm_jax.models.embedding_store`: the file the trainer and the exporter use).

    Example:
        >>> store = EmbeddingStore(Path("/tmp/x.npz"))  # doctest: +SKIP
        >>> store.ensure(["hello"]); store.embed(["hello"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, path: Path | None = None, encoder: str = "all-MiniLM-L6-v2") -> None:
        self.path = Path(path) if path is not None else store_path(encoder)
        self.encoder = encoder
        self.table: dict[str, np.ndarray] = {}
        if self.path.exists():
            prompts, vectors = read_store(self.path)
            self.table.update(zip(prompts, vectors))

    def seed_from(self, npz: Path) -> int:
        """Add embeddings from another ``.npz`` (``prompts`` + ``E``/``embeddings``), or from every
        ``.npz`` in a folder; count added."""
        npz = Path(npz)
        if npz.is_dir():
            return sum(self.seed_from(f) for f in sorted(npz.glob("*.npz")) if ".tmp" not in f.name)
        # Never unpickle: a pickled array in a file runs code on load. Prompts must be stored as
        # a string array (np.array(prompts, dtype=str)), as save() does.
        with np.load(npz, allow_pickle=False) as z:
            key = "embeddings" if "embeddings" in z.files else "E"
            try:
                prompts, emb = z["prompts"].tolist(), np.asarray(z[key], np.float32)
            except ValueError as err:  # numpy: "Object arrays cannot be loaded when ..."
                raise ValueError(
                    f"{npz}: holds a pickled object array ({err}); save the prompts as a string "
                    "array (np.array(prompts, dtype=str)) to seed from it"
                ) from None
        added = 0
        for p, e in zip(prompts, emb):
            if str(p) not in self.table:
                self.table[str(p)] = e
                added += 1
        return added

    def ensure(self, prompts: Sequence[str], batch_size: int = 64) -> int:
        """Embed the prompts not cached yet (with the JAX embedder) and save; count embedded."""
        missing = [p for p in dict.fromkeys(map(str, prompts)) if p not in self.table]
        if missing:
            log.info("embedding %d new prompts with %s", len(missing), self.encoder)
            if self.encoder.startswith("hashing:"):  # weight-free stand-in for smoke tests
                from routellm_jax.models.featurizers import make_embedding_featurizer

                emb = make_embedding_featurizer(self.encoder).embed(missing)
            else:
                from routellm_jax.models.encoders.embedder import load_embedder

                emb = load_embedder(name=self.encoder).embed(missing, batch_size=batch_size)
            for p, e in zip(missing, np.asarray(emb, np.float32)):
                self.table[p] = e
        return len(missing)

    def save(self) -> Path:
        """Write the store atomically, keeping prompts another process added meanwhile."""
        if self.path.exists():
            prompts, vectors = read_store(self.path)
            for p, v in zip(prompts, vectors):
                self.table.setdefault(p, v)
        prompts = list(self.table)
        write_store(self.path, prompts, np.stack([self.table[p] for p in prompts]))
        return self.path

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """``[n, 384]`` float32 for cached prompts (a missing one is a KeyError naming it)."""
        try:
            return np.stack([self.table[str(p)] for p in prompts]).astype(np.float32)
        except KeyError as err:
            raise KeyError(f"{self.path}: prompt not embedded: {str(err)[:80]}") from None

    def featurizer(self, spec: str) -> Any | None:
        """A featurizer for the spec ``spec`` that starts with every cached embedding (a prompt
        not in the store is embedded by the real encoder), or None when the spec does not use
        this store's encoder (then the architecture's own featurizer is right).

        For the trainer (``train(..., featurizer=...)``) and the evaluation of a cell: the
        checkpoint's config keeps the plain encoder spec (``all-MiniLM-L6-v2``, or
        ``all-MiniLM-L6-v2+shape``, whose encoder part is served the same way), so an exported
        router embeds new prompts itself; the store only saves recomputing training and benchmark
        prompts.
        """
        from routellm_jax.models.featurizers import (
            HOST_PARTS,
            ConcatFeaturizer,
            base_spec,
            host_part_suffix,
        )

        if spec == self.encoder:
            feat = _LazyEncoderFeaturizer(spec)
            feat.cache.update(self.table)
            return feat
        if base_spec(spec) == self.encoder:  # "<encoder>+shape", "<encoder>+length"
            part = HOST_PARTS[host_part_suffix(spec)][0]()
            return ConcatFeaturizer([self.featurizer(self.encoder), part])
        return None


_ENCODER_STORES: dict[str, EmbeddingStore] = {}


def encoder_store(spec: str) -> EmbeddingStore | None:
    """The embedding store of the encoder a featurizer spec starts with, when it is one of the
    encoder table's (a cell on MPNet while the mixes' near-duplicate pass stays MiniLM's), or
    None. One store per encoder per run; a prompt it lacks is embedded by that encoder."""
    from routellm_jax.models.encoders.fetch import ENCODERS
    from routellm_jax.models.featurizers import base_spec

    encoder = base_spec(spec)
    if encoder not in ENCODERS:
        return None
    if encoder not in _ENCODER_STORES:
        _ENCODER_STORES[encoder] = EmbeddingStore(None, encoder)
    return _ENCODER_STORES[encoder]


class _LazyEncoderFeaturizer:
    """``CachedFeaturizer`` behaviour with the encoder loaded only if an uncached prompt comes."""

    def __init__(self, spec: str) -> None:
        from routellm_jax.models.featurizers import featurizer_dim

        self.spec = spec
        self.dim = featurizer_dim(spec) or 384
        self.cache: dict[str, np.ndarray] = {}
        self._real: Any = None

    def embed(self, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        prompts = [str(p) for p in prompts]
        new = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if new:
            if self._real is None:
                from routellm_jax.models.featurizers import make_embedding_featurizer

                self._real = make_embedding_featurizer(self.spec)
            for p, v in zip(new, self._real.embed(new, batch_size)):
                self.cache[p] = v
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.cache[p] for p in prompts]).astype(np.float32)

    def clear_cache(self) -> None:
        self.cache.clear()


# ------------------------------------------------------------------------ training mixes
def eval_prompt_sets(root: Path, split: Mapping[str, frozenset[str]]) -> dict[str, list[str]]:
    """Every evaluation prompt set a training mix is decontaminated against.

    Example:
        >>> sorted(eval_prompt_sets(data_dir(), read_split()))  # doctest: +SKIP
        ['alpaca_heldout', 'arena_heldout', 'gsm8k', 'mmlu', 'mt_bench']
    """
    from routellm_jax.data.decontaminate import standard_eval_sets

    sets = {k: list(v) for k, v in standard_eval_sets(root).items()}
    held = heldout_prompts(root, split)
    sets["alpaca_heldout"] = held["alpaca_eval"]
    sets["arena_heldout"] = held["arena_bench_v1"]
    # The RouterBench test slices are a transfer benchmark: keep them out of training too (the
    # grid's mixes declare it among their eval_sets, so the trainer's path removes them as well).
    sets.update(standard_eval_sets(root, names=("routerbench_test",)))
    return sets


def build_mix(
    spec: MixtureSpec, root: Path, store: EmbeddingStore
) -> tuple[TrainingData, dict[str, Any]]:
    """Build a declared mix with every decontamination pass it declares; ``(data, data card)``.

    The same call as the trainer's data preparation (``routellm_jax.data.prepare``): the grid's
    mixes declare the MiniLM near-duplicate pass (``near_duplicate_encoder``, cosine >=
    ``threshold``) and the lexical pass (``lexical_threshold``), so ``routellm-jax train`` on a
    cell builds the same rows. Every prompt the MiniLM pass compares, training and evaluation, is
    embedded (and kept in the store).

    Example:
        >>> data, card = build_mix(spec, root, store)  # doctest: +SKIP
    """
    from routellm_jax.data.mixtures import build_mixture

    def embed(prompts: Sequence[str]) -> np.ndarray:
        if store.ensure(prompts):
            store.save()
        return store.embed(prompts)

    return build_mixture(
        spec, data_root=root, embed_fn=embed if spec.near_duplicate_encoder else None
    )


# ------------------------------------------------------------------------ cells
def load_cells(specs: Sequence[str]) -> list[tuple[str, Any]]:
    """``(cell id, config)`` of each cell spec: ``FILE.py:CELL`` is ``get_config(CELL)``, a family
    file alone (one with ``sweep()``) is all of its cells, any other file its ``get_config()``.
    The id (``experiments/grid.py:irt_both``) is what ``results.json`` rows record as ``config``.

    Example:
        >>> [i for i, _ in load_cells(["experiments/grid.py"])][:1]
        ['experiments/grid.py:irt_shape_both_mmlu']
    """
    from routellm_jax.training.config import expand_sweep, load_config, split_config_arg

    out = []
    for spec in specs:
        for one in expand_sweep(str(spec)):
            base, arg = split_config_arg(one)
            full = Path(base).resolve()
            # Repository files as the results record them; others (tests' temporary files) as given.
            where = str(full.relative_to(HERE.parent)) if full.is_relative_to(HERE.parent) else base
            cfg = load_config(one)
            cell_id = where if arg is None else f"{where}:{arg}"
            if not cfg.data.mixture or not len(cfg.data.mixture):
                raise ValueError(f"{cell_id}: the config sets no data.mixture (a declared mix)")
            out.append((cell_id, cfg))
    return out


def cell_name(cell_id: str) -> str:
    """The cell's name (its argument, or its file's stem): its workdir under ``cells/``.

    Example:
        >>> cell_name("experiments/grid.py:irt_both"), cell_name("/tmp/mf_tiny.py")
        ('irt_both', 'mf_tiny')
    """
    from routellm_jax.training.config import split_config_arg

    base, arg = split_config_arg(cell_id)
    return arg if arg is not None else Path(base).stem


def train_cell(
    cfg: Any, data: TrainingData, store: EmbeddingStore, workdir: Path
) -> tuple[Callable[[Sequence[str], str, str], np.ndarray | None], dict[str, Any]]:
    """Train a cell with the framework; return ``(win_rate_fn(prompts, strong, weak), info)``.

    ``win_rate_fn`` returns None for a model the router does not know.

    Example:
        >>> fn, info = train_cell(cfg, data, store, Path("/tmp/cell"))  # doctest: +SKIP
    """
    import jax

    from routellm_jax.models.registry import get_architecture
    from routellm_jax.training.config import arch_config
    from routellm_jax.training.train import train

    cfg = cfg.copy_and_resolve_references()
    models = sorted(set(data.comparisons.models()) | set(data.outcomes.models()))
    cfg.arch_config.models = tuple(models)
    if workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    t0 = time.time()
    arch = get_architecture(cfg.arch)
    acfg = arch_config(cfg)
    spec = getattr(acfg, "featurizer", None)  # the embedding heads name their featurizer
    feat = store.featurizer(spec) if isinstance(spec, str) else None
    if feat is None and isinstance(spec, str):  # another encoder's vectors: its own store
        own = encoder_store(spec)
        feat = own.featurizer(spec) if own is not None else None
    result = train(cfg, workdir, data=data, progress=False, featurizer=feat)
    seconds = time.time() - t0
    if feat is None:
        feat = arch.make_featurizer(acfg)
    params = jax.device_get(result.params)

    def win_rates(prompts: Sequence[str], strong: str, weak: str) -> np.ndarray | None:
        if strong not in models or weak not in models:
            return None
        inputs = arch.prompt_inputs(list(prompts), feat, acfg)
        return win_rates_in_chunks(
            arch, acfg, params, inputs, models.index(strong), models.index(weak)
        )

    info = {
        "train_seconds": round(seconds, 1),
        "steps": int(result.step),
        "models": len(models),
        "final_metrics": {k: float(v) for k, v in result.metrics.items()},
    }
    return win_rates, info


def baseline_fns(
    mix: str, data: TrainingData, store: EmbeddingStore
) -> dict[str, tuple[Callable[[Sequence[str], str, str], np.ndarray | None], dict]]:
    """The trained baselines of a mix: ``lr_pair`` and ``lr_difficulty`` (see baselines.py).

    Example:
        >>> sorted(baseline_fns("both", data, store))  # doctest: +SKIP
        ['lr_difficulty/both', 'lr_pair/both']
    """
    out = {}
    prompts, labels = B.pair_labels(data, STRONG, WEAK)
    if prompts:
        model, n = B.fit_text_logreg(prompts, labels, store.embed)

        def pair_fn(ps, s, w, model=model):
            return model.predict(store.embed(ps)) if (s, w) == (STRONG, WEAK) else None

        out[f"lr_pair/{mix}"] = (pair_fn, {"train_prompts": n})
    prompts, labels = B.difficulty_labels(data)
    if prompts:
        model, n = B.fit_text_logreg(prompts, labels, store.embed)
        out[f"lr_difficulty/{mix}"] = (
            lambda ps, s, w, model=model: model.predict(store.embed(ps)),
            {"train_prompts": n},
        )
    return out


# ------------------------------------------------------------------------ results
def _score(bench: Benchmark, fn, strong: str, weak: str, name: str):
    from routellm_jax.eval.evaluate import evaluate_win_rates

    wr = fn(list(bench.prompts), strong, weak)
    if wr is None:
        return None
    return evaluate_win_rates(bench, wr, name=name)


def _cpt50(m: Any) -> float | None:
    v = m.cpt.get(0.5)
    return None if v is None or not np.isfinite(v) else float(v)


def _row_key(r: dict) -> tuple[str, str, str]:
    return (r["router"], r["mix"], str(r.get("config", "")).split("@seed")[0])


def seed_means(rows: Sequence[dict]) -> list[dict]:
    """One row per (router, mix, cell) with the mean over its seeds of every dev-suite and benchmark
    number, the seeds in ``seeds`` and the standard deviations of the dev aggregate, the inversion
    margin and each benchmark's APGR in ``std``.

    Example:
        >>> r = {"router": "r", "mix": "m", "config": "c", "apgr": {"b": 0.5}}
        >>> seed_means([r, {**r, "config": "c@seed1", "seed": 1, "apgr": {"b": 0.7}}])[0]["apgr"]
        {'b': 0.6}
    """
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault(_row_key(r), []).append(r)
    out = []
    for (router, mix, config), rs in groups.items():
        keys = [k for k in rs[0]["apgr"] if all(x["apgr"].get(k) is not None for x in rs)]
        row: dict[str, Any] = {
            "router": router,
            "mix": mix,
            "config": config,
            "seeds": [x.get("seed", 0) for x in rs],
            "apgr": {k: round(float(np.mean([x["apgr"][k] for x in rs])), 6) for k in keys},
            "std": {k: float(np.std([x["apgr"][k] for x in rs])) for k in keys},
        }
        devs = [x["dev"] for x in rs if "dev" in x]
        if len(devs) == len(rs):
            groups_ = list(devs[0]["apgr"])
            sources = (
                {
                    g: {p: float(np.mean([d["source_apgr"][g][p] for d in devs])) for p in parts}
                    for g, parts in devs[0]["source_apgr"].items()
                }
                if all("source_apgr" in d for d in devs)
                else {}
            )
            mean = DevScores(
                router,
                {g: float(np.mean([d["apgr"][g] for d in devs])) for g in groups_},
                {g: float(np.mean([d["strong_share_at_50"][g] for d in devs])) for g in groups_},
                sources,
            )
            row["dev"] = mean.to_dict()
            row["std"]["dev_mean_apgr"] = float(np.std([d["mean_apgr"] for d in devs]))
            if sources:
                row["std"]["dev_mean_source_apgr"] = float(
                    np.std([d["mean_source_apgr"] for d in devs])
                )
            row["std"]["dev_inversion_margin"] = float(
                np.std([d["inversion_margin"] for d in devs])
            )
        out.append(row)
    return out


def dev_tables(rows: Sequence[dict]) -> list[str]:
    """The development-suite tables of ``results.md``: per-group APGR and strong share at 50%
    overall, the mean over each cell's seeds (std over seeds in brackets)."""
    means = [r for r in seed_means(rows) if "dev" in r]
    if not means:
        return []
    groups = list(means[0]["dev"]["apgr"])
    lines = [
        "## Development suite (routellm_jax.eval.dev_suite; selection rule in README.md)",
        "",
        "Mean over the seeds of each cell (std of the mean APGR over seeds). A mix outside",
        "`DEV_CLEAN_MIXES` trained on part of the suite (`_mmlu`: knowledge; `_full`: code,",
        "reasoning): its row is not a dev number.",
        "",
        "| router | mix | seeds | "
        + " | ".join(groups)
        + " | mean APGR | mean by source | "
        + " | ".join(f"{g} share" for g in groups)
        + " | code/math - open |",
        "|---|---|---|" + "---|" * (2 * len(groups) + 3),
    ]
    for r in means:
        d = r["dev"]
        std = r["std"].get("dev_mean_apgr")
        mean = f"{d['mean_apgr']:.3f}" + ("" if not std else f" ({std:.3f})")
        by_source = "-"
        if "mean_source_apgr" in d:
            std = r["std"].get("dev_mean_source_apgr")
            by_source = f"{d['mean_source_apgr']:.3f}" + ("" if not std else f" ({std:.3f})")
        lines.append(
            f"| {r['router']} | {r['mix']} | {len(r['seeds'])} | "
            + " | ".join(f"{d['apgr'][g]:.3f}" for g in groups)
            + f" | {mean} | {by_source} | "
            + " | ".join(f"{100 * d['strong_share_at_50'][g]:.0f}%" for g in groups)
            + f" | {100 * d['inversion_margin']:+.0f} pt |"
        )
    return lines


def write_tables(out: Path, rows: list[dict], benches: Mapping[str, Benchmark], meta: dict) -> None:
    """``results.json`` (every number) and ``results.md`` (APGR table, ours vs the paper).

    Example:
        >>> write_tables(Path("/tmp/r"), [], {}, {})  # doctest: +SKIP
    """
    out.mkdir(parents=True, exist_ok=True)
    keys = list(benches)
    (out / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "benchmarks": {k: b.summary() for k, b in benches.items()},
                "rows": rows,
            },
            indent=1,
            default=str,
        )
    )
    short = {
        k: k.replace("gpt-4-1106-preview", "gpt4").replace("mixtral-8x7b-instruct-v0.1", "mixtral")
        for k in keys
    }
    lines = [
        "# Results (APGR, trapezoid over 11 quantile thresholds, PGR capped at 1 for oracle)",
        "",
        "Produced by `" + meta.get("command", "") + "`. MMLU is scored without the 1,500 golden",
        "questions for every router (golden-split rule). Held-out judge sets: the seeded 30% in",
        "`experiments/judge_heldout_split.txt`. Transfer columns: pairs never trained as a pair.",
        "",
        "| router | mix | " + " | ".join(short[k] for k in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for r in rows:
        cells = []
        for k in keys:
            v = r["apgr"].get(k)
            cells.append("-" if v is None else f"{v:.3f}")
        lines.append(f"| {r['router']} | {r['mix']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paper's best (per benchmark, different routers): "
        + ", ".join(f"{k} {v:.3f}" for k, v in PAPER_BEST.items()),
        "",
        "CPT(50%) (share of strong calls to reach 50% of the quality gap):",
        "",
        "| router | mix | " + " | ".join(short[k] for k in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for r in rows:
        cells = []
        for k in keys:
            v = r["cpt50"].get(k)
            cells.append("-" if v is None else f"{100 * v:.1f}%")
        lines.append(f"| {r['router']} | {r['mix']} | " + " | ".join(cells) + " |")
    lines += ["", *dev_tables(rows)]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def run(
    cells: Sequence[str],
    out: Path,
    *,
    workdir: Path,
    data_root: str | None = None,
    seed_embeddings: Sequence[Path] = (),
    cache: Path | None = None,
    encoder: str = "all-MiniLM-L6-v2",
    quick: bool = False,
    command: str = "",
    seeds: Sequence[int] = (0,),
    dev_only: bool = False,
) -> list[dict]:
    """Run the grid (see the module docstring); returns the result rows.

    ``seeds``: each cell is trained once per config seed (rows of a seed other than 0 record it in
    ``seed`` and their ``config`` as ``<cell>@seed<S>``). ``dev_only``: score the development suite
    only, no benchmark, so that a router can be chosen before any evaluation-set number exists.

    Example:
        >>> rows = run(["experiments/grid.py:mf_both"], Path("experiments/results"),
        ...            workdir=Path("/tmp/grid"))  # doctest: +SKIP
    """
    from routellm_jax.eval.baselines import prompt_length_router
    from routellm_jax.eval.evaluate import reference_results
    from routellm_jax.eval.plots import plot_curves
    from routellm_jax.paths import data_dir

    root = data_dir(data_root)
    split = read_split()
    cfgs = load_cells(cells)
    store = EmbeddingStore(cache, encoder)
    for seed_npz in seed_embeddings:
        log.info("seeded %d embeddings from %s", store.seed_from(seed_npz), seed_npz)
    benches = {} if dev_only else build_benchmarks(root, split, quick=quick)
    eval_sets = eval_prompt_sets(root, split)
    suite = build_dev_suite(root)
    # Benchmark prompts must all be embedded; the rest of the evaluation sets is only needed for
    # the near-duplicate check, which covers what is cached (see build_mix).
    wanted = [p for b in benches.values() for p in b.prompts] + dev_prompts(suite)
    store.ensure(wanted + ([] if dev_only else eval_sets["mt_bench"]))
    store.save()

    rows: list[dict] = []
    results: dict[str, list] = {k: [] for k in benches}

    def add(router: str, mix: str, fn, info: dict, config: str = "", seed: int = 0) -> None:
        row = {
            "router": router,
            "mix": mix,
            "config": config,
            "seed": seed,
            "info": info,
            "apgr": {},
            "cpt50": {},
            "apgr_10pt": {},
        }
        dev_rates = fn(dev_prompts(suite), STRONG, WEAK)
        if dev_rates is not None:
            by_group = route_suite(suite, lambda ps: dev_rates)
            row["dev"] = score_dev_suite(suite, by_group, router).to_dict()
        for key, bench in benches.items():
            s, w = (bench.strong_model, bench.weak_model)
            res = _score(bench, fn, s, w, f"{router} ({mix})")
            if res is None:
                row["apgr"][key] = row["cpt50"][key] = row["apgr_10pt"][key] = None
                continue
            m = res.metrics
            row["apgr"][key] = float(m.apgr_trapezoid)
            row["apgr_10pt"][key] = float(m.apgr_10pt)
            row["cpt50"][key] = _cpt50(m)
            results[key].append(res)
        rows.append(row)
        log.info("%s/%s: %s", router, mix, {k: v and round(v, 3) for k, v in row["apgr"].items()})

    for key, bench in benches.items():
        for r in reference_results(bench, random_seeds=range(10)):
            results[key].append(r)
            if r.name in ("random (expected)", "oracle"):
                rows_ref = next((x for x in rows if x["router"] == r.name), None)
                if rows_ref is None:
                    rows_ref = {
                        "router": r.name,
                        "mix": "-",
                        "config": "",
                        "info": {},
                        "apgr": {},
                        "cpt50": {},
                        "apgr_10pt": {},
                    }
                    rows.append(rows_ref)
                # The oracle's PGR exceeds 1 (it also uses prompts only the weak model gets
                # right); the paper quotes it capped, and so do we.
                capped = r.name == "oracle"
                m = r.metrics
                rows_ref["apgr"][key] = float(
                    m.apgr_trapezoid_capped if capped else m.apgr_trapezoid
                )
                rows_ref["apgr_10pt"][key] = float(m.apgr_10pt_capped if capped else m.apgr_10pt)
                rows_ref["cpt50"][key] = _cpt50(m)
    add("prompt_length", "-", lambda ps, s, w: prompt_length_router(ps), {})
    oracle_dev = score_dev_suite(
        suite, {g: oracle_win_rates(b) for g, b in suite.items()}, "oracle"
    )
    rows_oracle = next((x for x in rows if x["router"] == "oracle"), None)
    if rows_oracle is None:
        rows_oracle = {"router": "oracle", "mix": "-", "config": "", "info": {}, "apgr": {}}
        rows_oracle.update(cpt50={}, apgr_10pt={})
        rows.append(rows_oracle)
    rows_oracle["dev"] = oracle_dev.to_dict()

    mix_cache: dict[str, tuple[TrainingData, dict]] = {}
    specs: dict[str, MixtureSpec] = {}
    failed: dict[str, str] = {}
    cards: dict[str, dict] = {}
    for cell_id, cfg in cfgs:
        spec = MixtureSpec.from_dict(cfg.data.mixture.to_dict())
        mix = spec.name
        if specs.setdefault(mix, spec) != spec:  # results are keyed by the mix's name
            raise ValueError(f"{cell_id}: mix {mix!r} differs from an earlier cell's {mix!r}")
        if mix not in mix_cache:
            t0 = time.time()
            for seed_npz in seed_embeddings:  # seed files may have grown since the start
                store.seed_from(seed_npz)
            data, card = build_mix(spec, root, store)
            if quick:
                data = _quick_data(data)
            mix_cache[mix] = (data, card)
            from routellm_jax.data.mixtures import save_mixture

            save_mixture(data, card, workdir / "mixes" / mix)
            cards[mix] = {
                "totals": card["totals"],
                "removed_rows": card["decontamination"]["removed_rows"],
                "per_source": {
                    s["name"]: (s["decontamination"] or {}).get("by_eval_set")
                    for s in card["sources"]
                },
                "lexical_pass_by_eval_set": (card["decontamination"]["lexical_pass"] or {}).get(
                    "by_eval_set"
                ),
                "build_seconds": round(time.time() - t0, 1),
            }
            for name, (fn, info) in baseline_fns(mix, data, store).items():
                add(name.split("/")[0], mix, fn, info)
        data, _ = mix_cache[mix]
        if quick:
            cfg.steps = min(int(cfg.steps), 20)
        for seed in seeds:
            run_cfg = cfg.copy_and_resolve_references()
            run_cfg.seed = int(seed)
            run_id = cell_id if seed == 0 else f"{cell_id}@seed{seed}"
            name = cell_name(cell_id) + ("" if seed == 0 else f"_s{seed}")
            try:
                fn, info = train_cell(run_cfg, data, store, workdir / "cells" / name)
            except Exception as err:  # one failing cell must not lose the others' results
                log.exception("cell %s failed", run_id)
                failed[run_id] = f"{type(err).__name__}: {err}"
                continue
            # grid.label tells apart cells of one architecture and mix (e.g. another featurizer).
            label = str(cfg.get("grid", {}).get("label", cfg.arch))
            add(label, mix, fn, info, config=run_id, seed=int(seed))
            write_tables(out, rows, benches, {"command": command, "partial": True})

    meta = {
        "failed_cells": failed,
        "command": command,
        "data_cards": cards,
        "quick": quick,
        "split_file": str(SPLIT_FILE.relative_to(HERE.parent)),
        "seed": SPLIT_SEED,
        "seeds": list(seeds),
        "dev_only": dev_only,
        "dev_suite": {g: {"n": len(b), "source": GROUP_SOURCES[g]} for g, b in suite.items()},
    }
    write_tables(out, rows, benches, meta)
    plot_strong_share(
        [DevScores.from_dict(r["dev"]) for r in seed_means(rows) if "dev" in r],
        out / "dev_suite.png",
    )
    for key, bench in benches.items():
        safe = key.replace("/", "_vs_").replace(":", "__")
        plot_curves(bench, results[key], out / f"{safe}.png")
    return rows


def _quick_data(data: TrainingData) -> TrainingData:
    """At most 3000 battles and 3000 outcomes (smoke tests)."""
    rng = np.random.default_rng(0)
    c, o = data.comparisons, data.outcomes
    if len(c) > 3000:
        c = c.take(np.sort(rng.choice(len(c), 3000, replace=False)))
    if len(o) > 3000:
        o = o.take(np.sort(rng.choice(len(o), 3000, replace=False)))
    return TrainingData(c, o)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "cells", nargs="*", help="cells: experiments/grid.py (its whole sweep) or FILE.py:CELL"
    )
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--workdir", default="/tmp/routellm_grid")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed-embeddings", nargs="*", default=[], help=".npz files to seed from")
    ap.add_argument("--cache", default=None, help="embedding cache .npz")
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2", help="or hashing:384 (smoke)")
    ap.add_argument("--quick", action="store_true", help="tiny benchmarks/data/steps (smoke)")
    ap.add_argument("--write-split", action="store_true")
    ap.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="config seeds per cell (default: 0)"
    )
    ap.add_argument(
        "--dev-only",
        action="store_true",
        help="score the development suite only (no benchmark: for choosing a router)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every file it writes
    from routellm_jax.paths import data_dir

    if args.write_split:
        prompts = judge_prompts(data_dir(args.data_dir))
        split = compute_judge_split(prompts)
        SPLIT_FILE.write_text(render_split(split, {k: len(v) for k, v in prompts.items()}))
        print(f"wrote {SPLIT_FILE}")
        return 0
    if not args.cells:
        ap.error("give cells: experiments/grid.py, or experiments/grid.py:CELL ...")
    command = "python -m experiments.run_grid " + " ".join(argv or sys.argv[1:])
    run(
        args.cells,
        Path(args.out),
        workdir=Path(args.workdir),
        data_root=args.data_dir,
        seed_embeddings=[Path(p) for p in args.seed_embeddings],
        cache=Path(args.cache) if args.cache else None,
        encoder=args.encoder,
        quick=args.quick,
        command=command,
        seeds=args.seeds,
        dev_only=args.dev_only,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
