"""The causal_llm router: format, labels, a few training steps, win rates (tiny + real SmolLM2)."""

from __future__ import annotations

import dataclasses
import json

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
from routellm_jax.models import causal_llm
from routellm_jax.models.registry import get_architecture

STRONG, WEAK, OTHER = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "llama-2-7b-chat"


@pytest.fixture(scope="module")
def tiny():
    arch = get_architecture("causal_llm")
    cfg = arch.make_config(
        base_model="tiny-random",
        pretrained=False,
        max_length=64,
        system_message="Rate the question.",
        strong_models=(STRONG,),
        weak_models=(WEAK,),
    )
    feat = arch.make_featurizer(cfg)
    params = arch.init(jax.random.key(0), cfg)
    return arch, cfg, feat, params


def _battles() -> TrainingData:
    rows = [
        Comparison("prove the theorem", STRONG, WEAK, "a"),  # strong wins
        Comparison("say hi", WEAK, STRONG, "a"),  # weak wins (needs the swap)
        Comparison("add 2 and 2", STRONG, WEAK, "tie", weight=0.5),
        Comparison("write a poem", OTHER, STRONG, "a"),  # not strong-vs-weak: dropped
        Comparison("integrate x", WEAK, STRONG, "b"),  # strong wins
        Comparison("hello there", STRONG, WEAK, "b"),  # weak wins
    ]
    return TrainingData.of(comparisons=ComparisonTable.from_records(rows))


def test_examples_labels_and_layout(tiny):
    arch, cfg, feat, _ = tiny
    ex = arch.examples_from_records(_battles(), feat, cfg)
    assert ex["input_ids"].shape == ex["attention_mask"].shape == (5, cfg.max_length)
    # strong wins -> [[1]] (class 0), weak wins -> [[5]] (4), tie -> [[4]] (3).
    assert ex["label"].tolist() == [0, 4, 3, 0, 4]
    np.testing.assert_allclose(ex["weight"], [1, 1, 0.5, 1, 1])
    # Right padding; every row starts with the template head and ends with its tail.
    for ids, mask in zip(ex["input_ids"], ex["attention_mask"]):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()
        assert ids[: len(feat.prefix_ids)].tolist() == feat.prefix_ids
        assert ids[n - len(feat.suffix_ids) : n].tolist() == feat.suffix_ids
    text = feat.tokenizer.decode(ex["input_ids"][1][: int(ex["attention_mask"][1].sum())])
    assert text == "Rate the question.\n\n[Question]\nsay hi\n\nPrediction:\n"


def test_outcomes_become_examples_when_asked(tiny):
    arch, cfg, feat, _ = tiny
    outcomes = OutcomeTable.from_records(
        [Outcome("2+2?", STRONG, 1.0), Outcome("2+2?", WEAK, 0.0), Outcome("3+3?", WEAK, 1.0)]
        + [Outcome("3+3?", STRONG, 1.0)]
    )
    data = TrainingData.of(outcomes=outcomes)
    assert len(arch.examples_from_records(data, feat, cfg)["label"]) == 0
    with_gold = dataclasses.replace(cfg, use_outcomes=True)
    ex = arch.examples_from_records(data, feat, with_gold)
    assert sorted(ex["label"].tolist()) == [0, 3]  # strong right & weak wrong; both right = tie


def test_long_prompt_is_cut_but_keeps_template(tiny):
    arch, cfg, feat, _ = tiny
    inputs = arch.prompt_inputs(["x" * 500, "short"], feat, cfg)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape == (2, cfg.max_length) and mask[0].all()
    assert ids[0, -len(feat.suffix_ids) :].tolist() == feat.suffix_ids
    assert mask[1].sum() < cfg.max_length


