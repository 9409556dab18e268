"""``tools/bench_infer.py``'s float32 ceiling: the FLOP count it divides by and the verdict it
prints (the timings themselves are the tool's business, not a test's)."""

from __future__ import annotations

import doctest

import pytest

from routellm_jax.models.encoders.bert import BertConfig
from tools import bench_infer, bench_train

MINILM = BertConfig(**bench_train.MINILM)


def test_doctests_run():
    failed, attempted = doctest.testmod(bench_infer, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failed == 0


def test_ceiling_counts_minilm_at_about_22_mflop_per_token():
    c = bench_infer.float32_ceiling(MINILM, 58.0, rounds=1, reps=1)
    per_token = c["flops_per_prompt"] / 58.0
    assert 21e6 < per_token < 23e6  # 6 layers x (4 h^2 + 2 h i) x 2 plus attention
    assert c["prompts_per_s"] == pytest.approx(c["gflops"] * 1e9 / c["flops_per_prompt"])


def _verdict(rows, agreement, capsys):
    ceiling = {"gflops": 200.0, "flops_per_prompt": 1.25e9, "prompts_per_s": 160.0}
    met = bench_infer.print_ceiling(ceiling, rows, agreement, list(rows))
    return met, capsys.readouterr().out


def test_ceiling_met_by_float32_at_80_percent(capsys):
    rows = {"jax-f32": {"bs256": 130.0}}
    agreement = {"jax-f32": {"max_diff": 1e-7, "agree_at_half": 1.0}}
    met, out = _verdict(rows, agreement, capsys)
    assert met and "81% of the float32 ceiling" in out


def test_ceiling_past_it_only_within_tolerance(capsys):
    rows = {"jax-f32": {"bs256": 100.0}, "jax-bf16": {"bs256": 180.0}}
    close = {"max_diff": 5e-4, "agree_at_half": 0.995}
    f32 = {"max_diff": 1e-7, "agree_at_half": 1.0}
    assert _verdict(rows, {"jax-f32": f32, "jax-bf16": close}, capsys)[0]
    far = {"max_diff": 3e-3, "agree_at_half": 1.0}
    assert not _verdict(rows, {"jax-f32": f32, "jax-bf16": far}, capsys)[0]
    disagreeing = {"max_diff": 5e-4, "agree_at_half": 0.98}
    assert not _verdict(rows, {"jax-f32": f32, "jax-bf16": disagreeing}, capsys)[0]
    slow = {"jax-f32": {"bs256": 100.0}, "jax-bf16": {"bs256": 150.0}}
    assert not _verdict(slow, {"jax-f32": f32, "jax-bf16": close}, capsys)[0]
