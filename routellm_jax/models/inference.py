"""Prompts -> win rates for one architecture: the three ways a router runs, chosen by declaration.

:func:`make_runner` picks the path from what the architecture and its featurizer declare (never
by running probe prompts), and every path runs through one
:class:`~routellm_jax.models.executor.BucketedExecutor` (planning, compile cache, stats):

* ``"fused"``: the architecture declares an ``embedding_key`` (its ``win_rate`` takes exactly the
  featurizer's vectors) and the featurizer declares a
  :class:`~routellm_jax.models.featurizers.DeviceEncoding` (a Flax MiniLM embedder, optionally
  followed by host-computed parts such as ``+shape``). Prompts are tokenized on the host, sorted
  by token length and cut into similar-length chunks; encoder, pooling, the host parts' columns
  and the head run as one compiled function per chunk shape.
* ``"tokens"``: the architecture declares ``sequence_keys`` and a ``mask_key`` (bert,
  causal_llm): ``prompt_inputs`` is run on the host, rows are sorted by their mask's length and
  cut into similar-length chunks, each cut or zero-padded to its length bucket.
* ``"vectors"``: anything else: ``prompt_inputs`` on the host, rows chunked by count alone.

A runner that is not fused says why (:attr:`Runner.reason`), so someone adding an architecture
can see what to declare (``docs/adding_an_architecture.md``). The runners know nothing of zoo
entries, model names or thresholds: :class:`routellm_jax.api.Router` adds those.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import inspect
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

from routellm_jax.data.pipeline import row_lengths
from routellm_jax.models.encoders.embedder import encode
from routellm_jax.models.executor import (
    LENGTH_BUCKETS,
    ROW_BUCKETS,
    BucketedExecutor,
    Chunk,
    backend_limits,
    bucket_grid,
)
from routellm_jax.models.featurizers import DeviceEncoding
from routellm_jax.models.registry import Architecture

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
_JNP_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Featurizers cache embeddings per prompt text; a long-running router bounds that memory.
FEATURIZER_CACHE_LIMIT = 200_000


@dataclasses.dataclass(frozen=True)
class Shapes:
    """The bucket grids and limits of a runner: at most ``max_batch`` rows per call, rows padded
    to ``row_buckets``, lengths to ``length_buckets``; ``chunk_tokens`` caps the padded tokens of
    one call (default: 1024 on CPU, none on accelerators)."""

    max_batch: int = 256
    row_buckets: tuple[int, ...] = ROW_BUCKETS
    length_buckets: tuple[int, ...] = LENGTH_BUCKETS
    chunk_tokens: int | None = None

    def executor(
        self,
        fn: Any,
        max_length: int | None = None,
        *,
        identity: str | None = None,
        source_files: Sequence[Path] = (),
    ) -> BucketedExecutor:
        """A :class:`BucketedExecutor` for ``fn`` on these grids (lengths cut at ``max_length``);
        ``identity`` and ``source_files`` let it keep compiled shapes on disk
        (:class:`~routellm_jax.models.executor.ExecutableStore`)."""
        max_tokens, dispatch_tokens = backend_limits(self.chunk_tokens)
        lengths = self.length_buckets
        if max_length is not None:
            lengths = bucket_grid(lengths, max_length)
        return BucketedExecutor(
            fn,
            length_buckets=lengths,
            row_buckets=bucket_grid(self.row_buckets, self.max_batch),
            max_tokens=max_tokens,
            dispatch_tokens=dispatch_tokens,
            identity=identity,
            source_files=source_files,
        )


def _architecture_sources(arch: Architecture) -> list[Path]:
    """The source files of an architecture's functions (a plug-in's module lives outside this
    package, so the executable store must hash it too)."""
    files = set()
    for field in dataclasses.fields(arch):
        fn = getattr(arch, field.name)
        if callable(fn) and not isinstance(fn, type):
            try:
                files.add(Path(inspect.getsourcefile(fn) or ""))
            except TypeError:  # a builtin or a C function has no source file
                continue
    return sorted(f for f in files if f.is_file())


def _bound_cache(featurizers: Sequence[Any]) -> None:
    for f in featurizers:  # per-prompt caches, bounded so a long-running router keeps its memory
        cache = getattr(f, "cache", None)
        if isinstance(cache, dict) and len(cache) > FEATURIZER_CACHE_LIMIT:
            cache.clear()


def _head(arch: Architecture, params: Any, inputs: dict[str, Any], select: Any, config: Any) -> Any:
    """The head of one compiled call: ``win_rate`` for ``select = (strong, weak)`` (scalars),
    the architecture's ``model_scores`` for ``select = ids`` (``[m]`` int32). The two selects
    have different pytree structures, so each compiles to its own executable in one executor
    (shared stats and compile cache; a warm win-rate shape is never recompiled by scoring)."""
    if isinstance(select, tuple):
        strong, weak = select
        return arch.win_rate(params, inputs, strong, weak, config)
    return arch.model_scores(params, inputs, select, config)


class Runner(abc.ABC):
    """Base of the three paths: ``win_rate(prompts, strong, weak)`` with model *indices*, and
    ``model_scores(prompts, ids)`` for architectures that declare ``model_scores``.

    Attributes: ``path`` (``"fused"``, ``"tokens"`` or ``"vectors"``), ``reason`` (why this path:
    for an unfused runner, what the architecture or featurizer does not declare), ``executor``.
    """

    path = ""

    def __init__(self, executor: BucketedExecutor, reason: str, arch: Architecture) -> None:
        self.executor = executor
        self.reason = reason
        self.scorer = arch

    def win_rate(self, prompts: list[str], strong: int, weak: int) -> np.ndarray:
        """``[n]`` float32 P(strong beats weak) per prompt."""
        out = np.empty(len(prompts), dtype=np.float32)
        # NumPy scalars, not jnp.int32: making a device scalar eagerly compiles a conversion.
        return self._run(prompts, (np.int32(strong), np.int32(weak)), out)

    def model_scores(self, prompts: list[str], ids: Any) -> np.ndarray:
        """``[n, len(ids)]`` float32: the architecture's ``model_scores`` for these model indices.

        Raises ``ValueError`` for an architecture that declares no ``model_scores`` (pair-only)."""
        if self.scorer.model_scores is None:
            raise ValueError(
                f"architecture {self.scorer.name!r} declares no model_scores: it scores one "
                "strong/weak pair, not a list of models"
            )
        ids = np.asarray(ids, dtype=np.int32)
        out = np.empty((len(prompts), ids.size), dtype=np.float32)
        return self._run(prompts, ids, out)

    @abc.abstractmethod
    def _run(self, prompts: list[str], select: Any, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` with the head's answer for ``select`` on ``prompts``: each path (fused,
        tokens, vectors) prepares its inputs its own way."""


