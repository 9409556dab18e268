"""The batched embedder: sentence-transformers parity (vs torch), buckets, no recompiles."""

from __future__ import annotations

import jax
import jax.monitoring
import numpy as np
import pytest

from routellm_jax.models.encoders.embedder import BatchTokenizer, encode, load_embedder

torch = pytest.importorskip("torch", reason="torch is the parity reference (dev extra)")
transformers = pytest.importorskip("transformers")

PROMPTS = [
    "Hi!",
    "What is the capital of France?",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    "Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural "
    "experiences and must-see attractions. " * 3,
    "x " * 400,  # longer than max_length: truncated
    "Write a haiku about autumn.",
]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder("all-MiniLM-L6-v2", dtype="float32", max_length=256)


def _sentence_transformers_reference(folder, prompts, max_length=256) -> np.ndarray:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BertModel, mean pooling, normalize."""
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.BertModel.from_pretrained(folder).eval()
    batch = tok(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_matches_sentence_transformers_reference(embedder) -> None:
    want = _sentence_transformers_reference(embedder.folder, PROMPTS)
    got = embedder.embed(PROMPTS, batch_size=4)
    assert got.shape == (len(PROMPTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # The order of the output follows the input, whatever the bucketing did.
    np.testing.assert_allclose(embedder.embed(PROMPTS[::-1], 4), got[::-1], atol=1e-5)


def test_bfloat16_embeddings_stay_close(embedder) -> None:
    bf16 = load_embedder(dtype="bfloat16")
    got = bf16.embed(PROMPTS[:4], batch_size=4)
    want = embedder.embed(PROMPTS[:4], batch_size=4)
    assert np.min(np.sum(got * want, axis=1)) > 0.995


def test_warm_embedder_never_recompiles(embedder) -> None:
    events = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    embedder.embed(PROMPTS, batch_size=4)  # warm
    before = embedder.compile_count
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        embedder.embed(PROMPTS, batch_size=4)
        embedder.embed(PROMPTS[1:3] + PROMPTS[:1], batch_size=4)  # same buckets, fewer rows
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert embedder.compile_count == before
    assert events == [], f"{len(events)} XLA compilations in a warm embedder"


def test_encode_is_jittable_with_a_head(embedder) -> None:
    ids, mask = embedder.tokenizer(PROMPTS[:3], 64)
    head = np.ones((384,), np.float32)

    @jax.jit
    def score(params, ids, mask):
        return encode(params, ids, mask, embedder.config) @ head

    out = np.asarray(score(embedder.params, ids, mask))
    np.testing.assert_allclose(out, embedder.embed(PROMPTS[:3]) @ head, atol=1e-4)


def test_tokenizer_truncates_and_pads(embedder) -> None:
    tok: BatchTokenizer = embedder.tokenizer
    ids = tok.encode_ids(PROMPTS)
    assert max(len(x) for x in ids) == 256 and ids[0][0] == 101 and ids[0][-1] == 102
    padded, mask = tok.pad(ids[:2], 16, rows=4)
    assert padded.shape == (4, 16) and mask[2:].sum() == 0 and mask[0].sum() == len(ids[0])
