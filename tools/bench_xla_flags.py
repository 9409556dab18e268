"""Measure XLA:CPU options on the fused MiniLM executable of a zoo router (default: the default
router): each option set runs in its own process (XLA_FLAGS are read once per process), rounds
alternate the option sets, and the table gives the median time per call for three shapes (batch 1
x 64 tokens, 16 x 64, 64 x 16), the speed-up against no flags, and the largest win-rate difference
from the no-flag outputs.

    python -m tools.bench_xla_flags                     # every option set, 3 rounds
    python -m tools.bench_xla_flags --sets default,ynn_off --rounds 2

An option this jaxlib does not know aborts its process; that set is reported as failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import routellm_jax
from tools.bench_infer import load_prompts

ROOT = Path(__file__).resolve().parents[1]  # children run as python -m tools.bench_xla_flags

# name -> (XLA_FLAGS, encoder precision). jaxlib 0.10.2 already runs dots and reductions as YNNPACK
# fusions by default; the oneDNN and XNN fusion-type options parse but emit nothing on this build.
OPTION_SETS: dict[str, tuple[str, str]] = {
    "default": ("", "float32"),
    "ynn_off": ("--xla_cpu_experimental_ynn_fusion_type=", "float32"),
    "ynn_dot": ("--xla_cpu_experimental_ynn_fusion_type=dot", "float32"),
    "ynn_all": ("--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce", "float32"),
    "eigen_1thread": ("--xla_cpu_multi_thread_eigen=false", "float32"),
    "vec512": ("--xla_cpu_prefer_vector_width=512", "float32"),
    "fast_math": ("--xla_cpu_enable_fast_math=true", "float32"),
    "xnn_graph": (
        "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
        "float32",
    ),
    "conc_sched": ("--xla_cpu_enable_concurrency_optimized_scheduler=true", "float32"),
    "bf16": ("", "bfloat16"),
    "bf16_ynn_off": ("--xla_cpu_experimental_ynn_fusion_type=", "bfloat16"),
    "bf16_eigen_1thread": ("--xla_cpu_multi_thread_eigen=false", "bfloat16"),
    "bf16_ynn_all": ("--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce", "bfloat16"),
    "bf16_fast_math": ("--xla_cpu_enable_fast_math=true", "bfloat16"),
}
SHAPES = ((1, 64), (16, 64), (64, 16))


def child(router_name: str, precision: str, out_path: str) -> None:
    """Compile and time the fused executable for :data:`SHAPES` under this process's XLA_FLAGS."""

    router = routellm_jax.load(router_name, precision=precision)
    fused = router.runner
    if fused.path != "fused":
        raise SystemExit(f"{router_name}: {fused.reason}")
    prompts = load_prompts(None)[:256]
    ids = fused.tokenizer.encode_ids(prompts)
    features = fused.host_features(prompts)
    _, _, s, w = router._pair(None, None)
    result: dict = {"load_before": os.getloadavg()[0]}
    for rows, length in SHAPES:
        index = [i for i, x in enumerate(ids) if len(x) >= min(length, 48)][:rows]
        input_ids, mask = fused.tokenizer.pad([ids[i] for i in index], length, rows)
        host = None if features is None else features[index]
        args = (
            router.params,
            fused.encoder_params,
            input_ids,
            mask,
            host,
            (jnp.int32(s), jnp.int32(w)),  # the win-rate select of the fused function
        )
        executable = fused.jitted.lower(*args).compile()
        out = np.asarray(executable(*args))
        reps = max(1, int(750 / (rows * length)))  # ~0.25 s per sample at ~3000 tokens/s
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(reps):
                last = executable(*args)
            jax.block_until_ready(last)
            samples.append((time.perf_counter() - start) / reps)
        result[f"{rows}x{length}"] = {"ms": 1e3 * statistics.median(samples), "out": out.tolist()}
    result["load_after"] = os.getloadavg()[0]
    Path(out_path).write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", default="irt-shape-minilm")
    parser.add_argument("--sets", default=",".join(OPTION_SETS), help="comma-separated names")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("PRECISION", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.router, *args.child)
        return 0

    names = [n for n in args.sets.split(",") if n]
    unknown = [n for n in names if n not in OPTION_SETS]
    if unknown or "default" not in names:
        parser.error(f"--sets needs 'default' and names from {list(OPTION_SETS)}; bad: {unknown}")
    print(f"command: python -m tools.bench_xla_flags {' '.join(argv or sys.argv[1:])}")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in names:
                flags, precision = OPTION_SETS[name]
                out = Path(tmp) / f"{name}_{r}.json"
                env = {**os.environ, "XLA_FLAGS": flags}
                cmd = [sys.executable, "-m", "tools.bench_xla_flags", "--router", args.router]
                cmd += ["--child", precision, str(out)]
                proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{name} (round {r}): failed: {proc.stderr.strip()[-300:]}")
                    continue
                runs[name].append(json.loads(out.read_text()))
    base = runs["default"]
    if not base:
        print("the no-flag runs failed; nothing to compare")
        return 1
    for name, results in runs.items():
        if not results:
            continue
        cells = []
        for rows, length in SHAPES:
            key = f"{rows}x{length}"
            ms = statistics.median(x[key]["ms"] for x in results)
            ref_ms = statistics.median(x[key]["ms"] for x in base)
            ref_out = np.asarray(base[0][key]["out"])
            diff = max(float(np.abs(np.asarray(x[key]["out"]) - ref_out).max()) for x in results)
            cells.append(f"{key} {ms:7.1f} ms {ref_ms / ms:4.2f}x d={diff:.0e}")
        loads = ",".join(f"{x['load_before']:.1f}" for x in results)
        print(f"{name:<14} {' | '.join(cells)}  load {loads}  {OPTION_SETS[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
