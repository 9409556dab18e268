"""Training: a pure train step, compiled once over a mesh, and the loop around it.

Longer than most modules because the loop's parts share one run's state (resume point, dispatch
blocks, NaN stop, checkpoint and eval cadence, metrics rows); what stands alone lives elsewhere:
data preparation (:mod:`routellm_jax.data.prepare`), evaluators
(:mod:`routellm_jax.training.evaluators`), resume (:mod:`routellm_jax.training.resume`) and
checkpoints (:mod:`routellm_jax.training.checkpoints`).

The step is ``train_step(state, batch, rng) -> (state, metrics)`` with
``state = {"step", "params", "opt_state", "rng"}``; :class:`Trainer` jits it once with explicit
``in_shardings``/``out_shardings`` (params and optimizer state placed by the architecture's
partition rules, the batch split over ``data``/``fsdp``) and donates the old state. The per-step
key is ``fold_in(state["rng"], state["step"])``, so a resumed run draws the same keys.

:func:`train` is the whole run: config -> training data (a mixture or a saved records folder) ->
featurizer -> examples -> held-out split -> grain pipeline -> steps (progress bar with rate and
ETA) -> eval every N steps (held-out loss/metrics, benchmark APGR when configured) -> Orbax
checkpoints. Architectures with ``fit`` (built, not trained) are fitted and saved instead.

Steps run ``config.steps_per_dispatch`` at a time (:class:`StepRunner`: one ``lax.scan`` call per
block, blocks ending at eval and checkpoint steps, so those and a resume see exactly the state
and data position of one step per call); the per-step metrics stay on the device until a log
step. Training examples that fit ``config.data.device_budget_mb`` are placed on the devices once
and each step gathers its rows there by index (grain still draws the indices), so a small router's
step moves a few index bytes instead of a batch. ``config.step_transfer_guard = "disallow"``
makes any implicit host<->device transfer in the step loop an error.

Every step's loss, gradient norm and update norm are checked on the host at each log step and
before each checkpoint: a NaN/inf stops the run with :class:`NonFiniteLossError` naming the step,
before any state reached through it is saved (``config.stop_on_nonfinite``). A run starting
from step S (a restored step, or 0) moves the ``metrics.jsonl`` rows after S, which it writes
again, to ``metrics.superseded.jsonl``, so no step is logged twice.

The workdir (and ``data.records``) may be a local folder or an object-store URL
(``gs://bucket/run``): every file is reached through :func:`routellm_jax.paths.location`, one code
path for both. On several processes (``jax.process_count() > 1``) process 0 alone writes what
exists once (``metrics.jsonl``, ``data_card.json``, TensorBoard events; Orbax writes the config
item from process 0) and each process writes its own array shards and data-iterator state. Every
process must reach the same workdir, so a local one is refused there unless
``shared_workdir=True`` (``--shared-workdir``) says it is a filesystem every host mounts.

Example:
    >>> from routellm_jax.training.config import load_config
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from routellm_jax import paths
from routellm_jax.data.pipeline import (
    DeviceExamples,
    block_sharding,
    device_examples,
    gather_rows,
)
from routellm_jax.data.prepare import declared_encoder, model_table, prepare_data
from routellm_jax.models.embedding_store import embed_into_store, embedding_store
from routellm_jax.models.encoders.bert import native_bf16_matmul
from routellm_jax.models.featurizers import encoder_part, make_embedding_featurizer
from routellm_jax.training import config as config_lib
from routellm_jax.training import sharding as sharding_lib
from routellm_jax.training.evaluators import make_evaluators, run_evaluators
from routellm_jax.training.prng import fused_key

log = logging.getLogger(__name__)

State = dict[str, Any]

# Train metrics that must stay finite for a state to be worth saving: a finite loss and gradient
# can still give a NaN update (e.g. from a damaged optimizer state), hence the update norm too.
FINITE_METRICS = ("loss", "grad_norm", "update_norm")
METRICS_FILE = "metrics.jsonl"
SUPERSEDED_METRICS_FILE = "metrics.superseded.jsonl"
DATA_CARD_FILE = "data_card.json"
# metrics.jsonl is rewritten whole (an object store cannot append to an object): at most this
# often while steps run (an object store takes about one write per second per object), and
# always before a checkpoint and at the end, so a resume never misses a row it does not redo.
METRICS_FLUSH_SECONDS = 2.0


class SharedWorkdirError(ValueError):
    """A multi-process run was given a local workdir without being told every host shares it."""


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN/inf train loss, gradient norm or update norm (``step``: the first).

    ``newest_checkpoint`` is the newest saved step (None: none yet); ``resume_command`` the
    command in the message that resumes from it.
    """

    def __init__(
        self,
        message: str,
        *,
        step: int,
        newest_checkpoint: int | None,
        resume_command: str | None,
    ) -> None:
        super().__init__(message)
        self.step, self.newest_checkpoint = step, newest_checkpoint
        self.resume_command = resume_command


# ---------------------------------------------------------------------------------------------
# The pure functions
# ---------------------------------------------------------------------------------------------


def init_state(arch: Any, arch_cfg: Any, tx: Any, rng: jax.Array) -> State:
    """Fresh train state: params from ``arch.init``, optimizer state, step 0, a base key."""
    init_rng, base_rng = jax.random.split(rng)
    params = arch.init(init_rng, arch_cfg)
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": tx.init(params),
        "rng": base_rng,
    }


