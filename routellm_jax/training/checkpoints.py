"""Orbax checkpoints of a training run: state, data-iterator position and config, together.

A step directory ``<workdir>/checkpoints/<step>/`` holds four items:

* ``state``: ``{"step", "params", "opt_state", "rng"}`` (sharded arrays; restored onto any mesh by
  giving target shardings, e.g. trained on 8 devices, loaded on 1);
* ``data``: grain iterator state, one JSON file per process;
* ``config``: the experiment config (JSON);
* ``meta``: ``{"arch", "kind": "train" | "fit", "metrics"}`` (JSON).

Saves are asynchronous (the step loop goes on while arrays are written); Orbax writes into a
temporary directory and renames it when complete, so a killed process leaves the earlier
checkpoints intact and :meth:`Checkpointer.latest_step` never returns a half-written one. After a
save completes, a ``manifest.json`` of file sizes is written into the step directory; a restore
checks it first, so a truncated or missing file gives a :class:`CheckpointCorruptError` naming the
step directory and the file. Retention: the last ``keep`` steps plus the best by ``best_metric``.

Example:
    >>> ckpt = Checkpointer("/tmp/run", keep=3)  # doctest: +SKIP
    >>> ckpt.save(100, state, data_iterator, config_json, meta)  # doctest: +SKIP
    >>> arch_name, arch_cfg, params = load_params("/tmp/run")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class CheckpointCorruptError(RuntimeError):
    """A checkpoint step directory is truncated, incomplete or unreadable."""


class CheckpointNotFoundError(FileNotFoundError):
    """No (requested) checkpoint in the workdir."""


def checkpoint_dir(workdir: str | os.PathLike[str]) -> Path:
    """Where a run's checkpoints live.

    Example:
        >>> str(checkpoint_dir("/tmp/run"))
        '/tmp/run/checkpoints'
    """
    return Path(workdir).absolute() / "checkpoints"


def _metric_getter(name: str) -> Any:
    def get(metrics: Mapping[str, Any]) -> float:
        return float(metrics[name])

    return get


class Checkpointer:
    """Wraps an ``orbax.checkpoint.CheckpointManager`` for one training run.

    Example:
        >>> ckpt = Checkpointer(workdir, keep=2, best_metric="eval/loss")  # doctest: +SKIP
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        keep: int = 3,
        best_metric: str = "",
        best_mode: str = "min",
        async_save: bool = True,
    ) -> None:
        import orbax.checkpoint as ocp
        from orbax.checkpoint import checkpoint_managers as cm

        if best_mode not in ("min", "max"):
            raise ValueError(f"checkpoint.best_mode must be 'min' or 'max', got {best_mode!r}")
        self.directory = checkpoint_dir(workdir)
        self.best_metric = best_metric
        policies: list[Any] = [cm.LatestN(n=max(1, int(keep)))]
        if best_metric:
            # BestN keeps the tail of the sorted list: ascending for max, descending for min.
            policies.append(
                cm.BestN(
                    get_metric_fn=_metric_getter(best_metric),
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=cm.AnyPreservationPolicy(policies),
            enable_async_checkpointing=async_save,
            create=True,
            cleanup_tmp_directories=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            item_names=("state", "data", "config", "meta"),
            options=options,
        )
        self._unmanifested: list[int] = []

    # -- saving -----------------------------------------------------------------------------
    def save(
        self,
        step: int,
        state: Any,
        data_iterator: Any,
        config_json: Mapping[str, Any],
        meta: Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
    ) -> bool:
        """Start an (async) save of everything at ``step``; returns whether it was saved.

        ``data_iterator`` is a grain ``DatasetIterator`` (or ``None`` for built routers).
        """
        import grain
        import orbax.checkpoint as ocp

        items: dict[str, Any] = {
            "state": ocp.args.StandardSave(state),
            "config": ocp.args.JsonSave(dict(config_json)),
            "meta": ocp.args.JsonSave(dict(meta)),
        }
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        clean = {k: float(v) for k, v in (metrics or {}).items() if np.isfinite(v)}
        saved = self.manager.save(
            int(step), args=ocp.args.Composite(**items), metrics=clean or None, force=True
        )
        # manager.save waited for the previous async save to finalise: manifest those steps now.
        self._write_manifests()
        if saved:
            self._unmanifested.append(int(step))
        return bool(saved)

    def wait(self) -> None:
        """Block until pending saves are on disk (and manifested)."""
        self.manager.wait_until_finished()
        self._write_manifests()

    def close(self) -> None:
        self.wait()
        self.manager.close()

    def _write_manifests(self) -> None:
        """Record file sizes of the steps whose saves have finalised (callers make sure)."""
        if not self._unmanifested:
            return
        if jax.process_index() == 0:
            for step in self._unmanifested:
                step_dir = self.directory / str(step)
                if step_dir.is_dir():
                    write_manifest(step_dir)
        self._unmanifested = []

    # -- reading ----------------------------------------------------------------------------
    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step() if self.best_metric else None

    def read_json(self, step: int, item: str) -> dict[str, Any]:
        """The ``config`` or ``meta`` JSON of ``step``."""
        return _read_item_json(self.directory / str(step), item)

    def restore(self, step: int, abstract_state: Any, data_iterator: Any = None) -> tuple[Any, Any]:
        """Restore ``(state, data_iterator)`` of ``step`` onto ``abstract_state``'s shardings.

        ``abstract_state`` is a pytree of ``jax.ShapeDtypeStruct`` with ``sharding`` set.
        """
        import grain
        import orbax.checkpoint as ocp

        step_dir = self.directory / str(step)
        verify_manifest(step_dir)
        items: dict[str, Any] = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            out = self.manager.restore(int(step), args=ocp.args.Composite(**items))
        except Exception as err:  # orbax/tensorstore raise many types for bad files
            raise CheckpointCorruptError(
                f"{step_dir}: cannot restore checkpoint ({type(err).__name__}: {err})"
            ) from err
        return out["state"], out.get("data") if data_iterator is not None else None


def write_manifest(step_dir: Path) -> None:
    """Write ``manifest.json``: relative path -> size of every file in ``step_dir``."""
    files = {
        str(p.relative_to(step_dir)): p.stat().st_size
        for p in sorted(step_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    tmp = step_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1))
    os.replace(tmp, step_dir / MANIFEST)


def verify_manifest(step_dir: Path) -> None:
    """Raise :class:`CheckpointCorruptError` naming the first missing or truncated file.

    Example:
        >>> verify_manifest(Path("/tmp/run/checkpoints/100"))  # doctest: +SKIP
    """
    if not step_dir.is_dir():
        raise CheckpointNotFoundError(f"{step_dir}: no such checkpoint directory")
    manifest = step_dir / MANIFEST
    if not manifest.exists():
        return  # the process died after the save finalised but before the manifest: trust orbax
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointCorruptError(f"{manifest}: unreadable manifest ({err})") from err
    for rel, size in files.items():
        path = step_dir / rel
        if not path.exists():
            raise CheckpointCorruptError(f"{step_dir}: file {rel} is missing")
        actual = path.stat().st_size
        if actual != size:
            raise CheckpointCorruptError(
                f"{step_dir}: file {rel} has {actual} bytes, expected {size} (truncated?)"
            )


def _numpy_restore_args(metadata: Any) -> Any:
    import orbax.checkpoint as ocp

    return jax.tree_util.tree_map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
        metadata,
        is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"),
    )


