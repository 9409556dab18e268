"""Chatbot Arena battles reader: the 55k schema from local files, and the Hub path offline."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd
import pytest

from routellm_jax.data.model_names import UnknownModelError
from routellm_jax.data.sources import ReadReport, SourceFormatError, SourceUnavailableError
from routellm_jax.data.sources.chatbot_arena import (
    download_arena_battles,
    load_arena_battles,
    read_arena_battles,
    write_arena_battles,
)


def _row(i: int, a: str, b: str, prompt, winner: str) -> dict:
    flags = {"a": (1, 0, 0), "b": (0, 1, 0), "tie": (0, 0, 1)}[winner]
    return {
        "id": i,
        "model_a": a,
        "model_b": b,
        "prompt": prompt,
        "response_a": json.dumps(["answer a"]),
        "response_b": json.dumps(["answer b"]),
        "winner_model_a": flags[0],
        "winner_model_b": flags[1],
        "winner_tie": flags[2],
    }


GOOD = [
    _row(
        1, "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", ["Explain BT models.", "More?"], "a"
    ),
    _row(2, "llama-2-70b-chat", "claude-2.1", ["Write a haiku."], "b"),
    _row(3, "vicuna-33b", "gpt-3.5-turbo-0613", ["2+2?"], "tie"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reads_good_rows(tmp_path, suffix: str) -> None:
    path = tmp_path / f"battles{suffix}"
    write_arena_battles(GOOD, path)
    t = read_arena_battles(path)
    assert t.prompt.tolist() == ["Explain BT models.", "Write a haiku.", "2+2?"]
    assert t.model_a.tolist() == ["gpt-4-1106-preview", "llama-2-70b-chat", "vicuna-33b-v1.3"]
    assert t.model_b.tolist()[0] == "mixtral-8x7b-instruct-v0.1"
    assert t.outcome.tolist() == [0, 1, 2]
    assert set(t.source) == {"chatbot_arena"}
    joined = read_arena_battles(path, prompt_turns="join")
    assert joined.prompt[0] == "Explain BT models.\n\nMore?"


def test_winner_column_layout(tmp_path) -> None:
    path = tmp_path / "clean_battles.csv"
    pd.DataFrame(
        {
            "model_a": ["gpt-4-0314", "claude-1"],
            "model_b": ["claude-1", "gpt-4-0314"],
            "prompt": [json.dumps(["q1"]), json.dumps(["q2"])],
            "winner": ["model_b", "tie (bothbad)"],
        }
    ).to_csv(path, index=False)
    assert read_arena_battles(path).outcome.tolist() == [1, 2]


BAD_CASES = [
    # (row, field, fragment of the message)
    (
        _row(9, "gpt-4-1106-preview", "claude-2.1", "not json", "a"),
        "prompt",
        "JSON list of user turns",
    ),
    (_row(9, "gpt-4-1106-preview", "claude-2.1", [], "a"), "prompt", "JSON list"),
    (
        {**_row(9, "gpt-4-1106-preview", "claude-2.1", ["q"], "a"), "winner_model_b": 1},
        "winner_model_a",
        "exactly one",
    ),
    (
        {**_row(9, "gpt-4-1106-preview", "claude-2.1", ["q"], "a"), "winner_tie": 7},
        "winner_tie",
        "must be 0 or 1",
    ),
    (_row(9, "claude-2.1", "claude-2.1", ["q"], "a"), "model_b", "battle itself"),
    (_row(9, "gpt-4-1106-preview", "", ["q"], "a"), "model_b", "non-empty string"),
]


@pytest.mark.parametrize(("bad", "field", "fragment"), BAD_CASES)
def test_bad_row_names_file_row_field(tmp_path, bad: dict, field: str, fragment: str) -> None:
    path = tmp_path / "b.csv"
    write_arena_battles([*GOOD, bad], path)
    with pytest.raises(SourceFormatError) as info:
        read_arena_battles(path)
    err = info.value
    assert err.row == 3 and err.field == field and str(path) in str(err)
    assert fragment in str(err)


def test_unknown_model_names_file_row_field(tmp_path) -> None:
    path = tmp_path / "b.csv"
    write_arena_battles([*GOOD, _row(9, "not-a-model-x", "claude-2.1", ["q"], "a")], path)
    with pytest.raises(UnknownModelError, match=r"b\.csv, row 3, field 'model_a'"):
        read_arena_battles(path)


def test_skip_bad_rows_counts_and_logs(tmp_path, caplog) -> None:
    path = tmp_path / "b.csv"
    bads = [b for b, _, _ in BAD_CASES] + [_row(9, "not-a-model-x", "claude-2.1", ["q"], "a")]
    write_arena_battles([*GOOD, *bads], path)
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger="routellm_jax.data.sources"):
        t = read_arena_battles(path, skip_bad_rows=True, report=report)
    assert len(t) == len(GOOD)
    assert report.n_skipped == len(bads) and report.rows_read == len(GOOD) + len(bads)
    assert report.skipped_by_field["prompt"] == 2 and report.skipped_by_field["model_a"] == 1
    assert "skipped 7 bad row(s)" in caplog.text


def test_missing_column(tmp_path) -> None:
    path = tmp_path / "b.csv"
    pd.DataFrame(GOOD).drop(columns=["model_b"]).to_csv(path, index=False)
    with pytest.raises(SourceFormatError, match="missing column"):
        read_arena_battles(path)


def test_hub_path_fails_fast_offline(tmp_path, monkeypatch) -> None:
    # Nothing listens on port 9: the probe fails at once instead of retrying for tens of seconds.
    start = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="lmsys/lmsys-arena-human-preference-55k"):
        download_arena_battles(endpoint="http://127.0.0.1:9", timeout=2.0, cache_dir=tmp_path)
    assert time.monotonic() - start < 10
    with pytest.raises(SourceUnavailableError, match="offline"):
        download_arena_battles(offline=True, cache_dir=tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the environment switch works as well
    with pytest.raises(SourceUnavailableError, match="offline"):
        download_arena_battles(cache_dir=tmp_path)
    # load_arena_battles goes to the Hub only for a name that is not a local file.
    with pytest.raises(SourceUnavailableError):
        load_arena_battles("someone/not-a-local-file", offline=True)
