"""Runs whose workdir is a ``gs://`` URL; two processes that share nothing but object storage
train one run, get killed and resume; the command line with a ``gs://`` workdir; a multi-process
run refusing a local workdir.

Each process (``jax.distributed``, 2 CPU devices each) runs in its own private temporary folder
(its current and home folder); records, checkpoints, data-iterator states and metrics live only in
a ``gs://`` bucket served by the in-process GCS emulator of the zoo tests, reached by gcsfs/epath
and by TensorStore (Orbax's array writer) through the emulator settings in ``client_env``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest
import tiny_router
from etils import epath

import routellm_jax

pytest.importorskip("gcsfs", reason="gs:// tests need the dev extra (gcsfs)")
pytest.importorskip("gcp_storage_emulator", reason="gs:// tests need gcp-storage-emulator")

HERE = Path(__file__).parent


def _zoo_server():
    """tests/zoo/zoo_server.py (the emulator harness the zoo tests use), loaded by path: pytest
    puts tests/zoo on the import path only for the tests in that folder."""
    if "zoo_server" in sys.modules:
        return sys.modules["zoo_server"]
    spec = importlib.util.spec_from_file_location(
        "zoo_server", HERE.parent / "zoo" / "zoo_server.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["zoo_server"] = module
    spec.loader.exec_module(module)
    return module


GcsEmulator = _zoo_server().GcsEmulator

from routellm_jax import paths  # noqa: E402
from routellm_jax.data.prepare import save_training_data  # noqa: E402
from routellm_jax.training.checkpoints import (  # noqa: E402
    checkpoint_dir,
    load_params,
    verify_manifest,
)
from routellm_jax.training.train import (  # noqa: E402
    SharedWorkdirError,
    check_workdir_reachable,
    train,
)

BUCKET = "pod-run"
STEPS = 8  # checkpoints every 2 steps, keep 2 (tiny_router.base_config)


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    with GcsEmulator() as emulator:
        emulator.fs.mkdir(BUCKET)
        yield emulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(emulator: GcsEmulator, private: list[Path], args: list[str]) -> list[subprocess.Popen]:
    """Both processes of one run, each in its own folder with nothing but the bucket in common."""
    addr = f"127.0.0.1:{_free_port()}"
    procs = []
    for i, home in enumerate(private):
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ROUTELLM_JAX_CACHE")}
        env.update(emulator.client_env())
        env.update(
            HOME=str(home),
            TMPDIR=str(home),
            XLA_FLAGS="--xla_force_host_platform_device_count=2",
            PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        )
        cmd = [sys.executable, str(HERE / "run_tiny.py"), *args]
        cmd += ["--coordinator", addr, "--num-processes", "2", "--process-id", str(i)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[str]:
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append(out.decode())
    return outs


def _committed_steps(gcs: GcsEmulator, run: str) -> list[int]:
    """Steps whose checkpoint Orbax has committed (in a bucket: the step's commit marker)."""
    gcs.forget_listings()  # the other processes keep writing
    found = epath.Path(f"{run}/checkpoints")
    if not found.exists():
        return []
    return sorted(
        int(p.name)
        for p in found.iterdir()
        if p.name.isdigit() and (p / "commit_success.txt").exists()
    )


def _private_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "checkpoint" in p.name)


