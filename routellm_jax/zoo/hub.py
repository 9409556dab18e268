"""The zoo below the inference API, in one namespace: manifest, download, cache, verification.

What the CLI (``routellm-jax zoo list|pull|verify``), the tools and the tests use, curated from
the modules that implement it (each holds one concern; none imports anything above the zoo):

* :mod:`routellm_jax.zoo.manifest`: the JSON index (entries, files, sizes, hashes, URLs) and the
  name/version rules that keep a manifest's folders inside the cache;
* :mod:`routellm_jax.zoo.transport`: URLs and paths, resumable size-capped verified downloads
  (HTTP ``Range``, ``gs://`` through gcsfs, anything :mod:`etils.epath` opens);
* :mod:`routellm_jax.zoo.cache`: pull (fetch, verify, unpack atomically inside
  ``<cache>/zoo/entries``), the unpacked files' recorded hashes, verify again;
* :mod:`routellm_jax.zoo.errors`: the errors, each naming its file, URL or entry.

Reading an entry for inference (resolve, verify, restore) is :mod:`routellm_jax.zoo.entry`;
model cards are :mod:`routellm_jax.zoo.card`. Exporting and publishing entries sits above the
API, in :mod:`routellm_jax.publish`.
"""

from __future__ import annotations

from routellm_jax.zoo.cache import (
    check_card_files,
    entries_root,
    entry_cache_dir,
    fetch_file,
    hash_tree,
    is_cached,
    pull,
    pull_url,
    unpack_files,
    verify_cached,
    verify_entry_dir,
    verify_tree,
    verify_unpacked,
    zoo_cache,
)
from routellm_jax.zoo.errors import (
    DownloadError,
    EntryNotFound,
    IntegrityError,
    ManifestError,
    NotPublished,
    UnsafePath,
    ZooError,
)
from routellm_jax.zoo.manifest import (
    BUNDLED_LIMIT_BYTES,
    MANIFEST_FORMAT,
    NAME_PATTERN,
    SOURCE_RECORD,
    VERSION_PATTERN,
    Manifest,
    ManifestEntry,
    ManifestFile,
    check_name,
    check_version,
    default_manifest,
)
from routellm_jax.zoo.transport import download, url_scheme

__all__ = [
    "BUNDLED_LIMIT_BYTES",
    "MANIFEST_FORMAT",
    "NAME_PATTERN",
    "SOURCE_RECORD",
    "VERSION_PATTERN",
    "DownloadError",
    "EntryNotFound",
    "IntegrityError",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "ManifestFile",
    "NotPublished",
    "UnsafePath",
    "ZooError",
    "check_card_files",
    "check_name",
    "check_version",
    "default_manifest",
    "download",
    "entries_root",
    "entry_cache_dir",
    "fetch_file",
    "hash_tree",
    "is_cached",
    "pull",
    "pull_url",
    "unpack_files",
    "url_scheme",
    "verify_cached",
    "verify_entry_dir",
    "verify_tree",
    "verify_unpacked",
    "zoo_cache",
]