class FusedRunner(Runner):
    """Tokenize on the host, then run encoder + pooling + host parts + head as one function.

    Prompts are tokenized in one ``encode_batch`` call (Rust, parallel); the executor sorts them
    by token length and cuts similar-length chunks (padding ~10% of the real tokens). The host
    parts of the featurizer (the ``+shape`` of ``"all-MiniLM-L6-v2+shape"``) are computed on the
    host for each chunk's prompts and appended to the pooled embedding inside the compiled
    function, as the featurizer does; padding rows get zeros and their outputs are dropped.
    """

    path = "fused"

    def __init__(
        self,
        arch: Architecture,
        config: Any,
        params: Any,
        encoding: DeviceEncoding,
        shapes: Shapes,
        precision: str | None,
    ) -> None:
        embedder = encoding.embedder
        self.tokenizer = embedder.tokenizer
        self.host_featurizers = list(encoding.host_parts)
        self.host_dim = sum(int(f.dim) for f in self.host_featurizers)
        self.params = params
        self.precision = precision or embedder.dtype
        dtype = _JNP_DTYPES[self.precision]
        enc_config, key = embedder.config, arch.embedding_key
        encoder = embedder.params
        if dtype == jnp.bfloat16:  # store bf16 weights, as load_embedder(dtype="bfloat16") does
            # Cast on the host: an eager astype of a device array compiles one conversion per
            # weight shape, at every load.
            encoder = jax.tree.map(
                lambda x: (
                    np.asarray(x).astype(jnp.bfloat16)
                    if jnp.issubdtype(x.dtype, jnp.floating)
                    else x
                ),
                encoder,
            )
        # The encoder weights are frozen inputs of the compiled function, on the default device.
        self.encoder_params = jax.device_put(encoder)
        # A local import: embedder.encode is the jittable encoder (encoders import this package).

        def fused(
            head: Any,
            encoder: Any,
            ids: Any,
            mask: Any,
            host_features: Any,
            select: Any,
        ) -> Any:
            emb = encode(encoder, ids, mask, enc_config, dtype=dtype)  # [batch, hidden] f32
            if host_features is not None:  # [batch, host_dim] f32, after the encoder's vector
                emb = jnp.concatenate([emb, host_features], axis=1)
            return _head(arch, head, {key: emb}, select, config)

        parts = " + ".join(f.spec for f in self.host_featurizers)
        # Everything ``fused`` closes over, for the executor's on-disk store of compiled shapes.
        identity = (
            f"fused|{arch.name}|{config!r}|{enc_config!r}|{self.precision}|{key}|"
            f"{self.host_dim}|{parts}"
        )
        super().__init__(
            shapes.executor(
                fused,
                self.tokenizer.max_length,
                identity=identity,
                source_files=_architecture_sources(arch),
            ),
            f"fused: {embedder.name} ({self.precision}) and the {arch.name} head in one compiled "
            f"function{f', host features {parts}' if parts else ''}",
            arch,
        )

    @property
    def jitted(self) -> Any:
        """The jitted fused function (``tools/bench_xla_flags.py`` compiles it directly)."""
        return self.executor.jitted

    def host_features(self, prompts: Sequence[str]) -> np.ndarray | None:
        """``[n, host_dim]`` float32 host-part vectors, or None for a plain encoder featurizer."""
        if not self.host_featurizers:
            return None
        features = np.concatenate(
            [np.asarray(f.embed(prompts), dtype=np.float32) for f in self.host_featurizers], axis=1
        )
        _bound_cache(self.host_featurizers)
        return features

    def _run(self, prompts: list[str], select: Any, out: np.ndarray) -> np.ndarray:
        if not prompts:
            return out
        t0 = time.perf_counter()
        ids = self.tokenizer.encode_ids(prompts)
        host_features = self.host_features(prompts)  # [n, host_dim] or None
        self.executor.stats.featurize_s += time.perf_counter() - t0

        def build(chunk: Chunk) -> tuple[tuple, str]:
            rows, length = chunk.rows, chunk.length
            input_ids, mask = self.tokenizer.pad([ids[i] for i in chunk.index], length, rows)
            features = None
            if host_features is not None:  # padding rows get zeros; their outputs are dropped
                features = np.zeros((rows, self.host_dim), dtype=np.float32)
                features[: len(chunk.index)] = host_features[chunk.index]
            return (input_ids, mask, features, select), f"input_ids[{rows}, {length}]"

        lengths = [len(x) for x in ids]
        return self.executor.run(lengths, build, (self.params, self.encoder_params), out)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if x.shape[0] == rows:
        return x
    # Repeat the last real row: padding rows are then valid inputs (no all-zero attention masks).
    return np.concatenate([x, np.repeat(x[-1:], rows - x.shape[0], axis=0)], axis=0)


