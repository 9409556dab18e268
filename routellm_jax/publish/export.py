"""Export a trained router as a zoo entry: calibrate, write, verify the round trip, pack.

An entry folder::

    NAME/
      card.json          # routellm_jax.zoo.card.ModelCard (lists every params/ file's sha256)
      params/            # orbax StandardCheckpointer checkpoint of the inference params (host arrays)

:func:`export_entry` runs the steps on an :class:`ExportSpec` (what the entry says about itself)
and returns an :class:`~routellm_jax.publish.pack.ExportResult`:

1. :func:`calibrate`: the router's win rates over a stated reference prompt set, one threshold for
   each strong-call share 5%..95%;
2. :func:`write_entry`: the checkpoint and the card, into a temporary folder;
3. :func:`verify_round_trip`: the written folder is read back as :func:`routellm_jax.load` reads
   it (:func:`routellm_jax.zoo.entry.read_entry`, then a default :class:`~routellm_jax.api.Router`)
   and must give the in-memory win rates, so an entry that does not round-trip is never renamed
   into place; the spec's benchmarks are then evaluated on the written entry
   (:func:`routellm_jax.eval.evaluate.evaluate_benchmarks`);
4. :func:`~routellm_jax.publish.pack.pack_entry`: a deterministic ``.tar``.

:func:`export_from_workdir` does the same for a training run's checkpoint, calibrating on
:func:`~routellm_jax.data.judge_split.reference_prompts` unless the spec gives prompts.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from etils import epath

from routellm_jax import paths
from routellm_jax.api import Router
from routellm_jax.data.judge_split import REFERENCE_SETS, reference_prompts
from routellm_jax.eval.evaluate import evaluate_benchmarks
from routellm_jax.models.embedding_store import embed_into_store, embedding_store
from routellm_jax.models.plugins import provenance
from routellm_jax.models.registry import get_architecture
from routellm_jax.publish.pack import ExportResult, pack_entry
from routellm_jax.publish.provenance import base_model_ref, encoder_ref_for, git_commit
from routellm_jax.training.checkpoints import load_params
from routellm_jax.zoo.cache import hash_tree
from routellm_jax.zoo.card import (
    CARD_FILE,
    Calibration,
    CheckpointRef,
    DataCard,
    EncoderRef,
    EvalResult,
    ModelCard,
    calibration_from_win_rates,
    config_to_json,
)
from routellm_jax.zoo.entry import read_entry

# Win rates of the written entry must match the in-memory ones this closely: the fused path
# (what load() runs) against the exporter's (possibly unfused) scoring.
ROUND_TRIP_ATOL = 1e-5
ROUND_TRIP_PROMPTS = 16


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What a zoo entry says about itself, and what to check before it is published.

    ``calibration_prompts`` and ``calibration_reference`` (a sentence saying what they are) make
    the calibration table. ``strong``/``weak`` default to the paper's pair. ``encoder`` defaults
    to the encoder table's pins for the config's featurizer (or the base model of a fine-tuned
    architecture); ``tokenizer`` to the encoder's name and revision; ``commit`` to ``git
    rev-parse HEAD``. ``eval_results`` go into the card as given; ``eval_benchmarks``
    (``mmlu``, ``gsm8k``, ``mmlu-10pct``) are evaluated on the written entry and appended.
    ``pack=False`` writes the folder only; ``bundle_limit`` (bytes) makes an archive over it an
    error (bundled entries stay under 5 MB).

    Example:
        >>> ExportSpec("mf-test", ["hi"], "one prompt").version
        '0.1.0'
    """

    name: str
    calibration_prompts: Sequence[str] = ()
    calibration_reference: str = ""
    version: str = "0.1.0"
    description: str = ""
    license: str = ""
    strong: str | None = None
    weak: str | None = None
    data_card: DataCard | None = None
    eval_results: Sequence[EvalResult] = ()
    eval_benchmarks: Sequence[str] = ()
    encoder: EncoderRef | None = None
    tokenizer: dict[str, Any] | None = None
    commit: str | None = None
    pack: bool = True
    bundle_limit: int | None = None


def calibrate(
    router: Router, prompts: Sequence[str], reference: str
) -> tuple[Calibration, np.ndarray]:
    """The calibration table of ``router``'s default pair on ``prompts`` (described by
    ``reference``), and the win rates it was computed from.
    """
    if not prompts:
        raise ValueError("calibration_prompts is empty: the calibration table needs prompts")
    rates = router.win_rate(list(prompts))
    table = calibration_from_win_rates(
        rates, strong=router.default_strong, weak=router.default_weak, reference=reference
    )
    return table, rates


