"""A ready accelerator check: one run that measures this project on a GPU against PyTorch on the
same GPU and writes the results as JSON and as a markdown table for ``docs/benchmarks.md``.

On a machine with one NVIDIA GPU, from the repository root::

    pip install -e '.[cuda12,dev]'
    python -m tools.accelerator_check --out accel_check

Steps (each recorded as ``ok``, ``skipped`` with the reason, or ``failed`` with the error; a step
that cannot run is never replaced by a stand-in):

1. **machine**: ``jax.devices()``, the device kind and memory, the CPU model and load, the jax,
   jaxlib, flax and torch versions, whether torch sees CUDA.
2. **inference**: ``tools/bench_infer.py``'s measurement (prompts/s at batch 1/16/256, p50/p99
   latency) of the default router in float32 and bfloat16 against the transformers reference on
   CUDA, and of ``bert-minilm`` (float32 against bfloat16; ``tools/bench_infer.py`` has no torch
   reference of that fine-tuned router) when its entry can be loaded (``--bert-entry``).
3. **training**: ``tools/bench_train.py``'s loops: mf, irt and the MiniLM-shaped BERT classifier
   trained a few hundred steps by our ``Trainer`` against the same work in torch on CUDA;
   examples/s and the ratio.
4. **startup**: ``tools/bench_startup.py``: time to first decision and peak RSS of
   ``routellm-jax route "What is 2+2?"`` in fresh processes (the accelerator's start included)
   against the plain torch + transformers script doing the same work.
5. **sharding**: ``pytest tests/training/test_sharding.py`` in a subprocess on this machine's
   devices; every test's outcome is recorded. Its 8-device tests need 8 devices: on one GPU they
   report that, which is recorded as it comes.

``--dry-run`` runs the same code on CPU with tiny shapes and step counts, weight-free ``hashing:``
featurizers instead of the MiniLM encoder, synthetic prompts, torch on CPU where torch has no
CUDA, and only the sharding tests that need no compile: it checks that the script works, and its
numbers mean nothing. Outputs: ``DIR/accelerator_check.json`` and ``DIR/accelerator_check.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax

import routellm_jax
from routellm_jax.api import DEFAULT_ROUTER, Router
from routellm_jax.models.featurizers import make_embedding_featurizer
from routellm_jax.zoo.entry import read_entry, resolve_entry
from tools import bench_infer, bench_startup, bench_train

REPO = Path(__file__).resolve().parent.parent
SHARDING_TESTS = "tests/training/test_sharding.py"
JSON_NAME = "accelerator_check.json"
MARKDOWN_NAME = "accelerator_check.md"
BUDGET_S = 480  # the full check is meant to fit a short lease of a GPU machine


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes of one run: the full check, or the dry run's tiny ones."""

    # inference (tools/bench_infer.py's measure: n prompts at batch 16/256, n_bs1 at batch 1)
    n: int
    n_bs1: int
    latency_n: int
    rounds: int
    # mf / irt training
    battles: int
    n_prompts: int
    n_models: int
    text_dim: int
    mf_batches: tuple[int, ...]
    steps: int
    warmup: int
    steps_per_dispatch: int
    # bert classifier training
    bert_shapes: dict[str, int]
    bert_batch: int
    bert_seq: int
    bert_steps: int
    # sharding tests: a pytest -k selection ("" = the whole file)
    sharding_select: str
    sharding_timeout_s: int


FULL = Plan(
    n=256,
    n_bs1=64,
    latency_n=100,
    rounds=3,
    battles=100_000,
    n_prompts=1100,
    n_models=64,
    text_dim=384,
    mf_batches=(64, 1024),
    steps=300,
    warmup=20,
    steps_per_dispatch=bench_train.STEPS_PER_DISPATCH,
    bert_shapes=bench_train.MINILM,
    bert_batch=32,
    bert_seq=128,
    bert_steps=200,
    sharding_select="",
    sharding_timeout_s=300,
)

