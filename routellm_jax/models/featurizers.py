"""Prompt -> fixed-size embedding featurizers shared by the embedding routers (sw_ranking, mf, irt).

A featurizer is built once per process from a spec string (stored in the router's config, so a zoo
checkpoint says how its inputs were made) and turns prompts into a float32 matrix ``[n, dim]``:

* ``"all-MiniLM-L6-v2"`` (384-d), ``"all-mpnet-base-v2"`` (768-d), or any other name of the
  encoder table (:data:`routellm_jax.models.encoders.fetch.ENCODERS`): the frozen sentence
  encoder from :mod:`routellm_jax.models.encoders.embedder` (L2-normalised mean pooling).
* ``"precomputed:<path>"``: a lookup table prompt -> embedding read from ``.npz`` (arrays
  ``prompts`` and ``embeddings``) or ``.parquet`` (columns ``prompt`` and ``embedding``), so the
  paper's OpenAI ``text-embedding-3-small`` vectors (1536-d) can be used without an API call.
* ``"hashing:<dim>"``: a deterministic hashed bag of words and word bigrams (sublinear counts,
  signed hashing, L2-normalised). No weights, microseconds per prompt: for tests and as a
  baseline that shows what a learned encoder adds.
* ``"shape"``: :data:`SHAPE_DIM` prompt-structure features computed from the text alone (log word
  and character counts, log line count, digit / math-symbol / non-ASCII shares, multiple-choice,
  code and question flags), fixed scaling, nothing fitted.
* ``"<spec>+shape"`` (e.g. ``"all-MiniLM-L6-v2+shape"``): ``<spec>``'s embedding with the shape
  features appended. Mean-pooled, L2-normalised sentence embeddings discard how long a prompt
  is, which is the strongest single routing signal on MMLU/GSM8K (a difficulty model on prompt
  length alone beats MiniLM there; experiments/results/README.md); this hands it back to
  the learned head.
* ``"length"`` / ``"<spec>+length"``: only the first two shape features (log word and character
  counts). The other shape features (the multiple-choice, code and question flags, line count,
  character shares) mostly say which training source a prompt comes from, and an item model can
  learn a source's level from them instead of the prompt's difficulty; length alone hands back
  what mean pooling discards without that shortcut.

Every featurizer caches embeddings per prompt text in a dict on the object (``.cache``), because
training data repeats prompts many times (one prompt, dozens of battles or model outcomes).

A featurizer also declares whether its vectors can be computed inside a compiled function
(:meth:`CachedFeaturizer.device_encoding`): an encoder spec (a Flax embedder) can, optionally
followed by parts computed on the host from the text alone (``+shape``, ``+length``); hashing, precomputed and
custom featurizers cannot. The inference API fuses encoder and head only on that declaration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from routellm_jax.data.hashing import hashed_ngram_vectors
from routellm_jax.data.records import (
    OUTCOME_A,
    OUTCOME_B,
    OUTCOME_TIE,
    ComparisonTable,
    TrainingData,
)
from routellm_jax.models.encoders.fetch import ENCODERS

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_WORD_RE = re.compile(r"\w+", re.UNICODE)
SHAPE_SUFFIX = "+shape"
LENGTH_SUFFIX = "+length"


class Featurizer(Protocol):
    """What the routers need from a featurizer."""

    spec: str
    dim: int

    def embed(self, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return ``[len(prompts), dim]`` float32 embeddings."""
        ...


@dataclasses.dataclass(frozen=True)
class DeviceEncoding:
    """How a featurizer's vectors are computed inside a compiled function: the pooled output of
    ``embedder`` (a :class:`~routellm_jax.models.encoders.embedder.Embedder`: tokenizer, params,
    config, dtype), followed by the vectors of ``host_parts``, featurizers computed on the host
    from the text alone, in this order: exactly the layout of the featurizer's own vectors."""

    embedder: Any
    host_parts: tuple[Any, ...] = ()


