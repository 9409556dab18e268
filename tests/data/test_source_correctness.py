"""Correctness readers: RouterBench CSVs and scores-dict JSON files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from routellm_jax.data.model_names import UnknownModelError
from routellm_jax.data.sources import ReadReport, SourceFormatError
from routellm_jax.data.sources.correctness import read_routerbench_csv, read_scores_json


def _routerbench(path, rows) -> None:
    pd.DataFrame(rows).to_csv(path)  # with the unnamed index column, like the real files


def _rb_row(prompt: str, gpt4, mixtral) -> dict:
    return {
        "sample_id": "s",
        "prompt": prompt,
        "eval_name": "mbpp",
        "gpt-4-1106-preview": gpt4,
        "mistralai/mixtral-8x7b-chat": mixtral,
        "gpt-4-1106-preview|model_response": "['x']",
        "gpt-4-1106-preview|total_cost": 0.001,
        "oracle_model_to_route_to": "gpt-4-1106-preview",
    }


def test_routerbench(tmp_path) -> None:
    path = tmp_path / "mbpp_train.csv"
    _routerbench(
        path,
        [
            _rb_row("['Write f(x).']", 1.0, 0.0),
            _rb_row("['part one', 'part two']", 0.0, np.nan),
            _rb_row("plain prompt", 1.0, 1.0),
        ],
    )
    report = ReadReport()
    t = read_routerbench_csv(path, report=report)
    assert t.prompt.tolist() == [
        "Write f(x).",
        "Write f(x).",
        "part one\n\npart two",
        "plain prompt",
        "plain prompt",
    ]
    assert t.model.tolist()[:2] == ["gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"]
    assert t.score.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert set(t.source) == {"routerbench/mbpp"} and set(t.kind) == {"correct"}
    assert report.notes == {"missing_scores": 1}
    only = read_routerbench_csv(path, models=["gpt4_1106_preview"])
    assert only.models() == ["gpt-4-1106-preview"]


def test_routerbench_bad_rows(tmp_path) -> None:
    path = tmp_path / "x.csv"
    _routerbench(path, [_rb_row("['ok']", 1, 0), _rb_row("['ok2']", 2, 0), _rb_row("", 1, 1)])
    with pytest.raises(SourceFormatError) as info:
        read_routerbench_csv(path)
    assert info.value.row == 1 and info.value.field == "gpt-4-1106-preview"
    report = ReadReport()
    t = read_routerbench_csv(path, skip_bad_rows=True, report=report)
    assert len(t) == 2 and report.n_skipped == 2
    assert dict(report.skipped_by_field) == {"gpt-4-1106-preview": 1, "prompt": 1}


def test_routerbench_unknown_model_column(tmp_path) -> None:
    path = tmp_path / "x.csv"
    _routerbench(path, [{**_rb_row("['q']", 1, 0), "acme/mystery-13b": 1}])
    with pytest.raises(UnknownModelError, match="header, column 'acme/mystery-13b'"):
        read_routerbench_csv(path)


def test_scores_json(tmp_path) -> None:
    path = tmp_path / "mmlu_train.json"
    rows = [
        {
            "question": "q1",
            "scores": {"mistralai/Mistral-7B-v0.1": 0, "HuggingFaceH4/zephyr-7b-beta": 1},
        },
        # The dict may be written as a string; fractional values are kept.
        {"question": "q2", "scores": json.dumps({"mistralai/Mistral-7B-v0.1": 0.25})},
        {"question": "q3", "scores": "{'mistralai/Mistral-7B-v0.1': 1.0}"},
    ]
    path.write_text(json.dumps(rows))
    t = read_scores_json(path)
    assert t.prompt.tolist() == ["q1", "q1", "q2", "q3"]
    assert t.model.tolist() == [
        "mistral-7b-v0.1",
        "zephyr-7b-beta",
        "mistral-7b-v0.1",
        "mistral-7b-v0.1",
    ]
    assert t.score.tolist() == [0.0, 1.0, 0.25, 1.0]
    assert set(t.source) == {"mmlu_train"}


@pytest.mark.parametrize(
    ("bad", "error", "fragment"),
    [
        (
            {"question": "", "scores": {"mistralai/Mistral-7B-v0.1": 1}},
            SourceFormatError,
            "question",
        ),
        ({"question": "q", "scores": "not a dict"}, SourceFormatError, "dict"),
        (
            {"question": "q", "scores": {"mistralai/Mistral-7B-v0.1": 1.5}},
            SourceFormatError,
            "[0, 1]",
        ),
        ({"question": "q", "scores": {"acme/mystery": 1}}, UnknownModelError, "acme/mystery"),
    ],
)
def test_scores_json_bad_rows(tmp_path, bad, error, fragment) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps([{"question": "ok", "scores": {"mistralai/Mistral-7B-v0.1": 1}}, bad])
    )
    with pytest.raises(error) as info:
        read_scores_json(path)
    assert (
        "item 1" in str(info.value) and fragment in str(info.value) and str(path) in str(info.value)
    )
    report = ReadReport()
    t = read_scores_json(path, skip_bad_rows=True, report=report)
    assert t.prompt.tolist() == ["ok"] and report.n_skipped == 1
