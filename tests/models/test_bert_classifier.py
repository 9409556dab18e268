"""The ``bert`` router: tiny random encoder trained a few steps; pretrained init; contract."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from routellm_jax.data.labels import LABEL_STRONG, LABEL_TIE, LABEL_WEAK
from routellm_jax.data.records import (
    Comparison,
    ComparisonTable,
    Outcome,
    OutcomeTable,
    TrainingData,
)
from routellm_jax.models import bert_classifier as bc
from routellm_jax.models.encoders.hf_import import flatten_params
from routellm_jax.models.registry import get_architecture

STRONG, WEAK, OTHER = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "vicuna-13b"
TINY = dict(
    vocab_size=30522,  # the real MiniLM tokenizer's ids
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


def _toy_data() -> TrainingData:
    rows = []
    for i in range(8):
        q_hard = f"Prove that the sum of the first {i + 2} odd numbers is a perfect square."
        q_easy = f"Say hello to my friend number {i}."
        rows += [
            Comparison(q_hard, STRONG, WEAK, "a"),  # strong wins
            Comparison(q_hard, WEAK, STRONG, "b", weight=2.0),  # strong wins, swapped sides
            Comparison(q_easy, WEAK, STRONG, "a"),  # weak wins
            Comparison(q_easy, STRONG, WEAK, "tie"),
            Comparison(q_easy, STRONG, OTHER, "a"),  # not strong-vs-weak: dropped
        ]
    return TrainingData.of(comparisons=ComparisonTable.from_records(rows))


@pytest.fixture(scope="module")
def setup():
    arch = get_architecture("bert")
    cfg = arch.make_config(
        pretrained=False, encoder_config=TINY, max_length=32, dropout=0.1, pooling="cls"
    )
    tok = arch.make_featurizer(cfg)
    params = arch.init(jax.random.key(0), cfg)
    return arch, cfg, tok, params


def test_registry_entry() -> None:
    arch = get_architecture("bert")
    assert arch is bc.ARCHITECTURE and arch.config_cls is bc.BertClassifierConfig
    with pytest.raises(ValueError, match="strong_models and weak_models"):
        bc.BertClassifierConfig(strong_models=("a",), weak_models=("a",))
    with pytest.raises(ValueError, match="num_labels"):
        bc.BertClassifierConfig(num_labels=2)
    hash(bc.BertClassifierConfig(pretrained=False, encoder_config=TINY))  # usable as a static arg


def test_examples_from_records(setup) -> None:
    arch, cfg, tok, _ = setup
    ex = arch.examples_from_records(_toy_data(), tok, cfg)
    n = 32  # 8 x 4 strong-vs-weak battles; the vicuna battles are dropped
    assert ex["input_ids"].shape == (n, 32) and ex["input_ids"].dtype == np.int32
    assert ex["attention_mask"].shape == (n, 32) and ex["weight"].shape == (n,)
    assert ex["label"][:4].tolist() == [LABEL_STRONG, LABEL_STRONG, LABEL_WEAK, LABEL_TIE]
    assert ex["weight"][:2].tolist() == [1.0, 2.0]
    assert (ex["input_ids"][:, 0] == 101).all()  # [CLS]


def test_outcomes_become_pair_battles_only_when_asked(setup) -> None:
    arch, cfg, tok, _ = setup
    graded = [
        ("2+2?", {STRONG: 1.0, WEAK: 0.0, OTHER: 1.0}),  # strong right, weak wrong
        ("3+3?", {STRONG: 0.0, WEAK: 1.0}),  # weak right
        ("4+4?", {STRONG: 1.0, WEAK: 1.0, OTHER: 0.0}),  # both right: a tie
        ("5+5?", {STRONG: 1.0, OTHER: 0.0}),  # weak not graded: no battle
    ]
    outcomes = OutcomeTable.from_records(
        Outcome(p, m, s, source="golden") for p, scores in graded for m, s in scores.items()
    )
    data = TrainingData.of(comparisons=_toy_data().comparisons, outcomes=outcomes)
    assert len(arch.examples_from_records(data, tok, cfg)["label"]) == 32  # default: ignored
    with_outcomes = dataclasses.replace(cfg, use_outcomes=True)
    ex = arch.examples_from_records(data, tok, with_outcomes)
    # One strong-vs-weak battle per prompt graded for both; the OTHER model forms none.
    assert ex["label"][32:].tolist() == [LABEL_STRONG, LABEL_WEAK, LABEL_TIE]
    assert ex["input_ids"].shape == (35, 32)
    # battle_weight scales the mix's own battles (judge labels), not the outcome battles.
    weighted = dataclasses.replace(with_outcomes, battle_weight=0.1)
    ex_w = arch.examples_from_records(data, tok, weighted)
    np.testing.assert_allclose(ex_w["weight"][:32], 0.1 * ex["weight"][:32], rtol=1e-6)
    np.testing.assert_array_equal(ex_w["weight"][32:], ex["weight"][32:])
    np.testing.assert_array_equal(ex_w["label"], ex["label"])
    with pytest.raises(ValueError, match="battle_weight must be >= 0"):
        dataclasses.replace(cfg, battle_weight=-1.0)


def test_few_sgd_steps_reduce_the_loss(setup) -> None:
    arch, cfg, tok, params = setup
    batch = {
        k: jnp.asarray(v) for k, v in arch.examples_from_records(_toy_data(), tok, cfg).items()
    }
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, rng):
        (value, metrics), grads = jax.value_and_grad(arch.loss, has_aux=True)(
            params, batch, rng, cfg
        )
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, value, metrics

    eval_loss = jax.jit(lambda p: arch.loss(p, batch, jax.random.key(99), cfg)[0])
    before = float(eval_loss(params))
    rng = jax.random.key(1)
    for i in range(25):
        params, opt, value, metrics = step(params, opt, jax.random.fold_in(rng, i))
        assert np.isfinite(float(value))
    after = float(eval_loss(params))
    assert after < 0.7 * before, (before, after)
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0


def test_win_rate_is_p_strong(setup) -> None:
    arch, cfg, tok, params = setup
    prompts = ["Hi", "Prove Fermat's last theorem for n = 3, step by step, please."]
    inputs = arch.prompt_inputs(prompts, tok, cfg)
    assert inputs["input_ids"].shape[0] == 2 and inputs["input_ids"].shape[1] in (16, 32)
    wr = np.asarray(jax.jit(lambda p, x: arch.win_rate(p, x, 0, 1, cfg))(params, inputs))
    assert wr.shape == (2,) and np.all((wr >= 0) & (wr <= 1))
    probs = np.asarray(bc.label_probs(params, inputs, cfg))
    np.testing.assert_allclose(wr, probs[:, LABEL_STRONG], atol=1e-6)
    # Padding more does not change the score (the mask works).
    ids, mask = tok(prompts, 32)
    wr32 = np.asarray(arch.win_rate(params, {"input_ids": ids, "attention_mask": mask}, 0, 1, cfg))
    np.testing.assert_allclose(wr32, wr, atol=1e-5)


def test_partition_rules(setup) -> None:
    arch, _, _, params = setup
    flat = flatten_params(params)
    kernel = "bert/encoder/layer_0/intermediate/dense/kernel"
    assert [a for rx, a in arch.partition_rules if re.search(rx, kernel)][0] == ("embed", "mlp")
    for path, value in flat.items():
        for rx, axes in arch.partition_rules:
            if re.search(rx, path):
                assert len(axes) == value.ndim, path
                break


def test_pretrained_init_loads_minilm() -> None:
    from routellm_jax.models.encoders.hf_import import load_bert

    cfg = bc.BertClassifierConfig(pretrained=True, max_length=64)
    params = bc.init(jax.random.key(0), cfg)
    _, ref = load_bert(bc.encoder_folder(cfg))
    a, b = flatten_params(params["bert"]), flatten_params(ref)
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(
        a["encoder/layer_3/attention/self/query/kernel"],
        b["encoder/layer_3/attention/self/query/kernel"],
    )
    assert params["classifier"]["kernel"].shape == (384, 3)


def test_matches_hf_bert_for_sequence_classification(tmp_path) -> None:
    """Our head on the pooled [CLS] = BertForSequenceClassification, and our win rate = the
    reference BERTRouter's ``1 - sum(softmax(logits)[-2:])`` on the released label order."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    hf_cfg = transformers.BertConfig(num_labels=3, **TINY)
    model = transformers.BertForSequenceClassification(hf_cfg).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    cfg = bc.BertClassifierConfig(pretrained=False, encoder_config=TINY, max_length=32)
    params = bc.load_hf_classifier(tmp_path, cfg)
    tok = bc.make_featurizer(cfg)
    inputs = bc.prompt_inputs(["Hi there", "Integrate x^2 from 0 to 3, show the steps"], tok, cfg)
    with torch.inference_mode():
        ref = model(
            input_ids=torch.from_numpy(inputs["input_ids"]).long(),
            attention_mask=torch.from_numpy(inputs["attention_mask"]).long(),
        ).logits.numpy()
    ref_probs = np.exp(ref - ref.max(1, keepdims=True))
    ref_probs /= ref_probs.sum(1, keepdims=True)
    ours = np.asarray(bc.logits(params, inputs, cfg))
    np.testing.assert_allclose(ours[:, [LABEL_STRONG, LABEL_TIE, LABEL_WEAK]], ref, atol=1e-4)
    wr = np.asarray(bc.win_rate(params, inputs, 0, 1, cfg))
    np.testing.assert_allclose(wr, 1 - ref_probs[:, -2:].sum(1), atol=1e-5)


