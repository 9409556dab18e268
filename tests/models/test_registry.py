"""The architecture table, and every embedding router through the full contract:
init -> examples_from_records -> loss -> win_rate."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from routellm_jax.data.records import (
    Comparison,
    ComparisonTable,
    Outcome,
    OutcomeTable,
    TrainingData,
)
from routellm_jax.models import registry

MODELS = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "llama-2-70b-chat")
DIM = 32
OVERRIDES = {
    "random": {"models": MODELS, "seed": 3},
    "sw_ranking": {"models": MODELS, "featurizer": f"hashing:{DIM}", "text_dim": DIM},
    "mf": {"models": MODELS, "featurizer": f"hashing:{DIM}", "text_dim": DIM, "dim": 8},
    "irt": {
        "models": MODELS,
        "featurizer": f"hashing:{DIM}",
        "text_dim": DIM,
        "latent_dim": 4,
        "hidden_dim": 16,
    },
}


def _data() -> TrainingData:
    rng = np.random.default_rng(0)
    words = ["math", "poem", "code", "history", "proof", "story"]
    battles, outcomes = [], []
    for i in range(24):
        prompt = f"{words[i % 6]} question {i} about {words[(i * 5) % 6]}"
        a, b = rng.choice(3, 2, replace=False)
        battles.append(Comparison(prompt, MODELS[a], MODELS[b], str(rng.choice(["a", "b", "tie"]))))
        for m in MODELS:
            outcomes.append(Outcome(prompt, m, float(rng.random() < 0.5)))
    return TrainingData.of(
        ComparisonTable.from_records(battles), OutcomeTable.from_records(outcomes)
    )


def test_builtin_names_resolve():
    for name in ("random", "sw_ranking", "mf", "irt"):
        arch = registry.get_architecture(name)
        assert arch.name == name and dataclasses.is_dataclass(arch.config_cls)
        assert arch.description
    assert registry.get_architecture("sw_ranking").fit is not None
    assert registry.get_architecture("mf").fit is None


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError) as err:
        registry.get_architecture("no-such-router")
    for name in ("random", "sw_ranking", "mf", "irt"):
        assert name in str(err.value)
    with pytest.raises(KeyError, match="unknown config key"):
        registry.get_architecture("mf").make_config(nope=1)


def test_user_registration_round_trip():
    base = registry.get_architecture("random")
    mine = dataclasses.replace(base, name="my-random")
    try:
        registry.register(mine)
        assert registry.get_architecture("my-random") is mine
        assert "my-random" in registry.names()
        with pytest.raises(ValueError, match="already registered"):
            registry.register(mine)
    finally:
        registry.unregister("my-random")
    assert "my-random" not in registry.names()


@pytest.mark.parametrize("name", ["random", "sw_ranking", "mf", "irt"])
def test_full_contract(name):
    arch = registry.get_architecture(name)
    config = arch.make_config(**OVERRIDES[name])
    data = _data()
    featurizer = arch.make_featurizer(config)
    params = arch.init(jax.random.key(0), config)
    if arch.fit is not None:
        params = arch.fit(data, featurizer, config, jax.random.key(1))
    examples = arch.examples_from_records(data, featurizer, config)
    n = {len(v) for v in examples.values()}
    assert len(n) == 1 and n.pop() > 0, {k: v.shape for k, v in examples.items()}
    batch = {k: v[:8] for k, v in examples.items()}
    # Jitted, as the trainer runs it (also one compile instead of many eager ones).
    loss_fn = jax.jit(lambda p, b, k: arch.loss(p, b, k, config))
    value, metrics = loss_fn(params, batch, jax.random.key(2))
    assert np.isfinite(float(value)) and all(np.isfinite(float(v)) for v in metrics.values())
    if name in ("mf", "irt"):  # trained by gradient descent
        grad_fn = jax.jit(jax.grad(lambda p, b, k: arch.loss(p, b, k, config)[0]))
        grads = grad_fn(params, batch, jax.random.key(2))
        assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    prompts = ["prove that sqrt 2 is irrational", "write a story about a cat", "hi"]
    inputs = arch.prompt_inputs(prompts, featurizer, config)
    p = np.asarray(arch.win_rate(params, inputs, 0, 1, config))
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))
    jitted = jax.jit(lambda params, inputs: arch.win_rate(params, inputs, 0, 1, config))
    np.testing.assert_allclose(jitted(params, inputs), p, atol=1e-5)


def test_every_router_scores_real_prompts(data_dir):
    """Real records in, real prompts scored: arena-bench-v1 grades of 15 models (outcomes, and
    the battles they imply) build each router; 64 real MMLU questions are scored through the
    public calls for the paper's pair. (Untrained mf/irt: this checks the plumbing on real data,
    the experiments measure quality.)"""
    from routellm_jax.data.sources.fastchat import read_score_matrix
    from routellm_jax.data.sources.routellm_evals import read_correctness_csv

    outcomes = read_score_matrix(data_dir / "derived/arena_bench_v1_score_matrix.csv")
    data = TrainingData.of(outcomes=outcomes)
    models = tuple(outcomes.models())
    strong = models.index("gpt-4-1106-preview")
    weak = models.index("mixtral-8x7b-instruct-v0.1")
    mmlu = read_correctness_csv(
        data_dir / "lm-sys__RouteLLM/routellm/evals/mmlu/responses/mmlu_anatomy.csv"
    )
    prompts = list(dict.fromkeys(mmlu.prompt.tolist()))[:64]
    common = {"models": models, "featurizer": f"hashing:{DIM}", "text_dim": DIM}
    configs = {
        "random": {"models": models},
        "sw_ranking": {**common, "use_outcomes": True},
        "mf": {**common, "use_outcomes": True, "dim": 16},
        "irt": {**common, "latent_dim": 4, "hidden_dim": 16},
    }
    for name, overrides in configs.items():
        arch = registry.get_architecture(name)
        config = arch.make_config(**overrides)
        featurizer = arch.make_featurizer(config)
        if arch.fit is not None:
            params = arch.fit(data, featurizer, config, jax.random.key(0))
        else:
            params = arch.init(jax.random.key(0), config)
        if name in ("mf", "irt"):
            examples = arch.examples_from_records(data, featurizer, config)
            assert len(examples["model_a"]) >= 300, name  # 300 prompts x 15 graded models
        p = np.asarray(
            arch.win_rate(
                params, arch.prompt_inputs(prompts, featurizer, config), strong, weak, config
            )
        )
        assert p.shape == (64,) and np.all((p >= 0) & (p <= 1)), name
        if name == "sw_ranking":
            # On arena-bench, GPT-4-1106 out-grades Mixtral on most prompts: so do the weights.
            assert p.mean() > 0.5