class CachedFeaturizer:
    """Base class: per-prompt embedding cache around a batch embedding function.

    Subclasses implement ``_embed_new(prompts, batch_size) -> [n, dim]`` for prompts not yet cached.
    ``on_host`` says the vectors are a cheap function of the text alone (no encoder weights), so
    a fused router may compute them on the host next to the device encoder;
    :meth:`device_encoding` says whether the vectors can be computed inside a compiled function.

    Example:
        >>> f = make_embedding_featurizer("hashing:16")
        >>> f.embed(["a b", "a b"]).shape, len(f.cache)
        ((2, 16), 1)
    """

    spec: str = ""
    dim: int = 0
    on_host: bool = False

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

    def device_encoding(self) -> DeviceEncoding | str:
        """A :class:`DeviceEncoding`, or a sentence saying why these vectors cannot be computed
        inside a compiled function (the router then runs the featurizer on the host).

        Example:
            >>> make_embedding_featurizer("hashing:8").device_encoding()
            "featurizer 'hashing:8' has no encoder to run on the device"
        """
        return f"featurizer {self.spec!r} has no encoder to run on the device"

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        raise NotImplementedError

    def embed(self, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``prompts`` -> ``[n, dim]`` float32, computing each distinct prompt once.

        Example:
            >>> make_embedding_featurizer("hashing:8").embed(["hello world"]).shape
            (1, 8)
        """
        if isinstance(prompts, str):
            raise TypeError("embed() takes a sequence of prompts, got a single str")
        prompts = [str(p) for p in prompts]
        new = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if new:
            vectors = np.asarray(self._embed_new(new, batch_size), dtype=np.float32)
            if vectors.shape != (len(new), self.dim):
                raise ValueError(
                    f"featurizer {self.spec!r} returned shape {vectors.shape}, "
                    f"expected {(len(new), self.dim)}"
                )
            for p, v in zip(new, vectors):
                self.cache[p] = v
        if not prompts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[p] for p in prompts]).astype(np.float32, copy=False)

    def clear_cache(self) -> None:
        """Forget cached embeddings (e.g. between data mixes, to bound memory)."""
        self.cache.clear()


class HashingFeaturizer(CachedFeaturizer):
    """Hashed bag of lower-cased words and word bigrams, signed, log-scaled and L2-normalised.

    Deterministic across processes and machines (blake2b of the token, not Python's salted hash).

    Example:
        >>> f = HashingFeaturizer(32)
        >>> bool(np.allclose(np.linalg.norm(f.embed(["What is 2+2?"])), 1.0))
        True
    """

    on_host = True

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim <= 0:
            raise ValueError(f"hashing featurizer: dim must be positive, got {dim}")
        self.dim = int(dim)
        self.spec = f"hashing:{self.dim}"

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        del batch_size
        return hashed_ngram_vectors(prompts, self.dim)


# Prompt-structure features. Every constant is fixed here (no statistics of any data set), so the
# featurizer is a deterministic function of the text and cannot leak an evaluation set.
SHAPE_FEATURES = (
    "log_words",  # log1p(#word tokens) / 5: ~0 for "hi", ~1 for a 150-word question
    "log_chars",  # log1p(#characters) / 8
    "log_lines",  # log1p(#non-empty lines) / 3
    "digit_share",  # digits / non-space characters
    "math_share",  # math symbols (+-*/=^<>%$\\ and the like) / non-space characters
    "non_ascii_share",  # non-ASCII characters / non-space characters
    "choices",  # 1 if >= 2 lettered options ("A. ...", "(B) ...", "C) ...") on their own lines
    "code",  # 1 if a code fence or two code-looking lines (def/class/import/#include/braces)
    "question",  # 1 if the prompt contains a "?"
)
SHAPE_DIM = len(SHAPE_FEATURES)
_CHOICE_RE = re.compile(r"^\s*(?:\(?[A-Ha-h]\)|[A-H][.:])\s+\S", re.MULTILINE)
_CODE_LINE_RE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#include|public |private |function |"
    r"return\b|for \(|if \(|while \(|\}|.*;\s*$|.*\{\s*$)",
    re.MULTILINE,
)
_MATH_CHARS = frozenset("+-*/=^<>%$\\|~\u00d7\u00f7\u2212\u221a\u03c0\u2264\u2265\u2260")


def prompt_shape(prompt: str) -> np.ndarray:
    """The :data:`SHAPE_FEATURES` of one prompt, float32 ``[SHAPE_DIM]``.

    Example:
        >>> [round(float(v), 2) for v in prompt_shape("What is 2+2?\\nA. 3\\nB. 4")]
        [0.44, 0.39, 0.46, 0.25, 0.06, 0.0, 1.0, 0.0, 1.0]
    """
    text = str(prompt)
    words = len(_WORD_RE.findall(text))
    lines = sum(1 for line in text.splitlines() if line.strip())
    dense = [c for c in text if not c.isspace()]
    n = max(len(dense), 1)
    digits = sum(c.isdigit() for c in dense)
    math = sum(c in _MATH_CHARS for c in dense)
    non_ascii = sum(ord(c) > 127 for c in dense)
    choices = len(_CHOICE_RE.findall(text)) >= 2
    code = "```" in text or len(_CODE_LINE_RE.findall(text)) >= 2
    return np.array(
        [
            np.log1p(words) / 5.0,
            np.log1p(len(text)) / 8.0,
            np.log1p(lines) / 3.0,
            digits / n,
            math / n,
            non_ascii / n,
            float(choices),
            float(code),
            float("?" in text),
        ],
        dtype=np.float32,
    )


class ShapeFeaturizer(CachedFeaturizer):
    """Prompt-structure features (:func:`prompt_shape`); spec ``"shape"``.

    Example:
        >>> ShapeFeaturizer().embed(["a", "b c"]).shape
        (2, 9)
    """

    on_host = True

    def __init__(self) -> None:
        super().__init__()
        self.spec, self.dim = "shape", SHAPE_DIM

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        del batch_size
        return np.stack([prompt_shape(p) for p in prompts])


LENGTH_FEATURES = SHAPE_FEATURES[:2]  # log_words, log_chars
LENGTH_DIM = len(LENGTH_FEATURES)


class LengthFeaturizer(ShapeFeaturizer):
    """Prompt-length features (the first :data:`LENGTH_DIM` of :func:`prompt_shape`); spec
    ``"length"``.

    Example:
        >>> [round(float(v), 2) for v in LengthFeaturizer().embed(["What is 2+2?"])[0]]
        [0.32, 0.32]
    """

    def __init__(self) -> None:
        super().__init__()
        self.spec, self.dim = "length", LENGTH_DIM

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        return super()._embed_new(prompts, batch_size)[:, :LENGTH_DIM]


# Host-side parts a spec may append to an encoder's vector: suffix -> (featurizer class, width).
HOST_PARTS: dict[str, tuple[type[CachedFeaturizer], int]] = {
    SHAPE_SUFFIX: (ShapeFeaturizer, SHAPE_DIM),
    LENGTH_SUFFIX: (LengthFeaturizer, LENGTH_DIM),
}


def host_part_suffix(spec: str) -> str:
    """The host-part suffix a spec ends with (``"+shape"``, ``"+length"``), or ``""``.

    Example:
        >>> host_part_suffix("all-MiniLM-L6-v2+length"), host_part_suffix("hashing:8")
        ('+length', '')
    """
    return next((suffix for suffix in HOST_PARTS if spec.endswith(suffix)), "")


class ConcatFeaturizer(CachedFeaturizer):
    """Several featurizers' vectors side by side; spec ``"<a>+<b>"`` (e.g.
    ``"all-MiniLM-L6-v2+shape"``). ``parts[0]`` is the (possibly frozen-encoder) base; it keeps its
    own per-prompt cache, which is what an on-disk embedding store should hold
    (:func:`encoder_part`).

    Example:
        >>> f = ConcatFeaturizer([make_embedding_featurizer("hashing:4"), ShapeFeaturizer()])
        >>> f.spec, f.embed(["x"]).shape
        ('hashing:4+shape', (1, 13))
    """

    def __init__(self, parts: Sequence[CachedFeaturizer]) -> None:
        super().__init__()
        if len(parts) < 2:
            raise ValueError(f"ConcatFeaturizer needs at least two parts, got {len(parts)}")
        self.parts = list(parts)
        self.spec = "+".join(p.spec for p in self.parts)
        self.dim = sum(int(p.dim) for p in self.parts)
        self.on_host = all(getattr(p, "on_host", False) for p in self.parts)

    def device_encoding(self) -> DeviceEncoding | str:
        """The first part's device encoding with the other parts appended as host parts, when
        the first part has one and every other part is computed on the host.

        Example:
            >>> ConcatFeaturizer([make_embedding_featurizer("hashing:4"), ShapeFeaturizer()]
            ...                  ).device_encoding()
            "featurizer 'hashing:4' has no encoder to run on the device"
        """
        base = self.parts[0].device_encoding()
        if isinstance(base, str):
            return base
        for part in self.parts[1:]:
            if not getattr(part, "on_host", False):
                return (
                    f"featurizer {self.spec!r}: part {part.spec!r} is not computed on the host "
                    "from the text alone, so it cannot run beside the device encoder"
                )
        return DeviceEncoding(base.embedder, (*base.host_parts, *self.parts[1:]))

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        return np.concatenate([p.embed(prompts, batch_size) for p in self.parts], axis=1)


def encoder_part(featurizer: object) -> object:
    """The featurizer whose vectors an on-disk embedding store keeps: the base of a
    :class:`ConcatFeaturizer`, else the featurizer itself.

    Example:
        >>> encoder_part(make_embedding_featurizer("hashing:4+shape")).spec
        'hashing:4'
    """
    parts = getattr(featurizer, "parts", None)
    return parts[0] if parts else featurizer


def base_spec(spec: str) -> str:
    """``spec`` without a trailing host part (``+shape``, ``+length``).

    Example:
        >>> base_spec("all-MiniLM-L6-v2+shape"), base_spec("hashing:8+length")
        ('all-MiniLM-L6-v2', 'hashing:8')
    """
    suffix = host_part_suffix(spec)
    return spec[: -len(suffix)] if suffix else spec


class PrecomputedFeaturizer(CachedFeaturizer):
    """Lookup of precomputed embeddings (e.g. OpenAI text-embedding-3-small, 1536-d).

    ``.npz``: arrays ``prompts`` [n] (str) and ``embeddings`` [n, d]. ``.parquet``: columns
    ``prompt`` (string) and ``embedding`` (list of floats). A prompt not in the table is an error
    that names it and the file: silently embedding it some other way would mix two spaces.
    """

    on_host = True  # a table lookup per prompt

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.spec = f"precomputed:{path}"
        prompts, matrix = _load_table(self.path)
        self.dim = int(matrix.shape[1])
        self._index = {p: i for i, p in enumerate(prompts)}
        self._matrix = matrix

    def __contains__(self, prompt: str) -> bool:
        return prompt in self._index

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        del batch_size
        rows = []
        for p in prompts:
            i = self._index.get(p)
            if i is None:
                shown = p if len(p) <= 80 else p[:77] + "..."
                raise KeyError(
                    f"{self.path}: no precomputed embedding for prompt {shown!r} "
                    f"({len(self._index)} prompts in the table)"
                )
            rows.append(i)
        return self._matrix[np.asarray(rows, dtype=np.int64)]


def _load_table(path: Path) -> tuple[list[str], np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"precomputed embeddings file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("prompts", "embeddings") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {missing}; has {z.files}")
            prompts = [str(p) for p in z["prompts"].tolist()]
            matrix = np.asarray(z["embeddings"], dtype=np.float32)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = [c for c in ("prompt", "embedding") if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; has {table.column_names}")
        prompts = [str(p) for p in table.column("prompt").to_pylist()]
        rows = table.column("embedding").to_pylist()
        lengths = {len(r) for r in rows}
        if len(lengths) > 1:
            bad = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
            raise ValueError(
                f"{path}: row {bad} has an embedding of length {len(rows[bad])}, "
                f"row 0 has {len(rows[0])}"
            )
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    else:
        raise ValueError(f"{path}: precomputed embeddings must be .npz or .parquet")
    if matrix.ndim != 2 or matrix.shape[0] != len(prompts):
        raise ValueError(
            f"{path}: embeddings shape {matrix.shape} does not match {len(prompts)} prompts"
        )
    return prompts, matrix


class EncoderFeaturizer(CachedFeaturizer):
    """A frozen sentence encoder (an object with ``.embed(prompts, batch_size)`` and ``.dim``)."""

    def __init__(self, spec: str, embedder: object) -> None:
        super().__init__()
        self.spec = spec
        self.embedder = embedder
        self.dim = int(embedder.dim)  # type: ignore[attr-defined]

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        return self.embedder.embed(prompts, batch_size=batch_size)  # type: ignore[attr-defined]

    def device_encoding(self) -> DeviceEncoding | str:
        """The encoder itself, when it is a Flax :class:`~routellm_jax.models.encoders.embedder.
        Embedder` (the encoder specs of :func:`make_embedding_featurizer`); any other object
        with ``embed`` runs on its own."""
        # A local import: the embedder module imports JAX, which hashing and precomputed
        # featurizers never need.
        from routellm_jax.models.encoders.embedder import Embedder

        if isinstance(self.embedder, Embedder):
            return DeviceEncoding(self.embedder)
        return (
            f"featurizer {self.spec!r}: its encoder ({type(self.embedder).__name__}) is not a "
            "Flax Embedder, so it cannot run inside the compiled function"
        )


def make_embedding_featurizer(spec: str, **encoder_kwargs: object) -> CachedFeaturizer:
    """Build the featurizer a spec string names (see the module docstring).

    ``encoder_kwargs`` (e.g. ``dtype``) go to ``load_embedder`` for encoder specs.

    Example:
        >>> make_embedding_featurizer("hashing:64").dim
        64
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"featurizer spec must be a non-empty string, got {spec!r}")
    if spec == "shape":
        return ShapeFeaturizer()
    if spec == "length":
        return LengthFeaturizer()
    suffix = host_part_suffix(spec)
    if suffix:
        base = make_embedding_featurizer(base_spec(spec), **encoder_kwargs)
        return ConcatFeaturizer([base, HOST_PARTS[suffix][0]()])
    kind, sep, arg = spec.partition(":")
    if sep and kind == "hashing":
        try:
            dim = int(arg)
        except ValueError:
            raise ValueError(
                f"featurizer spec {spec!r}: 'hashing:<dim>' needs an int dim"
            ) from None
        return HashingFeaturizer(dim)
    if sep and kind == "precomputed":
        if not arg:
            raise ValueError(f"featurizer spec {spec!r}: 'precomputed:<path>' needs a path")
        return PrecomputedFeaturizer(arg)
    # Anything else names an encoder; import lazily so hashing/precomputed users need no weights.
    from routellm_jax.models.encoders.embedder import load_embedder

    return EncoderFeaturizer(spec, load_embedder(name=spec, **encoder_kwargs))


