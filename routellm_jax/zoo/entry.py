"""Reading one zoo entry: resolve a name, URL or path to a local folder, verify it, restore it.

The one place an entry is read, below the inference API: :func:`resolve_entry` turns a zoo name
(``name`` or ``name@version``, through the manifest and the cache), a URL or a local ``.tar``
(pulled into the cache, optionally pinned with ``#sha256=``) or an entry folder into a local
folder; :func:`read_entry` checks every file against its card (and, for a cached entry, against
the hashes recorded when it was unpacked) and the card's encoder pins against the encoder table
(:func:`check_encoder_pins`), then restores the parameters as host arrays.
:func:`routellm_jax.load` is these two calls and a :class:`~routellm_jax.api.Router`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.models.encoders.fetch import get_spec
from routellm_jax.models.param_tree import flatten_params, unflatten_params
from routellm_jax.paths import cache_dir
from routellm_jax.zoo.cache import (
    check_card_files,
    fetch_entry_folder,
    pull,
    pull_url,
    verify_tree,
    verify_unpacked,
)
from routellm_jax.zoo.card import CARD_FILE, ModelCard
from routellm_jax.zoo.errors import IntegrityError
from routellm_jax.zoo.transport import url_scheme

log = logging.getLogger(__name__)


def read_entry(entry_dir: str | os.PathLike[str], *, verify: bool = True) -> tuple[ModelCard, Any]:
    """Read ``card.json`` and restore the parameters (host arrays) of an entry folder.

    With ``verify`` every checkpoint file is checked against the card's sizes and sha256 first, and
    the card's encoder pins against the encoder table; nothing is restored from a mismatching file.
    An entry unpacked into the zoo cache is first checked file by file (``card.json`` included)
    against the hashes recorded when it was unpacked, so an edited cached card is an error too.

    Example:
        >>> import tempfile
        >>> from routellm_jax.zoo.cache import pull
        >>> with tempfile.TemporaryDirectory() as cache:  # the bundled entry, unpacked
        ...     entry_dir = pull("irt-minilm", manifest="model_zoo/manifest.json", cache_dir=cache)
        ...     card, params = read_entry(entry_dir)
        >>> card.architecture, sorted(params)
        ('irt', ['bias', 'hidden', 'item', 'theta'])
    """
    entry_dir = Path(entry_dir).resolve()
    unpacked = verify_unpacked(entry_dir) if verify else None
    card = ModelCard.load(entry_dir / CARD_FILE)
    ckpt = entry_dir / card.checkpoint.path
    if verify:
        if not card.checkpoint.files:
            raise IntegrityError(f"{entry_dir / CARD_FILE}: checkpoint.files is empty")
        if unpacked is None:  # a local entry folder: its card is all that vouches for it
            verify_tree(ckpt, card.checkpoint.files)
        else:  # the files were just hashed against the record: compare, do not hash again
            check_card_files(card, unpacked, str(entry_dir / CARD_FILE))
        check_encoder_pins(card, str(entry_dir / CARD_FILE))
    if not ckpt.is_dir():
        raise FileNotFoundError(f"{ckpt}: checkpoint folder missing (card {card.name})")
    if not verify:  # nothing vouches that the files are the card's: restore them as they are
        return card, _restore_orbax(ckpt)
    return card, restore_verified(ckpt, card.checkpoint.files)


def _restore_orbax(ckpt: Path) -> Any:
    # A local import: Orbax (and through it TensorStore) loads only when a checkpoint is restored.
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer().restore(ckpt)


_DIGEST = "__sha256__"
_restore_lock = threading.Lock()


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _flat(tree: Any) -> dict[str, np.ndarray] | None:
    """``{"a/b": array}`` for a tree of string-keyed dicts of plain numeric numpy arrays, or None
    for anything else (lists, bfloat16, objects: those entries are restored by Orbax every time)."""
    if not isinstance(tree, dict):
        return None
    flat = flatten_params(tree)
    plain = all(
        isinstance(v, np.ndarray) and v.dtype.kind in "fiub" and v.dtype.isbuiltin
        for v in flat.values()
    )
    # Empty dicts, non-string keys or keys holding the separator do not come back the same.
    if not flat or not plain or _DIGEST in flat or not _same_tree(unflatten_params(flat), tree):
        return None
    return flat


def _same_tree(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    return a is b


def restore_verified(ckpt: Path, files: dict[str, Any]) -> Any:
    """Restore a checkpoint whose files were just verified against ``files`` (the card's
    ``{path: {"size", "sha256"}}``), through a plain-array copy kept in the cache.

    Restoring with Orbax means importing Orbax and TensorStore, a good part of a route command's
    start-up. The restored tree depends on nothing but the checkpoint's bytes, which the card's
    hashes name, so the first restore also writes the arrays to
    ``<cache>/zoo/params/<sha256 of the card's file list>.npz`` (with a digest of its own arrays,
    read with ``allow_pickle=False``) and later loads of the same checkpoint read that instead. A
    copy that fails its digest or cannot be read is removed and the checkpoint restored by Orbax
    again; a cache that cannot be written is skipped.
    """
    key = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:40]
    copy = cache_dir() / "zoo" / "params" / f"{key}.npz"
    if copy.is_file():
        try:
            with np.load(copy, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files if name != _DIGEST}
                recorded = str(z[_DIGEST])
            if recorded == _arrays_digest(arrays):
                return unflatten_params(arrays)
            raise ValueError("its arrays do not match its digest")
        except (OSError, ValueError, KeyError, EOFError) as err:
            log.warning("%s: unreadable copy of %s (%s): restoring the checkpoint", copy, ckpt, err)
            copy.unlink(missing_ok=True)
    params = _restore_orbax(ckpt)
    arrays = _flat(params)
    if arrays is not None:
        try:
            with _restore_lock:
                copy.parent.mkdir(parents=True, exist_ok=True)
                tmp = copy.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.npz")
                np.savez(tmp, **arrays, **{_DIGEST: np.array(_arrays_digest(arrays))})
                os.replace(tmp, copy)
        except OSError as err:
            log.warning("%s: could not keep a copy of %s (%s)", copy, ckpt, err)
    return params


def check_encoder_pins(card: ModelCard, where: str) -> None:
    """Raise if the card pins encoder files whose hashes differ from the encoder table's.

    The encoder itself is fetched (and every file verified against the table) by the featurizer;
    this check makes sure the table and the entry agree on which bytes that is.

    Example:
        >>> import tempfile
        >>> from routellm_jax.zoo.cache import pull
        >>> with tempfile.TemporaryDirectory() as cache:
        ...     entry_dir = pull("mf-minilm", manifest="model_zoo/manifest.json", cache_dir=cache)
        ...     card = ModelCard.load(entry_dir / CARD_FILE)
        >>> check_encoder_pins(card, "card.json")  # the bundled card agrees with the table
        >>> name = next(iter(card.encoder.files))
        >>> card.encoder.files[name] = "0" * 64  # a pin the encoder table does not have
        >>> check_encoder_pins(card, "card.json")
        Traceback (most recent call last):
        ...
        routellm_jax.zoo.errors.IntegrityError: card.json: ...
    """
    if card.encoder is None or not card.encoder.files:
        return
    try:
        spec = get_spec(card.encoder.name)
    except KeyError:
        raise IntegrityError(
            f"{where}: encoder {card.encoder.name!r} is not in this installation's encoder table "
            "(routellm_jax.models.encoders.fetch.ENCODERS); add it to load this entry"
        ) from None
    table = {f.path: f.sha256 for f in spec.files}
    if card.encoder.revision and spec.revision != card.encoder.revision:
        raise IntegrityError(
            f"{where}: encoder.revision {card.encoder.revision} but the encoder table pins "
            f"{spec.revision} for {spec.name}"
        )
    for path, sha in card.encoder.files.items():
        if table.get(path) != sha:
            raise IntegrityError(
                f"{where}: encoder.files[{path!r}] = {sha} but the encoder table pins "
                f"{table.get(path)} for {spec.name}"
            )


def resolve_entry(
    name_or_url_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
) -> Path:
    """The local entry folder for a zoo name (``name`` or ``name@version``), a URL or a path.

    A URL or a local ``.tar`` may carry a ``#sha256=HEX`` pin (checked before unpacking); without
    one, a URL, a ``.tar`` or a folder is only checked against its own card. An entry folder in an
    object store (``gs://bucket/run/export/NAME``, what ``zoo export --out-dir gs://...``
    writes) is copied into the cache first (:func:`~routellm_jax.zoo.cache.fetch_entry_folder`).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as cache:  # a throwaway cache; default: cache_dir()
        ...     resolve_entry("mf-minilm@0.1.0", cache_dir=cache, manifest="model_zoo/manifest.json"
        ...                   ).relative_to(cache).as_posix()
        'zoo/entries/mf-minilm/0.1.0'
    """
    text = os.fspath(name_or_url_or_path)
    local = Path(text)
    if local.is_dir() and (local / CARD_FILE).is_file():
        return local
    if local.is_file() and local.suffix == ".tar":
        return pull_url(str(local.resolve()), cache_dir=cache_dir)
    scheme = url_scheme(text)
    archive = text.partition("#")[0].endswith(".tar")
    if scheme and scheme not in ("http", "https", "file") and not archive:
        return fetch_entry_folder(text, cache_dir=cache_dir)
    if scheme:
        return pull_url(text, cache_dir=cache_dir)
    head, sep, fragment = text.rpartition("#")
    if sep and fragment.startswith("sha256="):  # a pinned local archive (names have no '#')
        pinned = Path(head)
        if not (pinned.is_file() and pinned.suffix == ".tar"):
            raise FileNotFoundError(
                f"{head}: no such zoo entry archive (.tar) for the #sha256= pin"
            )
        return pull_url(f"{pinned.resolve()}#{fragment}", cache_dir=cache_dir)
    if local.is_dir():
        raise FileNotFoundError(f"{local}: a folder without {CARD_FILE} is not a zoo entry")
    return pull(text, manifest=manifest, cache_dir=cache_dir)
