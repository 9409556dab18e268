"""``mmlu-10pct``: the seeded tenth of the non-golden MMLU questions the CPU-bound routers use."""

from __future__ import annotations

import numpy as np

from routellm_jax.eval import golden
from routellm_jax.eval.benchmarks import (
    MMLU_SUBSET_FRACTION,
    MMLU_SUBSET_SALT,
    hash_fraction,
    load_benchmark,
    mmlu_benchmark,
)


def test_mmlu_subset_is_the_hash_selected_non_golden_tenth(data_dir) -> None:
    sub = load_benchmark("mmlu-10pct", data_dir=data_dir)
    full = mmlu_benchmark(data_dir, exclude_golden=True)
    assert len(sub) == 1225 and len(full) == 12537
    ids = golden.golden_split_ids()
    assert not any(golden.prompt_id(p) in ids for p in sub.prompts)
    fr = np.array([hash_fraction(p, MMLU_SUBSET_SALT) for p in full.prompts])
    expected = full.prompts[fr < MMLU_SUBSET_FRACTION]
    assert list(sub.prompts) == list(expected)
    assert (
        sub.metadata["golden_split_excluded"] and sub.metadata["hash_subsample_salt"] == "mmlu_eval"
    )


def test_hash_fraction_is_stable() -> None:
    # A fixed value: changing the formula would silently change the subset.
    assert round(hash_fraction("What is 2+2?", "mmlu_eval"), 6) == round(
        int(__import__("hashlib").sha256(b"mmlu_eval\nWhat is 2+2?").hexdigest()[:12], 16) / 16**12,
        6,
    )