def train_step(
    state: State,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    arch: Any,
    arch_cfg: Any,
    tx: Any,
    schedule: Callable[[Any], Any] | None = None,
    accum_steps: int = 1,
) -> tuple[State, dict[str, jax.Array]]:
    """One optimizer (micro-)step on ``batch`` with the architecture's own loss."""
    import optax

    def loss_fn(params: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
        return arch.loss(params, batch, rng, arch_cfg)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "update_norm": optax.tree.norm(updates),
    }
    metrics.update({k: jnp.asarray(v, jnp.float32) for k, v in aux.items() if k != "loss"})
    if schedule is not None:
        metrics["lr"] = jnp.asarray(schedule(state["step"] // accum_steps), jnp.float32)
    new_state = {
        "step": state["step"] + 1,
        "params": params,
        "opt_state": opt_state,
        "rng": state["rng"],
    }
    return new_state, metrics


def step_key(base: jax.Array, step: jax.Array) -> jax.Array:
    """The key train step ``step`` hands the loss: ``fold_in(base, step)`` as a typed
    :data:`~routellm_jax.training.prng.FUSED_THREEFRY` key, whose draws equal the raw threefry
    key's but compile to fused loops (dropout masks and noise cost a fraction of the time).

    Example:
        >>> base = jax.random.PRNGKey(0)
        >>> draw = lambda key: jax.random.normal(key, (4,))
        >>> bool((draw(step_key(base, jnp.int32(3))) == draw(jax.random.fold_in(base, 3))).all())
        True
    """
    return fused_key(jax.random.fold_in(base, step))


def eval_step(
    params: Any, batch: Mapping[str, jax.Array], rng: jax.Array, *, arch: Any, arch_cfg: Any
) -> dict[str, jax.Array]:
    """Loss and the architecture's metrics on one held-out batch."""
    loss, aux = arch.loss(params, batch, rng, arch_cfg)
    out = {"loss": loss}
    out.update({k: jnp.asarray(v, jnp.float32) for k, v in aux.items() if k != "loss"})
    return out


# ---------------------------------------------------------------------------------------------
# Compiled, sharded versions
# ---------------------------------------------------------------------------------------------


class Trainer:
    """The jitted, sharded init/train/eval functions of one architecture on one mesh.

    ``example_batch`` gives the batch structure (shapes/dtypes; any leading size).
    """

    def __init__(
        self,
        arch: Any,
        arch_cfg: Any,
        tx: Any,
        mesh: jax.sharding.Mesh,
        *,
        schedule: Callable[[Any], Any] | None = None,
        accum_steps: int = 1,
        batch_keys: Sequence[str] | None = None,
    ) -> None:
        self.arch, self.arch_cfg, self.tx, self.mesh = arch, arch_cfg, tx, mesh
        repl = sharding_lib.replicated(mesh)
        # Architectures whose init reads pretrained weights from disk (bert, causal_llm; their
        # config says ``pretrained``) or cannot be traced get an eager host init, then placement.
        self._host_init = bool(getattr(arch_cfg, "pretrained", False))
        try:
            abstract_params = jax.eval_shape(
                lambda r: arch.init(r, arch_cfg), jax.random.PRNGKey(0)
            )
        except (
            jax.errors.TracerArrayConversionError,
            jax.errors.ConcretizationTypeError,
            jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError,
        ):
            self._host_init = True
            host = arch.init(jax.random.PRNGKey(0), arch_cfg)
            abstract_params = jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), host
            )
            del host
        abstract = {
            "step": jax.ShapeDtypeStruct((), jnp.int32),
            "params": abstract_params,
            "opt_state": jax.eval_shape(tx.init, abstract_params),
            "rng": jax.eval_shape(lambda: jax.random.PRNGKey(0)),
        }
        p_shard = sharding_lib.param_shardings(abstract["params"], arch.partition_rules, mesh)
        o_shard = sharding_lib.opt_state_shardings(tx, abstract["opt_state"], p_shard, mesh)
        self.state_shardings: State = {
            "step": repl,
            "params": p_shard,
            "opt_state": o_shard,
            "rng": repl,
        }
        self.abstract_state = jax.tree_util.tree_map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            abstract,
            self.state_shardings,
        )
        self.batch_sharding = sharding_lib.batch_sharding(mesh)
        self.param_shardings = p_shard

        def step_fn(state: State, batch: Mapping[str, jax.Array]) -> tuple[State, Any]:
            rng = step_key(state["rng"], state["step"])
            return train_step(
                state,
                batch,
                rng,
                arch=arch,
                arch_cfg=arch_cfg,
                tx=tx,
                schedule=schedule,
                accum_steps=accum_steps,
            )

        def eval_fn(params: Any, batch: Mapping[str, jax.Array]) -> Any:
            # Eval keys are fixed: held-out numbers stay comparable across evaluations.
            return eval_step(params, batch, jax.random.PRNGKey(0), arch=arch, arch_cfg=arch_cfg)

        # A dict of one sharding per batch key would need the keys up front; a single sharding
        # is a pytree prefix of any batch dict, so the jit below serves every batch structure.
        self._jit_init = jax.jit(
            lambda r: init_state(arch, arch_cfg, tx, r), out_shardings=self.state_shardings
        )
        self._opt_init = jax.jit(tx.init, out_shardings=o_shard)
        self.step = jax.jit(
            step_fn,
            in_shardings=(self.state_shardings, self.batch_sharding),
            out_shardings=(self.state_shardings, repl),
            donate_argnums=(0,),
        )
        self.eval = jax.jit(
            eval_fn, in_shardings=(p_shard, self.batch_sharding), out_shardings=repl
        )
        self.block_sharding = block_sharding(self.batch_sharding)

        def scan_fn(state: State, block: Mapping[str, jax.Array], data: Any) -> tuple[State, Any]:
            def body(st: State, batch: Mapping[str, jax.Array]) -> tuple[State, Any]:
                if data:  # device-resident examples: ``batch`` holds only their indices
                    batch = gather_rows(data, batch["index"])
                return step_fn(st, batch)

            return jax.lax.scan(body, state, block)

        # Several steps per call: one dispatch (and one host round trip) for a block of batches;
        # the per-step metrics come back stacked ``[k]`` and stay on the device until logged.
        self.multi_step = jax.jit(
            scan_fn,
            in_shardings=(self.state_shardings, self.block_sharding, repl),
            out_shardings=(self.state_shardings, repl),
            donate_argnums=(0,),
        )

    def init(self, rng: jax.Array) -> State:
        """Fresh state on this mesh (the same values as :func:`init_state`)."""
        if not self._host_init:
            return self._jit_init(rng)
        # Eager: pretrained weights read inside init would otherwise become compile-time
        # constants of a jitted init (slow to compile, and a copy of the model in the program).
        init_rng, base_rng = jax.random.split(rng)
        params = jax.device_put(self.arch.init(init_rng, self.arch_cfg), self.param_shardings)
        repl = sharding_lib.replicated(self.mesh)
        return {
            "step": jax.device_put(np.zeros((), np.int32), repl),
            "params": params,
            "opt_state": self._opt_init(params),
            "rng": jax.device_put(base_rng, repl),
        }

    def compile_count(self) -> int:
        """How many times the train step has been compiled (the jit caches' sizes: one per batch
        shape, and one per block length of :attr:`multi_step`)."""
        return int(self.step._cache_size()) + int(self.multi_step._cache_size())

    def place_params(self, params: Any) -> Any:
        """Put host params onto this trainer's param shardings."""
        return jax.device_put(params, self.param_shardings)


