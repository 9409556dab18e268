"""A TensorFlow Datasets builder for the canonical records, written as ArrayRecord for grain.

For users who keep their routing data on GCS: build once (``tfds build`` or
:func:`build_records_dataset`), then read it from any host with grain, no TensorFlow at training
time. Two configs, one per record kind:

* ``comparisons``: ``prompt, model_a, model_b, outcome (0 a / 1 b / 2 tie), weight, source``;
* ``outcomes``: ``prompt, model, score, source, kind``.

The source is a folder of ``comparisons.parquet`` / ``outcomes.parquet`` (what
``mixtures.save_mixture`` and ``data.prepare.save_training_data`` write), given as the
builder's ``records_dir`` (local or ``gs://``). TensorFlow and ``tensorflow_datasets`` are the
``tfds`` extra and are imported only when a builder is made.

Usage (not a doctest: the ``tfds`` extra is optional and CI does not install it;
``tests/data/test_pipeline_tfds.py`` runs the round trip where it is installed)::

    build_records_dataset("runs/mix1", "gs://bucket/tfds")
    data = read_training_data("gs://bucket/tfds", version="1.0.0")
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.data.records import ComparisonTable, OutcomeTable, TrainingData

NAME = "routellm_records"
VERSION = "1.0.0"
_VERSION = VERSION  # the builder class shadows VERSION in its body

COMPARISON_FIELDS = ("prompt", "model_a", "model_b", "outcome", "weight", "source")
OUTCOME_FIELDS = ("prompt", "model", "score", "source", "kind")


def _require_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds  # local: the optional (and heavy) tfds extra
    except ImportError as err:  # the optional extra
        raise ImportError(
            "the TFDS builder needs the 'tfds' extra: pip install 'routellm-jax[tfds]' "
            f"(tensorflow-datasets, tensorflow-cpu, array_record): {err}"
        ) from err
    return tfds


@functools.cache  # tfds registers builders by name: one class per process
def make_builder_class() -> type:
    """The ``tfds.core.GeneratorBasedBuilder`` subclass (created lazily: TensorFlow is optional).

    Its configs are ``comparisons`` and ``outcomes``; ``records_dir`` is a builder argument:
    ``make_builder_class()(config="comparisons", records_dir="runs/mix1", data_dir="tfds")``.
    """
    tfds = _require_tfds()

    class RoutellmRecords(tfds.core.GeneratorBasedBuilder):
        """Canonical routing records (battles or per-model outcomes)."""

        # Keys of RELEASE_NOTES are version strings: in the class body VERSION is already the
        # tfds Version object, which the DatasetInfo proto rejects.
        VERSION = tfds.core.Version(_VERSION)
        RELEASE_NOTES = {_VERSION: "Canonical records of routellm_jax.data.records."}
        BUILDER_CONFIGS = [
            tfds.core.BuilderConfig(name="comparisons", description="pairwise battles"),
            tfds.core.BuilderConfig(name="outcomes", description="per-model outcomes"),
        ]

        def __init__(self, *, records_dir: str | os.PathLike[str] | None = None, **kwargs: Any):
            self._records_dir = None if records_dir is None else str(records_dir)
            super().__init__(**kwargs)

        def _info(self) -> Any:
            text = tfds.features.Text()
            if self.builder_config.name == "comparisons":
                features = {
                    "prompt": text,
                    "model_a": text,
                    "model_b": text,
                    "outcome": tfds.features.Scalar(np.int8),
                    "weight": tfds.features.Scalar(np.float32),
                    "source": text,
                }
            else:
                features = {
                    "prompt": text,
                    "model": text,
                    "score": tfds.features.Scalar(np.float32),
                    "source": text,
                    "kind": text,
                }
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(features),
                description=__doc__.split("\n\n")[0],
                homepage="https://github.com/lm-sys/RouteLLM",
            )

        def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
            if self._records_dir is None:
                raise ValueError(f"{NAME}: pass records_dir= (a folder of *.parquet records)")
            kind = self.builder_config.name
            path = f"{self._records_dir.rstrip('/')}/{kind}.parquet"
            return {"train": self._generate_examples(path, kind)}

        def _generate_examples(self, path: str, kind: str) -> Any:
            yield from _iter_rows(path, kind)

    return RoutellmRecords


def _load_table(path: str, kind: str) -> Any:

    if path.startswith("gs://"):
        # Parquet over GCS through etils' epath (installed with the core deps; a local import
        # because epath loads slowly and local folders do not need it).
        from etils import epath

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            local.write_bytes(epath.Path(path).read_bytes())
            return _load_table(str(local), kind)
    cls = ComparisonTable if kind == "comparisons" else OutcomeTable
    return cls.load(path)


def _iter_rows(path: str, kind: str) -> Any:
    """``(key, feature dict)`` per row of a records parquet file (keys: row numbers)."""
    table = _load_table(path, kind)
    fields = COMPARISON_FIELDS if kind == "comparisons" else OUTCOME_FIELDS
    columns = {f: getattr(table, f) for f in fields}
    for i in range(len(table)):
        yield i, {f: columns[f][i] for f in fields}


def build_records_dataset(
    records_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    configs: tuple[str, ...] = ("comparisons", "outcomes"),
) -> list[Any]:
    """Build the dataset(s) as ArrayRecord under ``data_dir``; returns the builders."""
    tfds = _require_tfds()
    builder_cls = make_builder_class()
    builders = []
    for name in configs:
        if not Path(records_dir, f"{name}.parquet").exists() and not str(records_dir).startswith(
            "gs://"
        ):
            continue
        # The record format is a builder argument (not a DownloadConfig field in tfds 4.9).
        b = builder_cls(
            config=name,
            records_dir=records_dir,
            data_dir=str(data_dir),
            file_format=tfds.core.FileFormat.ARRAY_RECORD,
        )
        b.download_and_prepare()
        builders.append(b)
    return builders


def read_training_data(data_dir: str | os.PathLike[str], version: str = VERSION) -> Any:
    """Read the built dataset back into a :class:`TrainingData` with grain (no TensorFlow)."""
    # Local: grain and etils' epath load slowly; only reading a built dataset needs them.
    import grain
    from etils import epath

    tfds = _require_tfds()  # only for decoding the serialized tf.train.Example features
    builder_cls = make_builder_class()
    tables: dict[str, Any] = {}
    for name, cls, fields in (
        ("comparisons", ComparisonTable, COMPARISON_FIELDS),
        ("outcomes", OutcomeTable, OUTCOME_FIELDS),
    ):
        folder = epath.Path(data_dir) / NAME / name / version  # local or gs://
        if not folder.exists():
            continue
        builder = builder_cls(config=name, data_dir=str(data_dir), version=version)
        source = builder.as_data_source(split="train")
        ds = grain.MapDataset.source(source)
        rows = [ds[i] for i in range(len(ds))]
        cols = {}
        for f in fields:
            values = [r[f] for r in rows]
            if values and isinstance(values[0], bytes):
                arr = np.empty(len(values), dtype=object)
                arr[:] = [v.decode() for v in values]
                cols[f] = arr
            else:
                cols[f] = np.asarray(values)
        tables[name] = cls(**cols) if rows else cls.empty()
    del tfds
    return TrainingData.of(tables.get("comparisons"), tables.get("outcomes"))
