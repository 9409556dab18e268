"""FastChat / MT-Bench style grades -> :class:`OutcomeTable` (``kind="grade"``).

* question files (JSONL): ``question_id, category, turns`` (``turns``: the user turns);
* single-answer judgment files (JSONL): ``question_id, model, score, turn`` with score 1-10 and
  ``-1`` (or null) when the judge's output could not be parsed; ``turn`` defaults to 1.

Failed judgments (-1 / null) are dropped and counted in the report's notes
(``failed_judgments_dropped``): they are part of the format, not bad rows. The prompt of an
outcome is the question's first turn (routing happens on the first turn); ``turns="mean"``
averages the valid turn scores of a (question, model), ``turns=1`` / ``2`` keep one turn.

Also reads arena-bench-v1 (``model_judgment/*.jsonl`` + ``question.jsonl``) and the derived
300 x 15 grade matrix ``derived/arena_bench_v1_score_matrix.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.data.model_names import ModelTable
from routellm_jax.data.records import OutcomeTable
from routellm_jax.data.sources._common import (
    ReadReport,
    RowValidator,
    SourceFormatError,
    nonempty_str_mask,
    numeric,
    obj_array,
    read_records,
    require_columns,
    resolve_table,
    show,
)

ARENA_BENCH_V1 = Path("lmarena__arena-hard-auto/data/arena-bench-v1")


def _line(i: int) -> str:
    return f"record {i} (line {i + 1})"


def _qid_key(values: pd.Series) -> pd.Series:
    """Question ids as strings ("81" and 81 are the same question)."""
    return values.map(lambda q: str(int(q)) if isinstance(q, (int, np.integer)) else str(q))


def read_questions(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A FastChat question file -> ``{question_id (str): turns}``.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "question.jsonl"
        ...     row = {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]}
        ...     _ = path.write_text(json.dumps(row) + "\\n")
        ...     read_questions(path)
        {'81': ['Write a poem.', 'Shorter.']}
    """
    path = Path(path)
    df = read_records(path)
    require_columns(df, path, ["question_id", "turns"])
    qid = _qid_key(df["question_id"])
    for i, turns in enumerate(df["turns"].tolist()):
        if isinstance(turns, np.ndarray):
            turns = turns.tolist()
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise SourceFormatError(
                path, i, "turns", f"must be a non-empty list of strings, got {show(turns)}"
            )
        if not turns[0].strip():
            raise SourceFormatError(path, i, "turns", "the first turn is empty")
    dup = qid.duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise SourceFormatError(path, i, "question_id", f"duplicate question_id {qid.iloc[i]!r}")
    return {q: list(t) for q, t in zip(qid.tolist(), df["turns"].tolist())}


def _read_judgment_file(
    path: Path,
    questions: dict[str, list[str]],
    table: ModelTable,
    skip_bad_rows: bool,
    report: ReadReport | None,
) -> pd.DataFrame:
    """One judgment file -> long frame (qid, model, score, turn); failed judgments dropped."""
    df = read_records(path).reset_index(drop=True)
    require_columns(df, path, ["question_id", "model", "score"])
    v = RowValidator(path, len(df), skip_bad_rows=skip_bad_rows, report=report, locate=_line)
    qid = _qid_key(df["question_id"])
    v.check(
        ~qid.isin(list(questions)).to_numpy(),
        "question_id",
        lambda i: f"question {qid.iloc[i]!r} is not in the question file",
    )
    model = v.models(df["model"], "model", table)
    raw = df["score"]
    score = numeric(raw)
    failed = raw.isna().to_numpy() | (score == -1)
    valid = (score >= 1) & (score <= 10)
    v.check(
        ~(failed | valid),
        "score",
        lambda i: f"must be a grade 1-10 or -1 (failed), got {show(raw.iloc[i])}",
    )
    turn = numeric(df["turn"]) if "turn" in df.columns else np.ones(len(df))
    turn_given = df["turn"].notna().to_numpy() if "turn" in df.columns else np.zeros(len(df), bool)
    turn = np.where(turn_given, turn, 1.0)  # FastChat omits "turn" for single-turn judgments
    v.check(
        ~np.isin(turn, (1.0, 2.0)),
        "turn",
        lambda i: f"must be 1 or 2, got {show(df['turn'].iloc[i])}",
    )
    keep = v.finish()
    n_failed = int((keep & failed).sum())
    if report is not None and n_failed:
        report.note("failed_judgments_dropped", n_failed)
    keep &= ~failed
    return pd.DataFrame(
        {
            "qid": qid.to_numpy()[keep],
            "model": model[keep],
            "score": score[keep],
            "turn": turn[keep],
        }
    )