def _read_item_json(step_dir: Path, item: str) -> dict[str, Any]:
    path = step_dir / item / "metadata"  # where orbax's JsonCheckpointHandler writes
    if not path.is_file():
        raise CheckpointCorruptError(f"{step_dir}: no {item}/metadata file (incomplete checkpoint)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointCorruptError(f"{path}: unreadable {item} JSON ({err})") from err


def load_params(workdir: str | os.PathLike[str], step: int | None = None) -> tuple[str, Any, Any]:
    """``(arch_name, arch_config, params)`` of a run's checkpoint (latest when ``step`` is None).

    Params come back as host numpy arrays in the saved tree structure (whatever mesh the run
    used), ready for export or for ``jax.device_put`` onto any device.

    Example:
        >>> name, cfg, params = load_params("runs/mf")  # doctest: +SKIP
    """
    import orbax.checkpoint as ocp

    from routellm_jax.training import config as config_lib

    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        raise CheckpointNotFoundError(f"{directory}: no checkpoints (was the run started?)")
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir())
    if not steps:
        raise CheckpointNotFoundError(f"{directory}: no complete checkpoint")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise CheckpointNotFoundError(f"{directory}: no step {step}; have {steps}")
    step_dir = directory / str(step)
    verify_manifest(step_dir)
    config = config_lib.from_json(_read_item_json(step_dir, "config"))
    try:
        with ocp.PyTreeCheckpointer() as ckptr:
            metadata = ckptr.metadata(step_dir / "state")
            tree = getattr(metadata, "item_metadata", None) or getattr(metadata, "tree", metadata)
            params_meta = tree["params"]
            restored = ckptr.restore(
                step_dir / "state",
                args=ocp.args.PyTreeRestore(
                    item={"params": params_meta},
                    restore_args={"params": _numpy_restore_args(params_meta)},
                    partial_restore=True,
                ),
            )
    except Exception as err:  # orbax/tensorstore raise many types for bad files
        raise CheckpointCorruptError(
            f"{step_dir}: cannot restore params ({type(err).__name__}: {err})"
        ) from err
    params = restored["params"]
    return config.arch, config_lib.arch_config(config), params
