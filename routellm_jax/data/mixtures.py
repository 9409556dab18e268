"""Training mixtures: sources + weights -> one :class:`TrainingData`, deterministic from a seed,
decontaminated against the evaluation prompts, with a data card.

A :class:`MixtureSpec` lists :class:`SourceSpec` entries. Each entry names a built-in source
(:data:`BUILTIN_SOURCES`, reading the real shared data through ``paths.data_dir()``) or carries its
own ``loader(data_root) -> TrainingData``. A spec of built-in sources is plain data
(:meth:`MixtureSpec.to_dict` / :meth:`MixtureSpec.from_dict`): a config can declare it, and the
data card records it, so the card alone rebuilds the mixture. Per source, in order:

1. load (bad rows of the built-in real files are skipped and counted, never silently);
2. filter (``filters``: ``models``, ``exclude_models``, ``source_prefixes``, ``kinds``,
   ``hash_fraction``; see :func:`apply_filters`);
3. optionally turn outcomes into battles (``to_comparisons`` with ``tie_band`` / ``pairs``);
4. decontaminate against the evaluation sets (exact match after normalisation; plus encoder
   cosine >= ``threshold`` when the spec declares ``near_duplicate_encoder``, whose vectors the
   caller passes as ``embed_fn``), unless ``decontaminate=False`` (e.g. the golden split, which is
   evaluation data by design and is then excluded from evaluation by the harness);
5. sample: ``rows`` units exactly, or ``weight`` x the available units (``weight`` > 1
   repeats rows), or -- when the spec has ``total_rows`` -- ``total_rows`` split in proportion to
   the weights. A unit is a battle for comparisons and a prompt (all its outcomes) for outcomes.
   Sampling uses ``numpy.random.default_rng([seed, crc32(source name)])``: the same spec and seed
   give the same rows.

Then, when the spec declares ``lexical_threshold``, a lexical pass over the whole mix: a row of a
decontaminated source whose hashed word uni+bigram vector (:func:`~routellm_jax.data.hashing.
hashed_ngram_vectors`, weight-free) has cosine >= ``lexical_threshold`` with an evaluation prompt is
removed. It catches re-templated copies an encoder can score below its threshold (RouterDC writes
MMLU questions without the "Answer:" suffix). Every step is a declared key, so the data card's
``spec`` alone rebuilds the mix.

The built-in training sources use only training files: never the RouterBench / RouterDC /
LLMRouter ``*_test`` files (available under their own ``*_test`` names for a spec that asks) and
never the evaluation sets. RouterDC's un-suffixed files (MATH_prealgebra, ceval, javascript, mbpp)
are its out-of-distribution test sets and are not used either. The one exception is named for what
it is: ``mmlu_golden``, the 1,500-question MMLU golden split (``routellm_jax.eval.golden``), MMLU
test questions kept for training by the golden-split rule; the evaluation harness excludes them
from MMLU instead, and a spec gives it ``decontaminate=False`` (else the MMLU evaluation set
removes every row).

:func:`save_mixture` writes ``comparisons.parquet``, ``outcomes.parquet`` and ``data_card.json``
(sources, row counts at every step, removed counts by reason and evaluation set, seed, model table
version) into one folder; :func:`load_mixture` reads them back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from etils import epath

from routellm_jax.data.decontaminate import (
    DEFAULT_THRESHOLD,
    EmbedFn,
    EvalIndex,
    decontaminate,
    standard_eval_sets,
)
from routellm_jax.data.elo import outcomes_to_comparisons
from routellm_jax.data.hashing import hash_fraction, hashed_ngram_vectors
from routellm_jax.data.model_names import ModelTable, default_table
from routellm_jax.data.records import ComparisonTable, OutcomeTable, TrainingData
from routellm_jax.data.sources._common import ReadReport
from routellm_jax.data.sources.builtin import BUILTIN_SOURCES
from routellm_jax.data.sources.correctness import strip_shared_prefixes
from routellm_jax.paths import data_dir, location, write_whole

Loader = Callable[[Path], TrainingData]
CARD_NAME = "data_card.json"
CARD_VERSION = 1
LEXICAL_DIM = 384  # width of the lexical pass's hashed vectors (part of its definition)


# ------------------------------------------------------------------------ specs
@dataclass(frozen=True)
class SourceSpec:
    """One source of a mixture (see the module docstring for the meaning of each field).

    Example:
        >>> SourceSpec("alpaca_eval", weight=0.5).name
        'alpaca_eval'
    """

    name: str
    weight: float | None = None
    rows: int | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # passed to the built-in loader
    loader: Loader | None = None  # custom: data_root -> TrainingData
    decontaminate: bool = True
    to_comparisons: bool = False
    tie_band: float = 0.0
    pairs: Sequence[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        if self.weight is not None and self.rows is not None:
            raise ValueError(f"source {self.name!r}: give weight or rows, not both")
        if self.weight is not None and self.weight < 0:
            raise ValueError(f"source {self.name!r}: weight must be >= 0")
        if self.rows is not None and self.rows < 0:
            raise ValueError(f"source {self.name!r}: rows must be >= 0")
        if self.loader is None and self.name not in BUILTIN_SOURCES:
            raise ValueError(
                f"unknown source {self.name!r}: give a loader or one of {sorted(BUILTIN_SOURCES)}"
            )
        unknown = set(self.filters) - set(FILTER_KEYS)
        if unknown:
            raise ValueError(
                f"source {self.name!r}: unknown filter(s) {sorted(unknown)}; known {FILTER_KEYS}"
            )
        if "hash_fraction" in self.filters:
            _check_hash_filter(self.name, self.filters["hash_fraction"])
        if not isinstance(self.filters.get("strip_shared_prefix", False), bool):
            raise ValueError(
                f"source {self.name!r}: filter strip_shared_prefix must be true or false, "
                f"got {self.filters['strip_shared_prefix']!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "loader"}
        d["filters"] = dict(self.filters)
        d["options"] = dict(self.options)
        d["pairs"] = None if self.pairs is None else [list(p) for p in self.pairs]
        d["loader"] = (
            None if self.loader is None else getattr(self.loader, "__qualname__", repr(self.loader))
        )
        return d


@dataclass(frozen=True)
class MixtureSpec:
    """A mixture: sources, a seed, the evaluation sets to decontaminate against.

    Example:
        >>> spec = MixtureSpec([SourceSpec("alpaca_eval"), SourceSpec("routerbench_train", rows=500)])
        >>> spec.seed
        0
    """

    sources: Sequence[SourceSpec]
    seed: int = 0
    eval_sets: Sequence[str] = ("mmlu", "gsm8k", "mt_bench")
    threshold: float = DEFAULT_THRESHOLD
    total_rows: int | None = None
    name: str = "mixture"
    # A held-out split file (``judge_split.read_split`` format, e.g. the committed
    # ``experiments/judge_heldout_split.txt``): its prompts join the evaluation sets above, so
    # they are removed from every source like MMLU/GSM8K/MT-Bench prompts.
    heldout_split: str | None = None
    # The encoder whose cosine (>= ``threshold``) marks a near-duplicate of an evaluation prompt;
    # the builder's caller supplies its vectors (``embed_fn``). None: exact matches only.
    near_duplicate_encoder: str | None = None
    # Cosine of hashed word uni+bigram vectors at or above which a row is a lexical copy of an
    # evaluation prompt (a pass over the built mix); None: no lexical pass.
    lexical_threshold: float | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be distinct, got {names}")
        for key in ("threshold", "lexical_threshold"):
            value = getattr(self, key)
            if value is not None and not 0.0 < float(value) <= 1.0:
                raise ValueError(f"mixture {self.name!r}: {key} must be in (0, 1], got {value}")
        if self.total_rows is not None and any(s.rows is not None for s in self.sources):
            raise ValueError("with total_rows, give sources weights, not rows")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "eval_sets": list(self.eval_sets),
            "threshold": self.threshold,
            "total_rows": self.total_rows,
            "heldout_split": self.heldout_split,
            "near_duplicate_encoder": self.near_duplicate_encoder,
            "lexical_threshold": self.lexical_threshold,
            "sources": [s.to_dict() for s in self.sources],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MixtureSpec:
        """Inverse of :meth:`to_dict` for built-in sources (custom loaders are code, not data).

        Example:
            >>> MixtureSpec.from_dict({"sources": [{"name": "alpaca_eval"}], "seed": 3}).seed
            3
        """
        sources = []
        for s in d["sources"]:
            s = dict(s)
            if s.pop("loader", None):
                raise ValueError(
                    f"source {s.get('name')!r} needs a custom loader; build it in code"
                )
            if s.get("pairs") is not None:
                s["pairs"] = [tuple(p) for p in s["pairs"]]
            sources.append(SourceSpec(**s))
        rest = {k: v for k, v in d.items() if k != "sources"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(rest) - known)
        if unknown:
            raise ValueError(
                f"mixture {d.get('name', '?')!r}: unknown key(s) {unknown}; known {sorted(known)}"
            )
        if "eval_sets" in rest:
            rest["eval_sets"] = tuple(rest["eval_sets"])
        return cls(sources=sources, **rest)


# ------------------------------------------------------------------------ steps
FILTER_KEYS = (
    "models",
    "exclude_models",
    "source_prefixes",
    "kinds",
    "hash_fraction",
    "strip_shared_prefix",
)
HASH_FILTER_KEYS = ("fraction", "salt")


def _check_hash_filter(source: str, value: Any) -> None:
    where = f"source {source!r}: filter hash_fraction"
    if not isinstance(value, Mapping) or set(value) != set(HASH_FILTER_KEYS):
        raise ValueError(f"{where} must be {{'fraction': F, 'salt': S}}, got {value!r}")
    fraction, salt = value["fraction"], value["salt"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"{where}: fraction must be a number in [0, 1], got {fraction!r}")
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"{where}: fraction must be in [0, 1], got {fraction!r}")
    if not isinstance(salt, str) or not salt:
        raise ValueError(f"{where}: salt must be a non-empty string, got {salt!r}")


def _hash_keep(prompts: np.ndarray, fraction: float, salt: str) -> np.ndarray:
    return np.array([hash_fraction(str(p), salt) < fraction for p in prompts], dtype=bool)


def apply_filters(
    data: TrainingData, filters: Mapping[str, Any], table: ModelTable | None = None
) -> TrainingData:
    """Keep rows matching every filter.

    * ``models``: battles whose two models are both listed; outcomes of listed models (any alias);
    * ``exclude_models``: drop battles involving, and outcomes of, these models;
    * ``source_prefixes``: rows whose ``source`` starts with one of the prefixes;
    * ``kinds``: outcomes of these kinds (``"correct"``, ``"grade"``);
    * ``hash_fraction``: ``{"fraction": F, "salt": S}`` keeps the rows whose prompt has
      :func:`~routellm_jax.data.hashing.hash_fraction` ``(prompt, S) < F``, a seeded part that
      depends only on the prompt text (all of a prompt's rows stay or go together);
    * ``strip_shared_prefix``: ``True`` keeps every row and rewrites its prompt: the few-shot
      demonstrations every prompt of its ``source`` (one benchmark file) begins with are removed
      (:func:`~routellm_jax.data.sources.correctness.strip_shared_prefixes`), so that the rows
      carry their questions. Applied last, after ``hash_fraction``, whose seeded part is of the
      file's own text.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> d = TrainingData.of(outcomes=OutcomeTable.from_records(
        ...     [Outcome("q", "gpt-4-1106-preview", 1.0), Outcome("q", "claude-2.1", 0.0)]))
        >>> len(apply_filters(d, {"models": ["gpt4_1106_preview"]}).outcomes)
        1
    """
    comps, outs = data.comparisons, data.outcomes
    if "models" in filters:
        table = default_table() if table is None else table
        keep = {table.canonical(m, where="mixture filter 'models'") for m in filters["models"]}
        comps = comps.take(
            pd.Series(comps.model_a).isin(keep).to_numpy()
            & pd.Series(comps.model_b).isin(keep).to_numpy()
        )
        outs = outs.take(pd.Series(outs.model).isin(keep).to_numpy())
    if "exclude_models" in filters:
        table = default_table() if table is None else table
        drop = [
            table.canonical(m, where="mixture filter 'exclude_models'")
            for m in filters["exclude_models"]
        ]
        comps = comps.take(
            ~(
                pd.Series(comps.model_a).isin(drop).to_numpy()
                | pd.Series(comps.model_b).isin(drop).to_numpy()
            )
        )
        outs = outs.take(~pd.Series(outs.model).isin(drop).to_numpy())
    if "source_prefixes" in filters:
        prefixes = tuple(filters["source_prefixes"])
        comps = comps.take(np.array([s.startswith(prefixes) for s in comps.source], dtype=bool))
        outs = outs.take(np.array([s.startswith(prefixes) for s in outs.source], dtype=bool))
    if "kinds" in filters:
        outs = outs.take(pd.Series(outs.kind).isin(list(filters["kinds"])).to_numpy())
    if "hash_fraction" in filters:
        fraction = float(filters["hash_fraction"]["fraction"])
        salt = str(filters["hash_fraction"]["salt"])
        comps = comps.take(_hash_keep(comps.prompt, fraction, salt))
        outs = outs.take(_hash_keep(outs.prompt, fraction, salt))
    if filters.get("strip_shared_prefix", False):
        comps, outs = strip_shared_prefixes(comps), strip_shared_prefixes(outs)
    return TrainingData(comps, outs)


def load_source(
    source: SourceSpec,
    data_root: str | os.PathLike[str] | None = None,
    *,
    table: ModelTable | None = None,
    report: ReadReport | None = None,
) -> TrainingData:
    """Steps 1-2 of a source (see the module docstring): load, then apply its ``filters``.

    ``report`` collects the built-in readers' skipped-row counts.

    Example:
        >>> spec = SourceSpec("t", loader=lambda root: TrainingData.of(
        ...     comparisons=ComparisonTable.from_records([])))
        >>> len(load_source(spec, ".").comparisons)
        0
    """
    root = Path(data_root or ".") if source.loader is not None else data_dir(data_root)
    return apply_filters(_load(source, root, report), source.filters, table)


def _load(source: SourceSpec, root: Path, report: ReadReport | None) -> TrainingData:
    if source.loader is not None:
        return source.loader(root)
    return BUILTIN_SOURCES[source.name](root, report=report, **dict(source.options))


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _sample_index(n_units: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """``target`` unit indices: without replacement up to ``n_units``, whole repeats beyond."""
    if n_units == 0 or target == 0:
        return np.zeros(0, dtype=np.int64)
    full, rest = divmod(target, n_units)
    parts = [np.arange(n_units)] * full
    if rest:
        parts.append(np.sort(rng.choice(n_units, size=rest, replace=False)))
    return np.concatenate(parts)


def _units(data: TrainingData) -> int:
    return len(data.comparisons) + len(set(data.outcomes.prompt.tolist()))


def _sample(data: TrainingData, target: int, rng: np.random.Generator) -> TrainingData:
    """Sample ``target`` units over comparisons (rows) and outcomes (prompts), proportionally."""
    n_c = len(data.comparisons)
    codes, uniques = pd.factorize(pd.Series(data.outcomes.prompt, dtype=object))
    n_p = len(uniques)
    total = n_c + n_p
    if total == 0:
        return data
    t_c = int(round(target * n_c / total))
    t_p = target - t_c
    comps = data.comparisons.take(_sample_index(n_c, t_c, rng))
    chosen = _sample_index(n_p, t_p, rng)
    # All outcome rows of each chosen prompt, repeated as often as the prompt was chosen.
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_p))
    ends = np.searchsorted(codes[order], np.arange(n_p), side="right")
    rows = (
        np.concatenate([order[starts[p] : ends[p]] for p in chosen.tolist()])
        if len(chosen)
        else np.zeros(0, dtype=np.int64)
    )
    return TrainingData(comps, data.outcomes.take(rows))


def _counts(data: TrainingData) -> dict[str, int]:
    # A Python set: str hashes are cached, so repeated counts over the same prompts are cheap.
    prompts = set(data.comparisons.prompt.tolist()) | set(data.outcomes.prompt.tolist())
    return {
        "comparisons": len(data.comparisons),
        "outcomes": len(data.outcomes),
        "prompts": len(prompts),
    }


def mixture_eval_sets(
    spec: MixtureSpec,
    data_root: str | os.PathLike[str] | None = None,
    eval_prompts: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """The evaluation sets :func:`build_mixture` removes from ``spec``'s sources: ``eval_prompts``
    when given, else the standard sets that ``spec.eval_sets`` names; then the held-out prompts of
    ``spec.heldout_split`` under the names not given already.

    Example:
        >>> mixture_eval_sets(MixtureSpec([SourceSpec("alpaca_eval")]), eval_prompts={"x": ["q"]})
        {'x': ['q']}
    """
    return _eval_sets(spec, data_root, eval_prompts)[0]


def _eval_sets(
    spec: MixtureSpec,
    data_root: str | os.PathLike[str] | None,
    eval_prompts: Mapping[str, Sequence[str]] | None,
) -> tuple[dict[str, list[str]], dict[str, Any] | None]:
    """:func:`mixture_eval_sets` and the data card's ``heldout_split`` entry (None without one)."""
    if eval_prompts is None:
        names = tuple(spec.eval_sets)
        eval_prompts = standard_eval_sets(data_dir(data_root), names=names) if names else {}
    sets = {k: list(v) for k, v in eval_prompts.items()}
    if not spec.heldout_split:
        return sets, None
    # Added even when the caller gave eval_prompts: a spec that names a held-out split never
    # trains on it (sets the caller already passed under the same name are kept). Appended after
    # the other sets: a prompt in two sets is counted under the first, so the split only adds
    # removals and never moves ones the other sets already count.
    from routellm_jax.data.judge_split import heldout_eval_sets, resolve_split_path

    held = heldout_eval_sets(data_dir(data_root), spec.heldout_split)
    sets.update({k: list(v) for k, v in held.items() if k not in sets})
    split_path = resolve_split_path(spec.heldout_split)
    card = {
        "file": str(spec.heldout_split),
        "sha256": hashlib.sha256(split_path.read_bytes()).hexdigest(),
        "prompts": {k: len(v) for k, v in held.items()},
    }
    return sets, card


