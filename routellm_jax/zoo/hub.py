"""The zoo index and downloads: manifest, fetch with resume, sha256 verification, cache.

A zoo is one JSON manifest (``model_zoo/manifest.json`` in the repository) listing entries::

    {"format": 1,
     "entries": [{"name": "mf-minilm", "version": "0.1.0", "description": "...",
                  "architecture": "mf",
                  "files": [{"path": "mf-minilm-0.1.0.tar", "size": 812345, "sha256": "...",
                             "urls": ["mf-minilm-0.1.0.tar", "https://host/mf-minilm-0.1.0.tar"]}]}]}

Each file has URLs, tried in order: ``https://``, ``http://``, ``file://``, ``gs://`` (and anything
else :mod:`etils.epath` opens), or a path relative to the manifest (how bundled entries are
referenced). A file whose path ends in ``.tar`` is unpacked into the entry folder, any other file
is placed there as is. An entry too large to bundle and published nowhere lists its files with no
URLs and a ``build`` text saying how to build it locally; :func:`pull` raises
:class:`NotPublished` with that text instead of trying a connection. Downloads go to
``<cache>/zoo/downloads`` as ``*.partial`` files that a later try resumes (HTTP ``Range``); the
size and sha256 are checked before anything is unpacked or loaded, and only then is the file
renamed into place. Unpacked entries live in ``<cache>/zoo/entries/NAME/VERSION`` and are
themselves created under a temporary name and renamed, so a reader never sees half an entry.

What a manifest controls is kept inside the cache: names and versions must match
:data:`NAME_PATTERN` and :data:`VERSION_PATTERN` (checked when the manifest is read), and every
folder the zoo writes, renames or deletes is resolved and checked to lie inside
``<cache>/zoo/entries`` first. An unpacked entry's card must name the entry that was asked for and
list its checkpoint files as unpacked; the hash of every unpacked file (``card.json`` included) is
recorded in the entry's source record and checked again by :func:`verify_cached` and on every
verified load. A download stops as soon as more bytes arrive than the manifest declares. Nothing
here (or anywhere in the zoo) unpickles anything: entries are JSON + Orbax (tensorstore) files.

``gs://`` goes straight to fsspec's ``gcsfs`` (install the ``gcs`` extra), not through
:mod:`etils.epath`: epath hands ``gs://`` to ``tf.io.gfile`` whenever TensorFlow is installed (the
``tfds`` extra), which would change the error types and ignore ``STORAGE_EMULATOR_HOST``. A missing
object raises :class:`FileNotFoundError` naming the URL, like a local path, and a partial download
resumes with a seek (a ranged read). ``tests/zoo/test_hub_gcs.py`` runs all of this against a local
GCS emulator (``gcp-storage-emulator``). Other schemes (``s3://``, ``az://``, ...) go through epath.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from routellm_jax import paths
from routellm_jax.zoo.card import CARD_FILE, CardError, ModelCard

MANIFEST_FORMAT = 1
BUNDLED_LIMIT_BYTES = 5 * 1024 * 1024  # bundled entries stay under 5 MB; bigger ones go by URL
SOURCE_RECORD = ".zoo_source.json"  # written into an unpacked entry: where it came from, hashes
_CHUNK = 1 << 16
MANIFEST_LIMIT_BYTES = 16 * 1024 * 1024  # a manifest is a small JSON index; refuse to read more
# Entry names and versions become folder names in the cache: one path component each, no "..".
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION_PATTERN = re.compile(
    r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}"  # 1 to 4 numbers: 1, 0.1.0
    r"([-+][0-9A-Za-z]{1,20}([.-][0-9A-Za-z]{1,20}){0,3})?"  # a tag: -rc1, +build.5
)


class ZooError(Exception):
    """Base class of zoo errors."""


class EntryNotFound(ZooError, KeyError):
    """A name (or name@version) that the manifest does not list."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IntegrityError(ZooError, ValueError):
    """A file whose size or sha256 differs from what the manifest or card says."""


class DownloadError(ZooError, OSError):
    """Every URL of a file failed; the message lists each URL and why."""


class ManifestError(ZooError, ValueError):
    """A malformed manifest; the message names the file and the key."""


class NotPublished(ZooError):
    """An entry listed without any URL: its ``build`` text says how to build it locally."""


class UnsafePath(ZooError, ValueError):
    """A path the zoo would write, rename or delete resolves outside the zoo cache."""


