"""The paper's LLM-judge battles (``routellm/gpt4_judge_battles`` style) -> :class:`ComparisonTable`.

Each row is a prompt, the strong model's answer (the reference), the weak model's answer and a
judge score 1-5 of the weak answer against the reference
(``anyscale__templates/.../labeled_test_dataset.json``: columns ``prompt, source, gpt4, mixtral,
label``, stored as a pandas dict of columns).

Score -> outcome (``model_a`` = strong, ``model_b`` = weak):

* ``score >= weak_win_min`` (default 4) -> the weak model wins;
* ``score in tie_scores`` (default none) -> tie;
* otherwise the strong model wins.

Why 4: the judge template reserves 4-5 for answers "very close to the quality of the reference or
even better", and the anyscale template and the paper's causal-LLM router treat a score >= 4 as
"the weak model is good enough" (its P(strong) = 1 - P(score >= 4)). Since the routers only need
P(strong wins), "weak is as good" and "weak wins" route the same; pass ``tie_scores=(4,)`` to keep
4 as a tie for Elo-style uses.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from routellm_jax.data.model_names import ModelTable
from routellm_jax.data.records import OUTCOME_A, OUTCOME_B, OUTCOME_TIE, ComparisonTable
from routellm_jax.data.sources._common import (
    ReadReport,
    RowValidator,
    nonempty_str_mask,
    numeric,
    obj_array,
    read_records,
    require_columns,
    resolve_table,
    show,
)

_SCORE_FIELDS = ("label", "score", "mixtral_score", "weak_score")


def read_judge_battles(
    path: str | os.PathLike[str],
    *,
    strong_model: str = "gpt-4-1106-preview",
    weak_model: str = "mixtral-8x7b-instruct-v0.1",
    prompt_field: str = "prompt",
    score_field: str | None = None,
    weak_win_min: int = 4,
    tie_scores: Collection[int] = (),
    table: ModelTable | None = None,
    skip_bad_rows: bool = False,
    report: ReadReport | None = None,
    source: str = "gpt4_judge",
) -> ComparisonTable:
    """Read judge-labelled battles; ``score_field`` defaults to the first of label/score/... found.

    Example:
        >>> import json, tempfile
        >>> rows = [{"prompt": "q1", "label": 5}, {"prompt": "q2", "label": 1}]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "labeled.json").write_text(json.dumps(rows))
        ...     t = read_judge_battles(Path(tmp) / "labeled.json")
        >>> t.model_a[0], t.model_b[0]
        ('gpt-4-1106-preview', 'mixtral-8x7b-instruct-v0.1')
        >>> t.outcome.tolist()  # a score >= 4 is a win of the weak model (model_b)
        [1, 0]
    """
    path = Path(path)
    df = read_records(path).reset_index(drop=True)
    if score_field is None:
        score_field = next((c for c in _SCORE_FIELDS if c in df.columns), _SCORE_FIELDS[0])
    require_columns(df, path, [prompt_field, score_field])
    table = resolve_table(table)
    strong = table.canonical(strong_model, where="read_judge_battles(strong_model=...)")
    weak = table.canonical(weak_model, where="read_judge_battles(weak_model=...)")
    if strong == weak:
        raise ValueError(f"strong and weak model are both {strong!r}")
    bad_ties = set(tie_scores) - set(range(1, 6))
    if bad_ties:
        raise ValueError(f"tie_scores must be within 1..5, got {sorted(bad_ties)}")

    v = RowValidator(path, len(df), skip_bad_rows=skip_bad_rows, report=report)
    v.check(~nonempty_str_mask(df[prompt_field]), prompt_field, "must be a non-empty string")
    score = numeric(df[score_field])
    ok = np.isin(score, (1.0, 2.0, 3.0, 4.0, 5.0))
    v.check(
        ~ok,
        score_field,
        lambda i: f"judge score must be an integer 1-5, got {show(df[score_field].iloc[i])}",
    )
    keep = v.finish()
    score = score[keep]
    outcome = np.where(score >= weak_win_min, OUTCOME_B, OUTCOME_A)
    outcome = np.where(np.isin(score, list(tie_scores)), OUTCOME_TIE, outcome).astype(np.int8)
    n = int(keep.sum())
    out = ComparisonTable(
        prompt=obj_array(df[prompt_field].to_numpy()[keep]),
        model_a=obj_array([strong] * n),
        model_b=obj_array([weak] * n),
        outcome=outcome,
        weight=np.ones(n, dtype=np.float32),
        source=obj_array([source] * n),
    )
    if report is not None:
        report.records += len(out)
    return out
