"""Benchmarks: prompts with the strong and the weak model's score on each.

A :class:`Benchmark` is all the metrics need: ``prompts [n]``, ``strong_scores [n]``,
``weak_scores [n]`` (0/1 correctness or a grade), plus names and metadata (source, decontamination
counts, golden split). Builders:

* :func:`mmlu_benchmark` (14,037 rows; 12,537 with ``exclude_golden=True``),
* :func:`gsm8k_benchmark` (1,307),
* :func:`mt_bench_benchmark` (72 questions; grades averaged over both turns, ``-1`` dropped, routed
  on the first turn; the strong/weak pair is taken from the judgment file given),
* :func:`benchmark_from_outcomes`: any :class:`OutcomeTable` + a strong/weak pair,
* :func:`load_benchmark`: the CLI's ``mmlu | gsm8k | mt-bench | <outcome file>``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.data.hashing import hash_fraction
from routellm_jax.data.records import OutcomeTable, _str_array
from routellm_jax.data.sources import routellm_evals as rev
from routellm_jax.eval import golden


@dataclass(frozen=True)
class Benchmark:
    """Per-prompt scores of a strong and a weak model.

    Example:
        >>> b = Benchmark("toy", np.array(["a", "b"], dtype=object), np.array([1.0, 1.0]),
        ...               np.array([0.0, 1.0]), "gpt-4", "mixtral")
        >>> len(b), b.strong_quality, b.weak_quality
        (2, 1.0, 0.5)
    """

    name: str
    prompts: np.ndarray  # [n] object (str): what a router sees
    strong_scores: np.ndarray  # [n] float64
    weak_scores: np.ndarray  # [n] float64
    strong_model: str
    weak_model: str
    kind: str = "correct"  # "correct" (0/1) | "grade"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if len(self.strong_scores) != n or len(self.weak_scores) != n:
            raise ValueError(
                f"benchmark {self.name!r}: {n} prompts, {len(self.strong_scores)} strong and "
                f"{len(self.weak_scores)} weak scores"
            )
        if n == 0:
            raise ValueError(f"benchmark {self.name!r} has no prompts")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def strong_quality(self) -> float:
        """Mean score of the strong model."""
        return float(np.mean(self.strong_scores))

    @property
    def weak_quality(self) -> float:
        """Mean score of the weak model."""
        return float(np.mean(self.weak_scores))

    def quality(self, to_strong: np.ndarray) -> float:
        """Mean score when the prompts in the boolean mask go to the strong model.

        Example: ``b.quality(np.ones(len(b), bool)) == b.strong_quality``.
        """
        to_strong = np.asarray(to_strong, dtype=bool)
        return float(np.where(to_strong, self.strong_scores, self.weak_scores).mean())

    def take(self, index: np.ndarray, **metadata) -> Benchmark:
        """The benchmark restricted to ``index`` (int indices or boolean mask); extra keyword
        arguments are added to the metadata.

        Example: ``b.take(np.array([0]), note="first only")``.
        """
        index = np.asarray(index)
        return dataclasses.replace(
            self,
            prompts=self.prompts[index],
            strong_scores=self.strong_scores[index],
            weak_scores=self.weak_scores[index],
            metadata={**self.metadata, **metadata},
        )

    def without_golden(self) -> Benchmark:
        """Drop the prompts of the MMLU golden split (sha256 of the prompt text in the committed
        list) and record it in the metadata.

        Example: ``mmlu_benchmark().without_golden()`` has 12,537 prompts.
        """
        ids = golden.golden_split_ids()
        keep = np.fromiter(
            (golden.prompt_id(p) not in ids for p in self.prompts), dtype=bool, count=len(self)
        )
        return self.take(
            keep,
            golden_split_excluded=True,
            golden_split_removed=int((~keep).sum()),
            golden_split_file="routellm_jax/resources/" + golden.GOLDEN_RESOURCE,
            golden_split_seed=golden.GOLDEN_SEED,
        )

    def summary(self) -> dict:
        """Counts and qualities, for reports. Example: ``b.summary()["n"]``."""
        return {
            "name": self.name,
            "n": len(self),
            "kind": self.kind,
            "strong_model": self.strong_model,
            "weak_model": self.weak_model,
            "strong_quality": self.strong_quality,
            "weak_quality": self.weak_quality,
            **self.metadata,
        }


def benchmark_from_outcomes(
    table: OutcomeTable,
    strong: str,
    weak: str,
    *,
    name: str = "custom",
    duplicates: str = "pair",
    metadata: dict | None = None,
) -> Benchmark:
    """Build a benchmark from any outcome table and a strong/weak pair.

    Prompts keep first-appearance order. A prompt of the table not scored for both models is left
    out and counted in ``metadata["prompts_missing_a_model"]``. A prompt that appears several times
    per model: ``duplicates="pair"`` keeps each occurrence as its own benchmark row, the k-th strong
    outcome with the k-th weak outcome (MMLU repeats some question texts), and fails if the counts
    differ; ``duplicates="mean"`` averages them into one row.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> t = OutcomeTable.from_records([Outcome("q", "s", 1.0), Outcome("q", "w", 0.0)])
        >>> benchmark_from_outcomes(t, "s", "w").strong_scores.tolist()
        [1.0]
    """
    if duplicates not in ("pair", "mean"):
        raise ValueError(f"duplicates must be 'pair' or 'mean', got {duplicates!r}")
    models = set(table.models())
    # Accept any spelling the model table knows (tables carry canonical names).
    strong = strong if strong in models else rev.canonical_model(strong)
    weak = weak if weak in models else rev.canonical_model(weak)
    if strong == weak:
        raise ValueError(f"strong and weak model are the same: {strong!r}")
    for role, m in (("strong", strong), ("weak", weak)):
        if m not in models:
            raise ValueError(
                f"{role} model {m!r} not in the outcome table (models: {sorted(models)})"
            )
    per: dict[str, tuple[list[float], list[float]]] = {}
    for p, m, s in zip(table.prompt, table.model, table.score):
        if m == strong:
            per.setdefault(p, ([], []))[0].append(float(s))
        elif m == weak:
            per.setdefault(p, ([], []))[1].append(float(s))
    prompts, strong_scores, weak_scores = [], [], []
    missing = 0
    for p, (ss, ws) in per.items():
        if not ss or not ws:
            missing += 1
            continue
        if duplicates == "mean":
            prompts.append(p)
            strong_scores.append(float(np.mean(ss)))
            weak_scores.append(float(np.mean(ws)))
            continue
        if len(ss) != len(ws):
            raise ValueError(
                f"prompt {p[:80]!r}: {len(ss)} outcomes for {strong!r} but {len(ws)} for "
                f"{weak!r} (use duplicates='mean' to average)"
            )
        prompts.extend([p] * len(ss))
        strong_scores.extend(ss)
        weak_scores.extend(ws)
    # Prompts of the table scored for neither model count as missing too.
    missing += len(set(table.prompt.tolist())) - len(per)
    both = np.concatenate([strong_scores, weak_scores]) if prompts else np.array([])
    kinds = set(table.kind[np.isin(table.model, [strong, weak])].tolist())
    kind = "correct" if kinds == {"correct"} and np.isin(both, (0.0, 1.0)).all() else "grade"
    prompt_arr = np.empty(len(prompts), dtype=object)
    prompt_arr[:] = prompts
    return Benchmark(
        name=name,
        prompts=prompt_arr,
        strong_scores=np.asarray(strong_scores, dtype=np.float64),
        weak_scores=np.asarray(weak_scores, dtype=np.float64),
        strong_model=strong,
        weak_model=weak,
        kind=kind,
        metadata={"prompts_missing_a_model": missing, **(metadata or {})},
    )


def _decontaminated(
    table: OutcomeTable, list_path: Path, rows_per_prompt: int
) -> tuple[OutcomeTable, dict]:
    contaminated = rev.read_contaminated_prompts(list_path)
    kept, removed = rev.drop_prompts(table, contaminated)
    info = {
        "rows_before_decontamination": len(table) // rows_per_prompt,
        "removed_by_decontamination": removed // rows_per_prompt,
        "decontamination_list": str(list_path),
    }
    return kept, info


def _correctness_benchmark(
    name: str,
    table: OutcomeTable,
    list_path: Path,
    strong: str,
    weak: str,
    decontaminate: bool,
    exclude_golden: bool,
) -> Benchmark:
    meta: dict = {"source": f"lm-sys/RouteLLM routellm/evals/{name}", "decontaminated": False}
    if decontaminate:
        table, info = _decontaminated(table, list_path, rows_per_prompt=2)
        meta.update(info, decontaminated=True)
    bench = benchmark_from_outcomes(table, strong, weak, name=name, metadata=meta)
    return bench.without_golden() if exclude_golden else bench


def mmlu_benchmark(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    exclude_golden: bool = False,
    decontaminate: bool = True,
) -> Benchmark:
    """MMLU (5-shot correctness of gpt-4-1106-preview vs Mixtral-8x7B): 14,037 prompts after
    decontamination, 12,537 without the golden split.
    """
    evals = rev.evals_dir(data_dir)
    table = rev.read_mmlu(evals, decontaminate=False)
    return _correctness_benchmark(
        "mmlu",
        table,
        evals / "mmlu" / "contaminated_prompts.jsonl",
        rev.STRONG_MODEL,
        rev.WEAK_MODEL,
        decontaminate,
        exclude_golden,
    )


# ``mmlu-10pct``: a seeded tenth of the 12,537 non-golden MMLU questions (1,225), for routers too
# slow to score all of them on a CPU (the fine-tuned bert / causal_llm). A prompt is in it when
# its hash_fraction with this salt is below this fraction, so membership depends only on the
# prompt text; the same subset experiments/run_grid.py scored for its CPU budget until its MMLU
# embeddings were all cached (same salt and fraction).
MMLU_SUBSET_FRACTION = 0.1
MMLU_SUBSET_SALT = "mmlu_eval"


def hash_subset(bench: Benchmark, fraction: float, salt: str) -> Benchmark:
    """The prompts with ``hash_fraction(prompt, salt) < fraction`` (recorded in the metadata).

    Example:
        >>> bench = Benchmark("toy", np.array([f"q{i}" for i in range(100)], dtype=object),
        ...                   np.ones(100), np.zeros(100), "gpt-4", "mixtral")
        >>> sub = hash_subset(bench, 0.1, "mmlu_eval")  # the same prompts on every machine
        >>> len(sub), sub.metadata
        (12, {'hash_subsample_fraction': 0.1, 'hash_subsample_salt': 'mmlu_eval'})
    """
    keep = np.array([hash_fraction(str(p), salt) < fraction for p in bench.prompts], dtype=bool)
    return bench.take(keep, hash_subsample_fraction=fraction, hash_subsample_salt=salt)


def mmlu_subset_benchmark(data_dir: str | os.PathLike[str] | None = None) -> Benchmark:
    """``mmlu-10pct``: the non-golden MMLU questions (golden-split rule) hash-selected with
    :data:`MMLU_SUBSET_FRACTION` / :data:`MMLU_SUBSET_SALT`.
    """
    full = mmlu_benchmark(data_dir, exclude_golden=True)
    return hash_subset(full, MMLU_SUBSET_FRACTION, MMLU_SUBSET_SALT)


def gsm8k_benchmark(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    exclude_golden: bool = False,
    decontaminate: bool = True,
) -> Benchmark:
    """GSM8K (8-shot correctness of the paper's pair): 1,307 prompts after decontamination."""
    evals = rev.evals_dir(data_dir)
    table = rev.read_gsm8k(evals, decontaminate=False)
    return _correctness_benchmark(
        "gsm8k",
        table,
        evals / "gsm8k" / "contaminated_prompts.jsonl",
        rev.STRONG_MODEL,
        rev.WEAK_MODEL,
        decontaminate,
        exclude_golden,
    )


def mt_bench_benchmark(
    judgments: str | os.PathLike[str] | None = None,
    *,
    strong: str,
    weak: str,
    data_dir: str | os.PathLike[str] | None = None,
    decontaminate: bool = True,
    exclude_golden: bool = False,
) -> Benchmark:
    """MT-Bench from a FastChat single-answer judgment file (default: the shared
    ``gpt-4_single.jsonl``, which grades the routers ``martian`` and ``unify``): per question and
    model, the mean grade over both turns with ``-1`` grades dropped; routing sees the first turn;
    72 questions after decontamination. Questions lacking a grade for either model are left out and
    counted in the metadata.
    """
    evals = rev.evals_dir(data_dir)
    if judgments is None:
        judgments = evals.parent.parent / "benchmarks" / "mt-bench" / "gpt-4_single.jsonl"
    all_questions = rev.read_mt_bench(evals, decontaminate=False)
    questions = rev.read_mt_bench(evals, decontaminate=decontaminate)
    table, drop_info = rev.judgments_to_outcomes(
        rev.read_single_judgments(judgments), questions, source="mt-bench"
    )
    meta = {
        "source": f"{judgments} + lm-sys/RouteLLM routellm/evals/mt_bench",
        "decontaminated": decontaminate,
        "rows_before_decontamination": len(all_questions),
        "removed_by_decontamination": len(all_questions) - len(questions),
        "decontamination_list": str(evals / "mt_bench" / "contaminated_prompts.jsonl"),
        "judgment_file": str(judgments),
        "failed_scores_dropped": drop_info["failed_scores_dropped"],
    }
    try:
        bench = benchmark_from_outcomes(table, strong, weak, name="mt-bench", metadata=meta)
    except ValueError as err:
        raise ValueError(f"{judgments}: {err}") from None
    bench = dataclasses.replace(bench, kind="grade")
    return bench.without_golden() if exclude_golden else bench


def read_outcome_file(path: str | os.PathLike[str]) -> OutcomeTable:
    """An outcome table from a file: parquet written by ``OutcomeTable.save``; a long CSV with
    columns ``prompt, model, score`` (optionally ``source, kind``); or a wide CSV with a ``prompt``
    column and one score column per model (RouteLLM/RouterBench CSVs, the arena-bench score
    matrix; empty cells = not scored).

    CSV cells are read as written: a prompt ``NA``, ``None`` or ``null`` is that text. In a wide
    CSV a column is a model column when every cell is a score (a number, True/False, or empty);
    ``nan``/``inf`` cells are left out like empty ones (:func:`load_benchmark` warns how many). A
    file that is empty, has no data rows, or is not UTF-8 is a ``ValueError`` naming it.
    """
    return _read_outcome_file(path)[0]


class DroppedScoresWarning(UserWarning):
    """Score cells of an outcome file left out (nan/inf); the message names the file and cell."""


_ID_COLUMNS = frozenset({"", "question_id", "sample_id", "eval_name", "id"})
_NOT_SCORE_SUFFIXES = ("_response", "|model_response", "|total_cost")
_BOOL_CELLS = frozenset({"true", "false", "1", "0", "1.0", "0.0"})


def _score_cell(raw: str) -> float | None:
    """The score in a wide-CSV cell: ``nan`` for an empty cell, ``None`` when not a score."""
    v = raw.strip()
    if not v:
        return float("nan")
    low = v.lower()
    if low in _BOOL_CELLS:
        return 1.0 if low in ("true", "1", "1.0") else 0.0
    try:
        return float(v)
    except ValueError:
        return None


def _read_csv_cells(path: Path):
    """Every cell of a CSV as the string written (no NA guessing); errors name the file."""

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file (expected a CSV header line)") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 (at byte {err.start}: {err.reason})") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from None
    if len(df) == 0:
        raise ValueError(f"{path}: no data rows after the header {list(df.columns)}")
    return df