def check_name(name: str, where: str) -> str:
    """Return ``name`` if it is a valid entry name, else raise :class:`ManifestError` at ``where``.

    Example:
        >>> check_name("mf-minilm", "manifest.json: entries[0].name")
        'mf-minilm'
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ManifestError(
            f"{where}: {name!r} is not a valid entry name (lower-case letters, digits, '.', '_', "
            "'-'; starting with a letter or digit; at most 64 characters; no '..')"
        )
    return name


def check_version(version: str, where: str) -> str:
    """Return ``version`` if it is a valid entry version, else raise :class:`ManifestError`.

    Example:
        >>> check_version("0.1.0", "manifest.json: entries[0].version")
        '0.1.0'
    """
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise ManifestError(
            f"{where}: {version!r} is not a valid entry version (1 to 4 dot-separated numbers, "
            "optionally followed by -TAG or +TAG of letters, digits, '.' and '-', like 0.1.0 or "
            "1.2-rc1)"
        )
    return version


def _check_relpath(path: str, where: str) -> str:
    """``path`` if it is a relative POSIX path of plain components (no '', '.', '..', '\\')."""
    parts = path.split("/")
    if not path or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise ManifestError(f"{where}: must be a relative path inside the entry: {path!r}")
    return path


# --------------------------------------------------------------------------------------------
# Manifest


@dataclasses.dataclass
class ManifestFile:
    """One downloadable file of an entry."""

    path: str  # name inside the entry (``*.tar`` is unpacked)
    size: int
    sha256: str
    urls: list[str]

    def __post_init__(self) -> None:
        # The path names a file inside the entry folder and, by its base name, one in downloads/.
        _check_relpath(self.path, "file path")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ManifestError(f"file {self.path}: not a 64-hex-digit sha256: {self.sha256!r}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ManifestEntry:
    """One zoo entry: a name, a version and its files."""

    name: str
    version: str
    description: str
    files: list[ManifestFile]
    architecture: str = ""
    # The card's APGRs ({"benchmark": ..., "apgr": ...}), copied here so an entry published by
    # URL can be compared before its archive is downloaded; the card stays the authority.
    evals: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # How to build the entry locally, for one that is not published anywhere (no URLs).
    build: str = ""

    def __post_init__(self) -> None:
        # Names and versions become cache folders: checked however the entry was made.
        check_name(self.name, "entry name")
        check_version(self.version, f"entry {self.name} version")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def apgr(self, benchmark: str) -> tuple[float, bool] | None:
        """``(APGR, on_subset)`` quoted for ``benchmark``, None if not evaluated. For ``"mmlu"``
        an entry scored only on the hashed 10% subset (``mmlu-10pct``, which slow routers use)
        gives that number with ``on_subset`` True.

        Example:
            >>> ManifestEntry("x", "1", "", [], evals=[{"benchmark": "mmlu-10pct", "apgr": 0.56}]
            ...               ).apgr("mmlu")
            (0.56, True)
        """
        quoted = {e["benchmark"]: float(e["apgr"]) for e in self.evals}
        if benchmark in quoted:
            return quoted[benchmark], False
        if benchmark == "mmlu" and "mmlu-10pct" in quoted:
            return quoted["mmlu-10pct"], True
        return None

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "architecture": self.architecture,
            "files": [f.to_json() for f in self.files],
        }
        if self.evals:
            out["evals"] = [dict(e) for e in self.evals]
        if self.build:
            out["build"] = self.build
        return out


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ManifestError(f"{where}.{key}: expected {kind}, got {type(value).__name__}")
    return value


def _parse_entry(obj: Any, where: str) -> ManifestEntry:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected an object")
    name = check_name(_require(obj, "name", str, where), f"{where}.name")
    version = check_version(_require(obj, "version", str, where), f"{where}.version")
    build = obj.get("build", "")
    if not isinstance(build, str):
        raise ManifestError(f"{where}.build: expected a string, got {type(build).__name__}")
    files = []
    for i, f in enumerate(_require(obj, "files", list, where)):
        fw = f"{where}.files[{i}]"
        if not isinstance(f, dict):
            raise ManifestError(f"{fw}: expected an object")
        sha = _require(f, "sha256", str, fw).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ManifestError(f"{fw}.sha256: not a 64-hex-digit sha256: {sha!r}")
        urls = _require(f, "urls", list, fw)
        if not all(isinstance(u, str) and u for u in urls):
            raise ManifestError(f"{fw}.urls: expected a list of non-empty strings")
        if not urls and not build.strip():
            raise ManifestError(
                f"{fw}.urls: empty; an entry published nowhere needs a 'build' text saying how "
                "to build it locally"
            )
        path = _check_relpath(_require(f, "path", str, fw), f"{fw}.path")
        if path.split("/")[0] == SOURCE_RECORD:
            raise ManifestError(f"{fw}.path: {SOURCE_RECORD} is the cache's own record")
        size = _require(f, "size", int, fw)
        if size < 0:
            raise ManifestError(f"{fw}.size: negative")
        files.append(ManifestFile(path=path, size=size, sha256=sha, urls=list(urls)))
    if not files:
        raise ManifestError(f"{where}.files: an entry needs at least one file")
    evals = obj.get("evals", [])
    if not isinstance(evals, list):
        raise ManifestError(f"{where}.evals: expected a list")
    for i, e in enumerate(evals):
        ew = f"{where}.evals[{i}]"
        if not isinstance(e, dict):
            raise ManifestError(f"{ew}: expected an object")
        _require(e, "benchmark", str, ew)
        _require(e, "apgr", (int, float), ew)
    return ManifestEntry(
        name=name,
        version=version,
        description=str(obj.get("description", "")),
        architecture=str(obj.get("architecture", "")),
        files=files,
        evals=[dict(e) for e in evals],
        build=build,
    )


@dataclasses.dataclass
class Manifest:
    """The zoo index. ``location`` (a path or URL) is what relative URLs are resolved against.

    Example:
        >>> m = Manifest.load("model_zoo/manifest.json")  # doctest: +SKIP
        >>> m.get("mf-minilm").version  # doctest: +SKIP
        '0.1.0'
    """

    entries: list[ManifestEntry]
    location: str = ""

    @classmethod
    def load(cls, location: str | os.PathLike[str] | None = None) -> Manifest:
        """Read a manifest from a path or URL (default: :func:`default_manifest`)."""
        location = str(location if location is not None else default_manifest())
        try:
            text = _read_text(location)
        except OSError as err:
            hint = ""
            if location == str(paths.repo_root() / "model_zoo" / "manifest.json"):
                # The bundled zoo lives in the source checkout, not in an installed wheel.
                hint = (
                    " (the bundled zoo ships with a source checkout: install with "
                    "`pip install -e .` from a clone, or set ROUTELLM_JAX_ZOO_MANIFEST to a "
                    "manifest path or URL)"
                )
            raise ManifestError(f"cannot read zoo manifest {location}: {err}{hint}") from err
        return cls.from_json_text(text, location)

    @classmethod
    def from_json_text(cls, text: str, location: str = "") -> Manifest:
        where = location or "manifest"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{where}: not valid JSON (line {err.lineno}): {err.msg}") from err
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        fmt = obj.get("format")
        if fmt != MANIFEST_FORMAT:
            raise ManifestError(f"{where}.format: expected {MANIFEST_FORMAT}, got {fmt!r}")
        raw = _require(obj, "entries", list, where)
        entries = [_parse_entry(e, f"{where}: entries[{i}]") for i, e in enumerate(raw)]
        seen: set[str] = set()
        for e in entries:
            if e.key in seen:
                raise ManifestError(f"{where}: entry {e.key} listed twice")
            seen.add(e.key)
        return cls(entries=entries, location=location)

    def to_json(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "entries": [e.to_json() for e in self.entries]}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file + rename), entries sorted by name then version."""
        self.entries.sort(key=lambda e: (e.name, e.version))
        _atomic_write_text(Path(path), json.dumps(self.to_json(), indent=2) + "\n")

    def names(self) -> list[str]:
        return sorted({e.name for e in self.entries})

    def get(self, name: str, version: str | None = None) -> ManifestEntry:
        """The entry ``name`` (``name@version`` also accepted); the newest version by default."""
        if version is None and "@" in name:
            name, version = name.split("@", 1)
        found = [e for e in self.entries if e.name == name]
        if not found:
            raise EntryNotFound(
                f"zoo entry {name!r} is not in the manifest {self.location or '(in memory)'}; "
                f"known: {self.names()}"
            )
        if version is not None:
            for e in found:
                if e.version == version:
                    return e
            raise EntryNotFound(
                f"zoo entry {name!r} has no version {version!r} in {self.location}; "
                f"versions: {sorted(e.version for e in found)}"
            )
        return max(found, key=lambda e: _version_key(e.version))

    def upsert(self, entry: ManifestEntry) -> None:
        """Add ``entry``, replacing one with the same name and version."""
        self.entries = [e for e in self.entries if e.key != entry.key] + [entry]

    def resolve_url(self, url: str) -> str:
        """An absolute URL or path for ``url`` (relative ones are relative to the manifest)."""
        if _scheme(url) or os.path.isabs(url) or not self.location:
            return url
        scheme = _scheme(self.location)
        if scheme in ("http", "https", "file"):
            return urllib.parse.urljoin(self.location, url)
        if scheme:  # gs://, s3://...: urljoin does not know these schemes (it would return url)
            parsed = urllib.parse.urlparse(self.location)
            path = posixpath.normpath(posixpath.join(posixpath.dirname(parsed.path), url))
            return urllib.parse.urlunparse(parsed._replace(path=path, query="", fragment=""))
        return str(Path(self.location).resolve().parent / url)


