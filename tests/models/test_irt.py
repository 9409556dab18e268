"""irt router: recovers abilities from outcomes, transfers to a pair never seen in battles."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from routellm_jax.data.records import (
    Comparison,
    ComparisonTable,
    Outcome,
    OutcomeTable,
    TrainingData,
)
from routellm_jax.models import irt
from routellm_jax.models.registry import get_architecture

D = 16
MODELS = tuple(f"m{i}" for i in range(6))
# True abilities on (skill 0, skill 1): m0/m2 are good at skill 0, m1/m3 at skill 1.
ABILITY = np.array([[2.0, -1.0], [-1.0, 2.0], [1.5, -0.5], [-0.5, 1.5], [0.0, 0.0], [1.0, 1.0]])


def _synthetic(tmp_path, n_per_cluster=100, seed=0):
    """Prompts of cluster c need skill c; each prompt has a difficulty visible in its embedding.
    Every model has 0/1 outcomes on every training prompt; battles exist only for m0 vs m1."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, D))
    difficulty_dir = rng.normal(size=D)
    prompts, vectors, outcomes, battles, test = [], [], [], [], []
    for cluster in (0, 1):
        for i in range(n_per_cluster + 20):
            difficulty = rng.uniform(-1, 1)
            prompt = f"c{cluster}-{i}"
            vectors.append(
                centres[cluster] + 0.5 * difficulty * difficulty_dir + 0.1 * rng.normal(size=D)
            )
            prompts.append(prompt)
            if i >= n_per_cluster:
                test.append((prompt, cluster))
                continue
            p = 1 / (1 + np.exp(-(2 * ABILITY[:, cluster] - 2 * difficulty)))
            for m, name in enumerate(MODELS):
                outcomes.append(Outcome(prompt, name, float(rng.random() < p[m])))
            a_wins = rng.random() < 1 / (
                1 + np.exp(-2 * (ABILITY[0, cluster] - ABILITY[1, cluster]))
            )
            battles.append(Comparison(prompt, "m0", "m1", "a" if a_wins else "b"))
    path = tmp_path / "emb.npz"
    np.savez(path, prompts=np.array(prompts), embeddings=np.array(vectors, np.float32))
    data = TrainingData.of(
        ComparisonTable.from_records(battles), OutcomeTable.from_records(outcomes)
    )
    return data, f"precomputed:{path}", test


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data, spec, test = _synthetic(tmp_path_factory.mktemp("irt"))
    config = irt.IRTConfig(
        models=MODELS, featurizer=spec, text_dim=D, latent_dim=4, hidden_dim=32, alpha=0.05
    )
    featurizer = irt.make_featurizer(config)
    ex = irt.examples_from_records(data, featurizer, config)
    n = len(ex["label"])
    assert n == 200 + 200  # one outcome row per prompt + one row per battle
    params = irt.init(jax.random.key(0), config)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, rng):
        (value, metrics), grads = jax.value_and_grad(irt.loss, has_aux=True)(
            params, batch, rng, config
        )
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, metrics

    key = jax.random.key(1)
    for _ in range(400):
        key, k_batch, k_noise = jax.random.split(key, 3)
        idx = np.asarray(jax.random.randint(k_batch, (64,), 0, n))
        params, state, metrics = step(params, state, {k: v[idx] for k, v in ex.items()}, k_noise)
    return config, featurizer, params, test, metrics


def test_recovers_ability_order(trained):
    config, featurizer, params, test, metrics = trained
    assert float(metrics["outcome_accuracy"]) > 0.6
    prompts = [p for p, _ in test]
    clusters = np.array([c for _, c in test])
    probs = np.asarray(
        irt.score_models(params, {"embedding": featurizer.embed(prompts)}, range(6), config)
    )
    assert probs.shape == (len(test), 6) and np.all((probs > 0) & (probs < 1))
    for c in (0, 1):
        mean_p = probs[clusters == c].mean(axis=0)
        true_rank = np.argsort(np.argsort(ABILITY[:, c]))
        ours_rank = np.argsort(np.argsort(mean_p))
        # Spearman correlation of predicted vs true ability on held-out prompts.
        rho = np.corrcoef(true_rank, ours_rank)[0, 1]
        assert rho > 0.85, (c, mean_p)


