"""Fixtures of the training-framework tests: the tiny router, its records, 8 CPU devices."""

from __future__ import annotations

import pytest

# tiny_router.py sits next to this file; pytest's default ("prepend") import mode puts this folder
# on sys.path before importing it, as Python does for run_tiny.py run as a script.
import tiny_router


@pytest.fixture(scope="session")
def tiny_arch():
    arch = tiny_router.register()
    yield arch
    from routellm_jax.models import registry

    registry.unregister(arch.name)


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory):
    from routellm_jax.data.prepare import save_training_data

    return save_training_data(tiny_router.make_data(256), tmp_path_factory.mktemp("records"))


@pytest.fixture(scope="session")
def eight_devices():
    import jax

    if jax.device_count() < 8:
        pytest.fail(
            f"this test needs 8 devices, found {jax.device_count()}: run with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=8"
        )
    return jax.devices()[:8]


REFERENCE_STEPS = 8


@pytest.fixture(scope="session")
def reference_run(tiny_arch, tiny_records, eight_devices, tmp_path_factory):
    """An uninterrupted 8-step run on 8 devices (checkpoints every 2 steps, keep 2), shared by the
    checkpoint tests: they copy its workdir before changing anything in it."""
    from routellm_jax.training.train import train

    workdir = tmp_path_factory.mktemp("ref")
    config = tiny_router.base_config(str(tiny_records), steps=REFERENCE_STEPS)
    return train(config, workdir, progress=False)