def test_loss_and_grads_unchanged_when_cut_to_a_length_bucket(setup) -> None:
    # The trainer's length buckets drop trailing pad columns (registry: sequence_keys/mask_key);
    # that must not change what is learned.
    import dataclasses

    from routellm_jax.data.pipeline import row_lengths

    arch, cfg, tok, params = setup
    cfg = dataclasses.replace(cfg, dropout=0.0)
    assert arch.sequence_keys == ("input_ids", "attention_mask")
    full = arch.examples_from_records(_toy_data(), tok, cfg)
    width = int(row_lengths(full[arch.mask_key]).max())
    assert width < full["input_ids"].shape[1]
    cut = {k: v[:, :width] if k in arch.sequence_keys else v for k, v in full.items()}
    grad = jax.jit(jax.value_and_grad(lambda p, b: arch.loss(p, b, jax.random.key(0), cfg)[0]))
    (lf, gf), (lc, gc) = grad(params, full), grad(params, cut)
    np.testing.assert_allclose(float(lc), float(lf), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(gf), jax.tree_util.tree_leaves(gc), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5)


def test_router_precision_sets_the_encoder_dtype(setup) -> None:
    """``load(..., precision="bfloat16")`` reaches a bert router's own encoder as its dtype."""
    from routellm_jax.api import Router

    arch, cfg, tok, params = setup
    prompts = ["Hi", "Prove Fermat's last theorem for n = 3, step by step, please."]
    f32 = Router.from_params("bert", cfg, params, strong=STRONG, weak=WEAK, featurizer=tok)
    bf16 = Router.from_params(
        "bert", cfg, params, strong=STRONG, weak=WEAK, featurizer=tok, precision="bfloat16"
    )
    assert f32.config.dtype == "float32" and bf16.config.dtype == "bfloat16"
    assert bf16.runner.path == "tokens"  # no MiniLM fusion: the classifier runs its own encoder
    a, b = f32.win_rate(prompts), bf16.win_rate(prompts)
    assert not np.array_equal(a, b)  # the bf16 path really ran ...
    np.testing.assert_allclose(b, a, atol=2e-2)  # ... and stays close


