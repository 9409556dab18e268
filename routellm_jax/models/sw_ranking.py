"""Similarity-weighted (SW) ranking router: a Bradley-Terry fit per prompt, solved in JAX.

For a query prompt ``q`` every stored battle ``i`` (prompt ``q_i``) gets the weight (paper section 4)::

    w_i = gamma ** (1 + S(q, q_i)),   S(q, q_i) = cos(q, q_i) / max_j cos(q, q_j)

(the reference code writes ``10 * 10 ** (sim / max_sim)``: the same with ``gamma = 10``). A weighted
Bradley-Terry model is fitted to the weighted battles (ties count half a win for each side, as the
reference's duplicated-dataset trick does) and ``P(strong beats weak) = 1 / (1 + 10 ** ((R_w - R_s) /
400))``. In natural units (``beta = R * ln 10 / 400``) that is ``sigmoid(beta_s - beta_w)``: Elo scale and
base do not change the win rate, so the solver works in natural units and :func:`ratings` converts.

How it runs (``fit`` once, then ``win_rate`` per batch of prompts, jitted, no Python loop per prompt):

* ``fit`` indexes the battles by player (a model of ``config.models``, or its tier), drops battles
  inside one player, and aggregates them into rows ``(stored prompt u, player pair k, total weight,
  weighted wins of the lower-numbered player)``. Prompts are stored once (unit-normalised), so the
  similarity is one matmul over distinct prompts, however many battles share a prompt.
* ``win_rate`` computes similarities ``[batch, U]``, turns them into per-prompt weights (in log
  space, relative to the largest, so no overflow; only relative weights matter to the fit), and
  accumulates pair statistics ``[batch, K]`` in blocks of ``block_size`` rows (``lax.scan`` +
  ``segment_sum``), then runs ``newton_steps`` Newton iterations of the weighted BT log-likelihood,
  ``vmap``-ped over prompts (``[batch, P, P]`` solves). The statistics are normalised to total
  weight 1 per prompt; ``l2`` (relative to that) keeps separable or disconnected comparisons
  finite, and the gauge (ratings sum to zero over the players seen) is fixed as the reference
  solver's starting point at zero implicitly does.

Tiers: the reference fits Bradley-Terry over 10 Elo tiers, not models (``num_tiers=10`` does that:
``fit`` computes Elo over the stored battles with ``data.elo`` and splits it by dynamic
programming), or give ``config.tiers`` (a tier per model of ``config.models``) explicitly; by
default every model is its own player. The model -> player map is stored in the params
(``"player"``), so a checkpoint keeps the tiers it was built with.

Example:
    >>> from routellm_jax.data.records import Comparison, ComparisonTable
    >>> from routellm_jax.models.registry import get_architecture
    >>> arch = get_architecture("sw_ranking")
    >>> cfg = arch.make_config(models=("gpt-4", "mixtral"), featurizer="hashing:8", text_dim=8)
    >>> data = TrainingData.of(ComparisonTable.from_records(
    ...     [Comparison("Prove it.", "gpt-4", "mixtral", "a"), Comparison("Say hi.", "gpt-4", "mixtral", "b")]))
    >>> featurizer = arch.make_featurizer(cfg)
    >>> params = arch.fit(data, featurizer, cfg, jax.random.key(0))
    >>> p = win_rate(params, prompt_inputs(["Prove it.", "Say hi."], featurizer, cfg), 0, 1, cfg)
    >>> bool(p[0] > 0.5 > p[1])  # gpt-4 won the first prompt's battle, mixtral the second's
    True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.data.elo import compute_mle_elo, compute_tiers
from routellm_jax.data.records import ComparisonTable, TrainingData
from routellm_jax.models.featurizers import (
    DEFAULT_ENCODER,
    CachedFeaturizer,
    battles_with_outcomes,
    check_models,
    check_pair,
    comparison_arrays,
    make_embedding_featurizer,
)
from routellm_jax.models.registry import Architecture

Params = dict[str, Any]
ELO_SCALE = 400.0
ELO_BASE = 10.0
ELO_INIT = 1000.0


@dataclasses.dataclass(frozen=True)
class SWRankingConfig:
    """Configuration of the ``sw_ranking`` router.

    Example:
        >>> SWRankingConfig(models=("a", "b")).gamma
        10.0
    """

    models: tuple[str, ...] = ()
    featurizer: str = DEFAULT_ENCODER
    text_dim: int = 384
    gamma: float = 10.0  # weight = gamma ** (1 + sim / max_sim)
    tiers: tuple[int, ...] = ()  # tier (BT player) of each model; () = see num_tiers
    num_tiers: int = 0  # with tiers=(): 0 = one player per model; k > 0 = k Elo tiers from fit data
    tier_objective: str = "variance"  # data.elo.compute_tiers objective; the reference's DP
    newton_steps: int = 30  # at most; stops earlier once every prompt's step is below tol
    tol: float = 1e-4  # natural-unit rating step (0.017 Elo) that counts as converged
    max_step: float = 2.0  # cap on one Newton step (natural units): a safeguard far from optimum
    l2: float = 1e-5  # ridge on natural-unit ratings, relative to a prompt's total battle weight
    block_size: int = 8192  # database rows per accumulation block (memory: batch x block)
    use_outcomes: bool = False  # also store per-model outcomes turned into battles

    def __post_init__(self) -> None:
        if self.gamma <= 1.0:
            raise ValueError(f"SWRankingConfig.gamma must be > 1, got {self.gamma}")
        if self.tiers and len(self.tiers) != len(self.models):
            raise ValueError(
                f"SWRankingConfig.tiers has {len(self.tiers)} entries for {len(self.models)} models"
            )
        if self.num_tiers < 0:
            raise ValueError(f"SWRankingConfig.num_tiers must be >= 0, got {self.num_tiers}")
        if self.tiers and (min(self.tiers) < 0 or max(self.tiers) >= len(self.models)):
            raise ValueError(f"SWRankingConfig.tiers must lie in 0..{len(self.models) - 1}")


def _groups(config: SWRankingConfig, table: ComparisonTable | None = None) -> np.ndarray:
    """The BT group of each model: ``config.tiers``; else Elo tiers of ``table`` when
    ``num_tiers > 0``; else one group per model (the model's index)."""
    if config.tiers:
        return np.asarray(config.tiers, np.int32)
    if config.num_tiers > 0 and table is not None and len(table):
        return _elo_tiers(table, config)
    return np.arange(len(config.models), dtype=np.int32)


def _elo_tiers(table: ComparisonTable, config: SWRankingConfig) -> np.ndarray:
    """Tiers as the reference router builds them: Bradley-Terry Elo of every model over all the
    battles, then a dynamic-programming split into ``num_tiers`` groups (tier 0 = best).
    Models without battles get a group of their own after the tiers."""

    models = config.models
    index = {m: i for i, m in enumerate(models)}
    keep = np.array(
        [a in index and b in index for a, b in zip(table.model_a, table.model_b)], dtype=bool
    )
    ratings = compute_mle_elo(table.take(np.flatnonzero(keep)))
    tiers = compute_tiers(ratings, config.num_tiers, objective=config.tier_objective)
    group = np.empty(len(models), np.int32)
    next_free = max(tiers.values(), default=-1) + 1
    for i, m in enumerate(models):
        if m in tiers:
            group[i] = tiers[m]
        else:
            group[i] = next_free
            next_free += 1
    return group


def _empty_params(config: SWRankingConfig) -> Params:
    return {
        "embeddings": np.zeros((0, config.text_dim), np.float32),
        "row_prompt": np.zeros((0,), np.int32),
        "row_pair": np.zeros((0,), np.int32),
        "row_weight": np.zeros((0,), np.float32),
        "row_wins": np.zeros((0,), np.float32),
        "pair_lo": np.zeros((0,), np.int32),
        "pair_hi": np.zeros((0,), np.int32),
        "slot_group": np.zeros((0,), np.int32),
        "player": np.full(len(config.models), -1, np.int32),
    }


def init(rng: jax.Array, config: SWRankingConfig) -> Params:
    """An empty battle database (every win rate is 0.5 until :func:`fit` fills it).

    Example:
        >>> init(jax.random.key(0), SWRankingConfig(models=("a", "b"), text_dim=4))["embeddings"].shape
        (0, 4)
    """
    del rng
    check_models(config.models, "sw_ranking")
    return {k: jnp.asarray(v) for k, v in _empty_params(config).items()}


def make_featurizer(config: SWRankingConfig) -> CachedFeaturizer:
    """The embedding featurizer of ``config.featurizer``, checked against ``text_dim``.

    Example:
        >>> make_featurizer(SWRankingConfig(featurizer="hashing:8", text_dim=8)).dim
        8
    """
    featurizer = make_embedding_featurizer(config.featurizer)
    if featurizer.dim != config.text_dim:
        raise ValueError(
            f"sw_ranking: featurizer {config.featurizer!r} gives {featurizer.dim}-d embeddings "
            f"but config.text_dim = {config.text_dim}"
        )
    return featurizer


def _embed(prompts: Sequence[str], featurizer: Any, text_dim: int) -> np.ndarray:
    emb = np.asarray(featurizer.embed(list(prompts)), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != text_dim:
        raise ValueError(f"sw_ranking: featurizer gave shape {emb.shape}, expected [n, {text_dim}]")
    return emb


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def fit(
    data: TrainingData, featurizer: Any, config: SWRankingConfig, rng: jax.Array | None = None
) -> Params:
    """Build the battle database from ``data.comparisons`` (and outcomes if ``use_outcomes``).

    Returns numpy arrays: ``embeddings`` [U, d] (distinct prompts, unit rows); per aggregated row
    (prompt, player pair) ``row_prompt``, ``row_pair``, ``row_weight``, ``row_wins`` [R]; the
    pairs that occur ``pair_lo``/``pair_hi`` [K]; ``slot_group`` [P] (the model index, or tier,
    each BT player stands for) and ``player`` [n_models] (model -> player, -1 = no battles).

    Example:
        >>> from routellm_jax.data.records import Comparison, ComparisonTable
        >>> cfg = SWRankingConfig(models=("x", "y"), featurizer="hashing:8", text_dim=8)
        >>> d = TrainingData.of(ComparisonTable.from_records([Comparison("q", "x", "y", "a")] * 2))
        >>> fit(d, make_featurizer(cfg), cfg)["row_weight"].tolist()
        [2.0]
    """
    # A local import: routing never prepares training data, and pandas is slow to import (every
    # route command would pay for it).
    import pandas as pd

    del rng  # deterministic
    models = check_models(config.models, "sw_ranking")
    table = battles_with_outcomes(data, config.use_outcomes)
    arrays = comparison_arrays(table, models, ties="half")
    group = _groups(config, table)
    ga, gb = group[arrays["model_a"]], group[arrays["model_b"]]
    keep = ga != gb  # a battle inside one tier says nothing about the tiers' ranking
    if not keep.any():
        return _empty_params(config)
    ga, gb = ga[keep], gb[keep]
    label, weight = arrays["label"][keep], arrays["weight"][keep]
    rows = arrays["row"][keep]
    # Compact BT players: only the groups that appear in a stored battle (the per-prompt solve is
    # cubic in their number), numbered 0..P-1; "player" maps each model to one (-1 = no battles).
    slot_group, inverse = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    pa, pb = inverse[: len(ga)], inverse[len(ga) :]
    slot_of_group = {int(g): i for i, g in enumerate(slot_group)}
    player = np.array([slot_of_group.get(int(g), -1) for g in group], np.int32)
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    lo_wins = np.where(pa == lo, label, 1.0 - label)  # label = "model_a won", ties 0.5
    # Only the player pairs that occur (e.g. AlpacaEval: every model vs. one baseline).
    pairs, pair = np.unique(lo.astype(np.int64) * len(slot_group) + hi, return_inverse=True)
    # Distinct prompts (factorize hashes the strings; np.unique would build a fixed-width copy).
    prompt_id, uniq = pd.factorize(pd.Series(table.prompt[rows], dtype=object))
    key, row_id = np.unique(prompt_id.astype(np.int64) * len(pairs) + pair, return_inverse=True)
    row_weight = np.bincount(row_id, weights=weight, minlength=len(key))
    row_wins = np.bincount(row_id, weights=weight * lo_wins, minlength=len(key))
    embeddings = _unit(_embed([str(p) for p in uniq], featurizer, config.text_dim))
    return {
        "embeddings": embeddings,
        "row_prompt": (key // len(pairs)).astype(np.int32),
        "row_pair": (key % len(pairs)).astype(np.int32),
        "row_weight": row_weight.astype(np.float32),
        "row_wins": row_wins.astype(np.float32),
        "pair_lo": (pairs // len(slot_group)).astype(np.int32),
        "pair_hi": (pairs % len(slot_group)).astype(np.int32),
        "slot_group": slot_group.astype(np.int32),
        "player": player,
    }


def examples_from_records(
    data: TrainingData, featurizer: Any, config: SWRankingConfig
) -> dict[str, np.ndarray]:
    """Battles as evaluation examples: ``embedding``, ``model_a``, ``model_b``, ``label`` (ties
    0.5), ``weight``. (The router is built by :func:`fit`, not trained on these.)

    Example:
        >>> from routellm_jax.data.records import Comparison, ComparisonTable
        >>> cfg = SWRankingConfig(models=("x", "y"), featurizer="hashing:8", text_dim=8)
        >>> d = TrainingData.of(ComparisonTable.from_records([Comparison("q", "x", "y", "tie")]))
        >>> examples_from_records(d, make_featurizer(cfg), cfg)["label"].tolist()
        [0.5]
    """
    models = check_models(config.models, "sw_ranking")
    table = battles_with_outcomes(data, config.use_outcomes)
    arrays = comparison_arrays(table, models, ties="half")
    return {
        "embedding": _embed(table.prompt[arrays["row"]].tolist(), featurizer, config.text_dim),
        "model_a": arrays["model_a"],
        "model_b": arrays["model_b"],
        "label": arrays["label"],
        "weight": arrays["weight"],
    }


def prompt_inputs(
    prompts: Sequence[str], featurizer: Any, config: SWRankingConfig
) -> dict[str, np.ndarray]:
    """``{"embedding": [n, text_dim]}``.

    Example:
        >>> cfg = SWRankingConfig(featurizer="hashing:8", text_dim=8)
        >>> prompt_inputs(["a"], make_featurizer(cfg), cfg)["embedding"].shape
        (1, 8)
    """
    return {"embedding": _embed(prompts, featurizer, config.text_dim)}


def _pair_stats(params: Params, embedding: jax.Array, config: SWRankingConfig):
    """Per-prompt similarity-weighted pair statistics ``(W [batch, K], Y [batch, K])``,
    normalised to total weight 1 per prompt."""
    n_pairs = params["pair_lo"].shape[0]
    q = embedding.astype(jnp.float32)
    q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    sims = q @ params["embeddings"].T  # [batch, U] cosine (stored rows are unit vectors)
    max_sim = sims.max(axis=-1, keepdims=True)
    # gamma ** (1 + s / m) up to a per-prompt factor: exponent relative to its maximum (s = m).
    # |m| with a floor keeps the sign of s / m meaningful if every similarity is negative.
    scale = jnp.maximum(jnp.abs(max_sim), 1e-6)
    prompt_w = jnp.exp((sims - max_sim) / scale * math.log(config.gamma))  # [batch, U] in (0, 1]

    rows = params["row_prompt"].shape[0]
    block = max(1, min(config.block_size, rows))
    n_blocks = -(-rows // block)
    pad = n_blocks * block - rows

    def blocks(x):
        return jnp.pad(x, (0, pad)).reshape(n_blocks, block)

    xs = (
        blocks(params["row_prompt"]),
        blocks(params["row_pair"]),
        blocks(params["row_weight"]),  # padded rows have weight 0: no effect
        blocks(params["row_wins"]),
    )

    def accumulate(carry, x):
        w_acc, y_acc = carry
        r_prompt, r_pair, r_weight, r_wins = x
        f = prompt_w[:, r_prompt].T  # [block, batch]
        w_acc += jax.ops.segment_sum(f * r_weight[:, None], r_pair, n_pairs)
        y_acc += jax.ops.segment_sum(f * r_wins[:, None], r_pair, n_pairs)
        return (w_acc, y_acc), None

    zero = jnp.zeros((n_pairs, q.shape[0]), jnp.float32)
    (w, y), _ = jax.lax.scan(accumulate, (zero, zero), xs)
    total = jnp.maximum(w.sum(axis=0, keepdims=True), 1e-30)
    return (w / total).T, (y / total).T


def _bt_newton(
    w: jax.Array, y: jax.Array, lo: jax.Array, hi: jax.Array, n: int, config: SWRankingConfig
) -> jax.Array:
    """Weighted BT ratings (natural units) of ``n`` players for one prompt, from the pair stats
    ``w, y`` [K] of the pairs ``(lo, hi)``."""
    seen = (jax.ops.segment_sum(w, lo, n) + jax.ops.segment_sum(w, hi, n)) > 0
    seen_f = seen.astype(jnp.float32)
    n_seen = jnp.maximum(seen_f.sum(), 1.0)
    # Gauge: ratings are defined up to a shift over the players seen; u u^T pins the mean to 0
    # (the gradient is orthogonal to u, so this changes nothing else). Unseen players stay at 0.
    gauge = jnp.outer(seen_f, seen_f) / n_seen + jnp.diag(1.0 - seen_f)

    def newton_step(beta):
        p = jax.nn.sigmoid(beta[lo] - beta[hi])  # P(lo beats hi)
        r = y - w * p
        grad = jax.ops.segment_sum(r, lo, n) - jax.ops.segment_sum(r, hi, n) - config.l2 * beta
        c = w * p * (1.0 - p)
        off = jnp.zeros((n, n), jnp.float32).at[lo, hi].add(c)
        off = off + off.T
        hess = jnp.diag(off.sum(axis=1)) - off + config.l2 * jnp.eye(n) + gauge
        # Symmetric positive definite: Cholesky (also compiles much faster than LU).
        delta = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(hess), grad)
        # Safeguard: far from the optimum (e.g. near-separable data) a full step can overshoot.
        return delta * jnp.minimum(1.0, config.max_step / (jnp.abs(delta).max() + 1e-12))

    def cond(state):
        i, _, size = state
        return (i < config.newton_steps) & (size > config.tol)

    def body(state):
        i, beta, _ = state
        delta = newton_step(beta)
        return i + 1, beta + delta, jnp.abs(delta).max()

    init = (jnp.int32(0), jnp.zeros((n,), jnp.float32), jnp.float32(jnp.inf))
    _, beta, _ = jax.lax.while_loop(cond, body, init)
    return beta - (beta * seen_f).sum() / n_seen * seen_f


@functools.partial(jax.jit, static_argnames=("config",))
def _ratings_natural(params: Params, embedding: jax.Array, config: SWRankingConfig) -> jax.Array:
    w, y = _pair_stats(params, embedding, config)
    n = params["slot_group"].shape[0]
    lo, hi = params["pair_lo"], params["pair_hi"]
    return jax.vmap(lambda a, b: _bt_newton(a, b, lo, hi, n, config))(w, y)  # [batch, P]


def ratings(params: Params, inputs: dict[str, Any], config: SWRankingConfig) -> jax.Array:
    """Per-prompt Elo ratings ``[batch, P]`` of the BT players (column ``i`` is the model, or
    tier, ``params["slot_group"][i]``), mean 1000 over the players with any weighted battle (the
    reference pins llama-2-70b-chat to 1082 instead; only differences matter).

    Example:
        >>> cfg = SWRankingConfig(models=("a", "b"), text_dim=4)
        >>> ratings(init(None, cfg), {"embedding": np.ones((2, 4))}, cfg).shape
        (2, 0)
    """
    emb = jnp.asarray(inputs["embedding"])
    if params["row_prompt"].shape[0] == 0:
        return jnp.full((emb.shape[0], params["slot_group"].shape[0]), ELO_INIT, jnp.float32)
    beta = _ratings_natural(params, emb, config)
    return beta * (ELO_SCALE / math.log(ELO_BASE)) + ELO_INIT


def win_rate(
    params: Params, inputs: dict[str, Any], strong: Any, weak: Any, config: SWRankingConfig
) -> jax.Array:
    """``[batch]`` P(strong beats weak) from the per-prompt weighted BT fit; ``strong``/``weak``
    index ``config.models`` (scalars or ``[batch]`` arrays). 0.5 for two models of one tier, or
    when either model has no stored battle.

    Example:
        >>> cfg = SWRankingConfig(models=("a", "b"), text_dim=4)
        >>> win_rate(init(None, cfg), {"embedding": np.ones((3, 4))}, 0, 1, cfg).tolist()
        [0.5, 0.5, 0.5]
    """
    check_pair(strong, weak, len(config.models), "sw_ranking")
    emb = jnp.asarray(inputs["embedding"])
    if params["row_prompt"].shape[0] == 0:
        return jnp.full((emb.shape[0],), 0.5, jnp.float32)
    beta = _ratings_natural(params, emb, config)  # [batch, P]
    player = jnp.asarray(params["player"])
    n = emb.shape[0]
    ps = player[jnp.broadcast_to(jnp.asarray(strong), (n,))]
    pw = player[jnp.broadcast_to(jnp.asarray(weak), (n,))]
    rows = jnp.arange(n)
    diff = beta[rows, jnp.maximum(ps, 0)] - beta[rows, jnp.maximum(pw, 0)]
    return jnp.where((ps < 0) | (pw < 0), 0.5, jax.nn.sigmoid(diff))


def model_strengths(
    params: Params, inputs: dict[str, Any], model_ids: Any, config: SWRankingConfig
) -> jax.Array:
    """The architecture's ``model_scores``: ``[batch, m]`` per-prompt Bradley-Terry log strengths
    (natural units, ``win_rate = sigmoid(beta_s - beta_w)``) of the models ``model_ids`` (``[m]``
    indices into ``config.models``). A model with no stored battle gets 0, the mean strength of
    the players seen, as :func:`win_rate` gives it 0.5 against anyone; models of one tier share
    their tier's strength.

    Example:
        >>> cfg = SWRankingConfig(models=("a", "b", "c"), text_dim=4)
        >>> model_strengths(init(None, cfg), {"embedding": np.ones((2, 4))}, np.arange(3), cfg).tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    emb = jnp.asarray(inputs["embedding"])
    ids = jnp.asarray(model_ids, jnp.int32)
    if params["row_prompt"].shape[0] == 0:
        return jnp.zeros((emb.shape[0], ids.shape[0]), jnp.float32)
    beta = _ratings_natural(params, emb, config)  # [batch, P]
    player = jnp.asarray(params["player"])[ids]  # [m]
    picked = jnp.take(beta, jnp.maximum(player, 0), axis=1)
    return jnp.where(player[None, :] < 0, 0.0, picked)


def loss(
    params: Params, batch: dict[str, jax.Array], rng: jax.Array, config: SWRankingConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted BCE of the router's win rates on held-out battles (an evaluation number: the
    router is built by :func:`fit`; a battle whose prompt is in the database sees itself with
    similarity 1, so score held-out battles).

    Example:
        >>> cfg = SWRankingConfig(models=("a", "b"), text_dim=4)
        >>> b = {"embedding": jnp.ones((1, 4)), "model_a": jnp.array([0]),
        ...      "model_b": jnp.array([1]), "label": jnp.array([1.0])}
        >>> round(float(loss(init(None, cfg), b, None, cfg)[0]), 4)
        0.6931
    """
    # A local import: routing runs only the forward pass, and optax is slow to import (every
    # route command would pay for it).
    import optax

    del rng
    p = win_rate(params, batch, batch["model_a"], batch["model_b"], config)
    p = jnp.clip(p, 1e-6, 1 - 1e-6)
    label = batch["label"].astype(jnp.float32)
    weight = batch.get("weight", jnp.ones_like(label)).astype(jnp.float32)
    logits = jnp.log(p) - jnp.log1p(-p)
    per_example = optax.sigmoid_binary_cross_entropy(logits, label)
    value = (weight * per_example).sum() / jnp.maximum(weight.sum(), 1e-12)
    return value, {"loss": value}


ARCHITECTURE = Architecture(
    name="sw_ranking",
    config_cls=SWRankingConfig,
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
    fit=fit,
    # The battle database is data, not trained weights: replicated.
    partition_rules=(),
    description="Similarity-weighted Bradley-Terry over a stored battle database (RouteLLM "
    "sw_ranking), one batched Newton solve per batch of prompts.",
)
