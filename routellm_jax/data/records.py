"""The canonical records every data source converts into.

Two kinds of facts exist about how LLMs fare on prompts:

* a pairwise **comparison** (a battle): on ``prompt``, ``model_a`` beat / lost to / tied ``model_b``;
* a per-model **outcome**: on ``prompt``, ``model`` got ``score`` (0/1 correctness or a 1-10 grade).

Row objects (:class:`Comparison`, :class:`Outcome`) are for readers and tests; the columnar tables
(:class:`ComparisonTable`, :class:`OutcomeTable`) are what the rest of the package passes around and
what is stored on disk (parquet, so a 100k-row file loads in well under a second).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from routellm_jax.paths import location, write_whole

# Outcome codes of a comparison, from model_a's point of view.
OUTCOME_A = 0  # model_a won
OUTCOME_B = 1  # model_b won
OUTCOME_TIE = 2
OUTCOME_NAMES = ("a", "b", "tie")
_OUTCOME_CODE = {name: code for code, name in enumerate(OUTCOME_NAMES)}


def outcome_code(outcome: str | int) -> int:
    """Map ``"a" | "b" | "tie"`` (or an already-coded int) to its code.

    Example:
        >>> outcome_code("tie")
        2
    """
    if isinstance(outcome, (int, np.integer)):
        if int(outcome) not in (OUTCOME_A, OUTCOME_B, OUTCOME_TIE):
            raise ValueError(f"outcome code must be 0, 1 or 2, got {outcome}")
        return int(outcome)
    try:
        return _OUTCOME_CODE[outcome]
    except KeyError:
        raise ValueError(f"outcome must be one of {OUTCOME_NAMES}, got {outcome!r}") from None


@dataclass(frozen=True)
class Comparison:
    """One battle. ``prompt`` is the text a router sees (the first user turn)."""

    prompt: str
    model_a: str
    model_b: str
    outcome: str  # "a" | "b" | "tie"
    weight: float = 1.0
    source: str = ""
    turns: tuple[str, ...] = ()  # all user turns, when the source has them


@dataclass(frozen=True)
class Outcome:
    """One model's result on one prompt."""

    prompt: str
    model: str
    score: float  # 0/1 for correctness, the grade for graded sources
    source: str = ""
    kind: str = "correct"  # "correct" | "grade"


def _str_array(values: Iterable[str]) -> np.ndarray:
    values = list(values)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


