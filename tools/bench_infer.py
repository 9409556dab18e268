"""Inference benchmark: prompts/s at batch 1, 16 and 256 and single-prompt latency (p50, p99) for
each bundled router on CPU, side by side with a PyTorch reference doing the same computation, in
the same process, printed as ratios.

The JAX side is ``routellm_jax.load(name)`` (encoder + head in one compiled function, length
buckets, never recompiling once warm), in float32 and with the encoder in bfloat16. The reference
is transformers' ``BertModel`` (all-MiniLM-L6-v2 from the same verified files) with the fast
tokenizer padding to the longest prompt of the batch, mean pooling + L2 normalisation, and the
router's head: in torch for ``mf`` (the same weights); for other heads the reference runs the
router's own JAX head on the torch embeddings (the encoder is >99% of the work either way).

Prompts: the GSM8K test questions and MT-Bench first turns from the shared data (60-70 tokens on
average), each prompt used once per measurement (no cache can help either side).

    python tools/bench_infer.py                      # every bundled router
    python tools/bench_infer.py --routers mf-minilm --threads 2
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def load_prompts(data_dir: str | None) -> list[str]:
    from routellm_jax import paths

    root = paths.data_dir(data_dir) / "lm-sys__RouteLLM" / "routellm" / "evals"
    gsm = [json.loads(x)["question"] for x in (root / "gsm8k" / "test.jsonl").open()]
    mt = [json.loads(x)["turns"][0] for x in (root / "mt_bench" / "question.jsonl").open()]
    return gsm + mt


class TorchReference:
    """transformers MiniLM (pad to longest) + mean pool + normalise + the router's head."""

    def __init__(self, router, threads: int | None) -> None:
        import torch
        from transformers import AutoTokenizer, BertModel

        from routellm_jax.models.encoders.fetch import fetch_encoder

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        folder = fetch_encoder(router.card.encoder.name if router.card.encoder else None)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = BertModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
        self.max_length = router._fused.tokenizer.max_length if router._fused else 256
        self.head = self._head(router)

    def _head(self, router) -> Callable[[object, int, int], np.ndarray]:
        torch = self.torch
        if router.card.architecture == "mf" and not router.config.proj_bias:
            p = router.params
            table = torch.tensor(np.asarray(p["model_embed"]))
            proj = (
                torch.tensor(np.asarray(p["text_proj"]["kernel"]))
                if router.config.use_proj
                else None
            )
            cls = torch.tensor(np.asarray(p["classifier"]["kernel"]))[:, 0]

            def mf_head(emb, s: int, w: int) -> np.ndarray:
                v = torch.nn.functional.normalize(table[[s, w]], dim=-1)  # [2, dim]
                q = emb @ proj if proj is not None else emb  # [b, dim]
                scores = (q[:, None, :] * v[None]) @ cls  # [b, 2]
                return torch.sigmoid(scores[:, 0] - scores[:, 1]).numpy()

            self.head_kind = "torch"
            return mf_head
        self.head_kind = "jax head on torch embeddings"

        def jax_head(emb, s: int, w: int) -> np.ndarray:
            out = router.arch.win_rate(
                router.params, {"embedding": emb.numpy()}, s, w, router.config
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
            )
            hidden = self.model(**batch).last_hidden_state  # [b, s, h]
            mask = batch["attention_mask"][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(pooled, dim=-1)
            return self.head(emb, s, w)


def throughput(fn: Callable[[list[str]], object], prompts: list[str], batch: int, n: int) -> float:
    """Prompts/s over ``n`` distinct prompts fed in batches of ``batch``."""
    start = time.perf_counter()
    for i in range(0, n, batch):
        fn(prompts[i : i + batch])
    return n / (time.perf_counter() - start)


def latency(fn: Callable[[list[str]], object], prompts: list[str], n: int) -> tuple[float, float]:
    times = []
    for p in prompts[:n]:
        start = time.perf_counter()
        fn([p])
        times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * statistics.median(times), 1e3 * times[min(len(times) - 1, int(0.99 * len(times)))]


def _call_router(router, prompts: list[str]) -> np.ndarray:
    return router.win_rate(prompts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routers", default="", help="comma-separated zoo names (default: all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--n", type=int, default=512, help="prompts per throughput measurement")
    parser.add_argument("--latency-n", type=int, default=100, help="single-prompt calls timed")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import routellm_jax
    from routellm_jax.zoo import hub

    prompts = load_prompts(args.data_dir)
    names = [n for n in args.routers.split(",") if n] or hub.Manifest.load().names()
    results = []
    for name in names:
        base = routellm_jax.load(name)
        if base._fused is None:
            print(f"{name}: no fused MiniLM path (featurizer {base.config}); skipped")
            continue
        ref = TorchReference(base, args.threads or None)
        _, _, s, w = base._pair(None, None)
        ntok = [len(x) for x in base._fused.tokenizer.encode_ids(prompts[: args.n])]
        print(
            f"\n== {name} ({base.card.architecture}); {args.n} prompts, mean {np.mean(ntok):.1f} "
            f"tokens; reference head: {ref.head_kind}"
        )
        variants = {
            "jax-f32": base,
            "jax-bf16": routellm_jax.load(
                name, encoder_dtype="bfloat16", featurizer=base.featurizer
            ),
        }
        fns = {k: functools.partial(_call_router, r) for k, r in variants.items()}
        fns["torch-ref"] = functools.partial(ref.win_rate, s=s, w=w)
        check = prompts[:32]
        ref_rates = fns["torch-ref"](check)
        for key, r in variants.items():
            diff = float(np.max(np.abs(r.win_rate(check) - ref_rates)))
            print(f"   max |win rate - reference| on 32 prompts, {key}: {diff:.2e}")
        rows = {}
        for key, fn in fns.items():
            # Warm-up on the same prompts: every (batch, length) shape compiles here, not below.
            for bs in (1, 16, 256):
                throughput(fn, prompts, bs, min(args.n, 64) if bs == 1 else args.n)
            if key in variants:
                variants[key].reset_stats()
            row = {
                f"bs{bs}": throughput(fn, prompts, bs, min(args.n, 128) if bs == 1 else args.n)
                for bs in (1, 16, 256)
            }
            row["p50_ms"], row["p99_ms"] = latency(fn, prompts, args.latency_n)
            if key in variants:
                row["compiles_while_timed"] = variants[key].stats["compiles"]
            rows[key] = row
        header = f"   {'variant':<10} {'bs1 p/s':>9} {'bs16 p/s':>9} {'bs256 p/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        print(header)
        for key, row in rows.items():
            print(
                f"   {key:<10} {row['bs1']:>9.1f} {row['bs16']:>9.1f} {row['bs256']:>10.1f} "
                f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
            )
        for key in variants:
            ratio = {k: rows[key][k] / rows["torch-ref"][k] for k in ("bs1", "bs16", "bs256")}
            lat = rows["torch-ref"]["p50_ms"] / rows[key]["p50_ms"]
            print(
                f"   {key} / torch: bs1 {ratio['bs1']:.2f}x, bs16 {ratio['bs16']:.2f}x, "
                f"bs256 {ratio['bs256']:.2f}x, p50 latency {lat:.2f}x faster; "
                f"recompiles while timed: {rows[key]['compiles_while_timed']}"
            )
        results.append({"router": name, "mean_tokens": float(np.mean(ntok)), "rows": rows})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