@pytest.mark.parametrize("mode", ["gain", "bt"])
def test_transfers_to_pair_never_in_battles(trained, mode):
    config, featurizer, params, test, _ = trained
    config = irt.IRTConfig(**{**config.__dict__, "win_rate_mode": mode})
    prompts = [p for p, _ in test]
    clusters = np.array([c for _, c in test])
    inputs = irt.prompt_inputs(prompts, featurizer, config)
    # m2 vs m3 never met in a battle: m2 should be preferred on cluster 0, m3 on cluster 1.
    p = np.asarray(irt.win_rate(params, inputs, 2, 3, config))
    assert p.shape == (len(test),) and np.all((p >= 0) & (p <= 1))
    assert np.mean(p[clusters == 0] > 0.5) > 0.9 and np.mean(p[clusters == 1] < 0.5) > 0.9
    q = np.asarray(irt.win_rate(params, inputs, 3, 2, config))
    np.testing.assert_allclose(p + q, 1.0, atol=1e-6)


def test_gain_is_expected_quality_gain(trained):
    config, featurizer, params, test, _ = trained
    inputs = irt.prompt_inputs([p for p, _ in test[:5]], featurizer, config)
    probs = np.asarray(irt.score_models(params, inputs, [5, 4], config))
    p = np.asarray(irt.win_rate(params, inputs, 5, 4, config))
    s, w = probs[:, 0], probs[:, 1]
    # P(strong right, weak wrong) + half of P(same result), answers independent given q.
    np.testing.assert_allclose(p, s * (1 - w) + 0.5 * (s * w + (1 - s) * (1 - w)), atol=1e-6)


def test_cheapest_adequate():
    probs = np.array([[0.95, 0.8, 0.4], [0.9, 0.5, 0.2], [0.3, 0.2, 0.1]])
    prices = np.array([30.0, 1.0, 0.1])
    assert irt.cheapest_adequate(probs, prices, 0.75).tolist() == [1, 0, 0]
    assert irt.cheapest_adequate(probs, prices, 0.0).tolist() == [2, 2, 2]
    with pytest.raises(ValueError):
        irt.cheapest_adequate(probs, prices[:2], 0.5)


