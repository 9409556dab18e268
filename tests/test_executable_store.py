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
