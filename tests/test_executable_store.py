"""The executor's on-disk store of compiled executables: a hit gives the same bits without
tracing, anything the executable depends on changes the key, and a damaged entry is compiled
again instead of failing the call. (``tests/test_route_startup.py`` checks the same across
processes on the real route command.)"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.models.executor import ExecutableStore

TRACES: list[int] = []


def _scaled_tanh(weights: dict, x: jax.Array) -> jax.Array:
    TRACES.append(1)  # runs once per trace, never when a stored executable is called
    return jnp.tanh(x @ weights["w"]) * weights["scale"]


def _inputs(rows: int = 4) -> tuple[tuple, tuple]:
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(size=(8, 3)).astype(np.float32),
        "scale": np.float32(1.5),
    }
    return (weights,), (rng.normal(size=(rows, 8)).astype(np.float32),)


def test_stored_executable_gives_the_same_bits_without_tracing(tmp_path) -> None:
    constants, args = _inputs()
    store = ExecutableStore(tmp_path, "scaled_tanh")
    TRACES.clear()
    compiled = store.compile_and_store(jax.jit(_scaled_tanh), constants, args)
    assert len(TRACES) == 1 and store.writes == 1
    assert [p.suffix for p in tmp_path.iterdir()] == [".exe"]

    again = ExecutableStore(tmp_path, "scaled_tanh")  # as a new process would build it
    loaded = again.load(constants, args)
    assert loaded is not None and again.hits == 1
    assert len(TRACES) == 1  # nothing traced to load it
    np.testing.assert_array_equal(
        np.asarray(loaded(*constants, *args)), np.asarray(compiled(*constants, *args))
    )
    # A new input shape is a different entry, not a wrong executable.
    assert again.load(*_inputs(rows=16)) is None


def test_identity_source_and_shapes_change_the_key(tmp_path) -> None:
    constants, args = _inputs()
    source = tmp_path / "plugin.py"
    source.write_text("SCALE = 1\n")
    base = ExecutableStore(tmp_path, "scaled_tanh", [source]).path(constants, args)
    assert ExecutableStore(tmp_path, "scaled_tanh", [source]).path(constants, args) == base
    assert ExecutableStore(tmp_path, "other function", [source]).path(constants, args) != base
    source.write_text("SCALE = 2\n")  # a plug-in architecture's code was edited
    assert ExecutableStore(tmp_path, "scaled_tanh", [source]).path(constants, args) != base
    source.write_text("SCALE = 1\n")
    wider = ({"w": np.zeros((8, 5), np.float32), "scale": np.float32(1.0)},)
    assert ExecutableStore(tmp_path, "scaled_tanh", [source]).path(wider, args) != base


def test_a_damaged_entry_is_removed_and_compiled_again(tmp_path, caplog) -> None:
    constants, args = _inputs()
    store = ExecutableStore(tmp_path, "scaled_tanh")
    expected = np.asarray(
        store.compile_and_store(jax.jit(_scaled_tanh), constants, args)(*constants, *args)
    )
    path = store.path(constants, args)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    with caplog.at_level(logging.WARNING, logger="routellm_jax.models.executor"):
        assert store.load(constants, args) is None
    assert "could not be loaded" in caplog.text and str(path) in caplog.text
    assert not path.exists()
    recompiled = store.compile_and_store(jax.jit(_scaled_tanh), constants, args)
    np.testing.assert_array_equal(np.asarray(recompiled(*constants, *args)), expected)
    assert path.exists()


def test_an_unwritable_store_still_returns_the_compiled_function(tmp_path, caplog) -> None:
    constants, args = _inputs()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = ExecutableStore(blocker / "executables", "scaled_tanh")  # cannot be created
    with caplog.at_level(logging.WARNING, logger="routellm_jax.models.executor"):
        compiled = store.compile_and_store(jax.jit(_scaled_tanh), constants, args)
    assert "not stored" in caplog.text and store.writes == 0
    assert np.asarray(compiled(*constants, *args)).shape == (4, 3)


_AFTER_A_STORED_COMPILE = """
import json, sys
import jax, numpy as np
from jax._src import compilation_cache
from routellm_jax.models.executor import ExecutableStore, enable_compile_cache

enable_compile_cache()
store = ExecutableStore(sys.argv[1], "double")
# The first compile of the process is the store's, outside JAX's cache ...
store.compile_and_store(jax.jit(lambda x: x * 2), (), (np.ones(4, np.float32),))
# ... and JAX's cache is still in use for the others, which write to it.
jax.jit(lambda x: x - 1).lower(np.ones(5, np.float32)).compile()
used = compilation_cache.is_cache_used(jax.devices()[0].client)
# A function JAX's cache already holds is still compiled afresh for the store: the executable
# XLA reads from that cache does not serialize.
jax.jit(lambda x: x - 1).lower(np.ones(5, np.float32)).compile()
store.compile_and_store(jax.jit(lambda x: x - 1), (), (np.ones(5, np.float32),))
print(json.dumps({"writes": store.writes, "jax_cache_used": used}))
"""


def test_a_stored_compile_leaves_jax_cache_on_for_the_rest_of_the_process(tmp_path) -> None:
    """JAX decides once per process whether its persistent cache is used: the store's compile
    outside it must neither be served from it (the entry would not serialize) nor switch it off
    for the process's other compiles."""
    import json
    import os
    import subprocess
    import sys

    from routellm_jax import paths

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env[paths.COMPILE_CACHE_ENV] = str(tmp_path / "xla")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    proc = subprocess.run(
        [sys.executable, "-c", _AFTER_A_STORED_COMPILE, str(tmp_path / "executables")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=paths.repo_root(),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"writes": 2, "jax_cache_used": True}, proc.stderr[-2000:]


def test_an_executable_that_fails_its_round_trip_is_not_tried_again(tmp_path, monkeypatch) -> None:
    """An executable that cannot be stored (one JAX's in-memory cache hands back after reading it
    from its persistent cache does not serialize) costs its round trip once per process."""
    from jax.experimental import serialize_executable

    from routellm_jax.models import executor

    attempts = []

    def refuse(compiled):
        attempts.append(1)
        raise RuntimeError("NOT_FOUND: Function fusion not found")

    monkeypatch.setattr(serialize_executable, "serialize", refuse)
    monkeypatch.setattr(executor, "_unstorable", set())
    constants, args = _inputs()
    store = ExecutableStore(tmp_path, "scaled_tanh")
    for _ in range(2):
        compiled = store.compile_and_store(jax.jit(_scaled_tanh), constants, args)
        assert np.asarray(compiled(*constants, *args)).shape == (4, 3)
    assert len(attempts) == 1 and store.writes == 0 and not list(tmp_path.iterdir())
