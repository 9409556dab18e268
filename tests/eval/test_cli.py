"""``routellm-jax eval`` on a small outcome table written here (no shared data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import routellm_jax
from routellm_jax.cli import main
from routellm_jax.data.records import Outcome, OutcomeTable


@pytest.fixture()
def table_path(tmp_path):
    rows = []
    for i in range(40):
        p = f"prompt {i} " + "x" * i
        rows += [Outcome(p, "big", float(i % 3 != 0)), Outcome(p, "small", float(i % 2 == 0))]
    path = tmp_path / "toy.parquet"
    OutcomeTable.from_records(rows).save(path)
    return path


class _FakeRouter:
    models = ("big", "small")

    def __init__(self):
        self.calls = []

    def win_rate(self, prompts, strong=None, weak=None):
        self.calls.append((len(prompts), strong, weak))
        return np.linspace(0, 1, len(prompts))


def test_zoo_router_branch_gets_the_benchmark_pair(table_path, monkeypatch, capsys):
    fake = _FakeRouter()
    loaded = []
    monkeypatch.setattr(
        routellm_jax, "load", lambda name: loaded.append(name) or fake, raising=False
    )
    code = main(
        [
            "eval",
            "--benchmark",
            str(table_path),
            "--strong",
            "big",
            "--weak",
            "small",
            "--router",
            "my-entry",
            "--random-seeds",
            "2",
            "--json",
        ]
    )
    assert code == 0 and loaded == ["my-entry"]
    assert fake.calls == [(40, "big", "small")]
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["results"]][0] == "my-entry"
    assert data["benchmark"]["n"] == 40
    # no prices for these models: cost columns empty, and the reason is said
    assert data["results"][0]["cost"] is None


def test_markdown_with_prices_and_num_thresholds(table_path, tmp_path, capsys):
    code = main(
        [
            "eval",
            "--benchmark",
            str(table_path),
            "--strong",
            "big",
            "--weak",
            "small",
            "--router",
            "oracle",
            "--random-seeds",
            "2",
            "--num-thresholds",
            "4",
            "--price",
            "big=10,30",
            "--price",
            "small=1,1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| oracle |" in out and "| random (expected) | 0.5000 |" in out
    data = json.loads((tmp_path / "o" / "toy.json").read_text())
    oracle = data["results"][-1]
    assert len(oracle["curve"]["strong_share"]) == 5
    assert oracle["cost"]["strong_request_cost_usd"] == pytest.approx((95 * 10 + 264 * 30) / 1e6)


def test_bad_arguments(table_path, capsys):
    assert main(["eval", "--benchmark", str(table_path), "--strong", "big", "--weak", "nope"]) == 2
    assert "weak model 'nope' not in the outcome table" in capsys.readouterr().err
    # A bad flag value is argparse's usage error: exit code 2 before any work.
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--benchmark", str(table_path), "--num-thresholds", "0"])
    assert exc.value.code == 2
    assert "--num-thresholds: must be at least 1" in capsys.readouterr().err
