"""AlpacaEval pairwise judge annotations -> :class:`ComparisonTable`.

Two layouts are read:

* raw ``results/<model>/<annotator>/annotations.json`` files (a list of objects with
  ``instruction, generator_1, generator_2, preference, ...``);
* the pooled ``derived/alpaca_eval_pairwise_labels.csv`` (``prompt_idx, annotator, generator_1,
  generator_2, preference, source_path``) with ``derived/alpaca_eval_prompts.jsonl`` for the text.

Preference semantics (AlpacaEval): 1 = generator_1 better, 2 = generator_2 better, 1.5 = tie,
0 = draw (the older annotators' encoding), and a fractional value p in (1, 2) from the weighted
annotators is the probability-like preference P(generator_2 better) = p - 1.

``fractional="split"`` (default) keeps that soft label as weights: one battle "a wins" with weight
2 - p and one "b wins" with weight p - 1 (so p = 1.3 gives a:0.7, b:0.3). Exact 1, 2, 1.5 and 0 give
a single battle of weight 1. The weighted Bradley-Terry likelihood of the pair equals the expected
likelihood under the soft label, which is why this is the faithful encoding. ``fractional="round"``
instead gives one weight-1 battle of the nearer side (1.5 stays a tie).
``model_a`` is always generator_1 (the baseline: gpt4_1106_preview or text_davinci_003).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.data.model_names import ModelTable
from routellm_jax.data.records import OUTCOME_A, OUTCOME_B, OUTCOME_TIE, ComparisonTable
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

FRACTIONAL_MODES = ("split", "round")
_EPS = 1e-9


def _preferences_to_table(
    prompt: np.ndarray,
    model_a: np.ndarray,
    model_b: np.ndarray,
    pref: np.ndarray,
    fractional: str,
    source: str,
) -> ComparisonTable:
    """Vectorised preference -> battles (see the module docstring for the mapping)."""
    if fractional not in FRACTIONAL_MODES:
        raise ValueError(f"fractional must be one of {FRACTIONAL_MODES}, got {fractional!r}")
    tie = (np.abs(pref - 1.5) < _EPS) | (np.abs(pref) < _EPS)
    p2 = np.clip(pref - 1.0, 0.0, 1.0)  # P(generator_2 better)
    if fractional == "round":
        outcome = np.where(tie, OUTCOME_TIE, np.where(p2 > 0.5, OUTCOME_B, OUTCOME_A))
        weight = np.ones(len(pref), dtype=np.float32)
        idx = np.arange(len(pref))
    else:
        a_part = ~tie & (p2 < 1.0 - _EPS)  # some mass on generator_1
        b_part = ~tie & (p2 > _EPS)
        idx = np.concatenate([np.flatnonzero(tie), np.flatnonzero(a_part), np.flatnonzero(b_part)])
        outcome = np.concatenate(
            [
                np.full(int(tie.sum()), OUTCOME_TIE),
                np.full(int(a_part.sum()), OUTCOME_A),
                np.full(int(b_part.sum()), OUTCOME_B),
            ]
        )
        weight = np.concatenate([np.ones(int(tie.sum())), 1.0 - p2[a_part], p2[b_part]]).astype(
            np.float32
        )
        order = np.argsort(idx, kind="stable")  # keep file order
        idx, outcome, weight = idx[order], outcome[order], weight[order]
    return ComparisonTable(
        prompt=prompt[idx],
        model_a=model_a[idx],
        model_b=model_b[idx],
        outcome=outcome.astype(np.int8),
        weight=weight,
        source=obj_array([source] * len(idx)),
    )


def _validate_preferences(v: RowValidator, pref_raw: pd.Series) -> np.ndarray:
    pref = numeric(pref_raw)
    ok = (np.abs(pref) < _EPS) | ((pref >= 1.0 - _EPS) & (pref <= 2.0 + _EPS))
    v.check(
        ~ok,
        "preference",
        lambda i: f"preference must be 0 (draw) or in [1, 2], got {show(pref_raw.iloc[i])}",
    )
    return pref


def read_alpaca_eval_annotations(
    path: str | os.PathLike[str],
    *,
    fractional: str = "split",
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "alpaca_eval",
) -> ComparisonTable:
    """Read one raw AlpacaEval ``annotations.json``.

    Example:
        >>> import json, tempfile
        >>> row = {"instruction": "Name three rivers.", "generator_1": "gpt4_1106_preview",
        ...        "generator_2": "Mixtral-8x7B-Instruct-v0.1", "preference": 1.3}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "annotations.json").write_text(json.dumps([row]))
        ...     t = read_alpaca_eval_annotations(Path(tmp) / "annotations.json")
        >>> t.model_b[0], t.outcome.tolist(), [round(float(w), 2) for w in t.weight]  # p = 1.3
        ('mixtral-8x7b-instruct-v0.1', [0, 1], [0.7, 0.3])
    """
    path = Path(path)
    df = read_records(path)
    require_columns(df, path, ["instruction", "generator_1", "generator_2", "preference"])
    table = resolve_table(table)
    v = RowValidator(
        path, len(df), skip_bad_rows=skip_bad_rows, report=report, locate=lambda i: f"item {i}"
    )
    v.check(~nonempty_str_mask(df["instruction"]), "instruction", "must be a non-empty string")
    model_a = v.models(df["generator_1"], "generator_1", table)
    model_b = v.models(df["generator_2"], "generator_2", table)
    pref = _validate_preferences(v, df["preference"])
    keep = v.finish()
    out = _preferences_to_table(
        obj_array(df["instruction"].to_numpy()[keep]),
        model_a[keep],
        model_b[keep],
        pref[keep],
        fractional,
        source,
    )
    if report is not None:
        report.records += len(out)
    return out


def read_alpaca_eval_prompts(path: str | os.PathLike[str]) -> dict[int, str]:
    """``derived/alpaca_eval_prompts.jsonl`` -> ``{prompt_idx: instruction}``.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "alpaca_eval_prompts.jsonl"
        ...     _ = path.write_text(json.dumps({"prompt_idx": 0, "instruction": "Name three rivers."}))
        ...     read_alpaca_eval_prompts(path)
        {0: 'Name three rivers.'}
    """
    df = read_records(path)
    require_columns(df, path, ["prompt_idx", "instruction"])
    idx = numeric(df["prompt_idx"])
    bad = np.isnan(idx) | (idx != np.round(idx))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SourceFormatError(
            path, i, "prompt_idx", f"must be an integer, got {df['prompt_idx'].iloc[i]!r}"
        )
    text_ok = nonempty_str_mask(df["instruction"])
    if not text_ok.all():
        i = int(np.flatnonzero(~text_ok)[0])
        raise SourceFormatError(path, i, "instruction", "must be a non-empty string")
    dup = pd.Series(idx).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise SourceFormatError(path, i, "prompt_idx", f"duplicate prompt_idx {int(idx[i])}")
    return dict(zip(idx.astype(np.int64).tolist(), df["instruction"].tolist()))


def read_alpaca_eval_pairwise(
    csv_path: str | os.PathLike[str],
    prompts_path: str | os.PathLike[str] | None = None,
    *,
    annotators: Collection[str] | None = None,
    fractional: str = "split",
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "alpaca_eval",
) -> ComparisonTable:
    """Read the pooled AlpacaEval pairwise labels (``derived/alpaca_eval_pairwise_labels.csv``).

    ``prompts_path`` defaults to ``alpaca_eval_prompts.jsonl`` next to the CSV. ``annotators``
    keeps only those annotator configs (e.g. ``{"weighted_alpaca_eval_gpt4_turbo"}``).
    The real file has 64 rows without a preference: read it with ``skip_bad_rows=True``.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "alpaca_eval_prompts.jsonl").write_text(
        ...         json.dumps({"prompt_idx": 0, "instruction": "Name three rivers."}))
        ...     pd.DataFrame({"prompt_idx": [0, 0], "annotator": ["alpaca_eval_gpt4", "x_fn"],
        ...                   "generator_1": ["text_davinci_003", "gpt4_1106_preview"],
        ...                   "generator_2": ["gpt4", "claude-2"], "preference": [2.0, None],
        ...                   "source_path": ["p", "p"]}
        ...                  ).to_csv(Path(tmp) / "labels.csv", index=False)
        ...     t = read_alpaca_eval_pairwise(Path(tmp) / "labels.csv", skip_bad_rows=True)
        >>> t.prompt.tolist(), t.model_b.tolist(), t.outcome.tolist()  # the row without a preference is skipped
        (['Name three rivers.'], ['gpt4'], [1])
    """
    csv_path = Path(csv_path)
    prompts_path = (
        Path(prompts_path)
        if prompts_path is not None
        else csv_path.parent / "alpaca_eval_prompts.jsonl"
    )
    prompts = read_alpaca_eval_prompts(prompts_path)
    df = read_records(csv_path)
    require_columns(
        df, csv_path, ["prompt_idx", "annotator", "generator_1", "generator_2", "preference"]
    )
    if annotators is not None:
        unknown = set(annotators) - set(df["annotator"].unique())
        if unknown:
            raise ValueError(f"{csv_path}: annotator(s) {sorted(unknown)} not in the file")
        df = df[df["annotator"].isin(list(annotators))].reset_index(drop=True)
    table = resolve_table(table)
    v = RowValidator(csv_path, len(df), skip_bad_rows=skip_bad_rows, report=report)
    idx = numeric(df["prompt_idx"])
    known = pd.Series(idx).isin(list(prompts)).to_numpy()
    v.check(
        ~known,
        "prompt_idx",
        lambda i: f"prompt_idx {df['prompt_idx'].iloc[i]!r} not in {prompts_path}",
    )
    model_a = v.models(df["generator_1"], "generator_1", table)
    model_b = v.models(df["generator_2"], "generator_2", table)
    pref = _validate_preferences(v, df["preference"])
    keep = v.finish()
    prompt_lookup = pd.Series(prompts)
    prompt = obj_array(prompt_lookup.reindex(idx[keep].astype(np.int64)).to_numpy())
    out = _preferences_to_table(
        prompt, model_a[keep], model_b[keep], pref[keep], fractional, source
    )
    if report is not None:
        report.records += len(out)
    return out


def win_counts(table: ComparisonTable, model: str) -> dict[str, float]:
    """Weighted wins/losses/ties of ``model`` in ``table`` (a quick sanity view).

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("q", "a", "b", "b", 0.5)])
        >>> win_counts(t, "b")
        {'wins': 0.5, 'losses': 0.0, 'ties': 0.0}
    """
    a, b = table.model_a == model, table.model_b == model
    w = table.weight.astype(np.float64)
    wins = w[(a & (table.outcome == OUTCOME_A)) | (b & (table.outcome == OUTCOME_B))].sum()
    losses = w[(a & (table.outcome == OUTCOME_B)) | (b & (table.outcome == OUTCOME_A))].sum()
    ties = w[(a | b) & (table.outcome == OUTCOME_TIE)].sum()
    return {"wins": float(wins), "losses": float(losses), "ties": float(ties)}
