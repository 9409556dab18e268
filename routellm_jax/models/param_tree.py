"""Parameter trees as flat ``{"a/b/c": leaf}`` dicts and back.

Plain Python, no JAX: the zoo's parameter copy uses them without loading JAX or Flax, and the
checkpoint importers use them to match tensor names to Flax paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a/b/c": leaf}``.

    Example:
        >>> flatten_params({"a": {"b": 1}})
        {'a/b': 1}
    """
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, path))
        else:
            flat[path] = value
    return flat


def unflatten_params(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a/b/c": leaf}`` -> nested dict (inverse of :func:`flatten_params`).

    Example:
        >>> unflatten_params({"a/b": 1})
        {'a': {'b': 1}}
    """
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree
