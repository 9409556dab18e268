"""Correctness tables -> :class:`OutcomeTable` (``kind="correct"``, score in [0, 1]).

* RouterBench CSVs (``shuhao02__RouterDC/datasets/routerbench_zs/*.csv``): one row per prompt, one
  0/1 column per model, plus ``<model>|model_response`` / ``<model>|total_cost`` columns and
  metadata (``sample_id, prompt, eval_name, oracle_model_to_route_to``). ``prompt`` is a Python
  list literal of prompt parts; they are joined with blank lines.
* ``scores``-dict JSON files (RouterDC ``split2_model7/*.json``, LLMRouter
  ``dcrouter_preprocessed/*.json``): a list of ``{"question": str, "scores": {model: value}}``;
  ``scores`` may also be that dict written as a string. Values are in [0, 1]: 0/1 correctness,
  or a fraction (pass rate over samples, or the probability of the right option) kept as is.

The RouteLLM MMLU/GSM8K evaluation CSVs are read by ``routellm_evals.py``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.data.model_names import ModelTable
from routellm_jax.data.records import ComparisonTable, OutcomeTable
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

ROUTERBENCH_META = (
    "",
    "Unnamed: 0",
    "sample_id",
    "prompt",
    "eval_name",
    "oracle_model_to_route_to",
)


def _parse_prompt_list(value: object) -> str | None:
    """RouterBench prompts are Python list literals ``"['...']"``; plain strings pass through."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parts = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text  # a prompt that merely looks like a list
        if isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts):
            joined = "\n\n".join(parts)
            return joined if joined.strip() else None
        return None
    return value


def routerbench_model_columns(columns: Sequence[str]) -> list[str]:
    """The model (0/1) columns of a RouterBench frame.

    Example:
        >>> routerbench_model_columns(["sample_id", "prompt", "gpt-4-1106-preview",
        ...                            "gpt-4-1106-preview|total_cost"])
        ['gpt-4-1106-preview']
    """
    return [
        c
        for c in columns
        if c not in ROUTERBENCH_META and "|" not in c and not c.startswith("Unnamed")
    ]


def read_routerbench_csv(
    path: str | os.PathLike[str],
    *,
    models: Sequence[str] | None = None,
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "routerbench",
) -> OutcomeTable:
    """Read one RouterBench CSV. ``source`` gets ``/<eval_name>`` appended per row.

    Example:
        >>> import tempfile
        >>> row = {"sample_id": "s", "prompt": "['Write f(x).']", "eval_name": "mbpp",
        ...        "gpt-4-1106-preview": 1.0, "mistralai/mixtral-8x7b-chat": 0.0,
        ...        "oracle_model_to_route_to": "gpt-4-1106-preview"}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     pd.DataFrame([row]).to_csv(Path(tmp) / "mbpp_train.csv")
        ...     t = read_routerbench_csv(Path(tmp) / "mbpp_train.csv")
        >>> t.prompt.tolist(), t.model.tolist(), t.score.tolist(), t.source[0]
        (['Write f(x).', 'Write f(x).'], ['gpt-4-1106-preview', 'mixtral-8x7b-instruct-v0.1'], [1.0, 0.0], 'routerbench/mbpp')
    """
    path = Path(path)
    df = read_records(path).reset_index(drop=True)
    require_columns(df, path, ["prompt"])
    table = resolve_table(table)
    cols = routerbench_model_columns(list(df.columns))
    if not cols:
        raise SourceFormatError(path, None, "<columns>", "no model columns found")
    canon = [table.canonical(c, where=f"{path}, header, column {c!r}") for c in cols]
    if len(set(canon)) != len(canon):
        raise SourceFormatError(
            path, None, "<columns>", f"two columns name the same model: {canon}"
        )
    if models is not None:
        wanted = {table.canonical(m) for m in models}
        pairs = [(c, m) for c, m in zip(cols, canon) if m in wanted]
        cols, canon = [p[0] for p in pairs], [p[1] for p in pairs]
    v = RowValidator(path, len(df), skip_bad_rows=skip_bad_rows, report=report)
    prompts = [_parse_prompt_list(p) for p in df["prompt"].tolist()]
    v.check(
        np.fromiter((p is None for p in prompts), bool, len(prompts)),
        "prompt",
        lambda i: (
            f"must be a non-empty prompt (or list of prompt parts), got {show(df['prompt'].iloc[i])}"
        ),
    )
    scores = np.stack([numeric(df[c]) for c in cols], axis=1) if cols else np.zeros((len(df), 0))
    for j, c in enumerate(cols):
        col = scores[:, j]
        nonnum = df[c].notna().to_numpy() & np.isnan(col)
        v.check(
            nonnum | (col < 0) | (col > 1),
            c,
            lambda i, c=c: (
                f"correctness must be a number in [0, 1] or empty, got {show(df[c].iloc[i])}"
            ),
        )
    keep = v.finish()
    # Empty cells: that model has no result on that prompt (missing, not a bad row).
    task = (
        df["eval_name"].astype(str).to_numpy()
        if "eval_name" in df.columns
        else np.full(len(df), "")
    )
    task = np.where(task != "", np.char.add(f"{source}/", task.astype(str)), source).astype(object)
    sub = scores[keep]
    present = ~np.isnan(sub)
    if report is not None:
        report.note("missing_scores", int((~present).sum()))
    rows, cols_idx = np.nonzero(present)  # row-major: prompt by prompt
    prompt_arr = obj_array([p for p, k in zip(prompts, keep) if k])
    n = len(rows)
    out = OutcomeTable(
        prompt=prompt_arr[rows],
        model=np.asarray(canon, dtype=object)[cols_idx],
        score=sub[rows, cols_idx].astype(np.float32),
        source=task[keep][rows],
        kind=obj_array(["correct"] * n),
    )
    if report is not None:
        report.records += len(out)
    return out