def _label(inputs: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k}{list(v.shape)}" for k, v in sorted(inputs.items()))


class _HostInputs(Runner):
    """Common part of the token and vector paths: ``prompt_inputs`` on the host, then the
    architecture's ``win_rate`` compiled per input shape."""

    def __init__(
        self,
        arch: Architecture,
        config: Any,
        params: Any,
        featurizer: Any,
        shapes: Shapes,
        why: str,
    ) -> None:
        self.arch, self.config, self.featurizer = arch, config, featurizer
        self.params = self.prepare_params(params)

        def forward(params: Any, inputs: dict[str, Any], select: Any) -> Any:
            return _head(arch, params, inputs, select, config)

        super().__init__(shapes.executor(forward), why, arch)

    def prepare_params(self, params: Any) -> Any:
        """The parameters every call runs with (as given, unless a path overrides this)."""
        return params

    def inputs(self, prompts: list[str]) -> dict[str, np.ndarray]:
        """The architecture's inference inputs for every prompt (host time counted)."""
        t0 = time.perf_counter()
        raw = self.arch.prompt_inputs(prompts, self.featurizer, self.config)
        inputs = {k: np.asarray(v) for k, v in raw.items()}
        _bound_cache([self.featurizer])
        self.executor.stats.featurize_s += time.perf_counter() - t0
        return inputs


