"""sw_ranking: routes by similar battles, and the batched JAX Bradley-Terry fit equals a direct
scipy fit of the reference's weighted logistic regression."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.optimize import minimize

from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData
from routellm_jax.models import sw_ranking as sw
from routellm_jax.models.registry import get_architecture

D = 16


def _write_embeddings(path, prompts, vectors):
    np.savez(path, prompts=np.array(prompts), embeddings=np.asarray(vectors, np.float32))
    return f"precomputed:{path}"


@pytest.fixture(scope="module")
def random_db(tmp_path_factory):
    """400 weighted battles (with ties) among 4 models over 60 random prompts."""
    rng = np.random.default_rng(0)
    models = ("m0", "m1", "m2", "m3")
    prompts = [f"p{i}" for i in range(60)]
    emb = rng.normal(size=(60, D)).astype(np.float32)
    rows = []
    for _ in range(400):
        u = int(rng.integers(60))
        a, b = rng.choice(4, 2, replace=False)
        outcome = str(rng.choice(["a", "b", "tie"], p=[0.45, 0.4, 0.15]))
        rows.append(
            Comparison(prompts[u], models[a], models[b], outcome, weight=rng.uniform(0.5, 1.5))
        )
    spec = _write_embeddings(tmp_path_factory.mktemp("sw") / "emb.npz", prompts, emb)
    return models, spec, emb, rows


def _reference_elo(rows, models, emb, query):
    """The reference compute_elo_mle_with_tie with similarity weights, written directly:
    duplicated battles, a tie = one win each, features +-ln(10), no intercept, no penalty."""
    n = len(rows)
    e = np.stack([emb[int(r.prompt[1:])] for r in rows])
    a = np.array([models.index(r.model_a) for r in rows])
    b = np.array([models.index(r.model_b) for r in rows])
    outcome = np.array([r.outcome for r in rows])
    sims = e @ query / (np.linalg.norm(e, axis=1) * np.linalg.norm(query))
    weight = 10 * 10 ** (sims / sims.max()) * np.array([r.weight for r in rows])
    x = np.zeros((2 * n, len(models)))
    x[np.arange(n), a] = np.log(10)
    x[np.arange(n), b] = -np.log(10)
    x[n:] = x[:n]
    y = np.zeros(2 * n)
    y[:n][(outcome == "a") | (outcome == "tie")] = 1.0
    y[n:][outcome == "a"] = 1.0
    w = np.concatenate([weight, weight])

    def nll(c):
        z = x @ c
        return np.sum(w * (np.logaddexp(0, z) - y * z))

    def grad(c):
        z = x @ c
        return x.T @ (w * (1 / (1 + np.exp(-z)) - y))

    res = minimize(nll, np.zeros(len(models)), jac=grad, method="BFGS", options={"gtol": 1e-10})
    elo = 400 * res.x
    return elo - elo.mean() + 1000


def test_batched_bt_matches_scipy_reference(random_db):
    models, spec, emb, rows = random_db
    # l2 = 0: the reference fit is unpenalised; a small block size exercises the blocked scan.
    config = sw.SWRankingConfig(models=models, featurizer=spec, text_dim=D, l2=0.0, block_size=64)
    params = sw.fit(
        TrainingData.of(ComparisonTable.from_records(rows)), sw.make_featurizer(config), config
    )
    assert len(params["row_weight"]) < len(rows)  # battles aggregated per (prompt, pair)
    queries = np.random.default_rng(1).normal(size=(3, D)).astype(np.float32)
    ours = np.asarray(sw.ratings(params, {"embedding": queries}, config))
    for i in range(3):
        ref = _reference_elo(rows, models, emb, queries[i])
        np.testing.assert_allclose(ours[i], ref, atol=2e-3)  # Elo points
        p_ref = 1 / (1 + 10 ** ((ref[1] - ref[0]) / 400))
        p = float(sw.win_rate(params, {"embedding": queries[i : i + 1]}, 0, 1, config)[0])
        assert abs(p - p_ref) < 1e-4
    # Batch composition does not change a prompt's answer.
    alone = np.asarray(sw.ratings(params, {"embedding": queries[1:2]}, config))
    np.testing.assert_allclose(alone[0], ours[1], atol=1e-3)


@pytest.fixture(scope="module")
def cluster_router(tmp_path_factory):
    """model A beats B on prompts near cluster 0, loses near cluster 1; C beats both always;
    D has no battles."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(2, D)) * 2
    prompts, vectors, rows = [], [], []
    for cluster in (0, 1):
        for i in range(40):
            prompt = f"c{cluster}-{i}"
            prompts.append(prompt)
            vectors.append(centres[cluster] + 0.3 * rng.normal(size=D))
            for _ in range(3):
                a_wins = rng.random() < (0.9 if cluster == 0 else 0.1)
                rows.append(Comparison(prompt, "A", "B", "a" if a_wins else "b"))
            rows.append(Comparison(prompt, "C", "A", "a"))
            rows.append(Comparison(prompt, "B", "C", "b"))
            rows.append(Comparison(prompt, "A", "A", "a"))  # self-battle: ignored
    queries = [centres[c] + 0.3 * rng.normal(size=D) for c in (0, 1) for _ in range(10)]
    query_prompts = [f"query-{i}" for i in range(20)]
    spec = _write_embeddings(
        tmp_path_factory.mktemp("swc") / "emb.npz", prompts + query_prompts, vectors + queries
    )
    config = sw.SWRankingConfig(models=("A", "B", "C", "D"), featurizer=spec, text_dim=D)
    featurizer = sw.make_featurizer(config)
    data = TrainingData.of(ComparisonTable.from_records(rows))
    params = sw.fit(data, featurizer, config)
    return config, featurizer, params, query_prompts, data


