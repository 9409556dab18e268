"""The TFDS builder's TensorFlow-free parts (the builder itself needs the ``tfds`` extra, which
CI does not install: there the round trip below skips; with the extra it builds ArrayRecord files and
reads them back with grain)."""

from __future__ import annotations

import importlib.util

import numpy as np
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


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_datasets") is None
    or importlib.util.find_spec("array_record") is None,
    reason="the builder needs the 'tfds' extra (pip install 'routellm-jax[tfds]')",
)
def test_build_as_array_record_and_read_back_with_grain(tmp_path):
    from routellm_jax.data.records import Outcome, OutcomeTable

    battles = ComparisonTable.from_records(
        [
            Comparison(
                f"prompt {i} \u00e9",
                f"model-{i % 3}",
                "mixtral",
                ("a", "b", "tie")[i % 3],
                0.25 * (i % 4 + 1),
                "src",
            )
            for i in range(12)
        ]
    )
    outcomes = OutcomeTable.from_records(
        [Outcome(f"q{i}", "gpt-4", float(i % 2), "mmlu") for i in range(7)]
    )
    records = tmp_path / "records"
    records.mkdir()
    battles.save(records / "comparisons.parquet")
    outcomes.save(records / "outcomes.parquet")
    built = tfds_builder.build_records_dataset(records, tmp_path / "tfds")
    assert len(built) == 2
    files = list((tmp_path / "tfds").rglob("*.array_record*"))
    assert files, "no ArrayRecord files written"
    data = tfds_builder.read_training_data(tmp_path / "tfds")
    back, want = data.comparisons, battles
    order = np.argsort(back.prompt.astype(str))
    ref = np.argsort(want.prompt.astype(str))
    for field in tfds_builder.COMPARISON_FIELDS:
        got, exp = getattr(back, field)[order], getattr(want, field)[ref]
        if exp.dtype.kind in "fc":
            np.testing.assert_allclose(got.astype(float), exp.astype(float), rtol=1e-6)
        else:
            assert got.tolist() == exp.tolist(), field
    assert sorted(data.outcomes.score.tolist()) == sorted(outcomes.score.tolist())

    # ... and the trainer reads the same data from there (data.tfds_dir).
    from routellm_jax.data.prepare import load_training_data
    from routellm_jax.training.config import default_config

    config = default_config()
    config.data.tfds_dir = str(tmp_path / "tfds")
    loaded, card = load_training_data(config.data)
    assert len(loaded.comparisons) == len(battles) and len(loaded.outcomes) == len(outcomes)
    assert card["tfds_dir"] == str(tmp_path / "tfds")