def cast_ahead(forward: Any, params: Any, example: tuple[Any, ...]) -> Any:
    """``params`` with every leaf that ``forward(params, *example)`` only ever casts to a
    narrower float dtype stored in that dtype.

    A token-path model in ``bfloat16`` keeps float32 parameters (they are trained in float32)
    and casts its matmul weights at every call: reading the float32 weights and writing bf16
    copies costs a single prompt's call as much time as a good part of its matmuls. Cast once
    here, the cast inside the compiled function is a no-op and the outputs are the same bits.
    A leaf used in any other way (LayerNorm scales, embedding tables looked up in float32, a
    float32 head) is kept as it is, and so is one used inside a call or a ``scan`` body: stored
    in bf16, a scanned layer stack (``causal_llm``) made a call slower, not faster (measured;
    the cause was not pinned down).

    Example:
        >>> def forward(p, x):
        ...     return (x.astype(jnp.bfloat16) @ p["w"].astype(jnp.bfloat16)).astype(jnp.float32) + p["b"]
        >>> p = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
        >>> {k: v.dtype.name for k, v in cast_ahead(forward, p, (jnp.ones((1, 2)),)).items()}
        {'b': 'float32', 'w': 'bfloat16'}
    """
    leaves, treedef = jax.tree.flatten(params)
    jaxpr = jax.make_jaxpr(forward)(params, *example).jaxpr
    param_vars = jaxpr.invars[: len(leaves)]
    uses: dict[Any, list[Any]] = {v: [] for v in param_vars}
    for eqn in jaxpr.eqns:
        for v in eqn.invars:
            if isinstance(v, jax.extend.core.Var) and v in uses:
                uses[v].append(eqn)
    returned = {v for v in jaxpr.outvars if isinstance(v, jax.extend.core.Var)}
    cast = []
    for leaf, var in zip(leaves, param_vars):
        eqns = uses[var]
        targets = {
            e.params["new_dtype"] for e in eqns if e.primitive.name == "convert_element_type"
        }
        if (
            eqns
            and var not in returned
            and len(targets) == 1
            and all(e.primitive.name == "convert_element_type" for e in eqns)
        ):
            (target,) = targets
            if (
                jnp.issubdtype(leaf.dtype, jnp.floating)
                and jnp.issubdtype(target, jnp.floating)
                and jnp.finfo(target).bits < jnp.finfo(leaf.dtype).bits
            ):
                # On the host: an eager astype of a device array compiles one conversion per shape.
                leaf = jax.device_put(np.asarray(leaf).astype(target))
        cast.append(leaf)
    return jax.tree.unflatten(treedef, cast)


