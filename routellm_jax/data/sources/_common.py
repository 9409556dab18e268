"""What every reader shares: file loading, vectorised row validation, skip-bad-row reports.

Readers validate whole columns at once (pandas/numpy masks) and then either raise on the first bad
row -- naming the file, the row and the field -- or, with ``skip_bad_rows=True``, drop the bad rows,
count them in a :class:`ReadReport` and log a warning. Nothing is dropped silently.

Row numbers: ``row i`` is the 0-based position of the record in the file (CSV: data rows, header
not counted; JSON list: the list index; JSONL: also given as ``line i+1``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routellm_jax.data.model_names import ModelTable, UnknownModelError, default_table

log = logging.getLogger("routellm_jax.data.sources")

MAX_EXAMPLES = 20  # bad rows kept verbatim in a report; the counts cover all of them


class SourceFormatError(ValueError):
    """A source file does not have the expected schema; names the file, row and field."""

    def __init__(self, path: str | os.PathLike[str], row: int | None, field: str, reason: str):
        self.path, self.row, self.field, self.reason = str(path), row, field, reason
        where = str(path) if row is None else f"{path}: row {row}"
        super().__init__(f"{where}, field {field!r}: {reason}")


class SourceUnavailableError(OSError):
    """A remote source (the Hugging Face Hub) could not be reached or lacks the file."""


@dataclass
class ReadReport:
    """What a reader kept and skipped. Pass one in (``report=``) to collect it; readers also log.

    Example:
        >>> r = ReadReport()
        >>> r.n_skipped
        0
    """

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0  # input rows that produced records
    records: int = 0  # output records (a fractional preference can yield two)
    n_skipped: int = 0
    skipped_by_field: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # first MAX_EXAMPLES bad rows
    notes: dict[str, int] = field(default_factory=dict)  # e.g. {"failed_judgments_dropped": 39}

    def note(self, key: str, count: int) -> None:
        self.notes[key] = self.notes.get(key, 0) + int(count)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "records": self.records,
            "n_skipped": self.n_skipped,
            "skipped_by_field": dict(self.skipped_by_field),
            "examples": list(self.examples),
            "notes": dict(self.notes),
        }


class RowValidator:
    """Collects per-field bad-row masks over ``n`` rows, then raises or drops.

    ``check(mask, field, reason)`` records the rows where ``mask`` is True as bad; ``reason`` is a
    string or a function of the row index giving one. ``finish()`` raises on the earliest bad row
    unless ``skip_bad_rows``, and returns the boolean keep-mask.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        n: int,
        *,
        skip_bad_rows: bool,
        report: ReadReport | None,
        locate: Callable[[int], str] | None = None,
    ) -> None:
        self.path = str(path)
        self.n = n
        self.skip = skip_bad_rows
        self.report = report
        self.locate = locate or (lambda i: f"row {i}")
        self.bad = np.zeros(n, dtype=bool)
        self._checks: list[tuple[np.ndarray, str, str | Callable[[int], str], type]] = []
        self._lookup: tuple[ModelTable, str | None] | None = None
        self._names: dict[str, np.ndarray] = {}

    def check(
        self,
        mask: np.ndarray | pd.Series,
        field_name: str,
        reason: str | Callable[[int], str],
        error: type = SourceFormatError,
    ) -> None:
        mask = np.asarray(mask, dtype=bool) & ~self.bad  # report each row once, first reason
        if mask.any():
            self._checks.append((mask, field_name, reason, error))
            self.bad |= mask

    def _message(self, i: int, field_name: str, reason: str | Callable[[int], str]) -> str:
        text = reason(i) if callable(reason) else reason
        return f"{self.path}: {self.locate(i)}, field {field_name!r}: {text}"

    def finish(self) -> np.ndarray:
        if not self.bad.any():
            self._account(0)
            return ~self.bad
        if not self.skip:
            first = int(np.flatnonzero(self.bad)[0])
            for mask, field_name, reason, error in self._checks:
                if mask[first]:
                    text = reason(first) if callable(reason) else reason
                    if error is UnknownModelError:
                        table, context = self._lookup
                        where = f"{self.path}, {self.locate(first)}, field {field_name!r}"
                        table.canonical(
                            str(self._names[field_name][first]), where=where, context=context
                        )
                    err = SourceFormatError(self.path, first, field_name, text)
                    err.args = (self._message(first, field_name, reason),)
                    raise err
        n_bad = int(self.bad.sum())
        examples = []
        for mask, field_name, reason, _ in self._checks:
            if self.report is not None:
                self.report.skipped_by_field[field_name] += int(mask.sum())
            for i in np.flatnonzero(mask)[:MAX_EXAMPLES]:
                examples.append((int(i), self._message(int(i), field_name, reason)))
        examples.sort()
        log.warning(
            "%s: skipped %d bad row(s) of %d (skip_bad_rows=True); first: %s",
            self.path,
            n_bad,
            self.n,
            examples[0][1],
        )
        self._account(n_bad, [e for _, e in examples[:MAX_EXAMPLES]])
        return ~self.bad

    def _account(self, n_bad: int, examples: Sequence[str] = ()) -> None:
        if self.report is None:
            return
        self.report.files.append(self.path)
        self.report.rows_read += self.n
        self.report.rows_kept += self.n - n_bad
        self.report.n_skipped += n_bad
        room = MAX_EXAMPLES - len(self.report.examples)
        self.report.examples.extend(list(examples)[: max(room, 0)])

    def unknown_models(
        self,
        mask: np.ndarray,
        field_name: str,
        names: np.ndarray,
        table: ModelTable,
        context: str | None = None,
    ) -> None:
        """Mark rows with an unknown model name (``names[i]``) as bad. Unless skipping, the
        earliest raises :class:`UnknownModelError` (a KeyError) naming file, row and field."""
        self._lookup = (table, context)
        self._names[field_name] = names
        self.check(
            mask, field_name, lambda i: f"unknown model name {names[i]!r}", error=UnknownModelError
        )

    def models(
        self,
        values: np.ndarray | pd.Series,
        field_name: str,
        table: ModelTable,
        context: str | None = None,
    ) -> np.ndarray:
        """Canonicalise a model column; unknown / empty names become bad rows."""
        values = np.asarray(values, dtype=object)
        is_str = np.fromiter(
            (isinstance(v, str) and v.strip() != "" for v in values), bool, len(values)
        )
        self.check(
            ~is_str,
            field_name,
            lambda i: f"model name must be a non-empty string, got {values[i]!r}",
        )
        out = np.empty(len(values), dtype=object)
        out[:] = ""
        if is_str.any():
            uniq, inverse = np.unique(values[is_str].astype(str), return_inverse=True)
            resolved = np.empty(len(uniq), dtype=object)
            unknown = np.zeros(len(uniq), dtype=bool)
            for j, name in enumerate(uniq):
                try:
                    resolved[j] = table.canonical(name, context=context)
                except UnknownModelError:
                    unknown[j] = True
                    resolved[j] = ""
            idx = np.flatnonzero(is_str)
            out[idx] = resolved[inverse.reshape(-1)]
            bad = np.zeros(len(values), dtype=bool)
            bad[idx] = unknown[inverse.reshape(-1)]
            if bad.any():
                self.unknown_models(bad, field_name, values, table, context)
        return out


