"""Startup benchmark: time to first decision and peak resident memory of one
``routellm-jax route "What is 2+2?"`` in a fresh process, against a plain PyTorch + transformers
script doing the same work, with warm caches, as a ratio measured in one run.

Both sides start a new Python process per repeat and print one line, ``win rate<TAB>chosen
model<TAB>prompt``; the time to first decision is from the process's start to that line on its
standard output (the wall time to exit, the CPU seconds to exit and the peak RSS, from
``wait4``, are reported too: on a loaded machine the CPU seconds say what an idle one would
take better than the wall time does).

* **JAX**: the console command itself, ``routellm-jax route PROMPT --router NAME`` (as
  ``python -m routellm_jax.cli`` with this interpreter), the zoo entry read and verified from the
  cache, the encoder from its cache, JAX's persistent compilation cache warm (one untimed call
  first fills it; ``ROUTELLM_JAX_COMPILE_CACHE`` as in the environment).
* **torch**: this file's ``--torch-child`` mode: imports torch and transformers (nothing of this
  project, no JAX), loads the same MiniLM files (the encoder folder the router verified) with
  ``BertModel.from_pretrained``, tokenizes with the fast tokenizer, mean-pools and normalises,
  applies the same head weights (taken once from the zoo entry into an ``.npz`` before timing:
  reading Orbax needs JAX) in torch, and prints the decision at the same threshold. Its win rate
  is checked against the JAX command's (``--tolerance``) before any number is reported: both
  sides must do the same work.

Heads written in torch: ``irt`` (plain embedding featurizer, no source term) and ``mf``.
Other machines' jobs share this one, so the two sides take turns repeat by repeat and medians are
reported, with the load average before and after and the CPU model.

    python tools/bench_startup.py                       # the default router, 5 repeats
    python tools/bench_startup.py --router mf-minilm --repeats 9 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPT = "What is 2+2?"
DEFAULT_ROUTER = "irt-mix-minilm"  # routellm_jax.api.DEFAULT_ROUTER (this file imports no JAX)
TARGET_S = 1.5
METRICS = ("first_s", "wall_s", "cpu_s", "rss_mib")


# ---- the torch side (a child process: torch + transformers + numpy only) --------------------


def torch_child(head_file: str, prompt: str) -> int:
    """Load MiniLM and the head, decide one prompt, print ``win rate<TAB>model<TAB>prompt``."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertModel

    head = np.load(head_file)
    folder = str(head["encoder_folder"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False).eval()
    weights = {k: torch.from_numpy(head[k]) for k in head.files if k.startswith("w_")}
    with torch.inference_mode():
        batch = tokenizer(
            [prompt], truncation=True, max_length=int(head["max_length"]), return_tensors="pt"
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        emb = torch.nn.functional.normalize(pooled, dim=-1)
        strong, weak = int(head["strong"]), int(head["weak"])
        rate = float(_torch_head(str(head["architecture"]), weights, emb, strong, weak)[0])
    threshold = float(head["threshold"])
    model_name = str(head["strong_name"] if rate >= threshold else head["weak_name"])
    print(f"{rate:.4f}\t{model_name}\t{prompt}", flush=True)
    return 0


def _torch_head(arch: str, w: dict[str, Any], emb: Any, strong: int, weak: int) -> Any:
    """The router head in torch, on ``[batch, dim]`` embeddings: ``[batch]`` win rates."""
    import torch

    if arch == "irt":  # routellm_jax.models.irt: gelu MLP -> (a, b); s = a @ theta.T + bias - b
        x = torch.nn.functional.gelu(
            emb @ w["w_hidden_kernel"] + w["w_hidden_bias"], approximate="tanh"
        )
        out = x @ w["w_item_kernel"] + w["w_item_bias"]
        a, b = out[:, :-1], out[:, -1]
        s = a @ w["w_theta"].T + w["w_bias"][None, :] - b[:, None]
        if int(w["w_bt"]):
            return torch.sigmoid(s[:, strong] - s[:, weak])
        return 0.5 + 0.5 * (torch.sigmoid(s[:, strong]) - torch.sigmoid(s[:, weak]))
    if arch == "mf":  # routellm_jax.models.mf without a projection bias
        v = torch.nn.functional.normalize(w["w_model_embed"][[strong, weak]], dim=-1)
        q = emb @ w["w_text_proj"] if "w_text_proj" in w else emb
        scores = (q[:, None, :] * v[None]) @ w["w_classifier"]
        return torch.sigmoid(scores[:, 0] - scores[:, 1])
    raise ValueError(f"no torch head for architecture {arch!r}")


# ---- setup (imports the project; never timed) ----------------------------------------------


def export_head(router_name: str, out: Path) -> dict[str, Any]:
    """The router's head weights, pair, threshold at a 50% strong share and encoder folder, as an
    ``.npz`` the torch child reads. Raises ``SystemExit`` for a head with no torch version."""
    import numpy as np

    import routellm_jax
    from routellm_jax.models.encoders.fetch import fetch_encoder

    router = routellm_jax.load(router_name)
    arch, cfg, p = router.card.architecture, router.config, router.params
    runner = router.runner
    if runner.path != "fused" or runner.host_featurizers:
        raise SystemExit(f"{router_name}: no torch reference ({runner.reason})")
    arrays: dict[str, Any] = {}
    if arch == "irt" and cfg.source_effect == "none" and cfg.hidden_dim:
        arrays = {
            "w_hidden_kernel": p["hidden"]["kernel"],
            "w_hidden_bias": p["hidden"]["bias"],
            "w_item_kernel": p["item"]["kernel"],
            "w_item_bias": p["item"]["bias"],
            "w_theta": p["theta"],
            "w_bias": p["bias"],
            "w_bt": np.int32(cfg.win_rate_mode == "bt"),
        }
    elif arch == "mf" and not cfg.proj_bias:
        arrays = {"w_model_embed": p["model_embed"], "w_classifier": p["classifier"]["kernel"]}
        if cfg.use_proj:
            arrays["w_text_proj"] = p["text_proj"]["kernel"]
    else:
        raise SystemExit(f"{router_name}: no torch head for this {arch} configuration")
    strong, weak, s, w = router._pair(None, None)
    info = {
        "architecture": arch,
        "strong": s,
        "weak": w,
        "strong_name": strong,
        "weak_name": weak,
        "threshold": router.threshold_for_share(0.5),
        "max_length": runner.tokenizer.max_length,
        "encoder_folder": str(fetch_encoder(router.card.encoder.name)),
    }
    np.savez(out, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}, **info)
    return info


# ---- timing ---------------------------------------------------------------------------------


def run_once(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Start ``cmd``; seconds to its first stdout line and to its exit, its CPU seconds (user +
    system), its peak RSS (MiB) and that first line."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, cwd=REPO
    )
    first = proc.stdout.readline()
    first_s = time.perf_counter() - start
    rest = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first.strip():
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{first}{rest}{err}")
    return {
        "first_s": first_s,
        "wall_s": wall_s,
        "cpu_s": usage.ru_utime + usage.ru_stime,  # all threads, to exit
        "rss_mib": usage.ru_maxrss / 1024,  # ru_maxrss is in KiB on Linux
        "line": first,
    }


def cpu_model() -> str:
    """The CPU's model name and the flags that decide which kernels are fast."""
    name, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    wanted = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    return f"{name} ({os.cpu_count()} cores; {', '.join(f for f in wanted if f in flags) or 'no avx512'})"


def _parse(line: str) -> tuple[float, str]:
    rate, model, _ = line.rstrip("\n").split("\t", 2)
    return float(rate), model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", default=DEFAULT_ROUTER, help="zoo name (irt or mf head)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (medians)")
    parser.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest |win rate difference| accepted"
    )
    parser.add_argument("--target", type=float, default=TARGET_S, help="seconds to first decision")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--torch-child", default=None, help=argparse.SUPPRESS)  # head .npz
    args = parser.parse_args(argv)
    if args.torch_child:
        return torch_child(args.torch_child, args.prompt)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        head_file = Path(tmp) / "head.npz"
        info = export_head(args.router, head_file)
        sides = {
            "jax": [sys.executable, "-m", "routellm_jax.cli", "route", "--router", args.router]
            + [args.prompt],
            "torch": [sys.executable, str(Path(__file__).resolve()), "--torch-child"]
            + [str(head_file), "--prompt", args.prompt],
        }
        for cmd in sides.values():  # warm: page cache, compilation cache, tokenizer files
            run_once(cmd, env)
        load_before = os.getloadavg()[0]
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
        for _ in range(args.repeats):
            for key, cmd in sides.items():
                runs[key].append(run_once(cmd, env))
        load_after = os.getloadavg()[0]

    decided = {k: _parse(v[0]["line"]) for k, v in runs.items()}
    diff = abs(decided["jax"][0] - decided["torch"][0])
    if diff > args.tolerance or decided["jax"][1] != decided["torch"][1]:
        raise SystemExit(
            f"the two sides disagree: jax {decided['jax']}, torch {decided['torch']} "
            f"(tolerance {args.tolerance}); the comparison would not be of the same work"
        )
    summary = {
        key: {metric: statistics.median(r[metric] for r in rs) for metric in METRICS}
        for key, rs in runs.items()
    }
    jax_s, torch_s = summary["jax"]["first_s"], summary["torch"]["first_s"]
    command = "python tools/bench_startup.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"cpu: {cpu_model()}")
    print(f"command: {command}")
    print(
        f"router {args.router} ({info['architecture']}); prompt {args.prompt!r}; decision "
        f"{decided['jax'][1]} (win rate jax {decided['jax'][0]:.4f}, torch "
        f"{decided['torch'][0]:.4f}); {args.repeats} repeats per side, medians; load average "
        f"(1 min) {load_before:.2f} before, {load_after:.2f} after"
    )
    print(
        f"   {'side':<8} {'first decision s':>17} {'exit s':>8} {'CPU s':>7} {'peak RSS MiB':>13}"
        "  all first-decision s"
    )
    for key, row in summary.items():
        every = ", ".join(f"{r['first_s']:.2f}" for r in runs[key])
        print(
            f"   {key:<8} {row['first_s']:>17.2f} {row['wall_s']:>8.2f} {row['cpu_s']:>7.2f} "
            f"{row['rss_mib']:>13.0f}  {every}"
        )
    met = jax_s <= args.target
    print(
        f"   torch / jax time to first decision: {torch_s / jax_s:.2f}x; jax / torch peak RSS: "
        f"{summary['jax']['rss_mib'] / summary['torch']['rss_mib']:.2f}x; target (<= "
        f"{args.target:.1f} s to first decision) {'met' if met else 'NOT met'}"
    )
    if args.json:
        result = {
            "command": command,
            "cpu": cpu_model(),
            "router": args.router,
            "load_before": load_before,
            "load_after": load_after,
            "repeats": args.repeats,
            "summary": summary,
            "runs": {k: [{m: r[m] for m in METRICS} for r in v] for k, v in runs.items()},
            "ratio_first_decision": torch_s / jax_s,
            "target_met": met,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
