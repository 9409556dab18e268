"""What a ``routellm-jax route`` command pays before its first decision: which modules it imports,
what it compiles, and that a second process loads the compiled executable from the executor's
store under the compilation cache folder (``ROUTELLM_JAX_COMPILE_CACHE``) instead of tracing,
lowering and compiling it again. Checked in fresh processes through ``sys.modules`` and JAX's own
compile events, never by timing (``tools/bench_startup.py`` measures the time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from routellm_jax import paths
from routellm_jax.models import executor

# Packages only training, data preparation, downloads or the torch references need: the route path
# must not import them (each is slow to import, and every route command would pay for it).
NOT_ON_ROUTE_PATH = (
    "optax",
    "pandas",
    "huggingface_hub",
    "transformers",
    "torch",
    "tensorflow",
    "sklearn",
    "grain",
)

_ROUTE = textwrap.dedent(
    """
    import json, sys
    import jax.monitoring

    events = {"lowered": 0, "cache_hits": 0}

    def on_duration(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            events["lowered"] += 1

    def on_event(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            events["cache_hits"] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    from routellm_jax.cli import main

    code = main(["route", "What is 2+2?"])
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
    restored = sorted({m.split(".")[0] for m in sys.modules} & {"orbax", "tensorstore"})
    print(json.dumps({"code": code, "heavy": heavy, "restored": restored, **events,
                      "cache_dir": jax.config.jax_compilation_cache_dir}))
    """
)


def _child_env(compile_cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env[paths.COMPILE_CACHE_ENV] = compile_cache
    # Every executable is written, however quick its compile on this machine.
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def _route(compile_cache: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _ROUTE, ",".join(NOT_ON_ROUTE_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_child_env(compile_cache),
        cwd=paths.repo_root(),
    )
    assert proc.returncode == 0, proc.stderr
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


# What XLA:CPU logs when it rejects an executable it cached itself on this machine (the open
# upstream bug jax-ml/jax#38445, seen on Cascade Lake Xeons): every process compiles again there.
_AOT_REJECTED = "Machine type used for XLA:CPU compilation doesn't match"


def test_route_imports_no_training_packages_and_reuses_compiled_executables(tmp_path) -> None:
    folder = tmp_path / "xla"
    first = _route(str(folder))
    assert first["code"] == 0
    assert first["heavy"] == [], f"the route path imports {first['heavy']}"
    # One lowering: the fused encoder+head shape of the prompt; nothing compiled to probe or to
    # make a device scalar. It is compiled for the executor's store, outside JAX's own cache.
    assert first["lowered"] == 1 and first["cache_hits"] == 0
    assert first["cache_dir"] == str(folder)
    stored = sorted((folder / "executables").iterdir())
    assert [p.suffix for p in stored] == [".exe"], stored
    before = stored[0].read_bytes()
    second = _route(str(folder))
    if _AOT_REJECTED in second["stderr"]:
        pytest.skip("this CPU rejects XLA's own cached executables (jax-ml/jax#38445)")
    # Nothing traced, lowered or compiled: the executable came from the store, unchanged.
    assert second["lowered"] == 0 and second["cache_hits"] == 0, second["stderr"][-2000:]
    assert sorted((folder / "executables").iterdir()) == stored
    assert stored[0].read_bytes() == before
    # The parameters came from the verified plain-array copy: Orbax was not even imported.
    assert second["restored"] == [], second["restored"]


def _enabled(setting: str, **env: str) -> tuple[str | None, float]:
    """The compilation cache folder ``enable_compile_cache`` sets in a fresh process with
    ``ROUTELLM_JAX_COMPILE_CACHE=setting``, and the compile-time threshold then in force."""
    script = (
        "import jax, json; from routellm_jax.models.executor import enable_compile_cache as e; "
        "print(json.dumps([e(), jax.config.jax_persistent_cache_min_compile_time_secs]))"
    )
    child_env = _child_env(setting)
    child_env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**child_env, **env},
        cwd=paths.repo_root(),
    )
    assert proc.returncode == 0, proc.stderr
    folder, threshold = json.loads(proc.stdout.strip().splitlines()[-1])
    return folder, threshold


def test_compile_cache_can_be_turned_off_and_never_breaks_on_a_bad_folder(tmp_path) -> None:
    assert _enabled("off")[0] is None
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert _enabled(str(blocker / "xla"))[0] is None  # cannot be created: no cache, no error
    mine = str(tmp_path / "mine")
    assert _enabled(mine) == (mine, executor.CACHE_MIN_COMPILE_S)
    # The user's own JAX settings win over ours.
    assert _enabled(mine, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="5") == (mine, 5.0)
    theirs = str(tmp_path / "theirs")
    assert _enabled(mine, JAX_COMPILATION_CACHE_DIR=theirs)[0] == theirs


@pytest.mark.parametrize("setting", ["0", "off", "OFF", "false", "no", ""])
def test_compile_cache_dir_off_values(monkeypatch, setting: str) -> None:
    monkeypatch.setenv(paths.COMPILE_CACHE_ENV, setting)
    assert paths.compile_cache_dir() is None


def test_compile_cache_dir_default_and_unwritable(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(paths.COMPILE_CACHE_ENV, raising=False)
    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(tmp_path / "cache"))
    assert paths.compile_cache_dir() == tmp_path / "cache" / "xla"
    assert (tmp_path / "cache" / "xla").is_dir()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(blocker))  # the cache root cannot be a folder
    assert paths.compile_cache_dir() is None
    # A folder this user cannot write (a read-only image): off, not an error. Root may write
    # anywhere, so the permission check itself is what is replaced here.
    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert paths.compile_cache_dir() is None
