"""Where a BERT-classifier training step spends its time: a ``jax.profiler`` trace of
``tools/bench_train.py``'s step (the same model, data and trainer), summed per XLA operation kind.

    python -m tools.profile_train_step [--steps 3] [--batch 16] [--seq 128] [--dtype float32]

Printed per step, from the events XLA's CPU runtime records for the step's operations:

* each operation kind (a fusion's name without its number: ``ynn_fusion``, ``copy_bitcast_fusion``,
  ``dot``, ...) with its milliseconds and share of the traced operations' total;
* the matmuls (dot fusions and plain dots, whichever XLA chose for this CPU) grouped by the layer
  part they come from (``intermediate/dense``, ...), the forward or backward pass and their
  operand shapes, with the GFLOP/s each group ran at.

Independent operations run side by side on the worker threads, so an operation's time includes
the time it shared the cores; the per-group rates are a lower bound on what each dot alone does.
Plain ``dot`` operations (XLA's Eigen dots, e.g. weight gradients) can run asynchronously: then
their recorded time is short and their work is counted inside whichever operation is recorded on
the same threads meanwhile, so ``dot`` looks cheap and its neighbours slow.
Tracing slows the step (the printed untraced step time is the reference). Timing ratios against
torch come from ``tools/bench_train.py``; this tool only says where the time goes.
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tools.bench_startup import cpu_model
from tools.bench_train import MINILM, TINY, bert_data, machine, prepare_bert_jax

_DOT = re.compile(
    r"%(?P<name>[\w.\-]+) = (?P<out>\w+\[[\d,]*\])\S* fusion\((?P<args>[^)]*)\).*?"
    r"calls=%(?P<comp>[\w.\-]+).*?op_name=\"(?P<op>[^\"]*)\""
)
_SHAPE = re.compile(r"%([\w.\-]+) = (\w+\[[\d,]*\])")
_CONTRACT = re.compile(r" dot\(([^)]*)\), lhs_contracting_dims=\{(\d+)")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = ", re.MULTILINE)
_PLAIN_DOT = re.compile(
    r"%(?P<name>[\w.\-]+) = (?P<out>\w+\[[\d,]*\])\S* dot\(.*?op_name=\"(?P<op>[^\"]*)\""
)


def kind(event_name: str) -> str:
    """An operation's kind: its name without the trailing instance number.

    Example:
        >>> kind("ynn_fusion.182"), kind("copy_bitcast_fusion"), kind("dot.70")
        ('ynn_fusion', 'copy_bitcast_fusion', 'dot')
    """
    return re.sub(r"(\.\d+)+$", "", event_name)


def _dims(shape: str) -> list[int]:
    inside = shape[shape.index("[") + 1 : shape.index("]")]
    return [int(d) for d in inside.split(",") if d]


def _layer_part(op_name: str) -> str:
    """The module path of an operation below its layer (the same for every layer).

    Example:
        >>> _layer_part("jit(step_fn)/transpose(jvp(Classifier))/bert/encoder/layer_1/attention/output/dense/dot_general")
        'attention/output/dense'
        >>> _layer_part("jit(step_fn)/jvp(Classifier)/bert/pooler/dense/dot_general")
        'bert/pooler/dense'
    """
    parts = [p for p in op_name.split("/")[:-1] if "(" not in p]
    layers = [i for i, p in enumerate(parts) if p.startswith("layer_")]
    return "/".join(parts[layers[-1] + 1 :] if layers else parts)


def _group(op_name: str, operands: list[str]) -> str:
    passes = "backward" if "transpose(" in op_name else "forward"
    return f"{_layer_part(op_name)} {passes} {' x '.join(operands[:2])}"


def dot_operations(hlo: str) -> dict[str, dict[str, Any]]:
    """The matmuls of a compiled module's text, as the operations the runtime records: dot
    fusions and plain ``dot`` instructions. Name -> group (layer part, pass, operand shapes) and
    FLOPs (``2 * output elements * contracted size``).

    Which matmuls XLA fuses depends on the CPU it compiles for, so both forms are read; a dot
    inside a fused computation is listed too but never matches a recorded operation's name.
    """
    shapes = dict(_SHAPE.findall(hlo))
    contracting = {}  # fused computation -> lhs contracting dim of its dot
    current = None
    found_ops: dict[str, dict[str, Any]] = {}
    for line in hlo.splitlines():
        if line and not line.startswith(" ") and "{" in line:
            current = line.split()[0].lstrip("%")
        found = _CONTRACT.search(line)
        if not found:
            continue
        if current:
            contracting[current] = int(found.group(2))
        plain = _PLAIN_DOT.search(line)
        if plain:
            args = [shapes.get(a.strip().lstrip("%"), "?") for a in found.group(1).split(",")]
            if "?" not in args[0]:
                k = _dims(args[0])[int(found.group(2))]
                found_ops[plain["name"]] = {
                    "group": _group(plain["op"], args),
                    "flops": 2.0 * int(np.prod(_dims(plain["out"]))) * k,
                }
    for m in _DOT.finditer(hlo):
        if m["comp"] not in contracting:
            continue
        args = [shapes.get(a.strip().lstrip("%"), "?") for a in m["args"].split(",")]
        if "?" in args[0]:
            continue
        k = _dims(args[0])[contracting[m["comp"]]]
        found_ops[m["name"]] = {
            "group": _group(m["op"], args),
            "flops": 2.0 * int(np.prod(_dims(m["out"]))) * k,
        }
    return found_ops


def summarise(events: dict[str, float], fusions: dict[str, dict[str, Any]], steps: int) -> dict:
    """Per-kind milliseconds per step and the dot groups' ms and GFLOP/s from ``events``
    (operation name -> total nanoseconds over ``steps`` steps).

    Example:
        >>> fus = {"ynn_fusion.1": {"group": "dense forward f32[2,2] x f32[2,2]", "flops": 2e9}}
        >>> s = summarise({"ynn_fusion.1": 2e7, "copy.3": 1e7}, fus, steps=2)
        >>> s["kinds"], s["groups"]["dense forward f32[2,2] x f32[2,2]"]
        ({'ynn_fusion': 10.0, 'copy': 5.0}, {'ms': 10.0, 'gflops': 200.0})
    """
    kinds: collections.Counter = collections.Counter()
    group_ms: collections.Counter = collections.Counter()
    group_flops: collections.Counter = collections.Counter()
    for name, ns in events.items():
        ms = ns / 1e6 / steps
        kinds[kind(name)] += ms
        if name in fusions:
            group_ms[fusions[name]["group"]] += ms
            group_flops[fusions[name]["group"]] += fusions[name]["flops"]
    groups = {
        # Each fusion runs once per step: its FLOPs are per step, like its milliseconds.
        g: {"ms": ms, "gflops": group_flops[g] / (ms / 1e3) / 1e9}
        for g, ms in group_ms.most_common()
    }
    return {"kinds": dict(kinds.most_common()), "groups": groups}


def instruction_names(hlo: str) -> set[str]:
    r"""Every instruction name of a compiled module's text (the names its trace events carry).

    Example:
        >>> sorted(instruction_names("  %copy.3 = f32[2]{0} copy(%p)\n  ROOT %t = (f32[]) tuple()"))
        ['copy.3', 't']
    """
    return set(_INSTRUCTION.findall(hlo))


def trace_events(run: Any, steps: int, operations: set[str]) -> dict[str, float]:
    """Run ``run(steps)`` under ``jax.profiler`` and return operation name -> total nanoseconds,
    over the events named after an instruction in ``operations`` (or its ``"end: "`` event).

    Events are matched by name on every thread, not by thread: XLA's executor runs a thunk on
    whichever thread is free, its worker pool (``tf_XLAEigen/...``) or the client thread that
    started the execution (``tf_XLAPjRtCpuClient/...``), and which one differs from run to run.
    """
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            run(steps)
        (path,) = Path(folder).rglob("*.xplane.pb")
        data = ProfileData.from_file(str(path))
    events: collections.Counter = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            for ev in line.events:
                if ev.name.removeprefix("end: ") in operations:
                    events[ev.name] += ev.duration_ns
    return dict(events)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="traced steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-layer, 32-wide encoder (a quick check of the tool)"
    )
    args = parser.parse_args(argv)
    shapes = dict(TINY if args.tiny else MINILM)
    before = machine()["load"]
    data = bert_data(args.batch * 4, args.seq, shapes["vocab_size"])
    dtype = jnp.float32 if args.dtype == "float32" else jnp.bfloat16
    loop = prepare_bert_jax(data, args.batch, warmup=1, shapes=shapes, dtype=dtype)
    untraced = min(loop.run(args.steps) / args.steps for _ in range(2))
    trainer = loop.info["trainer"]
    state = trainer.init(jax.random.PRNGKey(0))
    first = {k: np.asarray(v[: args.batch]) for k, v in data.items()}
    hlo = trainer.step.lower(state, jax.device_put(first, trainer.batch_sharding)).compile()
    text = hlo.as_text()
    matmuls = dot_operations(text)
    start = time.perf_counter()
    events = trace_events(loop.run, args.steps, instruction_names(text))
    traced = (time.perf_counter() - start) / args.steps
    summary = summarise(events, matmuls, args.steps)
    total = sum(summary["kinds"].values())
    print(f"cpu: {cpu_model()}; jax {jax.__version__} ({jax.default_backend()})")
    print(
        f"BERT classifier step, batch {args.batch} x {args.seq} tokens, {args.dtype} matmuls"
        f"{' (tiny encoder)' if args.tiny else ''}: {untraced * 1e3:.0f} ms untraced, "
        f"{traced * 1e3:.0f} ms traced; operations on XLA's threads {total:.0f} ms/step"
    )
    print("kind | ms/step | share")
    for name, ms in list(summary["kinds"].items())[: args.top]:
        print(f"{name} | {ms:.1f} | {ms / total:.0%}")
    print("dot group (layer part, pass, operands) | ms/step | GFLOP/s")
    for group, row in list(summary["groups"].items())[: args.top]:
        print(f"{group} | {row['ms']:.1f} | {row['gflops']:.0f}")
    print(f"load average (1/5/15 min): {before} before, {machine()['load']} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
