"""The evaluation on the real RouteLLM files: counts, the paper's recomputed oracle numbers, the
random router near 0.5, the golden split, and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routellm_jax.eval import evaluate as E
from routellm_jax.eval import golden
from routellm_jax.eval.benchmarks import gsm8k_benchmark, mmlu_benchmark, mt_bench_benchmark


@pytest.fixture(scope="module")
def mmlu(data_dir):
    return mmlu_benchmark(data_dir)


@pytest.fixture(scope="module")
def gsm8k(data_dir):
    return gsm8k_benchmark(data_dir)


def test_counts_and_metadata(mmlu, gsm8k, data_dir):
    assert len(mmlu) == 14037 and len(gsm8k) == 1307
    assert mmlu.metadata["rows_before_decontamination"] == 14042
    assert mmlu.metadata["removed_by_decontamination"] == 5
    assert gsm8k.metadata["removed_by_decontamination"] == 12
    mt = mt_bench_benchmark(strong="unify", weak="martian", data_dir=data_dir)
    assert len(mt) == 72 and mt.kind == "grade"
    assert mt.metadata["removed_by_decontamination"] == 8
    assert mt.metadata["failed_scores_dropped"] == 1  # one -1 grade in the file
    assert E.evaluate_oracle(mt).notes["budget_rounding"] == "floor"  # as the reference's MT-Bench
    assert E.evaluate_oracle(mmlu).notes["budget_rounding"] == "interpolate"


# The paper's notes (routellm_v4_tables.md): oracle APGR trapezoid (capped) recomputed from these
# files: MMLU 1.289 (0.930), GSM8K 1.131 (0.886).
@pytest.mark.parametrize(
    ("name", "apgr", "capped"), [("mmlu", 1.289, 0.930), ("gsm8k", 1.131, 0.886)]
)
def test_oracle_matches_paper(name, apgr, capped, mmlu, gsm8k):
    bench = {"mmlu": mmlu, "gsm8k": gsm8k}[name]
    m = E.evaluate_oracle(bench).metrics
    assert m.apgr_trapezoid == pytest.approx(apgr, abs=1e-3)
    assert m.apgr_trapezoid_capped == pytest.approx(capped, abs=1e-3)


def test_random_is_half(mmlu, gsm8k):
    for bench, tol in ((mmlu, 0.02), (gsm8k, 0.03)):
        r = E.evaluate_random_seeds(bench, range(10))
        assert r.metrics.apgr_trapezoid == pytest.approx(0.5, abs=tol)
        assert r.metrics.cpt[0.5] == pytest.approx(0.5, abs=tol)
        assert r.metrics.apgr_10pt == pytest.approx(0.55, abs=tol)
        exp = E.evaluate_random_expected(bench).metrics
        assert exp.apgr_trapezoid == pytest.approx(0.5) and exp.cpt[0.5] == pytest.approx(0.5)


def test_golden_split_regenerates_and_is_excluded(mmlu, data_dir):
    committed = golden.golden_split_path().read_text(encoding="utf-8")
    assert golden.golden_file_text(data_dir) == committed
    ids = golden.golden_split_ids()
    all_ids = {golden.prompt_id(p) for p in mmlu.prompts}
    assert ids <= all_ids  # every golden id is a decontaminated MMLU question
    rest = mmlu.without_golden()
    assert len(rest) == 14037 - 1500 == 12537
    assert not any(golden.is_golden(p) for p in rest.prompts[:2000])
    assert ids.isdisjoint(golden.prompt_id(p) for p in rest.prompts)
    assert rest.metadata["golden_split_excluded"] is True


def test_make_golden_split_tool_check(data_dir):
    script = Path(__file__).resolve().parents[2] / "tools" / "make_golden_split.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def test_cli_end_to_end(tmp_path, data_dir, capsys):
    from routellm_jax.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "--benchmark",
            "gsm8k",
            "--router",
            "prompt_length",
            "--data-dir",
            str(data_dir),
            "--random-seeds",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| prompt_length |" in printed and "| oracle | 1.1309 | 0.8861 |" in printed
    data = json.loads((out / "gsm8k.json").read_text())
    assert data["benchmark"]["n"] == 1307
    names = [r["name"] for r in data["results"]]
    assert names == ["prompt_length", "random (expected)", "random (mean of 3 seeds)", "oracle"]
    assert (out / "gsm8k.png").stat().st_size > 1000 and (out / "gsm8k.md").is_file()
    assert np.isfinite(data["results"][0]["metrics"]["apgr_trapezoid"])


def test_cli_errors(data_dir, capsys):
    from routellm_jax.cli import main

    assert main(["eval", "--benchmark", "nope.csv", "--strong", "a", "--weak", "b"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    code = main(["eval", "--benchmark", "mt-bench", "--data-dir", str(data_dir)])
    assert code == 2 and "needs --strong and --weak" in capsys.readouterr().err
    code = main(["eval", "--benchmark", "mmlu", "--strong", "x", "--data-dir", str(data_dir)])
    assert code == 2 and "only has the paper's pair" in capsys.readouterr().err
