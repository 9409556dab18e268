"""Multidimensional item-response-theory (IRT) router: one latent space for correctness and battles.

Why (more routing data, and routing pairs never seen together): the paper's routers learn from battles
of one pair, or of Arena's model mix, and correctness labels only enter as battles. But most public
routing data is per-model correctness or grades on the same prompts (RouterBench: 11 models,
RouterDC: 7, LLMRouter: 9, arena-bench: 15 graded). Item response theory is the model psychometrics
built for exactly this table: a prompt is an *item* with a difficulty and a skill profile, a model is
a *respondent* with abilities. Correctness of many models on a prompt pins the prompt's difficulty
and skill profile independently of any particular pair, and each model's abilities are estimated
from all prompts; a strong/weak pair never seen together (or never seen in battles at all) is then
routed through its two ability vectors. That is why it should need little data per pair.

Model (``k`` = ``latent_dim``)::

    [a(q), b(q)] = MLP(e_q)                       a(q) in R^k (skill profile), b(q) difficulty
    s(m, q)      = a(q) . theta_m + c_m - b(q)      theta_m in R^k abilities, c_m a scalar bias
    P(m answers q well) = sigmoid(s(m, q))          (per-model outcomes; grades scaled to [0, 1])
    P(m1 beats m2 on q) = sigmoid(s(m1, q) - s(m2, q))   (battles: Bradley-Terry on the same score;
                                                        b(q) cancels, ties count as half a win)

Per-source nuisance terms (``source_effect``, off by default): routing thresholds are applied
within one benchmark, so what the router needs is the ranking of prompts *within* a domain. But
training sources differ in base rate for reasons that are not about the prompt (which models were
run, which judge or grader labelled them, how the benchmark was built): ARC, GSM8K-train,
AlpacaEval battles and the MMLU golden split sit at different levels. With one shared item model,
capacity goes into telling the sources apart. ``source_groups`` names training sources (a row's
``source`` matches a group when it equals it or starts with ``group + "/"``; unmatched rows get no
term), and during training a learned fixed effect indexed by the row's group is added to ``s``:

* ``"difficulty"``: a scalar ``d_g`` per group, ``s(m, q) -= d_g`` (cancels in battles);
* ``"model"``: ``e_{g,m}`` per group and model, ``s(m, q) += e_{g,m}`` (a label source's own view of
  each model, e.g. a judge's taste, is absorbed there, not in ``a(q)``/``b(q)``).

A source term alone is not identified: the item MLP can still encode a source's level in
``b(q)`` (sources are easy to tell apart from the text), and an L2 penalty on the terms would push
the level *into* ``b(q)``. So a centring penalty ``source_center`` pulls each group's in-batch mean
of the item outputs to 0 (``b`` for ``"difficulty"``; ``a`` and ``b`` for ``"model"``, whose
per-source means ``mean(a) . theta_m - mean(b)`` are exactly what ``e_{g,m}`` can carry): the
between-source level goes to the term, the within-source variation stays in the item. The terms
(small L2 ``source_l2``) are dropped at inference: ``win_rate`` and ``score_models`` never see a
source, so the router stays a pure function of ``(params, prompt inputs)`` and scores every
prompt as one of an "average" source.

Features relative to the prompt's kind (``residual_dims``, off by default): prompt length is a
difficulty signal within a kind of prompt (a longer word problem takes more steps), but across
kinds it names the source (chat prompts are long, code prompts short), and a router that learns
the sources' levels from it routes whole kinds the wrong way. With ``residual_dims = r``, the last
``r`` features (``"<encoder>+length"``'s log word and character counts) enter the MLP as
``x_side - W x_text - c``: their residual against a linear fit from the encoder's features, which
say what kind of prompt it is. The fit is trained only by an auxiliary mean squared error
(``residual_weight``; the data loss sees it through a stop-gradient), so the MLP receives "longer
than prompts like it" rather than "long". The fit is part of the parameters, and inference
computes the same residual: the router stays a pure function of ``(params, prompt inputs)``.

Loss: weighted BCE on outcomes (soft targets for grades) + weighted BT loss on battles, each row
weighted by its source weight times ``outcome_weight`` / ``battle_weight``, normalised by the total
weight of the batch; ``theta_l2`` fixes the scale ambiguity between ``a`` and ``theta``. Gaussian noise
``alpha`` on the prompt embedding during training, as mf; ``noise_dims`` limits it to the leading
(encoder) features, so appended prompt-shape features reach the MLP exact.

``win_rate`` (``win_rate_mode``):

* ``"gain"`` (default): ``P(strong right, weak wrong) + 0.5 * P(both right or both wrong)`` with the
  two answers independent given ``q``, which simplifies to ``0.5 + 0.5 * (p_s - p_w)``. It is monotone
  in the expected quality gain of calling the strong model, the quantity PGR/APGR measure, and it
  says "no gain" on prompts both models solve (where ``sigmoid(s_s - s_w)`` can still be near 1 because
  the strong model is *more* certain of an answer the weak model also gets right).
* ``"bt"``: ``sigmoid(s_s - s_w)``, the battle probability the model is trained on (for judge-style
  preference data, where "both right" is not a thing).

``score_models`` gives ``P(correct)`` for any set of models, and :func:`cheapest_adequate` picks the
cheapest model whose predicted success reaches a target, so one checkpoint routes among N models
with a price per model.
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
    CachedFeaturizer,
    check_models,
    check_pair,
    comparison_arrays,
    make_embedding_featurizer,
)
from routellm_jax.models.registry import Architecture

Params = Any
WIN_RATE_MODES = ("gain", "bt")
SOURCE_EFFECTS = ("none", "difficulty", "model")
RESIDUAL_FIT_SCALE = 10.0  # output scale of the residual features' linear fit (IRTModule)


@dataclasses.dataclass(frozen=True)
class IRTConfig:
    """Configuration of the ``irt`` router.

    Example:
        >>> IRTConfig(models=("a", "b")).latent_dim
        16
    """

    models: tuple[str, ...] = ()  # the model table (abilities are learned for each)
    featurizer: str = DEFAULT_ENCODER
    text_dim: int = 384
    latent_dim: int = 16  # k: skills
    hidden_dim: int = 256  # prompt MLP width; 0 = a linear map from the embedding
    alpha: float = 0.1  # training-time Gaussian noise on prompt embeddings
    # Noise only on the first ``noise_dims`` features (None: all). For an "<encoder>+shape"
    # featurizer, the encoder's dimension: alpha = 0.1 is a regulariser on a unit-norm 384-d
    # embedding, but on the appended shape features it is as large as the spread of log prompt
    # length within one benchmark (experiments/results/README.md has what keeping it off changed).
    noise_dims: int | None = None
    # The trailing ``residual_dims`` features (e.g. "+length"'s log word and character counts)
    # reach the MLP as their residual against a linear prediction from the other features, fitted
    # by an auxiliary least-squares loss (weight ``residual_weight``) that only trains that
    # prediction: they then say how long a prompt is for its kind, not which kind it is
    # (experiments/results/README.md, "Later candidates: prompt length relative to the prompt's
    # kind").
    residual_dims: int = 0
    residual_weight: float = 1.0
    outcome_weight: float = 1.0  # loss weight of a per-model outcome
    battle_weight: float = 1.0  # loss weight of a battle
    grade_range: tuple[float, float] = (
        1.0,
        10.0,
    )  # grades -> (g - lo) / (hi - lo); below lo: dropped
    theta_l2: float = 1e-4  # L2 on abilities (fixes the a / theta scale)
    win_rate_mode: str = "gain"  # "gain" or "bt", see the module docstring
    # Training-only per-source nuisance term (module docstring); "none" keeps the parameters of
    # checkpoints trained before it existed.
    source_effect: str = "none"  # "none", "difficulty" or "model"
    source_groups: tuple[str, ...] = ()  # source names / prefixes that get a term
    source_l2: float = 1e-3  # L2 on the source terms
    source_center: float = 1.0  # weight of the per-group centring penalty on the item outputs

    def __post_init__(self) -> None:
        if self.source_effect not in SOURCE_EFFECTS:
            raise ValueError(
                f"IRTConfig.source_effect must be one of {SOURCE_EFFECTS}, got {self.source_effect!r}"
            )
        if self.source_effect != "none" and not self.source_groups:
            raise ValueError(
                f"IRTConfig.source_effect={self.source_effect!r} needs source_groups (the training "
                "sources that get a term), got none"
            )
        if self.noise_dims is not None and not 0 <= self.noise_dims <= self.text_dim:
            raise ValueError(
                f"IRTConfig.noise_dims must be in 0..text_dim={self.text_dim}, got {self.noise_dims}"
            )
        if not 0 <= self.residual_dims < self.text_dim:
            raise ValueError(
                f"IRTConfig.residual_dims must be in 0..text_dim - 1 = {self.text_dim - 1}, got "
                f"{self.residual_dims}"
            )
        if len(set(self.source_groups)) != len(self.source_groups):
            raise ValueError(f"IRTConfig.source_groups has duplicates: {list(self.source_groups)}")
        if self.win_rate_mode not in WIN_RATE_MODES:
            raise ValueError(
                f"IRTConfig.win_rate_mode must be one of {WIN_RATE_MODES}, got {self.win_rate_mode!r}"
            )
        lo, hi = self.grade_range
        if not hi > lo:
            raise ValueError(f"IRTConfig.grade_range must be (lo, hi) with hi > lo, got {(lo, hi)}")


class IRTModule(nn.Module):
    """Latent scores ``s(m, q)``: ``__call__(embedding [batch, text_dim]) -> [batch, n_models]``.

    With ``source_effect`` set, ``__call__(embedding, source)`` (``source`` [batch] group index,
    ``num_sources`` = no term) adds the training-only source term; ``source=None`` (inference)
    leaves it out.
    """

    num_models: int
    latent_dim: int
    hidden_dim: int
    source_effect: str = "none"
    num_sources: int = 0
    residual_dims: int = 0

    @nn.compact
    def __call__(
        self,
        embedding: jax.Array,
        source: jax.Array | None = None,
        noise: jax.Array | None = None,
    ) -> jax.Array:
        x = embedding
        if self.residual_dims:
            text, side = x[:, : -self.residual_dims], x[:, -self.residual_dims :]
            # Zero-initialised and scaled up: Adam moves a parameter by about the learning rate
            # per step, too slowly for a fit that needs weights or a bias of order 1 or more
            # within a training run's few thousand steps.
            fit = nn.Dense(self.residual_dims, kernel_init=nn.initializers.zeros, name="residual")
            predicted = RESIDUAL_FIT_SCALE * fit(text)
            self.sow("intermediates", "residual_error", jnp.mean((side - predicted) ** 2, axis=1))
            x = jnp.concatenate([text, side - jax.lax.stop_gradient(predicted)], axis=1)
        if noise is not None:
            # Training noise goes on the MLP's input, after the residual: the fit sees the
            # clean features, as at inference.
            x = x + noise
        if self.hidden_dim:
            x = nn.gelu(nn.Dense(self.hidden_dim, name="hidden")(x))
        out = nn.Dense(self.latent_dim + 1, name="item")(x)  # [batch, k + 1]
        self.sow("intermediates", "item_out", out)  # the loss's centring penalty reads it
        a, b = out[:, : self.latent_dim], out[:, self.latent_dim]
        theta = self.param(
            "theta",
            nn.initializers.normal(stddev=1.0 / np.sqrt(self.latent_dim)),
            (self.num_models, self.latent_dim),
        )
        bias = self.param("bias", nn.initializers.zeros, (self.num_models,))
        s = a @ theta.T + bias[None, :] - b[:, None]  # [batch, n_models]
        if self.source_effect == "none":
            return s
        width = 1 if self.source_effect == "difficulty" else self.num_models
        table = self.param("source_effect", nn.initializers.zeros, (self.num_sources, width))
        if source is None:  # inference: an unseen, "average" source
            return s
        # Row num_sources (unmatched sources) is a constant zero, not a parameter.
        table = jnp.concatenate([table, jnp.zeros((1, width), table.dtype)])
        term = table[source]  # [batch, 1 | n_models]
        return s - term if self.source_effect == "difficulty" else s + term


def _module(config: IRTConfig) -> IRTModule:
    return IRTModule(
        len(config.models),
        config.latent_dim,
        config.hidden_dim,
        config.source_effect,
        len(config.source_groups),
        config.residual_dims,
    )


def source_index(sources: Sequence[str], config: IRTConfig) -> np.ndarray:
    """Each row's index into ``config.source_groups`` (``len(source_groups)`` where none matches):
    a source matches a group when it equals it or starts with ``group + "/"``; the first match wins.

    Example:
        >>> cfg = IRTConfig(source_effect="difficulty", source_groups=("mmlu", "gsm8k"))
        >>> source_index(["mmlu/anatomy", "gsm8k", "mmlu_x", ""], cfg).tolist()
        [0, 1, 2, 2]
    """
    groups = config.source_groups
    lookup: dict[str, int] = {}
    out = np.empty(len(sources), np.int32)
    for i, s in enumerate(sources):
        s = str(s)
        if s not in lookup:
            lookup[s] = next(
                (j for j, g in enumerate(groups) if s == g or s.startswith(g + "/")), len(groups)
            )
        out[i] = lookup[s]
    return out


def init(rng: jax.Array, config: IRTConfig) -> Params:
    """Fresh parameters ``{"hidden", "item", "theta" [n_models, k], "bias" [n_models]}``.

    Example:
        >>> init(jax.random.key(0), IRTConfig(models=("a", "b"), text_dim=8))["theta"].shape
        (2, 16)
    """
    check_models(config.models, "irt")
    # One compiled call instead of dozens of eager initialiser ops.
    emb = jnp.zeros((1, config.text_dim), jnp.float32)
    src = None if config.source_effect == "none" else jnp.zeros((1,), jnp.int32)
    return jax.jit(_module(config).init)(rng, emb, src)["params"]


def make_featurizer(config: IRTConfig) -> CachedFeaturizer:
    """The embedding featurizer of ``config.featurizer``, checked against ``text_dim``.

    Example:
        >>> make_featurizer(IRTConfig(featurizer="hashing:8", text_dim=8)).dim
        8
    """
    featurizer = make_embedding_featurizer(config.featurizer)
    if featurizer.dim != config.text_dim:
        raise ValueError(
            f"irt: featurizer {config.featurizer!r} gives {featurizer.dim}-d embeddings but "
            f"config.text_dim = {config.text_dim}"
        )
    return featurizer


def _embed(prompts: Sequence[str], featurizer: Any, text_dim: int) -> np.ndarray:
    emb = np.asarray(featurizer.embed(list(prompts)), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != text_dim:
        raise ValueError(f"irt: featurizer gave shape {emb.shape}, expected [n, {text_dim}]")
    return emb


def outcome_targets(
    data: TrainingData, config: IRTConfig
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-prompt outcome targets over the model table: ``(prompts, target [n, M], weight [n, M])``.

    Correctness scores are used as they are (0/1, or a fraction), grades are scaled by
    ``grade_range`` to [0, 1]; a grade below the range (e.g. MT-Bench's -1 = judge failure) and a
    model outside ``config.models`` are skipped. A (prompt, model) seen several times is averaged,
    with weight = number of observations.

    Example:
        >>> from routellm_jax.data.records import Outcome, OutcomeTable
        >>> t = OutcomeTable.from_records([Outcome("q", "b", 1.0), Outcome("q", "a", 10, kind="grade")])
        >>> outcome_targets(TrainingData.of(outcomes=t), IRTConfig(models=("a", "b")))[1].tolist()
        [[1.0, 1.0]]
    """
    # A local import: routing never prepares training data, and pandas is slow to import (every
    # route command would pay for it).
    import pandas as pd

    table = data.outcomes
    index = {m: i for i, m in enumerate(config.models)}
    model = np.fromiter((index.get(m, -1) for m in table.model), np.int64, count=len(table))
    lo, hi = config.grade_range
    score = table.score.astype(np.float64)
    is_grade = table.kind == "grade"
    bad_kind = ~pd.Series(table.kind, dtype=object).isin(["correct", "grade"]).to_numpy()
    if bad_kind.any():
        row = int(np.flatnonzero(bad_kind)[0])
        raise ValueError(f"irt: outcome row {row} has unknown kind {table.kind[row]!r}")
    target = np.where(is_grade, (score - lo) / (hi - lo), score)
    keep = (model >= 0) & ~(is_grade & (score < lo)) & np.isfinite(score)
    target = np.clip(target, 0.0, 1.0)
    # factorize hashes the strings (np.unique on str would build a fixed-width copy of them all).
    prompt_id, prompts = pd.factorize(pd.Series(table.prompt[keep], dtype=object))
    n, m = len(prompts), len(config.models)
    flat = prompt_id.astype(np.int64) * m + model[keep]
    count = np.bincount(flat, minlength=n * m).reshape(n, m)
    total = np.bincount(flat, weights=target[keep], minlength=n * m).reshape(n, m)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return [str(p) for p in prompts], mean.astype(np.float32), count.astype(np.float32)


