"""SHA-256 of a file: the one digest every pinned or recorded file is checked against.

Zoo archives and unpacked entries (:mod:`routellm_jax.zoo`), encoder files and wheels
(:mod:`routellm_jax.models.encoders.fetch`), the SmolLM2 GGUF
(:mod:`routellm_jax.models.encoders.smollm`) and training checkpoints
(:mod:`routellm_jax.training.checkpoints`) all hash through :func:`sha256_file`. It sits at the
bottom of the package (next to :mod:`routellm_jax.paths`) so each of those layers can use it
without importing another.
"""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20  # 1 MiB reads: checkpoints and GGUF files are hundreds of MB


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks.

    Example:
        >>> sha256_file("/dev/null")
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