def build_mixture(
    spec: MixtureSpec,
    *,
    data_root: str | os.PathLike[str] | None = None,
    embed_fn: EmbedFn | None = None,
    embedder_name: str | None = None,
    eval_prompts: Mapping[str, Sequence[str]] | None = None,
    table: ModelTable | None = None,
) -> tuple[TrainingData, dict[str, Any]]:
    """Build the mixture; return ``(TrainingData, data card dict)``.

    ``eval_prompts`` overrides the evaluation sets read from the data folder
    (:func:`~routellm_jax.data.decontaminate.standard_eval_sets` of ``spec.eval_sets``, plus the
    held-out prompts of ``spec.heldout_split``: ``judge_split.heldout_eval_sets``).
    ``embed_fn`` gives the vectors of ``spec.near_duplicate_encoder`` (required when the spec
    declares one); without a declared encoder an ``embed_fn`` is still used, and without either
    only exact duplicates are removed, and the card says so.
    """
    table = default_table() if table is None else table
    if spec.near_duplicate_encoder and embed_fn is None:
        raise ValueError(
            f"mixture {spec.name!r} declares near_duplicate_encoder="
            f"{spec.near_duplicate_encoder!r}: pass that encoder's vectors as embed_fn "
            "(the trainer's data preparation does)"
        )
    embedder_name = embedder_name or spec.near_duplicate_encoder
    needs_root = (
        any(s.loader is None for s in spec.sources)
        or eval_prompts is None
        or bool(spec.heldout_split)
    )
    root = data_dir(data_root) if needs_root else Path(data_root or ".")
    eval_prompts, heldout_card = _eval_sets(spec, data_root, eval_prompts)
    eval_index = EvalIndex.build(eval_prompts, embed_fn) if eval_prompts else None

    # Load, filter, decontaminate every source first: proportional targets need the counts.
    stages = []
    for s in spec.sources:
        report = ReadReport()
        data = _load(s, root, report)
        entry: dict[str, Any] = {"name": s.name, "spec": s.to_dict(), "loaded": _counts(data)}
        if report.files:
            entry["read_report"] = _relative_report(report.to_dict(), root)
        data = apply_filters(data, s.filters, table)
        entry["after_filters"] = _counts(data)
        if s.to_comparisons and len(data.outcomes):
            battles = outcomes_to_comparisons(data.outcomes, tie_band=s.tie_band, pairs=s.pairs)
            data = TrainingData(
                ComparisonTable.concat([data.comparisons, battles]), OutcomeTable.empty()
            )
            entry["after_to_comparisons"] = _counts(data)
        if s.decontaminate and eval_prompts:
            data, rep = decontaminate(data, eval_index, embed_fn=embed_fn, threshold=spec.threshold)
            entry["decontamination"] = rep.to_dict()
        else:
            entry["decontamination"] = None
        entry["after_decontamination"] = _counts(data)
        stages.append((s, data, entry))

    if spec.total_rows is not None:
        weights = np.array([1.0 if s.weight is None else s.weight for s, _, _ in stages])
        if weights.sum() <= 0:
            raise ValueError("with total_rows, at least one source needs a positive weight")
        raw = spec.total_rows * weights / weights.sum()
        targets = np.floor(raw).astype(int)
        # Largest remainders get the leftover rows, ties by spec order: deterministic.
        leftover = spec.total_rows - int(targets.sum())
        targets[np.argsort(-(raw - targets), kind="stable")[:leftover]] += 1
    else:
        targets = []
        for s, data, _ in stages:
            units = _units(data)
            if s.rows is not None:
                targets.append(s.rows)
            elif s.weight is not None:
                targets.append(int(round(s.weight * units)))
            else:
                targets.append(units)
    comps, outs, card_sources = [], [], []
    for (s, data, entry), target in zip(stages, targets):
        if int(target) != _units(data):
            data = _sample(data, int(target), _rng(spec.seed, s.name))
        entry["sampled_units"] = int(target)
        entry["final"] = _counts(data)
        comps.append(data.comparisons)
        outs.append(data.outcomes)
        card_sources.append(entry)
    result = TrainingData(ComparisonTable.concat(comps), OutcomeTable.concat(outs))
    removed: dict[str, int] = {}
    for e in card_sources:
        for reason, n in ((e["decontamination"] or {}).get("removed") or {}).items():
            removed[reason] = removed.get(reason, 0) + n
    lexical = None
    if spec.lexical_threshold is not None and eval_prompts:
        exempt = set()
        for s, data, _ in stages:
            if not s.decontaminate:
                exempt |= set(data.comparisons.prompt.tolist()) | set(data.outcomes.prompt.tolist())
        result, lexical = _lexical_pass(result, eval_prompts, exempt, spec.lexical_threshold)
        for reason, n in lexical["removed"].items():
            removed[f"lexical_{reason}"] = removed.get(f"lexical_{reason}", 0) + n
    card = {
        "card_version": CARD_VERSION,
        "name": spec.name,
        "seed": spec.seed,
        "spec": spec.to_dict(),
        "model_table_version": table.version,
        "decontamination": {
            "eval_sets": {k: len(v) for k, v in eval_prompts.items()},
            "threshold": spec.threshold if embed_fn is not None else None,
            "near_duplicates_checked": embed_fn is not None,
            "embedder": embedder_name,
            "removed_rows": removed,
            "heldout_split": heldout_card,
            "lexical_threshold": spec.lexical_threshold,
            "lexical_pass": lexical,
        },
        "sources": card_sources,
        "totals": _counts(result),
        "models": sorted(set(result.comparisons.models()) | set(result.outcomes.models())),
    }
    return result, card