class TokenRunner(_HostInputs):
    """Token-sequence architectures (declared ``sequence_keys`` and ``mask_key``): rows sorted by
    their mask's length and cut into similar-length chunks, each chunk's sequence arrays cut (the
    trailing columns are padding in all of its rows) or zero-padded to its length bucket.
    Parameters the model only ever casts to a narrower dtype are cast once at load
    (:func:`cast_ahead`)."""

    path = "tokens"

    def prepare_params(self, params: Any) -> Any:
        arch, config = self.arch, self.config
        if arch.precision_key and getattr(config, arch.precision_key, None) == "float32":
            return params  # nothing narrower to cast to: skip tracing the model at load
        raw = arch.prompt_inputs(["a"], self.featurizer, config)
        example = {k: np.asarray(v) for k, v in raw.items()}
        forward = functools.partial(_head, arch, config=config)
        return cast_ahead(lambda p, inputs: forward(p, inputs, (0, 1)), params, (example,))

    def _run(self, prompts: list[str], select: Any, out: np.ndarray) -> np.ndarray:
        if not prompts:
            return out
        inputs = self.inputs(prompts)
        lengths = row_lengths(inputs[self.arch.mask_key])  # right-padded rows
        sequence = set(self.arch.sequence_keys)

        def build(chunk: Chunk) -> tuple[tuple, str]:
            # A row longer than every bucket keeps its own length: never truncated by the plan.
            length = max(chunk.length, int(lengths[chunk.index].max()))
            rows = {}
            for key, x in inputs.items():
                x = x[chunk.index]
                if key in sequence:
                    if length <= x.shape[1]:
                        x = x[:, :length]
                    else:  # zeros: [PAD] ids and mask 0, inert by the contract
                        x = np.pad(x, [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
                rows[key] = _pad_rows(x, chunk.rows)
            return (rows, select), _label(rows)

        return self.executor.run(lengths, build, (self.params,), out)


class VectorRunner(_HostInputs):
    """Fixed-shape inputs (embedding vectors, prompt hashes): rows chunked by count alone."""

    path = "vectors"

    def _run(self, prompts: list[str], select: Any, out: np.ndarray) -> np.ndarray:
        if not prompts:
            return out
        inputs = self.inputs(prompts)

        def build(chunk: Chunk) -> tuple[tuple, str]:
            rows = {k: _pad_rows(x[chunk.index], chunk.rows) for k, x in inputs.items()}
            return (rows, select), _label(rows)

        return self.executor.run(None, build, (self.params,), out, count=len(prompts))


def device_encoding(arch: Architecture, featurizer: Any, fuse: bool = True) -> DeviceEncoding | str:
    """The :class:`DeviceEncoding` the fused path runs, or a sentence saying why this router is
    not fused: ``fuse=False`` was asked for, the architecture declares no ``embedding_key``, or
    the featurizer declares no encoder that can run on the device.

    Example:
        >>> from routellm_jax.models.featurizers import make_embedding_featurizer
        >>> from routellm_jax.models.registry import get_architecture
        >>> device_encoding(get_architecture("mf"), make_embedding_featurizer("hashing:8"))
        "not fused: featurizer 'hashing:8' has no encoder to run on the device"
    """
    if not fuse:
        return "not fused: fuse_encoder=False"
    if not arch.embedding_key:
        return (
            f"not fused: architecture {arch.name!r} declares no embedding_key (its win_rate does "
            "not take the featurizer's vectors)"
        )
    declared = getattr(featurizer, "device_encoding", None)
    if declared is None:
        return (
            f"not fused: the featurizer ({type(featurizer).__name__}) declares no device_encoding()"
        )
    encoding = declared()
    return f"not fused: {encoding}" if isinstance(encoding, str) else encoding


def make_runner(
    arch: Architecture,
    config: Any,
    params: Any,
    featurizer: Any,
    *,
    shapes: Shapes = Shapes(),
    fuse: bool = True,
    precision: str | None = None,
) -> Runner:
    """The runner of this architecture and featurizer: fused when both declare it, else the
    token path (declared ``sequence_keys``/``mask_key``), else the vector path. ``precision``
    is the fused encoder's (``None``: the embedder's own dtype); ``params`` are used as given
    (put them on the device first).

    Example:
        >>> from routellm_jax.models.registry import get_architecture
        >>> arch = get_architecture("mf")
        >>> cfg = arch.make_config(models=("a", "b"), featurizer="hashing:8", text_dim=8)
        >>> runner = make_runner(arch, cfg, arch.init(jax.random.key(0), cfg), arch.make_featurizer(cfg))
        >>> runner.path, runner.win_rate(["hi", "there"], 0, 1).shape
        ('vectors', (2,))
    """
    encoding = device_encoding(arch, featurizer, fuse)
    if isinstance(encoding, DeviceEncoding):
        return FusedRunner(arch, config, params, encoding, shapes, precision)
    if arch.sequence_keys and arch.mask_key:
        return TokenRunner(arch, config, params, featurizer, shapes, encoding)
    return VectorRunner(arch, config, params, featurizer, shapes, encoding)
