"""The architecture table: router name -> everything the trainer, exporter and API need.

The trainer, the zoo exporter and the inference API only ever talk to an :class:`Architecture`;
adding a router means writing one module that builds an ``Architecture`` and registering it, with
no change to the framework. The built-in table is a static mapping from name to the module that
defines it (imported lazily on first lookup, so ``import routellm_jax`` stays cheap); users add
their own at run time with :func:`register`.

Contract (all functions pure; ``config`` is an instance of ``config_cls``, a frozen dataclass):

* ``init(rng, config) -> params``: fresh parameters; loads pretrained encoder weights when the
  config says so. ``params`` is a plain pytree of arrays (no boxing).
* ``make_featurizer(config) -> featurizer``: host-side preprocessing (a tokenizer, or a frozen
  embedder); built once per process and passed to the two functions below.
* ``examples_from_records(data, featurizer, config) -> dict[str, np.ndarray]``: training
  examples from a :class:`~routellm_jax.data.records.TrainingData` (battles and/or per-model
  outcomes; each architecture uses what it can), every array with leading dimension = number of
  examples and a fixed trailing shape, so any slice is a batch. An optional ``"weight"`` array
  [n] weights examples in the loss.
* ``loss(params, batch, rng, config) -> (scalar loss, dict of scalar metrics)``: jittable.
  ``rng`` is a typed JAX key (the trainer's step key); draw from it with ``jax.random``
  functions, never by indexing it as a raw ``uint32[2]`` array.
* ``prompt_inputs(prompts, featurizer, config) -> dict[str, np.ndarray]``: inference inputs.
* ``win_rate(params, inputs, strong, weak, config) -> [batch] float``: P(strong beats weak);
  ``strong``/``weak`` are indices into ``config.models`` (ignored by pair-specific routers).
* ``model_scores(params, inputs, model_ids, config) -> [batch, m] float`` (optional, jittable;
  model-aware routers: irt, mf, sw_ranking): a score for each model of ``model_ids`` (``[m]``
  int indices into ``config.models``) on each prompt, so one call ranks N candidate models.
  ``model_score_kind`` says what the score is: ``"probability"`` (P(the model answers well),
  comparable across prompts and candidate sets: irt) or ``"strength"`` (a Bradley-Terry log
  strength, meaningful only in differences between models on one prompt: mf, sw_ranking).
  Architectures without it (bert, causal_llm, random) score one strong/weak pair only.
* ``fit(data, featurizer, config, rng) -> params`` (optional): for routers built rather than
  trained by gradient descent (``sw_ranking``); the trainer calls it instead of the step loop.
* ``partition_rules``: ``((regex over "/"-joined param path, logical axis name per dim), ...)``.
  Logical names map to mesh axes in ``training/sharding.py``; unmatched params are replicated.
* ``sequence_keys`` / ``mask_key`` (token-sequence routers): the example arrays that are
  right-padded along axis 1, and the one among them whose nonzero entries mark real tokens. With
  them the trainer can cut each batch to a length bucket (``config.data.length_buckets``), so
  ``loss`` must give the same value on a batch with trailing pad columns removed. Inference uses
  the same declaration: prompts are sorted by length and cut into chunks of similar length
  (:mod:`routellm_jax.models.inference`), so ``win_rate`` must not change either.
* ``embedding_key`` (embedding routers): the one key of ``prompt_inputs`` whose value is exactly
  ``featurizer.embed(prompts)`` (``"embedding"`` for mf, irt, sw_ranking). Declaring it lets the
  inference API compute those vectors inside the compiled function, encoder and head fused, when
  the featurizer also declares an encoder that can run there
  (:meth:`~routellm_jax.models.featurizers.CachedFeaturizer.device_encoding`).
* ``precision_key`` (routers that run their own encoder: bert, causal_llm): the config field
  holding the compute precision; ``routellm_jax.load(..., precision=...)`` sets it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

Params = Any
Batch = dict[str, Any]
# What an architecture's model_scores are (see the module docstring).
MODEL_SCORE_KINDS: tuple[str, ...] = ("probability", "strength")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One router architecture. See the module docstring for the contract."""

    name: str
    config_cls: type
    init: Callable[..., Params]
    make_featurizer: Callable[[Any], Any]
    examples_from_records: Callable[..., dict[str, Any]]
    loss: Callable[..., tuple[Any, dict[str, Any]]]
    prompt_inputs: Callable[..., dict[str, Any]]
    win_rate: Callable[..., Any]
    fit: Callable[..., Params] | None = None
    partition_rules: tuple[tuple[str, tuple[str | None, ...]], ...] = ()
    description: str = ""
    sequence_keys: tuple[str, ...] = ()
    mask_key: str = ""
    embedding_key: str = ""
    precision_key: str = ""
    model_scores: Callable[..., Any] | None = None
    model_score_kind: str = ""  # "probability" or "strength" when model_scores is declared

    def __post_init__(self) -> None:
        if self.model_scores is not None and self.model_score_kind not in MODEL_SCORE_KINDS:
            raise ValueError(
                f"architecture {self.name!r}: model_scores needs model_score_kind in "
                f"{MODEL_SCORE_KINDS}, got {self.model_score_kind!r}"
            )

    def make_config(self, **overrides: Any) -> Any:
        """Build this architecture's config, with field overrides."""
        names = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise KeyError(
                f"architecture {self.name!r}: unknown config key(s) {unknown}; known: {sorted(names)}"
            )
        return self.config_cls(**overrides)


