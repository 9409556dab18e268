"""The thin inference API: ``load()`` a zoo entry, then ``win_rate`` / ``route`` / ``calibrate``.

Example::

    import routellm_jax
    router = routellm_jax.load("mf-minilm")              # a zoo name, a URL or an entry folder
    router.win_rate(["What is 2+2?"])                    # -> array([0.31], dtype=float32)
    router.route(prompts, strong_share=0.3)              # -> bool array, True = strong model
    router.decide(["Prove Fermat's last theorem"], threshold=0.5)
    # -> [{"win_rate": 0.77, "strong": True, "model": "gpt-4-1106-preview", "threshold": 0.5}]

How it stays fast: prompts are featurized in chunks of at most ``max_batch``; each chunk is padded
to one of a few batch sizes (``batch_buckets``) and, for token inputs with an ``attention_mask``,
to one of a few sequence lengths (``seq_buckets``), so a warm router sees a small fixed set of
shapes. The architecture's ``win_rate`` is compiled ahead of time once per shape
(``jit(...).lower(...).compile()``), which is what lets :attr:`Router.stats` report compile time
apart from steady-state time, and makes a recompile impossible to miss (``stats["compiles"]``).
The strong/weak indices are traced arguments, so changing the model pair never recompiles.

Parameters are restored from the Orbax checkpoint as host arrays and put on the default device:
nothing about the exporting machine's devices or sharding is stored, so the same entry loads on
one CPU, a GPU or a TPU host.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.zoo.card import (
    CARD_FILE,
    Calibration,
    ModelCard,
    calibration_from_win_rates,
    threshold_at_share,
)

# irt on MiniLM + prompt-shape features: the best single router of experiments/results (issue 6).
DEFAULT_ROUTER = "irt-shape-minilm"
# Encoder precisions of the fused path. float32 is exact (the default); bfloat16 stores the encoder
# weights in bf16 and feeds its matmuls bf16 operands with float32 accumulation (win rates move by
# 2e-4 to 2e-3, see tests/zoo), 1.3-1.9x faster on CPUs with AVX512-BF16 (tools/bench_infer.py).
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
BATCH_BUCKETS: tuple[int, ...] = (1, 8, 32, 128, 256)
SEQ_BUCKETS: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
# Featurizers cache embeddings per prompt text; a long-running router bounds that memory.
_FEATURIZER_CACHE_LIMIT = 200_000


class RouterError(ValueError):
    """A request the router cannot serve (unknown model name, no calibration for a pair...)."""


class PromptError(RouterError):
    """A prompt that is not text a tokenizer can read; ``index`` is its position in the batch."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def check_prompt(prompt: Any, where: str = "prompt") -> str:
    """Return ``prompt`` if it is a string that encodes as UTF-8, else raise ``ValueError``.

    Python strings decoded from JSON may hold unpaired UTF-16 surrogates (``"\\ud800"``), which
    every tokenizer rejects with an unhelpful ``TypeError``; checking at the boundary turns that
    into an error naming ``where`` (a request field, a file and line) before any batch is built.
    """
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: expected a string, got {type(prompt).__name__}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{where}: not valid Unicode text (unpaired surrogate {prompt[err.start]!r} at "
            f"character {err.start})"
        ) from None
    return prompt


def check_prompts(prompts: Sequence[Any]) -> list[str]:
    """Every prompt through :func:`check_prompt`; the first bad one raises :class:`PromptError`."""
    checked = []
    for i, prompt in enumerate(prompts):
        try:
            checked.append(check_prompt(prompt, f"prompts[{i}]"))
        except ValueError as err:
            raise PromptError(str(err), i) from None
    return checked


