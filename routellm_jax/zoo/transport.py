"""Fetching bytes for the zoo: URLs and paths, bounded reads, resumable verified downloads.

Sources are tried as given: ``https://``, ``http://``, ``file://``, a local path, ``gs://`` (and
anything else :mod:`etils.epath` opens). A download goes to ``dest + ".partial"``; a dropped
connection is resumed (HTTP ``Range``, or a seek for ``gs://``), the size and sha256 are checked,
and only then is the file renamed into place. A download stops as soon as more bytes arrive than
the manifest declares.

``gs://`` goes straight to fsspec's ``gcsfs`` (install the ``gcs`` extra), not through
:mod:`etils.epath`: epath hands ``gs://`` to ``tf.io.gfile`` whenever TensorFlow is installed (the
``tfds`` extra), which would change the error types and ignore ``STORAGE_EMULATOR_HOST``. A missing
object raises :class:`FileNotFoundError` naming the URL, like a local path, and a partial download
resumes with a seek (a ranged read). ``tests/zoo/test_hub_gcs.py`` runs all of this against a local
GCS emulator (``gcp-storage-emulator``). Other schemes (``s3://``, ``az://``, ...) go through epath.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from routellm_jax.integrity import sha256_file
from routellm_jax.zoo.errors import DownloadError, IntegrityError

_CHUNK = 1 << 16


def url_scheme(url: str) -> str:
    """The lower-case scheme of ``url``, ``""`` for a path.

    Example:
        >>> url_scheme("GS://bucket/x.tar"), url_scheme("model_zoo/x.tar"), url_scheme("C:/x")
        ('gs', '', '')
    """
    parsed = urllib.parse.urlparse(url)
    # A Windows drive letter ("C:\\") is not a scheme.
    return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""


def local_path(url: str) -> Path | None:
    """The local file a ``file://`` URL or a plain path names; None for a remote URL.

    Example:
        >>> local_path("zoo/x.tar"), local_path("https://host/x.tar")
        (PosixPath('zoo/x.tar'), None)
    """
    scheme = url_scheme(url)
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not scheme:
        return Path(url)
    return None


def open_remote(url: str) -> IO[bytes]:
    """Open a ``gs://`` (gcsfs) or other :mod:`etils.epath` URL for binary reading.

    A missing object raises :class:`FileNotFoundError` naming ``url``; a missing gcsfs raises
    :class:`ImportError` saying which extra to install.
    """
    if url_scheme(url) == "gs":
        try:
            import fsspec  # local: gs:// needs the optional gcs extra (gcsfs)

            fs = fsspec.filesystem("gs")
        except ImportError as err:
            raise ImportError(
                f"reading {url} needs gcsfs: pip install 'routellm-jax[gcs]' ({err})"
            ) from err
        opener = fs.open
    else:
        from etils import epath  # local: epath loads slowly; local files do not need it

        def opener(u: str, mode: str) -> IO[bytes]:
            return epath.Path(u).open(mode)

    try:
        return opener(url, "rb")
    except FileNotFoundError as err:  # gcsfs names the object by its API path ("b/BUCKET/o/...")
        raise FileNotFoundError(f"{url}: no such object ({err})") from err


# --------------------------------------------------------------------------------------------
# Downloading one file


class _Interrupted(Exception):
    """The transfer stopped early; the partial file is kept for a resume."""


def _too_long(url: str, limit: int, at_least: int) -> IntegrityError:
    return IntegrityError(
        f"{url}: sent at least {at_least} bytes, more than the {limit} bytes the manifest "
        "declares; stopped reading (nothing past the declared size was written)"
    )


def _write_limited(
    src: Callable[[int], bytes],
    dst: IO[bytes],
    have: int,
    limit: int | None,
    url: str,
    progress: Callable | None,
) -> int:
    """Copy ``src`` (a ``read(n)``) to ``dst`` from offset ``have``; return the new offset.

    Never writes past ``limit`` bytes in all: a chunk that would cross it raises
    :class:`IntegrityError` before it is written, so a source streaming far more than it should
    costs one chunk of reading, not the whole stream.
    """
    while chunk := src(_CHUNK):
        if limit is not None and have + len(chunk) > limit:
            raise _too_long(url, limit, have + len(chunk))
        dst.write(chunk)
        have += len(chunk)
        if progress is not None:
            progress(have)
    return have


def _http_fetch(
    url: str, partial: Path, timeout: float, progress: Callable | None, limit: int | None = None
) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "routellm-jax", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # our partial is at least as long as the file: start over
            partial.unlink()
            raise _Interrupted(f"HTTP 416 for a resume at byte {have}; restarting") from err
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise _Interrupted(f"cannot connect: {err}") from err
    with resp:
        if have and resp.status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                partial.unlink()
                raise _Interrupted(f"server answered Range {have}- with {content_range!r}")
            mode = "ab"
        else:  # the server ignored the Range header (200): the body is the whole file
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        if limit is not None and expected is not None and have + expected > limit:
            raise _too_long(url, limit, have + expected)  # announced: nothing read at all
        with open(partial, mode) as f:
            try:
                end = _write_limited(resp.read, f, have, limit, url, progress)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
                raise _Interrupted(f"connection lost after {f.tell()} bytes: {err}") from err
        # http.client returns b"" (no error) when the peer closes early: compare with the length.
        if expected is not None and end - have < expected:
            raise _Interrupted(f"connection closed after {end} of {have + expected} bytes")


def _remote_fetch(
    url: str, partial: Path, progress: Callable | None, limit: int | None = None
) -> None:
    """``gs://`` and other epath URLs: append to ``partial``, resuming with a seek."""
    have = partial.stat().st_size if partial.exists() else 0
    try:
        with open_remote(url) as src:
            total = getattr(src, "size", None)  # gcsfs files know the object's size
            if have and total is not None and have > total:
                have = 0  # longer than the object: not a prefix of it, start over
            if limit is not None and isinstance(total, int) and total > limit:
                raise _too_long(url, limit, total)
            with open(partial, "ab" if have else "wb") as dst:
                if have:
                    src.seek(have)
                have = _write_limited(src.read, dst, have, limit, url, progress)
    except (ConnectionError, TimeoutError) as err:
        raise _Interrupted(f"transfer lost after {have} bytes: {err}") from err


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    size: int | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Download one URL to ``dest``: resumable, verified, atomically renamed into place.

    Bytes go to ``dest + ".partial"``; a dropped connection is resumed (HTTP ``Range``) up to
    ``retries`` times, and a partial file left by an earlier call is resumed too. ``size`` and
    ``sha256``, when given, are checked before the rename; a mismatch deletes the partial file and
    raises :class:`IntegrityError` naming the file and URL. A source that sends (or announces)
    more than ``size`` bytes is cut off at once: nothing past ``size`` is read into the file.
    Local paths and ``file://`` are copied. ``gs://`` needs gcsfs and resumes by seeking; a
    missing object raises :class:`FileNotFoundError` naming the URL and leaves no partial file.

    Example:
        >>> import tempfile
        >>> source = "model_zoo/mf-minilm-0.1.0.tar"  # a local path is copied; URLs are fetched
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     download(source, Path(tmp) / "e.tar", sha256=sha256_file(source)).name
        'e.tar'
        >>> with tempfile.TemporaryDirectory() as tmp:  # a mismatch leaves no file behind
        ...     download(source, Path(tmp) / "f.tar", sha256="0" * 64)
        Traceback (most recent call last):
        ...
        routellm_jax.zoo.errors.IntegrityError: f.tar (from model_zoo/mf-minilm-0.1.0.tar): sha256 mismatch: got ..., expected 0000...
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    name = dest.name
    local = local_path(url)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{local}: no such file (for {name})")
        check_file(local, size, sha256, f"{name} (from {url})")
        tmp = dest.with_name(dest.name + ".copying")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)
        return dest
    scheme = url_scheme(url)
    attempt = 0
    while True:
        if size is not None and partial.exists() and partial.stat().st_size > size:
            partial.unlink()  # longer than the file can be: not a prefix of it
        try:
            if size is not None and partial.exists() and partial.stat().st_size == size:
                pass  # complete from an earlier try; verify below
            elif scheme in ("http", "https"):
                _http_fetch(url, partial, timeout, progress, size)
            else:
                _remote_fetch(url, partial, progress, size)
            break
        except _Interrupted as err:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{name}: download from {url} interrupted {attempt} times; "
                    f"last: {err}; the partial file {partial} is kept for a resume"
                ) from err
        except IntegrityError:
            partial.unlink(missing_ok=True)  # what a lying source sent is not worth resuming
            raise
    try:
        check_file(partial, size, sha256, f"{name} (from {url})")
    except IntegrityError:
        partial.unlink(missing_ok=True)  # a wrong complete file cannot be resumed into a right one
        raise
    os.replace(partial, dest)
    return dest


def check_file(path: Path, size: int | None, sha256: str | None, what: str) -> None:
    """Raise :class:`IntegrityError` naming ``what`` unless ``path`` has ``size`` bytes and the
    ``sha256`` (each checked when given)."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise IntegrityError(f"{what}: size {actual} bytes, expected {size} (truncated or altered)")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256.lower():
            raise IntegrityError(f"{what}: sha256 mismatch: got {got}, expected {sha256.lower()}")
