"""Decontamination: normalisation, exact matches, near-duplicates with a fake embedder."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_jax.data.decontaminate import (
    EvalIndex,
    decontaminate,
    max_cosine,
    normalize_text,
)
from routellm_jax.data.records import (
    Comparison,
    ComparisonTable,
    Outcome,
    OutcomeTable,
    TrainingData,
)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("  What   is\t2+2?\n", "what is 2+2"),
        ("«Hello», World!!", "hello», world"),  # only the ends are stripped
        ("ＦＵＬＬ width", "full width"),  # NFKC
        ("...", ""),
    ],
)
def test_normalize_text(raw: str, norm: str) -> None:
    assert normalize_text(raw) == norm


# A fake, deterministic embedder: fixed 2-d directions per text.
VECS = {
    "train near": [0.99, 0.14],  # cos with "eval a" = 0.990 -> removed
    "train far": [0.9, 0.436],  # cos with "eval a" = 0.900 -> kept
    "train other": [0.0, 1.0],  # cos with "eval b" = 1.0 -> removed (set b)
    "eval a": [1.0, 0.0],
    "eval b": [0.0, 2.0],  # not unit-norm on purpose
}


def fake_embed(texts: list[str]) -> np.ndarray:
    return np.array([VECS[t] for t in texts], dtype=np.float32)


def test_exact_and_near_duplicates_with_report() -> None:
    comps = ComparisonTable.from_records(
        [
            Comparison("EVAL A!", "m1", "m2", "a"),  # exact (after normalisation)
            Comparison("train near", "m1", "m2", "b"),
            Comparison("train near", "m2", "m3", "b"),
            Comparison("train far", "m1", "m2", "tie"),
        ]
    )
    outs = OutcomeTable.from_records(
        [Outcome("train other", "m1", 1.0), Outcome("train far", "m1", 0.0)]
    )
    data = TrainingData(comps, outs)
    kept, rep = decontaminate(
        data,
        {"set_a": ["eval a"], "set_b": ["eval b"]},
        embed_fn=fake_embed,
        block_size=1,
        embed_batch_size=1,
    )
    assert kept.comparisons.prompt.tolist() == ["train far"]
    assert kept.outcomes.prompt.tolist() == ["train far"]
    assert rep.rows_before == 6 and rep.rows_after == 2
    assert rep.removed == {"exact": 1, "near_duplicate": 3}
    assert rep.removed_prompts == {"exact": 1, "near_duplicate": 2}
    assert rep.by_eval_set == {
        "set_a": {"exact": 1, "near_duplicate": 2},
        "set_b": {"near_duplicate": 1},
    }
    assert rep.eval_set_sizes == {"set_a": 1, "set_b": 1}
    near = [e for e in rep.examples if e["train_prompt"] == "train near"][0]
    assert near["eval_set"] == "set_a" and near["similarity"] == pytest.approx(0.990, abs=1e-3)
    # Exact only without an embedder.
    kept2, rep2 = decontaminate(comps, {"set_a": ["eval a"]})
    assert len(kept2) == 3 and rep2.removed == {"exact": 1} and rep2.threshold is None
    # A prepared index gives the same answer.
    index = EvalIndex.build({"set_a": ["eval a"], "set_b": ["eval b"]}, fake_embed)
    kept3, rep3 = decontaminate(data, index, embed_fn=fake_embed)
    assert rep3.removed == rep.removed and len(kept3.comparisons) == 1


def test_threshold_is_inclusive() -> None:
    comps = ComparisonTable.from_records([Comparison("train far", "a", "b", "a")])
    kept, _ = decontaminate(comps, {"s": ["eval a"]}, embed_fn=fake_embed, threshold=0.9)
    assert len(kept) == 1  # cos = 0.8999...
    kept, _ = decontaminate(comps, {"s": ["eval a"]}, embed_fn=fake_embed, threshold=0.89)
    assert len(kept) == 0


def test_max_cosine_blocked_equals_dense() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    k = rng.normal(size=(11, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    dense = q @ k.T
    for block in (1, 5, 64):
        best, arg = max_cosine(q, k, block_size=block)
        np.testing.assert_allclose(best, dense.max(axis=1), rtol=1e-6)
        np.testing.assert_array_equal(arg, dense.argmax(axis=1))


def test_embed_fn_shape_checked() -> None:
    comps = ComparisonTable.from_records([Comparison("x", "a", "b", "a")])
    with pytest.raises(ValueError, match="expected \\[n, d\\]"):
        decontaminate(comps, {"s": ["y"]}, embed_fn=lambda texts: np.zeros(len(texts)))
