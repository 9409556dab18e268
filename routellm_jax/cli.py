"""The ``routellm-jax`` command. Each sub-command lives in its own module, imported only when used.

Each entry names the module and its two functions: ``add(parser)`` declares the arguments and
``run(args) -> int`` does the work and returns the exit code.

Errors: a user's mistake (a bad flag value, an unreadable or invalid input file, an unknown router
or model name, an output that cannot be written) is printed as one line,
``routellm-jax COMMAND: error: ...``, with exit code 2, the code argparse uses for a bad command
line; a known failure that is not the user's (a download, a file that fails its checksum) is one
line with exit code 1; ``-v`` shows their traceback as well. Anything else is a bug and keeps its
traceback. This module also holds what the sub-commands share for that: :class:`UsageError`, the
argparse ``type=`` checks and :func:`output_file`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import secrets
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

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

# routellm_jax.models.plugins.ENV_VAR, repeated so a command without plugins imports no models.
_PLUGINS_ENV = "ROUTELLM_JAX_PLUGINS"
USAGE_EXIT = 2  # argparse's exit code for a bad command line; ours for every user error


class UsageError(ValueError):
    """A user's mistake that :func:`main` prints as one line with exit code 2: a bad flag value,
    an unreadable or invalid input (the message names the file and line), an output that cannot
    be written."""


# Exception types (module, class name, exit code) that are not bugs, checked in order. They are
# looked up in sys.modules rather than imported: a class whose module was never imported cannot
# have been raised, and importing them all would slow down every command (and `--help`).
_KNOWN_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("routellm_jax.api", "RouterError", USAGE_EXIT),  # unknown model, bad prompt, no calibration
    ("routellm_jax.zoo.errors", "EntryNotFound", USAGE_EXIT),  # unknown router name
    ("routellm_jax.zoo.errors", "ManifestError", USAGE_EXIT),
    ("routellm_jax.zoo.errors", "UnsafePath", USAGE_EXIT),  # a hostile or mistaken manifest
    (
        "routellm_jax.zoo.errors",
        "NotPublished",
        USAGE_EXIT,
    ),  # nothing to pull: it says how to build
    ("routellm_jax.zoo.errors", "ZooError", 1),  # download failed, file altered: not the user's
    ("routellm_jax.zoo.card", "CardError", USAGE_EXIT),
    ("routellm_jax.publish.build", "RecipeError", USAGE_EXIT),  # zoo build: unknown entry
    ("routellm_jax.models.plugins", "PluginError", USAGE_EXIT),  # a plugin that fails to import
    ("routellm_jax.training.config", "ConfigError", USAGE_EXIT),  # a bad experiment config
    ("routellm_jax.models.registry", "UnknownArchitectureError", USAGE_EXIT),
    ("routellm_jax.data.model_names", "UnknownModelError", USAGE_EXIT),
    ("routellm_jax.data.sources._common", "SourceFormatError", USAGE_EXIT),
    ("routellm_jax.data.sources._common", "SourceUnavailableError", 1),
)
# Paths come from the command line: a missing or forbidden one is the user's to fix.
_PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def error_exit_code(err: BaseException) -> int | None:
    """The exit code for an error that is the user's (printed as one line), ``None`` for a bug.

    Example:
        >>> error_exit_code(UsageError("--input: no such file")), error_exit_code(KeyError("x"))
        (2, None)
    """
    if isinstance(err, UsageError):
        return USAGE_EXIT
    for module_name, class_name, code in _KNOWN_ERRORS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(err, cls):
            return code
    if isinstance(err, _PATH_ERRORS):
        return USAGE_EXIT
    return None


def error_text(err: BaseException) -> str:
    """The message of an error without Python's decorations (KeyError quotes, ``[Errno 2]``).

    Example:
        >>> error_text(FileNotFoundError(2, "No such file or directory", "in.jsonl"))
        'in.jsonl: No such file or directory'
    """
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err)


# ---- argparse type= checks (a bad value is a usage error naming the flag, before any work) ----


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def unit_interval(text: str) -> float:
    """A finite number in [0, 1] (a win-rate threshold).

    Example:
        >>> unit_interval("0.4")
        0.4
    """
    value = _number(text)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def open_unit_interval(text: str) -> float:
    """A number strictly between 0 and 1 (a share of calls).

    Example:
        >>> open_unit_interval("0.3")
        0.3
    """
    value = _number(text)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1.

    Example:
        >>> positive_int("8")
        8
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0.

    Example:
        >>> nonnegative_float("95")
        95.0
    """
    value = _number(text)
    if not (math.isfinite(value) and value >= 0.0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


# ---- outputs ----------------------------------------------------------------------------------


def writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create the folder ``path`` (and its parents) and check that files can be written in it;
    :class:`UsageError` naming it otherwise. Call it before the work whose results go there.

    Example:
        >>> import tempfile; writable_dir(tempfile.mkdtemp()).is_dir()
        True
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{path}: cannot create this folder ({err.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: folder is not writable")
    return path


@contextlib.contextmanager
def output_file(path: str | os.PathLike[str] | None) -> Iterator[TextIO]:
    """A text file written in full or not at all: ``None`` yields stdout; otherwise a temporary
    file next to ``path`` is opened at once (so an unwritable output fails before the work) and
    renamed onto ``path`` when the block ends without an error. On an error it is removed and an
    existing ``path`` is left as it was. A link is followed; a device or pipe (``/dev/stdout``)
    is written directly.

    Example:
        >>> import tempfile; dest = Path(tempfile.mkdtemp()) / "sub" / "out.txt"
        >>> with output_file(dest) as f:
        ...     _ = f.write("ok")
        >>> dest.read_text()
        'ok'
    """
    if path is None:
        yield sys.stdout
        return
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()  # replace the file it points to, not the link
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, expected an output file name")
    if path.exists() and not path.is_file():
        # A device or pipe (/dev/stdout, /dev/null, a FIFO) cannot be replaced: write to it.
        try:
            f = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as err:
            raise UsageError(f"{path}: cannot write ({err.strerror})") from None
        with f:
            yield f
        return
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{path}: output file is not writable")
    try:
        folder = writable_dir(path.parent)
    except UsageError as err:
        raise UsageError(f"{path}: cannot write: {err}") from None
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open with 0o666 (less the umask): a new file gets the usual permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror})") from None
    committed = False
    try:
        with open(fd, "w", encoding="utf-8") as f:
            yield f
        if path.exists():  # a replaced file keeps its permissions
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
        committed = True
    finally:
        if not committed:
            tmp.unlink(missing_ok=True)


# ---- dispatch ---------------------------------------------------------------------------------


def _command_name(argv: Sequence[str]) -> str | None:
    """The sub-command in ``argv``: its first word that is neither a flag nor a flag's value.

    Example:
        >>> _command_name(["-v", "--plugin", "my_routers.knn", "serve", "--port", "1"])
        'serve'
    """
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--plugin":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routellm-jax",
        description="Train, evaluate, share and serve LLM routers in JAX/Flax.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        dest="show_traceback",
        action="store_true",
        help="also print the traceback of a user error (bad input, unknown name, ...), which is "
        "otherwise one line with exit code 2",
    )
    parser.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first, registering the router architectures it defines "
        "(repeatable; also ROUTELLM_JAX_PLUGINS=mod1,mod2). Installed plugin packages are found "
        "through their 'routellm_jax.architectures' entry points without this flag",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen sub-command's module is imported (keeps `--help` and startup fast).
    chosen = _command_name(argv)
    for name, (module_name, add_fn, run_fn) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name])
        if name == chosen:
            module = importlib.import_module(module_name)
            getattr(module, add_fn)(p)
            p.set_defaults(_run=getattr(module, run_fn))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``routellm-jax`` console script: the sub-command's exit code; a user
    error is one line on stderr and exit code 2 (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv else USAGE_EXIT
    try:
        if args.plugins or os.environ.get(_PLUGINS_ENV):
            # Imported only when asked for: the plugin loader imports the architecture table.
            from routellm_jax.models import plugins

            plugins.load_modules(args.plugins)
        return int(args._run(args) or 0)
    except Exception as err:
        code = error_exit_code(err)
        if code is None:
            raise  # a bug: keep the traceback
        if args.show_traceback:
            traceback.print_exc()
        print(f"{parser.prog} {args.command}: error: {error_text(err)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
