"""N-model routing through the API: per-model quality for model-aware architectures (irt, mf,
sw_ranking), the policy choice on it, unknown names, and pair-only architectures refusing N > 2."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax import api
from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData
from routellm_jax.eval.policy import ModelPrice, Policy, choose, cost_table, estimate_input_tokens
from routellm_jax.models import irt, mf, registry
from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK

MODELS = (PAPER_STRONG, PAPER_WEAK, "llama-2-7b-chat", "claude-2.1")
PROMPTS = [f"question {i}: " + " ".join(["word"] * (i % 11)) + f" topic{i % 5}" for i in range(40)]


def _router(arch_name: str, **config) -> api.Router:
    arch = registry.get_architecture(arch_name)
    cfg = arch.make_config(models=MODELS, featurizer="hashing:16", text_dim=16, **config)
    if arch.fit is not None:
        battles = [
            Comparison(p, MODELS[i % 4], MODELS[(i + 1 + i // 4) % 4], "a" if i % 3 else "b")
            for i, p in enumerate(PROMPTS)
        ]
        data = TrainingData.of(ComparisonTable.from_records(battles))
        params = arch.fit(data, arch.make_featurizer(cfg), cfg, None)
    else:
        params = arch.init(jax.random.key(1), cfg)
    return api.Router.from_params(arch_name, cfg, params, name=f"{arch_name}-test", max_batch=16)


@pytest.fixture(scope="module")
def irt_router() -> api.Router:
    return _router("irt", hidden_dim=8, latent_dim=4)


def test_irt_quality_is_probability_of_success(irt_router) -> None:
    chosen = [MODELS[3], MODELS[0], MODELS[2]]
    quality = irt_router.model_quality(PROMPTS, chosen)
    emb = irt_router.featurizer.embed(PROMPTS)
    logits = irt.latent_scores(irt_router.params, jnp.asarray(emb), irt_router.config)
    expected = jax.nn.sigmoid(logits)[:, jnp.array([3, 0, 2])]
    assert quality.shape == (len(PROMPTS), 3)
    np.testing.assert_allclose(quality, np.asarray(expected), atol=1e-6)
    # The gain-mode win rate of a pair is 0.5 + (p_strong - p_weak) / 2 of the same scores.
    rates = irt_router.win_rate(PROMPTS, MODELS[3], MODELS[0])
    np.testing.assert_allclose(rates, 0.5 + 0.5 * (quality[:, 0] - quality[:, 1]), atol=1e-6)


def test_scoring_runs_in_the_same_executor_without_recompiling_win_rates(irt_router) -> None:
    irt_router.win_rate(PROMPTS)
    irt_router.model_quality(PROMPTS, MODELS[:3])
    compiles = irt_router.stats["compiles"]
    irt_router.win_rate(PROMPTS)
    irt_router.model_quality(PROMPTS, [MODELS[1], MODELS[2], MODELS[3]])  # other ids, same m
    assert irt_router.stats["compiles"] == compiles


@pytest.mark.parametrize("arch_name", ["mf", "sw_ranking"])
def test_strength_quality_is_win_rate_against_the_other_candidates(arch_name) -> None:
    router = _router(arch_name, **({"dim": 8} if arch_name == "mf" else {}))
    pair = router.model_quality(PROMPTS, [MODELS[0], MODELS[2]])
    np.testing.assert_allclose(
        pair[:, 0], router.win_rate(PROMPTS, MODELS[0], MODELS[2]), atol=1e-5
    )
    np.testing.assert_allclose(pair.sum(axis=1), 1.0, atol=1e-6)
    three = router.model_quality(PROMPTS, MODELS[:3])
    wins = {
        (a, b): router.win_rate(PROMPTS, MODELS[a], MODELS[b]).astype(np.float64)
        for a in range(3)
        for b in range(3)
        if a != b
    }
    for k in range(3):
        expected = np.mean([wins[(k, j)] for j in range(3) if j != k], axis=0)
        np.testing.assert_allclose(three[:, k], expected, atol=1e-5)
    if arch_name == "mf":
        emb = jnp.asarray(router.featurizer.embed(PROMPTS))
        direct = mf.model_scores(router.params, emb, jnp.arange(3), router.config)
        assert np.asarray(direct).shape == (len(PROMPTS), 3)


def test_choose_models_applies_the_policy_to_the_quality_table(irt_router) -> None:
    prices = {
        MODELS[0]: ModelPrice(input_per_1k=10.0, output_per_1k=30.0),
        MODELS[1]: ModelPrice(input_per_1k=0.6, output_per_1k=0.6),
        MODELS[3]: ModelPrice(per_call=0.002),
    }
    candidates = [MODELS[0], MODELS[1], MODELS[3]]
    quality = irt_router.model_quality(PROMPTS, candidates)
    cost = cost_table([prices[m] for m in candidates], estimate_input_tokens(PROMPTS), 264)
    for policy in (Policy("tradeoff", 0.2), Policy("quality_floor", 0.5), Policy("budget", 0.005)):
        decisions = irt_router.choose_models(PROMPTS, candidates, prices, policy)
        expected = choose(quality, cost, policy)
        assert [d["model"] for d in decisions] == [candidates[j] for j in expected.model_index]
        np.testing.assert_allclose([d["cost"] for d in decisions], expected.cost)
        np.testing.assert_allclose([d["quality"] for d in decisions], expected.quality)
        assert decisions[0]["policy"] == policy.describe()
        assert set(decisions[0]["candidates"]) == set(candidates)
    with pytest.raises(
        api.RouterError, match=r"no price for candidate model\(s\) \['claude-2.1'\]"
    ):
        partial = {m: prices[m] for m in MODELS[:2]}
        irt_router.choose_models(PROMPTS, candidates, partial, Policy("budget", 1.0))


def test_unknown_model_names_it_and_close_matches(irt_router) -> None:
    with pytest.raises(
        api.RouterError, match=r"unknown model 'claude-2\.2'; closest: \['claude-2\.1'"
    ):
        irt_router.model_quality(PROMPTS, [MODELS[0], "claude-2.2"])
    with pytest.raises(api.RouterError, match="repeat"):
        irt_router.model_quality(PROMPTS, [MODELS[0], MODELS[0]])
    with pytest.raises(api.RouterError, match="at least two"):
        irt_router.model_quality(PROMPTS, [MODELS[0]])


def test_pair_only_architecture_refuses_more_than_two_models() -> None:
    arch = registry.get_architecture("random")
    assert arch.model_scores is None
    cfg = arch.make_config(models=MODELS)
    router = api.Router.from_params("random", cfg, {}, name="random-test")
    with pytest.raises(api.RouterError, match="scores one strong/weak pair only and cannot rank 3"):
        router.model_quality(PROMPTS, MODELS[:3])
    pair = router.model_quality(PROMPTS, [MODELS[1], MODELS[0]])
    np.testing.assert_allclose(pair[:, 0], router.win_rate(PROMPTS, MODELS[1], MODELS[0]))
    np.testing.assert_allclose(pair.sum(axis=1), 1.0)


def test_model_scores_need_a_kind() -> None:
    arch = registry.get_architecture("mf")
    with pytest.raises(ValueError, match="model_score_kind"):
        registry.Architecture(**{**arch.__dict__, "model_score_kind": ""})
