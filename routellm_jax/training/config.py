"""Experiment configs: one ``get_config()`` per file, plus ``--config.a.b=value`` overrides.

A config is an ``ml_collections.ConfigDict`` built on :func:`default_config`; an experiment file
changes what it needs. A file that holds a family of configs (the cells of a sweep) takes an
argument, ``get_config(arg)``, given after a colon: ``experiments/grid.py:irt_both``. Fields:

* ``arch`` (architecture name in :mod:`routellm_jax.models.registry`) and ``arch_config``
  (overrides of that architecture's config dataclass fields);
* ``data``: ``mixture`` (a :class:`routellm_jax.data.mixtures.MixtureSpec` as data: its
  ``to_dict()`` form) or ``records`` (a folder holding a saved :class:`TrainingData`:
  ``comparisons.parquet`` and/or ``outcomes.parquet``, e.g. from ``mixtures.save_mixture``);
  ``holdout_fraction`` of the examples are held out for evaluation; ``embedding_store``: keep
  frozen-encoder vectors in the machine's store (:mod:`routellm_jax.models.embedding_store`);
* ``optimizer``: AdamW, warmup + cosine/linear/constant schedule, weight decay, global-norm
  clipping, gradient accumulation (``accum_steps``: ``optax.MultiSteps``);
* ``batch_size`` (global, per train step), ``steps`` (train steps = micro-steps when
  accumulating), ``seed``; ``steps_per_dispatch`` (train steps per jitted call) and
  ``data.device_budget_mb`` (examples that fit are gathered on the devices);
* ``stop_on_nonfinite``: stop with an error naming the step when a train loss, gradient norm or
  update norm is NaN/inf, before anything reached through it is saved (default True; False trains
  on, marks such checkpoints non-finite and retention keeps the newest finite one);
* ``eval``: cadence and batch size of the held-out loss (and an older single ``benchmark``);
  ``evals``: named evaluators run at the same steps (``{name: {"type": ..., ...}}``, see
  :mod:`routellm_jax.training.evaluators`: a benchmark's APGR, the development suite);
* ``checkpoint``: cadence, ``keep`` last K, ``best_metric``/``best_mode``, async;
* ``mesh``: sizes of the ``data``, ``fsdp``, ``tensor`` axes (``-1`` = the rest of the devices).

Example:
    >>> cfg = default_config()
    >>> apply_overrides(cfg, ["--config.optimizer.lr=3e-5", "--config.steps=10"]).optimizer.lr
    3e-05
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

# Defaults of ``steps_per_dispatch`` and ``data.device_budget_mb`` (also used for configs saved
# before these fields existed). tools/bench_train.py measures the effect of both.
STEPS_PER_DISPATCH = 32
DEVICE_BUDGET_MB = 1024


def default_config() -> ml_collections.ConfigDict:
    """Every field the trainer reads, with defaults; experiments override what they need.

    Example:
        >>> default_config().optimizer.name
        'adamw'
    """
    c = ml_collections.ConfigDict()
    c.name = ""
    c.arch = ""
    c.arch_config = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict(
        {
            "mixture": ml_collections.ConfigDict(),  # a MixtureSpec as data; empty = none
            "records": "",
            "tfds_dir": "",  # records built with data.tfds_builder (ArrayRecord, e.g. on GCS)
            "data_dir": "",
            "holdout_fraction": 0.05,
            "holdout_seed": 0,
            # Token-sequence routers (bert, causal_llm): cut each batch to the smallest of these
            # lengths that holds its longest row (one compile per bucket); () = full max_length.
            "length_buckets": (),
            # Batches per length-sorting window: more = less padding, less mixing of lengths.
            "length_window_batches": 16,
            # Training examples up to this size (MiB per device, after storing repeated rows
            # once) live on the devices and batches are gathered there; 0 = always stream.
            "device_budget_mb": DEVICE_BUDGET_MB,
            # Frozen-encoder vectors of training prompts are read from and added to the
            # machine's embedding store (routellm_jax.models.embedding_store).
            "embedding_store": True,
        }
    )
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "lr": 1e-3,
            "schedule": "cosine",  # cosine | linear | constant
            "warmup_steps": 0,
            "end_lr_fraction": 0.0,
            "weight_decay": 0.0,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "grad_clip_norm": 0.0,  # 0 = no clipping
            "accum_steps": 1,
        }
    )
    c.batch_size = 64
    c.steps = 100
    c.seed = 0
    c.log_every = 10
    # Train steps per jitted call (a lax.scan over a block of batches): fewer host round trips
    # for small routers. Blocks end at eval and checkpoint steps; length-bucketed runs use 1.
    c.steps_per_dispatch = STEPS_PER_DISPATCH
    # "disallow": any implicit host<->device transfer in the step loop raises (a hidden sync).
    c.step_transfer_guard = "allow"
    # A NaN/inf train loss (or gradient/update norm) stops the run before it is checkpointed.
    c.stop_on_nonfinite = True
    c.eval = ml_collections.ConfigDict(
        {
            "every": 0,  # 0 = only at the end
            "batch_size": 256,
            "max_batches": 0,  # 0 = the whole held-out split
            "benchmark": "",
            "benchmark_args": ml_collections.ConfigDict(),
        }
    )
    # Named evaluators run at each evaluation (routellm_jax.training.evaluators), e.g.
    # c.evals.gsm8k = dict(type="benchmark", benchmark="gsm8k", max_prompts=300).
    c.evals = ml_collections.ConfigDict()
    c.checkpoint = ml_collections.ConfigDict(
        {
            "every": 0,  # 0 = only at the end
            "keep": 3,
            "best_metric": "",  # e.g. "eval/loss"; "" = no best-checkpoint retention
            "best_mode": "min",
            "async_save": True,
        }
    )
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.tensorboard = False
    return c


class ConfigError(ValueError):
    """A config file or override that cannot be applied."""


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string: --config.arch=mf


def _coerce(old: Any, value: Any, key: str) -> Any:
    """Give ``value`` the type of the field it replaces (so ``lr=1`` stays a float)."""
    if old is None or isinstance(old, ml_collections.ConfigDict):
        return value
    if isinstance(old, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if value in (0, 1):
            return bool(value)
        raise ConfigError(f"override {key}: expected a bool, got {value!r}")
    if isinstance(old, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(old, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(old, str):
        return value if isinstance(value, str) else str(value)
    if isinstance(old, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(old)(value)
    if type(value) is not type(old):
        raise ConfigError(
            f"override {key}: expected {type(old).__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


# Sub-dicts whose keys are free-form (validated later by the architecture / mixture / benchmark).
_OPEN_DICTS = ("arch_config", "data.mixture", "eval.benchmark_args", "evals")


def set_by_path(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    """Set ``config.a.b.c = value`` (typed like the old value; new keys only in open sub-dicts).

    Example:
        >>> c = default_config(); set_by_path(c, "optimizer.lr", "2e-4"); c.optimizer.lr
        0.0002
    """
    parts = dotted.split(".")
    node = config
    for i, part in enumerate(parts[:-1]):
        if part not in node:
            prefix = ".".join(parts[: i + 1])
            if ".".join(parts[:i]) in _OPEN_DICTS or any(
                prefix.startswith(o + ".") for o in _OPEN_DICTS
            ):
                node[part] = ml_collections.ConfigDict()
            else:
                raise ConfigError(f"override {dotted}: no config key {prefix!r}")
        node = node[part]
        if not isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"override {dotted}: {'.'.join(parts[: i + 1])} is not a dict")
    last = parts[-1]
    parent = ".".join(parts[:-1])
    if isinstance(value, str):
        value = _parse_value(value)
    if last in node:
        node[last] = _coerce(node[last], value, dotted)
    elif any(parent == o or parent.startswith(o + ".") for o in _OPEN_DICTS):
        node[last] = value
    else:
        raise ConfigError(
            f"override {dotted}: no config key {dotted!r}; known in {parent or 'config'}: {sorted(node.keys())}"
        )


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Sequence[str]
) -> ml_collections.ConfigDict:
    """Apply ``--config.a.b=value`` (or ``config.a.b=value``) strings, in order, in place.

    Values are Python literals (``3e-5``, ``True``, ``(1, 2)``, ``'x'``) or bare strings.

    Example:
        >>> apply_overrides(default_config(), ["--config.mesh.fsdp=2"]).mesh.fsdp
        2
    """
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        if not text.startswith("config.") or "=" not in text:
            raise ConfigError(f"override {item!r}: expected --config.<key>=<value>")
        key, value = text[len("config.") :].split("=", 1)
        set_by_path(config, key, value)
    return config


def _register_experiments_package(folder: Path) -> None:
    """Make ``experiments`` (the config file's own folder) importable as a package, by its path:
    no ``sys.path`` entry, so nothing else in that folder's parent shadows an installed module."""
    loaded = sys.modules.get("experiments")
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve().parent != folder:
            raise ConfigError(
                f"config {folder}: another 'experiments' package is already imported "
                f"({getattr(loaded, '__file__', '?')})"
            )
        return
    init = folder / "__init__.py"
    if not init.is_file():
        raise ConfigError(f"{folder}: no __init__.py, so its configs cannot import each other")
    spec = importlib.util.spec_from_file_location(
        "experiments", init, submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["experiments"] = package
    spec.loader.exec_module(package)


def _load_module(spec: str) -> Any:
    path = Path(spec)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {spec} does not exist")
        if path.resolve().parent.name == "experiments":
            # Experiment files share helpers (experiments/_mixtures.py) as package imports.
            _register_experiments_package(path.resolve().parent)
        name = f"_routellm_config_{abs(hash(str(path.resolve())))}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
        return module
    # A bare experiment name: experiments/<name>.py in the source checkout, or a module path.
    from routellm_jax.paths import repo_root

    candidate = repo_root() / "experiments" / f"{spec}.py"
    if candidate.is_file():
        return _load_module(str(candidate))
    try:
        return importlib.import_module(spec)
    except ImportError as err:
        raise ConfigError(
            f"config {spec!r}: not a file, not experiments/{spec}.py, not a module ({err})"
        ) from err


def split_config_arg(spec: str) -> tuple[str, str | None]:
    """``"file.py:arg"`` -> ``("file.py", "arg")``; a spec without an argument -> ``(spec, None)``.

    Example:
        >>> split_config_arg("experiments/grid.py:irt_both"), split_config_arg("mf_minilm_judge")
        (('experiments/grid.py', 'irt_both'), ('mf_minilm_judge', None))
    """
    base, sep, arg = spec.rpartition(":")
    if not sep or not base or not arg:
        return spec, None
    return base, arg


def expand_sweep(spec: str) -> list[str]:
    """The config specs ``spec`` names: a family file's every ``FILE:ARG`` when ``spec`` has no
    argument and the file lists its arguments with ``sweep()``; else ``[spec]``.

    Example:
        >>> expand_sweep("experiments/grid.py")[:1], expand_sweep("experiments/grid.py:irt_both")
        (['experiments/grid.py:irt_shape_both_mmlu'], ['experiments/grid.py:irt_both'])
    """
    base, arg = split_config_arg(spec)
    if arg is not None:
        return [spec]
    sweep = getattr(_load_module(base), "sweep", None)
    return [f"{base}:{a}" for a in sweep()] if callable(sweep) else [spec]


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load ``get_config()`` from a file path / experiment name / module, then apply overrides.

    ``spec`` may end in ``:arg`` to call ``get_config(arg)`` (a family of configs in one file,
    e.g. ``experiments/grid.py:irt_both``); without it ``get_config()`` is called.

    Example:
        >>> load_config("experiments/grid.py:irt_both", ["--config.steps=5"]).steps
        5
    """
    base, arg = split_config_arg(spec)
    module = _load_module(base)
    get_config = getattr(module, "get_config", None)
    if get_config is None:
        raise ConfigError(f"config {spec!r} ({getattr(module, '__file__', '?')}): no get_config()")
    params = list(inspect.signature(get_config).parameters.values())
    if arg is not None and not params:
        raise ConfigError(f"config {spec!r}: get_config() of {base} takes no argument")
    required = [p for p in params if p.default is p.empty and p.kind is not p.VAR_POSITIONAL]
    if arg is None and required:
        cells = getattr(module, "sweep", None)
        known = f"; one of: {', '.join(cells())}" if callable(cells) else ""
        raise ConfigError(f"config {spec!r}: get_config needs an argument, {base}:<arg>{known}")
    config = get_config() if arg is None else get_config(arg)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"config {spec!r}: get_config() returned {type(config).__name__}")
    return apply_overrides(config, overrides)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Refuse combinations that cannot be what was meant, before any data is read:
    :class:`ConfigError` naming the key. Checked: a warm-up longer than the run and an eval
    cadence beyond the last step (for trained routers; one built by ``fit`` takes no steps), a
    mixture source that does not exist (or a mixture that does not parse).

    Example:
        >>> c = default_config(); c.steps, c.optimizer.warmup_steps = 20, 30
        >>> validate_config(c)
        Traceback (most recent call last):
        ...
        routellm_jax.training.config.ConfigError: optimizer.warmup_steps: 30 warm-up updates but the run has only 20 (steps=20, optimizer.accum_steps=1); lower it or raise steps
    """
    from routellm_jax.models.registry import UnknownArchitectureError, get_architecture

    try:
        built = get_architecture(config.arch).fit is not None
    except UnknownArchitectureError:
        built = False  # train() names the unknown architecture
    # A router built by its architecture's fit() takes no steps: no schedule, no cadence.
    steps = int(config.steps)
    accum = max(1, int(config.optimizer.accum_steps))
    updates = steps // accum
    warmup = int(config.optimizer.warmup_steps)
    if not built and warmup > updates:
        raise ConfigError(
            f"optimizer.warmup_steps: {warmup} warm-up updates but the run has only {updates} "
            f"(steps={steps}, optimizer.accum_steps={accum}); lower it or raise steps"
        )
    every = int(config.eval.every)
    if not built and every > steps:
        raise ConfigError(
            f"eval.every: every {every} steps, but the run ends at step {steps}, so it would "
            f"never happen before the final evaluation; use 0 (only at the end) or a value <= "
            f"{steps}"
        )
    data = config.data
    if not data.records and not data.get("tfds_dir") and data.mixture and len(data.mixture):
        # The mixture layer checks its own spec; this names the config key of what it refuses.
        from routellm_jax.data import mixtures

        spec = data.mixture.to_dict()
        for i, source in enumerate(spec.get("sources") or ()):
            name = source.get("name") if isinstance(source, Mapping) else None
            if name not in mixtures.BUILTIN_SOURCES:
                raise ConfigError(
                    f"data.mixture.sources[{i}].name: unknown source {name!r}; known: "
                    f"{', '.join(sorted(mixtures.BUILTIN_SOURCES))}"
                )
        try:
            mixtures.MixtureSpec.from_dict(spec)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"data.mixture: {err}") from None


def to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A JSON-able dict of ``config`` (tuples become lists).

    Example:
        >>> to_json(default_config())["optimizer"]["name"]
        'adamw'
    """
    return json.loads(config.to_json())


def from_json(data: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Inverse of :func:`to_json` (fields missing from old checkpoints take their defaults).

    Example:
        >>> from_json(to_json(default_config())).batch_size
        64
    """
    config = default_config()

    def merge(node: ml_collections.ConfigDict, values: Mapping[str, Any]) -> None:
        for k, v in values.items():
            if isinstance(v, Mapping):
                if k not in node or not isinstance(node[k], ml_collections.ConfigDict):
                    node[k] = ml_collections.ConfigDict()
                merge(node[k], v)
            else:
                node[k] = v

    merge(config, data)
    return config


def arch_config(config: ml_collections.ConfigDict) -> Any:
    """The architecture's config dataclass instance (its ``make_config`` with ``arch_config``).

    JSON lists become tuples where the dataclass default is a tuple.

    Example:
        >>> arch_config(load_config("mf_minilm_judge")).dim
        128
    """
    from routellm_jax.models.registry import get_architecture

    arch = get_architecture(config.arch)
    overrides = dict(config.arch_config.to_dict()) if config.arch_config else {}
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(arch.config_cls)
        if f.default is not dataclasses.MISSING
    }
    for k, v in list(overrides.items()):
        if isinstance(v, list) and isinstance(defaults.get(k), tuple):
            overrides[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    return arch.make_config(**overrides)


def make_optimizer(opt: ml_collections.ConfigDict, total_steps: int) -> tuple[Any, Any]:
    """``(optax optimizer, lr schedule)`` for ``config.optimizer``; ``total_steps`` counts train
    steps.

    With ``accum_steps = k`` the result is ``optax.MultiSteps``: gradients of k consecutive steps
    are averaged and applied once, and the schedule counts those k-step updates.

    Example:
        >>> tx, schedule = make_optimizer(default_config().optimizer, total_steps=100)
        >>> round(float(schedule(0)), 6)
        0.001
    """
    import optax

    accum = max(1, int(opt.accum_steps))
    updates = max(1, total_steps // accum)
    warmup = min(int(opt.warmup_steps), updates)
    decay = max(1, updates - warmup)
    end = float(opt.lr) * float(opt.end_lr_fraction)
    if opt.schedule == "cosine":
        main = optax.cosine_decay_schedule(float(opt.lr), decay, alpha=float(opt.end_lr_fraction))
    elif opt.schedule == "linear":
        main = optax.linear_schedule(float(opt.lr), end, decay)
    elif opt.schedule == "constant":
        main = optax.constant_schedule(float(opt.lr))
    else:
        raise ConfigError(
            f"optimizer.schedule: {opt.schedule!r} is not one of cosine, linear, constant"
        )
    if warmup:
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, float(opt.lr), warmup), main], [warmup]
        )
    else:
        schedule = main
    if opt.name == "adamw":
        base = optax.adamw(
            schedule,
            b1=float(opt.b1),
            b2=float(opt.b2),
            eps=float(opt.eps),
            weight_decay=float(opt.weight_decay),
        )
    elif opt.name == "sgd":
        base = optax.sgd(schedule)
    else:
        raise ConfigError(f"optimizer.name: {opt.name!r} is not one of adamw, sgd")
    chain = [optax.clip_by_global_norm(float(opt.grad_clip_norm))] if opt.grad_clip_norm else []
    tx = optax.chain(*chain, base)
    if accum > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accum)
    return tx, schedule
