"""Checkpoints: kill -9 + resume equals an uninterrupted run, 8 -> 1 device restore, corrupt
checkpoints, 2-process training, and a user architecture trained through the public entry point."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_router

from routellm_jax.models import registry
from routellm_jax.training import sharding as S
from routellm_jax.training.checkpoints import (
    CheckpointCorruptError,
    Checkpointer,
    checkpoint_dir,
    load_params,
    verify_manifest,
)
from routellm_jax.training.config import make_optimizer
from routellm_jax.training.train import Trainer, train

HERE = Path(__file__).parent
STEPS = 8  # conftest's reference_run: 8 steps on 8 devices, checkpoints every 2, keep 2


def _assert_trees_close(a, b, atol=1e-6):
    la, lb = (
        jax.tree_util.tree_leaves(jax.device_get(a)),
        jax.tree_util.tree_leaves(jax.device_get(b)),
    )
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-6)


def test_reference_run_writes_last_k_checkpoints_and_metrics(reference_run):
    assert reference_run.step == STEPS
    assert reference_run.checkpoint_steps == [6, 8]  # keep=2
    assert "eval/loss" in reference_run.metrics and "eval/accuracy" in reference_run.metrics
    lines = (reference_run.workdir / "metrics.jsonl").read_text().splitlines()
    assert any('"eval/loss"' in line for line in lines)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_router.base_config("unused", steps=STEPS), reference_run.workdir, progress=False)


def _env():
    env = dict(os.environ)  # run_tiny.py imports tiny_router from its own folder
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    return env


def test_sigkill_then_resume_equals_uninterrupted_run(reference_run, tiny_records, tmp_path):
    workdir = tmp_path / "killed"
    cmd = [sys.executable, str(HERE / "run_tiny.py"), str(tiny_records), str(workdir), str(STEPS)]
    proc = subprocess.Popen(
        [*cmd, "--sleep", "0.4"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    ckpts = checkpoint_dir(workdir)
    deadline = time.time() + 120
    try:
        # Kill once a finalised checkpoint exists (orbax renames the step dir when complete).
        while time.time() < deadline:
            done = [p for p in ckpts.glob("*") if p.name.isdigit()] if ckpts.is_dir() else []
            if done and proc.poll() is None:
                break
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint written within 120 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(int(p.name) for p in ckpts.glob("*") if p.name.isdigit())
    assert killed_at < STEPS
    resumed = train(
        tiny_router.base_config(str(tiny_records), steps=STEPS),
        workdir,
        resume=True,
        progress=False,
    )
    assert resumed.step == STEPS
    _assert_trees_close(resumed.params, reference_run.params)


def test_restore_eight_device_checkpoint_on_one_device(reference_run, tiny_arch, eight_devices):
    assert {d for a in jax.tree_util.tree_leaves(reference_run.params) for d in a.devices()} == set(
        eight_devices
    )
    config = tiny_router.base_config("unused", steps=STEPS)
    tx, schedule = make_optimizer(config.optimizer, STEPS)
    mesh = S.make_mesh({"data": 1}, eight_devices[:1])
    trainer = Trainer(
        tiny_arch, tiny_router.TinyConfig(models=("strong", "weak")), tx, mesh, schedule=schedule
    )
    ckpt = Checkpointer(reference_run.workdir)
    state, _ = ckpt.restore(STEPS, trainer.abstract_state)
    ckpt.close()
    assert int(state["step"]) == STEPS
    for leaf in jax.tree_util.tree_leaves(state):
        assert leaf.devices() == {eight_devices[0]}
    _assert_trees_close(state["params"], reference_run.params)
    # The exporter's entry point: host params + the architecture and its config.
    name, arch_cfg, params = load_params(reference_run.workdir)
    assert name == "tiny_test_router"
    assert arch_cfg == tiny_router.TinyConfig(models=("strong", "weak"))  # filled from the data
    assert isinstance(params["dense"]["kernel"], np.ndarray)
    _assert_trees_close(params, reference_run.params)


def test_corrupt_checkpoint_names_step_dir_and_file_and_keeps_others(reference_run, tmp_path):
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(reference_run.workdir, workdir)
    step_dir = checkpoint_dir(workdir) / str(STEPS)
    victim = max(
        (p for p in Path(step_dir, "state").rglob("*") if p.is_file()), key=os.path.getsize
    )
    with victim.open("r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)
    rel = str(victim.relative_to(step_dir))
    with pytest.raises(CheckpointCorruptError) as err:
        load_params(workdir)
    assert str(step_dir) in str(err.value) and rel in str(err.value)
    with pytest.raises(CheckpointCorruptError, match=rel):
        train(
            tiny_router.base_config("unused", steps=STEPS + 2), workdir, resume=True, progress=False
        )
    # The earlier good checkpoint is still there and loads.
    assert (checkpoint_dir(workdir) / "6").is_dir()
    assert load_params(workdir, step=6)[0] == "tiny_test_router"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_together_and_write_one_checkpoint(tiny_arch, tiny_records, tmp_path):
    workdir = tmp_path / "multi"
    addr = f"127.0.0.1:{_free_port()}"
    env = _env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "run_tiny.py"),
                str(tiny_records),
                str(workdir),
                "4",
                "--coordinator",
                addr,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--shared-workdir",  # both processes see this machine's tmp_path
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append(out.decode())
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i}:\n{out[-4000:]}"
        assert f"DONE 4 {i}/2" in out
    ckpts = checkpoint_dir(workdir)
    assert sorted(p.name for p in ckpts.iterdir() if p.name.isdigit()) == ["2", "4"]
    data = sorted(p.name for p in (ckpts / "4" / "data").glob("process_*.json"))
    assert data == ["process_0-of-2.json", "process_1-of-2.json"]
    # Process 0 checksummed the files both processes wrote, once the save was committed.
    manifest = json.loads((ckpts / "4" / "manifest.json").read_text())["files"]
    assert "data/process_1-of-2.json" in manifest and manifest["data/process_1-of-2.json"]["sha256"]
    verify_manifest(ckpts / "4")
    # Same global batches as a 1-process run on 4 devices: same parameters.
    single = train(
        tiny_router.base_config(str(tiny_records), steps=4),
        tmp_path / "single",
        devices=jax.devices()[:4],
        progress=False,
    )
    _assert_trees_close(load_params(workdir)[2], single.params, atol=1e-5)


# -- a user architecture defined right here, registered and trained through train() ----------


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    dim: int = 8


def _lin_featurizer(config):
    return lambda prompts: np.stack(
        [
            np.bincount([len(w) % config.dim for w in p.split()], minlength=config.dim)
            for p in prompts
        ]
    ).astype(np.float32)


USER_ARCH = registry.Architecture(
    name="test_user_linear",
    config_cls=LinearConfig,
    init=lambda rng, c: {"w": jnp.zeros((c.dim,)), "b": jnp.zeros(())},
    make_featurizer=_lin_featurizer,
    examples_from_records=lambda data, f, c: {
        "x": f(list(data.comparisons.prompt)),
        "y": (data.comparisons.outcome == 0).astype(np.float32),
    },
    loss=lambda p, batch, rng, c: (
        jnp.mean(
            jnp.logaddexp(0.0, batch["x"] @ p["w"] + p["b"])
            - batch["y"] * (batch["x"] @ p["w"] + p["b"])
        ),
        {},
    ),
    prompt_inputs=lambda prompts, f, c: {"x": f(list(prompts))},
    win_rate=lambda p, inputs, s, w, c: jax.nn.sigmoid(inputs["x"] @ p["w"] + p["b"]),
)


def test_user_architecture_trains_through_public_entry_point(tiny_records, tmp_path):
    registry.register(USER_ARCH, overwrite=True)
    try:
        config = tiny_router.base_config(str(tiny_records), steps=4)
        config.arch = "test_user_linear"
        config.arch_config = {"dim": 6}
        result = train(config, tmp_path / "user", progress=False)
        assert result.step == 4 and result.checkpoint_steps == [2, 4]
        name, arch_cfg, params = load_params(tmp_path / "user")
        assert name == "test_user_linear" and arch_cfg == LinearConfig(dim=6)
        assert params["w"].shape == (6,) and np.abs(params["w"]).sum() > 0

        # ... and it round-trips through the zoo format and the public inference API.
        import routellm_jax
        from routellm_jax.publish.export import ExportSpec, export_entry

        prompts = [f"prompt number {i} with {'a few ' * (i % 5)}words" for i in range(40)]
        res = export_entry(
            name,
            arch_cfg,
            params,
            tmp_path / "zoo",
            ExportSpec(
                name="user-linear",
                calibration_prompts=prompts,
                calibration_reference="40 synthetic prompts",
                encoder=None,
                commit="test",
            ),
        )
        router = routellm_jax.load(res.archive)
        expected = np.asarray(
            USER_ARCH.win_rate(params, {"x": _lin_featurizer(arch_cfg)(prompts)}, 0, 1, arch_cfg)
        )
        np.testing.assert_allclose(router.win_rate(prompts), expected, rtol=1e-6, atol=1e-7)
        to_strong = router.route(prompts, strong_share=0.5)
        assert 0 < int(to_strong.sum()) < len(prompts)
    finally:
        registry.unregister("test_user_linear")
