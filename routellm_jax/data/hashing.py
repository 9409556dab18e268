"""Text-only hashes of prompts: a prompt's id and its membership in a hash-selected part depend
only on its text (and a salt), so both are stable under any filtering, reordering or re-reading.

:func:`prompt_id` names prompts in the split files (the held-out judge split of
:mod:`routellm_jax.data.judge_split`, the MMLU golden split of :mod:`routellm_jax.eval.golden`).
:func:`hash_fraction` is used by the mixture filter ``hash_fraction``
(:mod:`routellm_jax.data.mixtures`), the seeded MMLU subset (:mod:`routellm_jax.eval.benchmarks`)
and the experiments' dev splits.

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


def prompt_id(prompt: str) -> str:
    """A prompt's id in the split files: the sha256 hex of its UTF-8 text, exactly as read.

    Example:
        >>> prompt_id("abc")[:12]
        'ba7816bf8f01'
    """
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