def read_single_judgments(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    questions: dict[str, list[str]] | str | os.PathLike[str],
    *,
    turns: str | int = "mean",
    models: Sequence[str] | None = None,
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "mt_bench",
) -> OutcomeTable:
    """Read FastChat single-answer judgment files into 1-10 grades.

    ``models`` (any aliases) keeps only those models. ``turns``: "mean" (average of the valid turns
    per question and model), or 1 / 2 for one turn.

    Example:
        >>> import json, tempfile
        >>> question = {"question_id": 81, "turns": ["Write a poem.", "Shorter."]}
        >>> judgments = [{"question_id": 81, "model": "gpt-4-1106-preview", "score": s, "turn": t}
        ...              for t, s in ((1, 9), (2, 7))]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "question.jsonl").write_text(json.dumps(question) + "\\n")
        ...     _ = (Path(tmp) / "gpt-4_single.jsonl").write_text(
        ...         "".join(json.dumps(j) + "\\n" for j in judgments))
        ...     t = read_single_judgments(Path(tmp) / "gpt-4_single.jsonl", Path(tmp) / "question.jsonl")
        >>> t.prompt.tolist(), t.score.tolist(), sorted(set(t.kind))
        (['Write a poem.'], [8.0], ['grade'])
    """
    if turns != "mean" and turns not in (1, 2):
        raise ValueError(f"turns must be 'mean', 1 or 2, got {turns!r}")
    if not isinstance(questions, dict):
        questions = read_questions(questions)
    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    table = resolve_table(table)
    keep_models = None if models is None else {table.canonical(m) for m in models}
    frames = [
        _read_judgment_file(Path(p), questions, table, skip_bad_rows, report) for p in path_list
    ]
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["qid", "model", "score", "turn"])
    )
    if keep_models is not None:
        df = df[df["model"].isin(list(keep_models))]
    if turns != "mean":
        df = df[df["turn"] == float(turns)]
    # One grade per (question, model): mean over turns (and over repeated judgments, if any).
    df = df.groupby(["qid", "model"], sort=False, as_index=False)["score"].mean()
    n = len(df)
    out = OutcomeTable(
        prompt=obj_array([questions[q][0] for q in df["qid"].tolist()]),
        model=obj_array(df["model"].tolist()),
        score=df["score"].to_numpy(dtype=np.float32),
        source=obj_array([source] * n),
        kind=obj_array(["grade"] * n),
    )
    if report is not None:
        report.records += len(out)
    return out