def test_two_hosts_sharing_only_a_bucket_train_get_killed_and_resume(gcs, tiny_arch, tmp_path):
    records, run = f"gs://{BUCKET}/records", f"gs://{BUCKET}/run"
    save_training_data(tiny_router.make_data(256), records)
    private = [tmp_path / f"host{i}" for i in range(2)]
    for folder in private:
        folder.mkdir()

    procs = _start(gcs, private, [records, run, str(STEPS), "--sleep", "0.5"])
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if _committed_steps(gcs, run) and all(p.poll() is None for p in procs):
                break
            for p in procs:
                assert p.poll() is None, p.stdout.read().decode()[-3000:]
            time.sleep(0.1)
        else:
            pytest.fail("no checkpoint committed to the bucket within 120 s")
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
    finally:
        for p in procs:
            p.wait()
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    killed_at = max(_committed_steps(gcs, run))
    assert killed_at < STEPS

    outs = _finish(_start(gcs, private, [records, run, str(STEPS), "--resume"]))
    for i, out in enumerate(outs):
        assert f"DONE {STEPS} {i}/2" in out, f"process {i}:\n{out[-4000:]}"

    ckpts = checkpoint_dir(run)
    assert str(ckpts) == f"{run}/checkpoints"
    assert _committed_steps(gcs, run) == [6, 8]
    data = sorted(p.name for p in (ckpts / "8" / "data").glob("process_*"))
    assert data == ["process_0-of-2.json", "process_1-of-2.json"]  # each process its own
    manifest = json.loads((ckpts / "8" / "manifest.json").read_text())["files"]
    assert "data/process_1-of-2.json" in manifest
    verify_manifest(ckpts / "8")
    rows = [
        json.loads(line) for line in epath.Path(f"{run}/metrics.jsonl").read_text().splitlines()
    ]
    train_steps = [r["step"] for r in rows if "train/loss" in r]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == STEPS  # none twice
    assert json.loads(epath.Path(f"{run}/data_card.json").read_text())["records"] == records
    # Nothing of the run landed on either host's disk (the old code made a local "gs:" folder).
    for folder in private:
        assert not (folder / "gs:").exists() and _private_files(folder) == []

    # The same global batch (4 devices) in one process: the same parameters.
    single = train(
        tiny_router.base_config(records, steps=STEPS),
        tmp_path / "single",
        devices=jax.devices()[:4],
        progress=False,
    )
    restored = load_params(run)[2]
    for a, b in zip(
        jax.tree_util.tree_leaves(restored),
        jax.tree_util.tree_leaves(jax.device_get(single.params)),
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-6)


def test_train_and_export_command_lines_with_gs_urls(gcs, tmp_path):
    # A real experiment file, cut down to seconds: hashed features instead of MiniLM, the tiny
    # records (in the bucket) instead of the judge mixture, no benchmark.
    records, run = f"gs://{BUCKET}/cli-records", f"gs://{BUCKET}/cli-run"
    save_training_data(tiny_router.make_data(256), records)
    home = tmp_path / "host"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(
        gcs.client_env(), HOME=str(home), XLA_FLAGS="--xla_force_host_platform_device_count=2"
    )
    experiment = paths.repo_root() / "experiments" / "mf_minilm_judge.py"
    command = [str(Path(sys.executable).parent / "routellm-jax"), "train", str(experiment)]
    command += ["--workdir", run, "--no-progress", f"--config.data.records={records}"]
    command += ["--config.arch_config.featurizer=hashing:32", "--config.arch_config.text_dim=32"]
    command += ["--config.eval.benchmark=", "--config.steps=4", "--config.batch_size=16"]
    command += ["--config.checkpoint.every=2", "--config.eval.every=2", "--config.log_every=2"]
    done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"step 4 -> {run} " in done.stdout
    gcs.forget_listings()
    name, arch_cfg, params = load_params(run)
    assert name == "mf" and arch_cfg.models == ("strong", "weak")
    assert _committed_steps(gcs, run) == [2, 4]
    rows = epath.Path(f"{run}/metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows if "train/loss" in r] == [2, 4]
    assert not (home / "gs:").exists() and _private_files(home) == []

    # Exported from the bucket into the bucket, and loaded from there.
    export = f"{run}/export"
    command = [command[0], "zoo", "export", "--workdir", run, "--name", "gs-cli"]
    command += ["--out-dir", export, "--strong", "strong", "--weak", "weak", "--bundle"]
    done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"exported gs-cli@0.1.0: {export}/gs-cli -> {export}/gs-cli-0.1.0.tar" in done.stdout
    assert not (home / "gs:").exists()
    gcs.forget_listings()
    router = routellm_jax.load(f"{export}/gs-cli", cache_dir=tmp_path / "cache")
    assert router.card.name == "gs-cli" and 0 <= float(router.win_rate(["Is 1009 prime?"])[0]) <= 1


def test_a_multi_process_run_refuses_a_local_workdir(
    tiny_arch, tiny_records, tmp_path, monkeypatch
):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    workdir = tmp_path / "local"
    with pytest.raises(SharedWorkdirError, match=r"--shared-workdir") as info:
        train(tiny_router.base_config(str(tiny_records), steps=8), workdir, progress=False)
    assert "gs://" in str(info.value) and str(workdir) in str(info.value)
    assert not workdir.exists()  # refused before anything was written
    check_workdir_reachable(workdir, 2, shared_workdir=True)
    check_workdir_reachable(f"gs://{BUCKET}/run", 2)