def examples_from_records(
    data: TrainingData, featurizer: Any, config: IRTConfig
) -> dict[str, np.ndarray]:
    """Rows of two kinds, in one set of arrays:

    * one row per prompt with outcomes: ``outcome`` [M] targets and ``outcome_weight`` [M]
      (0 where a model has no result), ``battle_weight`` 0;
    * one row per battle: ``model_a``, ``model_b``, ``label`` (1 = a won, ties 0.5),
      ``battle_weight`` (the battle's weight), ``outcome_weight`` all 0.

    Plus ``embedding`` [n, text_dim] for every row, and with ``config.source_effect`` set,
    ``source`` [n] (:func:`source_index`; an outcome row takes its prompt's first outcome's source).

    Example:
        >>> from routellm_jax.data.records import Comparison, ComparisonTable, Outcome, OutcomeTable
        >>> cfg = IRTConfig(models=("x", "y"), featurizer="hashing:8", text_dim=8)
        >>> d = TrainingData.of(ComparisonTable.from_records([Comparison("q", "x", "y", "a")]),
        ...                     OutcomeTable.from_records([Outcome("r", "y", 0.0)]))
        >>> ex = examples_from_records(d, make_featurizer(cfg), cfg)
        >>> ex["battle_weight"].tolist(), ex["outcome_weight"].tolist()
        ([0.0, 1.0], [[0.0, 1.0], [0.0, 0.0]])
    """
    # A local import: routing never prepares training data, and pandas is slow to import (every
    # route command would pay for it).
    import pandas as pd

    models = check_models(config.models, "irt")
    m = len(models)
    o_prompts, o_target, o_weight = outcome_targets(data, config)
    battles = comparison_arrays(data.comparisons, models, ties="half")
    b_prompts = data.comparisons.prompt[battles["row"]].tolist()
    n_o, n_b = len(o_prompts), len(b_prompts)
    if n_o + n_b == 0:
        raise ValueError(
            f"irt: no usable outcome or battle among {len(data.outcomes)} outcomes and "
            f"{len(data.comparisons)} battles for config.models {list(models)[:8]}"
        )
    zeros_i = np.zeros(n_o, np.int32)
    extra = {}
    if config.source_effect != "none":
        first = (
            pd.Series(data.outcomes.source, dtype=object)
            .groupby(pd.Series(data.outcomes.prompt, dtype=object), sort=False)
            .first()
        )
        o_src = [first.get(p, "") for p in o_prompts]
        b_src = data.comparisons.source[battles["row"]].tolist()
        extra["source"] = source_index(o_src + b_src, config)
    return {
        **extra,
        "embedding": _embed(o_prompts + b_prompts, featurizer, config.text_dim),
        "outcome": np.concatenate([o_target, np.zeros((n_b, m), np.float32)]),
        "outcome_weight": np.concatenate([o_weight, np.zeros((n_b, m), np.float32)]),
        "model_a": np.concatenate([zeros_i, battles["model_a"]]),
        "model_b": np.concatenate([zeros_i, battles["model_b"]]),
        "label": np.concatenate([np.zeros(n_o, np.float32), battles["label"]]),
        "battle_weight": np.concatenate([np.zeros(n_o, np.float32), battles["weight"]]),
    }


