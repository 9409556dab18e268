"""Orbax checkpoints of a training run: state, data-iterator position and config, together.

A step directory ``<workdir>/checkpoints/<step>/`` holds four items:

* ``state``: ``{"step", "params", "opt_state", "rng"}`` (sharded arrays; restored onto any mesh by
  giving target shardings, e.g. trained on 8 devices, loaded on 1);
* ``data``: grain iterator state, one JSON file per process;
* ``config``: the experiment config (JSON);
* ``meta``: ``{"arch", "kind": "train" | "fit", "metrics"}`` (JSON).

Saves are asynchronous (the step loop goes on while arrays are written); Orbax writes into a
temporary directory and renames it when complete, so a killed process leaves the earlier
checkpoints intact and :meth:`Checkpointer.latest_step` never returns a half-written one. Once a
save has been committed, process 0 writes a ``manifest.json`` into the step directory: the size
and SHA-256 of every file. A restore checks it first, so a missing, truncated or altered file
(one flipped byte included) gives a :class:`CheckpointCorruptError` naming the step, the file and
the newest earlier step that verifies, with the command that resumes from it. A step whose
process was killed after the commit but before its manifest has none and is restored unchecked.

The workdir may be a local folder or an object-store URL (``gs://bucket/run``): every file here is
reached through :func:`routellm_jax.paths.location` (an :mod:`etils.epath` path), and Orbax
writes the arrays through TensorStore, which speaks ``gs://`` itself. On several processes, each
writes its own array shards and its own ``data/process_<i>-of-<n>.json``; process 0 writes the
JSON items, the manifest and any move.

Retention: the last ``keep`` steps, the best by ``best_metric``, and always the newest step saved
with finite losses (``meta["finite"]``), so a run that trains on through NaNs
(``stop_on_nonfinite=False``) never rotates its last good state away.

Example (a synchronous save of a one-array state; training passes its grain iterator too):
    >>> import shutil, tempfile
    >>> from routellm_jax.training.config import load_config, to_json
    >>> workdir = tempfile.mkdtemp()
    >>> config = load_config("mf_minilm_judge")
    >>> ckpt = Checkpointer(workdir, keep=3, async_save=False)
    >>> state = {"step": 100, "params": {"w": np.ones(3, np.float32)}}
    >>> ckpt.save(100, state, None, to_json(config), {"arch": config.arch, "kind": "train"})
    True
    >>> ckpt.close()
    >>> arch_name, arch_cfg, params = load_params(workdir)
    >>> arch_name, params["w"]
    ('mf', array([1., 1., 1.], dtype=float32))
    >>> shutil.rmtree(workdir)
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from etils import epath

from routellm_jax.integrity import sha256_and_size
from routellm_jax.paths import location, write_whole

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2  # 1: {"files": {path: size}}; 2: adds a SHA-256 per file
SUPERSEDED = "checkpoints_superseded"  # where --resume-step moves the steps after it
# Written into the superseded folder before the first move: an object store has no empty folders,
# and a move needs its target folder to exist.
SUPERSEDED_README = "README.txt"


class CheckpointCorruptError(RuntimeError):
    """A checkpoint step directory is truncated, altered, incomplete or unreadable.

    ``step`` and ``file`` (relative to the step directory) name the damage where known;
    ``previous_step`` is the newest earlier step that verifies (None: there is none) and
    ``resume_command`` the command in the message that resumes from it (the CLI swaps in the
    run's own config and overrides).
    """

    def __init__(
        self,
        message: str,
        *,
        step: int | None = None,
        file: str | None = None,
        previous_step: int | None = None,
        resume_command: str | None = None,
    ) -> None:
        super().__init__(message)
        self.step, self.file = step, file
        self.previous_step, self.resume_command = previous_step, resume_command


class CheckpointNotFoundError(FileNotFoundError):
    """No (requested) checkpoint in the workdir."""


def checkpoint_dir(workdir: str | os.PathLike[str]) -> epath.Path:
    """Where a run's checkpoints live (``workdir``: a local folder or an object-store URL).

    Example:
        >>> str(checkpoint_dir("/tmp/run")), str(checkpoint_dir("gs://bucket/run"))
        ('/tmp/run/checkpoints', 'gs://bucket/run/checkpoints')
    """
    return location(workdir) / "checkpoints"


def superseded_dir(workdir: str | os.PathLike[str]) -> epath.Path:
    """Where ``--resume-step N`` moves a run's checkpoints after step ``N`` (kept, not deleted).

    Example:
        >>> str(superseded_dir("/tmp/run"))
        '/tmp/run/checkpoints_superseded'
    """
    return location(workdir) / SUPERSEDED


def resume_command(workdir: str | os.PathLike[str], step: int) -> str:
    """The ``routellm-jax train`` command (``CONFIG`` as a placeholder) resuming from ``step``.

    Example:
        >>> resume_command("/tmp/run", 6)
        'routellm-jax train CONFIG --workdir /tmp/run --resume-step 6'
    """
    workdir = shlex.quote(str(location(workdir)))
    return f"routellm-jax train CONFIG --workdir {workdir} --resume-step {step}"


def _metric_getter(name: str) -> Any:
    def get(metrics: Mapping[str, Any]) -> float:
        return float(metrics[name])

    return get


class _KeepNewestFinite:
    """Orbax preservation policy: keep the newest step not in ``nonfinite`` (mutated by the
    :class:`Checkpointer` as it saves), however many non-finite steps follow it."""

    def __init__(self, nonfinite: set[int]) -> None:
        self.nonfinite = nonfinite

    def should_preserve(self, checkpoints: Sequence[Any], *, context: Any = None) -> list[bool]:
        finite = [c.step for c in checkpoints if c.step not in self.nonfinite]
        newest = max(finite) if finite else None
        return [c.step == newest for c in checkpoints]


class Checkpointer:
    """Wraps an ``orbax.checkpoint.CheckpointManager`` for one training run.

    Example (keeps the last two steps and the one with the lowest ``eval/loss``):
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as workdir:
        ...     ckpt = Checkpointer(workdir, keep=2, best_metric="eval/loss")
        ...     print(ckpt.latest_step(), ckpt.directory.name)
        ...     ckpt.close()
        None checkpoints
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
        self.workdir = self.directory.parent
        self.best_metric = best_metric
        self._nonfinite: set[int] = set()
        policies: list[Any] = [cm.LatestN(n=max(1, int(keep))), _KeepNewestFinite(self._nonfinite)]
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
        self._verified: set[int] = set()
        self._load_finite_flags()

    def _load_finite_flags(self) -> None:
        """Steps already on disk that were saved with non-finite losses (their ``meta``)."""
        self._nonfinite.clear()
        for step in self.manager.all_steps():
            try:
                finite = self.read_json(step, "meta").get("finite", True)
            except CheckpointCorruptError:
                continue  # unreadable meta: restore will say so; retention treats it as finite
            if finite is False:
                self._nonfinite.add(int(step))

    # -- saving -----------------------------------------------------------------------------
    def save(
        self,
        step: int,
        state: Any,
        data_iterator: Any,
        config_json: Mapping[str, Any],
        meta: Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
        *,
        finite: bool = True,
    ) -> bool:
        """Start an (async) save of everything at ``step``; returns whether it was saved.

        ``data_iterator`` is a grain ``DatasetIterator`` (or ``None`` for built routers).
        ``finite=False`` marks a state reached through non-finite losses: it is recorded in
        ``meta`` and retention then keeps the newest finite step besides the last ``keep``.
        """
        import grain
        import orbax.checkpoint as ocp

        items: dict[str, Any] = {
            "state": ocp.args.StandardSave(state),
            "config": ocp.args.JsonSave(dict(config_json)),
            "meta": ocp.args.JsonSave({**meta, "finite": bool(finite)}),
        }
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        clean = {k: float(v) for k, v in (metrics or {}).items() if np.isfinite(v)}
        # Retention runs inside manager.save and reads this set.
        if finite:
            self._nonfinite.discard(int(step))
        else:
            self._nonfinite.add(int(step))
        saved = self.manager.save(
            int(step), args=ocp.args.Composite(**items), metrics=clean or None, force=True
        )
        # manager.save waited for the previous async save to finalise: manifest those steps now.
        self._write_manifests()
        if saved:
            self._unmanifested.append(int(step))
            self.poll()  # a synchronous save is already committed
        return bool(saved)

    def poll(self) -> None:
        """Manifest the saves committed since the last call, without waiting for any.

        Cheap when nothing is pending; the training loop calls it every step so that a step is
        checksummed soon after its commit (a process killed in between leaves it unchecked).
        """
        if self._unmanifested and not self.manager.is_saving_in_progress():
            # The flag drops only after the finalize thread has committed the step directory
            # (on every process), so its files are complete and final.
            self._write_manifests()

    def wait(self) -> None:
        """Block until pending saves are on disk (and manifested)."""
        self.manager.wait_until_finished()
        self._write_manifests()

    def close(self) -> None:
        self.wait()
        self.manager.close()

    def _write_manifests(self) -> None:
        """Checksum the steps whose saves have been committed (callers make sure)."""
        if not self._unmanifested:
            return
        if jax.process_index() == 0:  # one writer for the shared step directory
            for step in self._unmanifested:
                step_dir = self.directory / str(step)
                if step_dir.is_dir():  # retention may already have removed it
                    write_manifest(step_dir)
                    self._verified.add(step)  # just hashed from what was written
        self._unmanifested = []

    # -- reading ----------------------------------------------------------------------------
    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step() if self.best_metric else None

    def newest_finite_step(self) -> int | None:
        """The newest step saved with finite losses (what retention always keeps)."""
        finite = [s for s in self.all_steps() if s not in self._nonfinite]
        return max(finite) if finite else None

    def is_finite(self, step: int) -> bool:
        """Whether ``step`` was saved with finite losses (steps from older runs: True)."""
        return int(step) not in self._nonfinite

    def verify(self, step: int) -> None:
        """Check ``step`` against its manifest (once per step and process); raises
        :class:`CheckpointCorruptError` naming the step, the file and the step to resume from."""
        if int(step) in self._verified:
            return
        verify_manifest(self.directory / str(step))
        self._verified.add(int(step))

    def supersede_after(self, step: int) -> list[int]:
        """Move the steps after ``step`` out of the run into :func:`superseded_dir` (kept on
        disk, out of Orbax's sight) so training can go on from ``step``; returns those steps.

        Every process calls it; process 0 moves, the others wait for it.
        """
        later = sorted(s for s in self.all_steps() if s > int(step))
        if later and jax.process_index() == 0:
            target = superseded_dir(self.workdir)
            target.mkdir(parents=True, exist_ok=True)
            readme = target / SUPERSEDED_README
            if not readme.exists():
                readme.write_text(
                    "Checkpoint steps moved out of checkpoints/ by `routellm-jax train "
                    "--resume-step N` (the steps after N); kept, not deleted.\n"
                )
            for s in later:
                dest = target / str(s)
                n = 1
                while dest.exists():  # superseded twice: keep both
                    dest, n = target / f"{s}.{n}", n + 1
                (self.directory / str(s)).rename(dest)
                log.warning("moved checkpoint step %d aside to %s", s, dest)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("routellm_jax.checkpoints.supersede_after")
        if later:
            self.manager.reload()
            self._load_finite_flags()
        return later

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
        self.verify(step)
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


def _files_under(folder: epath.Path) -> list[epath.Path]:
    """Every file below ``folder`` (a local folder or an object-store prefix), sorted."""
    # iterdir, not rglob or walk: epath refuses "**" patterns, and its walk over fsspec yields
    # object-store folders without their scheme.
    files: list[epath.Path] = []
    for p in folder.iterdir():
        files.extend(_files_under(p) if p.is_dir() else [p])
    return sorted(files)


def write_manifest(step_dir: str | os.PathLike[str]) -> None:
    """Write ``manifest.json``: relative path -> size and SHA-256 of every file in ``step_dir``."""
    step_dir = location(step_dir)
    files = {}
    for p in _files_under(step_dir):
        if p.name in (MANIFEST, MANIFEST + ".tmp"):
            continue
        digest, size = sha256_and_size(p)
        files[str(p.relative_to(step_dir))] = {"bytes": size, "sha256": digest}
    write_whole(
        step_dir / MANIFEST, json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=1)
    )