class StepRunner:
    """Runs :class:`Trainer` steps over a :class:`~routellm_jax.data.pipeline.BatchIterator`,
    ``steps_per_dispatch`` steps per jitted call.

    :meth:`segment` runs ``n`` steps as blocks of ``steps_per_dispatch`` (one ``lax.scan`` call
    each) and single steps for the remainder (so at most two executables), yielding after each
    call. With ``device_data`` (:func:`~routellm_jax.data.pipeline.device_examples`) only the
    batches' indices leave the host and the rows are gathered on the device. The next block is
    fetched (and sent) while the device runs the current one, but never past the end of the
    segment: at a segment's end the iterator state is that of the last step run, which is what a
    checkpoint saves. The batches, keys and results do not depend on ``steps_per_dispatch``.
    """

    def __init__(
        self,
        trainer: Trainer,
        iterator: Any,
        steps_per_dispatch: int = 1,
        device_data: DeviceExamples | None = None,
    ) -> None:
        self.trainer, self.iterator = trainer, iterator
        self.k = max(1, int(steps_per_dispatch))
        self.device_data = device_data
        self._data_tree = device_data.tree() if device_data is not None else {}
        if self.k > 1 or device_data is not None:
            if getattr(iterator, "length_buckets", ()):
                raise ValueError(
                    "steps_per_dispatch > 1 and device-resident examples need batches of one "
                    "shape; length-bucketed batches run one step per dispatch"
                )

    def _fetch(self, length: int) -> Any:
        if self.device_data is not None:
            return {"index": self.iterator.next_index_block(length)}
        if length == 1:
            return next(self.iterator)
        return self.iterator.next_block(length)

    def _dispatch(self, state: State, block: Any, length: int) -> tuple[State, Any]:
        if length == 1 and self.device_data is None:
            return self.trainer.step(state, block)
        return self.trainer.multi_step(state, block, self._data_tree)

    def segment(self, state: State, n: int) -> Iterator[tuple[State, int, dict[str, Any]]]:
        """Run ``n`` steps; yield ``(state, steps run by this call, metrics)`` after each call.

        ``metrics`` are device values, scalars for a single step and ``[steps]`` for a block.
        """
        lengths = [self.k] * (n // self.k) + [1] * (n % self.k) if self.k > 1 else [1] * n
        upcoming = self._fetch(lengths[0]) if lengths else None
        for i, length in enumerate(lengths):
            block = upcoming
            state, metrics = self._dispatch(state, block, length)
            del block
            # The host prepares the next block while the device runs this one.
            upcoming = self._fetch(lengths[i + 1]) if i + 1 < len(lengths) else None
            yield state, length, metrics


def per_step_metrics(
    first_step: int, metrics: Mapping[str, Any]
) -> list[tuple[int, dict[str, float]]]:
    """``[(step, {name: value})]`` of host metrics of one call from :meth:`StepRunner.segment`
    (scalars for one step, ``[n]`` arrays for a block of ``n`` from ``first_step`` on).

    Example:
        >>> per_step_metrics(5, {"loss": np.array([0.5, 0.25])})
        [(5, {'loss': 0.5}), (6, {'loss': 0.25})]
    """
    arrays = {k: np.atleast_1d(np.asarray(v)) for k, v in metrics.items()}
    n = len(next(iter(arrays.values()))) if arrays else 0
    return [(first_step + i, {k: float(v[i]) for k, v in arrays.items()}) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    workdir: epath.Path  # a local folder or an object-store URL (routellm_jax.paths.location)
    step: int
    params: Any  # final params (jax.Arrays on the run's mesh)
    metrics: dict[str, float]  # last eval metrics ("eval/...") and last train metrics ("train/...")
    history: list[dict[str, Any]]
    arch: str
    checkpoint_steps: list[int]
    step_compiles: int = 0  # train-step executables built (one per batch shape; 0 for fit)


def _mean_metrics(items: list[dict[str, Any]]) -> dict[str, float]:
    if not items:
        return {}
    host = jax.device_get(items)
    return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


def first_nonfinite(pending: Sequence[tuple[int, Mapping[str, Any]]]) -> tuple[int, dict] | None:
    """``(step, {metric: value})`` of the first ``(step, train metrics)`` whose loss, gradient
    norm or update norm is NaN/inf; None when all are finite.

    Example:
        >>> first_nonfinite([(1, {"loss": 0.5}), (2, {"loss": float("nan"), "grad_norm": 1.0})])
        (2, {'loss': nan, 'grad_norm': 1.0})
    """
    if not pending:
        return None
    host = jax.device_get([{k: m[k] for k in FINITE_METRICS if k in m} for _, m in pending])
    for (step, _), values in zip(pending, host):
        if not all(np.isfinite(v) for v in values.values()):
            return step, {k: float(values[k]) for k in FINITE_METRICS if k in values}
    return None


def truncate_metrics(workdir: str | os.PathLike[str], step: int) -> int:
    """Drop the ``metrics.jsonl`` rows logged after ``step`` (a resume from ``step`` logs them
    again), appending them to ``metrics.superseded.jsonl``; returns how many were moved.

    A torn last line (a process killed mid-write) goes with them.

    Example:
        >>> truncate_metrics("/nonexistent-run", 10)
        0
    """
    path = paths.location(workdir) / METRICS_FILE
    if not path.is_file():
        return 0
    keep: list[str] = []
    drop: list[str] = []
    for line in path.read_text().splitlines(keepends=True):
        if not line.strip():
            continue
        try:
            row_step = int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            row_step = None
        (keep if row_step is not None and row_step <= step else drop).append(line)
    if not drop:
        return 0
    superseded = path.parent / SUPERSEDED_METRICS_FILE
    before = superseded.read_text() if superseded.is_file() else ""
    moved = "".join(x if x.endswith("\n") else x + "\n" for x in drop)
    paths.write_whole(superseded, before + moved)
    paths.write_whole(path, "".join(keep))
    return len(drop)


def evaluate(
    trainer: Trainer, params: Any, iterator: Any, max_batches: int = 0
) -> dict[str, float]:
    """Mean of the eval metrics over the batches of ``iterator`` (a fresh, non-repeating one)."""
    out = []
    for i, batch in enumerate(iterator):
        if max_batches and i >= max_batches:
            break
        out.append(trainer.eval(params, batch))
    return _mean_metrics(out)


class _Logger:
    """Metrics to stdout, ``metrics.jsonl`` and optionally TensorBoard, from process 0 only.

    ``metrics.jsonl`` is read once (at the first row, after :func:`truncate_metrics`) and then
    rewritten whole by :meth:`flush`: an object store cannot append, and a whole-object write
    is what it does atomically.
    """

    def __init__(self, workdir: epath.Path, tensorboard: bool) -> None:
        self.primary = jax.process_index() == 0
        self.path = workdir / METRICS_FILE
        self.lines: list[str] | None = None  # the file's rows, loaded at the first write
        self.dirty, self.flushed_at = False, time.monotonic()
        self.tb = None
        if self.primary and tensorboard:
            # tensorboardX writes gs:// and s3:// itself (google-cloud-storage / boto3).
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(os.fspath(workdir / "tb"))

    def write(self, step: int, metrics: Mapping[str, float], pbar: Any = None) -> None:
        if not self.primary:
            return
        record = {
            "step": int(step),
            "time": time.time(),
            **{k: float(v) for k, v in metrics.items()},
        }
        if self.lines is None:
            self.lines = self.path.read_text().splitlines() if self.path.is_file() else []
        self.lines.append(json.dumps(record))
        self.dirty = True
        if time.monotonic() - self.flushed_at >= METRICS_FLUSH_SECONDS:
            self.flush()
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        (pbar.write if pbar is not None else print)(f"step {step}: {text}")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, float(v), int(step))

    def flush(self) -> None:
        """Write ``metrics.jsonl`` now (when there are new rows)."""
        if self.primary and self.dirty and self.lines is not None:
            paths.write_whole(self.path, "".join(line + "\n" for line in self.lines))
            self.dirty, self.flushed_at = False, time.monotonic()

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()


def check_workdir_reachable(
    workdir: str | os.PathLike[str], process_count: int, shared_workdir: bool = False
) -> None:
    """Raise :class:`SharedWorkdirError` when ``process_count > 1`` and ``workdir`` is a local
    folder not declared shared: each host would write its own partial checkpoints (Orbax
    needs one location that every process reaches) and no host could resume from them.

    Example:
        >>> check_workdir_reachable("gs://bucket/run", 4)
        >>> check_workdir_reachable("runs/mf", 1)
        >>> check_workdir_reachable("runs/mf", 4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        routellm_jax.training.train.SharedWorkdirError: --workdir runs/mf is a local folder ...
    """
    if process_count <= 1 or shared_workdir or paths.is_url(workdir):
        return
    raise SharedWorkdirError(
        f"--workdir {os.fspath(workdir)} is a local folder and this run has {process_count} "
        "processes: every process writes its part of each checkpoint there, and one host's "
        "local disk is not another's, so no host would hold a whole checkpoint to resume from. "
        "Pass an object-store URL every host reaches (--workdir gs://BUCKET/RUN), or, if this "
        "folder is on a filesystem every host mounts (NFS, Lustre, GCS FUSE), say so with "
        "--shared-workdir (train(..., shared_workdir=True))."
    )


def train(
    config: Any,
    workdir: str | os.PathLike[str],
    *,
    resume: bool = False,
    resume_step: int | None = None,
    data: Any = None,
    on_step: Callable[[int, Any], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = True,
    featurizer: Any = None,
    shared_workdir: bool = False,
) -> TrainResult:
    """Train (or build) the router described by ``config``, checkpointing into ``workdir``.

    ``workdir`` is a local folder or an object-store URL (``gs://bucket/run``). With more than one
    process every process must reach it: a local ``workdir`` raises :class:`SharedWorkdirError`
    unless ``shared_workdir=True`` says it is on a filesystem every host mounts.

    ``resume=True`` continues from the latest checkpoint in ``workdir`` (same batches, same keys,
    so the result equals an uninterrupted run); ``resume_step=N`` (implies ``resume``) continues
    from step ``N`` instead, moving the later steps aside (``checkpoints_superseded/``), e.g. when
    the latest is corrupt. A checkpoint that fails its checksums raises
    :class:`~routellm_jax.training.checkpoints.CheckpointCorruptError` before anything is written;
    a NaN/inf loss raises :class:`NonFiniteLossError` (``config.stop_on_nonfinite``). ``data`` (a
    :class:`TrainingData`) overrides ``config.data``; ``on_step(step, state)`` is called after
    each dispatch (every ``config.steps_per_dispatch`` steps or fewer; hooks, tests).
    ``featurizer`` replaces the architecture's ``make_featurizer(arch_config)`` for this run,
    e.g. the same encoder with its embeddings precomputed; the checkpoint records only the
    config's featurizer spec, so the injected one must give that spec's vectors (its ``dim`` is checked against ``arch_config.text_dim``).
    """
    import copy

    from routellm_jax.models.registry import get_architecture
    from routellm_jax.training.checkpoints import (
        Checkpointer,
        CheckpointNotFoundError,
        resume_command,
    )

    if resume_step is not None:
        resume = True
    config_lib.validate_config(config)  # before anything is read or written
    config = copy.deepcopy(config)  # train() fills in derived fields (e.g. the model table)
    check_workdir_reachable(workdir, jax.process_count(), shared_workdir)
    workdir = paths.location(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    arch = get_architecture(config.arch)
    arch_cfg = config_lib.arch_config(config)
    warn_unnative_bf16(arch_cfg, jax.devices()[0])
    config_json = config_lib.to_json(config)
    rng = jax.random.PRNGKey(int(config.seed))
    logger = _Logger(workdir, bool(config.tensorboard))
    ck = config.checkpoint
    checkpointer = Checkpointer(
        workdir,
        keep=int(ck.keep),
        best_metric=str(ck.best_metric),
        best_mode=str(ck.best_mode),
        async_save=bool(ck.async_save),
    )
    if not resume and checkpointer.latest_step() is not None:
        raise FileExistsError(
            f"{checkpointer.directory} already has checkpoints (step "
            f"{checkpointer.latest_step()}): pass --resume or use a new --workdir"
        )

    start, resumed = 0, resume and checkpointer.latest_step() is not None
    if resumed:
        have = checkpointer.all_steps()
        start = int(checkpointer.latest_step()) if resume_step is None else int(resume_step)
        if start not in have:
            raise CheckpointNotFoundError(
                f"--resume-step {start}: {checkpointer.directory} has no step {start}; "
                f"it has {sorted(have)}"
            )
        # Fail before the (possibly long) data preparation when the checkpoint is damaged, and
        # before anything in the workdir changes.
        checkpointer.verify(start)
        checkpointer.supersede_after(start)
    elif resume_step is not None:
        raise CheckpointNotFoundError(
            f"--resume-step {resume_step}: {checkpointer.directory} has no checkpoints"
        )
    if featurizer is None:
        featurizer = arch.make_featurizer(arch_cfg)
    else:
        check_featurizer(featurizer, arch_cfg)
    # A frozen encoder's vectors persist in the machine's embedding store (shared with the sweep
    # and the exporter), so a refit or a second run embeds no prompt twice.
    store = embedding_store(featurizer) if config.data.get("embedding_store", True) else None
    t0 = time.time()
    card: dict[str, Any] = {"source": "passed to train()"}
    if data is None:
        prepared = prepare_data(
            config.data, embed_fn=near_duplicate_embed_fn(config.data, featurizer, store)
        )
        data, card = prepared.data, prepared.card
    log.info("training data loaded in %.1fs", time.time() - t0)
    if jax.process_index() == 0:
        (workdir / DATA_CARD_FILE).write_text(json.dumps(card, indent=1, default=str))
    # An empty model table means "every model in the training data" (recorded in the config, so
    # the checkpoint knows the table its indices point into).
    if hasattr(arch_cfg, "models") and not arch_cfg.models:
        models = model_table(data)
        arch_cfg = dataclasses.replace(arch_cfg, models=models)
        config.arch_config.models = models
        config_json = config_lib.to_json(config)
    if store is not None:
        embed_into_store(
            featurizer,
            list(data.comparisons.prompt) + list(data.outcomes.prompt),
            store,
            progress=progress and jax.process_index() == 0,
        )

    if arch.fit is not None:
        return _fit(
            config,
            config_json,
            arch,
            arch_cfg,
            data,
            featurizer,
            rng,
            workdir,
            checkpointer,
            logger,
        )

    t0 = time.time()
    examples = arch.examples_from_records(data, featurizer, arch_cfg)
    train_ex, hold_ex = split_examples(examples, config.data)
    log.info(
        "examples: %d train, %d held out (%.1fs)",
        len(next(iter(train_ex.values()))),
        len(next(iter(hold_ex.values()))),
        time.time() - t0,
    )

    mesh = sharding_lib.make_mesh(config.mesh.to_dict(), devices)
    divisor = sharding_lib.batch_divisor(mesh)
    if config.batch_size % divisor:
        raise ValueError(
            f"batch_size {config.batch_size} not divisible by the mesh's batch axes ({divisor})"
        )
    total_steps = int(config.steps)
    accum = max(1, int(config.optimizer.accum_steps))
    tx, schedule = config_lib.make_optimizer(config.optimizer, total_steps)
    trainer = Trainer(arch, arch_cfg, tx, mesh, schedule=schedule, accum_steps=accum)

    from routellm_jax.data.pipeline import BatchIterator

    bucketing = length_bucketing(arch, config.data)
    train_it = BatchIterator(
        train_ex,
        int(config.batch_size),
        seed=int(config.seed),
        sharding=trainer.batch_sharding,
        window_batches=int(config.data.get("length_window_batches", 16)),
        **bucketing,
    )
    restored_finite = True
    if resumed:
        state, _ = checkpointer.restore(start, trainer.abstract_state, train_it.grain_iterator)
        restored_finite = checkpointer.is_finite(start)
        log.info("resumed from %s/%d", checkpointer.directory, start)
    else:
        state = trainer.init(rng)
    if jax.process_index() == 0:
        # Rows after the starting step come from a run that is being redone (killed after
        # logging them, or superseded by --resume-step): they are written again below.
        dropped = truncate_metrics(workdir, start)
        if dropped:
            log.info(
                "moved %d metrics rows after step %d to %s", dropped, start, SUPERSEDED_METRICS_FILE
            )

    evaluators = make_evaluators(config, arch, arch_cfg, featurizer)

    def make_eval_iterator() -> Any:
        n_hold = len(next(iter(hold_ex.values()))) if hold_ex else 0
        bs = min(int(config.eval.batch_size), n_hold)
        bs -= bs % divisor
        if bs <= 0:
            return None
        return BatchIterator(
            hold_ex,
            bs,
            shuffle=False,
            repeat=False,
            sharding=trainer.batch_sharding,
            window_batches=1,  # no regrouping: every held-out row counts, in order
            **bucketing,
        )

    def run_eval(params: Any) -> dict[str, float]:
        it = make_eval_iterator()
        out = {}
        if it is not None:
            out.update(
                {
                    f"eval/{k}": v
                    for k, v in evaluate(trainer, params, it, int(config.eval.max_batches)).items()
                }
            )
        out.update(run_evaluators(evaluators, params))
        return out

    history: list[dict[str, Any]] = []
    # (first step, device metrics of one call) since the last log step, and not yet checked for
    # NaN/inf: fetched together at a log step, so no step waits for the host.
    pending: list[tuple[int, Any]] = []
    unchecked: list[tuple[int, Any]] = []
    stop_on_nonfinite = bool(config.get("stop_on_nonfinite", True))
    nonfinite_step: int | None = None if restored_finite else start

    def check_finite() -> None:
        """Stop (or mark the run non-finite) on the first NaN/inf among the unchecked steps."""
        nonlocal nonfinite_step
        rows = [r for first, m in jax.device_get(unchecked) for r in per_step_metrics(first, m)]
        unchecked.clear()
        bad = first_nonfinite(rows)
        if bad is None:
            return
        bad_step, values = bad
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if not stop_on_nonfinite:
            if nonfinite_step is not None:
                return  # already marked (and warned about, or resumed from a marked step)
            nonfinite_step = bad_step
            log.warning(
                "step %d: non-finite train metrics (%s); training on (stop_on_nonfinite=False): "
                "later checkpoints are marked non-finite and step %s is kept",
                bad_step,
                shown,
                checkpointer.newest_finite_step(),
            )
            return
        checkpointer.wait()  # saves already under way hold finite states: let them finish
        newest = checkpointer.newest_finite_step()
        command = resume_command(workdir, newest) if newest is not None else None
        where = (
            f"the newest checkpoint is step {newest}; resume from it after fixing the cause "
            f"(e.g. a lower --config.optimizer.lr) with `{command}`"
            if newest is not None
            else "no checkpoint was saved yet"
        )
        raise NonFiniteLossError(
            f"step {bad_step}: non-finite train metrics ({shown}). Training stopped without "
            f"saving anything from step {bad_step} on; {where}. To train on through non-finite "
            "losses instead, pass --config.stop_on_nonfinite=False.",
            step=bad_step,
            newest_checkpoint=newest,
            resume_command=command,
        )

    last_train: dict[str, float] = {}
    last_eval: dict[str, float] = {}
    meta = {"arch": config.arch, "kind": "train"}
    pbar = None
    if progress and jax.process_index() == 0:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total_steps, initial=start, unit="step", dynamic_ncols=True)
    eval_every, ckpt_every, log_every = (
        int(config.eval.every),
        int(ck.every),
        max(1, int(config.log_every)),
    )
    t_start, n_start = time.time(), start
    k = int(config.get("steps_per_dispatch", config_lib.STEPS_PER_DISPATCH))
    device_data = None
    if not bucketing:
        budget = int(
            float(config.data.get("device_budget_mb", config_lib.DEVICE_BUDGET_MB)) * 2**20
        )
        device_data = device_examples(train_ex, trainer.batch_sharding, budget)
    if bucketing and k > 1:
        log.info("length buckets: one step per dispatch (batches of a block must share a shape)")
        k = 1
    if device_data is not None:
        log.info("training examples on the devices (%.1f MiB)", device_data.nbytes / 2**20)
    runner = StepRunner(trainer, train_it, k, device_data)
    guard = str(config.get("step_transfer_guard", "allow"))

    def boundary_after(step: int) -> int:
        """The next step that evaluates or checkpoints (or the last): blocks end there."""
        ends = [total_steps]
        ends += [(step // e + 1) * e for e in (eval_every, ckpt_every) if e]
        return min(ends)

    def log_rows(rows: list[tuple[int, dict[str, float]]]) -> None:
        """Write the log steps among ``rows`` (host per-step metrics), each the mean since the
        previous log step; the rows after the last log step stay pending."""
        nonlocal last_train
        group: list[dict[str, float]] = []
        for s, values in rows:
            group.append(values)
            if s % log_every and s != total_steps:
                continue
            last_train = {f"train/{k}": float(np.mean([g[k] for g in group])) for k in group[0]}
            group = []
            rate = (s - n_start) * int(config.batch_size) / max(time.time() - t_start, 1e-9)
            last_train["train/examples_per_s"] = rate
            logger.write(s, last_train, pbar)  # logged first: the row shows the NaN
            history.append({"step": s, **last_train})
        if group:
            pending.append(
                (rows[-len(group)][0], {k: np.array([g[k] for g in group]) for k in group[0]})
            )

    try:
        step = start
        while step < total_steps:
            stop = boundary_after(step)
            with jax.transfer_guard(guard):
                segment = runner.segment(state, stop - step)
            while True:
                with jax.transfer_guard(guard):
                    item = next(segment, None)
                if item is None:
                    break
                state, n, metrics = item
                first, step = step + 1, step + n
                pending.append((first, metrics))
                unchecked.append((first, metrics))
                checkpointer.poll()
                if pbar is not None:
                    pbar.update(n)
                if any(s % log_every == 0 for s in range(first, step + 1)) or step == total_steps:
                    rows = [r for f, m in jax.device_get(pending) for r in per_step_metrics(f, m)]
                    pending = []
                    log_rows(rows)
                    check_finite()
                if step == stop:
                    step_metrics: dict[str, float] = {}
                    if (eval_every and step % eval_every == 0) or step == total_steps:
                        last_eval = run_eval(state["params"])
                        step_metrics = last_eval
                        if last_eval:
                            logger.write(step, last_eval, pbar)
                            history.append({"step": step, **last_eval})
                    if (ckpt_every and step % ckpt_every == 0) or step == total_steps:
                        check_finite()  # every step up to this one, before its state is saved
                        logger.flush()  # the rows up to a checkpoint are never redone
                        checkpointer.save(
                            step,
                            state,
                            train_it.grain_iterator,
                            config_json,
                            meta,
                            step_metrics or None,
                            finite=nonfinite_step is None,
                        )
                if on_step is not None:
                    on_step(step, state)
        checkpointer.wait()
    except NonFiniteLossError:
        checkpointer.close()
        raise
    finally:
        if pbar is not None:
            pbar.close()
        logger.close()
    steps = checkpointer.all_steps()
    checkpointer.close()
    final_step = int(jax.device_get(state["step"]))
    return TrainResult(
        workdir=workdir,
        step=final_step,
        params=state["params"],
        metrics={**last_train, **last_eval},
        history=history,
        arch=config.arch,
        checkpoint_steps=steps,
        step_compiles=trainer.compile_count(),
    )


def near_duplicate_embed_fn(data_cfg: Any, featurizer: Any, store: Path | None) -> Any:
    """The vectors a mixture's declared near-duplicate pass needs (None when it declares none):
    the run's own featurizer when its encoder is the declared one, else that encoder's; both
    served from, and added to, the machine's embedding store."""
    encoder = declared_encoder(data_cfg)
    if encoder is None:
        return None
    base = encoder_part(featurizer)
    if getattr(base, "spec", None) != encoder:
        base = make_embedding_featurizer(encoder)
        store = embedding_store(base)

    def embed(prompts: Sequence[str]) -> np.ndarray:
        embed_into_store(base, prompts, store)
        return base.embed(list(prompts))

    return embed


def warn_unnative_bf16(arch_cfg: Any, device: jax.Device) -> bool:
    """Log a warning (and return True) when ``arch_cfg.dtype`` asks for bf16 matmuls on a
    ``device`` that does not multiply bf16 natively: its bf16 operands are upcast there, so the
    run is slower than float32 and no more accurate.

    Example:
        >>> from routellm_jax.models.mf import MFConfig
        >>> warn_unnative_bf16(MFConfig(), jax.devices()[0])  # no dtype field: float32
        False
    """
    if getattr(arch_cfg, "dtype", None) != "bfloat16" or native_bf16_matmul(device):
        return False
    log.warning(
        "arch_config.dtype='bfloat16' on %s, which has no native bf16 matmul: its bf16 operands "
        "are upcast, so this run is slower than float32 (and no more accurate)",
        device.device_kind,
    )
    return True


def check_featurizer(featurizer: Any, arch_cfg: Any) -> None:
    """Raise ValueError when an injected featurizer's width differs from the config's
    ``text_dim`` (either may be absent: token-sequence routers have no ``text_dim``).

    Example:
        >>> from routellm_jax.models.featurizers import make_embedding_featurizer
        >>> from routellm_jax.models.mf import MFConfig
        >>> check_featurizer(make_embedding_featurizer("hashing:8"), MFConfig(text_dim=8))
    """
    dim, text_dim = getattr(featurizer, "dim", None), getattr(arch_cfg, "text_dim", None)
    if dim is not None and text_dim is not None and int(dim) != int(text_dim):
        spec = getattr(featurizer, "spec", type(featurizer).__name__)
        raise ValueError(
            f"featurizer {spec!r} gives {dim}-d vectors but arch_config.text_dim = {text_dim}"
        )


def length_bucketing(arch: Any, data_cfg: Any) -> dict[str, Any]:
    """``BatchIterator`` arguments for ``data.length_buckets`` (empty when it is unset)."""
    buckets = tuple(int(b) for b in data_cfg.get("length_buckets", ()) or ())
    if not buckets:
        return {}
    if not arch.sequence_keys or not arch.mask_key:
        raise ValueError(
            f"config.data.length_buckets={list(buckets)}: architecture {arch.name!r} declares no "
            "sequence_keys/mask_key (only token-sequence routers can be cut to length buckets)"
        )
    if any(b <= 0 for b in buckets):
        raise ValueError(f"config.data.length_buckets must be positive, got {list(buckets)}")
    return {
        "length_buckets": buckets,
        "sequence_keys": arch.sequence_keys,
        "mask_key": arch.mask_key,
    }


def split_examples(examples: Mapping[str, np.ndarray], data_cfg: Any) -> tuple[dict, dict]:
    """Held-out split by ``data.holdout_fraction`` / ``data.holdout_seed``."""
    from routellm_jax.data.pipeline import split_holdout

    return split_holdout(examples, float(data_cfg.holdout_fraction), int(data_cfg.holdout_seed))


def _fit(
    config: Any,
    config_json: Mapping[str, Any],
    arch: Any,
    arch_cfg: Any,
    data: Any,
    featurizer: Any,
    rng: jax.Array,
    workdir: epath.Path,
    checkpointer: Any,
    logger: _Logger,
) -> TrainResult:
    """Build a router with ``arch.fit`` and save it as step 0 (no optimizer, no data state)."""
    t0 = time.time()
    params = arch.fit(data, featurizer, arch_cfg, rng)
    metrics: dict[str, float] = {"fit/seconds": time.time() - t0}
    metrics.update(run_evaluators(make_evaluators(config, arch, arch_cfg, featurizer), params))
    logger.write(0, metrics)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": {}, "rng": rng}
    checkpointer.save(0, state, None, config_json, {"arch": config.arch, "kind": "fit"}, None)
    checkpointer.wait()
    steps = checkpointer.all_steps()
    checkpointer.close()
    logger.close()
    return TrainResult(
        workdir=workdir,
        step=0,
        params=params,
        metrics=metrics,
        history=[{"step": 0, **metrics}],
        arch=config.arch,
        checkpoint_steps=steps,
    )


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Full batches in one pass over ``n_examples``.

    Example:
        >>> steps_per_epoch(1000, 64)
        15
    """
    return math.floor(n_examples / batch_size)
