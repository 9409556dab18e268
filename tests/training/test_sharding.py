"""Mesh construction, partition rules as data, and sharded-vs-1-device equality of the step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_router
from jax.sharding import PartitionSpec as P

from routellm_jax.training import sharding as S
from routellm_jax.training.config import default_config, make_optimizer
from routellm_jax.training.train import Trainer


def test_resolve_mesh_shape_fills_and_checks():
    assert S.resolve_mesh_shape({"data": -1, "fsdp": 2}, 8) == {"data": 4, "fsdp": 2, "tensor": 1}
    with pytest.raises(ValueError, match="not divisible"):
        S.resolve_mesh_shape({"data": -1, "fsdp": 3}, 8)
    with pytest.raises(ValueError, match="uses 4 devices"):
        S.resolve_mesh_shape({"data": 2, "fsdp": 2}, 8)
    with pytest.raises(KeyError, match="pipeline"):
        S.resolve_mesh_shape({"pipeline": 2}, 8)


def test_partition_rules_map_to_mesh_axes_and_replicate_indivisible(eight_devices, caplog):
    mesh = S.make_mesh({"data": 2, "fsdp": 2, "tensor": 2}, eight_devices)
    params = {"enc": {"kernel": np.zeros((8, 6)), "odd": np.zeros((3, 4))}, "other": np.zeros(5)}
    rules = ((r"enc/kernel$", ("embed", "mlp")), (r"enc/odd$", ("embed", "mlp")))
    with caplog.at_level("INFO", logger="routellm_jax.training.sharding"):
        specs = S.param_specs(params, rules, mesh)
    assert specs["enc"]["kernel"] == P("fsdp", "tensor")
    # 3 is not divisible by fsdp=2: that dim is replicated, the other still split.
    assert specs["enc"]["odd"] == P(None, "tensor")
    assert "not divisible" in caplog.text and "enc/odd" in caplog.text
    assert specs["other"] == P()  # unmatched -> replicated
    assert S.batch_sharding(mesh).spec == P(("data", "fsdp"))
    with pytest.raises(ValueError, match="enc/kernel"):
        S.param_specs(params, ((r"enc/kernel$", ("embed",)),), mesh)


def _setup(tiny_arch, mesh, accum=1):
    cfg = tiny_router.TinyConfig()
    oc = default_config().optimizer
    oc.lr, oc.accum_steps, oc.grad_clip_norm = 0.05, accum, 1.0
    tx, schedule = make_optimizer(oc, 16)
    return cfg, Trainer(tiny_arch, cfg, tx, mesh, schedule=schedule, accum_steps=accum)


def _batches(tiny_arch, cfg, n=4, bs=16):
    data = tiny_router.make_data(n * bs, seed=3)
    ex = tiny_arch.examples_from_records(data, tiny_arch.make_featurizer(cfg), cfg)
    return [{k: v[i * bs : (i + 1) * bs] for k, v in ex.items()} for i in range(n)]


def test_train_step_compiles_once(tiny_arch, eight_devices):
    mesh = S.make_mesh({"data": 4, "fsdp": 2}, eight_devices)
    cfg, trainer = _setup(tiny_arch, mesh, accum=2)
    state = trainer.init(jax.random.PRNGKey(0))
    for batch in _batches(tiny_arch, cfg, n=5):
        batch = jax.device_put(batch, trainer.batch_sharding)
        state, metrics = trainer.step(state, batch)
    jax.block_until_ready(state)
    assert int(state["step"]) == 5
    assert trainer.compile_count() == 1
    # State keeps the declared shardings (so the next call hits the cache, and donation works).
    assert state["params"]["dense"]["kernel"].sharding.spec == P("fsdp", None)


def _run_on_mesh(tiny_arch, devices, mesh_cfg):
    """Loss and grads on the first batch, and params after 3 train steps, on one mesh."""
    cfg = tiny_router.TinyConfig()
    batches = _batches(tiny_arch, cfg, n=3)
    rng = jax.random.PRNGKey(7)
    mesh = S.make_mesh({**{"data": 1, "fsdp": 1, "tensor": 1}, **mesh_cfg}, devices)
    _, trainer = _setup(tiny_arch, mesh)
    state = trainer.init(jax.random.PRNGKey(0))

    def loss_and_grads(p, b):
        return jax.value_and_grad(lambda q: tiny_arch.loss(q, b, rng, cfg)[0])(p)

    grad_fn = jax.jit(
        loss_and_grads,
        in_shardings=(trainer.param_shardings, trainer.batch_sharding),
        out_shardings=(S.replicated(mesh), trainer.param_shardings),
    )
    loss, grads = grad_fn(state["params"], jax.device_put(batches[0], trainer.batch_sharding))
    for b in batches:
        state, _ = trainer.step(state, jax.device_put(b, trainer.batch_sharding))
    return jax.device_get((loss, grads, state["params"]))


@pytest.fixture(scope="module")
def one_device_run(tiny_arch, eight_devices):
    return _run_on_mesh(tiny_arch, eight_devices[:1], {"data": 1})


@pytest.mark.parametrize("mesh_cfg", [{"data": 8}, {"data": 2, "fsdp": 2, "tensor": 2}])
def test_sharded_loss_grads_and_steps_equal_one_device(
    tiny_arch, eight_devices, one_device_run, mesh_cfg
):
    one = one_device_run
    many = _run_on_mesh(tiny_arch, eight_devices, mesh_cfg)
    np.testing.assert_allclose(one[0], many[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(one[1:]), jax.tree_util.tree_leaves(many[1:])):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    assert float(jnp.abs(one[1]["dense"]["kernel"]).sum()) > 0  # grads are not trivially zero


def test_pretrained_architectures_init_on_host_with_the_same_values(tiny_arch, eight_devices):
    mesh = S.make_mesh({"data": 4, "fsdp": 2}, eight_devices)
    oc = default_config().optimizer
    tx, _ = make_optimizer(oc, 4)
    traced = Trainer(tiny_arch, tiny_router.TinyConfig(), tx, mesh)
    host = Trainer(tiny_arch, tiny_router.TinyConfig(pretrained=True), tx, mesh)
    assert host._host_init and not traced._host_init
    a, b = traced.init(jax.random.PRNGKey(3)), host.init(jax.random.PRNGKey(3))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
        assert x.sharding.is_equivalent_to(y.sharding, x.ndim)