def write_entry(folder: Path, card: ModelCard, params: Any) -> ModelCard:
    """Save ``params`` (host arrays) as the Orbax checkpoint ``folder/params`` and the card,
    with every checkpoint file's size and sha256, as ``folder/card.json``; returns that card.
    """
    # A local import: Orbax (and through it TensorStore) loads only when an entry is written.
    import orbax.checkpoint as ocp

    ckpt = folder / "params"
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(ckpt.resolve(), params)
    checkpointer.wait_until_finished()
    card = dataclasses.replace(card, checkpoint=CheckpointRef(path="params", files=hash_tree(ckpt)))
    card.save(folder / CARD_FILE)
    return card


def verify_round_trip(
    folder: Path, featurizer: Any, prompts: Sequence[str], expected: np.ndarray
) -> tuple[ModelCard, Any]:
    """Read ``folder`` back as :func:`routellm_jax.load` does and check that a default router
    gives ``expected`` on ``prompts`` (within :data:`ROUND_TRIP_ATOL`); returns the card and
    parameters read back.
    """
    card, params = read_entry(folder)
    again = Router(card, params, featurizer=featurizer).win_rate(list(prompts))
    diff = float(np.max(np.abs(again - expected), initial=0.0))
    if not diff <= ROUND_TRIP_ATOL:
        raise RuntimeError(
            f"export of {card.name}: the written entry gives different win rates "
            f"(max diff {diff:.3g})"
        )
    return card, params


def _card(
    spec: ExportSpec, arch_name: str, config: Any, router: Router, table: Calibration
) -> ModelCard:
    featurizer_spec = getattr(config, "featurizer", "")
    encoder = spec.encoder
    if encoder is None and isinstance(featurizer_spec, str):
        encoder = encoder_ref_for(featurizer_spec)
    if encoder is None:
        encoder = base_model_ref(config)
    tokenizer = spec.tokenizer
    if tokenizer is None:
        tokenizer = {"name": encoder.name, "revision": encoder.revision} if encoder else {}
        if featurizer_spec:
            tokenizer["featurizer"] = featurizer_spec
    return ModelCard(
        name=spec.name,
        version=spec.version,
        architecture=arch_name,
        config=config_to_json(config),
        models=list(router.models),
        default_strong=router.default_strong,
        default_weak=router.default_weak,
        checkpoint=CheckpointRef(),
        description=spec.description,
        encoder=encoder,
        tokenizer=tokenizer,
        data=spec.data_card or DataCard(),
        calibration=table,
        evals=list(spec.eval_results),
        license=spec.license,
        commit=git_commit() if spec.commit is None else spec.commit,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        plugin=provenance(arch_name),
    )


