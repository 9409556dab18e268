"""The thin inference API: ``load()`` a zoo entry, then ``win_rate`` / ``route`` / ``calibrate``.

Example::

    import routellm_jax
    router = routellm_jax.load("mf-minilm")              # a zoo name, a URL or an entry folder
    router.win_rate(["What is 2+2?"])                    # -> array([0.31], dtype=float32)
    router.route(prompts, strong_share=0.3)              # -> bool array, True = strong model
    router.decide(["Prove Fermat's last theorem"], threshold=0.5)
    # -> [{"win_rate": 0.77, "strong": True, "model": "gpt-4-1106-preview", "threshold": 0.5}]

This module is routing policy: model names, thresholds, calibration tables, decisions. Reading an
entry (resolve, verify, restore) is the zoo's (:mod:`routellm_jax.zoo.entry`); turning prompts
into win rates is the runner's (:mod:`routellm_jax.models.inference`): fused encoder+head when the
architecture and featurizer declare it, length-sorted chunks for token routers, every shape
compiled once by the bucketed executor (:mod:`routellm_jax.models.executor`), which is what lets
:attr:`Router.stats` report compile time apart from steady-state time and makes a recompile
impossible to miss (``stats["compiles"]``). The strong/weak indices are traced arguments, so
changing the model pair never recompiles.

Parameters are restored from the Orbax checkpoint as host arrays and put on the default device:
nothing about the exporting machine's devices or sharding is stored, so the same entry loads on
one CPU, a GPU or a TPU host.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from routellm_jax.eval.policy import (
    ModelPrice,
    Policy,
    choose,
    cost_table,
    estimate_input_tokens,
    explain_choice,
    quality_from_strengths,
)
from routellm_jax.models import plugins
from routellm_jax.models.executor import LENGTH_BUCKETS, ROW_BUCKETS, enable_compile_cache
from routellm_jax.models.registry import UnknownArchitectureError, get_architecture
from routellm_jax.zoo.card import (
    PAPER_STRONG,
    PAPER_WEAK,
    Calibration,
    CheckpointRef,
    ModelCard,
    calibration_from_win_rates,
    config_to_json,
    threshold_at_share,
)
from routellm_jax.zoo.entry import read_entry, resolve_entry

log = logging.getLogger(__name__)

# irt on MiniLM, judge battles weighted 0.1: chosen on the development suite
# (experiments/results/README.md), where it sends code and math, not chat, to the strong model.
DEFAULT_ROUTER = "irt-mix-minilm"
# Encoder precisions. float32 is exact (the default); bfloat16 stores the encoder weights in bf16
# and feeds its matmuls bf16 operands with float32 accumulation (win rates move by 2e-4 to 2e-3,
# see tests/zoo), faster on CPUs with AVX512-BF16 (tools/bench_infer.py).
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
# "auto": bfloat16 where the device multiplies bf16 natively (AVX512-BF16/AMX CPUs, TPUs, recent
# GPUs) and the router has an encoder to run in it; float32 everywhere else.
AUTO_PRECISION = "auto"


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


def _card_architecture(card: ModelCard) -> Any:
    """The architecture a card names; for one from a plugin that is not available, a
    :class:`RouterError` saying which package (and version) to install. A different installed
    version of the plugin is logged as a warning."""
    try:
        arch = get_architecture(card.architecture)
    except UnknownArchitectureError:
        if not card.plugin:
            raise
        raise RouterError(
            f"router {card.name!r}: architecture {card.architecture!r} comes from a plugin that "
            f"is not available here; {plugins.install_hint(card.plugin)}"
        ) from None
    wanted = card.plugin.get("version")
    dist = card.plugin.get("distribution")
    if dist and wanted:
        have = plugins.installed_version(dist)
        if have is not None and have != wanted:
            log.warning(
                "router %s: exported with plugin %s %s, running with %s %s",
                card.name,
                dist,
                wanted,
                dist,
                have,
            )
    return arch


class Router:
    """A loaded router. Build it with :func:`load` (or :meth:`from_params` for fresh params).

    Attributes: ``name``, ``card`` (:class:`~routellm_jax.zoo.card.ModelCard`), ``models`` (the
    model-name table), ``default_strong`` / ``default_weak``, ``runner`` (how prompts become win
    rates: ``runner.path`` is ``"fused"``, ``"tokens"`` or ``"vectors"``, ``runner.reason`` says
    why), ``stats`` (timings).

    ``precision`` is the encoder's (``None``/``"float32"`` exact, ``"bfloat16"``, or ``"auto"``:
    bfloat16 where the device runs bf16 matmuls natively and the router has an encoder, else
    float32; ``self.precision`` says which was used): of the fused MiniLM encoder, or the config field an architecture with its own encoder declares as its
    ``precision_key`` (bert, causal_llm). Every compiled call holds at most ``max_batch`` rows,
    padded to ``batch_buckets``, and token inputs are padded to ``seq_buckets``; ``chunk_tokens``
    caps the padded tokens of one call (default: 1024 on CPU, where bigger calls run slower per
    token; no cap on accelerators). ``fuse_encoder=False`` runs the featurizer on the host even
    where encoder and head could be fused.
    """

    def __init__(
        self,
        card: ModelCard,
        params: Any,
        *,
        featurizer: Any = None,
        max_batch: int = 256,
        batch_buckets: Sequence[int] = ROW_BUCKETS,
        seq_buckets: Sequence[int] = LENGTH_BUCKETS,
        source: str = "",
        fuse_encoder: bool = True,
        precision: str | None = None,
        chunk_tokens: int | None = None,
    ) -> None:
        # A local import: JAX and Flax load only when a router is built, so serving's request
        # checks (check_prompt) and the CLI's parser import this module without them.
        import jax

        from routellm_jax.models.inference import Shapes, make_runner

        enable_compile_cache()  # before anything compiles (loading a featurizer may compile)
        self.card = card
        self.name = card.name
        self.source = source
        self.arch = _card_architecture(card)
        self.config = card.arch_config(self.arch.config_cls)
        if precision is not None and precision not in (*PRECISIONS, AUTO_PRECISION):
            raise RouterError(
                f"router {self.name!r}: precision must be one of "
                f"{(*PRECISIONS, AUTO_PRECISION)}, got {precision!r}"
            )
        auto = precision == AUTO_PRECISION
        if auto:
            from routellm_jax.models.encoders.bert import native_bf16_matmul  # local: Flax

            precision = "bfloat16" if native_bf16_matmul() else None
        own_encoder = precision is not None and bool(self.arch.precision_key)
        if own_encoder:  # the architecture runs its own encoder: the precision is its config's
            self.config = dataclasses.replace(self.config, **{self.arch.precision_key: precision})
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
        self.precision = precision
        self.chunk_tokens = chunk_tokens
        # Host arrays -> the default device; no sharding from the exporting machine survives.
        self.params = jax.device_put(params)
        self._calibrations: dict[tuple[str, str], Calibration] = {}
        if card.calibration is not None:
            c = card.calibration
            self._calibrations[(c.strong, c.weak)] = c
        shapes = Shapes(self.max_batch, self.batch_buckets, self.seq_buckets, chunk_tokens)

        def runner(encoder_precision: str | None) -> Any:
            return make_runner(
                self.arch,
                self.config,
                self.params,
                self.featurizer,
                shapes=shapes,
                fuse=fuse_encoder,
                precision=encoder_precision,
            )

        self.runner = runner(None if own_encoder else precision)
        unfused = self.runner.path != "fused" and not own_encoder
        if auto and unfused and precision is not None:  # no encoder to run in bf16: float32
            self.precision = precision = None
            self.runner = runner(None)
        if precision not in (None, "float32") and unfused:
            raise RouterError(
                f"router {self.name!r}: precision needs an encoder inside the router (the fused "
                "MiniLM path, or an architecture declaring a precision_key such as bert or "
                f"causal_llm); this one has neither ({self.runner.reason})"
            )
        log.info("router %s: %s path; %s", self.name, self.runner.path, self.runner.reason)

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
        """A router on in-memory parameters (no card on disk; no calibration until calibrated)."""
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

    # ---- win rates --------------------------------------------------------------------------

    def win_rate(
        self, prompts: Sequence[str], strong: str | None = None, weak: str | None = None
    ) -> np.ndarray:
        """``[n]`` float32 P(strong model beats weak model) for each prompt.

        ``strong``/``weak`` are model names from :attr:`models` (default: the card's pair).
        """
        if isinstance(prompts, str):
            raise TypeError("win_rate() takes a sequence of prompts; wrap one prompt in a list")
        prompts = check_prompts(prompts)
        _, _, s, w = self._pair(strong, weak)
        return self.runner.win_rate(prompts, s, w)

    # ---- thresholds -------------------------------------------------------------------------

    def calibration(self, strong: str | None = None, weak: str | None = None) -> Calibration:
        """The calibration table for a model pair (the card's, or one made by :meth:`calibrate`)."""
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

    # ---- N models ---------------------------------------------------------------------------

    def model_indices(self, models: Sequence[str]) -> list[int]:
        """Indices of ``models`` in the router's model table; an unknown name is a
        :class:`RouterError` naming it and the closest names of the table.
        """
        table = self.models or [self.default_strong, self.default_weak]
        index = {m: i for i, m in enumerate(table)}
        out = []
        for model in models:
            if model not in index:
                close = difflib.get_close_matches(str(model), table, n=5, cutoff=0.5)
                hint = (
                    f"; closest: {close}" if close else f" ({len(table)} models, e.g. {table[:5]})"
                )
                raise RouterError(f"router {self.name!r}: unknown model {model!r}{hint}")
            out.append(index[model])
        if len(set(out)) != len(out):
            raise RouterError(f"router {self.name!r}: candidate models repeat: {list(models)}")
        return out

    def model_quality(self, prompts: Sequence[str], models: Sequence[str]) -> np.ndarray:
        """``[n_prompts, n_models]`` float64 expected quality of each candidate on each prompt.

        What it means depends on the architecture's ``model_score_kind``:

        * ``irt`` (``"probability"``): P(the model answers the prompt well), learned from
          per-model correctness and grades; comparable across prompts and candidate sets, so a
          quality floor of 0.8 means "at least 80% predicted success".
        * ``mf``, ``sw_ranking`` (``"strength"``): the model's expected win rate against the
          *other* candidates (the mean over them of the Bradley-Terry ``sigmoid(s_k - s_j)``);
          it ranks models on a prompt but is relative to the candidate set, so a floor means
          "wins at least that often against a random other candidate".
        * pair-only architectures (``bert``, ``causal_llm``, ``random``): only their own two
          models, as ``[win_rate, 1 - win_rate]``; more than two candidates is an error.
        """
        if isinstance(prompts, str):
            raise TypeError("model_quality() takes a sequence of prompts; wrap one in a list")
        models = list(models)
        if len(models) < 2:
            raise RouterError(f"router {self.name!r}: give at least two candidate models")
        if self.arch.model_scores is None:
            if len(models) > 2:
                raise RouterError(
                    f"router {self.name!r} (architecture {self.card.architecture!r}) scores one "
                    f"strong/weak pair only and cannot rank {len(models)} models; use a "
                    "model-aware router (irt, mf or sw_ranking) for N-model routing"
                )
            if self.models:  # a pair-only architecture with a model table: any pair of it
                self.model_indices(models)
                rates = self.win_rate(prompts, models[0], models[1]).astype(np.float64)
                return np.stack([rates, 1.0 - rates], axis=1)
            first = self.model_indices(models)[0]  # 0: the card's strong model comes first
            rates = self.win_rate(prompts).astype(np.float64)
            pair = np.stack([rates, 1.0 - rates], axis=1)
            return pair if first == 0 else pair[:, ::-1]
        ids = self.model_indices(models)
        prompts = check_prompts(prompts)
        scores = self.runner.model_scores(prompts, ids).astype(np.float64)
        if self.arch.model_score_kind == "strength":
            return quality_from_strengths(scores)
        return scores

    def choose_models(
        self,
        prompts: Sequence[str],
        models: Sequence[str],
        prices: dict[str, ModelPrice] | Sequence[ModelPrice],
        policy: Policy,
        *,
        input_tokens: Sequence[float] | None = None,
        output_tokens: float | Sequence[float] = 264,
    ) -> list[dict[str, Any]]:
        """One decision per prompt among ``models`` under ``policy``
        (:mod:`routellm_jax.eval.policy`): ``model``, ``quality`` (its expected quality, see
        :meth:`model_quality`), ``cost``, ``within_budget``, the ``policy``, the ``reason`` in
        words and every candidate's quality (``candidates``).

        ``prices``: a dict by model name (every candidate needs one) or one price per model.
        ``input_tokens`` default to an estimate from the prompt length (4 characters a token).
        """
        models = list(models)
        if isinstance(prices, dict):
            missing = [m for m in models if m not in prices]
            if missing:
                raise RouterError(f"no price for candidate model(s) {missing}")
            price_list = [prices[m] for m in models]
        else:
            price_list = list(prices)
            if len(price_list) != len(models):
                raise RouterError(f"{len(price_list)} prices for {len(models)} models")
        quality = self.model_quality(prompts, models)
        tokens = estimate_input_tokens(prompts) if input_tokens is None else input_tokens
        cost = cost_table(price_list, tokens, output_tokens)
        chosen = choose(quality, cost, policy)
        return [
            {
                "model": models[int(j)],
                "quality": float(q),
                "cost": float(c),
                "within_budget": bool(ok),
                "policy": policy.describe(),
                "reason": explain_choice(policy, bool(ok)),
                "candidates": {m: float(x) for m, x in zip(models, row)},
            }
            for j, q, c, ok, row in zip(
                chosen.model_index, chosen.quality, chosen.cost, chosen.within_budget, quality
            )
        ]

    # ---- stats --------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Timings: ``compile_s`` (first call per shape), ``steady_s`` (forward passes of compiled
        shapes), ``featurize_s`` (tokenizing/embedding/padding on the host), ``compiles``,
        ``shapes``, ``calls``, ``prompts``, ``steady_prompts_per_s``, ``tokens`` /
        ``padded_tokens`` for token inputs (real vs computed tokens: the padding overhead), and
        ``path`` / ``path_reason``: how this router runs and why (for an unfused router, what its
        architecture or featurizer does not declare).
        """
        s = dataclasses.asdict(self.runner.executor.stats)
        busy = s["steady_s"] + s["featurize_s"]
        s["steady_prompts_per_s"] = s["prompts"] / busy if busy > 0 else None
        s["path"] = self.runner.path
        s["path_reason"] = self.runner.reason
        return s

    def reset_stats(self) -> None:
        """Zero the counters (compiled shapes are kept, so later calls stay warm)."""
        self.runner.executor.reset_stats()

    def warmup(self, batch_sizes: Sequence[int] | None = None) -> None:
        """Compile the batch buckets ahead of the first real request."""
        for n in batch_sizes or self.batch_buckets:
            self.win_rate(["warm-up prompt"] * int(n))

    def __repr__(self) -> str:
        return (
            f"Router(name={self.name!r}, architecture={self.card.architecture!r}, "
            f"pair=({self.default_strong!r}, {self.default_weak!r}), models={len(self.models)})"
        )


def _default_pair(models: Sequence[str], strong: str | None, weak: str | None) -> tuple[str, str]:
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

    Files are verified (sha256) before anything is restored (:func:`routellm_jax.zoo.entry.
    read_entry`). ``router_kwargs`` go to :class:`Router` (``max_batch``, ``batch_buckets``,
    ``seq_buckets``, ``featurizer``, ``chunk_tokens``, ``fuse_encoder``).

    ``precision`` is the encoder's precision, on the fused encoder+head path of MiniLM routers
    or as the compute dtype of routers that run their own encoder (bert, causal_llm):
    ``"float32"`` (default, exact) or ``"bfloat16"`` (bf16 weights and matmul operands, float32
    accumulation and everything between the matmuls in float32: win rates within 2e-4 to 2e-3 of
    float32, routing decisions agreeing on >= 98% of GSM8K/MT-Bench prompts, tested in
    tests/zoo/test_bundled.py). bfloat16 is the fast setting on CPUs with AVX512-BF16 or AMX and on
    accelerators (measured ratios: docs/benchmarks.md).
    """
    entry_dir = resolve_entry(name_or_url_or_path, cache_dir=cache_dir, manifest=manifest)
    card, params = read_entry(entry_dir, verify=verify)
    return Router(card, params, source=str(entry_dir), precision=precision, **router_kwargs)
