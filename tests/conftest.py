"""Shared fixtures.

``data_dir``: the real routing data in ``../shared/data``. Without it a user's test run skips the
tests that need it; CI sets ``ROUTELLM_JAX_REQUIRE_DATA=1`` so a missing folder fails instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from routellm_jax.paths import DataDirNotFound
from routellm_jax.paths import data_dir as _find_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    try:
        return _find_data_dir()
    except DataDirNotFound as err:
        if os.environ.get("ROUTELLM_JAX_REQUIRE_DATA") == "1":
            pytest.fail(f"ROUTELLM_JAX_REQUIRE_DATA=1 but {err}")
        pytest.skip(f"routing data not available: {err}")
