"""Matrix-factorisation router (the paper's ``mf``), on frozen prompt embeddings.

Score of model ``M`` on prompt ``q`` (paper section 4; reference ``MFModel``)::

    delta(M, q) = w2^T ( normalize(v_M) * (W1^T e_q [+ b]) )        P(M_s beats M_w | q) =
                                                                     sigmoid(delta(M_s,q) - delta(M_w,q))

``v_M`` is a learned model embedding (``dim`` = 128), L2-normalised before use as in the reference;
``e_q`` the frozen prompt embedding (MiniLM 384-d here, OpenAI 1536-d in the paper, through the
``precomputed:`` featurizer); ``W1`` the projection and ``w2`` a linear head. The paper's formula has
a projection bias ``b`` but the reference code has none (``Linear(..., bias=False)`` for both the
projection and the head, with the comment "bias should be False!"): ``proj_bias`` defaults to
False to match the code. During training only, Gaussian noise ``alpha * N(0, 1)`` is added to the
prompt embedding before the projection (the reference script uses ``alpha = 0.1``).

Loss: binary cross-entropy of ``sigmoid(delta(a) - delta(b))`` against "a won". The reference
trainer orients every battle winner-first with label 1; the logit is antisymmetric in (a, b), so
that is the same loss as ours in either orientation. Ties are dropped as in the reference
(``ties="half"`` keeps them as label 0.5). Because the pair is an input, one checkpoint routes any
pair of models in ``config.models``.

Example (a hashing featurizer, so nothing is fetched):
    >>> from routellm_jax.models.registry import get_architecture
    >>> arch = get_architecture("mf")
    >>> cfg = arch.make_config(models=("gpt-4-1106-preview", "mixtral-8x7b"), featurizer="hashing:64",
    ...                        text_dim=64)
    >>> params = arch.init(jax.random.key(0), cfg)
    >>> inputs = prompt_inputs(["What is 2+2?", "Prove it."], arch.make_featurizer(cfg), cfg)
    >>> win_rate(params, inputs, 0, 1, cfg).shape  # P(models[0] beats models[1]) per prompt
    (2,)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.data.records import TrainingData
from routellm_jax.models.featurizers import (
    DEFAULT_ENCODER,
    TIES,
    CachedFeaturizer,
    battles_with_outcomes,
    check_models,
    check_pair,
    comparison_arrays,
    make_embedding_featurizer,
)
from routellm_jax.models.registry import Architecture

Params = Any


@dataclasses.dataclass(frozen=True)
class MFConfig:
    """Configuration of the ``mf`` router.

    Example:
        >>> MFConfig(models=("a", "b"), featurizer="hashing:32", text_dim=32).dim
        128
    """

    models: tuple[str, ...] = ()  # the model table: strong/weak indices point into it
    featurizer: str = DEFAULT_ENCODER  # see routellm_jax.models.featurizers
    text_dim: int = 384  # 384 for MiniLM, 1536 for OpenAI text-embedding-3-small
    dim: int = 128
    alpha: float = 0.1  # training-time Gaussian noise on prompt embeddings
    use_proj: bool = True  # False requires text_dim == dim (as the reference)
    proj_bias: bool = False  # paper formula has "+ b"; the reference code has no bias
    ties: str = "drop"  # "drop" (reference) or "half"
    use_outcomes: bool = False  # also train on per-model outcomes turned into battles

    def __post_init__(self) -> None:
        if self.ties not in TIES:
            raise ValueError(f"MFConfig.ties must be one of {TIES}, got {self.ties!r}")
        if not self.use_proj and self.text_dim != self.dim:
            raise ValueError(
                f"MFConfig: use_proj=False needs text_dim == dim, got {self.text_dim} != {self.dim}"
            )


class MFModule(nn.Module):
    """``delta(M, q)`` for several models per prompt.

    ``__call__(model_ids [batch, m] int, embedding [batch, text_dim]) -> [batch, m]``.
    """

    num_models: int
    dim: int
    use_proj: bool = True
    proj_bias: bool = False

    @nn.compact
    def __call__(self, model_ids: jax.Array, embedding: jax.Array) -> jax.Array:
        # torch.nn.Embedding's default init is N(0, 1); the direction is what matters after the
        # L2 normalisation below.
        table = self.param(
            "model_embed", nn.initializers.normal(stddev=1.0), (self.num_models, self.dim)
        )
        v = table[model_ids]  # [batch, m, dim]
        # F.normalize(p=2, eps=1e-12): divide by max(norm, eps).
        v = v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
        q = embedding
        if self.use_proj:
            q = nn.Dense(self.dim, use_bias=self.proj_bias, name="text_proj")(q)  # [batch, dim]
        head = nn.Dense(1, use_bias=False, name="classifier")
        return head(v * q[:, None, :])[..., 0]  # [batch, m]


def _module(config: MFConfig) -> MFModule:
    return MFModule(
        num_models=len(config.models),
        dim=config.dim,
        use_proj=config.use_proj,
        proj_bias=config.proj_bias,
    )


def init(rng: jax.Array, config: MFConfig) -> Params:
    """Fresh parameters ``{"model_embed", "text_proj": {"kernel"}, "classifier": {"kernel"}}``.

    Example:
        >>> p = init(jax.random.key(0), MFConfig(models=("a", "b"), text_dim=8, dim=4))
        >>> p["model_embed"].shape
        (2, 4)
    """
    check_models(config.models, "mf")
    ids = jnp.zeros((1, 2), jnp.int32)
    emb = jnp.zeros((1, config.text_dim), jnp.float32)
    # One compiled call instead of dozens of eager initialiser ops (seconds on a busy CPU).
    return jax.jit(_module(config).init)(rng, ids, emb)["params"]


def make_featurizer(config: MFConfig) -> CachedFeaturizer:
    """The prompt-embedding featurizer named by ``config.featurizer``, checked against text_dim.

    Example:
        >>> make_featurizer(MFConfig(featurizer="hashing:16", text_dim=16)).dim
        16
    """
    featurizer = make_embedding_featurizer(config.featurizer)
    if featurizer.dim != config.text_dim:
        raise ValueError(
            f"mf: featurizer {config.featurizer!r} gives {featurizer.dim}-d embeddings but "
            f"config.text_dim = {config.text_dim}"
        )
    return featurizer


def _embed(prompts: Sequence[str], featurizer: Any, text_dim: int, arch: str) -> np.ndarray:
    emb = np.asarray(featurizer.embed(list(prompts)), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != text_dim:
        raise ValueError(f"{arch}: featurizer gave shape {emb.shape}, expected [n, {text_dim}]")
    return emb


def examples_from_records(
    data: TrainingData, featurizer: Any, config: MFConfig
) -> dict[str, np.ndarray]:
    """Battle examples: ``embedding`` [n, text_dim], ``model_a``/``model_b`` [n] int32 (indices
    into ``config.models``), ``label`` [n] (1 = model_a won), ``weight`` [n].

    Example:
        >>> from routellm_jax.data.records import Comparison, ComparisonTable
        >>> cfg = MFConfig(models=("x", "y"), featurizer="hashing:8", text_dim=8)
        >>> data = TrainingData.of(ComparisonTable.from_records([Comparison("q", "x", "y", "a")]))
        >>> examples_from_records(data, make_featurizer(cfg), cfg)["label"].tolist()
        [1.0]
    """
    models = check_models(config.models, "mf")
    table = battles_with_outcomes(data, config.use_outcomes)
    arrays = comparison_arrays(table, models, config.ties)
    if len(arrays["row"]) == 0:
        raise ValueError(
            f"mf: none of {len(table)} battles is usable (models outside config.models "
            f"{list(models)[:8]}..., self-battles, or ties with ties='drop')"
        )
    emb = _embed(table.prompt[arrays["row"]].tolist(), featurizer, config.text_dim, "mf")
    return {
        "embedding": emb,
        "model_a": arrays["model_a"],
        "model_b": arrays["model_b"],
        "label": arrays["label"],
        "weight": arrays["weight"],
    }


@functools.partial(jax.jit, static_argnames=("config",))
def model_scores(
    params: Params, embedding: jax.Array, model_ids: jax.Array, config: MFConfig
) -> jax.Array:
    """``delta(M, q)`` for each prompt and each model in ``model_ids`` ([m] or [batch, m]).

    Example:
        >>> cfg = MFConfig(models=("a", "b", "c"), text_dim=8, dim=4)
        >>> model_scores(init(jax.random.key(0), cfg), jnp.ones((5, 8)), jnp.arange(3), cfg).shape
        (5, 3)
    """
    ids = jnp.asarray(model_ids, jnp.int32)
    if ids.ndim == 1:
        ids = jnp.broadcast_to(ids, (embedding.shape[0], ids.shape[0]))
    return _module(config).apply({"params": params}, ids, embedding)


def model_strengths(
    params: Params, inputs: dict[str, Any], model_ids: jax.Array, config: MFConfig
) -> jax.Array:
    """The architecture's ``model_scores``: ``[batch, m]`` ``delta(M, q)``, the Bradley-Terry log
    strength whose differences give ``P(M_a beats M_b | q) = sigmoid(delta_a - delta_b)``.

    Example:
        >>> cfg = MFConfig(models=("a", "b", "c"), text_dim=8, dim=4)
        >>> model_strengths(init(jax.random.key(0), cfg), {"embedding": jnp.ones((5, 8))},
        ...                 jnp.arange(3), cfg).shape
        (5, 3)
    """
    embedding = jnp.asarray(inputs["embedding"]).astype(jnp.float32)
    return model_scores(params, embedding, model_ids, config)


def loss(
    params: Params, batch: dict[str, jax.Array], rng: jax.Array, config: MFConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted BCE of ``sigmoid(delta(a) - delta(b))`` against the battle label; noise on the
    prompt embedding (``config.alpha``) from ``rng``.

    Example:
        >>> cfg = MFConfig(models=("a", "b"), text_dim=8, dim=4)
        >>> b = {"embedding": jnp.ones((2, 8)), "model_a": jnp.array([0, 1]),
        ...      "model_b": jnp.array([1, 0]), "label": jnp.array([1.0, 0.0])}
        >>> bool(jnp.isfinite(loss(init(jax.random.key(0), cfg), b, jax.random.key(1), cfg)[0]))
        True
    """
    # A local import: routing runs only the forward pass, and optax is slow to import (every
    # route command would pay for it).
    import optax

    emb = batch["embedding"].astype(jnp.float32)
    if config.alpha > 0:
        emb = emb + config.alpha * jax.random.normal(rng, emb.shape, emb.dtype)
    ids = jnp.stack([batch["model_a"], batch["model_b"]], axis=-1).astype(jnp.int32)
    scores = _module(config).apply({"params": params}, ids, emb)  # [batch, 2]
    logits = scores[:, 0] - scores[:, 1]
    label = batch["label"].astype(jnp.float32)
    weight = batch.get("weight", jnp.ones_like(label)).astype(jnp.float32)
    per_example = optax.sigmoid_binary_cross_entropy(logits, label)
    total = jnp.maximum(weight.sum(), 1e-12)
    value = (weight * per_example).sum() / total
    decided = (label != 0.5).astype(jnp.float32) * weight
    correct = ((logits > 0) == (label > 0.5)).astype(jnp.float32)
    accuracy = (correct * decided).sum() / jnp.maximum(decided.sum(), 1e-12)
    return value, {"loss": value, "accuracy": accuracy}


