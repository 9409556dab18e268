"""Rebuild a zoo entry from its committed recipe: train, export, evaluate, compare.

A recipe (``model_zoo/recipes.py``: ``get_config(NAME)``) names the experiment config that trains
the entry and what its card says. :func:`build_entry` trains that config into a fresh run folder
(the trainer prepares the declared mix, with the decontamination passes it declares, and serves
frozen-encoder vectors from the machine's embedding store), exports the run
(:func:`~routellm_jax.publish.export.export_from_workdir`: calibrate, write, verify the round
trip, evaluate the recipe's benchmarks on the written entry, pack), lists it in the output
folder's manifest, and :func:`compare_evals` sets the rebuilt card's APGRs beside the ones a
reference manifest quotes. ``routellm-jax zoo build NAME`` is the command line.

Training on a CPU is deterministic here (fixed seeds, fixed batch order, one process), so a
rebuild on the same machine reproduces the card exactly; on another CPU, float reductions may
round differently and the numbers move in the last digits (the comparison shows by how much).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.api import Router
from routellm_jax.data.judge_split import read_split
from routellm_jax.eval.evaluate import card_record, evaluate_win_rates
from routellm_jax.eval.judge_heldout import (
    HELDOUT_BENCHMARKS,
    SPLIT_FILE,
    judge_heldout_benchmarks,
)
from routellm_jax.models.embedding_store import embed_into_store, embedding_store
from routellm_jax.paths import data_dir as find_data_dir
from routellm_jax.publish.export import ExportSpec, export_from_workdir, find_data_card
from routellm_jax.publish.pack import ExportResult, update_manifest
from routellm_jax.training.checkpoints import Checkpointer, checkpoint_dir, load_params
from routellm_jax.training.config import load_config
from routellm_jax.training.train import train
from routellm_jax.zoo.card import EvalResult
from routellm_jax.zoo.manifest import BUNDLED_LIMIT_BYTES, Manifest, check_name, check_version


class RecipeError(ValueError):
    """A recipe that names no entry, lacks a field, or cannot be loaded (the user's to fix)."""


RECIPE_KEYS = ("name", "version", "config", "description", "license", "evals", "bundle")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a zoo entry is built: the experiment ``config`` (``FILE.py[:ARG]``, relative to
    ``root``), the card's text, its benchmarks, and whether the archive is bundled in the
    repository (``bundle``) or built on the user's machine only (``local_only``)."""

    name: str
    version: str
    config: str
    description: str
    license: str
    evals: tuple[str, ...]
    bundle: bool = False
    local_only: bool = False
    root: Path = Path(".")

    def config_path(self) -> str:
        """The experiment config spec with its file resolved against ``root``."""
        file, sep, arg = self.config.partition(":")
        return f"{(self.root / file).as_posix()}{sep}{arg}"


def load_recipe(recipes: str | Path, name: str) -> Recipe:
    """The recipe ``name`` of a recipes file (``get_config(name)``); the experiment config it
    names is resolved against the repository holding the file (its folder's parent).

    Example:
        >>> load_recipe("model_zoo/recipes.py", "mf-minilm").config
        'experiments/mf_minilm_judge.py'
    """
    recipes = Path(recipes)
    if not recipes.is_file():
        raise FileNotFoundError(f"{recipes}: no such recipes file")
    try:
        cfg = load_config(f"{recipes}:{name}").to_dict()
    except KeyError as err:  # get_config's "no recipe for ..." (it lists the known ones)
        raise RecipeError(f"{recipes}: {err.args[0] if err.args else err}") from None
    missing = [k for k in RECIPE_KEYS if k not in cfg]
    if missing:
        raise RecipeError(f"{recipes}: recipe {name!r} lacks {missing}")
    unknown = sorted(set(cfg) - set(RECIPE_KEYS) - {"local_only"})
    if unknown:
        raise RecipeError(f"{recipes}: recipe {name!r} has unknown key(s) {unknown}")
    check_name(str(cfg["name"]), f"{recipes}: recipe name")
    check_version(str(cfg["version"]), f"{recipes}: recipe {name!r} version")
    if cfg["name"] != name:
        raise RecipeError(f"{recipes}: recipe {name!r} names itself {cfg['name']!r}")
    return Recipe(
        name=name,
        version=str(cfg["version"]),
        config=str(cfg["config"]),
        description=str(cfg["description"]),
        license=str(cfg["license"]),
        evals=tuple(str(e) for e in cfg["evals"]),
        bundle=bool(cfg["bundle"]),
        local_only=bool(cfg.get("local_only", False)),
        root=recipes.resolve().parent.parent,
    )


def check_heldout_clean(data_card: Any, names: Sequence[str], where: str) -> None:
    """Raise unless the training data card lists the held-out judge sets in ``names`` among the
    evaluation sets removed from training (an entry trained on them would report a memorised,
    not a held-out, APGR).

    Example:
        >>> check_heldout_clean(None, ["alpaca_heldout"], "runs/x")
        Traceback (most recent call last):
        ...
        ValueError: runs/x: its data card does not list ['alpaca_heldout'] among the evaluation sets removed from training, so those prompts may be in its training data; drop them from the evals
    """
    decon = getattr(data_card, "decontamination", None) or {}
    missing = [n for n in names if n not in (decon.get("eval_sets") or {})]
    if missing:
        raise ValueError(
            f"{where}: its data card does not list {missing} among the evaluation sets removed "
            "from training, so those prompts may be in its training data; drop them from the evals"
        )


def heldout_evals(
    loaded: tuple[str, Any, Any],
    names: Sequence[str],
    *,
    entry_name: str,
    command: str,
    data_dir: str | Path | None = None,
) -> list[EvalResult]:
    """Card results of a router ``loaded = (arch, config, params)`` on the held-out judge sets
    ``names`` (:func:`routellm_jax.eval.judge_heldout.judge_heldout_benchmarks`: built from the
    shared data, never copied into the repository, so not a ``routellm-jax eval`` benchmark;
    ``command`` is what reproduces them)."""
    arch, config, params = loaded
    router = Router.from_params(arch, config, params, name=entry_name, fuse_encoder=False)
    store = embedding_store(router.featurizer)
    benches = judge_heldout_benchmarks(find_data_dir(data_dir), read_split(SPLIT_FILE))
    out = []
    for name in names:
        bench = benches[name]
        if store is not None:
            embed_into_store(router.featurizer, list(bench.prompts), store, progress=True)
        rates = router.win_rate(list(bench.prompts), bench.strong_model, bench.weak_model)
        result = evaluate_win_rates(bench, np.asarray(rates, np.float64), name=entry_name)
        record = card_record(
            result,
            benchmark=name,
            command=command,
            notes=(
                f"{len(bench)} prompts, strong {bench.strong_model} vs weak {bench.weak_model}; "
                "quality = judge preference share (alpaca) or GPT-4 grade (arena); computed at "
                "export from the run's checkpoint"
            ),
        )
        out.append(EvalResult(**record))
    return out


def _has_final_checkpoint(workdir: Path, steps: int) -> bool:
    if not checkpoint_dir(workdir).is_dir():
        return False
    latest = Checkpointer(workdir, keep=1).latest_step()
    return latest is not None and int(latest) >= steps


def build_entry(
    recipe: Recipe,
    *,
    workdir: str | Path,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    retrain: bool = True,
    progress: bool = True,
    urls: Sequence[str] = (),
) -> ExportResult:
    """Train ``recipe``'s config into ``workdir`` (removed first unless ``retrain`` is False and
    it holds the final step), export it into ``out_dir`` and list it in
    ``out_dir/manifest.json`` (bundled when ``out_dir`` holds the archive, else by ``urls`` or
    its path relative to the manifest)."""
    workdir, out_dir = Path(workdir), Path(out_dir)
    if recipe.local_only and out_dir.resolve() == (recipe.root / "model_zoo").resolve():
        raise RecipeError(
            f"{recipe.name} is too large to bundle: give --out-dir a folder outside model_zoo/"
        )
    config = load_config(recipe.config_path())
    if data_dir is not None:
        config.data.data_dir = str(data_dir)
    command = f"routellm-jax zoo build {recipe.name}"
    if retrain or not _has_final_checkpoint(workdir, int(config.steps)):
        if workdir.exists():
            shutil.rmtree(workdir)
        train(config, workdir, progress=progress)
    loaded = load_params(workdir, None)
    heldout = [b for b in recipe.evals if b in HELDOUT_BENCHMARKS]
    data_card = find_data_card(workdir)
    if heldout:
        check_heldout_clean(data_card, heldout, f"recipe {recipe.name!r}")
    spec = ExportSpec(
        name=recipe.name,
        version=recipe.version,
        description=recipe.description,
        license=recipe.license,
        eval_benchmarks=[b for b in recipe.evals if b not in HELDOUT_BENCHMARKS],
        eval_results=heldout_evals(
            loaded, heldout, entry_name=recipe.name, command=command, data_dir=data_dir
        ),
        bundle_limit=BUNDLED_LIMIT_BYTES if recipe.bundle else None,
        data_card=data_card,
    )
    result = export_from_workdir(workdir, out_dir, spec, data_dir=data_dir)
    listed = list(urls) or ([] if recipe.bundle else [result.archive.name])
    update_manifest(out_dir / "manifest.json", result, urls=listed, bundled=recipe.bundle)
    return result


@dataclasses.dataclass(frozen=True)
class EvalComparison:
    """One benchmark's APGR in a reference card and in the rebuilt one."""

    benchmark: str
    quoted: float | None
    rebuilt: float | None

    @property
    def delta(self) -> float | None:
        if self.quoted is None or self.rebuilt is None:
            return None
        return self.rebuilt - self.quoted


def mismatches(rows: Sequence[EvalComparison], tolerance: float = 0.0) -> list[EvalComparison]:
    """The rows whose rebuilt APGR differs from the quoted one by more than ``tolerance``.

    Example:
        >>> rows = [EvalComparison("gsm8k", 0.5, 0.5), EvalComparison("mmlu", 0.6, 0.59)]
        >>> [r.benchmark for r in mismatches(rows)], mismatches(rows, tolerance=0.02)
        (['mmlu'], [])
    """
    return [r for r in rows if r.delta is not None and abs(r.delta) > tolerance + 1e-9]


def compare_evals(
    rebuilt: Sequence[EvalResult], reference: Manifest | None, name: str, digits: int = 4
) -> list[EvalComparison]:
    """The rebuilt card's APGRs beside the ones ``reference`` quotes for ``name`` (rounded to
    ``digits``, as manifests quote them); benchmarks of either side.

    Example:
        >>> compare_evals([EvalResult("gsm8k", 0.51234)], None, "x")
        [EvalComparison(benchmark='gsm8k', quoted=None, rebuilt=0.5123)]
    """
    quoted: dict[str, float] = {}
    if reference is not None:
        try:
            entry = reference.get(name)
        except KeyError:
            entry = None
        if entry is not None:
            quoted = {e["benchmark"]: round(float(e["apgr"]), digits) for e in entry.evals}
    new = {e.benchmark: round(float(e.apgr), digits) for e in rebuilt}
    names = list(dict.fromkeys([*new, *quoted]))
    return [EvalComparison(b, quoted.get(b), new.get(b)) for b in names]
