"""``routellm-jax serve``: run the OpenAI-compatible routing server under uvicorn.

Example::

    export OPENAI_API_KEY=...
    routellm-jax serve --router mf-minilm \\
        --strong-model gpt-4o --strong-base-url https://api.openai.com/v1 \\
        --strong-api-key-env OPENAI_API_KEY \\
        --weak-model llama-3.1-8b --weak-base-url http://127.0.0.1:8000/v1 \\
        --api-keys-file client_keys.txt --port 6060

Among N models only, an upstream table replaces the four strong/weak flags::

    routellm-jax serve --router irt-mix-minilm --upstreams upstreams.json \
        --spend-reference reference_prompts.txt --calibration maths=maths_prompts.txt

(requests then name ``router-irt-mix-minilm:spend=3.0`` and the like, see
:mod:`routellm_jax.serve.n_model`).

Clients then send ``Authorization: Bearer <one of the keys>``. Without ``--api-keys-file`` or
``--api-keys-env`` anyone who reaches the port spends the upstream keys, which is only reasonable
on 127.0.0.1 (the server warns loudly when it listens elsewhere without keys).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from routellm_jax.serve.routing import ROUTE_ON_CHOICES

if TYPE_CHECKING:  # the parser stays light: every command's --help imports this module
    from routellm_jax.serve.tenants import PromptSet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``serve`` arguments.

    Example:
        >>> p = argparse.ArgumentParser(); add_arguments(p)
        >>> p.parse_args(["--router", "mf-minilm", "--strong-model", "a", "--weak-model", "b",
        ...     "--strong-base-url", "http://x/v1", "--weak-base-url", "http://y/v1"]).port
        6060
    """
    g = parser.add_argument_group("routers")
    g.add_argument(
        "--router",
        dest="routers",
        action="append",
        required=True,
        metavar="NAME_OR_PATH",
        help="zoo name or path of a router (repeat for several); requests pick one by name",
    )
    g.add_argument(
        "--router-strong",
        default=None,
        help="strong model's name in the router's own model table (default: the router's pair)",
    )
    g.add_argument("--router-weak", default=None, help="weak model's name in that table")
    g.add_argument(
        "--route-on",
        choices=ROUTE_ON_CHOICES,
        default="last",
        help="score the last user message (default) or the whole conversation",
    )
    g.add_argument(
        "--batch-window-ms",
        type=float,
        default=5.0,
        help="how long a router batch waits for more concurrent requests (default 5)",
    )
    g.add_argument("--max-batch", type=int, default=64, help="most prompts per forward pass")
    g.add_argument(
        "--no-share-control",
        dest="share_control",
        action="store_false",
        help="router-<name>@<share> names use the calibrated threshold as it is and "
        "router-<name>:spend=<target> names the reference's trade-off; by default online "
        "controllers keep the realised strong share (or spend per 1,000 requests) at the target "
        "as traffic drifts",
    )
    g.add_argument(
        "--share-window",
        type=int,
        default=100,
        metavar="N",
        help="decisions the share and spend controllers look back on (default 100)",
    )
    g.add_argument(
        "--spend-reference",
        default=None,
        metavar="FILE",
        help="prompts (one a line, or .jsonl with a 'prompt' field) the spend controllers of "
        "router-<name>:spend=<target> names start from (default: the card's calibration "
        "reference set, where this machine has the data)",
    )
    g.add_argument(
        "--calibration",
        dest="calibrations",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a named calibration set (prompts as for --spend-reference) that requests pick with "
        "the 'x-routellm-calibration: NAME' header (repeat for several tenants)",
    )
    g.add_argument(
        "--router-precision",
        choices=("float32", "bfloat16", "auto"),
        default=None,
        help="encoder precision of the routers named here (MiniLM, bert, causal_llm): float32 "
        "(default, exact) or "
        "bfloat16 (bf16 matmuls, float32 accumulation: faster on CPUs with AVX512-BF16/AMX, "
        "see docs/benchmarks.md; win rates within ~2e-3), or auto (bfloat16 where the device "
        "runs it natively, else float32)",
    )

    u = parser.add_argument_group(
        "upstreams (any OpenAI-compatible endpoint)",
        "The four strong/weak flags serve the two-model names; --upstreams the N-model names. "
        "Give the four, --upstreams, or both.",
    )
    u.add_argument("--strong-model", default=None, help="model name sent to the strong upstream")
    u.add_argument("--weak-model", default=None, help="model name sent to the weak upstream")
    u.add_argument("--strong-base-url", default=None, help="e.g. https://api.openai.com/v1")
    u.add_argument("--weak-base-url", default=None, help="e.g. http://127.0.0.1:8000/v1")
    u.add_argument(
        "--strong-api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the strong upstream's API key (never a key itself)",
    )
    u.add_argument("--weak-api-key-env", default=None, metavar="VAR", help="same, weak upstream")
    u.add_argument(
        "--upstreams",
        default=None,
        metavar="FILE",
        help="JSON upstream table of N models (name, base_url, api_key_env, model, price) for "
        "router-<name>:budget=<cost>, :floor=<quality> and :tradeoff=<lambda> requests "
        "(routellm_jax.serve.n_model)",
    )
    u.add_argument(
        "--upstream-timeout", type=float, default=60.0, metavar="S", help="seconds (default 60)"
    )
    u.add_argument("--retries", type=int, default=1, help="retries per upstream (default 1)")
    u.add_argument(
        "--retry-backoff",
        type=float,
        default=0.1,
        metavar="S",
        help="seconds before the first retry, doubling after (default 0.1)",
    )
    u.add_argument(
        "--fallback",
        choices=("other", "error"),
        default="other",
        help="when the routed upstream keeps failing: ask the other model, or answer 502",
    )

    c = parser.add_argument_group(
        "clients (authentication and limits)",
        "With keys, every path but /health needs 'Authorization: Bearer <key>' (401 otherwise).",
    )
    c.add_argument(
        "--api-keys-file",
        default=None,
        metavar="PATH",
        help="file of client keys, one per line (blank lines and lines starting with # are "
        "skipped); combines with --api-keys-env",
    )
    c.add_argument(
        "--api-keys-env",
        default=None,
        metavar="VAR",
        help="environment variable holding client keys, comma separated",
    )
    c.add_argument(
        "--max-body-bytes",
        type=int,
        default=4 * 1024 * 1024,
        metavar="N",
        help="larger request bodies get 413 before they are read whole (default 4 MiB)",
    )
    c.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        metavar="N",
        help="a request asking more max_tokens/max_completion_tokens gets 400; one asking "
        "neither is sent with max_tokens=N (default: no cap)",
    )
    c.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        metavar="N",
        help="prompts that may wait for each router's forward pass; past it, 429 with "
        "Retry-After (default 1024)",
    )

    s = parser.add_argument_group("server")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; elsewhere, configure client keys)",
    )
    s.add_argument("--port", type=int, default=6060)
    s.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error", "critical")
    )