@dataclass(frozen=True)
class ComparisonTable:
    """Columnar battles. All columns have the same length.

    Example:
        >>> t = ComparisonTable.from_records([Comparison("hi", "gpt-4", "mixtral", "a")])
        >>> len(t), t.outcome.tolist()
        (1, [0])
    """

    prompt: np.ndarray  # [n] object (str)
    model_a: np.ndarray  # [n] object (str), canonical model names
    model_b: np.ndarray  # [n] object (str)
    outcome: np.ndarray  # [n] int8, OUTCOME_A / OUTCOME_B / OUTCOME_TIE
    weight: np.ndarray  # [n] float32
    source: np.ndarray  # [n] object (str)

    def __post_init__(self) -> None:
        n = len(self.prompt)
        for f in dataclasses.fields(self):
            col = getattr(self, f.name)
            if len(col) != n:
                raise ValueError(f"column {f.name} has {len(col)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.prompt)

    @classmethod
    def empty(cls) -> ComparisonTable:
        return cls.from_records([])

    @classmethod
    def from_records(cls, rows: Iterable[Comparison]) -> ComparisonTable:
        rows = list(rows)
        return cls(
            prompt=_str_array([r.prompt for r in rows]),
            model_a=_str_array([r.model_a for r in rows]),
            model_b=_str_array([r.model_b for r in rows]),
            outcome=np.array([outcome_code(r.outcome) for r in rows], dtype=np.int8),
            weight=np.array([r.weight for r in rows], dtype=np.float32),
            source=_str_array([r.source for r in rows]),
        )

    def to_records(self) -> list[Comparison]:
        return [
            Comparison(p, a, b, OUTCOME_NAMES[int(o)], float(w), s)
            for p, a, b, o, w, s in zip(
                self.prompt, self.model_a, self.model_b, self.outcome, self.weight, self.source
            )
        ]

    def take(self, index: np.ndarray | Sequence[int]) -> ComparisonTable:
        """Rows at ``index`` (an int index array or a boolean mask)."""
        index = np.asarray(index)
        return ComparisonTable(
            **{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)}
        )

    @staticmethod
    def concat(tables: Sequence[ComparisonTable]) -> ComparisonTable:
        if not tables:
            return ComparisonTable.empty()
        return ComparisonTable(
            **{
                f.name: np.concatenate([getattr(t, f.name) for t in tables])
                for f in dataclasses.fields(ComparisonTable)
            }
        )

    def models(self) -> list[str]:
        """Sorted distinct model names appearing on either side."""
        return sorted(set(self.model_a.tolist()) | set(self.model_b.tolist()))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as parquet (atomically: a temp file renamed into place)."""
        _save_parquet(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ComparisonTable:
        cols = _load_parquet(path, [f.name for f in dataclasses.fields(cls)])
        cols["outcome"] = cols["outcome"].astype(np.int8)
        cols["weight"] = cols["weight"].astype(np.float32)
        return cls(**cols)


@dataclass(frozen=True)
class OutcomeTable:
    """Columnar per-model outcomes.

    Example:
        >>> t = OutcomeTable.from_records([Outcome("2+2?", "gpt-4", 1.0)])
        >>> t.pivot()[1]
        ['gpt-4']
    """

    prompt: np.ndarray  # [n] object (str)
    model: np.ndarray  # [n] object (str), canonical model names
    score: np.ndarray  # [n] float32
    source: np.ndarray  # [n] object (str)
    kind: np.ndarray  # [n] object (str): "correct" | "grade"

    def __post_init__(self) -> None:
        n = len(self.prompt)
        for f in dataclasses.fields(self):
            col = getattr(self, f.name)
            if len(col) != n:
                raise ValueError(f"column {f.name} has {len(col)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.prompt)

    @classmethod
    def empty(cls) -> OutcomeTable:
        return cls.from_records([])

    @classmethod
    def from_records(cls, rows: Iterable[Outcome]) -> OutcomeTable:
        rows = list(rows)
        return cls(
            prompt=_str_array([r.prompt for r in rows]),
            model=_str_array([r.model for r in rows]),
            score=np.array([r.score for r in rows], dtype=np.float32),
            source=_str_array([r.source for r in rows]),
            kind=_str_array([r.kind for r in rows]),
        )

    def to_records(self) -> list[Outcome]:
        return [
            Outcome(p, m, float(s), src, k)
            for p, m, s, src, k in zip(self.prompt, self.model, self.score, self.source, self.kind)
        ]

    def take(self, index: np.ndarray | Sequence[int]) -> OutcomeTable:
        index = np.asarray(index)
        return OutcomeTable(
            **{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)}
        )

    @staticmethod
    def concat(tables: Sequence[OutcomeTable]) -> OutcomeTable:
        if not tables:
            return OutcomeTable.empty()
        return OutcomeTable(
            **{
                f.name: np.concatenate([getattr(t, f.name) for t in tables])
                for f in dataclasses.fields(OutcomeTable)
            }
        )

    def models(self) -> list[str]:
        return sorted(set(self.model.tolist()))

    def pivot(self) -> tuple[list[str], list[str], np.ndarray]:
        """Return ``(prompts, models, scores[n_prompts, n_models])``; NaN where missing.

        Prompts keep first-appearance order; models are sorted. A (prompt, model) pair seen
        twice keeps the mean score.
        """
        prompts = list(dict.fromkeys(self.prompt.tolist()))
        models = self.models()
        p_index = {p: i for i, p in enumerate(prompts)}
        m_index = {m: j for j, m in enumerate(models)}
        total = np.zeros((len(prompts), len(models)), dtype=np.float64)
        count = np.zeros_like(total)
        rows = np.fromiter((p_index[p] for p in self.prompt), dtype=np.int64, count=len(self))
        cols = np.fromiter((m_index[m] for m in self.model), dtype=np.int64, count=len(self))
        np.add.at(total, (rows, cols), self.score.astype(np.float64))
        np.add.at(count, (rows, cols), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return prompts, models, scores

    def save(self, path: str | os.PathLike[str]) -> None:
        _save_parquet(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OutcomeTable:
        cols = _load_parquet(path, [f.name for f in dataclasses.fields(cls)])
        cols["score"] = cols["score"].astype(np.float32)
        return cls(**cols)


def _save_parquet(table: ComparisonTable | OutcomeTable, path: str | os.PathLike[str]) -> None:

    path = location(path)  # a local file or an object-store URL, written the same way
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for f in dataclasses.fields(table):
        col = getattr(table, f.name)
        arrays[f.name] = pa.array(col.tolist() if col.dtype == object else col)
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer)
    write_whole(path, buffer.getvalue())


def _load_parquet(path: str | os.PathLike[str], columns: list[str]) -> dict[str, np.ndarray]:

    try:
        with location(path).open("rb") as f:  # a local file or an object-store URL
            table = pq.read_table(f)
    except Exception as err:  # pyarrow raises several types for truncated/corrupt files
        raise ValueError(f"{path}: not a readable parquet records file ({err})") from err
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    out = {}
    for c in columns:
        col = table.column(c)
        if str(col.type) in ("string", "large_string"):
            out[c] = _str_array(col.to_pylist())
        else:
            out[c] = col.to_numpy()
    return out


@dataclass(frozen=True)
class TrainingData:
    """What a training mixture yields and what ``Architecture.examples_from_records`` reads:
    battles and per-model outcomes (either may be empty; each architecture uses what it can)."""

    comparisons: ComparisonTable
    outcomes: OutcomeTable

    @classmethod
    def of(
        cls, comparisons: ComparisonTable | None = None, outcomes: OutcomeTable | None = None
    ) -> TrainingData:
        """Example: ``TrainingData.of(comparisons=table)``."""
        return cls(
            comparisons if comparisons is not None else ComparisonTable.empty(),
            outcomes if outcomes is not None else OutcomeTable.empty(),
        )
