"""The zoo cache: pull an entry (fetch, verify, unpack atomically), and verify it again later.

Downloads go to ``<cache>/zoo/downloads`` as ``*.partial`` files that a later try resumes; the
size and sha256 are checked before anything is unpacked or loaded. Unpacked entries live in
``<cache>/zoo/entries/NAME/VERSION`` and are created under a temporary name and renamed, so a
reader never sees half an entry. :func:`pull` raises :class:`~routellm_jax.zoo.errors.
NotPublished` with the entry's ``build`` text for an entry listed without URLs, instead of trying a
connection.

Every folder the zoo writes, renames or deletes is resolved and checked to lie inside
``<cache>/zoo/entries`` first. An unpacked entry's card must name the entry that was asked for and
list its checkpoint files as unpacked; the hash of every unpacked file (``card.json`` included) is
recorded in the entry's source record and checked again by :func:`verify_cached` and on every
verified load. Nothing here (or anywhere in the zoo) unpickles anything: entries are JSON + Orbax
(tensorstore) files.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from routellm_jax import paths
from routellm_jax.integrity import sha256_file
from routellm_jax.zoo.card import CARD_FILE, CardError, ModelCard
from routellm_jax.zoo.errors import (
    DownloadError,
    EntryNotFound,
    IntegrityError,
    NotPublished,
    UnsafePath,
)
from routellm_jax.zoo.manifest import (
    SOURCE_RECORD,
    Manifest,
    ManifestEntry,
    ManifestFile,
    check_name,
    check_version,
)
from routellm_jax.zoo.transport import check_file, download, local_path


def zoo_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/zoo`` (created): where pulled entries and partial downloads live."""
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    path = root / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_tree(root: str | os.PathLike[str], *, skip: Sequence[str] = ()) -> dict[str, dict]:
    """``{relative posix path: {"size", "sha256"}}`` for every regular file under ``root``.

    Example:
        >>> with tempfile.TemporaryDirectory() as root:
        ...     _ = (Path(root) / "a.txt").write_text("abc")
        ...     hash_tree(root)
        {'a.txt': {'size': 3, 'sha256': 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'}}
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
        >>> with tempfile.TemporaryDirectory() as root:
        ...     _ = (Path(root) / "a.txt").write_text("abc")
        ...     expected = hash_tree(root)
        ...     verify_tree(root, expected)  # unchanged: no error
        ...     _ = (Path(root) / "a.txt").write_text("abd")
        ...     verify_tree(root, expected)
        Traceback (most recent call last):
        ...
        routellm_jax.zoo.errors.IntegrityError: .../a.txt: sha256 mismatch: got ..., expected ba7816bf...
    """
    root = Path(root)
    for rel, want in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            raise IntegrityError(f"{path}: missing (listed with sha256 {want['sha256']})")
        check_file(path, want["size"], want["sha256"], str(path))


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
        >>> manifest = Manifest.load("model_zoo/manifest.json")
        >>> with tempfile.TemporaryDirectory() as downloads:  # a bundled file is not copied there
        ...     fetch_file(manifest.get("mf-minilm").files[0], downloads, base=manifest).name
        'mf-minilm-0.1.0.tar'
    """
    dest = Path(dest_dir) / f"{file.sha256[:16]}-{Path(file.path).name}"
    if dest.is_file():
        try:
            check_file(dest, file.size, file.sha256, str(dest))
            return dest
        except IntegrityError:
            dest.unlink()
    failures = []
    for url in file.urls:
        resolved = base.resolve_url(url) if base is not None else url
        try:
            local = local_path(resolved)
            if local is not None:
                if not local.is_file():
                    raise FileNotFoundError(f"{local}: no such file")
                check_file(local, file.size, file.sha256, f"{file.path} (at {local})")
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
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_in(staging: Path, final: Path) -> None:
    """Put a finished ``staging`` folder at ``final``, replacing what is there. A link at
    ``final`` (even one pointing inside the cache) is removed, never followed into its target."""
    if final.is_symlink():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


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


def is_cached(entry: ManifestEntry, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``entry`` is in the cache, unpacked from the files the manifest lists now (by its
    source record, without hashing: :func:`verify_cached` checks the files themselves).
    """
    return _cached_matches(entry_cache_dir(entry, cache_dir), entry)


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
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as cache:  # a throwaway cache; default: cache_dir()
        ...     entry_dir = pull("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache)
        ...     entry_dir.relative_to(cache).as_posix(), sorted(p.name for p in entry_dir.iterdir())
        ('zoo/entries/mf-minilm/0.1.0', ['.zoo_source.json', 'card.json', 'params'])
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
        >>> import tempfile
        >>> archive = "model_zoo/mf-minilm-0.1.0.tar"  # an https:// or gs:// URL works the same
        >>> pin = sha256_file(archive)
        >>> with tempfile.TemporaryDirectory() as cache:
        ...     ModelCard.load(pull_url(f"{archive}#sha256={pin}", cache_dir=cache) / "card.json").name
        'mf-minilm'
        >>> with tempfile.TemporaryDirectory() as cache:  # a wrong pin: nothing is unpacked
        ...     pull_url(f"{archive}#sha256={'0' * 64}", cache_dir=cache)
        Traceback (most recent call last):
        ...
        routellm_jax.zoo.errors.IntegrityError: model_zoo/mf-minilm-0.1.0.tar: sha256 mismatch: got ..., expected 0000...
    """
    url, pinned = _split_pin(url)
    downloads = zoo_cache(cache_dir) / "downloads"
    url_key = hashlib.sha256(url.encode()).hexdigest()[:16]
    local = local_path(url)
    base = local.name if local is not None else posixpath.basename(urllib.parse.urlparse(url).path)
    if base in ("", ".", "..") or "\\" in base:
        base = "entry.tar"
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"{local}: no such zoo entry archive")
        check_file(local, None, pinned, str(local))
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
        try:
            check_file(path, want["size"], want["sha256"], str(path))
        except IntegrityError as err:
            raise IntegrityError(f"{err}; {again}") from None
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
        >>> import tempfile
        >>> cache = tempfile.TemporaryDirectory()  # a throwaway cache; the default is cache_dir()
        >>> entry_dir = pull("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache.name)
        >>> verify_cached("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache.name) == entry_dir
        True
        >>> _ = (entry_dir / "card.json").write_text("{}")
        >>> verify_cached("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache.name)
        Traceback (most recent call last):
        ...
        routellm_jax.zoo.errors.IntegrityError: ...card.json...
        >>> cache.cleanup()
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
        >>> import tempfile
        >>> cache = tempfile.TemporaryDirectory()  # a throwaway cache; the default is cache_dir()
        >>> entry_dir = pull("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache.name)
        >>> verify_entry_dir(entry_dir).name
        'mf-minilm'
        >>> cache.cleanup()
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


def fetch_entry_folder(url: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Copy an entry folder from an object store (``gs://bucket/run/export/NAME``, what
    ``zoo export --out-dir gs://...`` writes) into ``<cache>/zoo/remote/`` and return the copy.

    Every file is fetched again on each call (the folder may have been re-exported) into a fresh
    folder, which then replaces the previous copy; the caller verifies it against its card
    (:func:`routellm_jax.zoo.entry.read_entry`), as for a local entry folder.
    """
    source = paths.location(url)
    if not (source / CARD_FILE).is_file():
        raise FileNotFoundError(f"{url}: no {CARD_FILE} there (not a zoo entry folder)")
    root = zoo_cache(cache_dir) / "remote" / hashlib.sha256(url.encode()).hexdigest()[:16]
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".fetching."))
    try:
        pending = [source]
        while pending:  # iterdir, not rglob: epath refuses "**" patterns on object stores
            for item in pending.pop().iterdir():
                if item.is_dir():
                    pending.append(item)
                    continue
                target = staging / item.relative_to(source).as_posix()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.read_bytes())
        final = root / source.name
        _swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