def prompt_inputs(
    prompts: Sequence[str], featurizer: Any, config: MFConfig
) -> dict[str, np.ndarray]:
    """``{"embedding": [n, text_dim]}`` for inference.

    Example:
        >>> cfg = MFConfig(featurizer="hashing:8", text_dim=8)
        >>> prompt_inputs(["hi"], make_featurizer(cfg), cfg)["embedding"].shape
        (1, 8)
    """
    return {"embedding": _embed(prompts, featurizer, config.text_dim, "mf")}


@functools.partial(jax.jit, static_argnames=("config",))
def _win_rate(params: Params, embedding: jax.Array, strong: jax.Array, weak: jax.Array, config):
    n = embedding.shape[0]
    ids = jnp.stack([jnp.broadcast_to(strong, (n,)), jnp.broadcast_to(weak, (n,))], axis=-1).astype(
        jnp.int32
    )
    scores = _module(config).apply({"params": params}, ids, embedding.astype(jnp.float32))
    return jax.nn.sigmoid(scores[:, 0] - scores[:, 1])


def win_rate(
    params: Params,
    inputs: dict[str, Any],
    strong: int | jax.Array,
    weak: int | jax.Array,
    config: MFConfig,
) -> jax.Array:
    """``[batch]`` P(strong beats weak); ``strong``/``weak`` index ``config.models`` (scalars or
    ``[batch]`` arrays). No noise at inference.

    Example:
        >>> cfg = MFConfig(models=("a", "b"), text_dim=8, dim=4)
        >>> win_rate(init(jax.random.key(0), cfg), {"embedding": jnp.ones((3, 8))}, 0, 1, cfg).shape
        (3,)
    """
    check_pair(strong, weak, len(config.models), "mf")
    return _win_rate(params, jnp.asarray(inputs["embedding"]), strong, weak, config)


ARCHITECTURE = Architecture(
    name="mf",
    config_cls=MFConfig,
    init=init,
    make_featurizer=make_featurizer,
    examples_from_records=examples_from_records,
    loss=loss,
    prompt_inputs=prompt_inputs,
    win_rate=win_rate,
    # prompt_inputs is {"embedding": featurizer.embed(prompts)}: MiniLM routers run fused.
    embedding_key="embedding",
    model_scores=model_strengths,
    model_score_kind="strength",
    # A few hundred thousand parameters at most: replicated on every device.
    partition_rules=(),
    description="Matrix factorisation over model embeddings and a projected frozen prompt "
    "embedding (RouteLLM mf); any pair of config.models at inference.",
)
