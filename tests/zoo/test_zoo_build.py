"""``routellm-jax zoo build``: every zoo entry has a committed recipe, and a rebuild through the
real command line reproduces the card it built before, number for number.

The rebuilt entry here is a small one (mf on the weight-free ``hashing:64`` featurizer, trained on
the arena-bench-v1 battles of the real data for a few steps), so the test needs the data but no
encoder weights; the bundled entries' recipes are the same code path with bigger configs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from routellm_jax.publish.build import RecipeError, compare_evals, load_recipe, mismatches
from routellm_jax.training.config import arch_config, expand_sweep, load_config, split_config_arg
from routellm_jax.zoo.card import EvalResult
from routellm_jax.zoo.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "model_zoo" / "recipes.py"

TINY_CONFIG = """
import ml_collections
from routellm_jax.training.config import default_config

def get_config():
    c = default_config()
    c.arch = "mf"
    c.arch_config = ml_collections.ConfigDict(
        dict(dim=8, use_outcomes=False, featurizer="hashing:64", text_dim=64))
    c.steps = 6
    c.batch_size = 32
    c.log_every = 3
    c.eval.every = 0
    c.checkpoint.async_save = False
    c.data.mixture = ml_collections.ConfigDict(dict(
        name="arena_battles",
        heldout_split="experiments/judge_heldout_split.txt",
        eval_sets=["mmlu", "gsm8k", "mt_bench"],
        near_duplicate_encoder="hashing:64",
        lexical_threshold=0.9,
        sources=[dict(name="arena_bench_v1", to_comparisons=True, tie_band=0.5)],
    ))
    return c
"""

TINY_RECIPES = """
import ml_collections

RECIPES = {
    "tiny-mf": dict(
        config="exp/tiny.py",
        description="mf on hashed words, arena-bench-v1 battles",
        license="test only",
        evals=("gsm8k", "arena_heldout"),
        bundle=False,
    ),
}

def get_config(name):
    return ml_collections.ConfigDict({"name": name, "version": "0.1.0", **RECIPES[name]})

def sweep():
    return list(RECIPES)
"""


def test_every_manifest_entry_has_a_recipe_with_its_benchmarks() -> None:
    """Each entry the repository lists is rebuilt by ``zoo build NAME``: its recipe exists,
    quotes the same benchmarks, and names an experiment config its architecture accepts."""
    manifest = Manifest.load(REPO / "model_zoo" / "manifest.json")
    names = [split_config_arg(s)[1] for s in expand_sweep(str(RECIPES))]
    assert sorted(names) == sorted(e.name for e in manifest.entries)
    for entry in manifest.entries:
        recipe = load_recipe(RECIPES, entry.name)
        assert sorted(recipe.evals) == sorted(e["benchmark"] for e in entry.evals), entry.name
        assert recipe.description == entry.description, entry.name
        config = load_config(recipe.config_path())
        assert config.arch == entry.architecture
        arch_config(config)  # the architecture accepts the config
        assert config.data.mixture or config.data.records, entry.name
        # Bundled entries sit in model_zoo/; local-only ones are listed with no URL to fetch.
        assert recipe.bundle == any(
            u.endswith(".tar") and "/" not in u for f in entry.files for u in f.urls
        ), entry.name


def test_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(RecipeError, match="known: .*irt-mix-minilm"):
        load_recipe(RECIPES, "no-such-entry")


def test_compare_evals_sets_rebuilt_beside_quoted() -> None:
    rows = compare_evals([EvalResult("gsm8k", 0.61234), EvalResult("mmlu", 0.5)], None, "x")
    assert [(r.benchmark, r.quoted, r.rebuilt, r.delta) for r in rows] == [
        ("gsm8k", None, 0.6123, None),
        ("mmlu", None, 0.5, None),
    ]
    quoted = Manifest.load(REPO / "model_zoo" / "manifest.json")
    entry = quoted.get("mf-minilm")
    rebuilt = [EvalResult(e["benchmark"], e["apgr"]) for e in entry.evals]
    rebuilt[0] = EvalResult(rebuilt[0].benchmark, rebuilt[0].apgr - 0.01)
    rows = compare_evals(rebuilt, quoted, "mf-minilm")
    assert [r.benchmark for r in mismatches(rows)] == [rebuilt[0].benchmark]
    assert round(rows[0].delta, 4) == -0.01 and mismatches(rows, tolerance=0.02) == []


def _zoo_build(root: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROUTELLM_JAX_CACHE=str(root / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "routellm_jax.cli", "zoo", "build", "tiny-mf"]
        + ["--recipes", str(root / "exp" / "zoo.py"), "--workdir", str(root / "runs")]
        + ["--out-dir", str(root / out), "--no-progress", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


def test_zoo_build_rebuilds_the_same_entry_through_the_cli(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "tiny.py").write_text(TINY_CONFIG)
    (tmp_path / "exp" / "zoo.py").write_text(TINY_RECIPES)
    data = ["--data-dir", str(data_dir)]

    first = _zoo_build(tmp_path, "zoo1", *data)
    assert first.returncode == 0, first.stderr[-3000:]
    card1 = json.loads((tmp_path / "zoo1" / "tiny-mf" / "card.json").read_text())
    commands = {e["benchmark"]: e["command"] for e in card1["evals"]}
    assert sorted(commands) == ["arena_heldout", "gsm8k"]
    assert commands["arena_heldout"] == "routellm-jax zoo build tiny-mf"
    # The data card records the declared passes, and no machine's folders.
    decon = card1["data"]["decontamination"]
    assert decon["near_duplicates_checked"] and decon["lexical_threshold"] == 0.9
    assert str(data_dir) not in json.dumps(card1["data"])

    # A second build from scratch, checked against the first one's manifest: same numbers.
    manifest1 = tmp_path / "zoo1" / "manifest.json"
    second = _zoo_build(tmp_path, "zoo2", *data, "--compare-to", str(manifest1), "--check")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    card2 = json.loads((tmp_path / "zoo2" / "tiny-mf" / "card.json").read_text())
    assert card2["evals"] == card1["evals"]
    assert card2["calibration"] == card1["calibration"]

    # The printed table: each benchmark's quoted (first build), rebuilt and delta.
    assert "arena_heldout" in second.stdout and "0.0000" in second.stdout