def without_shared_prefix(prompts: Sequence[str]) -> list[str]:
    """``prompts`` without the text all of them begin with, cut back to its last blank line: a
    benchmark file's few-shot demonstrations. RouterBench's ARC-Challenge and Winogrande prompts
    repeat the same 1,200-1,700 characters of worked examples before the question, longer than
    the encoders' token window, so every prompt of such a file embeds the same: an encoder's
    features cannot rank within it, and an encoder's near-duplicate check against another file with
    the same demonstrations matches every prompt. The question is what a router is asked to route.
    Fewer than two distinct prompts share nothing, and are returned as they are.

    Example:
        >>> without_shared_prefix(["Q: 1+1?\\nA: 2\\n\\nQ: 2+3?", "Q: 1+1?\\nA: 2\\n\\nQ: 2+2?"])
        ['Q: 2+3?', 'Q: 2+2?']
        >>> without_shared_prefix(["Which is red?", "Which is blue?"])
        ['Which is red?', 'Which is blue?']
        >>> without_shared_prefix(["One prompt.\\n\\nIts last paragraph."])
        ['One prompt.\\n\\nIts last paragraph.']
    """
    prompts = [str(p) for p in prompts]
    if len(set(prompts)) < 2:
        return prompts
    cut = os.path.commonprefix(prompts).rfind("\n\n")
    if cut < 0:
        return prompts
    stripped = [p[cut + 2 :] for p in prompts]
    # A prompt that is only the demonstrations has no question to route: keep the file as it is.
    return stripped if all(q.strip() for q in stripped) else prompts


def without_shared_prefixes(prompts: Sequence[str], files: Sequence[str]) -> list[str]:
    """:func:`without_shared_prefix` within each file: ``files[i]`` names the benchmark file of
    ``prompts[i]``.

    Example:
        >>> without_shared_prefixes(["Ex.\\n\\nQ1", "Ex.\\n\\nQ2", "Ex.\\n\\nQ3"], ["s", "s", "t"])
        ['Q1', 'Q2', 'Ex.\\n\\nQ3']
    """
    out = np.array([str(p) for p in prompts], dtype=object)
    keys = np.asarray(files, dtype=object)
    for key in dict.fromkeys(keys.tolist()):
        rows = np.flatnonzero(keys == key)
        out[rows] = without_shared_prefix(out[rows].tolist())
    return out.tolist()


def strip_shared_prefixes(
    table: OutcomeTable | ComparisonTable,
) -> OutcomeTable | ComparisonTable:
    """``table`` with :func:`without_shared_prefixes` applied per ``source`` (one benchmark file
    each, for the correctness readers), every row kept.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> t = OutcomeTable.from_records([Outcome("Ex.\\n\\nQ1", "m", 1.0, source="s"),
        ...     Outcome("Ex.\\n\\nQ2", "m", 0.0, source="s"), Outcome("Ex.\\n\\nQ3", "m", 1.0, source="t")])
        >>> strip_shared_prefixes(t).prompt.tolist()
        ['Q1', 'Q2', 'Ex.\\n\\nQ3']
    """
    prompts = np.empty(len(table.prompt), dtype=object)
    prompts[:] = without_shared_prefixes(table.prompt, table.source)
    return dataclasses.replace(table, prompt=prompts)