def featurizer_dim(spec: str) -> int | None:
    """The embedding width a spec gives, when knowable without loading anything (else None).

    Example:
        >>> featurizer_dim("hashing:128"), featurizer_dim("all-MiniLM-L6-v2+shape")
        (128, 393)
        >>> featurizer_dim("all-mpnet-base-v2"), featurizer_dim("all-mpnet-base-v2+length")
        (768, 770)
    """
    if spec == "shape":
        return SHAPE_DIM
    if spec == "length":
        return LENGTH_DIM
    suffix = host_part_suffix(spec)
    if suffix:
        base = featurizer_dim(base_spec(spec))
        return None if base is None else base + HOST_PARTS[suffix][1]
    kind, sep, arg = spec.partition(":")
    if sep and kind == "hashing":
        return int(arg)
    if spec in ENCODERS:
        return ENCODERS[spec].dim
    return None


# ---------------------------------------------------------------------------------------------
# Record indexing shared by the embedding routers: battles -> (model_a, model_b, label, weight).

TIES = ("drop", "half")


def comparison_arrays(
    table: ComparisonTable, models: Sequence[str], ties: str = "drop"
) -> dict[str, np.ndarray]:
    """Index battles by a router's model table.

    Returns ``row`` (kept row numbers of ``table``), ``model_a``/``model_b`` (int32 indices into
    ``models``), ``label`` (float32: 1 = model_a won, 0 = model_b won, 0.5 = tie) and ``weight``.
    Battles with a model outside ``models``, or a model against itself, carry no usable signal and
    are dropped. ``ties="drop"`` drops ties (the reference MF trainer does), ``"half"`` keeps them
    as half a win each (the reference Bradley-Terry fit does).

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("q", "x", "y", "b")])
        >>> comparison_arrays(t, ["y", "x"])["model_a"].tolist()
        [1]
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    index = {m: i for i, m in enumerate(models)}
    a = np.fromiter((index.get(m, -1) for m in table.model_a), dtype=np.int64, count=len(table))
    b = np.fromiter((index.get(m, -1) for m in table.model_b), dtype=np.int64, count=len(table))
    keep = (a >= 0) & (b >= 0) & (a != b)
    if ties == "drop":
        keep &= table.outcome != OUTCOME_TIE
    row = np.flatnonzero(keep)
    outcome = table.outcome[row]
    label = np.where(outcome == OUTCOME_A, 1.0, np.where(outcome == OUTCOME_B, 0.0, 0.5))
    return {
        "row": row,
        "model_a": a[row].astype(np.int32),
        "model_b": b[row].astype(np.int32),
        "label": label.astype(np.float32),
        "weight": table.weight[row].astype(np.float32),
    }


def battles_with_outcomes(
    data: TrainingData,
    use_outcomes: bool,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> ComparisonTable:
    """The battles of ``data``, plus its per-model outcomes turned into battles when asked.

    Outcome -> battle conversion is ``routellm_jax.data.elo.outcomes_to_comparisons`` (every pair
    of models graded on the same prompt becomes one battle, the better score winning). A
    pair-specific router passes its ``pairs`` (strong, weak) so that only those battles are
    formed: with 27 models on a prompt the full conversion makes 351 battles, of which it keeps 1.

    Example:
        >>> battles_with_outcomes(TrainingData.of(), use_outcomes=False).__len__()
        0
    """
    table = data.comparisons
    if use_outcomes and len(data.outcomes):
        from routellm_jax.data.elo import outcomes_to_comparisons

        converted = outcomes_to_comparisons(data.outcomes, pairs=pairs)
        table = ComparisonTable.concat([table, converted])
    return table


def pair_battles(
    data: TrainingData,
    use_outcomes: bool,
    strong_models: Sequence[str],
    weak_models: Sequence[str],
) -> tuple[ComparisonTable, np.ndarray]:
    """The strong-vs-weak battles of a pair-specific router (bert, causal_llm), oriented by
    :func:`routellm_jax.data.labels.orient`: ``(table, labels)``. With ``use_outcomes`` the
    per-model outcomes join as battles, forming only the strong x weak pairs.

    Example:
        >>> pair_battles(TrainingData.of(), False, ["gpt-4"], ["mixtral"])[1].tolist()
        []
    """
    from routellm_jax.data.labels import orient

    pairs = [(s, w) for s in strong_models for w in weak_models]
    return orient(battles_with_outcomes(data, use_outcomes, pairs), strong_models, weak_models)


def check_models(models: Sequence[str], arch: str) -> tuple[str, ...]:
    """Validate a router's model table (non-empty, no duplicates) and return it as a tuple.

    Example:
        >>> check_models(["gpt-4", "mixtral"], "mf")
        ('gpt-4', 'mixtral')
    """
    models = tuple(models)
    if not models:
        raise ValueError(
            f"{arch}: config.models is empty; set it to the model table "
            "(e.g. sorted(data.comparisons.models()))"
        )
    dup = sorted({m for m in models if models.count(m) > 1})
    if dup:
        raise ValueError(f"{arch}: config.models lists {dup} more than once")
    return models


def check_pair(strong: object, weak: object, n_models: int, arch: str) -> None:
    """Raise if a concrete strong/weak index is outside the model table (traced values pass).

    Example:
        >>> check_pair(0, 1, 2, "mf")
    """
    for name, value in (("strong", strong), ("weak", weak)):
        if isinstance(value, (int, np.integer)) and not 0 <= int(value) < n_models:
            raise IndexError(f"{arch}: {name} index {int(value)} outside 0..{n_models - 1}")
