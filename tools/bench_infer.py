"""Inference benchmark: prompts/s at batch 1, 16 and 256 and single-prompt latency (p50, p99) for
each bundled router on CPU, side by side with a PyTorch reference doing the same computation, in
the same process, printed as ratios, with the machine load (1-minute load average) next to them.

The JAX side is ``routellm_jax.load(name)`` (encoder + head in one compiled function, prompts
sorted by length and cut into similar-length chunks, never recompiling once warm), in float32
(``jax-f32``) and with ``precision="bfloat16"`` (``jax-bf16``). ``jax-f32-coarse`` is the same
float32 router with the planning used before (length buckets 16/32/64/128/256, one call per
bucket, rows padded to 1/8/32/128/256), kept as the in-process "before" baseline. The reference is
transformers' ``BertModel`` (all-MiniLM-L6-v2 from the same verified files) with the fast
tokenizer padding to the longest prompt of the batch, mean pooling + L2 normalisation, and the
router's head: in torch for ``mf`` (the same weights); for other heads the reference runs the
router's own JAX head on the torch embeddings (the encoder is >99% of the work either way).
``torch-bf16`` is that reference with the model cast to bfloat16 (oneDNN's bf16 kernels), printed
as a second ratio so ``jax-bf16`` is also compared at equal precision; the headline ratios stay
against the float32 reference. Routers that run their own encoder (``bert``, ``causal_llm``) have
no torch reference of their fine-tuned model here: with ``jax-bf16`` among the variants they are
timed in float32 against bfloat16 only. ``--untrained bert`` times the token path without a
trained entry: the ``bert`` architecture's own ``init`` (the pretrained MiniLM encoder with its
pooler, a random 3-way head; the same work per prompt as a trained ``bert-minilm``) against
transformers' ``BertModel`` + pooler + the same head in torch, padding each batch to its longest
prompt, with the per-prompt speed of batch 16 and 256 against batch 1 printed too.

Prompts: the GSM8K test questions and MT-Bench first turns from the shared data (60-70 tokens on
average). Other jobs share this machine, so every number is the median of ``--rounds`` rounds in
which the variants take turns (same prompts, same round), and the latency runs alternate variants
prompt by prompt; the load average before/after each router is printed with its table.

    python tools/bench_infer.py                      # every bundled router
    python tools/bench_infer.py --routers mf-minilm --rounds 5 --json out.json
    python tools/bench_infer.py --routers none --untrained bert --variants jax-f32,torch-ref
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

import routellm_jax
from routellm_jax import paths
from routellm_jax.models.encoders.fetch import fetch_encoder
from routellm_jax.models.executor import Chunk, bucket_grid
from routellm_jax.zoo import hub

try:  # run as a module (python -m tools.bench_infer, as accelerator_check imports it)
    from tools.bench_startup import cpu_model
except ImportError:  # run as a script: tools/ is on the path, not the repository root
    from bench_startup import cpu_model

REPO = Path(__file__).resolve().parent.parent


def load_prompts(data_dir: str | None) -> list[str]:

    root = paths.data_dir(data_dir) / "lm-sys__RouteLLM" / "routellm" / "evals"
    gsm = [json.loads(x)["question"] for x in (root / "gsm8k" / "test.jsonl").open()]
    mt = [json.loads(x)["turns"][0] for x in (root / "mt_bench" / "question.jsonl").open()]
    return gsm + mt


class TorchReference:
    """transformers MiniLM (pad to longest) + mean pool + normalise + the router's head."""

    def __init__(
        self, router, threads: int | None, dtype: str = "float32", device: str = "cpu"
    ) -> None:
        import torch  # local: the torch reference needs torch + transformers (dev extra)
        from transformers import AutoTokenizer, BertModel

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = device
        folder = fetch_encoder(router.card.encoder.name if router.card.encoder else None)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = BertModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
        # bfloat16: oneDNN's bf16 kernels on CPU, tensor cores on CUDA
        self.model = self.model.to(device=device, dtype=getattr(torch, dtype))
        fused = router.runner if router.runner.path == "fused" else None
        self.max_length = fused.tokenizer.max_length if fused else 256
        # "<encoder>+shape" featurizers: the same host features, appended to the torch embedding.
        self.host_featurizers = fused.host_featurizers if fused else []
        self.head = self._head(router)

    def _head(self, router) -> Callable[[object, int, int], np.ndarray]:
        torch = self.torch
        plain = not self.host_featurizers
        if router.card.architecture == "mf" and not router.config.proj_bias and plain:
            p = router.params
            table = torch.tensor(np.asarray(p["model_embed"]), device=self.device)
            proj = (
                torch.tensor(np.asarray(p["text_proj"]["kernel"]), device=self.device)
                if router.config.use_proj
                else None
            )
            cls = torch.tensor(np.asarray(p["classifier"]["kernel"]), device=self.device)[:, 0]

            def mf_head(emb, s: int, w: int) -> np.ndarray:
                v = torch.nn.functional.normalize(table[[s, w]], dim=-1)  # [2, dim]
                q = emb @ proj if proj is not None else emb  # [b, dim]
                scores = (q[:, None, :] * v[None]) @ cls  # [b, 2]
                return torch.sigmoid(scores[:, 0] - scores[:, 1]).cpu().numpy()

            self.head_kind = "torch"
            return mf_head
        self.head_kind = "jax head on torch embeddings"

        def jax_head(emb, s: int, w: int) -> np.ndarray:
            out = router.arch.win_rate(
                router.params, {"embedding": emb.cpu().numpy()}, s, w, router.config
            )
            return np.asarray(out)

        return jax_head

    def win_rate(self, prompts: Sequence[str], s: int, w: int) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            batch = self.tokenizer(
                list(prompts),
                padding="longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state.float()  # [b, s, h]
            mask = batch["attention_mask"][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(pooled, dim=-1)
            if self.host_featurizers:
                extra = [f.embed(prompts) for f in self.host_featurizers]
                extra = [torch.from_numpy(x).to(self.device) for x in extra]
                emb = torch.cat([emb, *extra], dim=1)
            return self.head(emb, s, w)


class TorchBertClassifier:
    """transformers ``BertModel`` with its pooler (pad to longest) + the router's 3-way head in
    torch: the ``bert`` architecture's ``win_rate`` (P(strong wins) = softmax(logits)[strong])."""

    def __init__(self, router, threads: int | None, dtype: str = "float32") -> None:
        import torch  # local: the torch reference needs torch + transformers (dev extra)
        from transformers import AutoTokenizer, BertModel

        from routellm_jax.data.labels import LABEL_STRONG
        from routellm_jax.models.bert_classifier import encoder_folder

        if router.card.architecture != "bert" or router.config.pooling != "cls":
            raise ValueError("TorchBertClassifier: a bert router with pooling='cls'")
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        folder = str(encoder_folder(router.config))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder, add_pooling_layer=True).eval()
        self.model = self.model.to(dtype=getattr(torch, dtype))
        head = router.params["classifier"]
        self.kernel = torch.tensor(np.asarray(head["kernel"]))  # [hidden, 3]
        self.bias = torch.tensor(np.asarray(head["bias"]))
        self.max_length = router.config.max_length
        self.strong = LABEL_STRONG

    def win_rate(self, prompts: Sequence[str]) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            batch = self.tokenizer(
                list(prompts),
                padding="longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            pooled = self.model(**batch).pooler_output.float()  # tanh(dense(h_CLS))
            logits = pooled @ self.kernel + self.bias
            return torch.softmax(logits, dim=-1)[:, self.strong].numpy()


def untrained_router(arch_name: str, precision: str | None = None):
    """A router of ``arch_name`` on its architecture's own ``init`` (``bert``: the pretrained
    MiniLM encoder and a random head; key 0), for timing the token path without a trained
    entry."""
    from routellm_jax.api import Router
    from routellm_jax.models.registry import get_architecture

    if arch_name != "bert":
        raise SystemExit(f"--untrained: only 'bert' has a torch reference here, got {arch_name!r}")
    arch = get_architecture(arch_name)
    config = arch.make_config()
    params = arch.init(jax.random.key(0), config)
    return Router.from_params(
        arch_name, config, params, name=f"{arch_name} (untrained head)", precision=precision
    )


def bench_token_router(
    arch_name: str, prompts: list[str], args: argparse.Namespace, wanted
) -> dict:
    """The token path (``--untrained``): the router in float32 (and bfloat16 when wanted)
    against :class:`TorchBertClassifier`, and each variant's per-prompt speed at batch 16 and
    256 against its own batch 1."""
    base = untrained_router(arch_name)
    variants = {"jax-f32": base}
    if "jax-bf16" in wanted:
        variants["jax-bf16"] = untrained_router(arch_name, precision="bfloat16")
    ref = TorchBertClassifier(base, args.threads or None)
    fns = {k: functools.partial(_call_router, r) for k, r in variants.items()}
    fns["torch-ref"] = ref.win_rate
    check = prompts[:256]
    want = ref.win_rate(check)
    ntok = [len(x) for x in base.runner.featurizer.encode_ids(prompts[: args.n])]
    print(
        f"\n== {base.name} ({base.runner.path} path: {base.runner.reason}); {args.n} prompts, "
        f"mean {np.mean(ntok):.1f} tokens; reference: transformers BertModel + pooler + the same "
        f"head; {args.rounds} rounds"
    )
    agreement = {}
    for key, r in variants.items():
        diff = float(np.max(np.abs(r.win_rate(check) - want)))
        agreement[key] = {"max_diff": diff, "against": "torch reference"}
        print(f"   {key}: max |win rate - torch reference| on {len(check)} prompts {diff:.2e}")
    rows, load_before, load_after = _warm_up_and_measure(fns, prompts, args, variants)
    for key, r in variants.items():
        st = r.stats
        rows[key]["compiles_while_timed"] = st["compiles"]
        rows[key]["padding"] = st["padded_tokens"] / max(1, st["tokens"])
    _print_rows(rows, load_before, load_after, unpadded="longest")
    for key in variants:
        ratio, lat, fast = against_torch(rows, key, args.target_ratio)
        per = {k: rows[key][k] / rows[key]["bs1"] for k in ("bs16", "bs256")}
        rows[key]["ratio_target_met"] = fast
        print(
            f"   {key} / torch: bs1 {ratio['bs1']:.2f}x, bs16 {ratio['bs16']:.2f}x, "
            f"bs256 {ratio['bs256']:.2f}x; latency p50 {lat['p50_ms']:.2f}x, p99 "
            f"{lat['p99_ms']:.2f}x faster; {key} per prompt against its batch 1: bs16 "
            f"{per['bs16']:.2f}x, bs256 {per['bs256']:.2f}x "
            f"({'not slower' if min(per.values()) >= 1.0 else 'SLOWER'}); recompiles while "
            f"timed: {rows[key]['compiles_while_timed']}; >= {args.target_ratio}x torch at every "
            f"batch size and at p50 and p99: {'met' if fast else 'NOT met'}"
        )
    return {
        "router": base.name,
        "path": base.runner.path,
        "mean_tokens": float(np.mean(ntok)),
        "load_before": load_before,
        "load_after": load_after,
        "rounds": args.rounds,
        "agreement": agreement,
        "rows": rows,
    }


def throughput(fn: Callable[[list[str]], object], prompts: list[str], batch: int, n: int) -> float:
    """Prompts/s over ``n`` distinct prompts fed in batches of ``batch``."""
    start = time.perf_counter()
    for i in range(0, n, batch):
        fn(prompts[i : min(i + batch, n)])
    return n / (time.perf_counter() - start)


def _call_router(router, prompts: list[str]) -> np.ndarray:
    return router.win_rate(prompts)


# The planning before fine chunks: coarse length buckets, one call per bucket (up to max_batch
# rows), rows padded to these batch buckets.
COARSE_LENGTHS = (16, 32, 64, 128, 256)
COARSE_ROWS = (1, 8, 32, 128, 256)


def _coarse_plan(runner, max_batch: int, lengths, max_rows=None) -> list:
    """A planner for ``runner.executor.planner``: the coarse plan, as ``Chunk`` s."""

    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    coarse = bucket_grid(COARSE_LENGTHS, runner.tokenizer.max_length)
    rows = bucket_grid(COARSE_ROWS, max_batch)
    bucket_of = np.array([next((b for b in coarse if n <= b), coarse[-1]) for n in lengths[order]])
    plan = []
    for length in sorted(set(bucket_of.tolist())):
        group = order[bucket_of == length]
        for start in range(0, len(group), max_batch):
            index = group[start : start + max_batch]
            padded = next(b for b in rows if len(index) <= b)
            plan.append(Chunk(index, padded, int(length)))
    return plan


def against_torch(rows: dict, key: str, target: float) -> tuple[dict, dict, bool]:
    """Variant ``key`` against ``rows["torch-ref"]``: throughput ratios per batch size, how many
    times faster its p50 and p99 latencies are, and whether all of them reach ``target``.

    Example:
        >>> rows = {"torch-ref": {"bs1": 10, "bs16": 20, "bs256": 40, "p50_ms": 6, "p99_ms": 9},
        ...         "jax": {"bs1": 20, "bs16": 40, "bs256": 50, "p50_ms": 3, "p99_ms": 4.5}}
        >>> against_torch(rows, "jax", 1.5)
        ({'bs1': 2.0, 'bs16': 2.0, 'bs256': 1.25}, {'p50_ms': 2.0, 'p99_ms': 2.0}, False)
    """
    ratio = {k: rows[key][k] / rows["torch-ref"][k] for k in ("bs1", "bs16", "bs256")}
    latency = {k: rows["torch-ref"][k] / rows[key][k] for k in ("p50_ms", "p99_ms")}
    return ratio, latency, all(v >= target for v in (*ratio.values(), *latency.values()))


def float32_ceiling(config, mean_tokens: float, rounds: int = 5, reps: int = 10) -> dict:
    """This machine's float32 ceiling for the fused encoder, in prompts/s: the best float32
    GFLOP/s of the encoder's two large projections (1024 token rows, as the fused path's biggest
    chunks) divided by the encoder's FLOPs per prompt of ``mean_tokens`` unpadded tokens
    (projections and feed-forward ``2 * (4 h^2 + 2 h i)`` per token and layer, attention scores
    and mixing ``4 * tokens * h``; embeddings, norms and softmax are left out, so the ceiling is
    an upper bound).

    Example:
        >>> from routellm_jax.models.encoders.bert import BertConfig
        >>> c = float32_ceiling(BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1,
        ...     num_attention_heads=2, intermediate_size=16), 4.0, rounds=1, reps=1)
        >>> c["flops_per_prompt"], c["gflops"] > 0
        (4608.0, True)
    """
    h, i = config.hidden_size, config.intermediate_size
    per_token = config.num_hidden_layers * (2 * (4 * h * h + 2 * h * i) + 4 * mean_tokens * h)
    rng = np.random.default_rng(0)
    best = 0.0
    for k, n in ((h, i), (i, h)):
        x = jax.numpy.asarray(rng.standard_normal((1024, k), dtype=np.float32))
        w = jax.numpy.asarray(rng.standard_normal((k, n), dtype=np.float32))
        dense = jax.jit(lambda a, b: a @ b)
        dense(x, w).block_until_ready()
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(reps):
                out = dense(x, w)
            out.block_until_ready()
            best = max(best, 2 * 1024 * k * n * reps / (time.perf_counter() - start) / 1e9)
    flops = per_token * mean_tokens
    return {"gflops": best, "flops_per_prompt": flops, "prompts_per_s": best * 1e9 / flops}


def _load_avg() -> float:
    return os.getloadavg()[0]


def measure(
    fns: dict[str, Callable[[list[str]], object]],
    prompts: list[str],
    *,
    n: int,
    n_bs1: int,
    latency_n: int,
    rounds: int,
) -> dict[str, dict[str, float]]:
    """Median prompts/s per batch size over ``rounds`` rounds (variants take turns within a
    round), and p50/p99 single-prompt latency with variants alternating prompt by prompt."""
    sizes = {1: n_bs1, 16: n, 256: n}
    samples: dict[str, dict[int, list[float]]] = {k: {bs: [] for bs in sizes} for k in fns}
    for _ in range(rounds):
        for bs, count in sizes.items():
            for key, fn in fns.items():
                samples[key][bs].append(throughput(fn, prompts, bs, count))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for p in prompts[:latency_n]:
        for key, fn in fns.items():
            start = time.perf_counter()
            fn([p])
            times[key].append(time.perf_counter() - start)
    rows = {}
    for key in fns:
        t = sorted(times[key])
        rows[key] = {f"bs{bs}": statistics.median(v) for bs, v in samples[key].items()}
        rows[key].update({f"bs{bs}_all": v for bs, v in samples[key].items()})
        rows[key]["p50_ms"] = 1e3 * statistics.median(t)
        rows[key]["p99_ms"] = 1e3 * t[min(len(t) - 1, int(0.99 * len(t)))]
    return rows


def _warm_up_and_measure(
    fns: dict[str, Callable[[list[str]], object]],
    prompts: list[str],
    args: argparse.Namespace,
    routers: dict | None = None,
) -> tuple[dict[str, dict[str, float]], float, float]:
    """Warm up on the timed runs' prompt slices (every shape compiles here), reset the routers'
    stats, then :func:`measure`; returns the rows and the load average before and after."""
    for fn in fns.values():
        for bs in (1, 16, 256):
            throughput(fn, prompts, bs, args.n_bs1 if bs == 1 else args.n)
        throughput(fn, prompts, 1, args.latency_n)  # the latency run's single prompts
    for router in (routers or {}).values():
        router.reset_stats()
    load_before = _load_avg()
    rows = measure(
        fns, prompts, n=args.n, n_bs1=args.n_bs1, latency_n=args.latency_n, rounds=args.rounds
    )
    return rows, load_before, _load_avg()


def _print_rows(
    rows: dict[str, dict[str, float]], load_before: float, load_after: float, unpadded: str
) -> None:
    """The load averages and one line per variant; ``unpadded`` fills the padding column of rows
    that do not measure it."""
    print(f"   load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print(
        f"   {'variant':<15} {'bs1 p/s':>9} {'bs16 p/s':>9} {'bs256 p/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'padding':>8}"
    )
    for key, row in rows.items():
        pad = f"{row['padding']:.2f}x" if "padding" in row else unpadded
        print(
            f"   {key:<15} {row['bs1']:>9.1f} {row['bs16']:>9.1f} {row['bs256']:>10.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {pad:>8}"
        )


def _own_encoder_rows(name: str, base, prompts: list[str], args: argparse.Namespace) -> dict:
    """A router that runs its own encoder (bert, causal_llm): float32 against bfloat16 only, as
    there is no torch reference of its fine-tuned model here."""

    bf16 = routellm_jax.load(name, precision="bfloat16", featurizer=base.featurizer)
    check = prompts[:256]
    diff = float(np.max(np.abs(bf16.win_rate(check) - base.win_rate(check))))
    fns = {"jax-f32": base.win_rate, "jax-bf16": bf16.win_rate}
    routers = {"jax-f32": base, "jax-bf16": bf16}
    rows, load_before, load_after = _warm_up_and_measure(fns, prompts, args, routers)
    print(
        f"\n== {name} ({base.card.architecture}, own encoder, no torch reference); "
        f"{args.rounds} rounds; max |bf16 - f32 win rate| on 256 prompts {diff:.2e}"
    )
    _print_rows(rows, load_before, load_after, unpadded="buckets")
    speed = {k: rows["jax-bf16"][k] / rows["jax-f32"][k] for k in ("bs1", "bs16", "bs256")}
    print(
        f"   jax-bf16 / jax-f32: bs1 {speed['bs1']:.2f}x, bs16 {speed['bs16']:.2f}x, "
        f"bs256 {speed['bs256']:.2f}x"
    )
    return {
        "router": name,
        "load_before": load_before,
        "load_after": load_after,
        "rounds": args.rounds,
        "max_bf16_diff": diff,
        "rows": rows,
    }


def bench_fused_router(
    name: str,
    base,
    prompts: list[str],
    args: argparse.Namespace,
    wanted: Sequence[str],
    torch_device: str | None = "cpu",
) -> dict:
    """One router's table: the JAX variants in ``wanted`` (``jax-bf16`` and ``jax-f32-coarse``
    only where ``base`` runs the fused MiniLM path) against the torch reference on
    ``torch_device`` (``None``: no reference, no ratios). ``args`` holds ``n``, ``n_bs1``,
    ``latency_n``, ``rounds``, ``threads``, ``target_ratio`` and ``target_pps``."""
    fused = base.runner.path == "fused"
    ref = TorchReference(base, args.threads or None, device=torch_device) if torch_device else None
    _, _, s, w = base._pair(None, None)
    tokenizer = base.runner.tokenizer if fused else None
    ntok = [len(x) for x in tokenizer.encode_ids(prompts[: args.n])] if tokenizer else [0]
    print(
        f"\n== {name} ({base.card.architecture}, {base.runner.path}); {args.n} prompts, mean "
        f"{np.mean(ntok):.1f} tokens; reference head: {ref.head_kind if ref else 'none'}; "
        f"{args.rounds} rounds"
    )
    variants = {"jax-f32": base}
    if "jax-bf16" in wanted and fused:
        variants["jax-bf16"] = routellm_jax.load(
            name, precision="bfloat16", featurizer=base.featurizer
        )
    if "jax-f32-coarse" in wanted and fused:
        coarse = routellm_jax.load(name, featurizer=base.featurizer)
        coarse.runner.executor.planner = functools.partial(
            _coarse_plan, coarse.runner, coarse.max_batch
        )
        variants["jax-f32-coarse"] = coarse
    if "jax-f32" not in wanted:
        variants.pop("jax-f32")
    fns = {k: functools.partial(_call_router, r) for k, r in variants.items()}
    if ref is not None:
        fns["torch-ref"] = functools.partial(ref.win_rate, s=s, w=w)
    if ref is not None and "torch-bf16" in wanted:  # the reference in bf16, at equal precision
        ref16 = TorchReference(base, args.threads or None, dtype="bfloat16", device=torch_device)
        fns["torch-bf16"] = functools.partial(ref16.win_rate, s=s, w=w)
    check = prompts[:256]
    f32 = base.win_rate(check)
    ref_rates = fns["torch-ref"](check) if ref is not None else f32
    t = base.threshold_for_share(0.5)  # the card's calibrated threshold for 50% strong
    checked = {k: r.win_rate for k, r in variants.items()}
    if "torch-bf16" in fns:
        checked["torch-bf16"] = fns["torch-bf16"]
    agreement = {}
    for key, call in checked.items():
        rates = call(check)
        diff = float(np.max(np.abs(rates - ref_rates)))
        agree = float(np.mean((rates >= t) == (f32 >= t)))
        against = "torch reference" if ref is not None else "jax-f32"
        agreement[key] = {"max_diff": diff, "agree_at_half": agree, "against": against}
        print(
            f"   {key}: max |win rate - {against}| on {len(check)} prompts {diff:.2e}; "
            f"decisions at the 50%-share threshold agreeing with jax-f32: {agree:.1%}"
        )
    rows, load_before, load_after = _warm_up_and_measure(fns, prompts, args, variants)
    for key, r in variants.items():
        st = r.stats
        rows[key]["compiles_while_timed"] = st["compiles"]
        rows[key]["padding"] = st["padded_tokens"] / max(1, st["tokens"])
    _print_rows(rows, load_before, load_after, unpadded="longest")
    ceiling = (
        float32_ceiling(base.featurizer.embedder.config, float(np.mean(ntok))) if fused else None
    )
    if ceiling is not None:
        ceiling["target_met"] = print_ceiling(ceiling, rows, agreement, variants)
    if "torch-bf16" in rows and "jax-bf16" in rows:
        same = {k: rows["jax-bf16"][k] / rows["torch-bf16"][k] for k in ("bs1", "bs16", "bs256")}
        print(
            f"   jax-bf16 / torch-bf16 (equal precision): bs1 {same['bs1']:.2f}x, "
            f"bs16 {same['bs16']:.2f}x, bs256 {same['bs256']:.2f}x"
        )
    for key in variants if "torch-ref" in rows else ():
        ratio, lat, fast = against_torch(rows, key, args.target_ratio)
        pps = all(rows[key][f"bs{b}"] >= args.target_pps for b in (1, 16, 256))
        rows[key]["ratio_target_met"], rows[key]["pps_target_met"] = fast, pps
        print(
            f"   {key} / torch: bs1 {ratio['bs1']:.2f}x, bs16 {ratio['bs16']:.2f}x, "
            f"bs256 {ratio['bs256']:.2f}x; latency p50 {lat['p50_ms']:.2f}x, "
            f"p99 {lat['p99_ms']:.2f}x faster; recompiles while timed: "
            f"{rows[key]['compiles_while_timed']}; >= {args.target_ratio}x torch at every batch "
            f"size and at p50 and p99: {'met' if fast else 'NOT met'}; >= {args.target_pps:.0f} "
            f"p/s at every batch size: {'met' if pps else 'NOT met'}"
        )
    return {
        "router": name,
        "path": base.runner.path,
        "mean_tokens": float(np.mean(ntok)),
        "load_before": load_before,
        "load_after": load_after,
        "rounds": args.rounds,
        "agreement": agreement,
        "rows": rows,
        "float32_ceiling": ceiling,
    }


# A faster-than-float32 variant counts toward the ceiling only if it stays this close to float32.
CEILING_SHARE, MAX_WIN_RATE_DIFF, MIN_AGREEMENT = 0.8, 2e-3, 0.99


def print_ceiling(ceiling: dict, rows: dict, agreement: dict, variants: Sequence[str]) -> bool:
    """Batch 256 of each variant against the float32 ceiling, and whether the ceiling target is
    met: float32 at >= 80% of it, or a variant past it whose win rates stay within 2e-3 of the
    float32 ones and whose decisions at the 50% share agree on >= 99% of prompts (returned)."""
    print(
        f"   float32 ceiling: {ceiling['gflops']:.0f} GFLOP/s (best float32 dense at 1024 rows) / "
        f"{ceiling['flops_per_prompt'] / 1e9:.2f} GFLOP per prompt = "
        f"{ceiling['prompts_per_s']:.0f} prompts/s"
    )
    met = []
    f32_diff = agreement.get("jax-f32", {}).get("max_diff", 0.0)
    for key in variants:
        share = rows[key]["bs256"] / ceiling["prompts_per_s"]
        # Win rate distance to float32, bounded through the common reference.
        diff = agreement[key]["max_diff"] + (f32_diff if key != "jax-f32" else 0.0)
        close = diff <= MAX_WIN_RATE_DIFF and agreement[key]["agree_at_half"] >= MIN_AGREEMENT
        ok = share >= CEILING_SHARE if key == "jax-f32" else (share >= 1.0 and close)
        met.append(ok)
        print(
            f"   {key}: bs256 at {share:.0%} of the float32 ceiling"
            + ("" if key == "jax-f32" else f" (win rates within {diff:.1e} of float32)")
        )
    print(
        f"   ceiling target (float32 bs256 >= {CEILING_SHARE:.0%} of it, or past it within "
        f"{MAX_WIN_RATE_DIFF:g} and >= {MIN_AGREEMENT:.0%} agreement): "
        f"{'met' if any(met) else 'NOT met'}"
    )
    return any(met)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--routers", default="", help="comma-separated zoo names (default: all; 'none': none)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--n", type=int, default=256, help="prompts per bs16/bs256 measurement")
    parser.add_argument("--n-bs1", type=int, default=64, help="prompts per bs1 measurement")
    parser.add_argument("--latency-n", type=int, default=100, help="single-prompt calls timed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--variants",
        default="jax-f32,jax-bf16,jax-f32-coarse,torch-ref",
        help="subset of jax-f32, jax-bf16, jax-f32-coarse, torch-ref, torch-bf16 (torch-ref, "
        "the float32 reference the ratios are against, always runs)",
    )
    parser.add_argument(
        "--target-pps",
        type=float,
        default=155.0,
        help="throughput (prompts/s) the fused path is checked against",
    )
    parser.add_argument("--target-ratio", type=float, default=1.5, help="target jax/torch ratio")
    parser.add_argument(
        "--untrained",
        default="",
        help="comma-separated architectures timed on their own init, without a trained entry "
        "(bert: the MiniLM encoder and a random head, against a transformers classifier)",
    )
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    prompts = load_prompts(args.data_dir)
    if args.routers == "none":
        names = []
    else:
        names = [n for n in args.routers.split(",") if n] or hub.Manifest.load().names()
    wanted = [v for v in args.variants.split(",") if v]
    print(
        f"cpu: {cpu_model()}, jax {jax.__version__} ({jax.default_backend()}), "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; command: python tools/bench_infer.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    results = []
    for name in names:
        base = routellm_jax.load(name)
        if base.runner.path != "fused":
            encoder = getattr(base.config, "encoder", None) or getattr(
                base.config, "base_model", ""
            )
            if "jax-bf16" not in wanted or not hasattr(base.config, "dtype"):
                print(
                    f"{name}: {base.runner.reason} ({base.card.architecture}, {encoder}); skipped"
                )
                continue
            results.append(_own_encoder_rows(name, base, prompts, args))
            continue
        results.append(bench_fused_router(name, base, prompts, args, wanted))
    for arch_name in [a for a in args.untrained.split(",") if a]:
        results.append(bench_token_router(arch_name, prompts, args, wanted))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
