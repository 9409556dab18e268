"""Parameter count and CPU scoring speed of every built-in router, through the architecture calls.

For each router: build its config and parameters (the bundled zoo entry where there is one, else a
fresh ``init`` on the pretrained encoder: speed does not depend on training), then time
``prompt_inputs`` + a jitted ``win_rate`` at one batch size on real GSM8K / MT-Bench prompts
(tokenisation and encoder included), after one warm-up call that compiles. Reports prompts/s (median
of ``--rounds``), the machine's load average next to it (the numbers are only comparable at equal
load), and the parameter count (all arrays of the router's params; for routers on a frozen encoder the
encoder's parameters are counted separately, since they are fetched rather than stored).

Usage:
    python -m tools.bench_routers [--batch-size 64] [--prompts 128] [--rounds 3] [--only mf irt]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from routellm_jax.models.registry import get_architecture
from routellm_jax.zoo.entry import read_entry, resolve_entry
from tools.bench_encoder import load_prompts

BUNDLED = {"mf": "mf-minilm", "sw_ranking": "sw-ranking-minilm", "irt": "irt-minilm"}
ORDER = ("random", "mf", "irt", "sw_ranking", "bert", "causal_llm")
PAIR = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")


def _count(tree: Any) -> int:

    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def build(name: str) -> tuple[Any, Any, Any, Any, int, int]:
    """(architecture, config, params, featurizer, strong index, weak index) for one router."""

    arch = get_architecture(name)
    if name in BUNDLED:
        card, params = read_entry(resolve_entry(BUNDLED[name]))
        config = card.arch_config(arch.config_cls)
    else:
        config = arch.make_config(models=PAIR)
        params = arch.init(jax.random.key(0), config)
    models = list(getattr(config, "models", ()) or PAIR)
    strong = models.index(PAIR[0]) if PAIR[0] in models else 0
    weak = models.index(PAIR[1]) if PAIR[1] in models else 1
    return arch, config, params, arch.make_featurizer(config), strong, weak


def time_router(name: str, prompts: Sequence[str], batch: int, rounds: int) -> dict[str, Any]:

    arch, config, params, featurizer, strong, weak = build(name)
    score = jax.jit(lambda p, x: arch.win_rate(p, x, strong, weak, config))
    batches = [list(prompts[i : i + batch]) for i in range(0, len(prompts) - batch + 1, batch)]

    def run(prompt_batch: list[str]) -> np.ndarray:
        if hasattr(featurizer, "cache"):
            featurizer.cache.clear()  # time the encoder, not a cache lookup
        inputs = arch.prompt_inputs(prompt_batch, featurizer, config)
        return np.asarray(score(params, inputs))

    t0 = time.perf_counter()
    run(batches[0])  # compile (and fill the featurizer's buckets)
    first = time.perf_counter() - t0
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for b in batches:
            out = run(b)
        rates.append(len(batches) * batch / (time.perf_counter() - t0))
    assert out.shape == (batch,) and np.all(np.isfinite(out))
    encoder = getattr(getattr(featurizer, "embedder", None), "params", None)
    return {
        "router": name,
        "params": _count(params),
        "frozen_encoder_params": _count(encoder) if encoder is not None else 0,
        "first_call_s": first,
        "prompts_per_s": statistics.median(rates),
        "load_avg": os.getloadavg()[0],
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=128, help="prompts per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER))
    args = ap.parse_args(argv)
    prompts = load_prompts(args.prompts)
    print("| router | params | frozen encoder params | first call s | prompts/s | load avg |")
    print("|---|---|---|---|---|---|")
    for name in [n for n in ORDER if n in args.only]:
        rounds = 1 if name == "causal_llm" else args.rounds
        r = time_router(name, prompts, args.batch_size, rounds)
        print(
            f"| {r['router']} | {r['params']:,} | {r['frozen_encoder_params']:,} | "
            f"{r['first_call_s']:.1f} | {r['prompts_per_s']:.1f} | {r['load_avg']:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