def _version_key(version: str) -> tuple:
    parts = []
    for p in version.replace("-", ".").split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


def default_manifest() -> str:
    """``$ROUTELLM_JAX_ZOO_MANIFEST`` if set, else the repository's ``model_zoo/manifest.json``."""
    return os.environ.get(
        "ROUTELLM_JAX_ZOO_MANIFEST", str(paths.repo_root() / "model_zoo" / "manifest.json")
    )


def zoo_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/zoo`` (created): where pulled entries and partial downloads live."""
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    path = root / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# Hashing and small file helpers


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks.

    Example:
        >>> sha256_file("model_zoo/manifest.json")  # doctest: +SKIP
        '3f1c...'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: str | os.PathLike[str], *, skip: Sequence[str] = ()) -> dict[str, dict]:
    """``{relative posix path: {"size", "sha256"}}`` for every regular file under ``root``.

    Example:
        >>> hash_tree("entry/params")  # doctest: +SKIP
        {'manifest.ocdbt': {'size': 123, 'sha256': '...'}, ...}
    """
    root = Path(root)
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in skip:
            out[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return out


def verify_tree(root: str | os.PathLike[str], expected: dict[str, dict]) -> None:
    """Raise :class:`IntegrityError` naming the first missing or altered file under ``root``.

    Example:
        >>> verify_tree("entry/params", card.checkpoint["files"])  # doctest: +SKIP
    """
    root = Path(root)
    for rel, want in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            raise IntegrityError(f"{path}: missing (listed with sha256 {want['sha256']})")
        size = path.stat().st_size
        if size != want["size"]:
            raise IntegrityError(f"{path}: size {size} bytes, expected {want['size']}")
        got = sha256_file(path)
        if got != want["sha256"]:
            raise IntegrityError(f"{path}: sha256 {got}, expected {want['sha256']}")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a manifest is meant to be read by anyone
    os.replace(tmp, path)


def _scheme(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    # A Windows drive letter ("C:\\") is not a scheme.
    return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""


def _local_path(url: str) -> Path | None:
    scheme = _scheme(url)
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not scheme:
        return Path(url)
    return None


def _read_text(location: str) -> str:
    local = _local_path(location)
    if local is not None:
        with open(local, "rb") as f:
            data = f.read(MANIFEST_LIMIT_BYTES + 1)
    elif _scheme(location) in ("http", "https"):
        with urllib.request.urlopen(location, timeout=30) as resp:
            data = resp.read(MANIFEST_LIMIT_BYTES + 1)
    else:
        with _open_remote(location) as f:
            data = f.read(MANIFEST_LIMIT_BYTES + 1)
    if len(data) > MANIFEST_LIMIT_BYTES:  # an index, not a payload: refuse rather than fill memory
        raise ManifestError(f"{location}: more than {MANIFEST_LIMIT_BYTES} bytes, not a manifest")
    return data.decode("utf-8")


def _open_remote(url: str) -> IO[bytes]:
    """Open a ``gs://`` (gcsfs) or other :mod:`etils.epath` URL for binary reading.

    A missing object raises :class:`FileNotFoundError` naming ``url``; a missing gcsfs raises
    :class:`ImportError` saying which extra to install.
    """
    if _scheme(url) == "gs":
        try:
            import fsspec

            fs = fsspec.filesystem("gs")
        except ImportError as err:
            raise ImportError(
                f"reading {url} needs gcsfs: pip install 'routellm-jax[gcs]' ({err})"
            ) from err
        opener = fs.open
    else:
        from etils import epath

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
        with _open_remote(url) as src:
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
        >>> download("https://host/mf-minilm-0.1.0.tar", "/tmp/e.tar", sha256="ab12...")  # doctest: +SKIP
        PosixPath('/tmp/e.tar')
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    name = dest.name
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{local}: no such file (for {name})")
        _check(local, size, sha256, f"{name} (from {url})")
        tmp = dest.with_name(dest.name + ".copying")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)
        return dest
    scheme = _scheme(url)
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
        _check(partial, size, sha256, f"{name} (from {url})")
    except IntegrityError:
        partial.unlink(missing_ok=True)  # a wrong complete file cannot be resumed into a right one
        raise
    os.replace(partial, dest)
    return dest


def _check(path: Path, size: int | None, sha256: str | None, what: str) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise IntegrityError(f"{what}: size {actual} bytes, expected {size} (truncated or altered)")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256.lower():
            raise IntegrityError(f"{what}: sha256 mismatch: got {got}, expected {sha256.lower()}")


def fetch_file(
    file: ManifestFile,
    dest_dir: str | os.PathLike[str],
    *,
    base: Manifest | None = None,
    retries: int = 3,
    timeout: float = 30.0,
) -> Path:
    """Get one manifest file, trying its URLs in order; returns the verified local path.

    A local source (bundled entry) is verified in place and not copied.

    Example:
        >>> fetch_file(entry.files[0], zoo_cache() / "downloads", base=manifest)  # doctest: +SKIP
    """
    dest = Path(dest_dir) / f"{file.sha256[:16]}-{Path(file.path).name}"
    if dest.is_file():
        try:
            _check(dest, file.size, file.sha256, str(dest))
            return dest
        except IntegrityError:
            dest.unlink()
    failures = []
    for url in file.urls:
        resolved = base.resolve_url(url) if base is not None else url
        try:
            local = _local_path(resolved)
            if local is not None:
                if not local.is_file():
                    raise FileNotFoundError(f"{local}: no such file")
                _check(local, file.size, file.sha256, f"{file.path} (at {local})")
                return local
            return download(
                resolved,
                dest,
                size=file.size,
                sha256=file.sha256,
                retries=retries,
                timeout=timeout,
            )
        except Exception as err:  # any failure of one URL (incl. a missing gcsfs): try the next
            failures.append(f"  {resolved}: {type(err).__name__}: {err}")
    raise DownloadError(f"{file.path}: every URL failed:\n" + "\n".join(failures))


# --------------------------------------------------------------------------------------------
# Entries: unpack, pull, verify


def _safe_members(archive: tarfile.TarFile, what: str) -> list[tarfile.TarInfo]:
    members = []
    for m in archive.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith("/") or ".." in parts:
            raise IntegrityError(f"{what}: unsafe path in archive: {m.name!r}")
        if not (m.isfile() or m.isdir()):
            raise IntegrityError(f"{what}: archive member {m.name!r} is not a file or folder")
        if parts and parts[0] == SOURCE_RECORD:
            raise IntegrityError(f"{what}: archive member {m.name!r} is the cache's own record")
        members.append(m)
    return members


def entries_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/zoo/entries``: the only folder the zoo unpacks into, renames in or deletes from."""
    return zoo_cache(cache_dir) / "entries"