def test_bf16_router_casts_its_matmul_weights_once_with_the_same_outputs(setup, monkeypatch):
    """In bfloat16 the token path stores the weights the model only casts (the encoder's dense
    kernels and biases) as bf16 at load: the same win rates to the bit, and everything else
    (LayerNorm, the float32 embedding lookup, the float32 head) left in float32."""
    from routellm_jax.api import Router
    from routellm_jax.models import inference

    arch, cfg, tok, params = setup
    prompts = ["Prove that the square root of 2 is irrational.", "hi", "Write a haiku, please."]
    router = Router.from_params("bert", cfg, params, precision="bfloat16")
    dtypes = {k: v.dtype for k, v in flatten_params(jax.device_get(router.runner.params)).items()}
    assert dtypes["bert/encoder/layer_0/intermediate/dense/kernel"] == jnp.bfloat16
    assert dtypes["bert/encoder/layer_1/attention/self/query/bias"] == jnp.bfloat16
    assert dtypes["bert/encoder/layer_0/output/LayerNorm/scale"] == jnp.float32
    assert dtypes["bert/embeddings/word_embeddings/embedding"] == jnp.float32
    assert dtypes["classifier/kernel"] == jnp.float32
    in_f32 = Router.from_params("bert", cfg, params)
    assert {x.dtype for x in jax.tree.leaves(in_f32.runner.params)} == {jnp.dtype("float32")}

    monkeypatch.setattr(inference, "cast_ahead", lambda forward, p, example: p)
    uncast = Router.from_params("bert", cfg, params, precision="bfloat16")
    assert {x.dtype for x in jax.tree.leaves(uncast.runner.params)} == {jnp.dtype("float32")}
    np.testing.assert_array_equal(router.win_rate(prompts), uncast.win_rate(prompts))


def test_float32_router_does_not_trace_its_model_at_load(setup, monkeypatch):
    from routellm_jax.api import Router
    from routellm_jax.models import inference

    arch, cfg, tok, params = setup

    def traced(*args):
        raise AssertionError("cast_ahead traced a float32 model")

    monkeypatch.setattr(inference, "cast_ahead", traced)
    Router.from_params("bert", cfg, params)  # float32: nothing narrower to cast to
    with pytest.raises(AssertionError, match="traced"):
        Router.from_params("bert", cfg, params, precision="bfloat16")