DRY_RUN = Plan(
    n=16,
    n_bs1=4,
    latency_n=4,
    rounds=1,
    battles=512,
    n_prompts=64,
    n_models=6,
    text_dim=16,
    mf_batches=(32,),
    steps=4,
    warmup=2,
    steps_per_dispatch=2,
    bert_shapes={
        "vocab_size": 1100,  # bench_train.bert_data draws ids from 1000 up
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
    bert_batch=4,
    bert_seq=16,
    bert_steps=2,
    # the tests of the file that compile nothing
    sharding_select="resolve_mesh_shape or partition_rules",
    sharding_timeout_s=120,
)


def _skipped(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason, **extra}


def _run_step(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``'s record with its wall time; an exception becomes a ``failed`` record (the
    remaining steps still run)."""
    print(f"\n### {name}", flush=True)
    start = time.perf_counter()
    try:
        record = fn()
    except Exception as err:  # recorded, not hidden: the run's exit status reports it
        traceback.print_exc()
        record = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    record.setdefault("status", "ok")
    record["step"] = name
    record["wall_s"] = time.perf_counter() - start
    return record


# -------------------------------------------------------------------------- machine


def _torch_info() -> dict[str, Any]:
    try:
        import torch  # local: torch is the dev extra's, optional for the package
    except ImportError as err:
        return {"version": None, "cuda": False, "reason": f"torch not importable: {err}"}
    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def machine_info() -> dict[str, Any]:
    """The devices JAX sees (kind, memory), the CPU, and the library versions."""
    devices = []
    for d in jax.devices():
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        limit = (stats or {}).get("bytes_limit")
        devices.append(
            {
                "id": d.id,
                "platform": d.platform,
                "kind": d.device_kind,
                "memory_gib": None if limit is None else limit / 2**30,
            }
        )
    host = bench_train.machine()
    return {
        "status": "ok",
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "devices": devices,
        "cpu": host["cpu"],
        "cores": host["cores"],
        "load": host["load"],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
        "flax": flax.__version__,
        "torch": _torch_info(),
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib  # local: only its version string is read

        return jaxlib.__version__
    except ImportError:
        return None


def torch_device(dry_run: bool, torch_info: dict[str, Any]) -> tuple[str | None, str]:
    """The torch device the references run on, or ``None`` and why not."""
    if torch_info.get("version") is None:
        return None, torch_info["reason"]
    if torch_info["cuda"]:
        return "cuda", ""
    if dry_run:
        return "cpu", ""
    return None, f"torch {torch_info['version']} has no CUDA (torch.cuda.is_available() False)"


# -------------------------------------------------------------------------- inference


def _synthetic_prompts(n: int) -> list[str]:
    """The dry run's prompts: varied lengths, no data files needed."""
    words = "route the prompt to a cheaper model when the strong one adds little".split()
    return [" ".join(words[: 3 + i % len(words)]) + f" question {i}?" for i in range(n)]


def _bench_args(plan: Plan) -> argparse.Namespace:
    return argparse.Namespace(
        n=plan.n,
        n_bs1=plan.n_bs1,
        latency_n=plan.latency_n,
        rounds=plan.rounds,
        threads=0,
        target_ratio=1.5,
        target_pps=0.0,
    )


def _weight_free_router(name: str) -> Router:
    """The zoo entry's own parameters with a ``hashing:`` featurizer of the card's width (the
    dry run's stand-in for the MiniLM encoder; its win rates are meaningless)."""
    card, params = read_entry(resolve_entry(name))
    text_dim = int(card.config["text_dim"])
    return Router(card, params, featurizer=make_embedding_featurizer(f"hashing:{text_dim}"))


def inference_default(
    plan: Plan, dry_run: bool, prompts: list[str], device: str | None, why_no_torch: str
) -> dict[str, Any]:
    """The default router: float32 and bfloat16 against the torch reference on ``device``."""
    base = _weight_free_router(DEFAULT_ROUTER) if dry_run else routellm_jax.load(DEFAULT_ROUTER)
    if dry_run:
        device, why_no_torch = None, "dry run: the torch reference needs the MiniLM weights"
    wanted = ["jax-f32", "jax-bf16", "torch-ref", "torch-bf16"]
    result = bench_infer.bench_fused_router(
        DEFAULT_ROUTER, base, prompts, _bench_args(plan), wanted, torch_device=device
    )
    result["torch_device"] = device
    if device is None:
        result["torch_reference"] = _skipped(why_no_torch)
    return {"status": "ok", **result}


def inference_bert(plan: Plan, dry_run: bool, prompts: list[str], entry: str) -> dict[str, Any]:
    """bert-minilm in float32 against bfloat16, where its entry loads."""
    if dry_run:
        return _skipped("dry run: the bert entry is a fine-tuned MiniLM (weights)", router=entry)
    try:
        base = routellm_jax.load(entry)
    except Exception as err:  # the entry is not bundled: NotPublished, missing folder, ...
        return _skipped(f"entry {entry!r} not loadable: {type(err).__name__}: {err}", router=entry)
    result = bench_infer._own_encoder_rows(entry, base, prompts, _bench_args(plan))
    result["torch_reference"] = _skipped(
        "tools/bench_infer.py has no torch reference of the fine-tuned bert router"
    )
    return {"status": "ok", **result}


def startup(plan: Plan, dry_run: bool, out: Path) -> dict[str, Any]:
    """tools/bench_startup.py's comparison for the default router (``plan.rounds`` repeats)."""
    if dry_run:
        return _skipped("dry run: the startup comparison loads the MiniLM weights")
    path = out / "startup.json"
    try:
        bench_startup.main(["--repeats", str(plan.rounds), "--json", str(path)])
    except SystemExit as err:  # the two sides disagree, or the router has no torch head
        return {"status": "failed", "reason": str(err)}
    return {"status": "ok", **json.loads(path.read_text())}


# -------------------------------------------------------------------------- training


def _pair(
    name: str, batch: int, ours: dict[str, Any], ref: dict[str, Any] | None, why: str
) -> dict[str, Any]:
    row: dict[str, Any] = {"status": "ok", "workload": name, "batch": batch, "jax": ours}
    if ref is None:
        row["torch"] = _skipped(why)
    else:
        row["torch"] = ref
        row["ratio"] = ours["examples_per_s"] / ref["examples_per_s"]
    return row


def training(plan: Plan, device: str | None, why_no_torch: str) -> list[dict[str, Any]]:
    """mf, irt and the BERT classifier: ours (examples on the device, ``steps_per_dispatch``
    steps per call for mf/irt) against the same work in torch on ``device``."""
    d = bench_train.mf_data(plan.battles, plan.n_prompts, plan.n_models, plan.text_dim)
    irt = bench_train.irt_examples(d)
    k, steps, warmup = plan.steps_per_dispatch, plan.steps, plan.warmup
    device_mb = bench_train.DEVICE_BUDGET_MB
    rows = []
    for batch in plan.mf_batches:

        def mf(batch: int = batch) -> dict[str, Any]:
            ours = bench_train.bench_mf_jax(
                d, batch, steps, k=k, device_mb=device_mb, warmup=warmup
            )
            ref = None
            if device is not None:
                ref = bench_train.bench_mf_torch(
                    d, batch, steps, dataloader=False, warmup=warmup, device=device
                )
            return _pair("mf", batch, ours, ref, why_no_torch)

        def irt_step(batch: int = batch) -> dict[str, Any]:
            ours = bench_train.bench_irt_jax(
                irt, batch, steps, k=k, device_mb=device_mb, warmup=warmup
            )
            ref = None
            if device is not None:
                ref = bench_train.bench_irt_torch(irt, batch, steps, warmup=warmup, device=device)
            return _pair("irt", batch, ours, ref, why_no_torch)

        rows.append(_run_step(f"training: mf, batch {batch}", mf))
        rows.append(_run_step(f"training: irt, batch {batch}", irt_step))

    def bert() -> dict[str, Any]:
        shapes = plan.bert_shapes
        bd = bench_train.bert_data(
            plan.bert_batch * (plan.bert_steps + 4), plan.bert_seq, shapes["vocab_size"]
        )
        ours = bench_train.bench_bert_jax(bd, plan.bert_batch, plan.bert_steps, shapes=shapes)
        ref = None
        if device is not None:
            ref = bench_train.bench_bert_torch(
                bd, plan.bert_batch, plan.bert_steps, shapes=shapes, device=device
            )
        row = _pair("bert classifier", plan.bert_batch, ours, ref, why_no_torch)
        row["seq"] = plan.bert_seq
        return row

    rows.append(_run_step("training: bert classifier", bert))
    return rows


# -------------------------------------------------------------------------- sharding tests


def sharding_tests(plan: Plan, out: Path) -> dict[str, Any]:
    """``pytest`` on the sharding tests in a subprocess; every test's outcome from its junit XML."""
    report = out / "sharding_junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SHARDING_TESTS]
    cmd += [f"--junitxml={report}"]
    if plan.sharding_select:
        cmd += ["-k", plan.sharding_select]
    env = dict(os.environ)
    # The suite's 8-device tests ask for 8 host devices; on an accelerator JAX's devices are the
    # accelerator's and this flag changes nothing there.
    flag = "--xla_force_host_platform_device_count=8"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    try:
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=plan.sharding_timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {
            "status": "failed",
            "reason": f"timed out after {plan.sharding_timeout_s} s",
            "command": " ".join(cmd[1:]),
        }
    tests = []
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                node = case.find(kind)
                if node is not None:
                    outcome = {"failure": "failed", "error": "error"}.get(kind, kind)
                    message = ((node.get("message") or "").splitlines() or [""])[0][:300]
                    break
            tests.append({"test": case.get("name"), "outcome": outcome, "message": message})
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error")}
    counts["skipped"] = sum(t["outcome"] == "skipped" for t in tests)
    return {
        "status": "ok" if proc.returncode == 0 and tests else "failed",
        "reason": "" if proc.returncode == 0 else _last_line(proc.stdout + proc.stderr),
        "command": shlex.join(["python", *cmd[1:]]).replace(str(report), report.name),
        "returncode": proc.returncode,
        # What the tests ran on: this backend's devices, or 8 host devices where it is the CPU.
        "backend": jax.default_backend(),
        "xla_flags": env["XLA_FLAGS"],
        "counts": counts,
        "tests": tests,
    }


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"


# -------------------------------------------------------------------------- report


def _fmt(x: Any, digits: int = 1) -> str:
    if isinstance(x, (int, float)) and math.isfinite(x):
        return f"{x:,.{digits}f}"
    return "-"


def markdown(result: dict[str, Any]) -> str:
    """The tables to paste into ``docs/benchmarks.md`` (device and command named)."""
    m = result["machine"]
    kinds = sorted({d["kind"] for d in m.get("devices", [])})
    mem = [d["memory_gib"] for d in m.get("devices", []) if d["memory_gib"]]
    torch_info = m.get("torch", {})
    lines = [
        f"### Accelerator check: {', '.join(kinds)}"
        + (" (DRY RUN on CPU: tiny shapes, numbers meaningless)" if result["dry_run"] else ""),
        "",
        f"`{result['command']}`; JAX {m.get('jax')} ({m.get('backend')}, "
        f"{m.get('device_count')} device(s)"
        + (f", {mem[0]:.0f} GiB" if mem else "")
        + f"), torch {torch_info.get('version')} "
        f"({'CUDA: ' + torch_info['cuda_device'] if torch_info.get('cuda') else 'no CUDA'}); "
        f"host CPU {m.get('cpu')} ({m.get('cores')} cores, load {m.get('load')}); "
        f"total {result['wall_s']:.0f} s.",
        "",
        "Inference (prompts/s; ratio = JAX / torch reference on the same device):",
        "",
        "| router | variant | batch 1 | batch 16 | batch 256 | p50 ms | p99 ms | x torch bs1 / "
        "bs16 / bs256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    skipped = []
    for inf in result["inference"]:
        router = inf.get("router", "?")
        if inf["status"] != "ok":
            skipped.append(f"inference {router}: {inf['status']}: {inf['reason']}")
            continue
        rows = inf["rows"]
        ref = rows.get("torch-ref")
        for variant, row in rows.items():
            ratio = "-"
            if ref is not None and variant.startswith("jax"):
                ratio = " / ".join(f"{row[k] / ref[k]:.2f}x" for k in ("bs1", "bs16", "bs256"))
            lines.append(
                f"| {router} | {variant} | {_fmt(row['bs1'])} | {_fmt(row['bs16'])} | "
                f"{_fmt(row['bs256'])} | {_fmt(row['p50_ms'], 2)} | {_fmt(row['p99_ms'], 2)} | "
                f"{ratio} |"
            )
        if inf.get("torch_reference", {}).get("status") == "skipped":
            skipped.append(f"torch reference for {router}: {inf['torch_reference']['reason']}")
    lines += [
        "",
        "Training (examples/s, timed after compilation and warm-up):",
        "",
        "| workload | batch | JAX | torch | JAX / torch |",
        "|---|---|---|---|---|",
    ]
    for tr in result["training"]:
        if tr["status"] != "ok":
            skipped.append(f"{tr['step']}: {tr['status']}: {tr['reason']}")
            continue
        torch_row = tr["torch"]
        torch_eps = torch_row.get("examples_per_s") if "examples_per_s" in torch_row else None
        if torch_eps is None:
            skipped.append(f"torch {tr['workload']} batch {tr['batch']}: {torch_row['reason']}")
        lines.append(
            f"| {tr['workload']} | {tr['batch']} | {_fmt(tr['jax']['examples_per_s'], 0)} | "
            f"{_fmt(torch_eps, 0)} | {_fmt(tr.get('ratio'), 2)}"
            + ("x" if "ratio" in tr else "")
            + " |"
        )
    st = result.get("startup", _skipped("not run"))
    if st["status"] == "ok":
        jax_row, torch_row = st["summary"]["jax"], st["summary"]["torch"]
        lines += [
            "",
            f"Startup (`routellm-jax route` one prompt, fresh process, warm caches; "
            f"`{st['command']}`): JAX {jax_row['first_s']:.2f} s to first decision, "
            f"{jax_row['rss_mib']:.0f} MiB peak RSS; torch + transformers (CPU) "
            f"{torch_row['first_s']:.2f} s, {torch_row['rss_mib']:.0f} MiB; "
            f"{st['ratio_first_decision']:.2f}x.",
        ]
    else:
        skipped.append(f"startup: {st['status']}: {st['reason']}")
    sh = result["sharding"]
    counts = sh.get("counts", {})
    lines += [
        "",
        f"Sharding tests (`{sh.get('command', SHARDING_TESTS)}`, backend "
        f"{sh.get('backend', '?')}, XLA_FLAGS `{sh.get('xla_flags', '')}`): {sh['status']}; "
        + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        + ".",
    ]
    for t in sh.get("tests", []):
        if t["outcome"] != "passed":
            lines.append(f"- `{t['test']}`: {t['outcome']}: {t['message']}")
    if sh["status"] != "ok" and sh.get("reason"):
        skipped.append(f"sharding: {sh['reason']}")
    if skipped:
        lines += ["", "Not measured:", ""] + [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the JSON and markdown")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="the same steps on CPU with tiny shapes and no encoder weights (checks the script)",
    )
    parser.add_argument("--data-dir", default=None, help="routing data (GSM8K/MT-Bench prompts)")
    parser.add_argument(
        "--bert-entry",
        default="bert-minilm",
        help="the bert router to time: a zoo name or a local entry folder (zoo build's output)",
    )
    args = parser.parse_args(argv)
    # JAX takes 75% of GPU memory at its first call by default, which would leave the torch
    # references too little; set before the backend starts (machine_info's jax.devices()).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = DRY_RUN if args.dry_run else FULL
    machine = _run_step("machine", machine_info)
    if not args.dry_run and jax.default_backend() == "cpu":
        parser.error(
            "JAX sees no accelerator (backend cpu): install the cuda12 extra on a GPU machine, "
            "or check the script with --dry-run"
        )
    device, why_no_torch = torch_device(args.dry_run, machine.get("torch", {}))
    print(json.dumps(machine, indent=1), flush=True)

    no_prompts = ""
    if args.dry_run:
        prompts = _synthetic_prompts(2 * plan.n)
    else:
        try:
            prompts = bench_infer.load_prompts(args.data_dir)
        except OSError as err:  # no routing data on this machine
            prompts, no_prompts = [], f"no GSM8K/MT-Bench prompts (--data-dir): {err}"
    inference = [
        _run_step(
            f"inference: {DEFAULT_ROUTER}",
            lambda: (
                _skipped(no_prompts)
                if no_prompts
                else inference_default(plan, args.dry_run, prompts, device, why_no_torch)
            ),
        ),
        _run_step(
            f"inference: {args.bert_entry}",
            lambda: (
                _skipped(no_prompts)
                if no_prompts
                else inference_bert(plan, args.dry_run, prompts, args.bert_entry)
            ),
        ),
    ]
    inference[0].setdefault("router", DEFAULT_ROUTER)
    inference[1].setdefault("router", args.bert_entry)
    train = training(plan, device, why_no_torch)
    started_up = _run_step("startup", lambda: startup(plan, args.dry_run, out))
    sharding = _run_step("sharding tests", lambda: sharding_tests(plan, out))
    result = {
        "dry_run": args.dry_run,
        "command": "python -m tools.accelerator_check "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "plan": dataclasses.asdict(plan),
        "torch_device": device,
        "machine": machine,
        "inference": inference,
        "training": train,
        "startup": started_up,
        "sharding": sharding,
        "wall_s": time.perf_counter() - started,
        "budget_s": BUDGET_S,
    }
    if not args.dry_run and result["wall_s"] > BUDGET_S:
        print(f"WARNING: the check took {result['wall_s']:.0f} s, over its {BUDGET_S} s budget")
    result["machine"]["load_after"] = bench_train.machine()["load"]
    (out / JSON_NAME).write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / MARKDOWN_NAME).write_text(markdown(result))
    print("\n" + markdown(result))
    print(f"wrote {out / JSON_NAME} and {out / MARKDOWN_NAME}")
    steps = [machine, *inference, *train, started_up, sharding]
    return 1 if any(s["status"] == "failed" for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
