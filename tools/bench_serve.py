"""Benchmark the routing server: requests/s and router latency p50/p99 under concurrent load.

Three processes, so the load generator and the fake upstreams do not share the server's GIL:

* the server (``create_app`` under uvicorn) with the router: a zoo router via
  ``routellm_jax.api.load(--router)`` when that loads, else the deterministic fake ``HashRouter``
  (the output says which, and why);
* two fake OpenAI-compatible upstreams (``routellm_jax.serve.testing.FakeUpstream``);
* this process, sending ``--requests`` chat completions at each ``--concurrency`` level with
  sharded ``httpx.AsyncClient`` pools.

Router latency per request (batching wait + forward pass) is read from the server's
``Server-Timing: router;dur=<ms>`` header; the mean batch size from ``/metrics``.

Example::

    python tools/bench_serve.py --requests 2000 --concurrency 1,16,64
    python tools/bench_serve.py --router mf-minilm --batch-window-ms 2
    python tools/bench_serve.py --router synthetic-mf   # untrained mf on the real JAX path
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from routellm_jax import api
from routellm_jax.models import registry
from routellm_jax.serve.testing import FakeUpstream, HashRouter
from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_router(name: str, fake_only: bool):
    """(router, description): the real router when it loads, else the fake one with the reason."""
    # Local: the serve layer needs the serve extra.

    if name == "synthetic-mf" and not fake_only:
        return _synthetic_mf(), (
            "synthetic mf via api.Router.from_params (random init, hashing featurizer: the real "
            "JAX forward path, untrained weights)"
        )
    if not fake_only:
        try:
            router = api.load(name)
            if hasattr(router, "warmup"):
                router.warmup()
            return router, f"real router {router.name!r} ({router.card.architecture})"
        except Exception as err:  # any reason it cannot load: say it, use the fake
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            return HashRouter(name), f"FAKE HashRouter (api.load({name!r}) failed: {reason})"
    return HashRouter(name), "FAKE HashRouter (--fake-router)"


def _synthetic_mf():
    """An untrained mf router on the real inference path, for when no zoo entry is available."""

    arch = registry.get_architecture("mf")
    cfg = arch.make_config(
        models=(PAPER_STRONG, PAPER_WEAK), featurizer="hashing:256", text_dim=256, dim=64
    )
    router = api.Router.from_params(
        "mf", cfg, arch.init(jax.random.key(0), cfg), name="synthetic-mf"
    )
    router.warmup()
    return router


def _serve_role(args: argparse.Namespace) -> None:
    """Child process: the routing server."""
    import uvicorn  # local: uvicorn and the server are the serve extra

    from routellm_jax.serve.server import ServeSettings, Upstream, create_app

    router, description = _load_router(args.router, args.fake_router)
    print(json.dumps({"router": description, "name": router.name}), flush=True)
    settings = ServeSettings(
        Upstream("strong", "big-model", args.strong_url),
        Upstream("weak", "small-model", args.weak_url),
        batch_window_ms=args.batch_window_ms,
        max_batch=args.max_batch,
    )
    uvicorn.run(
        create_app({router.name: router}, settings),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=60,
    )


def _upstreams_role(args: argparse.Namespace) -> None:
    """Child process: two fake upstreams; prints their base URLs, then waits to be killed."""

    strong, weak = FakeUpstream().start(), FakeUpstream().start()
    print(json.dumps({"strong": strong.base_url, "weak": weak.base_url}), flush=True)
    while True:
        time.sleep(3600)


def _spawn(role: str, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", role, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )


async def _load(url: str, model: str, n: int, concurrency: int, endpoint: str = "chat") -> dict:
    import httpx  # local: httpx is the serve extra

    shards = max(1, min(8, concurrency))  # one httpx pool of many connections is slow
    per = max(1, -(-concurrency // shards))
    clients = [
        httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=per), timeout=60)
        for _ in range(shards)
    ]
    sem = asyncio.Semaphore(concurrency)
    router_ms, total_ms, errors = [], [], 0

    async def one(i: int) -> None:
        nonlocal errors
        prompt = f"benchmark prompt {i}: explain item {i}"
        if endpoint == "chat":
            path, body = (
                "/v1/chat/completions",
                {"model": model, "messages": [{"role": "user", "content": prompt}]},
            )
        else:
            path, body = "/v1/route", {"model": model, "prompt": prompt}
        async with sem:
            t0 = time.perf_counter()
            try:
                r = await clients[i % shards].post(path, json=body)
            except Exception:
                errors += 1
                return
            total_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors += 1
                return
            m = re.search(r"router;dur=([0-9.]+)", r.headers.get("server-timing", ""))
            if m:
                router_ms.append(float(m.group(1)))

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.aclose()
    r, t = np.array(router_ms), np.array(total_ms)
    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": errors,
        "req_per_s": n / elapsed,
        "router_p50_ms": float(np.percentile(r, 50)) if r.size else float("nan"),
        "router_p99_ms": float(np.percentile(r, 99)) if r.size else float("nan"),
        "total_p50_ms": float(np.percentile(t, 50)) if t.size else float("nan"),
        "total_p99_ms": float(np.percentile(t, 99)) if t.size else float("nan"),
    }


def _batch_stats(url: str) -> tuple[float, float]:
    """(sum, count) of the server's router batch-size histogram."""
    import httpx  # local: httpx is the serve extra

    text = httpx.get(url + "/metrics").text
    total = sum(
        float(x) for x in re.findall(r"routellm_router_batch_size_sum\{[^}]*\} (\S+)", text)
    )
    count = sum(
        float(x) for x in re.findall(r"routellm_router_batch_size_count\{[^}]*\} (\S+)", text)
    )
    return total, count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--router",
        default="mf-minilm",
        help="zoo name or path for api.load, or 'synthetic-mf' (untrained, real JAX path)",
    )
    p.add_argument("--fake-router", action="store_true", help="use the fake HashRouter")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    p.add_argument("--batch-window-ms", type=float, default=5.0)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument(
        "--endpoint",
        choices=("chat", "route"),
        default="chat",
        help="chat: full chat completions via the fake upstreams; route: /v1/route only",
    )
    p.add_argument("--role", default="bench", choices=("bench", "server", "upstreams"))
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--strong-url", default="", help=argparse.SUPPRESS)
    p.add_argument("--weak-url", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "server":
        _serve_role(args)
        return 0
    if args.role == "upstreams":
        _upstreams_role(args)
        return 0

    import httpx  # local: httpx is the serve extra

    procs = []
    try:
        up = _spawn("upstreams", [])
        procs.append(up)
        urls = json.loads(up.stdout.readline())
        port = _free_port()
        extra = [
            "--port", str(port), "--strong-url", urls["strong"], "--weak-url", urls["weak"],
            "--router", args.router, "--batch-window-ms", str(args.batch_window_ms),
            "--max-batch", str(args.max_batch),
        ]  # fmt: skip
        if args.fake_router:
            extra.append("--fake-router")
        server = _spawn("server", extra)
        procs.append(server)
        info = json.loads(server.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not come up")
            time.sleep(0.1)
        model = f"router-{info['name']}-{args.threshold}"
        print(f"router: {info['router']}")
        print(
            f"upstreams: 2 fake OpenAI-compatible servers (separate process); "
            f"batch window {args.batch_window_ms} ms, max batch {args.max_batch}; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
            f"endpoint {args.endpoint}"
        )
        asyncio.run(_load(url, model, min(200, args.requests), 16))  # warm-up
        header = (
            f"{'conc':>5} {'req/s':>8} {'router p50':>11} {'router p99':>11} "
            f"{'total p50':>10} {'total p99':>10} {'mean batch':>10} {'errors':>6}"
        )
        print(header)
        for level in (int(c) for c in args.concurrency.split(",")):
            before = _batch_stats(url)
            row = asyncio.run(_load(url, model, args.requests, level, args.endpoint))
            after = _batch_stats(url)
            mean_batch = (after[0] - before[0]) / max(1.0, after[1] - before[1])
            print(
                f"{level:>5} {row['req_per_s']:>8.0f} {row['router_p50_ms']:>9.2f}ms "
                f"{row['router_p99_ms']:>9.2f}ms {row['total_p50_ms']:>8.1f}ms "
                f"{row['total_p99_ms']:>8.1f}ms {mean_batch:>10.1f} {row['errors']:>6}"
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
