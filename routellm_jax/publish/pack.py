"""Packing an exported entry: a deterministic ``.tar`` and its line in a manifest.

The archive has sorted names and zero mtimes/owners, so re-exporting the same parameters gives the
same bytes for everything but Orbax's own timestamps. :func:`update_manifest` lists it, bundled
next to the manifest (under :data:`~routellm_jax.zoo.manifest.BUNDLED_LIMIT_BYTES`) and/or at
published URLs.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from routellm_jax.integrity import sha256_and_size
from routellm_jax.paths import location
from routellm_jax.zoo.card import ModelCard
from routellm_jax.zoo.manifest import BUNDLED_LIMIT_BYTES, Manifest, ManifestEntry, ManifestFile


@dataclasses.dataclass
class ExportResult:
    """What an export wrote: the entry folder, the archive (None when not packed), its sha256
    and size, and the card."""

    entry_dir: Path
    archive: Path | None
    sha256: str
    size: int
    card: ModelCard

    @classmethod
    def of_archive(cls, entry_dir: Path, archive: Path, card: ModelCard) -> ExportResult:
        """The result for a packed entry: the archive's sha256 and size are read from disk."""
        digest, size = sha256_and_size(archive)
        return cls(entry_dir, archive, digest, size, card)


def pack_entry(entry_dir: str | os.PathLike[str], archive: str | os.PathLike[str]) -> Path:
    """Pack an entry folder into a deterministic uncompressed tar (written atomically)."""
    entry_dir, archive = Path(entry_dir), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entry_dir.rglob("*")):
            rel = path.relative_to(entry_dir).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif path.is_file():
                data = path.read_bytes()
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, archive)
    return archive


def update_manifest(
    manifest_path: str | os.PathLike[str],
    result: ExportResult,
    *,
    urls: Sequence[str] = (),
    bundled: bool = True,
) -> ManifestEntry:
    """Add (or replace) the exported entry in a manifest file (created if missing).

    With ``bundled`` the archive must sit under the manifest's folder and be under 5 MB; its
    relative path becomes the first URL. ``urls`` adds published locations (tried after it).
    """
    manifest_path = location(manifest_path)  # a local file or an object-store URL
    if result.archive is None:
        raise ValueError("the export was not packed (pack=False): nothing to list")
    all_urls = list(urls)
    if bundled:
        try:
            rel = location(result.archive).relative_to(manifest_path.parent)
        except ValueError:
            raise ValueError(
                f"{result.archive} is not under {manifest_path.parent}: a bundled entry must sit "
                "next to the manifest"
            ) from None
        if result.size > BUNDLED_LIMIT_BYTES:
            raise ValueError(f"{result.archive}: {result.size} bytes, over the 5 MB bundle limit")
        all_urls.insert(0, rel.as_posix())
    if not all_urls:
        raise ValueError("an entry needs at least one URL (bundled=True or urls=[...])")
    manifest = (
        Manifest.load(str(manifest_path))
        if manifest_path.exists()
        else Manifest(entries=[], location=str(manifest_path))
    )
    card = result.card
    entry = ManifestEntry(
        name=card.name,
        version=card.version,
        description=card.description,
        architecture=card.architecture,
        files=[
            ManifestFile(
                path=result.archive.name, size=result.size, sha256=result.sha256, urls=all_urls
            )
        ],
        evals=[{"benchmark": e.benchmark, "apgr": round(float(e.apgr), 4)} for e in card.evals],
    )
    manifest.upsert(entry)
    manifest.save(manifest_path)
    return entry