def _manifest_problem(step_dir: epath.Path) -> tuple[str, str] | None:
    """``(what is wrong, file)`` when ``step_dir`` fails its manifest, else None."""
    manifest = step_dir / MANIFEST
    if not manifest.exists():
        return None  # the process died after the save was committed but before the manifest
    try:
        files = json.loads(manifest.read_text())["files"]
        # Format 1 recorded sizes only.
        entries = {
            rel: (e, None) if isinstance(e, int) else (int(e["bytes"]), str(e["sha256"]))
            for rel, e in files.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"its {MANIFEST} is unreadable ({type(err).__name__}: {err})", MANIFEST
    for rel, (size, sha) in entries.items():
        path = step_dir / rel
        if not path.is_file():
            return f"file {rel} is missing", rel
        actual = path.stat().length
        if actual != size:
            return f"file {rel} has {actual} bytes, expected {size} (truncated?)", rel
        if sha is not None:
            got = sha256_and_size(path)[0]
            if got != sha:
                return (
                    f"file {rel} has SHA-256 {got[:16]}..., expected {sha[:16]}... (same size: "
                    "altered on disk after it was saved)",
                    rel,
                )
    return None


def _step_of(step_dir: epath.Path) -> int | None:
    return int(step_dir.name) if step_dir.name.isdigit() else None


def verify_manifest(step_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointCorruptError` naming the first missing, truncated or altered file,
    and the newest earlier step of the run that verifies (with the command to resume from it).
    """
    step_dir = location(step_dir)
    if not step_dir.is_dir():
        raise CheckpointNotFoundError(f"{step_dir}: no such checkpoint directory")
    problem = _manifest_problem(step_dir)
    if problem is None:
        return
    what, rel = problem
    step = _step_of(step_dir)
    previous = None
    if step is not None:
        earlier = sorted(
            (s for p in step_dir.parent.iterdir() if (s := _step_of(p)) is not None and s < step),
            reverse=True,
        )
        previous = next(
            (s for s in earlier if _manifest_problem(step_dir.parent / str(s)) is None), None
        )
    workdir = step_dir.parent.parent
    command = None
    if previous is None:
        advice = (
            "No earlier checkpoint of this run verifies: restore the file from a backup or start "
            "a new run in a new --workdir."
        )
    else:
        command = resume_command(workdir, previous)
        advice = (
            f"The newest earlier checkpoint that verifies is step {previous}; resume from it with "
            f"`{command}` (this run's CONFIG and overrides; the steps after {previous} are moved "
            f"to {superseded_dir(workdir)}), or export it with `--step {previous}`."
        )
    label = f"checkpoint step {step}" if step is not None else "checkpoint"
    raise CheckpointCorruptError(
        f"{label} ({step_dir}) is corrupt: {what}. {advice}",
        step=step,
        file=rel,
        previous_step=previous,
        resume_command=command,
    )


def _numpy_restore_args(metadata: Any) -> Any:
    import orbax.checkpoint as ocp

    return jax.tree_util.tree_map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
        metadata,
        is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"),
    )


def _read_item_json(step_dir: epath.Path, item: str) -> dict[str, Any]:
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

    Example (a run folder without checkpoints is an error naming it; a full round trip is in
    this module's docstring):
        >>> load_params("no/such/run")
        Traceback (most recent call last):
        ...
        routellm_jax.training.checkpoints.CheckpointNotFoundError: .../no/such/run/checkpoints: no checkpoints (was the run started?)
    """
    import orbax.checkpoint as ocp

    from routellm_jax.training import config as config_lib

    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        raise CheckpointNotFoundError(f"{directory}: no checkpoints (was the run started?)")
    # Finalized only: in an object store a step's folder is there before its commit marker.
    steps = sorted(
        int(p.name)
        for p in directory.iterdir()
        if p.name.isdigit() and p.is_dir() and ocp.utils.is_checkpoint_finalized(p)
    )
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