def test_training_steps_reduce_loss(tiny):
    arch, cfg, feat, params = tiny
    batch = {
        k: jnp.asarray(v) for k, v in arch.examples_from_records(_battles(), feat, cfg).items()
    }
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        (value, metrics), grads = jax.value_and_grad(
            lambda p: arch.loss(p, batch, jax.random.key(0), cfg), has_aux=True
        )(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, metrics

    losses = []
    for _ in range(10):
        params, opt_state, value, metrics = step(params, opt_state)
        losses.append(float(value))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    assert 0.0 <= float(metrics["label_mass"]) <= 1.0
    # After fitting, the win rate follows the labels: strong-won prompts score higher.
    rates = np.asarray(arch.win_rate(params, batch, 0, 1, cfg))
    assert rates[[0, 3]].min() > rates[[1, 4]].max()


def test_win_rate_shape_range_and_formula(tiny):
    arch, cfg, feat, params = tiny
    inputs = arch.prompt_inputs(["What is 2+2?", "Prove P != NP", "hi"], feat, cfg)
    rates = jax.jit(lambda p, x: arch.win_rate(p, x, 0, 1, cfg))(params, inputs)
    assert rates.shape == (3,)
    assert np.all((np.asarray(rates) >= 0) & (np.asarray(rates) <= 1))
    probs = np.asarray(causal_llm.score_probs(params, inputs, cfg))
    np.testing.assert_allclose(rates, 1 - probs[:, 3:].sum(-1), atol=1e-6)
    # The fresh label rows are the mean embedding, so all five scores start equally likely.
    np.testing.assert_allclose(probs, 0.2, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="pretrained"):
        causal_llm.CausalLLMConfig(base_model="tiny-random", pretrained=True)
    with pytest.raises(ValueError, match="score_threshold"):
        causal_llm.CausalLLMConfig(base_model="tiny-random", pretrained=False, score_threshold=6)
    with pytest.raises(ValueError, match="leaves"):
        causal_llm.make_featurizer(
            causal_llm.CausalLLMConfig(base_model="tiny-random", pretrained=False, max_length=16)
        )
    with pytest.raises(ValueError, match="not-a-model"):
        causal_llm.base_llama_config("not-a-model")


def _real_prompts(data_dir, n: int = 4) -> list[str]:
    path = data_dir / "lm-sys__RouteLLM/routellm/evals/mt_bench/question.jsonl"
    with open(path) as f:
        return [json.loads(line)["turns"][0] for line, _ in zip(f, range(n))]


def test_real_smollm2_win_rate_on_real_prompts(data_dir):
    arch = get_architecture("causal_llm")
    cfg = arch.make_config(base_model=causal_llm.SMOLLM2, pretrained=True, max_length=384)
    feat = arch.make_featurizer(cfg)
    assert "<|im_start|>assistant\n" in feat.tokenizer.decode(feat.suffix_ids)
    params = arch.init(jax.random.key(0), cfg)
    assert params["llama"]["embed_tokens"]["embedding"].shape == (49157, 576)
    prompts = _real_prompts(data_dir)
    inputs = arch.prompt_inputs(prompts, feat, cfg)
    rates = np.asarray(jax.jit(lambda p, x: arch.win_rate(p, x, 0, 1, cfg))(params, inputs))
    assert rates.shape == (4,)
    assert np.isfinite(rates).all() and ((rates >= 0) & (rates <= 1)).all()


def test_shared_prefix_matches_full_encoding(tiny):
    """share_prefix (template head encoded once per batch) gives the same loss, gradients and
    win rates as encoding every row whole; the head really is shared (a nonzero prefix)."""
    arch, cfg, feat, params = tiny
    assert cfg.share_prefix and causal_llm.template_prefix_length(cfg) == len(feat.prefix_ids) > 0
    full = dataclasses.replace(cfg, share_prefix=False)
    assert causal_llm.template_prefix_length(full) == 0
    batch = {
        k: jnp.asarray(v) for k, v in arch.examples_from_records(_battles(), feat, cfg).items()
    }

    def value_and_grad(c):
        return jax.value_and_grad(lambda p: arch.loss(p, batch, jax.random.key(0), c)[0])(params)

    (v_shared, g_shared), (v_full, g_full) = value_and_grad(cfg), value_and_grad(full)
    np.testing.assert_allclose(v_shared, v_full, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g_shared), jax.tree_util.tree_leaves(g_full)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    inputs = arch.prompt_inputs(["What is 2+2?", "x" * 300, "hi"], feat, cfg)
    np.testing.assert_allclose(
        arch.win_rate(params, inputs, 0, 1, cfg),
        arch.win_rate(params, inputs, 0, 1, full),
        atol=1e-6,
    )


def test_loss_and_grads_unchanged_when_cut_to_a_length_bucket(tiny):
    # The trainer's length buckets drop trailing pad columns (registry: sequence_keys/mask_key).
    from routellm_jax.data.pipeline import row_lengths

    arch, cfg, feat, params = tiny
    assert arch.mask_key == "attention_mask"
    full = arch.examples_from_records(_battles(), feat, cfg)
    width = int(row_lengths(full[arch.mask_key]).max())
    assert width < full["input_ids"].shape[1]
    cut = {k: v[:, :width] if k in arch.sequence_keys else v for k, v in full.items()}
    grad = jax.jit(jax.value_and_grad(lambda p, b: arch.loss(p, b, jax.random.key(0), cfg)[0]))
    (lf, gf), (lc, gc) = grad(params, full), grad(params, cut)
    np.testing.assert_allclose(float(lc), float(lf), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(gf), jax.tree_util.tree_leaves(gc), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5)


def test_bf16_keeps_the_scanned_layer_stack_in_float32(tiny, monkeypatch):
    """The token path casts ahead only weights cast at the model's top level: the scanned layer
    stack stays float32 (stored in bf16 it made a SmolLM2 call slower; the cast fused into each
    layer's dot is cheaper), and the win rates are those of the uncast router."""
    from routellm_jax.api import Router
    from routellm_jax.models import inference

    arch, cfg, feat, params = tiny
    prompts = ["prove the theorem", "say hi", "write a poem about the sea"]
    router = Router.from_params("causal_llm", cfg, params, precision="bfloat16")
    layers = router.runner.params["llama"]["layers"]
    assert layers["mlp"]["down_proj"]["kernel"].dtype == jnp.float32
    assert layers["self_attn"]["q_proj"]["kernel"].dtype == jnp.float32
    monkeypatch.setattr(inference, "cast_ahead", lambda forward, p, example: p)
    uncast = Router.from_params("causal_llm", cfg, params, precision="bfloat16")
    np.testing.assert_array_equal(router.win_rate(prompts), uncast.win_rate(prompts))
