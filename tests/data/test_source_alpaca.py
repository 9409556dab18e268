"""AlpacaEval readers: raw annotations.json and the pooled CSV, fractional preferences as weights."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from routellm_jax.data.model_names import UnknownModelError
from routellm_jax.data.sources import ReadReport, SourceFormatError
from routellm_jax.data.sources.alpaca_eval import (
    read_alpaca_eval_annotations,
    read_alpaca_eval_pairwise,
    win_counts,
)


def _ann(instruction: str, pref, g2: str = "Mixtral-8x7B-Instruct-v0.1") -> dict:
    return {
        "instruction": instruction,
        "output_1": "o1",
        "generator_1": "gpt4_1106_preview",
        "output_2": "o2",
        "generator_2": g2,
        "annotator": "weighted_alpaca_eval_gpt4_turbo",
        "preference": pref,
    }


def test_preference_mapping_and_weights(tmp_path) -> None:
    path = tmp_path / "annotations.json"
    rows = [_ann("p1", 1.0), _ann("p2", 2.0), _ann("p3", 1.5), _ann("p4", 1.3), _ann("p5", 0)]
    path.write_text(json.dumps(rows))
    t = read_alpaca_eval_annotations(path)
    recs = [(r.prompt, r.outcome, round(r.weight, 6)) for r in t.to_records()]
    assert recs == [
        ("p1", "a", 1.0),
        ("p2", "b", 1.0),
        ("p3", "tie", 1.0),
        ("p4", "a", 0.7),  # p = 1.3: generator_1 with weight 0.7 ...
        ("p4", "b", 0.3),  # ... and generator_2 with 0.3
        ("p5", "tie", 1.0),  # 0 = draw (older annotators)
    ]
    assert set(t.model_a) == {"gpt-4-1106-preview"}
    assert set(t.model_b) == {"mixtral-8x7b-instruct-v0.1"}
    rounded = read_alpaca_eval_annotations(path, fractional="round")
    assert rounded.outcome.tolist() == [0, 1, 2, 0, 2] and np.all(rounded.weight == 1)
    wc = win_counts(t, "mixtral-8x7b-instruct-v0.1")
    assert wc["wins"] == pytest.approx(1.3) and wc["ties"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("bad", "field", "fragment"),
    [
        (_ann("p", None), "preference", "got missing"),
        (_ann("p", 2.5), "preference", "in [1, 2]"),
        (_ann("p", "x"), "preference", "'x'"),
        (_ann("", 1.0), "instruction", "non-empty"),
    ],
)
def test_bad_rows(tmp_path, bad: dict, field: str, fragment: str) -> None:
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([_ann("ok", 1.0), bad, _ann("ok2", 2.0)]))
    with pytest.raises(SourceFormatError) as info:
        read_alpaca_eval_annotations(path)
    assert info.value.row == 1 and info.value.field == field
    assert str(path) in str(info.value) and fragment in str(info.value)
    report = ReadReport()
    t = read_alpaca_eval_annotations(path, skip_bad_rows=True, report=report)
    assert len(t) == 2 and report.n_skipped == 1 and report.skipped_by_field[field] == 1


def test_unknown_generator(tmp_path) -> None:
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([_ann("ok", 1.0), _ann("p", 1.0, g2="mystery-7b")]))
    with pytest.raises(UnknownModelError, match=r"item 1, field 'generator_2'"):
        read_alpaca_eval_annotations(path)


def test_pooled_csv(tmp_path) -> None:
    prompts = tmp_path / "alpaca_eval_prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps({"prompt_idx": i, "instruction": f"q{i}", "dataset": "d"}) for i in range(3)
        )
    )
    csv = tmp_path / "labels.csv"
    pd.DataFrame(
        {
            "prompt_idx": [0, 1, 2, 7, 1],
            "annotator": [
                "alpaca_eval_gpt4",
                "alpaca_eval_gpt4",
                "x_fn",
                "alpaca_eval_gpt4",
                "x_fn",
            ],
            "generator_1": ["text_davinci_003"] * 2 + ["gpt4_1106_preview"] * 3,
            "generator_2": ["gpt4", "claude-2", "gemini-pro", "gpt4", "gemini-pro"],
            "preference": [2.0, 1.0, 1.25, 2.0, np.nan],
            "source_path": ["p"] * 5,
        }
    ).to_csv(csv, index=False)
    with pytest.raises(SourceFormatError) as info:
        read_alpaca_eval_pairwise(csv)
    assert info.value.row == 3 and info.value.field == "prompt_idx"
    report = ReadReport()
    t = read_alpaca_eval_pairwise(csv, skip_bad_rows=True, report=report)
    assert report.n_skipped == 2 and report.rows_read == 5
    assert t.prompt.tolist() == ["q0", "q1", "q2", "q2"]
    assert t.model_b.tolist() == ["gpt4", "claude-2.0", "gemini-pro", "gemini-pro"]
    assert t.weight.tolist() == pytest.approx([1.0, 1.0, 0.75, 0.25])
    only = read_alpaca_eval_pairwise(csv, annotators={"alpaca_eval_gpt4"}, skip_bad_rows=True)
    assert len(only) == 2
    with pytest.raises(ValueError, match="not in the file"):
        read_alpaca_eval_pairwise(csv, annotators={"nope"})
