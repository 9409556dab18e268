"""The development suite (routellm_jax.eval.dev_suite): equal-weight group shares, the inversion
margin, the math difficulty proxy, and ``routellm-jax eval --dev-suite``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import routellm_jax
from routellm_jax.cli import main
from routellm_jax.data.records import Outcome, OutcomeTable
from routellm_jax.eval import dev_suite as D
from routellm_jax.eval.benchmarks import Benchmark


def _bench(name: str, n: int, gain: float) -> Benchmark:
    prompts = np.array([f"{name} {i}" for i in range(n)], dtype=object)
    return Benchmark(name, prompts, np.full(n, 0.5 + gain), np.full(n, 0.5), "s", "w")


def test_group_shares_weigh_groups_equally_not_by_size() -> None:
    # One high prompt in a group of 1 and three lower ones in a group of 3: by prompt count the 50%
    # would take 2 of 4 prompts (one of b); by group weight, a's single prompt is already half.
    shares = D.group_shares({"a": np.array([0.9]), "b": np.array([0.8, 0.7, 0.1])})
    assert shares == {"a": 1.0, "b": 0.0}
    shares = D.group_shares({"a": np.array([0.1]), "b": np.array([0.8, 0.7, 0.9])})
    assert shares == {"a": 0.0, "b": 1.0}


def test_inversion_margin_is_the_smaller_hard_share_minus_open_ended() -> None:
    suite = {g: _bench(g, 4, 0.1) for g in D.TASK_GROUPS}
    # open-ended highest, then code; math lowest: an inversion (negative margin).
    rates = {
        "code": np.array([0.7, 0.7, 0.2, 0.2]),
        "math": np.array([0.1, 0.1, 0.1, 0.1]),
        "reasoning": np.array([0.6, 0.6, 0.6, 0.6]),
        "open_ended": np.array([0.9, 0.9, 0.9, 0.9]),
        "knowledge": np.array([0.3, 0.3, 0.3, 0.3]),
    }
    r = D.score_dev_suite(suite, rates, "x")
    assert r.strong_share["open_ended"] == 1.0 and r.strong_share["math"] == 0.0
    assert r.inversion_margin == pytest.approx(-1.0)
    assert r.mean_apgr == pytest.approx(np.mean(list(r.apgr.values())))


def test_route_suite_splits_one_call_back_into_groups() -> None:
    suite = {"a": _bench("a", 2, 0.2), "b": _bench("b", 3, 0.2)}
    calls = []

    def fn(prompts):
        calls.append(list(prompts))
        return np.arange(len(prompts), dtype=float)

    out = D.route_suite(suite, fn)
    assert len(calls) == 1 and calls[0][:2] == ["a 0", "a 1"]
    assert out["a"].tolist() == [0.0, 1.0] and out["b"].tolist() == [2.0, 3.0, 4.0]


def test_math_proxy_is_mean_correctness_and_drops_training_texts() -> None:
    t = OutcomeTable.from_records(
        [Outcome("Q one", m, s) for m, s in (("a", 1.0), ("b", 0.0), ("c", 0.0))]
        + [Outcome("Q two", "a", 1.0), Outcome("Q three", "a", 0.0)]
    )
    b = D.math_proxy_benchmark(t, exclude=frozenset({"q two"}))
    assert b.prompts.tolist() == ["Q one", "Q three"]
    assert b.weak_scores.tolist() == pytest.approx([1 / 3, 0.0])
    assert b.strong_scores.tolist() == [1.0, 1.0]


def test_report_writes_table_json_and_plot(tmp_path: Path) -> None:
    suite = {g: _bench(g, 4, 0.1) for g in D.TASK_GROUPS}
    rows = [D.score_dev_suite(suite, {g: np.linspace(0, 1, 4) for g in suite}, "r")]
    paths = D.write_dev_report(tmp_path, rows, suite)
    assert "| r |" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["rows"][0]["router"] == "r"
    assert paths["plot"].stat().st_size > 0


def test_eval_needs_exactly_one_of_benchmark_and_dev_suite(capsys) -> None:
    assert main(["eval", "--router", "random"]) == 2
    assert main(["eval", "--dev-suite", "--benchmark", "gsm8k"]) == 2
    assert "either --benchmark or --dev-suite" in capsys.readouterr().err


class _FakeRouter:
    models = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")

    def win_rate(self, prompts, strong=None, weak=None):
        # Code-looking prompts to the strong model: the fake has no inversion.
        assert (strong, weak) == self.models
        return np.array([0.9 if "def " in p or "python" in p.lower() else 0.4 for p in prompts])


def test_cli_dev_suite_scores_a_zoo_router_on_the_real_suite(
    data_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(routellm_jax, "load", lambda name: _FakeRouter())
    out = tmp_path / "dev"
    assert main(["eval", "--dev-suite", "--router", "fake", "--out", str(out), "--json"]) == 0
    rows = {r["router"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"fake", "prompt_length", "random", "oracle"}
    fake = rows["fake"]["strong_share_at_50"]
    assert fake["code"] > fake["open_ended"]
    assert rows["oracle"]["mean_apgr"] > rows["random"]["mean_apgr"]
    assert sorted(p.name for p in out.iterdir()) == [
        "dev_suite.json",
        "dev_suite.md",
        "dev_suite.png",
    ]


def test_a_suite_without_the_compared_groups_has_no_margin_and_still_tabulates() -> None:
    b = _bench("open_ended", 2, 0.2)
    r = D.score_dev_suite({"open_ended": b}, {"open_ended": np.array([0.9, 0.1])}, "x")
    assert np.isnan(r.inversion_margin)
    assert D.dev_table_markdown([r], {"open_ended": b}).splitlines()[-1].endswith("| - |")


def _pooled(rng: np.random.Generator) -> Benchmark:
    """Two sources of 20 prompts with different gaps, pooled as one group."""
    parts = []
    for name, gap in (("arc", 0.6), ("wino", 0.2)):
        strong = (rng.random(20) < 0.5 + gap / 2).astype(float)
        weak = (rng.random(20) < 0.5 - gap / 2).astype(float)
        prompts = np.array([f"{name} {i}" for i in range(20)], dtype=object)
        parts.append(Benchmark(name, prompts, strong, weak, "s", "w"))
    return D._concat("reasoning", parts)


def test_source_apgr_ignores_how_one_source_ranks_against_the_other() -> None:
    bench = _pooled(np.random.default_rng(0))
    rates = np.random.default_rng(1).random(40)
    # The same ranking within each source; one source lifted above or dropped below the other.
    up, down = rates.copy(), rates.copy()
    up[:20] += 1.0
    down[20:] += 1.0
    a = D.score_dev_suite({"reasoning": bench}, {"reasoning": up / 2})
    b = D.score_dev_suite({"reasoning": bench}, {"reasoning": down / 2})
    assert a.apgr["reasoning"] != pytest.approx(b.apgr["reasoning"])
    assert a.source_apgr["reasoning"] == pytest.approx(b.source_apgr["reasoning"])
    assert set(a.source_apgr["reasoning"]) == {"arc", "wino"}
    assert a.mean_source_apgr == pytest.approx(np.mean(list(a.source_apgr["reasoning"].values())))
    assert D.DevScores.from_dict(a.to_dict()) == a
    assert "mean by source" in D.dev_table_markdown([a], {"reasoning": bench})


def test_a_subset_of_a_pooled_group_is_scored_without_its_stale_parts() -> None:
    bench = _pooled(np.random.default_rng(0)).take(np.arange(30))  # metadata still says 20 + 20
    scores = D.score_dev_suite({"reasoning": bench}, {"reasoning": np.linspace(0, 1, 30)})
    assert scores.source_apgr == {}
    assert np.isnan(scores.mean_source_apgr)
