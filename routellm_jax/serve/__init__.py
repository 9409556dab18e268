"""Serving routers: an OpenAI-compatible routing server and a local drop-in client.

Heavy dependencies (FastAPI, httpx, uvicorn, JAX) are imported only when the names that need them
are used, so ``import routellm_jax.serve`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from routellm_jax.serve.routing import RouterLike, RouteSpec, RoutingError, parse_model

_LAZY = {
    "Controller": "routellm_jax.serve.client",
    "RouteDecision": "routellm_jax.serve.client",
    "create_app": "routellm_jax.serve.server",
    "ServeSettings": "routellm_jax.serve.server",
    "Upstream": "routellm_jax.serve.server",
    "MicroBatcher": "routellm_jax.serve.batching",
    "read_upstream_table": "routellm_jax.serve.n_model",
    "PromptSet": "routellm_jax.serve.tenants",
    "ShareController": "routellm_jax.serve.budget",
    "SpendController": "routellm_jax.serve.budget",
}

__all__ = ["RouteSpec", "RouterLike", "RoutingError", "parse_model", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'routellm_jax.serve' has no attribute {name!r}")
