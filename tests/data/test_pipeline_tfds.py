"""The TFDS builder's TensorFlow-free parts (the builder itself needs the ``tfds`` extra, which
this environment does not install: building ArrayRecord files is not exercised here)."""

from __future__ import annotations

import importlib.util

import pytest

from routellm_jax.data import tfds_builder
from routellm_jax.data.records import Comparison, ComparisonTable


def test_rows_come_from_the_records_parquet(tmp_path):
    table = ComparisonTable.from_records(
        [Comparison("q1", "gpt-4", "mixtral", "a", 0.5, "s"), Comparison("q2", "x", "y", "tie")]
    )
    table.save(tmp_path / "comparisons.parquet")
    rows = list(tfds_builder._iter_rows(str(tmp_path / "comparisons.parquet"), "comparisons"))
    assert [k for k, _ in rows] == [0, 1]
    assert rows[0][1]["prompt"] == "q1" and rows[0][1]["weight"] == pytest.approx(0.5)
    assert int(rows[1][1]["outcome"]) == 2
    assert set(rows[0][1]) == set(tfds_builder.COMPARISON_FIELDS)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_datasets") is not None,
    reason="tensorflow_datasets is installed: the missing-extra message does not apply",
)
def test_missing_extra_gives_the_install_command():
    with pytest.raises(ImportError, match=r"routellm-jax\[tfds\]"):
        tfds_builder.make_builder_class()
