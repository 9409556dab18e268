"""``routellm-jax train CONFIG --workdir DIR [--resume | --resume-step N] [--config.a.b=value ...]``.

``CONFIG`` is an experiment file (``experiments/mf_minilm_judge.py``), a bare experiment name
(``mf_minilm_judge``) or a module path, each with a ``get_config()``; ``CONFIG:ARG`` calls
``get_config(ARG)``, e.g. one cell of a sweep (``experiments/grid.py:irt_both``). Multi-host: pass
``--coordinator HOST:PORT --num-processes N --process-id I`` on every host (or rely on the
cluster auto-detection of ``jax.distributed.initialize`` with ``--distributed``). ``--workdir`` may
be an object-store URL (``gs://bucket/run``); on several processes a local one must be declared
shared (``--shared-workdir``: a filesystem every host mounts).

``--resume`` (or ``--resume-step N``) trains with the config saved in the checkpoint and prints
the step it resumes from; an experiment file that differs from it is an error listing the keys
(dotted), unless ``--config.KEY=VALUE`` overrides name them (:mod:`routellm_jax.training.resume`).
A config that cannot be what was meant (``config.validate_config``) fails before any data is
read. ``-v`` shows this project's INFO lines (and a plugin's), ``-vv`` the libraries' too.

A checkpoint that fails its checksums, or a NaN/inf loss (``config.stop_on_nonfinite``), ends the
run with exit code 1 and one message naming the step (and file), with this command line rewritten
to resume from the newest good step (``--resume-step N``).

Example:
    routellm-jax train experiments/mf_minilm_judge.py --workdir runs/mf --config.optimizer.lr=3e-5
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from typing import Any

OVERRIDE_PREFIX = "--config."


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--config.a.b=value`` (or ``--config.a.b value``) from the other arguments.

    Example:
        >>> split_overrides(["x.py", "--config.steps=3", "--config.seed", "2", "--resume"])
        (['x.py', '--resume'], ['--config.steps=3', '--config.seed=2'])
    """
    rest: list[str] = []
    overrides: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(OVERRIDE_PREFIX):
            if "=" in arg:
                overrides.append(arg)
            elif i + 1 < len(argv):
                overrides.append(f"{arg}={argv[i + 1]}")
                i += 1
            else:
                raise SystemExit(f"routellm-jax train: {arg} needs a value ({arg}=VALUE)")
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train`` arguments (called by ``routellm_jax.cli``)."""
    parser.add_argument(
        "config",
        help="experiment file, experiments/ name, or module; FILE:ARG calls get_config(ARG) "
        "(e.g. experiments/grid.py:irt_both)",
    )
    parser.add_argument(
        "--workdir",
        required=True,
        help="checkpoints, metrics.jsonl, tb/: a local folder or an object-store URL "
        "(gs://BUCKET/RUN)",
    )
    parser.add_argument(
        "--shared-workdir",
        action="store_true",
        help="on several processes, the local --workdir is a filesystem every host mounts "
        "(NFS, Lustre, GCS FUSE); without it a multi-process run needs a gs:// workdir",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument(
        "--resume-step",
        type=int,
        default=None,
        metavar="N",
        help="continue from checkpoint step N (implies --resume); the later steps are moved to "
        "WORKDIR/checkpoints_superseded/",
    )
    parser.add_argument(
        "--data-dir", default=None, help="routing-data folder (config.data.data_dir)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--distributed", action="store_true", help="jax.distributed.initialize()")
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: this project's log lines (INFO); -vv: the libraries' (absl, orbax, jax) too",
    )
    parser.epilog = "Override any config field with --config.<key>=<value> (repeatable)."
    # argparse rejects unknown options such as --config.optimizer.lr=3e-5; the sub-command parser
    # is handed its own arguments by the top-level one, so pull the overrides out first.
    original = parser.parse_known_args

    def parse_known_args(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        rest, overrides = split_overrides(args or [])
        ns, extra = original(rest, namespace)
        ns.config_overrides = [*getattr(ns, "config_overrides", []), *overrides]
        return ns, extra

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    """Load the config, apply overrides, train. Returns the exit code."""
    import jax

    configure_logging(args.verbose)
    if args.distributed or args.coordinator:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    from routellm_jax.training.checkpoints import CheckpointCorruptError
    from routellm_jax.training.config import load_config, validate_config
    from routellm_jax.training.train import NonFiniteLossError, SharedWorkdirError, train

    overrides = getattr(args, "config_overrides", [])
    config = load_config(args.config, overrides)
    if args.data_dir:
        config.data.data_dir = args.data_dir
    try:
        if args.resume or args.resume_step is not None:
            config = _resume_config(args, config, overrides)
            if config is None:
                return 0
        validate_config(config)
        result = train(
            config,
            args.workdir,
            resume=args.resume,
            resume_step=args.resume_step,
            progress=not args.no_progress,
            shared_workdir=args.shared_workdir,
        )
    except SharedWorkdirError as err:
        print(f"routellm-jax train: error: {err}", file=sys.stderr)
        return 2
    except (CheckpointCorruptError, NonFiniteLossError) as err:
        message = str(err)
        step = getattr(err, "previous_step", None)
        if step is None:
            step = getattr(err, "newest_checkpoint", None)
        if err.resume_command and step is not None:
            message = message.replace(err.resume_command, resume_command_line(args, step))
        print(f"routellm-jax train: error: {message}", file=sys.stderr)
        return 1
    if jax.process_index() == 0:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
        print(f"done: {result.arch} step {result.step} -> {result.workdir} {metrics}")
    return 0


def _resume_config(args: argparse.Namespace, config: Any, overrides: Sequence[str]) -> Any:
    """The config a resumed run trains with (the checkpoint's, changed only by ``overrides``),
    printing the step it resumes from; ``None`` when that step already ends the run."""
    import jax

    from routellm_jax.training.resume import override_keys, resume_config, saved_config

    saved = saved_config(args.workdir, args.resume_step)
    if saved is None:  # no checkpoint yet: train() starts, or reports the missing step
        return config
    step, saved_cfg = saved
    config = resume_config(config, saved_cfg, overrides, where=f"step {step}")
    if jax.process_index() == 0:
        changed = f"; changed by overrides: {', '.join(override_keys(overrides))}"
        print(
            f"resuming from step {step} of {args.workdir} with the checkpoint's config"
            + (changed if overrides else ""),
            flush=True,
        )
    if step >= int(config.steps) > 0:
        # Nothing left to train: say so instead of preparing the data for no step.
        print(
            f"done: the run is already at step {step} of {config.steps}; pass "
            f"--config.steps=N (N > {step}) to train on"
        )
        return None
    return config


# Libraries whose INFO lines (Orbax's per-save chatter through absl, JAX compilation, HTTP
# clients) only -vv shows.
QUIET_LIBRARIES = (
    "absl",
    "orbax",
    "jax",
    "jaxlib",
    "grain",
    "tensorstore",
    "httpx",
    "httpcore",
    "urllib3",
    "filelock",
    "fsspec",
    "matplotlib",
    "PIL",
)


def configure_logging(verbosity: int) -> None:
    """0: warnings only; 1: INFO lines of this project (``routellm_jax.*``) and of the user's
    own modules (a plugin's ``fit``), the libraries in :data:`QUIET_LIBRARIES` kept at WARNING;
    2 or more: everything at INFO.

    Example:
        >>> configure_logging(1); logging.getLogger("orbax").level == logging.WARNING
        True
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.INFO if verbosity >= 1 else logging.WARNING)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)


def resume_command_line(args: argparse.Namespace, step: int) -> str:
    """This run's command line (this process's, on multi-host runs), resuming from ``step``.

    Example:
        >>> ns = argparse.Namespace(config="exp.py", workdir="runs/a b", no_progress=True,
        ...                         config_overrides=["--config.steps=9"])
        >>> resume_command_line(ns, 6)
        "routellm-jax train exp.py --workdir 'runs/a b' --no-progress --config.steps=9 --resume-step 6"
    """
    argv = ["routellm-jax", "train", args.config, "--workdir", args.workdir]
    for flag in ("no_progress", "shared_workdir", "distributed"):
        if getattr(args, flag, False):
            argv.append("--" + flag.replace("_", "-"))
    argv += ["-v"] * int(getattr(args, "verbose", 0) or 0)
    for flag in ("data_dir", "coordinator", "num_processes", "process_id"):
        value = getattr(args, flag, None)
        if value is not None:
            argv += ["--" + flag.replace("_", "-"), str(value)]
    argv += list(getattr(args, "config_overrides", []))
    return shlex.join([*argv, "--resume-step", str(step)])
