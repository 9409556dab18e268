"""FastChat question + single-answer judgment files, arena-bench layout, wide score matrices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from routellm_jax.data.model_names import UnknownModelError
from routellm_jax.data.sources import ReadReport, SourceFormatError
from routellm_jax.data.sources.fastchat import (
    read_arena_bench_v1,
    read_questions,
    read_score_matrix,
    read_single_judgments,
)


def _jsonl(path, rows) -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.fixture()
def questions(tmp_path):
    path = tmp_path / "question.jsonl"
    _jsonl(
        path,
        [
            {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
            {"question_id": 82, "category": "math", "turns": ["2+2?", "times 3?"]},
        ],
    )
    return path


def test_grades_mean_over_turns_failed_dropped(tmp_path, questions) -> None:
    j = tmp_path / "single.jsonl"
    _jsonl(
        j,
        [
            {"question_id": 81, "model": "gpt-4-1106-preview", "score": 9, "turn": 1},
            {"question_id": 81, "model": "gpt-4-1106-preview", "score": 7, "turn": 2},
            {"question_id": 82, "model": "gpt-4-1106-preview", "score": -1, "turn": 1},
            {"question_id": 82, "model": "gpt-4-1106-preview", "score": 4, "turn": 2},
            {"question_id": 81, "model": "Mixtral-8x7B-Instruct-v0.1", "score": 6.0},
        ],
    )
    report = ReadReport()
    t = read_single_judgments(j, questions, report=report)
    got = {(p, m): s for p, m, s in zip(t.prompt, t.model, t.score)}
    assert got == {
        ("Write a poem.", "gpt-4-1106-preview"): 8.0,
        ("2+2?", "gpt-4-1106-preview"): 4.0,
        ("Write a poem.", "mixtral-8x7b-instruct-v0.1"): 6.0,
    }
    assert set(t.kind) == {"grade"} and report.notes == {"failed_judgments_dropped": 1}
    first = read_single_judgments(j, questions, turns=1)
    assert sorted(first.score.tolist()) == [6.0, 9.0]
    only = read_single_judgments(j, questions, models=["mistralai/Mixtral-8x7B-Instruct-v0.1"])
    assert only.models() == ["mixtral-8x7b-instruct-v0.1"]


@pytest.mark.parametrize(
    ("bad", "field", "error"),
    [
        ({"question_id": 99, "model": "claude-1", "score": 5}, "question_id", SourceFormatError),
        ({"question_id": 81, "model": "claude-1", "score": 11}, "score", SourceFormatError),
        (
            {"question_id": 81, "model": "claude-1", "score": 5, "turn": 3},
            "turn",
            SourceFormatError,
        ),
        ({"question_id": 81, "model": "unknown-model-q", "score": 5}, "model", UnknownModelError),
    ],
)
def test_bad_judgments(tmp_path, questions, bad, field, error) -> None:
    j = tmp_path / "single.jsonl"
    _jsonl(j, [{"question_id": 82, "model": "claude-1", "score": 5}, bad])
    with pytest.raises(error) as info:
        read_single_judgments(j, questions)
    assert "line 2" in str(info.value) and f"field {field!r}" in str(info.value)
    report = ReadReport()
    t = read_single_judgments(j, questions, skip_bad_rows=True, report=report)
    assert len(t) == 1 and report.n_skipped == 1


def test_bad_question_file(tmp_path) -> None:
    path = tmp_path / "question.jsonl"
    _jsonl(path, [{"question_id": 1, "turns": ["ok"]}, {"question_id": 2, "turns": "not a list"}])
    with pytest.raises(SourceFormatError, match="row 1, field 'turns'"):
        read_questions(path)


def test_arena_bench_layout(tmp_path) -> None:
    root = tmp_path / "arena-bench-v1"
    (root / "model_judgment").mkdir(parents=True)
    _jsonl(root / "question.jsonl", [{"question_id": "abc", "category": "c", "turns": ["Q?"]}])
    # The file stem is not the model: gpt-4-turbo.jsonl holds gpt-4-1106-preview's judgments.
    _jsonl(
        root / "model_judgment" / "gpt-4-turbo.jsonl",
        [{"question_id": "abc", "model": "gpt-4-1106-preview", "score": 10}],
    )
    _jsonl(
        root / "model_judgment" / "claude-1.jsonl",
        [{"question_id": "abc", "model": "claude-1", "score": None}],
    )
    report = ReadReport()
    t = read_arena_bench_v1(root, report=report)
    assert t.models() == ["gpt-4-1106-preview"] and t.score.tolist() == [10.0]
    assert report.notes == {"failed_judgments_dropped": 1}


def test_score_matrix(tmp_path) -> None:
    path = tmp_path / "matrix.csv"
    pd.DataFrame(
        {
            "question_id": ["a", "b", "c"],
            "prompt": ["p1", "p2", "p3"],
            "gpt-4-1106-preview": [9, 10, np.nan],
            "mistralai/Mixtral-8x7B-Instruct-v0.1": [5, 12, 3],
        }
    ).to_csv(path, index=False)
    with pytest.raises(SourceFormatError) as info:
        read_score_matrix(path)
    assert info.value.row == 1 and info.value.field == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    report = ReadReport()
    t = read_score_matrix(path, skip_bad_rows=True, report=report)
    assert len(t) == 3 and report.n_skipped == 1 and report.notes == {"missing_scores": 1}
    assert set(t.model) == {"gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"}
