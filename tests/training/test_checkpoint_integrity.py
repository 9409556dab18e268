"""Checkpoint integrity: a flipped byte is a clear error that keeps the good checkpoint, a NaN loss
stops the run before it is saved (or, when told to train on, retention keeps the newest finite
step), and a resumed run does not log any step twice."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import textwrap
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_router

from routellm_jax.cli import build_parser, main
from routellm_jax.training import sharding as S
from routellm_jax.training.checkpoints import (
    CheckpointCorruptError,
    Checkpointer,
    CheckpointNotFoundError,
    checkpoint_dir,
    load_params,
    superseded_dir,
)
from routellm_jax.training.config import make_optimizer
from routellm_jax.training.train import NonFiniteLossError, Trainer, first_nonfinite, train

STEPS = 8  # conftest's reference_run: 8 steps on 8 devices, checkpoints every 2, keep 2


def _copy_run(reference_run, tmp_path: Path) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(reference_run.workdir, workdir)
    return workdir


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def _steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in checkpoint_dir(workdir).iterdir() if p.name.isdigit())


def _rows(workdir: Path, name: str = "metrics.jsonl") -> list[dict]:
    path = workdir / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _assert_no_step_logged_twice(workdir: Path) -> None:
    # A step has at most one train row and one eval row.
    kinds = Counter(
        (r["step"], next(k for k in r if "/" in k).split("/")[0]) for r in _rows(workdir)
    )
    assert all(n == 1 for n in kinds.values()), sorted(k for k, n in kinds.items() if n > 1)


def _assert_trees_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_is_a_clear_error_and_resume_from_the_printed_step_works(
    reference_run, tiny_records, tmp_path, capsys
):
    workdir = _copy_run(reference_run, tmp_path)
    step_dir = checkpoint_dir(workdir) / str(STEPS)
    victim = max(
        (p for p in Path(step_dir, "state").rglob("*") if p.is_file()), key=os.path.getsize
    )
    size = os.path.getsize(victim)
    _flip_byte(victim)
    assert os.path.getsize(victim) == size  # same size: a sizes-only manifest cannot see it
    rel = str(victim.relative_to(step_dir))
    before = _snapshot(workdir)

    exp = tmp_path / "tiny_exp.py"
    exp.write_text(
        textwrap.dedent(
            f"""
            import tiny_router

            def get_config():
                return tiny_router.base_config({str(tiny_records)!r}, steps={STEPS})
            """
        )
    )
    argv = ["train", str(exp), "--workdir", str(workdir), "--no-progress"]
    assert main([*argv, "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint step {STEPS}" in err and rel in err and "SHA-256" in err
    command = f"routellm-jax train {exp} --workdir {workdir} --no-progress --resume-step 6"
    assert f"`{command}`" in err  # this run's own command line, resuming from step 6
    # Nothing written, nothing rotated away: both checkpoints are there, byte for byte.
    assert _snapshot(workdir) == before and _steps(workdir) == [6, STEPS]

    with pytest.raises(CheckpointCorruptError, match=rel) as info:
        load_params(workdir)
    assert info.value.step == STEPS and info.value.file == rel and info.value.previous_step == 6
    with pytest.raises(CheckpointNotFoundError, match=r"no step 5; it has \[6, 8\]"):
        train(tiny_router.base_config(str(tiny_records), steps=STEPS), workdir, resume_step=5)

    # The printed command resumes from step 6 and ends where the uninterrupted run did.
    assert main(shlex.split(command)[1:]) == 0
    assert _steps(workdir) == [6, STEPS]
    _assert_trees_equal(load_params(workdir)[2], jax.device_get(reference_run.params))
    moved = superseded_dir(workdir) / str(STEPS)
    # The corrupt step was moved aside, not deleted.
    digest = hashlib.sha256((moved / rel).read_bytes()).hexdigest()
    assert digest == before[f"checkpoints/{STEPS}/{rel}"]
    _assert_no_step_logged_twice(workdir)
    assert {r["step"] for r in _rows(workdir, "metrics.superseded.jsonl")} == {STEPS}


def test_resume_after_a_kill_does_not_log_steps_twice(reference_run, tiny_records, tmp_path):
    workdir = _copy_run(reference_run, tmp_path)
    # As if killed after logging step 8 but before its checkpoint was committed.
    shutil.rmtree(checkpoint_dir(workdir) / str(STEPS))
    assert any(r["step"] == STEPS for r in _rows(workdir))
    resumed = train(
        tiny_router.base_config(str(tiny_records), steps=STEPS),
        workdir,
        resume=True,
        progress=False,
    )
    _assert_trees_equal(jax.device_get(resumed.params), jax.device_get(reference_run.params))
    _assert_no_step_logged_twice(workdir)
    assert [r["step"] for r in _rows(workdir)] == [r["step"] for r in _rows(reference_run.workdir)]


def _nan_config(records, steps: int, **over):
    config = tiny_router.base_config(str(records), steps=steps, **over)
    config.arch_config.noise = float("nan")  # every loss from the first resumed step on is NaN
    return config


def test_nan_loss_stops_without_saving_or_rotating(reference_run, tiny_records, tmp_path):
    workdir = _copy_run(reference_run, tmp_path)
    before = _snapshot(checkpoint_dir(workdir))
    with pytest.raises(NonFiniteLossError, match=f"step {STEPS + 1}: non-finite") as info:
        train(_nan_config(tiny_records, STEPS + 4), workdir, resume=True, progress=False)
    assert info.value.step == STEPS + 1 and info.value.newest_checkpoint == STEPS
    assert f"--resume-step {STEPS}" in str(info.value) and "stop_on_nonfinite=False" in str(
        info.value
    )
    assert _snapshot(checkpoint_dir(workdir)) == before  # no step 10, steps 6 and 8 untouched


def test_training_on_through_nan_keeps_the_newest_finite_checkpoint(
    reference_run, tiny_records, tmp_path
):
    workdir = _copy_run(reference_run, tmp_path)
    config = _nan_config(tiny_records, STEPS + 4, stop_on_nonfinite=False)
    result = train(config, workdir, resume=True, progress=False)
    assert np.isnan(result.metrics["train/loss"])
    # keep=2 keeps 10 and 12; step 8, the newest finite one, is kept as well.
    assert result.checkpoint_steps == [STEPS, STEPS + 2, STEPS + 4]
    ckpt = Checkpointer(workdir)
    assert [ckpt.read_json(s, "meta")["finite"] for s in ckpt.all_steps()] == [True, False, False]
    assert ckpt.newest_finite_step() == STEPS
    ckpt.close()


def test_update_norm_flags_a_nan_optimizer_state_behind_a_finite_loss(tiny_arch, eight_devices):
    config = tiny_router.base_config("unused", steps=4)
    tx, schedule = make_optimizer(config.optimizer, 4)
    mesh = S.make_mesh({"data": 1}, eight_devices[:1])
    trainer = Trainer(tiny_arch, tiny_router.TinyConfig(), tx, mesh, schedule=schedule)
    state = trainer.init(jax.random.PRNGKey(0))
    state["opt_state"] = jax.tree_util.tree_map(
        lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        state["opt_state"],
    )
    batch = {"x": jnp.ones((4, 16)), "y": jnp.ones((4,)), "weight": jnp.ones((4,))}
    _, metrics = trainer.step(state, batch)
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])
    step, values = first_nonfinite([(1, metrics)])
    assert step == 1 and np.isnan(values["update_norm"])


def test_train_cli_parses_resume_step(tmp_path):
    argv = ["train", "exp.py", "--workdir", str(tmp_path), "--resume-step", "6"]
    args = build_parser(argv).parse_args(argv)
    assert args.resume_step == 6 and not args.resume