def test_outcome_targets_grades_and_failures():
    table = OutcomeTable.from_records(
        [
            Outcome("q", "m1", 10.0, kind="grade"),
            Outcome("q", "m0", 5.5, kind="grade"),
            Outcome("q", "m2", -1.0, kind="grade"),  # judge failure: skipped
            Outcome("q", "m0", 1.0),  # second observation of (q, m0): averaged
            Outcome("q", "other", 1.0),  # not in the model table: skipped
        ]
    )
    config = irt.IRTConfig(models=MODELS[:3])
    prompts, target, weight = irt.outcome_targets(TrainingData.of(outcomes=table), config)
    assert prompts == ["q"]
    np.testing.assert_allclose(target, [[0.75, 1.0, 0.0]])
    np.testing.assert_allclose(weight, [[2.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="win_rate_mode"):
        irt.IRTConfig(win_rate_mode="max")
    with pytest.raises(IndexError):
        irt.score_models(
            irt.init(jax.random.key(0), irt.IRTConfig(models=MODELS, text_dim=4)),
            {"embedding": jnp.ones((1, 4))},
            [6],
            irt.IRTConfig(models=MODELS, text_dim=4),
        )
    assert get_architecture("irt") is irt.ARCHITECTURE


def test_trains_and_routes_on_a_shape_featurizer():
    """irt takes a '<base>+shape' featurizer by spec like any other (text_dim = base + shape)."""
    from routellm_jax.models.featurizers import featurizer_dim

    spec = "hashing:16+shape"
    cfg = irt.IRTConfig(models=("a", "b"), featurizer=spec, text_dim=featurizer_dim(spec))
    outcomes = OutcomeTable.from_records(
        [Outcome(p, "a", 1.0) for p in ("x y", "long " * 30)]
        + [Outcome("x y", "b", 1.0), Outcome("long " * 30, "b", 0.0)]
    )
    feat = irt.make_featurizer(cfg)
    ex = irt.examples_from_records(TrainingData.of(outcomes=outcomes), feat, cfg)
    assert ex["embedding"].shape == (2, cfg.text_dim)
    params = irt.init(jax.random.key(0), cfg)
    rates = irt.win_rate(params, irt.prompt_inputs(["q", "long " * 30], feat, cfg), 0, 1, cfg)
    assert rates.shape == (2,)


def _two_source_data(tmp_path, seed=0):
    """Two sources told apart by one embedding direction; within each, a prompt's difficulty lies
    along another. Source "hard" is 2 logits harder for every model (a level, not about the
    prompt's within-source difficulty)."""
    rng = np.random.default_rng(seed)
    source_dir, diff_dir = np.eye(D)[0], np.eye(D)[1]
    prompts, vectors, outcomes, truth = [], [], [], []
    for src, (sign, shift) in {"easy": (-1.0, -1.0), "hard/sub": (1.0, 1.0)}.items():
        for i in range(150):
            d = rng.uniform(-1.5, 1.5)
            prompt = f"{src}-{i}"
            prompts.append(prompt)
            vectors.append(2 * sign * source_dir + d * diff_dir + 0.05 * rng.normal(size=D))
            truth.append((src, d))
            for m, ability in enumerate((1.0, 0.0, -1.0)):
                p = 1 / (1 + np.exp(-(ability - d - shift) * 2))
                outcomes.append(Outcome(prompt, f"m{m}", float(rng.random() < p), source=src))
    path = tmp_path / "emb2.npz"
    np.savez(path, prompts=np.array(prompts), embeddings=np.array(vectors, np.float32))
    data = TrainingData.of(outcomes=OutcomeTable.from_records(outcomes))
    return data, f"precomputed:{path}", prompts, truth


def _fit_two_sources(data, spec, effect):
    groups = ("easy", "hard") if effect != "none" else ()
    cfg = irt.IRTConfig(
        models=("m0", "m1", "m2"),
        featurizer=spec,
        text_dim=D,
        latent_dim=2,
        hidden_dim=16,
        alpha=0.0,
        source_effect=effect,
        source_groups=groups,
    )
    feat, ex, params, _ = _train(cfg, data)
    return cfg, feat, ex, params


def _train(cfg, data, steps=600):
    """Adam on random batches of 128: (featurizer, examples, params, last metrics)."""
    feat = irt.make_featurizer(cfg)
    ex = irt.examples_from_records(data, feat, cfg)
    params = irt.init(jax.random.key(0), cfg)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, rng):
        grads, metrics = jax.grad(irt.loss, has_aux=True)(params, batch, rng, cfg)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, metrics

    key = jax.random.key(1)
    n = len(ex["label"])
    metrics = {}
    for _ in range(steps):
        key, kb, kn = jax.random.split(key, 3)
        idx = np.asarray(jax.random.randint(kb, (128,), 0, n))
        params, state, metrics = step(params, state, {k: v[idx] for k, v in ex.items()}, kn)
    return feat, ex, params, metrics


def test_source_effect_moves_the_level_out_of_the_prompt_score(tmp_path):
    """With source_effect, the 2-logit level gap between sources goes to the (training-only)
    source term: at inference the two sources' prompts score alike on average, and the
    within-source difficulty is still ranked. Without it, the item score carries the gap."""
    data, spec, prompts, truth = _two_source_data(tmp_path)
    src = np.array([s for s, _ in truth])
    d = np.array([x for _, x in truth])
    gaps = {}
    for effect in ("none", "difficulty", "model"):
        cfg, feat, ex, params = _fit_two_sources(data, spec, effect)
        s = np.asarray(irt.latent_scores(params, jnp.asarray(feat.embed(prompts)), cfg))
        mean_s = s.mean(axis=1)
        gaps[effect] = float(mean_s[src == "easy"].mean() - mean_s[src == "hard/sub"].mean())
        for name in ("easy", "hard/sub"):  # harder prompts score lower within each source
            rho = np.corrcoef(np.argsort(np.argsort(-d[src == name])), mean_s[src == name])[0, 1]
            assert rho > 0.8, (effect, name, rho)
        if effect == "none":
            assert "source" not in ex and "source_effect" not in params
            continue
        assert sorted(set(ex["source"].tolist())) == [0, 1]  # "hard/sub" matches group "hard"
        term = np.asarray(params["source_effect"])
        level = term[:, 0] if effect == "difficulty" else -term.mean(axis=1)
        assert level[1] - level[0] > 1.5, term  # the hard source's term took the level gap
    assert gaps["none"] > 2.5, gaps  # true gap: 2 logits x 2 (the slope)
    assert abs(gaps["difficulty"]) < 1.0 and abs(gaps["model"]) < 1.0, gaps


def test_source_effect_config_errors():
    with pytest.raises(ValueError, match="source_groups"):
        irt.IRTConfig(source_effect="difficulty")
    with pytest.raises(ValueError, match="source_effect"):
        irt.IRTConfig(source_effect="offset", source_groups=("a",))
    cfg = irt.IRTConfig(models=("a", "b"), text_dim=4, source_effect="model", source_groups=("x",))
    batch = {
        "embedding": jnp.ones((1, 4)),
        "outcome": jnp.zeros((1, 2)),
        "outcome_weight": jnp.ones((1, 2)),
        "model_a": jnp.zeros(1, int),
        "model_b": jnp.zeros(1, int),
        "label": jnp.zeros(1),
        "battle_weight": jnp.zeros(1),
    }
    with pytest.raises(KeyError, match="source"):
        irt.loss(irt.init(jax.random.key(0), cfg), batch, jax.random.key(1), cfg)


def _outcome_batch(rows: int = 8, dim: int = 6) -> dict[str, jax.Array]:
    """Random embeddings with 0/1 outcomes for two models, no battles."""
    rng = np.random.default_rng(0)
    return {
        "embedding": jnp.asarray(rng.normal(size=(rows, dim)), jnp.float32),
        "outcome": jnp.asarray(rng.integers(0, 2, (rows, 2)), jnp.float32),
        "outcome_weight": jnp.ones((rows, 2)),
        "model_a": jnp.zeros(rows, int),
        "model_b": jnp.ones(rows, int),
        "label": jnp.zeros(rows),
        "battle_weight": jnp.zeros(rows),
    }


def test_noise_dims_keeps_the_appended_features_clean():
    """Training noise reaches only the first ``noise_dims`` features: none of them -> the
    noise-free loss; the first 4 of 6 -> noisy, and different from noise on all 6."""
    base = dict(models=("a", "b"), text_dim=6, hidden_dim=0, alpha=3.0)
    batch = _outcome_batch()

    def loss_of(**kw):
        cfg = irt.IRTConfig(**{**base, **kw})
        return float(irt.loss(irt.init(jax.random.key(0), cfg), batch, jax.random.key(1), cfg)[0])

    clean = loss_of(alpha=0.0)
    assert loss_of(noise_dims=0) == pytest.approx(clean, rel=1e-6)
    assert loss_of(noise_dims=4) != pytest.approx(clean, rel=1e-3)
    assert loss_of() != pytest.approx(loss_of(noise_dims=4), rel=1e-3)
    with pytest.raises(ValueError, match="noise_dims"):
        irt.IRTConfig(text_dim=6, noise_dims=7)


def _kinds_with_length(tmp_path, seed=0):
    """Two kinds of prompt told apart by one embedding direction, plus one appended feature, a log
    length: kind "long" sits 4 units above kind "short", and within a kind a longer prompt is
    harder. Across kinds the long one is the easier (a level that is not about length)."""
    rng = np.random.default_rng(seed)
    prompts, vectors, outcomes, truth = [], [], [], []
    for kind, (sign, level) in {"long": (1.0, -1.0), "short": (-1.0, 1.0)}.items():
        for i in range(150):
            u = rng.uniform(-1, 1)
            prompt = f"{kind}-{i}"
            prompts.append(prompt)
            text = 2 * sign * np.eye(D)[0] + 0.05 * rng.normal(size=D)
            vectors.append(np.concatenate([text, [5.0 + 2.0 * sign + u]]))
            truth.append((kind, u))
            for m, ability in enumerate((1.0, 0.0, -1.0)):
                p = 1 / (1 + np.exp(-(ability - 1.5 * u - level) * 2))
                outcomes.append(Outcome(prompt, f"m{m}", float(rng.random() < p), source=kind))
    path = tmp_path / "emb3.npz"
    np.savez(path, prompts=np.array(prompts), embeddings=np.array(vectors, np.float32))
    data = TrainingData.of(outcomes=OutcomeTable.from_records(outcomes))
    return data, f"precomputed:{path}", prompts, truth


def test_residual_dims_give_the_length_for_its_kind(tmp_path):
    """The appended length reaches the MLP as its residual against a fit from the other features:
    after training, that residual is centred within each kind and small against the length's
    spread, and within a kind longer (harder) prompts score lower. Only the auxiliary loss
    trains the fit: the data loss has no gradient into it."""
    data, spec, prompts, truth = _kinds_with_length(tmp_path)
    cfg = irt.IRTConfig(
        models=("m0", "m1", "m2"),
        featurizer=spec,
        text_dim=D + 1,
        latent_dim=2,
        hidden_dim=16,
        alpha=0.0,
        residual_dims=1,
    )
    feat, ex, params, metrics = _train(cfg, data)
    assert params["residual"]["kernel"].shape == (D, 1)
    emb = np.asarray(feat.embed(prompts))
    fit = irt.RESIDUAL_FIT_SCALE * (
        emb[:, :D] @ np.asarray(params["residual"]["kernel"])
        + np.asarray(params["residual"]["bias"])
    )
    residual = emb[:, D] - fit[:, 0]
    kind = np.array([k for k, _ in truth])
    u = np.array([x for _, x in truth])
    assert float(metrics["residual_mse"]) < 0.1 * emb[:, D].var()
    for name in ("long", "short"):
        assert abs(residual[kind == name].mean()) < 0.15, (name, residual[kind == name].mean())
        s = np.asarray(irt.latent_scores(params, jnp.asarray(emb), cfg)).mean(axis=1)
        rho = np.corrcoef(u[kind == name], s[kind == name])[0, 1]
        assert rho < -0.8, (name, rho)
    no_fit = dataclasses.replace(cfg, residual_weight=0.0)
    grads, _ = jax.grad(irt.loss, has_aux=True)(params, ex, jax.random.key(2), no_fit)
    assert not np.any(np.asarray(grads["residual"]["kernel"]))
    assert np.any(np.asarray(grads["hidden"]["kernel"]))
    with pytest.raises(ValueError, match="residual_dims"):
        irt.IRTConfig(text_dim=4, residual_dims=4)


def test_residual_fit_sees_the_clean_features():
    """Training noise goes on the MLP's input after the residual: the fit's error is the clean
    one whatever the noise draw, while the data loss does change with the draw."""
    cfg = irt.IRTConfig(models=("a", "b"), text_dim=6, hidden_dim=4, alpha=3.0, residual_dims=2)
    batch = _outcome_batch()
    params = irt.init(jax.random.key(0), cfg)
    params["residual"]["bias"] = jnp.array([0.3, -0.2])
    runs = [irt.loss(params, batch, jax.random.key(k), cfg)[1] for k in (1, 2)]
    clean = irt.loss(params, batch, jax.random.key(1), dataclasses.replace(cfg, alpha=0.0))[1]
    assert float(runs[0]["residual_mse"]) == float(runs[1]["residual_mse"])
    assert float(runs[0]["residual_mse"]) == float(clean["residual_mse"])
    assert float(runs[0]["outcome_loss"]) != float(runs[1]["outcome_loss"])