def latent_scores(
    params: Params, embedding: jax.Array, config: IRTConfig, source: jax.Array | None = None
) -> jax.Array:
    """``s(m, q)`` for every model of the table: ``[batch, n_models]`` logits of success;
    ``source`` (training only) adds the per-source term of ``config.source_effect``.

    Example:
        >>> cfg = IRTConfig(models=("a", "b", "c"), text_dim=8, hidden_dim=4)
        >>> latent_scores(init(jax.random.key(0), cfg), jnp.ones((2, 8)), cfg).shape
        (2, 3)
    """
    return _module(config).apply({"params": params}, embedding.astype(jnp.float32), source)


def loss(
    params: Params, batch: dict[str, jax.Array], rng: jax.Array, config: IRTConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted BCE on outcomes + weighted Bradley-Terry loss on battles (see module docstring).

    Example:
        >>> cfg = IRTConfig(models=("a", "b"), text_dim=4, hidden_dim=0)
        >>> b = {"embedding": jnp.ones((1, 4)), "outcome": jnp.array([[1.0, 0.0]]),
        ...      "outcome_weight": jnp.ones((1, 2)), "model_a": jnp.zeros(1, int),
        ...      "model_b": jnp.zeros(1, int), "label": jnp.zeros(1), "battle_weight": jnp.zeros(1)}
        >>> bool(jnp.isfinite(loss(init(jax.random.key(0), cfg), b, jax.random.key(1), cfg)[0]))
        True
    """
    # A local import: routing runs only the forward pass, and optax is slow to import (every
    # route command would pay for it).
    import optax

    emb = batch["embedding"].astype(jnp.float32)
    noise = None
    if config.alpha > 0:
        noise = config.alpha * jax.random.normal(rng, emb.shape, emb.dtype)
        if config.noise_dims is not None:
            noise = noise * (jnp.arange(emb.shape[-1]) < config.noise_dims)
    source = None
    if config.source_effect != "none":
        if "source" not in batch:
            raise KeyError(
                f"irt: source_effect={config.source_effect!r} needs a 'source' column in the batch "
                "(examples_from_records adds it)"
            )
        source = batch["source"]
    if source is None and not config.residual_dims:
        s = _module(config).apply({"params": params}, emb, None, noise)  # [batch, M]
        inter = {}
    else:
        s, variables = _module(config).apply(
            {"params": params}, emb, source, noise, mutable=["intermediates"]
        )
        inter = variables["intermediates"]
    center = jnp.zeros(())
    if source is not None:
        center = _center_penalty(inter["item_out"][0], params["theta"], source, config)
    ow = batch["outcome_weight"].astype(jnp.float32) * config.outcome_weight
    o_loss = optax.sigmoid_binary_cross_entropy(s, batch["outcome"].astype(jnp.float32))
    rows = jnp.arange(s.shape[0])
    diff = s[rows, batch["model_a"]] - s[rows, batch["model_b"]]
    bw = batch["battle_weight"].astype(jnp.float32) * config.battle_weight
    b_loss = optax.sigmoid_binary_cross_entropy(diff, batch["label"].astype(jnp.float32))
    o_sum, b_sum = (ow * o_loss).sum(), (bw * b_loss).sum()
    o_w, b_w = ow.sum(), bw.sum()
    data_loss = (o_sum + b_sum) / jnp.maximum(o_w + b_w, 1e-12)
    reg = 0.5 * config.theta_l2 * jnp.sum(params["theta"] ** 2)
    if config.source_effect != "none":
        reg = reg + 0.5 * config.source_l2 * jnp.sum(params["source_effect"] ** 2)
        reg = reg + config.source_center * center
    metrics = {}
    if config.residual_dims:
        # Every row counts once: the fit is of the prompts' features, whatever their labels.
        residual = inter["residual_error"][0].mean()
        reg = reg + config.residual_weight * residual
        metrics["residual_mse"] = residual
    value = data_loss + reg
    o_acc = (ow * ((s > 0) == (batch["outcome"] > 0.5))).sum() / jnp.maximum(o_w, 1e-12)
    return value, {
        "loss": value,
        "outcome_loss": o_sum / jnp.maximum(o_w, 1e-12),
        "battle_loss": b_sum / jnp.maximum(b_w, 1e-12),
        "outcome_accuracy": o_acc,
        **metrics,
    }


def _center_penalty(
    item: jax.Array, theta: jax.Array, source: jax.Array, config: IRTConfig
) -> jax.Array:
    """``sum_g (n_g / n) * |mean over the batch rows of group g|^2`` over the named groups
    (unmatched rows are not centred) of: for ``"difficulty"``, the prompt's level over models
    ``a(q) . mean_m(theta_m) - b(q)`` (centring ``b`` alone would let ``a . theta`` carry the
    level); for ``"model"``, ``[a(q), b(q)]``."""
    g = len(config.source_groups)
    k = config.latent_dim
    if config.source_effect == "difficulty":
        x = (item[:, :k] @ theta.mean(axis=0) - item[:, k])[:, None]
    else:
        x = item
    onehot = jax.nn.one_hot(source, g + 1, dtype=x.dtype)[:, :g]  # [batch, g]
    n = onehot.sum(0)  # [g]
    mean = (onehot.T @ x) / jnp.maximum(n, 1.0)[:, None]  # [g, width]
    return jnp.sum(n * jnp.sum(mean**2, axis=1)) / x.shape[0]


def prompt_inputs(
    prompts: Sequence[str], featurizer: Any, config: IRTConfig
) -> dict[str, np.ndarray]:
    """``{"embedding": [n, text_dim]}``.

    Example:
        >>> cfg = IRTConfig(featurizer="hashing:8", text_dim=8)
        >>> prompt_inputs(["a"], make_featurizer(cfg), cfg)["embedding"].shape
        (1, 8)
    """
    return {"embedding": _embed(prompts, featurizer, config.text_dim)}


@functools.partial(jax.jit, static_argnames=("config",))
def _score_models(params: Params, embedding: jax.Array, ids: jax.Array, config: IRTConfig):
    return jax.nn.sigmoid(latent_scores(params, embedding, config)[:, ids])


def score_models(
    params: Params,
    inputs: dict[str, Any],
    model_indices: Sequence[int] | np.ndarray | jax.Array,
    config: IRTConfig,
) -> jax.Array:
    """``[batch, len(model_indices)]`` predicted P(model answers the prompt well).

    Example:
        >>> cfg = IRTConfig(models=("a", "b", "c"), text_dim=8, hidden_dim=4)
        >>> score_models(init(jax.random.key(0), cfg), {"embedding": np.ones((2, 8))}, [2, 0], cfg).shape
        (2, 2)
    """
    ids = np.asarray(model_indices, np.int64)
    if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= len(config.models))):
        raise IndexError(f"irt: model indices {ids.tolist()} outside 0..{len(config.models) - 1}")
    return _score_models(params, jnp.asarray(inputs["embedding"]), jnp.asarray(ids), config)


@functools.partial(jax.jit, static_argnames=("config",))
def model_probabilities(
    params: Params, inputs: dict[str, Any], model_ids: jax.Array, config: IRTConfig
) -> jax.Array:
    """The architecture's ``model_scores``: ``[batch, m]`` P(model answers the prompt well) for
    the traced indices ``model_ids`` ``[m]`` (jittable: no index check, see :func:`score_models`).

    Example:
        >>> cfg = IRTConfig(models=("a", "b", "c"), text_dim=8, hidden_dim=4)
        >>> p = model_probabilities(init(jax.random.key(0), cfg), {"embedding": jnp.ones((2, 8))},
        ...                         jnp.array([2, 0]), cfg)
        >>> p.shape, bool(((p > 0) & (p < 1)).all())
        ((2, 2), True)
    """
    s = latent_scores(params, jnp.asarray(inputs["embedding"]), config)
    return jax.nn.sigmoid(jnp.take(s, model_ids, axis=1))


def cheapest_adequate(probs: Any, prices: Any, target: float) -> np.ndarray:
    """Per prompt, the column of the cheapest model with ``probs >= target``; where none reaches
    the target, the most likely model (quality first). ``probs`` [batch, m], ``prices`` [m].

    Example:
        >>> cheapest_adequate(np.array([[0.9, 0.6], [0.9, 0.3]]), np.array([10.0, 1.0]), 0.5).tolist()
        [1, 0]
    """
    probs = np.asarray(probs, np.float64)
    prices = np.asarray(prices, np.float64)
    if probs.ndim != 2 or prices.shape != (probs.shape[1],):
        raise ValueError(f"probs {probs.shape} and prices {prices.shape} do not match")
    cost = np.where(probs >= target, prices[None, :], np.inf)
    cheapest = np.argmin(cost, axis=1)
    return np.where(np.isfinite(cost.min(axis=1)), cheapest, probs.argmax(axis=1))


@functools.partial(jax.jit, static_argnames=("config",))
def _win_rate(params: Params, embedding: jax.Array, strong, weak, config: IRTConfig):
    s = latent_scores(params, embedding, config)
    rows = jnp.arange(s.shape[0])
    s_s = s[rows, jnp.broadcast_to(strong, rows.shape)]
    s_w = s[rows, jnp.broadcast_to(weak, rows.shape)]
    if config.win_rate_mode == "bt":
        return jax.nn.sigmoid(s_s - s_w)
    return 0.5 + 0.5 * (jax.nn.sigmoid(s_s) - jax.nn.sigmoid(s_w))


def win_rate(
    params: Params, inputs: dict[str, Any], strong: Any, weak: Any, config: IRTConfig
) -> jax.Array:
    """``[batch]`` P(strong better than weak) per ``config.win_rate_mode``; ``strong``/``weak``
    index ``config.models`` (scalars or ``[batch]`` arrays).

    Example:
        >>> cfg = IRTConfig(models=("a", "b"), text_dim=8, hidden_dim=4)
        >>> win_rate(init(jax.random.key(0), cfg), {"embedding": np.ones((3, 8))}, 0, 1, cfg).shape
        (3,)
    """
    check_pair(strong, weak, len(config.models), "irt")
    return _win_rate(params, jnp.asarray(inputs["embedding"]), strong, weak, config)


ARCHITECTURE = Architecture(
    name="irt",
    config_cls=IRTConfig,
    init=init,
    make_featurizer=make_featurizer,
    examples_from_records=examples_from_records,
    loss=loss,
    prompt_inputs=prompt_inputs,
    win_rate=win_rate,
    # prompt_inputs is {"embedding": featurizer.embed(prompts)}: MiniLM routers run fused.
    embedding_key="embedding",
    model_scores=model_probabilities,
    model_score_kind="probability",
    partition_rules=(),
    description="Multidimensional IRT over prompt embeddings: per-model correctness/grades and "
    "battles in one latent space; routes any pair, or among N models with prices.",
)
