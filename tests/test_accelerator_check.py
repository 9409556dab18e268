"""``python -m tools.accelerator_check --dry-run`` runs every step of the accelerator check on CPU
(tiny shapes, no encoder weights) and writes its JSON and markdown; without an accelerator the
full check refuses to run rather than report CPU numbers as an accelerator's. Nothing is timed
here: the numbers are only checked to be there and finite."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from tools import accelerator_check

REPO = Path(__file__).resolve().parent.parent


def _check(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.accelerator_check", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _finite_positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("accelerator_check")
    proc = _check(["--dry-run", "--out", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "accelerator_check.json").read_text())
    return result, (out / "accelerator_check.md").read_text()


def test_dry_run_records_the_machine_and_every_step(dry_run):
    result, _ = dry_run
    assert result["dry_run"] is True
    machine = result["machine"]
    assert machine["status"] == "ok" and machine["devices"]
    assert {"kind", "platform", "memory_gib"} <= set(machine["devices"][0])
    assert machine["jax"] == jax.__version__ and machine["cpu"]
    assert "version" in machine["torch"]
    assert {"plan", "inference", "training", "sharding", "wall_s", "command"} <= set(result)
    # The startup comparison needs the MiniLM weights: skipped in the dry run, and saying so.
    assert result["startup"]["status"] == "skipped"
    assert "MiniLM" in result["startup"]["reason"]


def test_dry_run_inference_rows_are_finite_and_skips_say_why(dry_run):
    result, _ = dry_run
    default, bert = result["inference"]
    assert default["status"] == "ok" and default["router"] == "irt-mix-minilm"
    row = default["rows"]["jax-f32"]
    for key in ("bs1", "bs16", "bs256", "p50_ms", "p99_ms"):
        assert _finite_positive(row[key]), (key, row[key])
    # The dry run has no MiniLM weights: the torch reference is recorded as skipped, with why.
    assert default["torch_reference"]["status"] == "skipped"
    assert default["torch_reference"]["reason"]
    assert "torch-ref" not in default["rows"]
    assert bert["status"] == "skipped" and bert["reason"] and bert["router"] == "bert-minilm"


def test_dry_run_trains_mf_irt_and_bert_on_both_sides(dry_run):
    result, _ = dry_run
    rows = result["training"]
    assert [r["workload"] for r in rows] == ["mf", "irt", "bert classifier"]
    has_torch = result["machine"]["torch"]["version"] is not None
    # The dry run puts the torch references on CPU where torch has no CUDA.
    assert result["torch_device"] in (("cpu", "cuda") if has_torch else (None,))
    for r in rows:
        assert r["status"] == "ok", r
        assert _finite_positive(r["jax"]["examples_per_s"]) and math.isfinite(r["jax"]["loss"])
        torch_side = r["torch"]
        if not has_torch:
            assert torch_side["status"] == "skipped" and torch_side["reason"]
            assert "ratio" not in r
        else:
            assert math.isfinite(torch_side["loss"])
            assert _finite_positive(torch_side["examples_per_s"])
            assert _finite_positive(r["ratio"])


def test_dry_run_runs_the_sharding_tests_in_a_subprocess(dry_run):
    result, _ = dry_run
    sharding = result["sharding"]
    assert sharding["status"] == "ok" and sharding["returncode"] == 0
    assert "tests/training/test_sharding.py" in sharding["command"]
    assert sharding["counts"]["passed"] == len(sharding["tests"]) >= 1
    assert all(t["test"].startswith("test_") for t in sharding["tests"])


def test_dry_run_markdown_holds_the_tables(dry_run):
    result, md = dry_run
    assert md.startswith("### Accelerator check:") and "DRY RUN" in md
    assert "| router | variant | batch 1 | batch 16 | batch 256 |" in md
    assert "| irt-mix-minilm | jax-f32 |" in md
    for workload in ("mf", "irt", "bert classifier"):
        assert f"| {workload} |" in md
    assert "Sharding tests" in md and f"{result['sharding']['counts']['passed']} passed" in md
    assert "Not measured:" in md and "bert-minilm" in md  # the skipped steps are listed


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an accelerator would run the check")
def test_full_check_refuses_without_an_accelerator(tmp_path):
    proc = _check(["--out", str(tmp_path)])
    assert proc.returncode == 2
    assert "no accelerator" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "accelerator_check.json").exists()


def test_full_check_without_cuda_torch_skips_the_references_and_says_why():
    cpu_torch = {"version": "2.13.0+cpu", "cuda": False}
    device, why = accelerator_check.torch_device(False, cpu_torch)
    assert device is None and "2.13.0+cpu" in why and "CUDA" in why
    assert accelerator_check.torch_device(True, cpu_torch) == ("cpu", "")  # dry run only
    missing = {"version": None, "cuda": False, "reason": "torch not importable: x"}
    assert accelerator_check.torch_device(False, missing) == (None, "torch not importable: x")
    assert accelerator_check.torch_device(False, {"version": "2", "cuda": True}) == ("cuda", "")


def test_markdown_shows_a_skipped_torch_side_as_not_measured():
    ours = {"examples_per_s": 1000.0, "loss": 0.5}
    row = accelerator_check._pair("irt", 1024, ours, None, "torch has no CUDA")
    measured = accelerator_check._pair("mf", 64, ours, {"examples_per_s": 500.0}, "")
    assert "ratio" not in row and measured["ratio"] == 2.0
    result = {
        "dry_run": False,
        "command": "python -m tools.accelerator_check --out x",
        "wall_s": 1.0,
        "machine": {"devices": [{"kind": "NVIDIA H100", "memory_gib": 79.0}], "torch": {}},
        "inference": [{"status": "skipped", "reason": "no prompts", "router": "irt-mix-minilm"}],
        "training": [
            measured,
            row,
            {"status": "failed", "reason": "RuntimeError: x", "step": "training: bert classifier"},
        ],
        "sharding": {"status": "failed", "reason": "timed out after 300 s"},
    }
    md = accelerator_check.markdown(result)
    assert "| irt | 1024 | 1,000 | - | - |" in md
    assert "| mf | 64 | 1,000 | 500 | 2.00x |" in md
    assert "- torch irt batch 1024: torch has no CUDA" in md
    assert "- inference irt-mix-minilm: skipped: no prompts" in md
    assert "- training: bert classifier: failed: RuntimeError: x" in md
    assert "- sharding: timed out after 300 s" in md and "DRY RUN" not in md


def test_markdown_shows_the_startup_comparison():
    result = {
        "dry_run": False,
        "command": "python -m tools.accelerator_check --out x",
        "wall_s": 1.0,
        "machine": {"devices": [{"kind": "NVIDIA H100", "memory_gib": 79.0}], "torch": {}},
        "inference": [],
        "training": [],
        "startup": {
            "status": "ok",
            "command": "python tools/bench_startup.py --repeats 3",
            "summary": {
                "jax": {"first_s": 2.0, "rss_mib": 900.0},
                "torch": {"first_s": 5.0, "rss_mib": 450.0},
            },
            "ratio_first_decision": 2.5,
        },
        "sharding": {"status": "failed", "reason": "timed out after 300 s"},
    }
    md = accelerator_check.markdown(result)
    assert "JAX 2.00 s to first decision, 900 MiB peak RSS" in md
    assert "torch + transformers (CPU) 5.00 s, 450 MiB; 2.50x." in md
    result["startup"] = {"status": "failed", "reason": "the two sides disagree"}
    assert "- startup: failed: the two sides disagree" in accelerator_check.markdown(result)
