"""Where data and caches live.

``ROUTELLM_JAX_DATA`` names the routing-data folder (default: the first of ``./shared/data``,
``../shared/data`` that exists, looked up from the current directory and from the repository).
``ROUTELLM_JAX_CACHE`` names the cache (default ``~/.cache/routellm_jax``): fetched encoders, pulled
zoo entries. ``ROUTELLM_JAX_REQUIRE_DATA=1`` (set by CI) turns a missing data folder into an error
instead of a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def repo_root() -> Path:
    """The source checkout root (where ``model_zoo/`` and ``experiments/`` live)."""
    return _REPO_ROOT