def _relative_report(report: dict[str, Any], root: Path) -> dict[str, Any]:
    """A read report with file paths relative to the data folder: a card names no machine's
    folders (``data_root`` is where the reader keeps the shared data)."""
    prefixes = sorted({f"{root}{os.sep}", f"{root.resolve()}{os.sep}"}, key=len, reverse=True)

    def rel(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    out = dict(report)
    out["files"] = [rel(f) for f in report.get("files", [])]
    out["examples"] = [rel(e) for e in report.get("examples", [])]
    return out


def _lexical_pass(
    data: TrainingData,
    eval_prompts: Mapping[str, Sequence[str]],
    exempt: set[str],
    threshold: float,
) -> tuple[TrainingData, dict[str, Any]]:
    """Remove rows whose hashed word uni+bigram vector is within ``threshold`` cosine of an
    evaluation prompt's, except rows whose prompt is in ``exempt`` (the prompts of sources marked
    ``decontaminate=False``). The kept decontaminated rows come first, then the exempt ones, each
    in their order; returns ``(data, report dict + exempt prompt count)``."""

    def lexical(texts: Sequence[str]) -> np.ndarray:
        return hashed_ngram_vectors(list(texts), LEXICAL_DIM)

    c_ex = np.array([p in exempt for p in data.comparisons.prompt], dtype=bool)
    o_ex = np.array([p in exempt for p in data.outcomes.prompt], dtype=bool)
    rest, report = decontaminate(
        TrainingData(data.comparisons.take(~c_ex), data.outcomes.take(~o_ex)),
        EvalIndex.build(eval_prompts, lexical),
        embed_fn=lexical,
        threshold=threshold,
    )
    kept = TrainingData(
        ComparisonTable.concat([rest.comparisons, data.comparisons.take(c_ex)]),
        OutcomeTable.concat([rest.outcomes, data.outcomes.take(o_ex)]),
    )
    return kept, {**report.to_dict(), "exempt_prompts": len(exempt)}


def save_mixture(
    data: TrainingData, card: Mapping[str, Any], out_dir: str | os.PathLike[str]
) -> epath.Path:
    """Write ``comparisons.parquet``, ``outcomes.parquet`` and ``data_card.json``; return the folder
    (a local folder or an object-store URL such as ``gs://bucket/data/mix1``, which a multi-host
    run then reads as ``data.records``).
    """
    out = location(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data.comparisons.save(out / "comparisons.parquet")
    data.outcomes.save(out / "outcomes.parquet")
    card = dict(card)
    card["files"] = {"comparisons": "comparisons.parquet", "outcomes": "outcomes.parquet"}
    write_whole(out / CARD_NAME, json.dumps(card, indent=1, sort_keys=False, default=_json_default))
    return out


def load_mixture(out_dir: str | os.PathLike[str]) -> tuple[TrainingData, dict[str, Any]]:
    """Read a folder written by :func:`save_mixture`."""
    out = Path(out_dir)
    card = json.loads((out / CARD_NAME).read_text())
    return (
        TrainingData(
            ComparisonTable.load(out / "comparisons.parquet"),
            OutcomeTable.load(out / "outcomes.parquet"),
        ),
        card,
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)
