"""Text-only hash selection of prompts: a prompt's membership in a hash-selected part depends only
on its text and a salt, so the part is stable under any filtering, reordering or re-reading.

Used by the mixture filter ``hash_fraction`` (:mod:`routellm_jax.data.mixtures`), the seeded MMLU
subset (:mod:`routellm_jax.eval.benchmarks`) and the experiments' dev splits.

Example:
    >>> round(hash_fraction("What is 2+2?", "mmlu_eval"), 6)
    0.890401
"""

from __future__ import annotations

import hashlib


def hash_fraction(prompt: str, salt: str) -> float:
    """A prompt's stable position in [0, 1): ``sha256(salt + "\\n" + prompt)`` as a fraction.

    Example:
        >>> 0.0 <= hash_fraction("abc", "s") < 1.0
        True
    """
    digest = hashlib.sha256(f"{salt}\n{prompt}".encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)
