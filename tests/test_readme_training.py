"""The README's "Train your own router" commands run as written, through the real command line.

Each command of the section's bash block runs as a subprocess, in order, in a fresh folder that
holds only a link to ``experiments/``. What the test adds is size: ``--config.*`` overrides
appended to each ``train`` command (a few steps on a small records folder, the weight-free
``hashing:`` featurizer instead of MiniLM, a tiny random encoder for bert) and the resume step
mapped onto one the small run keeps. ``zoo export``, ``eval`` and ``route`` run unchanged on the
trained router (they read the routing data for calibration and the benchmarks).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routellm_jax import paths
from routellm_jax.data.records import (
    Comparison,
    ComparisonTable,
    Outcome,
    OutcomeTable,
    TrainingData,
)

ROOT = paths.repo_root()
MODELS = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "claude-2.1")
TINY_BERT = (
    "{'vocab_size': 30522, 'hidden_size': 32, 'num_hidden_layers': 2, "
    "'num_attention_heads': 4, 'intermediate_size': 64, 'max_position_embeddings': 64}"
)


def training_commands() -> list[list[str]]:
    """The commands of the README's "Train your own router" bash block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Train your own router", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no bash block in 'Train your own router'"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line]


def _records(folder: Path) -> Path:
    """Battles of the paper's pair (and a third model) plus per-model outcomes: enough rows for
    every architecture the section trains (mf, bert on the pair's battles, irt)."""
    from routellm_jax.data.prepare import save_training_data

    rng = np.random.default_rng(0)
    words = "math proof code poem story essay physics joke riddle sql".split()
    battles, outcomes = [], []
    for i in range(192):
        prompt = " ".join(rng.choice(words, size=5)) + f" item {i}"
        hard = sum(w in prompt for w in ("math", "proof", "code", "physics"))
        a, b = (0, 1) if i % 3 else (int(rng.integers(0, 3)), 2)
        if a == b:
            a = 1
        win = "a" if rng.random() < 0.3 + 0.15 * hard else "b"
        battles.append(Comparison(prompt, MODELS[a], MODELS[b], win))
        for j, model in enumerate(MODELS):
            outcomes.append(
                Outcome(prompt, model, float(rng.random() < 0.8 - 0.1 * hard - 0.2 * j))
            )
    data = TrainingData.of(
        ComparisonTable.from_records(battles), OutcomeTable.from_records(outcomes)
    )
    return save_training_data(data, folder)


def _sized(argv: list[str], records: Path, resume_step: int) -> list[str]:
    """``argv`` with the test's size overrides appended (train) or unchanged (other commands)."""
    if argv[:2] != ["routellm-jax", "train"]:
        return argv
    out = list(argv)
    if "--resume-step" in out:  # a step the small run keeps (checkpoints every 2, keep 2)
        out[out.index("--resume-step") + 1] = str(resume_step)
    config = out[2]
    small = [
        f"--config.data.records={records}",
        "--config.batch_size=16",
        "--config.log_every=2",
        "--config.eval.every=2",
        "--config.eval.batch_size=16",
        "--config.eval.benchmark=",
        "--config.checkpoint.every=2",
        "--config.checkpoint.keep=2",
        "--config.checkpoint.async_save=False",
        "--config.optimizer.warmup_steps=1",
        "--no-progress",
    ]
    if "bert_minilm" in config:
        small += [
            "--config.steps=2",
            "--config.arch_config.pretrained=False",
            f"--config.arch_config.encoder_config={TINY_BERT}",
            "--config.arch_config.max_length=32",
            "--config.data.length_buckets=(32,)",
        ]
    elif "grid.py" in config:  # irt on MiniLM+shape (393 features): hashed features instead
        small += ["--config.steps=4", "--config.arch_config.featurizer=hashing:393"]
    else:  # mf on MiniLM (384)
        steps = 6 if ("--resume" in out or "--resume-step" in out) else 4
        small += [
            f"--config.steps={steps}",
            "--config.arch_config.featurizer=hashing:384",
        ]
    return out + small


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "routellm_jax.cli", *argv[1:]]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"README command failed ({proc.returncode}): {shlex.join(argv)}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.mark.slow  # eight command-line runs, each starting JAX
def test_readme_training_section_runs_as_written(tmp_path: Path, data_dir: Path) -> None:
    commands = training_commands()
    kinds = [c[1] for c in commands]
    assert kinds.count("train") >= 3 and {"zoo", "eval", "route"} <= set(kinds), kinds
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    records = _records(tmp_path / "tiny_records")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "ROUTELLM_JAX_DATA": str(data_dir.absolute()),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "",  # one device: the README's commands on a plain CPU
    }
    outputs = []
    for argv in commands:
        assert argv[0] == "routellm-jax", argv
        proc = _run(_sized(argv, records, resume_step=4), tmp_path, env)
        outputs.append((argv, proc))

    resumed = [p for a, p in outputs if "--resume" in a]
    assert "resuming from step 4 " in resumed[0].stdout, resumed[0].stdout
    from_step = [p for a, p in outputs if "--resume-step" in a]
    assert "resuming from step 4 " in from_step[0].stdout, from_step[0].stdout
    export = next(p for a, p in outputs if a[1:3] == ["zoo", "export"])
    assert re.search(r"gsm8k: APGR 0\.\d{4}", export.stdout), export.stdout
    manifest = json.loads((tmp_path / "my_zoo" / "manifest.json").read_text())
    assert [e["name"] for e in manifest["entries"]] == ["my-router"]
    evaluation = next(p for a, p in outputs if a[1] == "eval")
    assert "APGR" in evaluation.stdout or "apgr" in evaluation.stdout, evaluation.stdout
    assert list((tmp_path / "plots").glob("*.png")), "eval --out wrote no plot"
    route = next(p for a, p in outputs if a[1] == "route")
    assert "Is 1009 prime?" in route.stdout and any(m in route.stdout for m in MODELS[:2])