def resolve_table(table: ModelTable | None) -> ModelTable:
    return default_table() if table is None else table


def read_records(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load a tabular file into a DataFrame by extension: .csv/.tsv, .parquet, .jsonl, .json.

    A .json file may hold a list of objects or a pandas ``to_json`` dict of columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return _read_jsonl(path)
        if suffix == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, list):
                if not all(isinstance(r, dict) for r in data):
                    bad = next(i for i, r in enumerate(data) if not isinstance(r, dict))
                    raise SourceFormatError(path, bad, "<record>", "expected a JSON object")
                return pd.DataFrame.from_records(data)
            if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
                return pd.DataFrame(data)  # pandas to_json(orient="columns")
            raise SourceFormatError(path, None, "<file>", "expected a list of objects or columns")
    except SourceFormatError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise SourceFormatError(path, None, "<file>", f"cannot parse ({err})") from err
    raise SourceFormatError(path, None, "<file>", f"unsupported extension {suffix!r}")


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    """A CSV whose text columns hold the cells as written: pandas' NA guessing would turn a prompt
    or model name that is literally ``NA``, ``None``, ``null`` or ``nan`` into a missing value.
    Columns pandas reads as numbers or booleans keep its reading (``NA`` there is a missing
    score); in the others only empty cells are missing."""
    df = pd.read_csv(path, sep=sep)
    text = [
        i
        for i, c in enumerate(df.columns)
        # A text column, or one whose every cell pandas took for NA (e.g. prompts "NA", "null").
        if df[c].isna().all()
        or not (
            pd.api.types.is_numeric_dtype(df[c])
            or pd.api.types.is_bool_dtype(df[c])
            or pd.api.types.infer_dtype(df[c], skipna=True) == "boolean"  # True/False + empties
        )
    ]
    if text and len(df):
        raw = pd.read_csv(path, sep=sep, usecols=text, dtype=str, keep_default_na=False)
        for c in raw.columns:
            df[c] = raw[c].mask(raw[c] == "")
    return df


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise SourceFormatError(
                    path, len(rows), "<line>", f"line {lineno}: bad JSON ({err})"
                ) from err
            if not isinstance(obj, dict):
                raise SourceFormatError(
                    path, len(rows), "<line>", f"line {lineno}: expected an object"
                )
            rows.append(obj)
    return pd.DataFrame.from_records(rows)


def require_columns(df: pd.DataFrame, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SourceFormatError(
            path, None, missing[0], f"missing column(s) {missing}; found {list(df.columns)[:20]}"
        )


def nonempty_str_mask(values: pd.Series | np.ndarray) -> np.ndarray:
    """True where the value is a non-blank string."""
    s = pd.Series(values, dtype=object)
    return s.map(lambda v: isinstance(v, str) and v.strip() != "").to_numpy(dtype=bool)


def numeric(values: pd.Series | np.ndarray) -> np.ndarray:
    """Float values; NaN where not a number (bools count as numbers 0/1)."""
    s = pd.Series(values)
    if s.dtype == bool:
        return s.astype(np.float64).to_numpy()
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)


def obj_array(values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def show(value: Any) -> str:
    """A short, plain rendering of a bad value for error messages."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return "missing"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