def _parse_scores(value: object) -> dict | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return None
        return parsed if isinstance(parsed, dict) else None
    return None


def read_scores_json(
    path: str | os.PathLike[str],
    *,
    question_field: str = "question",
    models: Sequence[str] | None = None,
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str | None = None,
) -> OutcomeTable:
    """Read a ``scores``-dict JSON (RouterDC / LLMRouter). ``source`` defaults to the file stem.

    A row is bad when the question is empty, ``scores`` is not a dict (or a dict literal), a value
    is not a number in [0, 1], or a model name is unknown.

    Example:
        >>> import tempfile
        >>> rows = [{"question": "q1", "scores": {"mistralai/Mistral-7B-v0.1": 0, "HuggingFaceH4/zephyr-7b-beta": 1}}]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "mmlu_train.json").write_text(json.dumps(rows))
        ...     t = read_scores_json(Path(tmp) / "mmlu_train.json")
        >>> t.model.tolist(), t.score.tolist(), t.source[0]
        (['mistral-7b-v0.1', 'zephyr-7b-beta'], [0.0, 1.0], 'mmlu_train')
    """
    path = Path(path)
    df = read_records(path).reset_index(drop=True)
    require_columns(df, path, [question_field, "scores"])
    table = resolve_table(table)
    source = path.stem if source is None else source
    v = RowValidator(
        path, len(df), skip_bad_rows=skip_bad_rows, report=report, locate=lambda i: f"item {i}"
    )
    v.check(~nonempty_str_mask(df[question_field]), question_field, "must be a non-empty string")
    parsed = [_parse_scores(s) for s in df["scores"].tolist()]
    not_dict = np.fromiter((p is None or not p for p in parsed), bool, len(parsed))
    v.check(
        not_dict,
        "scores",
        lambda i: f"must be a non-empty dict of model -> score, got {show(df['scores'].iloc[i])}",
    )
    # Long format: one (row, model, value) per dict entry; validated column-wise below.
    row_idx = np.fromiter((i for i, p in enumerate(parsed) if p for _ in p), dtype=np.int64)
    names = obj_array([k for p in parsed if p for k in p])
    values = [val for p in parsed if p for val in p.values()]
    long = pd.DataFrame({"row": row_idx, "name": names, "value": pd.Series(values, dtype=object)})
    val = numeric(long["value"].map(lambda x: x if not isinstance(x, bool) else float(x)))
    bad_val = np.isnan(val) | (val < 0) | (val > 1)
    uniq = pd.unique(long["name"])
    canon_map = {}
    unknown = set()
    for name in uniq:
        if isinstance(name, str) and name in table:
            canon_map[name] = table.canonical(name)
        else:
            unknown.add(name)
    bad_name = long["name"].isin(list(unknown)).to_numpy()
    row_bad_val = np.zeros(len(df), dtype=bool)
    row_bad_val[row_idx[bad_val]] = True
    row_bad_name = np.zeros(len(df), dtype=bool)
    row_bad_name[row_idx[bad_name]] = True

    def bad_value_reason(i: int) -> str:
        sub = long[(long["row"] == i)]
        j = int(np.flatnonzero(bad_val[sub.index.to_numpy()])[0])
        return f"score of {sub['name'].iloc[j]!r} must be a number in [0, 1], got {show(sub['value'].iloc[j])}"

    v.check(row_bad_val, "scores", bad_value_reason)
    if row_bad_name.any():
        first_name = {}
        for r, nm, b in zip(row_idx, long["name"], bad_name):
            if b and r not in first_name:
                first_name[int(r)] = nm
        per_row = obj_array([first_name.get(i, "") for i in range(len(df))])
        v.unknown_models(row_bad_name, "scores", per_row, table)
    keep = v.finish()
    keep_long = keep[row_idx] if len(row_idx) else np.zeros(0, dtype=bool)
    canon = long["name"].map(canon_map).to_numpy(dtype=object)
    if models is not None:
        wanted = {table.canonical(m) for m in models}
        keep_long &= pd.Series(canon).isin(list(wanted)).to_numpy()
    questions = df[question_field].to_numpy(dtype=object)
    n = int(keep_long.sum())
    out = OutcomeTable(
        prompt=obj_array(questions[row_idx[keep_long]]),
        model=obj_array(canon[keep_long]),
        score=val[keep_long].astype(np.float32),
        source=obj_array([source] * n),
        kind=obj_array(["correct"] * n),
    )
    if report is not None:
        report.records += len(out)
    return out