def _read_outcome_file(path: str | os.PathLike[str]) -> tuple[OutcomeTable, dict]:
    """:func:`read_outcome_file` and, for a wide CSV, what it left out: ``non_finite``
    (canonical model -> [count, column, first row, first cell] of nan/inf cells) and ``not_models``
    (column -> (row, cell): the first cell that kept a column from being a model column)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"outcome table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return OutcomeTable.load(path), {}
    if suffix != ".csv":
        raise ValueError(f"{path}: expected a .parquet or .csv outcome table")
    df = _read_csv_cells(path)
    if {"prompt", "model", "score"} <= set(df.columns):
        scores = np.empty(len(df), dtype=np.float32)
        for i, raw in enumerate(df["score"].tolist()):
            try:
                scores[i] = float(raw)
            except ValueError:
                raise ValueError(
                    f"{path}: row {i + 1} (after the header), column 'score': not a number: {raw!r}"
                ) from None
            if not np.isfinite(scores[i]):
                raise ValueError(f"{path}: row {i + 1} (after the header), column 'score': {raw!r}")
        n = len(df)
        src = df["source"].tolist() if "source" in df else [path.stem] * n
        binary = bool(np.isin(scores, (0.0, 1.0)).all())
        kind = df["kind"].tolist() if "kind" in df else ["correct" if binary else "grade"] * n
        table = _outcome_table(df["prompt"].tolist(), df["model"].tolist(), scores, src, kind)
        return table, {}
    if "prompt" not in df.columns:
        raise ValueError(
            f"{path}: no 'prompt' column (a wide CSV needs prompt + one score column per model; "
            f"a long one prompt, model, score); columns: {list(df.columns)}"
        )
    models: list[str] = []
    info: dict = {"non_finite": {}, "not_models": {}}
    for c in df.columns:
        if (
            c == "prompt"
            or c in _ID_COLUMNS
            or c.startswith("Unnamed:")
            or c.endswith(_NOT_SCORE_SUFFIXES)
        ):
            continue
        cells = df[c].tolist()
        values = [_score_cell(raw) for raw in cells]
        bad = next((i for i, v in enumerate(values) if v is None), None)
        if bad is not None:
            info["not_models"][c] = (bad + 1, cells[bad])
            continue
        models.append(c)
        # nan/inf cells (not empty ones) are dropped like empty cells: counted for a warning.
        odd = [
            i for i, (v, raw) in enumerate(zip(values, cells)) if raw.strip() and not isfinite(v)
        ]
        if odd:
            first = odd[0]
            info["non_finite"][rev.canonical_model(c)] = [len(odd), c, first + 1, cells[first]]
    if not models:
        raise ValueError(
            f"{path}: no model columns (a model column holds only numbers, True/False or empty "
            f"cells); columns: {list(df.columns)}"
        )
    table = rev.read_correctness_csv(path, models, source=path.stem, allow_missing=True)
    return table, info


def _outcome_table(prompts, models, scores, sources, kinds) -> OutcomeTable:
    return OutcomeTable(
        prompt=_str_array(prompts),
        model=_str_array(models),
        score=np.asarray(scores, dtype=np.float32),
        source=_str_array(sources),
        kind=_str_array(kinds),
    )


BUILTIN_BENCHMARKS = ("mmlu", "gsm8k", "mt-bench", "mmlu-10pct")


def load_benchmark(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    strong: str | None = None,
    weak: str | None = None,
    exclude_golden: bool = False,
    judgments: str | os.PathLike[str] | None = None,
) -> Benchmark:
    """A benchmark by name (``mmlu``, ``gsm8k``, ``mt-bench``) or from an outcome file path.
    ``strong``/``weak`` are required for ``mt-bench`` and outcome files (for MMLU/GSM8K they must be
    left out or be the paper's pair).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "my_eval.csv"
        ...     _ = path.write_text("prompt,gpt-4,mixtral\\nhi,True,True\\nprove it,True,False\\n")
        ...     b = load_benchmark(str(path), strong="gpt-4", weak="mixtral")
        >>> b.name, len(b), b.strong_quality, b.weak_quality
        ('my_eval', 2, 1.0, 0.5)
    """
    if spec in ("mmlu", "gsm8k", "mmlu-10pct"):
        for role, given, expected in (
            ("strong", strong, rev.STRONG_MODEL),
            ("weak", weak, rev.WEAK_MODEL),
        ):
            if given is not None and rev.canonical_model(given) != expected:
                raise ValueError(f"{spec} only has the paper's pair: --{role} must be {expected!r}")
        if spec == "mmlu-10pct":  # always without the golden split
            return mmlu_subset_benchmark(data_dir)
        build = mmlu_benchmark if spec == "mmlu" else gsm8k_benchmark
        return build(data_dir, exclude_golden=exclude_golden)
    if strong is None or weak is None:
        raise ValueError(f"benchmark {spec!r} needs --strong and --weak model names")
    if spec == "mt-bench":
        return mt_bench_benchmark(
            judgments, strong=strong, weak=weak, data_dir=data_dir, exclude_golden=exclude_golden
        )
    path = Path(spec)
    if not path.exists():
        raise ValueError(
            f"unknown benchmark {spec!r}: use one of {BUILTIN_BENCHMARKS} or a path to an "
            "outcome table (.parquet/.csv)"
        )
    table, info = _read_outcome_file(path)
    known = set(table.models())
    pair = []
    for role, given in (("strong", strong), ("weak", weak)):
        name = given if given in known else rev.canonical_model(given)
        pair.append(name)
        for column, (row, cell) in info.get("not_models", {}).items():
            if name not in known and name in (column, rev.canonical_model(column)):
                # The column the user named is not a model column because of this cell.
                raise ValueError(
                    f"{path}: row {row} (after the header), column {column!r} (the {role} "
                    f"model): not a score: {cell!r} (score cells are numbers, True/False, or "
                    "empty for not scored)"
                )
    dropped = [v for m, v in info.get("non_finite", {}).items() if m in pair]
    metadata: dict = {"source": str(path)}
    if dropped:
        total = sum(v[0] for v in dropped)
        _, column, row, cell = dropped[0]
        metadata["non_finite_scores_dropped"] = total
        warnings.warn(
            f"{path}: {total} nan/inf score cell(s) of the strong/weak columns were dropped as "
            f"not scored (first: row {row} after the header, column {column!r}: {cell!r})",
            DroppedScoresWarning,
            stacklevel=2,
        )
    bench = benchmark_from_outcomes(table, strong, weak, name=path.stem, metadata=metadata)
    return bench.without_golden() if exclude_golden else bench