def _bucket(n: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if n <= b:
            return b
    return n  # larger than every bucket: exact size (callers chunk so this stays rare)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if x.shape[0] == rows:
        return x
    # Repeat the last real row: padding rows are then valid inputs (no all-zero attention masks).
    return np.concatenate([x, np.repeat(x[-1:], rows - x.shape[0], axis=0)], axis=0)


def _pad_inputs(
    inputs: dict[str, Any], n: int, batch_buckets: Sequence[int], seq_buckets: Sequence[int]
) -> dict[str, np.ndarray]:
    """Pad a featurized chunk to bucketed shapes (batch always; sequence when masked)."""
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    mask = arrays.get("attention_mask")
    if mask is not None and mask.ndim == 2 and seq_buckets:
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 1
        target = _bucket(length, seq_buckets)
        seq = mask.shape[1]
        for key, x in arrays.items():
            if x.ndim >= 2 and x.shape[:2] == (n, seq):
                if target <= seq:  # trailing columns are padding in every row: drop them
                    arrays[key] = x[:, :target]
                else:  # pad with zeros (= [PAD] ids, mask 0) up to the bucket
                    pad = [(0, 0), (0, target - seq)] + [(0, 0)] * (x.ndim - 2)
                    arrays[key] = np.pad(x, pad)
    rows = _bucket(n, batch_buckets)
    return {k: _pad_rows(x, rows) if x.ndim and x.shape[0] == n else x for k, x in arrays.items()}


@dataclasses.dataclass
class _Stats:
    compiles: int = 0
    compile_s: float = 0.0
    shapes: list[str] = dataclasses.field(default_factory=list)
    calls: int = 0
    prompts: int = 0
    featurize_s: float = 0.0
    steady_s: float = 0.0  # forward time of already-compiled shapes (featurizing excluded)
    tokens: int = 0  # fused path: real prompt tokens ...
    padded_tokens: int = 0  # ... and the tokens the compiled calls ran on (with padding)


class Router:
    """A loaded router. Build it with :func:`load` (or :meth:`from_params` for fresh params).

    Attributes: ``name``, ``card`` (:class:`~routellm_jax.zoo.card.ModelCard`), ``models`` (the
    model-name table), ``default_strong`` / ``default_weak``, ``stats`` (timings).

    ``encoder_dtype`` is the encoder precision (``None``/``"float32"`` exact, ``"bfloat16"``;
    :func:`load` calls it ``precision``): of the fused MiniLM encoder, or the config ``dtype`` of
    an architecture with its own encoder (bert, causal_llm). Fused encoder+head path:
    ``chunk_tokens`` caps the padded tokens of one compiled call (default: 1024 on CPU, where
    bigger calls run slower per token; no cap on accelerators).

    Example:
        >>> router = load("mf-minilm")  # doctest: +SKIP
        >>> router.route(["hi"], strong_share=0.5)  # doctest: +SKIP
        array([False])
    """

    def __init__(
        self,
        card: ModelCard,
        params: Any,
        *,
        featurizer: Any = None,
        max_batch: int = 256,
        batch_buckets: Sequence[int] = BATCH_BUCKETS,
        seq_buckets: Sequence[int] = SEQ_BUCKETS,
        source: str = "",
        fuse_encoder: bool = True,
        encoder_dtype: str | None = None,
        chunk_tokens: int | None = None,
    ) -> None:
        import jax

        from routellm_jax.models.registry import get_architecture

        self.card = card
        self.name = card.name
        self.source = source
        self.arch = get_architecture(card.architecture)
        self.config = card.arch_config(self.arch.config_cls)
        if encoder_dtype is not None and encoder_dtype not in PRECISIONS:
            raise RouterError(
                f"router {self.name!r}: encoder_dtype/precision must be one of {PRECISIONS}, "
                f"got {encoder_dtype!r}"
            )
        # Architectures that run their own encoder (bert, causal_llm) have a compute ``dtype`` in
        # their config: the precision is that dtype (their parameters stay float32).
        own_encoder = (
            encoder_dtype is not None
            and dataclasses.is_dataclass(self.config)
            and "dtype" in {f.name for f in dataclasses.fields(self.config)}
        )
        if own_encoder:
            self.config = dataclasses.replace(self.config, dtype=encoder_dtype)
        self.featurizer = (
            featurizer if featurizer is not None else self.arch.make_featurizer(self.config)
        )
        self.models: list[str] = list(card.models)
        self.default_strong = card.default_strong
        self.default_weak = card.default_weak
        self.max_batch = int(max_batch)
        self.batch_buckets = tuple(sorted(b for b in batch_buckets if b <= self.max_batch))
        if not self.batch_buckets or self.batch_buckets[-1] != self.max_batch:
            self.batch_buckets = (*self.batch_buckets, self.max_batch)
        self.seq_buckets = tuple(sorted(seq_buckets))
        # Host arrays -> the default device; no sharding from the exporting machine survives.
        self.params = jax.device_put(params)
        self._calibrations: dict[tuple[str, str], Calibration] = {}
        if card.calibration is not None:
            c = card.calibration
            self._calibrations[(c.strong, c.weak)] = c
        config = self.config
        arch = self.arch

        def forward(params: Any, inputs: dict[str, Any], strong: Any, weak: Any) -> Any:
            return arch.win_rate(params, inputs, strong, weak, config)

        self._jitted = jax.jit(forward)
        self._compiled: dict[tuple, Any] = {}
        self._compile_lock = threading.Lock()
        self._stats = _Stats()
        self.encoder_dtype = encoder_dtype
        self.chunk_tokens = chunk_tokens
        self._fused = self._make_fused() if fuse_encoder else None
        if encoder_dtype not in (None, "float32") and self._fused is None and not own_encoder:
            raise RouterError(
                f"router {self.name!r}: encoder_dtype/precision needs an encoder inside the "
                "router (the fused MiniLM path, or an architecture with a dtype such as bert or "
                "causal_llm); this architecture/featurizer has neither"
            )

    # ---- construction -----------------------------------------------------------------------

    @classmethod
    def from_params(
        cls,
        arch_name: str,
        config: Any,
        params: Any,
        *,
        name: str = "unsaved",
        strong: str | None = None,
        weak: str | None = None,
        featurizer: Any = None,
        **kwargs: Any,
    ) -> Router:
        """A router on in-memory parameters (no card on disk; no calibration until calibrated).

        Example:
            >>> r = Router.from_params("mf", cfg, params, strong="gpt-4", weak="mixtral")  # doctest: +SKIP
        """
        from routellm_jax.zoo.card import CheckpointRef, config_to_json

        models = [str(m) for m in getattr(config, "models", ())]
        strong, weak = _default_pair(models, strong, weak)
        card = ModelCard(
            name=name,
            version="0",
            architecture=arch_name,
            config=config_to_json(config),
            models=models,
            default_strong=strong,
            default_weak=weak,
            checkpoint=CheckpointRef(),
        )
        return cls(card, params, featurizer=featurizer, **kwargs)

    # ---- model pair -------------------------------------------------------------------------

    def _pair(self, strong: str | None, weak: str | None) -> tuple[str, str, int, int]:
        strong = strong or self.default_strong
        weak = weak or self.default_weak
        if not self.models:  # a pair-specific router: only its own pair exists
            if (strong, weak) != (self.default_strong, self.default_weak):
                raise RouterError(
                    f"router {self.name!r} is trained for {self.default_strong} vs "
                    f"{self.default_weak} only; got {strong} vs {weak}"
                )
            return strong, weak, 0, 0
        index = {m: i for i, m in enumerate(self.models)}
        for role, model in (("strong", strong), ("weak", weak)):
            if model not in index:
                raise RouterError(
                    f"router {self.name!r}: {role} model {model!r} is not in its model table "
                    f"({len(self.models)} models, e.g. {self.models[:5]})"
                )
        if strong == weak:
            raise RouterError(f"strong and weak are the same model {strong!r}")
        return strong, weak, index[strong], index[weak]

    # ---- encoder + head in one jit ----------------------------------------------------------

    def _make_fused(self) -> _Fused | None:
        """The fused path, when the architecture's inputs are exactly the featurizer's vectors
        (``{"embedding": featurizer.embed(prompts)}``) and those are a Flax embedder's sentence
        embeddings, optionally followed by host-computed features (``"<encoder>+shape"``: a
        :class:`~routellm_jax.models.featurizers.ConcatFeaturizer` whose first part wraps the
        embedder and whose other parts need no encoder)."""
        parts = list(getattr(self.featurizer, "parts", None) or [self.featurizer])
        encoder_part, host_parts = parts[0], parts[1:]
        embedder = getattr(encoder_part, "embedder", None)
        needed = ("tokenizer", "params", "config", "buckets")
        if embedder is None or not all(hasattr(embedder, a) for a in needed):
            return None
        if any(hasattr(p, "embedder") or not hasattr(p, "embed") for p in host_parts):
            return None  # a second encoder (or something opaque) cannot run on the host per chunk
        probe = ["routing probe", "a somewhat longer routing probe prompt, to check the inputs"]
        try:
            inputs = self.arch.prompt_inputs(probe, self.featurizer, self.config)
        except Exception:  # an architecture that cannot featurize plain prompts: no fusion
            return None
        if set(inputs) != {"embedding"}:
            return None
        direct = np.asarray(self.featurizer.embed(probe), dtype=np.float32)
        if not np.array_equal(np.asarray(inputs["embedding"], dtype=np.float32), direct):
            return None
        # The fused function rebuilds the featurizer's vector as [encoder | host parts]; make sure
        # that is the featurizer's own layout (every embed() call here hits a cache).
        pieces = [np.asarray(p.embed(probe), dtype=np.float32) for p in parts]
        if not np.array_equal(np.concatenate(pieces, axis=1), direct):
            return None
        return _Fused(self, embedder, host_parts)

    # ---- win rates --------------------------------------------------------------------------

    def _forward(self, inputs: dict[str, np.ndarray], strong: int, weak: int) -> np.ndarray:
        import jax
        import jax.numpy as jnp

        key = tuple(sorted((k, v.shape, str(v.dtype)) for k, v in inputs.items()))
        args = (self.params, inputs, jnp.int32(strong), jnp.int32(weak))
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._compile_lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    start = time.perf_counter()
                    compiled = self._jitted.lower(*args).compile()
                    self._stats.compile_s += time.perf_counter() - start
                    self._stats.compiles += 1
                    self._stats.shapes.append(", ".join(f"{k}{list(s)}" for k, s, _ in key))
                    self._compiled[key] = compiled
        start = time.perf_counter()
        out = np.asarray(jax.device_get(compiled(*args)))
        self._stats.steady_s += time.perf_counter() - start
        return out

    def win_rate(
        self, prompts: Sequence[str], strong: str | None = None, weak: str | None = None
    ) -> np.ndarray:
        """``[n]`` float32 P(strong model beats weak model) for each prompt.

        ``strong``/``weak`` are model names from :attr:`models` (default: the card's pair).

        Example:
            >>> load("mf-minilm").win_rate(["What is 2+2?", "Prove the Riemann hypothesis"])  # doctest: +SKIP
            array([0.28, 0.71], dtype=float32)
        """
        if isinstance(prompts, str):
            raise TypeError("win_rate() takes a sequence of prompts; wrap one prompt in a list")
        prompts = check_prompts(prompts)
        _, _, s, w = self._pair(strong, weak)
        if self._fused is not None:
            out = self._fused.win_rate(prompts, s, w)
            self._stats.prompts += len(prompts)
            return out
        out = np.empty(len(prompts), dtype=np.float32)
        for start in range(0, len(prompts), self.max_batch):
            chunk = prompts[start : start + self.max_batch]
            t0 = time.perf_counter()
            raw = self.arch.prompt_inputs(chunk, self.featurizer, self.config)
            inputs = _pad_inputs(raw, len(chunk), self.batch_buckets, self.seq_buckets)
            self._stats.featurize_s += time.perf_counter() - t0
            out[start : start + len(chunk)] = self._forward(inputs, s, w)[: len(chunk)]
            self._stats.calls += 1
        self._stats.prompts += len(prompts)
        cache = getattr(self.featurizer, "cache", None)
        if isinstance(cache, dict) and len(cache) > _FEATURIZER_CACHE_LIMIT:
            cache.clear()
        return out

    # ---- thresholds -------------------------------------------------------------------------

    def calibration(self, strong: str | None = None, weak: str | None = None) -> Calibration:
        """The calibration table for a model pair (the card's, or one made by :meth:`calibrate`).

        Example:
            >>> load("mf-minilm").calibration().thresholds[:2]  # doctest: +SKIP
            [0.71, 0.66]
        """
        strong, weak, _, _ = self._pair(strong, weak)
        table = self._calibrations.get((strong, weak))
        if table is None:
            raise RouterError(
                f"router {self.name!r} has no calibration table for {strong} vs {weak}; "
                "call router.calibrate(prompts, strong_share, strong=..., weak=...) or pass "
                "threshold= instead"
            )
        return table

    def threshold_for_share(
        self, share: float, strong: str | None = None, weak: str | None = None
    ) -> float:
        """The win-rate threshold that sends ``share`` of the reference prompts to the strong
        model, interpolated linearly in the calibration table (extended to shares 0 and 1).

        Example:
            >>> load("mf-minilm").threshold_for_share(0.3)  # doctest: +SKIP
            0.52
        """
        share = float(share)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"strong share must lie in [0, 1], got {share}")
        table = self.calibration(strong, weak)
        # Share 0: nothing reaches it (next float32 up, so float32 comparisons agree too).
        top = float(np.nextafter(np.float32(table.max_win_rate), np.float32(np.inf)))
        xs = np.array([0.0, *table.shares, 1.0])
        ys = np.array([top, *table.thresholds, table.min_win_rate])
        return float(np.interp(share, xs, ys))

    def _threshold(
        self,
        threshold: float | None,
        strong_share: float | None,
        strong: str | None,
        weak: str | None,
    ) -> float:
        if (threshold is None) == (strong_share is None):
            raise ValueError("give exactly one of threshold= and strong_share=")
        if threshold is not None:
            return float(threshold)
        return self.threshold_for_share(float(strong_share), strong, weak)

    def route(
        self,
        prompts: Sequence[str],
        *,
        threshold: float | None = None,
        strong_share: float | None = None,
        strong: str | None = None,
        weak: str | None = None,
    ) -> np.ndarray:
        """``[n]`` bool, True = send to the strong model (``win_rate >= threshold``).

        Give ``threshold`` directly or ``strong_share`` (through the calibration table).

        Example:
            >>> load("mf-minilm").route(["hi", "prove P != NP"], strong_share=0.5)  # doctest: +SKIP
            array([False,  True])
        """
        t = self._threshold(threshold, strong_share, strong, weak)
        # Compare in float64: a float32 array against a Python float compares in float32.
        return self.win_rate(prompts, strong, weak).astype(np.float64) >= t

    def decide(
        self,
        prompts: Sequence[str],
        *,
        threshold: float | None = None,
        strong_share: float | None = None,
        strong: str | None = None,
        weak: str | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per prompt: ``win_rate``, ``strong`` (bool), ``model`` (the chosen model's
        name) and ``threshold``.

        Example:
            >>> load("mf-minilm").decide(["hi"], threshold=0.5)  # doctest: +SKIP
            [{'win_rate': 0.31, 'strong': False, 'model': 'mixtral-8x7b-instruct-v0.1', 'threshold': 0.5}]
        """
        s_name, w_name, _, _ = self._pair(strong, weak)
        t = self._threshold(threshold, strong_share, strong, weak)
        rates = self.win_rate(prompts, strong, weak).astype(np.float64)
        return [
            {
                "win_rate": float(r),
                "strong": bool(r >= t),
                "model": s_name if r >= t else w_name,
                "threshold": t,
            }
            for r in rates
        ]

    def calibrate(
        self,
        prompts: Sequence[str],
        strong_share: float,
        *,
        strong: str | None = None,
        weak: str | None = None,
        update: bool = True,
        reference: str | None = None,
    ) -> float:
        """Threshold sending ``strong_share`` of *these* prompts (your traffic) to the strong model.

        With ``update=True`` (default) the router's calibration table for this pair is replaced by
        one computed on ``prompts`` (in memory only; the card on disk is unchanged), so later
        ``route(strong_share=...)`` calls use it.

        Example:
            >>> router.calibrate(my_last_week_prompts, 0.2)  # doctest: +SKIP
            0.61
        """
        s_name, w_name, _, _ = self._pair(strong, weak)
        rates = self.win_rate(prompts, s_name, w_name)
        threshold = threshold_at_share(rates, float(strong_share))
        if update:
            table = calibration_from_win_rates(
                rates,
                strong=s_name,
                weak=w_name,
                reference=reference or f"user prompts ({len(rates)}, calibrate())",
            )
            self._calibrations[(s_name, w_name)] = table
            if (s_name, w_name) == (self.default_strong, self.default_weak):
                self.card.calibration = table
        return threshold

    # ---- stats --------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Timings: ``compile_s`` (first call per shape), ``steady_s`` (forward passes of compiled
        shapes), ``featurize_s`` (tokenizing/embedding on the host), ``compiles``, ``shapes``,
        ``calls``, ``prompts``, ``steady_prompts_per_s``, and on the fused encoder path ``tokens``
        / ``padded_tokens`` (real vs computed tokens: the padding overhead).

        Example:
            >>> load("mf-minilm").stats["compiles"]  # doctest: +SKIP
            0
        """
        s = dataclasses.asdict(self._stats)
        busy = s["steady_s"] + s["featurize_s"]
        s["steady_prompts_per_s"] = s["prompts"] / busy if busy > 0 else None
        return s

    def reset_stats(self) -> None:
        """Zero the counters (compiled shapes are kept, so later calls stay warm)."""
        self._stats = _Stats()

    def warmup(self, batch_sizes: Sequence[int] | None = None) -> None:
        """Compile the batch buckets ahead of the first real request.

        Example:
            >>> router.warmup([1, 8])  # doctest: +SKIP
        """
        for n in batch_sizes or self.batch_buckets:
            self.win_rate(["warm-up prompt"] * int(n))

    def __repr__(self) -> str:
        return (
            f"Router(name={self.name!r}, architecture={self.card.architecture!r}, "
            f"pair=({self.default_strong!r}, {self.default_weak!r}), models={len(self.models)})"
        )


class _Fused:
    """Tokenize on the host, then run encoder + pooling + head as one compiled function.

    Prompts are tokenized in one ``encode_batch`` call (Rust, parallel), sorted by token length
    and cut into chunks of similar length by :func:`~routellm_jax.models.encoders.embedder.
    plan_chunks`: fine length buckets (steps of 8 tokens up to 64) and power-of-two row buckets,
    so padding stays ~10% of the real tokens (the old 16/32/64/128 buckets padded GSM8K-length
    batches 1.4x at batch 1 and 2-3x at batch 16/256). On CPU a chunk holds at most
    ``chunk_tokens`` (default 1024) padded tokens: bigger chunks run slower per token there, as
    the activations stop fitting in cache. Every (rows, length) shape is compiled once, ahead of
    time; chunks are dispatched asynchronously so the host pads the next one while the device
    runs the previous one.

    ``host_featurizers`` (the ``+shape`` of ``"all-MiniLM-L6-v2+shape"``) are computed on the
    host for each chunk's prompts and passed into the compiled function, which appends them to
    the pooled embedding before the head, as the featurizer does; ``[]`` for a plain encoder.
    """

    def __init__(self, router: Router, embedder: Any, host_featurizers: Sequence[Any] = ()) -> None:
        import jax
        import jax.numpy as jnp

        from routellm_jax.models.encoders.embedder import FINE_LENGTHS, ROW_BUCKETS, encode

        self.router = router
        self.tokenizer = embedder.tokenizer
        self.host_featurizers = list(host_featurizers)
        self.host_dim = sum(int(f.dim) for f in self.host_featurizers)
        max_len = self.tokenizer.max_length
        self.length_buckets = tuple(sorted({b for b in FINE_LENGTHS if b < max_len} | {max_len}))
        self.row_buckets = tuple(
            sorted({b for b in ROW_BUCKETS if b < router.max_batch} | {router.max_batch})
        )
        on_cpu = jax.default_backend() == "cpu"
        # Accelerators: no per-chunk token cap, and a call costs more than padding does.
        self.max_tokens = router.chunk_tokens or (1024 if on_cpu else None)
        self.dispatch_tokens = 32.0 if on_cpu else 4096.0
        dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[
            router.encoder_dtype or getattr(embedder, "dtype", "float32")
        ]
        enc_config, arch, config = embedder.config, router.arch, router.config
        params = embedder.params
        if dtype == jnp.bfloat16:  # store bf16 weights, as load_embedder(dtype="bfloat16") does
            params = jax.tree.map(
                lambda x: x.astype(jnp.bfloat16) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                params,
            )
        # The encoder weights are frozen inputs of the compiled function, on the default device.
        self.encoder_params = jax.device_put(params)

        def fused(
            head: Any,
            encoder: Any,
            ids: Any,
            mask: Any,
            host_features: Any,
            strong: Any,
            weak: Any,
        ) -> Any:
            emb = encode(encoder, ids, mask, enc_config, dtype=dtype)  # [batch, hidden] f32
            if host_features is not None:  # [batch, host_dim] f32, after the encoder's vector
                emb = jnp.concatenate([emb, host_features], axis=1)
            return arch.win_rate(head, {"embedding": emb}, strong, weak, config)

        self.jitted = jax.jit(fused)

    def _executable(self, rows: int, length: int, args: tuple) -> Any:
        r = self.router
        key = ("fused", rows, length)
        compiled = r._compiled.get(key)
        if compiled is None:
            with r._compile_lock:  # concurrent callers (a server's threads) compile a shape once
                compiled = r._compiled.get(key)
                if compiled is None:
                    start = time.perf_counter()
                    compiled = self.jitted.lower(*args).compile()
                    r._stats.compile_s += time.perf_counter() - start
                    r._stats.compiles += 1
                    r._stats.shapes.append(f"input_ids[{rows}, {length}]")
                    r._compiled[key] = compiled
        return compiled

    def _host_features(self, prompts: list[str]) -> np.ndarray | None:
        if not self.host_featurizers:
            return None
        features = np.concatenate(
            [np.asarray(f.embed(prompts), dtype=np.float32) for f in self.host_featurizers], axis=1
        )
        for f in self.host_featurizers:  # their per-prompt caches, bounded like the featurizer's
            cache = getattr(f, "cache", None)
            if isinstance(cache, dict) and len(cache) > _FEATURIZER_CACHE_LIMIT:
                cache.clear()
        return features

    def plan(self, lengths: Sequence[int]) -> list[tuple[np.ndarray, int, int]]:
        """``(prompt indices, padded rows, padded length)`` per compiled call."""
        from routellm_jax.models.encoders.embedder import plan_chunks

        return plan_chunks(
            lengths,
            length_buckets=self.length_buckets,
            row_buckets=self.row_buckets,
            max_tokens=self.max_tokens,
            dispatch_tokens=self.dispatch_tokens,
        )

    def win_rate(self, prompts: list[str], strong: int, weak: int) -> np.ndarray:
        import jax
        import jax.numpy as jnp

        r = self.router
        out = np.empty(len(prompts), dtype=np.float32)
        if not prompts:
            return out
        t0 = time.perf_counter()
        compile_before = r._stats.compile_s
        ids = self.tokenizer.encode_ids(prompts)
        # [n, host_dim] host features of every prompt (None for a plain encoder featurizer).
        host_features = self._host_features(prompts)
        host = time.perf_counter() - t0  # tokenizing and host features, then padding below
        lengths = [len(x) for x in ids]
        plan = self.plan(lengths)
        r._stats.tokens += int(sum(lengths))
        r._stats.padded_tokens += sum(rows * length for _, rows, length in plan)
        s, w = jnp.int32(strong), jnp.int32(weak)
        pending = []
        for index, rows, length in plan:
            t1 = time.perf_counter()
            input_ids, mask = self.tokenizer.pad([ids[i] for i in index], length, rows)
            chunk_features = None
            if host_features is not None:  # padding rows get zeros; their outputs are dropped
                chunk_features = np.zeros((rows, self.host_dim), dtype=np.float32)
                chunk_features[: len(index)] = host_features[index]
            host += time.perf_counter() - t1
            args = (r.params, self.encoder_params, input_ids, mask, chunk_features, s, w)
            pending.append((index, self._executable(rows, length, args)(*args)))
            r._stats.calls += 1
        for index, result in pending:
            out[index] = np.asarray(jax.device_get(result))[: len(index)]
        total = time.perf_counter() - t0
        compiled_now = r._stats.compile_s - compile_before
        r._stats.featurize_s += host
        r._stats.steady_s += max(0.0, total - host - compiled_now)
        return out


def _default_pair(models: Sequence[str], strong: str | None, weak: str | None) -> tuple[str, str]:
    from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK

    strong = strong or (PAPER_STRONG if not models or PAPER_STRONG in models else None)
    weak = weak or (PAPER_WEAK if not models or PAPER_WEAK in models else None)
    if strong is None or weak is None:
        raise RouterError(
            "name the default strong and weak models (strong=..., weak=...): the paper's pair "
            f"{PAPER_STRONG} / {PAPER_WEAK} is not in config.models"
        )
    return strong, weak


# --------------------------------------------------------------------------------------------
# Loading


def read_entry(entry_dir: str | os.PathLike[str], *, verify: bool = True) -> tuple[ModelCard, Any]:
    """Read ``card.json`` and restore the parameters (host arrays) of an entry folder.

    With ``verify`` every checkpoint file is checked against the card's sizes and sha256 first, and
    the card's encoder pins against the encoder table; nothing is restored from a mismatching file.
    An entry unpacked into the zoo cache is first checked file by file (``card.json`` included)
    against the hashes recorded when it was unpacked, so an edited cached card is an error too.

    Example:
        >>> card, params = read_entry("model_zoo_build/mf-minilm")  # doctest: +SKIP
    """
    import orbax.checkpoint as ocp

    from routellm_jax.zoo.hub import IntegrityError, check_card_files, verify_tree, verify_unpacked

    entry_dir = Path(entry_dir).resolve()
    unpacked = verify_unpacked(entry_dir) if verify else None
    card = ModelCard.load(entry_dir / CARD_FILE)
    ckpt = entry_dir / card.checkpoint.path
    if verify:
        if not card.checkpoint.files:
            raise IntegrityError(f"{entry_dir / CARD_FILE}: checkpoint.files is empty")
        if unpacked is None:  # a local entry folder: its card is all that vouches for it
            verify_tree(ckpt, card.checkpoint.files)
        else:  # the files were just hashed against the record: compare, do not hash again
            check_card_files(card, unpacked, str(entry_dir / CARD_FILE))
        check_encoder_pins(card, str(entry_dir / CARD_FILE))
    if not ckpt.is_dir():
        raise FileNotFoundError(f"{ckpt}: checkpoint folder missing (card {card.name})")
    params = ocp.StandardCheckpointer().restore(ckpt)
    return card, params


def check_encoder_pins(card: ModelCard, where: str) -> None:
    """Raise if the card pins encoder files whose hashes differ from the encoder table's.

    The encoder itself is fetched (and every file verified against the table) by the featurizer;
    this check makes sure the table and the entry agree on which bytes that is.

    Example:
        >>> check_encoder_pins(card, "card.json")  # doctest: +SKIP
    """
    from routellm_jax.zoo.hub import IntegrityError

    if card.encoder is None or not card.encoder.files:
        return
    try:
        from routellm_jax.models.encoders.fetch import get_spec

        spec = get_spec(card.encoder.name)
    except (ImportError, KeyError):
        raise IntegrityError(
            f"{where}: encoder {card.encoder.name!r} is not in this installation's encoder table "
            "(routellm_jax.models.encoders.fetch.ENCODERS); add it to load this entry"
        ) from None
    table = {f.path: f.sha256 for f in spec.files}
    if card.encoder.revision and spec.revision != card.encoder.revision:
        raise IntegrityError(
            f"{where}: encoder.revision {card.encoder.revision} but the encoder table pins "
            f"{spec.revision} for {spec.name}"
        )
    for path, sha in card.encoder.files.items():
        if table.get(path) != sha:
            raise IntegrityError(
                f"{where}: encoder.files[{path!r}] = {sha} but the encoder table pins "
                f"{table.get(path)} for {spec.name}"
            )


def resolve_entry(
    name_or_url_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
) -> Path:
    """The local entry folder for a zoo name (``name`` or ``name@version``), a URL or a path.

    A URL or a local ``.tar`` may carry a ``#sha256=HEX`` pin (checked before unpacking); without
    one, a URL, a ``.tar`` or a folder is only checked against its own card.

    Example:
        >>> resolve_entry("mf-minilm")  # doctest: +SKIP
        PosixPath('/root/.cache/routellm_jax/zoo/entries/mf-minilm/0.1.0')
    """
    from routellm_jax.zoo import hub

    text = os.fspath(name_or_url_or_path)
    local = Path(text)
    if local.is_dir() and (local / CARD_FILE).is_file():
        return local
    if local.is_file() and local.suffix == ".tar":
        return hub.pull_url(str(local.resolve()), cache_dir=cache_dir)
    if len(urllib.parse.urlparse(text).scheme) > 1:
        return hub.pull_url(text, cache_dir=cache_dir)
    head, sep, fragment = text.rpartition("#")
    if sep and fragment.startswith("sha256="):  # a pinned local archive (names have no '#')
        pinned = Path(head)
        if not (pinned.is_file() and pinned.suffix == ".tar"):
            raise FileNotFoundError(
                f"{head}: no such zoo entry archive (.tar) for the #sha256= pin"
            )
        return hub.pull_url(f"{pinned.resolve()}#{fragment}", cache_dir=cache_dir)
    if local.is_dir():
        raise FileNotFoundError(f"{local}: a folder without {CARD_FILE} is not a zoo entry")
    return hub.pull(text, manifest=manifest, cache_dir=cache_dir)


def load(
    name_or_url_or_path: str | os.PathLike[str] = DEFAULT_ROUTER,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    verify: bool = True,
    precision: str | None = None,
    **router_kwargs: Any,
) -> Router:
    """Load a router: a zoo name from the manifest (``"mf-minilm"``, ``"mf-minilm@0.1.0"``), a URL
    of an entry archive (``https://.../x.tar#sha256=...``) or a local entry folder / ``.tar``.

    Files are verified (sha256) before anything is restored. ``router_kwargs`` go to
    :class:`Router` (``max_batch``, ``batch_buckets``, ``seq_buckets``, ``featurizer``,
    ``chunk_tokens``).

    ``precision`` is the encoder's precision, on the fused encoder+head path of MiniLM routers
    or as the compute ``dtype`` of routers that run their own encoder (bert, causal_llm):
    ``"float32"`` (default, exact) or ``"bfloat16"`` (bf16 weights and matmul operands, float32
    accumulation and everything between the matmuls in float32: win rates within 2e-4 to 2e-3 of
    float32, routing decisions agreeing on >= 99% of GSM8K/MT-Bench prompts, tested in
    tests/zoo/test_bundled.py). bfloat16 is the fast setting on CPUs with AVX512-BF16 or AMX
    (1.3-1.4x at batch 1, 1.5-1.9x at batch 256 here, ``tools/bench_infer.py``) and on accelerators.

    Example:
        >>> router = load("mf-minilm")  # doctest: +SKIP
        >>> router.win_rate(["What is 2+2?"]).shape  # doctest: +SKIP
        (1,)
    """
    entry_dir = resolve_entry(name_or_url_or_path, cache_dir=cache_dir, manifest=manifest)
    card, params = read_entry(entry_dir, verify=verify)
    if precision is not None:
        if "encoder_dtype" in router_kwargs:
            raise TypeError("give precision= or encoder_dtype=, not both")
        router_kwargs["encoder_dtype"] = precision
    return Router(card, params, source=str(entry_dir), **router_kwargs)
