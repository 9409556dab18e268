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

from etils import epath

_CHUNK = 1 << 20  # 1 MiB reads: checkpoints and GGUF files are hundreds of MB


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (a local path or an object-store URL).

    Example:
        >>> sha256_file("/dev/null")
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return sha256_and_size(path)[0]


def sha256_and_size(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(hex SHA-256, bytes)`` of a file, read once (a local path or an object-store URL, opened
    through :mod:`etils.epath`, so a checkpoint in a bucket is hashed as one on disk).

    Example:
        >>> sha256_and_size("/dev/null")[1]
        0
    """
    digest, size = hashlib.sha256(), 0
    with epath.Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