def test_resume_on_a_changed_config_lists_the_differing_keys(tmp_path: Path) -> None:
    """``--resume`` with an edited experiment file fails naming the keys; naming them in
    overrides continues with the checkpoint's config changed only there."""
    # tests/training/tiny_router.py, loaded by path: pytest puts that folder on the import path
    # only for the tests in it.
    spec = importlib.util.spec_from_file_location(
        "tiny_router", ROOT / "tests" / "training" / "tiny_router.py"
    )
    tiny_router = sys.modules.get("tiny_router") or importlib.util.module_from_spec(spec)
    if "tiny_router" not in sys.modules:
        sys.modules["tiny_router"] = tiny_router
        spec.loader.exec_module(tiny_router)
    from routellm_jax.data.prepare import save_training_data

    records = save_training_data(tiny_router.make_data(64), tmp_path / "records")
    exp = tmp_path / "exp.py"

    def write(steps: int, lr: float) -> None:
        exp.write_text(
            "import tiny_router\n\n\ndef get_config():\n"
            f"    c = tiny_router.base_config({str(records)!r}, steps={steps})\n"
            f"    c.optimizer.lr = {lr}\n    c.eval.every = 0\n    return c\n"
        )

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "training")]),
        "ROUTELLM_JAX_PLUGINS": "tiny_router",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "",
    }
    base = [sys.executable, "-m", "routellm_jax.cli", "train", str(exp), "--workdir", "run"]
    run = lambda *extra: subprocess.run(  # noqa: E731
        [*base, "--no-progress", *extra], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    write(steps=4, lr=1e-3)
    first = run()
    assert first.returncode == 0, first.stderr
    write(steps=8, lr=5e-3)  # the file is edited after the run
    changed = run("--resume")
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert "optimizer.lr (now 0.005, saved 0.001)" in changed.stderr, changed.stderr
    assert "steps (now 8, saved 4)" in changed.stderr, changed.stderr
    named = run("--resume", "--config.steps=8", "--config.optimizer.lr=0.005", "-v")
    assert named.returncode == 0, named.stderr
    assert "resuming from step 4 " in named.stdout, named.stdout
    assert "done: tiny_test_router step 8" in named.stdout, named.stdout
    # -v: the project's own lines, not Orbax's or absl's per-save chatter.
    assert "routellm_jax.training" in named.stderr, named.stderr
    assert not re.search(r"^\S+ \S+ (absl|orbax|jax)\S*: ", named.stderr, re.M), named.stderr
    write(steps=8, lr=5e-3)
    only_steps = run("--resume", "--config.steps=12")  # steps named: no other difference left
    assert only_steps.returncode == 0, only_steps.stderr
    assert "resuming from step 8 " in only_steps.stdout, only_steps.stdout