def _ensure_inside(path: Path, root: Path) -> Path:
    """``path`` resolved (links followed); :class:`UnsafePath` unless strictly inside ``root``."""
    resolved, base = path.resolve(), root.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise UnsafePath(
            f"{path} resolves to {resolved}, outside the zoo cache {base}: refusing to write, "
            "rename or delete it"
        )
    return resolved


def unpack_files(
    files: Sequence[tuple[ManifestFile, Path]],
    target: Path,
    record: dict,
    *,
    root: Path,
    check: Callable[[Path, dict[str, dict]], None] | None = None,
) -> Path:
    """Place verified files into ``target`` (``*.tar`` unpacked), atomically.

    Everything is written into a temporary sibling folder which is renamed to ``target`` last;
    ``target`` (and so that sibling) must resolve inside ``root``, checked before anything is
    created and again before an older ``target`` is deleted. The size and sha256 of every
    unpacked file go into the source record (``record["unpacked"]``), and ``check(tmp, hashes)``,
    when given, may refuse the unpacked files before they are renamed into place (nothing is then
    left behind).
    """
    _ensure_inside(target, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    parent = _ensure_inside(target.parent, root) if target.parent != root else root.resolve()
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.unpacking."))
    try:
        for file, local in files:
            if file.path.endswith(".tar"):
                with tarfile.open(local, "r:") as archive:
                    members = _safe_members(archive, file.path)
                    archive.extractall(tmp, members=members, filter="data")
            else:
                (tmp / file.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, tmp / file.path)
        unpacked = hash_tree(tmp)
        if check is not None:
            check(tmp, unpacked)
        record = {**record, "unpacked": unpacked}
        (tmp / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        final = parent / target.name
        _ensure_inside(final, root)  # again: the folders may have changed while unpacking
        if final.is_symlink():
            final.unlink()  # a link (even one pointing inside the cache) is replaced, not followed
        elif final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def entry_cache_dir(entry: ManifestEntry, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``entry`` is unpacked: ``<cache>/zoo/entries/NAME/VERSION``, checked to lie inside.

    The name and version were checked when the entry was made; this checks the path again
    (resolving symlinks), so no manifest and no link in the cache can point the zoo elsewhere.
    """
    check_name(entry.name, "entry name")
    check_version(entry.version, f"entry {entry.name} version")
    root = entries_root(cache_dir)
    target = root / entry.name / entry.version
    _ensure_inside(target, root)
    return target


def _file_list(entry: ManifestEntry) -> list[dict[str, Any]]:
    return [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in entry.files]


def _record_for(entry: ManifestEntry, source: str) -> dict[str, Any]:
    return {
        "name": entry.name,
        "version": entry.version,
        "manifest": source,
        "files": _file_list(entry),
    }


def _read_record(entry_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((entry_dir / SOURCE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _cached_matches(target: Path, entry: ManifestEntry) -> bool:
    """Whether ``target`` holds ``entry`` unpacked from the files the manifest lists now (by the
    source record: cheap, no hashing; :func:`verify_unpacked` checks the files themselves)."""
    record = _read_record(target)
    return (
        record is not None
        and record.get("name") == entry.name
        and record.get("version") == entry.version
        and record.get("files") == _file_list(entry)
        and isinstance(record.get("unpacked"), dict)  # older records lack the unpacked hashes
    )


def _card_check(entry: ManifestEntry | None, what: str) -> Callable[[Path, dict[str, dict]], None]:
    """A ``check`` for :func:`unpack_files`: the unpacked folder has a valid ``card.json`` that
    names ``entry`` (when given) and lists its checkpoint files exactly as they were unpacked."""

    def check(folder: Path, unpacked: dict[str, dict]) -> None:
        try:
            obj = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IntegrityError(f"{what}: no {CARD_FILE} in the entry") from None
        except ValueError as err:
            raise CardError(f"{what}: {CARD_FILE}: not valid JSON: {err}") from None
        card = ModelCard.from_json(obj, f"{what}: {CARD_FILE}")
        if entry is not None and (card.name, card.version) != (entry.name, entry.version):
            raise IntegrityError(
                f"{what}: its {CARD_FILE} is {card.name}@{card.version}, but the manifest lists "
                f"this archive as {entry.key}; refusing to cache it under that name"
            )
        check_card_files(card, unpacked, f"{what}: {CARD_FILE}")

    return check


def check_card_files(card: ModelCard, unpacked: dict[str, dict], where: str) -> None:
    """Raise :class:`IntegrityError` unless every checkpoint file the card lists is in
    ``unpacked`` (``{relative path: {"size", "sha256"}}`` of the entry folder) with its size and
    sha256: the card's own check, without hashing the files a second time."""
    prefix = posixpath.normpath(card.checkpoint.path)
    for rel, want in sorted(card.checkpoint.files.items()):
        key = posixpath.normpath(posixpath.join(prefix, rel))
        got = unpacked.get(key)
        if got is None:
            raise IntegrityError(f"{where}: checkpoint file {key} is missing from the entry")
        if got["size"] != want["size"] or got["sha256"] != want["sha256"]:
            raise IntegrityError(
                f"{where}: checkpoint file {key} has size {got['size']} and sha256 "
                f"{got['sha256']}, the card lists {want['size']} bytes, sha256 {want['sha256']}"
            )


def pull(
    name: str,
    *,
    version: str | None = None,
    manifest: Manifest | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    retries: int = 3,
    timeout: float = 30.0,
) -> Path:
    """Download, verify and unpack a zoo entry; return its folder (``card.json`` + ``params/``).

    An entry already unpacked from the same files (same sha256s) is returned without any network
    access. Every file is verified before anything is unpacked, and the unpacked card must name
    the entry asked for and match its checkpoint files before the entry is renamed into the
    cache. An entry listed without URLs raises :class:`NotPublished` saying how to build it.

    Example:
        >>> pull("mf-minilm")  # doctest: +SKIP
        PosixPath('/root/.cache/routellm_jax/zoo/entries/mf-minilm/0.1.0')
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.load(manifest)
    entry = manifest.get(name, version)
    target = entry_cache_dir(entry, cache_dir)
    if not force and _cached_matches(target, entry):
        return target
    if any(not f.urls for f in entry.files):
        size = sum(f.size for f in entry.files)
        raise NotPublished(
            f"zoo entry {entry.key} ({size / 1e6:.0f} MB) is not published anywhere to pull it "
            f"from; build it locally: {' '.join(entry.build.split())}"
        )
    downloads = zoo_cache(cache_dir) / "downloads"
    try:
        fetched = [
            (f, fetch_file(f, downloads, base=manifest, retries=retries, timeout=timeout))
            for f in entry.files
        ]
    except DownloadError as err:
        if entry.build:  # the published copy is gone: say how to make one
            raise DownloadError(f"{err}\nor build it locally: {entry.build}") from err
        raise
    return unpack_files(
        fetched,
        target,
        _record_for(entry, manifest.location),
        root=entries_root(cache_dir),
        check=_card_check(entry, f"{entry.files[0].path} (zoo entry {entry.key})"),
    )


def _split_pin(url: str) -> tuple[str, str | None]:
    """``(url without the pin, pinned sha256 or None)`` of ``url#sha256=HEX``."""
    head, sep, fragment = url.rpartition("#")
    if not sep or not fragment.startswith("sha256=") or "/" in fragment:
        return url, None
    pin = fragment.removeprefix("sha256=").lower()
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise IntegrityError(f"{url}: the #sha256= pin is not 64 hex digits: {pin!r}")
    return head, pin


def pull_url(
    url: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    retries: int = 3,
    timeout: float = 30.0,
) -> Path:
    """Download and unpack an entry archive given by URL or local ``.tar`` path.

    ``url#sha256=HEX`` (a local ``path.tar#sha256=HEX`` too) pins the archive's hash, checked
    before anything is unpacked; without a pin the archive is only checked against its own card
    (its checkpoint files' hashes), which catches corruption but not a substituted archive.

    Example:
        >>> pull_url("https://host/mf-minilm-0.1.0.tar#sha256=ab12...")  # doctest: +SKIP
    """
    url, pinned = _split_pin(url)
    downloads = zoo_cache(cache_dir) / "downloads"
    url_key = hashlib.sha256(url.encode()).hexdigest()[:16]
    local = _local_path(url)
    base = local.name if local is not None else posixpath.basename(urllib.parse.urlparse(url).path)
    if base in ("", ".", "..") or "\\" in base:
        base = "entry.tar"
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{local}: no such zoo entry archive")
        _check(local, None, pinned, str(local))
        archive = local
    else:
        archive = download(
            url,
            downloads / f"url-{url_key}-{base}",
            sha256=pinned,
            retries=retries,
            timeout=timeout,
        )
    digest = sha256_file(archive)
    file = ManifestFile(path=base, size=archive.stat().st_size, sha256=digest, urls=[url])
    root = entries_root(cache_dir)
    target = root / "_by_hash" / digest[:32]
    record = {"url": url, "files": [{"path": base, "size": file.size, "sha256": digest}]}
    cached = _read_record(target)
    if cached is not None and cached.get("files") == record["files"] and "unpacked" in cached:
        return target
    return unpack_files([(file, archive)], target, record, root=root, check=_card_check(None, url))


def verify_unpacked(entry_dir: str | os.PathLike[str]) -> dict[str, dict] | None:
    """Check every file of a cached entry against the hashes recorded when it was unpacked.

    Returns those hashes (``{relative path: {"size", "sha256"}}``), or None for a folder with no
    source record (a local entry folder: only its card vouches for it). Raises
    :class:`IntegrityError` naming the first altered, missing or added file.
    """
    entry_dir = Path(entry_dir)
    if not (entry_dir / SOURCE_RECORD).exists():
        return None
    record = _read_record(entry_dir)
    unpacked = record.get("unpacked") if record is not None else None
    if not isinstance(unpacked, dict):
        raise IntegrityError(
            f"{entry_dir / SOURCE_RECORD}: no hashes of the unpacked files (unreadable, or "
            "written by an older version); pull the entry again (routellm-jax zoo pull --force)"
        )
    again = "the cached entry was altered after it was unpacked; pull it again (zoo pull --force)"
    present = set()  # every file and link: an added one is as much a change as an altered one
    for p in entry_dir.rglob("*"):
        rel = p.relative_to(entry_dir).as_posix()
        if rel != SOURCE_RECORD and (p.is_symlink() or not p.is_dir()):
            present.add(rel)
    extra = sorted(present - set(unpacked))
    if extra:
        raise IntegrityError(f"{entry_dir / extra[0]}: not one of the unpacked files; {again}")
    for rel, want in sorted(unpacked.items()):
        path = entry_dir / rel
        if (
            ".." in rel.split("/")
            or rel.startswith("/")
            or not isinstance(want, dict)
            or not isinstance(want.get("size"), int)
            or not isinstance(want.get("sha256"), str)
        ):
            raise IntegrityError(f"{entry_dir / SOURCE_RECORD}: malformed entry {rel!r}; {again}")
        if rel not in present or path.is_symlink():
            raise IntegrityError(
                f"{path}: missing (unpacked with sha256 {want['sha256']}); {again}"
            )
        size = path.stat().st_size
        if size != want["size"]:
            raise IntegrityError(f"{path}: size {size} bytes, unpacked {want['size']}; {again}")
        got = sha256_file(path)
        if got != want["sha256"]:
            raise IntegrityError(f"{path}: sha256 {got}, unpacked {want['sha256']}; {again}")
    return unpacked


def verify_cached(
    name: str,
    *,
    version: str | None = None,
    manifest: Manifest | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Check that a pulled entry still matches the manifest (source record), the hashes of its
    unpacked files, and its card (which must name the entry and list its checkpoint files).

    Raises :class:`IntegrityError` naming the altered file, or :class:`EntryNotFound` if the entry
    was never pulled.

    Example:
        >>> verify_cached("mf-minilm")  # doctest: +SKIP
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.load(manifest)
    entry = manifest.get(name, version)
    target = entry_cache_dir(entry, cache_dir)
    if not target.is_dir():
        raise EntryNotFound(f"{entry.key} is not in the cache {target.parent}; pull it first")
    record = _read_record(target)
    if record is None or record.get("files") != _file_list(entry):
        raise IntegrityError(
            f"{target / SOURCE_RECORD}: the cached {entry.key} was not unpacked from the files "
            "the manifest lists now; pull it again (zoo pull --force)"
        )
    verify_entry_dir(target, entry=entry)
    return target


def verify_entry_dir(
    entry_dir: str | os.PathLike[str], *, entry: ManifestEntry | None = None
) -> ModelCard:
    """Check an entry folder and return its card: the recorded hashes of every unpacked file
    (a cached entry), ``card.json``, and every file the card lists (size + sha256). With
    ``entry`` the card must also name that entry.

    Example:
        >>> verify_entry_dir("model_zoo_build/mf-minilm")  # doctest: +SKIP
    """
    entry_dir = Path(entry_dir)
    unpacked = verify_unpacked(entry_dir)
    card = ModelCard.load(entry_dir / CARD_FILE)
    if entry is not None and (card.name, card.version) != (entry.name, entry.version):
        raise IntegrityError(
            f"{entry_dir / CARD_FILE}: the card is {card.name}@{card.version}, not {entry.key}"
        )
    if unpacked is not None:
        check_card_files(card, unpacked, str(entry_dir / CARD_FILE))
    else:
        verify_tree(entry_dir / card.checkpoint.path, card.checkpoint.files)
    return card
