"""LLM-judge battles (1-5 score of the weak answer against the strong one)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from routellm_jax.data.sources import ReadReport, SourceFormatError
from routellm_jax.data.sources.judge_battles import read_judge_battles


def _write_columns(path, prompts, labels) -> None:
    # The anyscale file's layout: pandas to_json(orient="columns"), string row keys.
    df = pd.DataFrame(
        {
            "prompt": prompts,
            "source": [["ultrachat"]] * len(prompts),
            "gpt4": ["strong answer"] * len(prompts),
            "mixtral": ["weak answer"] * len(prompts),
            "label": labels,
        },
        index=[str(100 + i) for i in range(len(prompts))],
    )
    path.write_text(df.to_json())


def test_score_mapping(tmp_path) -> None:
    path = tmp_path / "labeled.json"
    _write_columns(path, [f"q{i}" for i in range(5)], [1, 2, 3, 4, 5])
    t = read_judge_battles(path)
    assert t.outcome.tolist() == [0, 0, 0, 1, 1]  # >= 4: the weak model (model_b) wins
    assert set(t.model_a) == {"gpt-4-1106-preview"} and set(t.model_b) == {
        "mixtral-8x7b-instruct-v0.1"
    }
    tied = read_judge_battles(path, tie_scores=(4,))
    assert tied.outcome.tolist() == [0, 0, 0, 2, 1]
    other = read_judge_battles(path, strong_model="claude-2.1", weak_model="llama-2-70b-chat-hf")
    assert other.model_b[0] == "llama-2-70b-chat"


def test_records_layout_and_bad_rows(tmp_path) -> None:
    path = tmp_path / "battles.jsonl"
    rows = [{"prompt": "a", "score": 5}, {"prompt": "b", "score": 7}, {"prompt": "", "score": 3}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(SourceFormatError) as info:
        read_judge_battles(path)
    assert info.value.row == 1 and info.value.field == "score" and "1-5" in str(info.value)
    report = ReadReport()
    t = read_judge_battles(path, skip_bad_rows=True, report=report)
    assert t.prompt.tolist() == ["a"]
    assert report.n_skipped == 2 and dict(report.skipped_by_field) == {"score": 1, "prompt": 1}


def test_same_model_rejected(tmp_path) -> None:
    path = tmp_path / "labeled.json"
    _write_columns(path, ["q"], [3])
    with pytest.raises(ValueError, match="both"):
        read_judge_battles(path, strong_model="gpt4_1106_preview", weak_model="gpt-4-1106-preview")
