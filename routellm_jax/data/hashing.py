"""Text-only hashes of prompts: a prompt's id and its membership in a hash-selected part depend
only on its text (and a salt), so both are stable under any filtering, reordering or re-reading.

:func:`prompt_id` names prompts in the split files (the held-out judge split of
:mod:`routellm_jax.data.judge_split`, the MMLU golden split of :mod:`routellm_jax.eval.golden`).
:func:`hash_fraction` is used by the mixture filter ``hash_fraction``
(:mod:`routellm_jax.data.mixtures`), the seeded MMLU subset (:mod:`routellm_jax.eval.benchmarks`)
and the experiments' dev splits. :func:`hashed_ngram_vectors` is the weight-free text vector of
the ``hashing:<dim>`` featurizer and of the mixtures' lexical decontamination pass.

Example:
    >>> round(hash_fraction("What is 2+2?", "mmlu_eval"), 6)
    0.890401
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD_RE = re.compile(r"\w+", re.UNICODE)


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


def _token_slot(token: str, dim: int) -> tuple[int, float]:
    value = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    # The low bit picks the sign so colliding tokens cancel on average instead of piling up.
    return (value >> 1) % dim, (1.0 if value & 1 else -1.0)


def hashed_ngram_vector(text: str, dim: int) -> np.ndarray:
    """Hashed bag of lower-cased words and word bigrams: signed, ``1 + log(count)`` per token,
    L2-normalised float32 ``[dim]`` (the empty text stays zero). Deterministic across processes
    and machines (blake2b of the token, not Python's salted ``hash``).

    Example:
        >>> v = hashed_ngram_vector("What is 2+2?", 32)
        >>> v.shape, round(float(np.linalg.norm(v)), 4)
        ((32,), 1.0)
    """
    if dim <= 0:
        raise ValueError(f"hashed vectors: dim must be positive, got {dim}")
    words = _WORD_RE.findall(text.lower())
    counts: dict[str, int] = {}
    for t in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
        counts[t] = counts.get(t, 0) + 1
    vec = np.zeros(dim, dtype=np.float64)
    for t, c in counts.items():
        slot, sign = _token_slot(t, dim)
        vec[slot] += sign * (1.0 + np.log(c))
    norm = np.linalg.norm(vec)
    if norm > 0:
        vec /= norm
    return vec.astype(np.float32)


def hashed_ngram_vectors(texts: Sequence[str], dim: int) -> np.ndarray:
    """:func:`hashed_ngram_vector` of each text, ``[len(texts), dim]`` float32.

    Example:
        >>> hashed_ngram_vectors(["a b", "c"], 8).shape
        (2, 8)
    """
    if not len(texts):
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([hashed_ngram_vector(str(t), dim) for t in texts])
