"""routellm-jax: LLM-router training framework and model zoo in JAX/Flax.

The flow reads as the folder names: ``data`` (sources -> canonical records -> labels) ->
``models`` (encoders + one file per router, chosen by name from ``models.registry``, and the
executor that runs them) -> ``training`` (sharded train step, Orbax checkpoints) -> ``zoo`` (cards,
manifest, download, reading an entry) -> ``api`` (``load()`` and
``Router.win_rate/route/calibrate``) -> ``publish`` (export entries) -> ``serve``; no module imports
one above it (``tests/test_layering.py``).

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
