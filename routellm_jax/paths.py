"""Where data and caches live.

``ROUTELLM_JAX_DATA`` names the routing-data folder (default: the first of ``./shared/data``,
``../shared/data`` that exists, looked up from the current directory and from the repository).
``ROUTELLM_JAX_CACHE`` names the cache (default ``~/.cache/routellm_jax``): fetched encoders, pulled
zoo entries, compiled XLA executables (:func:`compile_cache_dir`). ``ROUTELLM_JAX_COMPILE_CACHE``
names the compiled-executable folder (default ``<cache>/xla``); ``0``, ``off`` or ``false`` turn
that cache off. ``ROUTELLM_JAX_REQUIRE_DATA=1`` (set by CI) turns a missing data folder into an
error instead of a skip.

:func:`location` is the one way a run folder, a records folder or an exported entry is named:
a local path or an object-store URL (``gs://bucket/run``), both as an :mod:`etils.epath` path, so
the code that reads and writes them is the same for both.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from etils import epath

_REPO_ROOT = Path(__file__).resolve().parent.parent


class DataDirNotFound(FileNotFoundError):
    """Raised when the routing-data folder cannot be found."""


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the routing-data folder.

    An explicit folder must exist; a missing one is an error that names it.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     data_dir(tmp) == Path(tmp)
        True
        >>> data_dir("no/such/folder")
        Traceback (most recent call last):
        ...
        routellm_jax.paths.DataDirNotFound: data directory no/such/folder does not exist
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_dir():
            raise DataDirNotFound(f"data directory {path} does not exist")
        return path
    env = os.environ.get("ROUTELLM_JAX_DATA")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise DataDirNotFound(f"ROUTELLM_JAX_DATA={env} does not exist")
        return path
    candidates = [
        Path.cwd() / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
        _REPO_ROOT.parent / "shared" / "data",
    ]
    for path in candidates:
        if path.is_dir():
            return path
    raise DataDirNotFound(
        "routing data not found: set ROUTELLM_JAX_DATA or pass --data-dir "
        f"(looked in {', '.join(str(c) for c in candidates)})"
    )


def cache_dir() -> Path:
    """Return (and create) the cache folder for encoders and zoo entries."""
    path = Path(os.environ.get("ROUTELLM_JAX_CACHE", Path.home() / ".cache" / "routellm_jax"))
    path.mkdir(parents=True, exist_ok=True)
    return path


COMPILE_CACHE_ENV = "ROUTELLM_JAX_COMPILE_CACHE"
_OFF = {"", "0", "off", "false", "no"}


def compile_cache_dir() -> Path | None:
    """The folder of JAX's persistent compilation cache, or ``None`` when it is off.

    ``ROUTELLM_JAX_COMPILE_CACHE`` unset: ``<cache_dir()>/xla``; ``0``/``off``/``false``: off;
    anything else: that folder. A folder that cannot be created or written (a read-only home, a
    read-only image) is ``None`` too, so no run ever fails over its cache. JAX runs the
    executables it finds there, so the folder must be one only its user writes to: by default
    the user's own cache folder.
    """
    setting = os.environ.get(COMPILE_CACHE_ENV)
    if setting is not None and setting.strip().lower() in _OFF:
        return None
    try:
        path = Path(setting) if setting else cache_dir() / "xla"
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK | os.X_OK) else None


def repo_root() -> Path:
    """The source checkout root (where ``model_zoo/`` and ``experiments/`` live)."""
    return _REPO_ROOT


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL (``gs://``, ``s3://``, ``file://``...) rather than a path.

    Example:
        >>> is_url("gs://bucket/run"), is_url("runs/mf"), is_url("C:/runs")
        (True, False, False)
    """
    scheme = urllib.parse.urlparse(os.fspath(location)).scheme
    return len(scheme) > 1  # a Windows drive letter ("C:") is not a scheme


def location(where: str | os.PathLike[str]) -> epath.Path:
    """``where`` (a local path or an object-store URL) as an :mod:`etils.epath` path: URLs as
    given, local paths made absolute (a run's resume command must not depend on the current
    directory).

    Example:
        >>> str(location("gs://bucket/run") / "checkpoints")
        'gs://bucket/run/checkpoints'
        >>> location("/tmp/run").name
        'run'
    """
    if isinstance(where, epath.Path) and is_url(where):
        return where
    text = os.fspath(where)
    return epath.Path(text if is_url(text) else os.path.abspath(text))


def write_whole(path: epath.Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees it half written.

    In an object store an upload becomes visible whole when it completes, so the object is written
    in place; a local file is written beside and renamed over (a rename is atomic there; an
    object store's rename is a copy, and some emulators do not implement it).

    Example:
        >>> import tempfile
        >>> target = location(tempfile.mkdtemp()) / "card.json"
        >>> write_whole(target, "{}")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('{}', ['card.json'])
    """
    if is_url(path):
        _write(path, data)
        return
    tmp = path.parent / (path.name + ".tmp")
    _write(tmp, data)
    os.replace(tmp, path)


def _write(path: epath.Path, data: str | bytes) -> None:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
