"""The worked plugin example of docs/adding_an_architecture.md, through the real command line.

The test builds the page's package in a temporary folder (its ``pyproject.toml`` with the
``routellm_jax.architectures`` entry point, the module of the page's first Python block), installs
it with ``pip install --no-deps --target``, writes the page's experiment config next to it and
runs the page's bash block command by command as subprocesses: ``train`` (with size overrides: a
few steps on small data, the weight-free ``hashing:`` featurizer), ``zoo export``, ``eval``,
``route``, and ``serve`` answering one ``POST /v1/route``. Nothing registers the architecture
in-process: every command finds it through the installed entry point.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from routellm_jax import paths

ROOT = paths.repo_root()
DOC = ROOT / "docs" / "adding_an_architecture.md"
PAIR = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
SIZE = [
    "--config.batch_size=16",
    "--config.steps=6",
    "--config.optimizer.warmup_steps=1",
    "--config.eval.every=3",
    "--config.eval.batch_size=8",
    "--config.checkpoint.every=3",
    "--config.arch_config.featurizer=hashing:32",
    "--no-progress",
]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The page's package, installed (not editable) into a folder of its own."""
    work = tmp_path_factory.mktemp("plugin")
    package = work / "my-routers"
    (package / "my_routers").mkdir(parents=True)
    (package / "pyproject.toml").write_text(_blocks("toml")[0])
    (package / "my_routers" / "__init__.py").write_text("")
    (package / "my_routers" / "logit.py").write_text(_blocks("python")[0])
    site = work / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",  # offline: build with this environment's setuptools
            "--no-index",
            "--quiet",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(site.glob("my_routers-0.1.0.dist-info/entry_points.txt"))
    return site


def _records(folder: Path) -> Path:
    import numpy as np

    from routellm_jax.data.prepare import save_training_data
    from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData

    rng = np.random.default_rng(1)
    rows = []
    for i in range(128):
        hard = i % 2 == 0
        prompt = f"{'prove the lemma about primes' if hard else 'say hello and tell a joke'} {i}"
        weak = PAIR[1] if i % 3 else "claude-2.1"
        rows.append(
            Comparison(prompt, PAIR[0], weak, "a" if hard == (rng.random() < 0.85) else "b")
        )
    return save_training_data(TrainingData.of(ComparisonTable.from_records(rows)), folder)


@pytest.mark.slow  # a pip install and seven command-line runs, each starting JAX
def test_doc_plugin_trains_exports_evaluates_routes_and_serves(
    plugin_site: Path, tmp_path: Path, data_dir: Path
) -> None:
    (tmp_path / "logit_judge.py").write_text(_blocks("python")[1])
    records = _records(tmp_path / "records")
    commands = [shlex.split(line) for line in _blocks("bash")[-1].splitlines() if line.strip()]
    assert [c[1] for c in commands] == ["train", "zoo", "eval", "route", "serve"], commands
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)]),
        "ROUTELLM_JAX_DATA": str(data_dir.absolute()),
        "OPENAI_API_KEY": "sk-test-not-used",  # read by serve; /v1/route calls no upstream
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "",
    }
    env.pop("ROUTELLM_JAX_PLUGINS", None)

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "routellm_jax.cli", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, (
            f"{shlex.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        return proc

    train, export, evaluate, route, serve = commands
    trained = run([*train, f"--config.data.records={records}", *SIZE])
    assert "done: logit step 6" in trained.stdout, trained.stdout
    exported = run(export)
    assert re.search(r"gsm8k: APGR 0\.\d{4}", exported.stdout), exported.stdout
    card = json.loads((tmp_path / "my_zoo" / "logit-minilm" / "card.json").read_text())
    assert card["architecture"] == "logit"
    assert card["plugin"] == {
        "module": "my_routers.logit",
        "distribution": "my-routers",
        "version": "0.1.0",
    }
    evaluated = run(evaluate)
    assert "gsm8k" in evaluated.stdout.lower() and list((tmp_path / "plots").iterdir())
    routed = run(route)
    assert "Is 1009 prime?" in routed.stdout and any(m in routed.stdout for m in PAIR)

    # Without the package, loading the entry says which package and version to install.
    missing = subprocess.run(
        [sys.executable, "-m", "routellm_jax.cli", *route[1:]],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2, missing.stderr
    assert "pip install 'my-routers==0.1.0'" in missing.stderr, missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr

    port = _free_port()
    argv = list(serve)
    argv[argv.index("--port") + 1] = str(port)
    server = subprocess.Popen(
        [sys.executable, "-m", "routellm_jax.cli", *argv[1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}/v1/route",
            data=json.dumps(
                {"model": "router-logit-minilm@0.3", "prompt": "Is 1009 prime?"}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            body = json.loads(reply.read())
        assert reply.status == 200, body
        text = json.dumps(body)
        assert "win_rate" in text and ("gpt-4o" in text or "llama-3.1-8b-instruct" in text), body
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
