"""routellm-jax: LLM-router training framework and model zoo in JAX/Flax.

The flow reads as the folder names: ``data`` (sources -> canonical records -> labels) ->
``models`` (encoders + one file per router, chosen by name from ``models.registry``) ->
``training`` (sharded train step, Orbax checkpoints) -> ``zoo`` (export, download, verify) ->
``api`` (``load()`` and ``Router.win_rate/route/calibrate``) -> ``serve``.

Nothing heavy is imported here: ``import routellm_jax`` stays cheap, and ``routellm_jax.load`` is
resolved lazily from ``routellm_jax.api``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"load": "routellm_jax.api", "Router": "routellm_jax.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'routellm_jax' has no attribute {name!r}")
