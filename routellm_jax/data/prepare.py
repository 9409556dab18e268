"""Data preparation, before any training: a run's config ``data`` section -> its training data,
data card and model table.

``data.records``: a folder with ``comparisons.parquet`` and/or ``outcomes.parquet`` (what
:func:`save_training_data` and :func:`routellm_jax.data.mixtures.save_mixture` write).
``data.tfds_dir``: a TFDS data dir of records built as ArrayRecord by
:func:`routellm_jax.data.tfds_builder.build_records_dataset` (local or ``gs://``), read with grain.
``data.mixture``: a mixture declared as data (:meth:`~routellm_jax.data.mixtures.MixtureSpec.to_dict`
form), built from ``data.data_dir`` (default: :func:`routellm_jax.paths.data_dir`) with every
decontamination pass it declares; a mix that declares ``near_duplicate_encoder`` needs that
encoder's vectors as ``embed_fn`` (the trainer passes its embedding store's).

The model table is fixed here, not during training: :attr:`PreparedData.models` is every model
the data names, sorted, the table a router's model indices point into when its config leaves
``arch_config.models`` empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from etils import epath

from routellm_jax.data.mixtures import MixtureSpec, build_mixture
from routellm_jax.data.records import ComparisonTable, OutcomeTable, TrainingData
from routellm_jax.paths import location

EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class PreparedData:
    """A run's training data, its data card, and the sorted models it names."""

    data: TrainingData
    card: dict[str, Any]
    models: tuple[str, ...]


def model_table(data: TrainingData) -> tuple[str, ...]:
    """Every model the data names, sorted.

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("q", "m2", "m1", "a")])
        >>> model_table(TrainingData.of(comparisons=t))
        ('m1', 'm2')
    """
    return tuple(sorted(set(data.comparisons.models()) | set(data.outcomes.models())))


def declared_encoder(data_cfg: Any) -> str | None:
    """The encoder a config's mixture declares for its near-duplicate pass (None without one).

    Example:
        >>> declared_encoder({"mixture": {"near_duplicate_encoder": "all-MiniLM-L6-v2"}})
        'all-MiniLM-L6-v2'
    """
    mixture = _get(data_cfg, "mixture")
    if not mixture or not len(mixture):
        return None
    return _get(mixture, "near_duplicate_encoder") or None


def _get(cfg: Any, key: str) -> Any:
    return cfg.get(key) if isinstance(cfg, Mapping) or hasattr(cfg, "get") else None


def _to_dict(cfg: Any) -> dict[str, Any]:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def load_training_data(
    data_cfg: Any, *, embed_fn: EmbedFn | None = None
) -> tuple[TrainingData, dict[str, Any]]:
    """``(TrainingData, data card)`` of a config's ``data`` section (see the module docstring).

    Example:
        >>> load_training_data({"records": "", "mixture": {}})
        Traceback (most recent call last):
        ...
        ValueError: config.data: set data.records (a folder), data.tfds_dir (built records) or data.mixture
    """
    records = _get(data_cfg, "records")
    if records:
        folder = location(records)
        comp, outc = folder / "comparisons.parquet", folder / "outcomes.parquet"
        if not comp.exists() and not outc.exists():
            raise FileNotFoundError(
                f"data.records={folder}: expected comparisons.parquet and/or outcomes.parquet"
            )
        card_path = folder / "data_card.json"
        card = json.loads(card_path.read_text()) if card_path.exists() else {"records": str(folder)}
        data = TrainingData.of(
            ComparisonTable.load(comp) if comp.exists() else None,
            OutcomeTable.load(outc) if outc.exists() else None,
        )
        return data, card
    tfds_dir = _get(data_cfg, "tfds_dir")
    if tfds_dir:
        # grain and TFDS load only for runs that read built records
        from routellm_jax.data.tfds_builder import read_training_data

        data = read_training_data(tfds_dir)
        return data, {"tfds_dir": str(tfds_dir), "rows": len(data.comparisons)}
    mixture = _get(data_cfg, "mixture")
    if mixture and len(mixture):
        spec = MixtureSpec.from_dict(_to_dict(mixture))
        return build_mixture(spec, data_root=_get(data_cfg, "data_dir") or None, embed_fn=embed_fn)
    raise ValueError(
        "config.data: set data.records (a folder), data.tfds_dir (built records) or data.mixture"
    )


def prepare_data(data_cfg: Any, *, embed_fn: EmbedFn | None = None) -> PreparedData:
    """Load or build a run's data (:func:`load_training_data`) and fix its model table.

    Example:
        >>> import tempfile
        >>> folder = save_training_data(TrainingData.of(), tempfile.mkdtemp())
        >>> prepare_data({"records": str(folder)}).models
        ()
    """
    data, card = load_training_data(data_cfg, embed_fn=embed_fn)
    return PreparedData(data, card, model_table(data))


def save_training_data(data: TrainingData, folder: str | os.PathLike[str]) -> epath.Path:
    """Write a :class:`TrainingData` as the ``data.records`` folder a run reads (a local folder
    or an object-store URL).

    Example:
        >>> import tempfile
        >>> out = save_training_data(TrainingData.of(), tempfile.mkdtemp())
        >>> sorted(p.name for p in out.iterdir())
        ['comparisons.parquet', 'outcomes.parquet']
    """
    folder = location(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data.comparisons.save(folder / "comparisons.parquet")
    data.outcomes.save(folder / "outcomes.parquet")
    return folder