def _key_from_env(var: str | None, flag: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        # Name the variable, never a value.
        raise SystemExit(f"routellm-jax serve: {flag} {var}: environment variable is not set")
    return value


def client_keys(file: str | None, env: str | None) -> tuple[str, ...]:
    """The client keys from ``--api-keys-file`` and ``--api-keys-env`` (empty: no authentication).

    A flag that is given but yields no key is an error, so a typo cannot turn authentication
    off. Errors name the file and line or the variable, never a key.

    Example:
        >>> client_keys(None, None)  # no flag: no authentication
        ()
    """
    keys: list[str] = []
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            raise SystemExit(f"routellm-jax serve: --api-keys-file {file}: {reason}") from None
        for lineno, line in enumerate(text.splitlines(), 1):
            key = line.strip()
            if not key or key.startswith("#"):
                continue
            if any(ch.isspace() for ch in key):
                raise SystemExit(
                    f"routellm-jax serve: --api-keys-file {file}, line {lineno}: "
                    "a key must not contain spaces"
                )
            keys.append(key)
        if not keys:
            raise SystemExit(f"routellm-jax serve: --api-keys-file {file}: holds no key")
    if env is not None:
        value = os.environ.get(env, "")
        found = [key.strip() for key in value.split(",") if key.strip()]
        if not found:
            raise SystemExit(
                f"routellm-jax serve: --api-keys-env {env}: environment variable is not set "
                "or holds no key"
            )
        for i, key in enumerate(found):
            if any(ch.isspace() for ch in key):
                raise SystemExit(
                    f"routellm-jax serve: --api-keys-env {env}: key {i + 1} contains a space"
                )
        keys += found
    return tuple(dict.fromkeys(keys))


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    Example:
        >>> [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "10.0.0.5")]
        [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


_PAIR_FLAGS = ("strong_model", "weak_model", "strong_base_url", "weak_base_url")


def pair_flags_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the strong/weak flags given (None: all four, or none beside an
    upstream table).

    Example:
        >>> ns = argparse.Namespace(strong_model="a", weak_model=None, strong_base_url=None,
        ...                         weak_base_url=None, upstreams=None)
        >>> pair_flags_problem(ns)
        'the strong/weak upstreams need --weak-model, --strong-base-url, --weak-base-url too'
    """
    given = [f for f in _PAIR_FLAGS if getattr(args, f) is not None]
    missing = ["--" + f.replace("_", "-") for f in _PAIR_FLAGS if f not in given]
    if given and missing:
        return f"the strong/weak upstreams need {', '.join(missing)} too"
    if not given and args.upstreams is None:
        return (
            "give the strong and weak upstreams (--strong-model, --strong-base-url, "
            "--weak-model, --weak-base-url), an upstream table (--upstreams FILE), or both"
        )
    return None


def card_reference(routers: dict) -> PromptSet | None:
    """The spend reference from the routers' cards: the first calibration reference set named
    there that this machine has the data for; None (and the reason logged) when none is."""
    from routellm_jax.data.judge_split import REFERENCE_SETS, reference_prompts
    from routellm_jax.serve.tenants import PromptSet

    reason = "no router card names a calibration reference set"
    for router in routers.values():
        calibration = getattr(getattr(router, "card", None), "calibration", None)
        name = calibration.reference.split(":")[0] if calibration is not None else ""
        if name not in REFERENCE_SETS:
            continue
        try:
            prompts, what = reference_prompts(name)
        except (OSError, ValueError) as err:
            reason = f"the cards' reference set {name} is not readable here ({err})"
            continue
        return PromptSet("card-reference", tuple(prompts), what)
    logging.getLogger("routellm_jax.serve").warning(
        f"router-<name>:spend=<target> names are off: {reason}; pass --spend-reference FILE"
    )
    return None


def run(args: argparse.Namespace) -> int:
    """Load the routers, build the app, run uvicorn until interrupted."""
    import uvicorn

    from routellm_jax.serve.client import load_routers
    from routellm_jax.serve.server import ServeSettings, Upstream, create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":
        # httpx logs every upstream call (full URL) at INFO; the server logs failures itself.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    problem = pair_flags_problem(args)
    if problem:
        print(f"routellm-jax serve: {problem}", file=sys.stderr)
        return 2
    strong_key = _key_from_env(args.strong_api_key_env, "--strong-api-key-env")
    weak_key = _key_from_env(args.weak_api_key_env, "--weak-api-key-env")
    keys = client_keys(args.api_keys_file, args.api_keys_env)
    table = None
    if args.upstreams is not None:
        from routellm_jax.serve.n_model import UpstreamTableError, read_upstream_table

        try:
            table = read_upstream_table(args.upstreams)
        except UpstreamTableError as err:
            print(f"routellm-jax serve: --upstreams {err}", file=sys.stderr)
            return 2
    from routellm_jax.serve.tenants import (
        CalibrationConfigError,
        PromptSet,
        parse_calibration_flag,
        read_prompt_file,
    )

    try:
        calibrations = tuple(parse_calibration_flag(c) for c in args.calibrations)
        spend_reference = None
        if args.spend_reference is not None:
            prompts = read_prompt_file(args.spend_reference)
            spend_reference = PromptSet(
                "spend-reference", prompts, f"{args.spend_reference} ({len(prompts)} prompts)"
            )
    except CalibrationConfigError as err:
        print(f"routellm-jax serve: {err}", file=sys.stderr)
        return 2
    pair = args.strong_model is not None
    try:
        from routellm_jax.serve.budget import ControllerSettings

        settings = ServeSettings(
            strong=(
                Upstream("strong", args.strong_model, args.strong_base_url, strong_key)
                if pair
                else None
            ),
            weak=Upstream("weak", args.weak_model, args.weak_base_url, weak_key) if pair else None,
            route_on=args.route_on,
            batch_window_ms=args.batch_window_ms,
            max_batch=args.max_batch,
            upstream_timeout_s=args.upstream_timeout,
            retries=args.retries,
            retry_backoff_s=args.retry_backoff,
            fallback=args.fallback,
            router_strong=args.router_strong,
            router_weak=args.router_weak,
            client_api_keys=keys,
            max_body_bytes=args.max_body_bytes,
            max_tokens=args.max_tokens,
            max_queue=args.max_queue,
            upstream_table=table,
            share_control=args.share_control,
            share_controller=ControllerSettings(window=args.share_window),
            spend_reference=spend_reference,
            calibrations=calibrations,
        )
    except ValueError as err:
        print(f"routellm-jax serve: {err}", file=sys.stderr)
        return 2
    try:
        routers = load_routers(args.routers, precision=args.router_precision)
    except ValueError as err:  # e.g. --router-precision bfloat16 for a router with no encoder
        print(f"routellm-jax serve: {err}", file=sys.stderr)
        return 2
    if table is not None and spend_reference is None:
        settings = dataclasses.replace(settings, spend_reference=card_reference(routers))
    if not keys and not is_loopback(args.host):
        logging.getLogger("routellm_jax.serve").warning(
            f"\n{'!' * 78}\n"
            f"listening on {args.host} WITHOUT client authentication: anyone who can reach this "
            "port\nspends the upstream API keys. Pass --api-keys-file or --api-keys-env, or "
            f"listen on 127.0.0.1.\n{'!' * 78}"
        )
    auth = f"{len(keys)} client key(s)" if keys else "no client authentication"
    print(
        f"routers: {', '.join(sorted(routers))}; listening on http://{args.host}:{args.port} "
        f"({auth})"
    )
    try:
        app = create_app(routers, settings)
    except ValueError as err:  # e.g. an upstream table naming a model a router does not know
        print(f"routellm-jax serve: {err}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
