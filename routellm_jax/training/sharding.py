"""Device mesh and parameter placement, with the placement rules kept as data.

Three mesh axes: ``data`` (pure data parallelism: params replicated, batch split), ``fsdp`` (batch
split *and* params sharded along their ``embed`` dimension, gathered on use) and ``tensor`` (the
``mlp``/``heads``/``vocab`` dimensions split). An architecture names the logical axis of each
parameter dimension in its ``partition_rules`` (regex over the ``/``-joined param path); the
table :data:`LOGICAL_AXIS_RULES` below maps logical names to mesh axes. Parameters no rule matches
are replicated; a dimension the mesh axis does not divide is replicated too (and logged), so any
model runs on any mesh.

Example (an abstract 2x2x2 mesh shows the rule table without needing eight devices):
    >>> mesh = jax.sharding.AbstractMesh((2, 2, 2), MESH_AXES)
    >>> param_specs({"dense": {"kernel": np.zeros((64, 256))}}, ((r"kernel$", ("embed", "mlp")),), mesh)
    {'dense': {'kernel': P('fsdp', 'tensor')}}
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")

# Logical axis name -> mesh axis (or axes) it is split over. ``None`` = replicated.
LOGICAL_AXIS_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("vocab", "tensor"),
    ("models", None),
    ("seq", None),
    ("head_dim", None),
    ("classes", None),
)

PartitionRules = Sequence[tuple[str, Sequence[str | None]]]


def resolve_mesh_shape(mesh_config: Mapping[str, int], n_devices: int) -> dict[str, int]:
    """Fill the one ``-1`` axis so the product equals ``n_devices``; check the rest.

    Example:
        >>> resolve_mesh_shape({"data": -1, "fsdp": 2, "tensor": 1}, 8)
        {'data': 4, 'fsdp': 2, 'tensor': 1}
    """
    unknown = sorted(set(mesh_config) - set(MESH_AXES))
    if unknown:
        raise KeyError(f"mesh config: unknown axis name(s) {unknown}; known: {list(MESH_AXES)}")
    shape = {a: int(mesh_config.get(a, 1)) for a in MESH_AXES}
    fill = [a for a, s in shape.items() if s == -1]
    if len(fill) > 1:
        raise ValueError(f"mesh config {dict(mesh_config)}: at most one axis may be -1")
    fixed = math.prod(s for s in shape.values() if s != -1)
    if any(s == 0 or s < -1 for s in shape.values()):
        raise ValueError(f"mesh config {dict(mesh_config)}: sizes must be positive or -1")
    if fill:
        if n_devices % fixed:
            raise ValueError(
                f"mesh config {dict(mesh_config)}: {n_devices} devices not divisible by {fixed}"
            )
        shape[fill[0]] = n_devices // fixed
    if math.prod(shape.values()) != n_devices:
        raise ValueError(
            f"mesh config {dict(mesh_config)} uses {math.prod(shape.values())} devices, "
            f"but {n_devices} are available"
        )
    return shape


def make_mesh(mesh_config: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``Mesh`` with axes ``(data, fsdp, tensor)`` over ``devices`` (default: all devices).

    Example:
        >>> mesh = make_mesh({"data": -1}, jax.devices()[:1])
        >>> mesh.axis_names, dict(mesh.shape)
        (('data', 'fsdp', 'tensor'), {'data': 1, 'fsdp': 1, 'tensor': 1})
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(mesh_config, len(devices))
    # Auto axes: GSPMD propagation from in/out shardings (the explicit-sharding mode would make
    # every jnp op in the architectures sharding-aware, which they need not be).
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh(
        tuple(shape[a] for a in MESH_AXES), MESH_AXES, axis_types=auto, devices=devices
    )


def _rules_dict(
    rules: Sequence[tuple[str, str | tuple[str, ...] | None]],
) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, axes in rules:
        if axes is None:
            out[name] = ()
        elif isinstance(axes, str):
            out[name] = (axes,)
        else:
            out[name] = tuple(axes)
    return out


def logical_to_spec(
    logical: Sequence[str | None],
    shape: Sequence[int],
    mesh: Mesh,
    rules: Sequence[tuple[str, str | tuple[str, ...] | None]] = LOGICAL_AXIS_RULES,
    *,
    what: str = "array",
) -> PartitionSpec:
    """Map per-dimension logical names to a ``PartitionSpec`` on ``mesh``.

    Mesh axes of size 1 are dropped; a dimension not divisible by its mesh axes, or a mesh axis
    already used by an earlier dimension, is replicated (logged at INFO).

    Example:
        >>> mesh = jax.sharding.AbstractMesh((2, 2, 2), MESH_AXES)
        >>> logical_to_spec(("embed", "mlp"), (64, 256), mesh)
        P('fsdp', 'tensor')
        >>> logical_to_spec(("embed", "mlp"), (63, 256), mesh)  # 63 is not divisible by 2
        P(None, 'tensor')
    """
    if len(logical) != len(shape):
        raise ValueError(
            f"{what}: partition rule names {len(logical)} dims {tuple(logical)} "
            f"but the array has shape {tuple(shape)}"
        )
    table = _rules_dict(rules)
    used: set[str] = set()
    spec: list[Any] = []
    for name, size in zip(logical, shape):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise KeyError(
                f"{what}: logical axis {name!r} has no rule; known: {sorted(table)} "
                "(add it to LOGICAL_AXIS_RULES)"
            )
        axes = tuple(a for a in table[name] if mesh.shape[a] > 1 and a not in used)
        n = math.prod(mesh.shape[a] for a in axes)
        if axes and size % n:
            log.info(
                "%s: dim %r of size %d not divisible by mesh axes %s (%d): replicated",
                what, name, size, axes, n,
            )  # fmt: skip
            axes = ()
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec)


def path_str(path: Sequence[Any]) -> str:
    """``/``-joined names of a pytree key path (what partition rules match against).

    Example:
        >>> path_str((jax.tree_util.DictKey("dense"), jax.tree_util.DictKey("kernel")))
        'dense/kernel'
    """
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        else:
            parts.append(str(k))
    return "/".join(parts)


def param_specs(
    params: Any,
    partition_rules: PartitionRules,
    mesh: Mesh,
    rules: Sequence[tuple[str, str | tuple[str, ...] | None]] = LOGICAL_AXIS_RULES,
) -> Any:
    """``PartitionSpec`` per param leaf (arrays or ``ShapeDtypeStruct``), by the first matching
    rule (``re.search`` over the param path); unmatched leaves are replicated.

    Example:
        >>> mesh = jax.sharding.AbstractMesh((2, 2, 2), MESH_AXES)
        >>> param_specs({"w": np.zeros((4, 8)), "b": np.zeros(8)}, ((r"^w$", ("embed", "mlp")),), mesh)
        {'b': P(), 'w': P('fsdp', 'tensor')}
    """
    compiled = [(re.compile(p), tuple(names)) for p, names in partition_rules]

    def one(path: Any, leaf: Any) -> PartitionSpec:
        name = path_str(path)
        shape = tuple(np.shape(leaf))
        for pattern, logical in compiled:
            if pattern.search(name):
                return logical_to_spec(logical, shape, mesh, rules, what=f"param {name}")
        return PartitionSpec()

    return jax.tree_util.tree_map_with_path(one, params)


def param_shardings(
    params: Any,
    partition_rules: PartitionRules,
    mesh: Mesh,
    rules: Sequence[tuple[str, str | tuple[str, ...] | None]] = LOGICAL_AXIS_RULES,
) -> Any:
    """``NamedSharding`` per param leaf (see :func:`param_specs`).

    Example:
        >>> mesh = make_mesh({"data": -1}, jax.devices()[:1])
        >>> param_shardings({"w": np.zeros((4, 8))}, ((r"^w$", ("embed", "mlp")),), mesh)["w"].spec
        P(None, None)
    """
    specs = param_specs(params, partition_rules, mesh, rules)
    return jax.tree_util.tree_map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )


def opt_state_shardings(tx: Any, abstract_opt_state: Any, params_shardings: Any, mesh: Mesh) -> Any:
    """Shardings of an optax state: param-shaped parts (Adam moments, accumulated gradients)
    follow the params, everything else (step counts, scalars) is replicated.

    Example:
        >>> import optax
        >>> mesh = make_mesh({"data": -1}, jax.devices()[:1])
        >>> params = {"w": np.zeros((4, 8))}
        >>> p_shard = param_shardings(params, ((r"^w$", ("embed", "mlp")),), mesh)
        >>> tx = optax.adam(1e-3)
        >>> adam = opt_state_shardings(tx, jax.eval_shape(tx.init, params), p_shard, mesh)[0]
        >>> adam.mu["w"] == p_shard["w"], adam.count.spec
        (True, P())
    """
    import optax

    replicated = NamedSharding(mesh, PartitionSpec())
    return optax.tree_map_params(
        tx,
        lambda _leaf, sharding: sharding,
        abstract_opt_state,
        params_shardings,
        transform_non_params=lambda _leaf: replicated,
        is_leaf=lambda x: isinstance(x, NamedSharding),
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (example) dimension split over the mesh's ``batch`` axes, the rest replicated.

    Example:
        >>> batch_sharding(make_mesh({"data": -1}, jax.devices()[:1])).spec
        P(('data', 'fsdp'),)
    """
    axes = _rules_dict(LOGICAL_AXIS_RULES)["batch"]
    return NamedSharding(mesh, PartitionSpec(axes))


def batch_divisor(mesh: Mesh) -> int:
    """How many ways a global batch is split (its size must be a multiple of this).

    Example:
        >>> batch_divisor(jax.sharding.AbstractMesh((2, 4, 1), MESH_AXES))
        8
    """
    return math.prod(mesh.shape[a] for a in _rules_dict(LOGICAL_AXIS_RULES)["batch"])


def replicated(mesh: Mesh) -> NamedSharding:
    """A fully replicated sharding on ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())
