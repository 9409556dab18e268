"""Several steps per dispatch and device-resident examples: the same training as one step per
call from host batches, and no implicit host<->device transfer in the step loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import tiny_router

from routellm_jax.data.pipeline import BatchIterator
from routellm_jax.training import sharding as S
from routellm_jax.training.config import make_optimizer
from routellm_jax.training.train import StepRunner, Trainer, train


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(tree))]


def _run(records, workdir, k, budget_mb, **over):
    config = tiny_router.base_config(
        str(records),
        steps=8,
        steps_per_dispatch=k,
        **{"data.device_budget_mb": budget_mb, "checkpoint.every": 4, **over},
    )
    return train(config, workdir, progress=False)


def test_blocks_and_device_resident_examples_train_bit_identically(
    tiny_arch, tiny_records, eight_devices, tmp_path
):
    one = _run(tiny_records, tmp_path / "k1", 1, 0)
    runs = {
        "blocks of 4, streamed": _run(tiny_records, tmp_path / "k4", 4, 0),
        "blocks of 3 + single steps, on device": _run(tiny_records, tmp_path / "k3", 3, 64),
    }
    # Blocks of 4 fill the 4-step segments between checkpoints; 3 leaves one single step each.
    assert runs["blocks of 4, streamed"].step_compiles == 1
    assert runs["blocks of 3 + single steps, on device"].step_compiles == 2
    train_rows = [h for h in one.history if "train/loss" in h]
    assert [h["step"] for h in train_rows] == [2, 4, 6, 8]
    for name, run in runs.items():
        assert run.step == 8 and run.checkpoint_steps == one.checkpoint_steps, name
        for a, b in zip(_leaves(one.params), _leaves(run.params)):
            np.testing.assert_array_equal(a, b, err_msg=name)
        rows = [h for h in run.history if "train/loss" in h]
        assert [h["step"] for h in rows] == [2, 4, 6, 8], name
        for a, b in zip(train_rows, rows):
            assert a["train/loss"] == b["train/loss"], name


def test_step_loop_makes_no_implicit_transfers(tiny_arch, tiny_records, eight_devices, tmp_path):
    # "disallow" raises on any implicit host<->device transfer while batches are fetched and
    # steps dispatched (a float() of a device value, a numpy batch handed to the step...).
    for k, budget in ((2, 64), (2, 0)):
        run = _run(
            tiny_records, tmp_path / f"k{k}-{budget}", k, budget, step_transfer_guard="disallow"
        )
        assert run.step == 8


def test_transfer_guard_catches_host_batches_in_the_runner(tiny_arch, tiny_records):
    mesh = S.make_mesh({"data": 1}, jax.devices()[:1])
    tx, _ = make_optimizer(tiny_router.base_config("unused").optimizer, 8)
    trainer = Trainer(tiny_arch, tiny_router.TinyConfig(), tx, mesh)
    examples = tiny_arch.examples_from_records(
        tiny_router.make_data(64), tiny_arch.make_featurizer(tiny_router.TinyConfig()), None
    )
    host = BatchIterator(examples, 16, seed=0)  # no sharding: numpy batches
    state = trainer.init(jax.random.PRNGKey(0))
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="host-to-device"):
        next(StepRunner(trainer, host, 2).segment(state, 2))