def test_routes_by_similar_battles(cluster_router):
    config, featurizer, params, queries, _ = cluster_router
    inputs = sw.prompt_inputs(queries, featurizer, config)
    p = np.asarray(sw.win_rate(params, inputs, 0, 1, config))  # P(A beats B)
    assert p.shape == (20,) and np.all((p > 0) & (p < 1))
    assert np.all(p[:10] > 0.6) and np.all(p[10:] < 0.4)
    q = np.asarray(sw.win_rate(params, inputs, 1, 0, config))
    np.testing.assert_allclose(p + q, 1.0, atol=1e-5)
    # C beats everybody everywhere (gamma ** (1 + S) never zeroes a battle out).
    assert np.all(np.asarray(sw.win_rate(params, inputs, 2, 0, config)) > 0.7)
    # Strong/weak as [batch] arrays.
    strong = np.array([0, 1] * 10)
    r = np.asarray(sw.win_rate(params, inputs, strong, 1 - strong, config))
    np.testing.assert_allclose(r, np.where(strong == 0, p, q), atol=1e-5)
    # Larger gamma = more local: sharper routing.
    sharp = sw.SWRankingConfig(**{**config.__dict__, "gamma": 1000.0})
    p_sharp = np.asarray(sw.win_rate(params, inputs, 0, 1, sharp))
    assert p_sharp[:10].mean() > p[:10].mean() and p_sharp[10:].mean() < p[10:].mean()


def test_tiers_pool_models(cluster_router):
    config, featurizer, params, queries, data = cluster_router
    # Over all battles C is best and A, B are even: two Elo tiers = {C}, {A, B} (the reference
    # fits BT over tiers). A vs B is then 0.5, C's tier still beats A's.
    tiered = sw.SWRankingConfig(**{**config.__dict__, "num_tiers": 2})
    tier_params = sw.fit(data, featurizer, tiered)
    assert tier_params["player"].tolist() == [1, 1, 0, -1]  # D: no battles
    inputs = sw.prompt_inputs(queries, featurizer, config)
    # The model -> tier map lives in the params: the win rate needs no tier config.
    np.testing.assert_allclose(sw.win_rate(tier_params, inputs, 0, 1, config), 0.5)
    assert np.all(np.asarray(sw.win_rate(tier_params, inputs, 2, 0, config)) > 0.7)
    explicit = sw.SWRankingConfig(**{**config.__dict__, "tiers": (1, 1, 0, 2)})
    np.testing.assert_array_equal(sw.fit(data, featurizer, explicit)["player"], [1, 1, 0, -1])
    with pytest.raises(ValueError, match="tiers"):
        sw.SWRankingConfig(models=("A", "B"), tiers=(0,))


def test_empty_database_and_bad_pairs(cluster_router):
    config, featurizer, params, queries, _ = cluster_router
    empty = sw.init(jax.random.key(0), config)
    inputs = sw.prompt_inputs(queries[:4], featurizer, config)
    np.testing.assert_allclose(sw.win_rate(empty, inputs, 0, 1, config), 0.5)
    # A model without any stored battle has no rating: 0.5 against anyone.
    np.testing.assert_allclose(sw.win_rate(params, inputs, 3, 0, config), 0.5)
    assert params["player"].tolist() == [0, 1, 2, -1]
    with pytest.raises(IndexError, match="weak index 7"):
        sw.win_rate(params, inputs, 0, 7, config)
    assert get_architecture("sw_ranking").fit is sw.fit
