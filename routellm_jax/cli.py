"""The ``routellm-jax`` command. Each sub-command lives in its own module, imported only when used.

Each entry names the module and its two functions: ``add(parser)`` declares the arguments and
``run(args) -> int`` does the work and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, function adding its arguments, function running it)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "eval": ("routellm_jax.eval.cli", "add_arguments", "run"),
    "train": ("routellm_jax.training.cli", "add_arguments", "run"),
    "route": ("routellm_jax.api_cli", "add_route_arguments", "run_route"),
    "calibrate": ("routellm_jax.api_cli", "add_calibrate_arguments", "run_calibrate"),
    "zoo": ("routellm_jax.zoo.cli", "add_arguments", "run"),
    "fetch-encoder": ("routellm_jax.models.encoders.fetch", "add_arguments", "run"),
    "serve": ("routellm_jax.serve.cli", "add_arguments", "run"),
}

_HELP = {
    "eval": "evaluate a router on a benchmark (APGR, CPT, AUC; cost-quality plot)",
    "train": "train (or build) a router from an experiment config",
    "route": "route prompts with a router: win rate and chosen model",
    "calibrate": "compute a router's thresholds for strong-call shares on your own prompts",
    "zoo": "list, pull, verify or export zoo entries",
    "fetch-encoder": "download and verify a pretrained encoder into the cache",
    "serve": "run an OpenAI-compatible routing server",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routellm-jax",
        description="Train, evaluate, share and serve LLM routers in JAX/Flax.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen sub-command's module is imported (keeps `--help` and startup fast).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, add_fn, run_fn) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name])
        if name == chosen:
            module = importlib.import_module(module_name)
            getattr(module, add_fn)(p)
            p.set_defaults(_run=getattr(module, run_fn))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``routellm-jax`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv else 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