def read_arena_bench_v1(
    root: str | os.PathLike[str],
    *,
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "arena_bench_v1",
) -> OutcomeTable:
    """arena-bench-v1 (``question.jsonl`` + ``model_judgment/*.jsonl``) -> 1-10 grades.

    ``root`` is the ``arena-bench-v1`` folder or the data folder containing it. The model of each
    judgment is taken from its ``model`` field (the file ``gpt-4-turbo.jsonl`` holds
    gpt-4-1106-preview's judgments, as that field says).

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = Path(tmp) / "arena-bench-v1"
        ...     (root / "model_judgment").mkdir(parents=True)
        ...     _ = (root / "question.jsonl").write_text(
        ...         json.dumps({"question_id": "abc", "turns": ["Q?"]}) + "\\n")
        ...     _ = (root / "model_judgment" / "gpt-4-turbo.jsonl").write_text(
        ...         json.dumps({"question_id": "abc", "model": "gpt-4-1106-preview", "score": 10}))
        ...     t = read_arena_bench_v1(root)
        >>> t.models(), t.score.tolist()
        (['gpt-4-1106-preview'], [10.0])
    """
    root = Path(root)
    if not (root / "question.jsonl").is_file() and (root / ARENA_BENCH_V1).is_dir():
        root = root / ARENA_BENCH_V1
    files = sorted((root / "model_judgment").glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{root / 'model_judgment'}: no judgment files")
    return read_single_judgments(
        files,
        root / "question.jsonl",
        table=table,
        skip_bad_rows=skip_bad_rows,
        report=report,
        source=source,
    )


def read_score_matrix(
    path: str | os.PathLike[str],
    *,
    prompt_field: str = "prompt",
    id_fields: Sequence[str] = ("question_id",),
    kind: str = "grade",
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "arena_bench_v1",
) -> OutcomeTable:
    """A wide prompt x model score CSV (``derived/arena_bench_v1_score_matrix.csv``) -> outcomes.

    Every column other than ``prompt_field`` and ``id_fields`` is a model. Empty cells are missing
    grades (failed judgments), counted in the report notes, not bad rows.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "arena_bench_v1_score_matrix.csv"
        ...     pd.DataFrame({"question_id": ["a", "b"], "prompt": ["p1", "p2"],
        ...                   "gpt-4-1106-preview": [9, None], "claude-1": [5, 6]}).to_csv(path, index=False)
        ...     t = read_score_matrix(path)
        >>> list(zip(t.prompt, t.model, t.score.tolist()))
        [('p1', 'gpt-4-1106-preview', 9.0), ('p1', 'claude-1', 5.0), ('p2', 'claude-1', 6.0)]
    """
    path = Path(path)
    df = read_records(path).reset_index(drop=True)
    require_columns(df, path, [prompt_field, *id_fields])
    table = resolve_table(table)
    model_cols = [c for c in df.columns if c not in (prompt_field, *id_fields)]
    if not model_cols:
        raise SourceFormatError(path, None, "<columns>", "no model columns")
    canon = [table.canonical(c, where=f"{path}, header, column {c!r}") for c in model_cols]
    if len(set(canon)) != len(canon):
        raise SourceFormatError(
            path, None, "<columns>", f"two columns name the same model: {canon}"
        )
    v = RowValidator(path, len(df), skip_bad_rows=skip_bad_rows, report=report)
    v.check(~nonempty_str_mask(df[prompt_field]), prompt_field, "must be a non-empty string")
    scores = np.stack([numeric(df[c]) for c in model_cols], axis=1)  # [n, m]
    lo, hi = (1.0, 10.0) if kind == "grade" else (0.0, 1.0)
    for j, c in enumerate(model_cols):
        col = scores[:, j]
        nonnum = df[c].notna().to_numpy() & np.isnan(col)
        v.check(
            nonnum | (~np.isnan(col) & ((col < lo) | (col > hi))),
            c,
            lambda i, c=c: (
                f"must be a number in [{lo:g}, {hi:g}] or empty, got {show(df[c].iloc[i])}"
            ),
        )
    keep = v.finish()
    scores = scores[keep]
    present = ~np.isnan(scores)
    if report is not None:
        report.note("missing_scores", int((~present).sum()))
    rows, cols = np.nonzero(present)
    prompts = df[prompt_field].to_numpy()[keep]
    n = len(rows)
    out = OutcomeTable(
        prompt=obj_array(prompts[rows]),
        model=obj_array(np.asarray(canon, dtype=object)[cols]),
        score=scores[rows, cols].astype(np.float32),
        source=obj_array([source] * n),
        kind=obj_array([kind] * n),
    )
    if report is not None:
        report.records += len(out)
    return out