# Built-in architectures: name -> module whose ARCHITECTURE attribute defines it.
_BUILTIN: dict[str, str] = {
    "random": "routellm_jax.models.random",
    "sw_ranking": "routellm_jax.models.sw_ranking",
    "mf": "routellm_jax.models.mf",
    "bert": "routellm_jax.models.bert_classifier",
    "causal_llm": "routellm_jax.models.causal_llm",
    "irt": "routellm_jax.models.irt",
}

_USER: dict[str, Architecture] = {}


def register(arch: Architecture, *, overwrite: bool = False) -> Architecture:
    """Add a user architecture to the table (returns it, so it can decorate a builder's result)."""
    if not overwrite and (arch.name in _USER or arch.name in _BUILTIN):
        raise ValueError(f"architecture {arch.name!r} is already registered")
    _USER[arch.name] = arch
    return arch


def unregister(name: str) -> None:
    """Remove a user architecture (tests use this to clean up)."""
    _USER.pop(name, None)


class UnknownArchitectureError(KeyError):
    """No built-in, registered or plugin architecture has this name."""


def is_builtin(name: str) -> bool:
    """Whether ``name`` is one of the framework's own architectures.

    Example:
        >>> is_builtin("irt"), is_builtin("knn")
        (True, False)
    """
    return name in _BUILTIN


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name. A name the table does not know is looked for in the
    plugins (:mod:`routellm_jax.models.plugins`: the ``ROUTELLM_JAX_PLUGINS`` modules, then the
    installed ``routellm_jax.architectures`` entry points) before it is an error.
    """
    if name in _USER:
        return _USER[name]
    if name in _BUILTIN:
        module = importlib.import_module(_BUILTIN[name])
        return module.ARCHITECTURE
    # Local: plugins imports this module (it registers into the table); needed only on a miss.
    from routellm_jax.models import plugins

    if plugins.resolve(name) and name in _USER:
        return _USER[name]
    raise UnknownArchitectureError(
        f"unknown architecture {name!r}; known: {sorted(names())}. An architecture from a "
        f"plugin package is found once the package is installed (entry point group "
        f"{plugins.ENTRY_POINT_GROUP!r}); a module that is not installed is loaded with "
        f"--plugin MODULE or {plugins.ENV_VAR}=MODULE"
    )


def registered_names() -> list[str]:
    """The architectures in the table now: built-in and registered (no plugin lookup)."""
    return sorted(set(_BUILTIN) | set(_USER))


def names() -> list[str]:
    """All architecture names: built-in, registered, and declared by installed plugins (those
    are listed without importing them)."""
    from routellm_jax.models import plugins  # local: plugins imports this module

    return sorted(set(_BUILTIN) | set(_USER) | set(plugins.entry_points()))
