"""Prompts/second of our embedder (MiniLM by default, ``--name`` another table encoder) vs a
PyTorch reference, on real prompt lengths.

Ours: ``load_embedder`` (length buckets, AOT-compiled shapes; float32 and bfloat16).
Reference: ``transformers.AutoModel`` (BertModel, MPNetModel) from the same verified folder, the
same fast tokenizer,
padding to the longest prompt of each batch, ``torch.inference_mode``, mean pooling + L2
normalisation, ``torch.set_num_threads`` = the CPU count. Both sides are timed end to end
(tokenization included). Variants run interleaved, round after round, in one process, so load from
other processes on the machine hits all of them alike; the median round is reported, and the ratio
is ours / reference. First-call compile time is reported separately.

Usage:
    python tools/bench_encoder.py [--name all-mpnet-base-v2] [--batch-sizes 1 16 64 256]
        [--prompts 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
import pandas as pd
from tokenizers import Tokenizer

from routellm_jax.models import bert_classifier as bc
from routellm_jax.models.encoders.bert import count_params
from routellm_jax.models.encoders.embedder import load_embedder
from routellm_jax.paths import data_dir


def load_prompts(n: int, seed: int = 0) -> list[str]:
    """GSM8K test questions and MT-Bench first turns (60-70 tokens on average, like typical chat prompts)."""

    root = data_dir() / "lm-sys__RouteLLM" / "routellm" / "evals"
    gsm = pd.read_csv(root / "gsm8k" / "gsm8k_responses.csv")["prompt"].astype(str).tolist()
    mt = pd.read_json(root / "mt_bench" / "question.jsonl", lines=True)["turns"]
    pool = gsm + [str(t[0]) for t in mt]
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def torch_reference(
    folder, max_length: int, pad_id: int = 0
) -> Callable[[Sequence[str], int], np.ndarray]:
    import torch  # local: the torch reference needs torch + transformers (dev extra)
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=pad_id)  # pad to the longest in the batch

    def embed(prompts: Sequence[str], batch_size: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(prompts), batch_size):
                enc = tok.encode_batch(list(prompts[i : i + batch_size]))
                ids = torch.tensor([e.ids for e in enc])
                mask = torch.tensor([e.attention_mask for e in enc])
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)

    return embed


def main(argv: Sequence[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--prompts", type=int, default=256, help="prompts per timed run")
    ap.add_argument("--prompts-batch1", type=int, default=48, help="prompts at batch size 1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="all-MiniLM-L6-v2", help="an encoder of the encoder table")
    ap.add_argument(
        "--max-length", type=int, default=None, help="default: the encoder's max_seq_length"
    )
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument(
        "--bert-router",
        action="store_true",
        help="only time the bert router (MiniLM + 3-way head, one jit) at --batch-sizes",
    )
    args = ap.parse_args(argv)
    if args.bert_router:
        return bench_bert_router(load_prompts(args.prompts), args.batch_sizes, args.rounds)

    prompts = load_prompts(args.prompts)
    ours = {}
    for dtype in args.dtypes:
        ours[dtype] = load_embedder(args.name, dtype=dtype, max_length=args.max_length)
    first_embedder = next(iter(ours.values()))
    ref = torch_reference(
        first_embedder.folder, first_embedder.max_length, first_embedder.tokenizer.pad_id
    )
    lengths = [len(x) for x in next(iter(ours.values())).tokenizer.encode_ids(prompts)]
    print(
        f"{len(prompts)} prompts, tokens mean {np.mean(lengths):.1f} median "
        f"{np.median(lengths):.0f} max {max(lengths)}; cpu_count {os.cpu_count()}"
    )
    variants: dict[str, Callable[[Sequence[str], int], np.ndarray]] = {"torch": ref}
    for dtype, emb in ours.items():
        variants[f"ours-{dtype}"] = emb.embed
    # Agreement check (and warm-up of the reference).
    want = ref(prompts[:64], 64)
    for name, fn in variants.items():
        got = fn(prompts[:64], 64)
        print(f"{name}: max |diff| vs torch {np.abs(got - want).max():.2e}")

    print(f"\n{'batch':>5} " + " ".join(f"{n:>18}" for n in variants) + "  ratios vs torch")
    for bs in args.batch_sizes:
        batch_prompts = prompts[: args.prompts_batch1] if bs == 1 else prompts
        times: dict[str, list[float]] = {n: [] for n in variants}
        first = {}
        for name, fn in variants.items():  # untimed warm-up: compiles our new shapes
            start = time.perf_counter()
            fn(batch_prompts, bs)
            first[name] = time.perf_counter() - start
        compiles = " ".join(
            f"{n}={first[n]:.1f}s/{ours[n[5:]].compile_count}shapes"
            for n in variants
            if n != "torch"
        )
        print(f"  batch {bs} first call (incl. compile): torch={first['torch']:.1f}s {compiles}")
        for _ in range(args.rounds):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn(batch_prompts, bs)
                times[name].append(time.perf_counter() - start)
        rate = {n: len(batch_prompts) / statistics.median(t) for n, t in times.items()}
        cells = " ".join(f"{rate[n]:>12.1f} p/s  " for n in variants)
        ratios = " ".join(f"{n}={rate[n] / rate['torch']:.2f}x" for n in variants if n != "torch")
        print(f"{bs:>5} {cells} {ratios}", flush=True)
    return 0


def bench_bert_router(prompts: Sequence[str], batch_sizes: Sequence[int], rounds: int) -> int:
    """Prompts/s of the ``bert`` router's win rate (tokenize + encoder + head, one jit per
    shape; prompts sorted by length so each chunk pads to a multiple of 16 tokens)."""

    cfg = bc.BertClassifierConfig(pretrained=True)
    params = bc.init(jax.random.key(0), cfg)
    tok = bc.make_featurizer(cfg)
    print(f"bert router parameters: {count_params(params):,}")
    score = jax.jit(lambda p, x: bc.win_rate(p, x, 0, 1, cfg))
    order = np.argsort([len(x) for x in tok.encode_ids(prompts)], kind="stable")
    ordered = [prompts[i] for i in order]

    def run(bs: int) -> np.ndarray:
        out = [
            score(params, bc.prompt_inputs(ordered[i : i + bs], tok, cfg))
            for i in range(0, len(ordered), bs)
        ]
        return np.concatenate([np.asarray(o) for o in out])

    for bs in batch_sizes:
        start = time.perf_counter()
        wr = run(bs)
        first = time.perf_counter() - start
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            run(bs)
            times.append(time.perf_counter() - start)
        rate = len(prompts) / statistics.median(times)
        print(
            f"bert router batch {bs}: {rate:.1f} prompts/s (first call incl. compile {first:.1f}s;"
            f" win rate mean {wr.mean():.3f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
