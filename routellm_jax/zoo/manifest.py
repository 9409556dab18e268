"""The zoo index: one JSON manifest listing entries, their files, sizes, hashes and URLs.

A zoo is one manifest (``model_zoo/manifest.json`` in the repository)::

    {"format": 1,
     "entries": [{"name": "mf-minilm", "version": "0.1.0", "description": "...",
                  "architecture": "mf",
                  "files": [{"path": "mf-minilm-0.1.0.tar", "size": 812345, "sha256": "...",
                             "urls": ["mf-minilm-0.1.0.tar", "https://host/mf-minilm-0.1.0.tar"]}]}]}

Each file has URLs, tried in order (:mod:`routellm_jax.zoo.transport`), or a path relative to the
manifest (how bundled entries are referenced). A file whose path ends in ``.tar`` is unpacked into
the entry folder, any other file is placed there as is. An entry too large to bundle and published
nowhere lists its files with no URLs and a ``build`` text saying how to build it locally.

What a manifest controls is kept inside the cache: names and versions must match
:data:`NAME_PATTERN` and :data:`VERSION_PATTERN` (checked when the manifest is read, naming the
manifest and the field), and file paths must be plain relative paths inside the entry.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from routellm_jax import paths
from routellm_jax.paths import is_url, location
from routellm_jax.zoo.errors import EntryNotFound, ManifestError
from routellm_jax.zoo.transport import local_path, open_remote, url_scheme

MANIFEST_FORMAT = 1
BUNDLED_LIMIT_BYTES = 5 * 1024 * 1024  # bundled entries stay under 5 MB; bigger ones go by URL
SOURCE_RECORD = ".zoo_source.json"  # written into an unpacked entry: where it came from, hashes
MANIFEST_LIMIT_BYTES = 16 * 1024 * 1024  # a manifest is a small JSON index; refuse to read more
# Entry names and versions become folder names in the cache: one path component each, no "..".
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION_PATTERN = re.compile(
    r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}"  # 1 to 4 numbers: 1, 0.1.0
    r"([-+][0-9A-Za-z]{1,20}([.-][0-9A-Za-z]{1,20}){0,3})?"  # a tag: -rc1, +build.5
)


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
        >>> m = Manifest.load("model_zoo/manifest.json")
        >>> m.get("mf-minilm").version, m.get("mf-minilm").files[0].path
        ('0.1.0', 'mf-minilm-0.1.0.tar')
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
        text = json.dumps(self.to_json(), indent=2) + "\n"
        if is_url(path):  # an object appears whole when its upload completes
            location(path).write_text(text)
        else:
            _atomic_write_text(Path(path), text)

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
        if url_scheme(url) or os.path.isabs(url) or not self.location:
            return url
        scheme = url_scheme(self.location)
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


def _read_text(location: str) -> str:
    local = local_path(location)
    if local is not None:
        with open(local, "rb") as f:
            data = f.read(MANIFEST_LIMIT_BYTES + 1)
    elif url_scheme(location) in ("http", "https"):
        with urllib.request.urlopen(location, timeout=30) as resp:
            data = resp.read(MANIFEST_LIMIT_BYTES + 1)
    else:
        with open_remote(location) as f:
            data = f.read(MANIFEST_LIMIT_BYTES + 1)
    if len(data) > MANIFEST_LIMIT_BYTES:  # an index, not a payload: refuse rather than fill memory
        raise ManifestError(f"{location}: more than {MANIFEST_LIMIT_BYTES} bytes, not a manifest")
    return data.decode("utf-8")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a manifest is meant to be read by anyone
    os.replace(tmp, path)