def export_entry(
    arch_name: str,
    arch_config: Any,
    params: Any,
    out_dir: str | os.PathLike[str],
    spec: ExportSpec,
    *,
    featurizer: Any = None,
    overwrite: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Write ``out_dir/NAME/`` (card + Orbax params) and, with ``spec.pack``,
    ``out_dir/NAME-VERSION.tar``. ``featurizer`` overrides the architecture's (its per-prompt
    cache is reused); ``data_dir`` is where the spec's benchmarks are read.

    ``out_dir`` may be an object-store URL (``gs://bucket/run/export``): the entry is written and
    round-tripped in a local staging folder as for a local ``out_dir``, then uploaded.
    """
    if paths.is_url(out_dir):
        remote = paths.location(out_dir)
        if (remote / spec.name).exists() and not overwrite:
            raise FileExistsError(
                f"{remote / spec.name} exists (pass overwrite=True to replace it)"
            )
        with tempfile.TemporaryDirectory(prefix="routellm-jax-export-") as staging:
            result = export_entry(
                arch_name,
                arch_config,
                params,
                staging,
                spec,
                featurizer=featurizer,
                overwrite=overwrite,
                data_dir=data_dir,
            )
            return upload_export(result, remote)
    arch = get_architecture(arch_name)
    if not isinstance(arch_config, arch.config_cls):
        raise TypeError(
            f"arch_config is a {type(arch_config).__name__}, expected {arch.config_cls.__name__}"
        )
    if not spec.calibration_prompts:
        raise ValueError("calibration_prompts is empty: the calibration table needs prompts")
    out_dir = Path(out_dir)
    final = out_dir / spec.name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)")
    out_dir.mkdir(parents=True, exist_ok=True)

    host_params = jax.tree.map(np.asarray, jax.device_get(params))
    featurizer = featurizer if featurizer is not None else arch.make_featurizer(arch_config)
    store = embedding_store(featurizer)

    def prepare(prompts: list[str]) -> None:
        if store is not None:
            embed_into_store(featurizer, prompts, store, progress=True)

    # Scoring router: with a frozen encoder's on-disk store it runs unfused on the stored
    # vectors (the fused path's numbers, checked by the round trip), so re-exports do not
    # re-embed the reference set and the benchmarks.
    scorer = Router.from_params(
        arch_name,
        arch_config,
        host_params,
        name=spec.name,
        strong=spec.strong,
        weak=spec.weak,
        featurizer=featurizer,
        fuse_encoder=store is None,
    )
    prepare(list(spec.calibration_prompts))
    table, rates = calibrate(scorer, spec.calibration_prompts, spec.calibration_reference)
    card = _card(spec, arch_name, arch_config, scorer, table)

    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{spec.name}.exporting."))
    try:
        card = write_entry(tmp, card, host_params)
        probe = list(spec.calibration_prompts[:ROUND_TRIP_PROMPTS])
        card_back, params_back = verify_round_trip(tmp, featurizer, probe, rates[: len(probe)])
        if spec.eval_benchmarks:
            # On the written entry's parameters, scored like the calibration.
            evaluator = Router(card_back, params_back, featurizer=featurizer, fuse_encoder=False)
            records = evaluate_benchmarks(
                evaluator,
                spec.eval_benchmarks,
                entry_name=spec.name,
                data_dir=data_dir,
                prepare=prepare,
            )
            card.evals = card.evals + [EvalResult(**r) for r in records]
            card.save(tmp / CARD_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    if not spec.pack:
        return ExportResult(entry_dir=final, archive=None, sha256="", size=0, card=card)
    archive = pack_entry(final, out_dir / f"{spec.name}-{spec.version}.tar")
    result = ExportResult.of_archive(final, archive, card)
    if spec.bundle_limit is not None and result.size > spec.bundle_limit:
        raise ValueError(
            f"{archive}: {result.size} bytes, over the bundling limit of {spec.bundle_limit} "
            "bytes; publish it by URL instead"
        )
    return result


def upload_export(result: ExportResult, out_dir: epath.Path) -> ExportResult:
    """Copy a local export (entry folder and archive) into ``out_dir`` (an object-store URL),
    replacing an entry of the same name there; the result names the uploaded copies."""
    entry = out_dir / result.entry_dir.name
    if entry.exists():
        entry.rmtree()
    for path in sorted(result.entry_dir.rglob("*")):
        if path.is_file():
            target = entry / path.relative_to(result.entry_dir).as_posix()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    archive = None
    if result.archive is not None:
        archive = out_dir / result.archive.name
        archive.write_bytes(result.archive.read_bytes())
    return dataclasses.replace(result, entry_dir=entry, archive=archive)


def find_data_card(workdir: epath.Path) -> DataCard | None:
    for path in (workdir / "data_card.json", workdir / "data" / "data_card.json"):
        if path.is_file():
            return DataCard.from_mixture_card(json.loads(path.read_text()))
    return None


def export_from_workdir(
    workdir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    spec: ExportSpec,
    *,
    step: int | None = None,
    reference: str = REFERENCE_SETS[0],
    data_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = True,
) -> ExportResult:
    """Export a training run's checkpoint (``training.checkpoints.load_params``) as a zoo entry.

    Without ``spec.calibration_prompts`` the entry is calibrated on the ``reference`` set
    (:func:`~routellm_jax.data.judge_split.reference_prompts`); without ``spec.data_card`` the
    card is ``WORKDIR/data_card.json`` when the trainer wrote one, else one saying none was
    recorded.
    """
    workdir = paths.location(workdir)  # a local folder or an object-store URL
    arch_name, arch_config, params = load_params(workdir, step)
    if spec.data_card is None:
        data_card = find_data_card(workdir) or DataCard(
            notes=f"no data card was recorded in {workdir.name}; see the experiment config"
        )
        spec = dataclasses.replace(spec, data_card=data_card)
    if not spec.calibration_prompts:
        prompts, what = reference_prompts(reference, data_dir)
        spec = dataclasses.replace(spec, calibration_prompts=prompts, calibration_reference=what)
    return export_entry(
        arch_name, arch_config, params, out_dir, spec, overwrite=overwrite, data_dir=data_dir
    )
