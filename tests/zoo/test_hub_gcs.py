"""Zoo downloads from ``gs://`` against a local GCS emulator (gcp-storage-emulator + gcsfs):
success, a corrupted byte, a missing object, URL fallback, a manifest in the bucket with relative
URLs, ``pull_url``, and the resume of a partial file (a ranged read after a seek)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gcsfs", reason="gs:// tests need the dev extra (gcsfs)")
pytest.importorskip("gcp_storage_emulator", reason="gs:// tests need gcp-storage-emulator")

from zoo_server import ARCHIVE, BLOB, CARD, GcsEmulator, make_archive, manifest_json  # noqa: E402

from routellm_jax.zoo import hub  # noqa: E402

BUCKET = "zoo-test"
GOOD = f"gs://{BUCKET}/zoo/{ARCHIVE}"
BAD = f"gs://{BUCKET}/corrupt/{ARCHIVE}"
MISSING = f"gs://{BUCKET}/zoo/absent-{ARCHIVE}"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GcsEmulator, bytes]]:
    data = make_archive(tmp_path_factory.mktemp("archive") / ARCHIVE)
    i = len(data) // 2
    with GcsEmulator() as emulator:
        emulator.put(GOOD, data)
        emulator.put(BAD, data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
        emulator.put(
            f"gs://{BUCKET}/zoo/manifest.json", json.dumps(manifest_json(data, [ARCHIVE])).encode()
        )
        yield emulator, data


def _manifest(data: bytes, urls: list[str]) -> hub.Manifest:
    return hub.Manifest.from_json_text(json.dumps(manifest_json(data, urls)))


def _assert_unpacked(entry: Path) -> None:
    assert (entry / "card.json").read_bytes() == CARD
    assert (entry / "params" / "blob.bin").read_bytes() == BLOB


def test_gs_pull_success(gcs, tmp_path: Path) -> None:
    emulator, data = gcs
    entry = hub.pull("tiny", manifest=_manifest(data, [GOOD]), cache_dir=tmp_path)
    _assert_unpacked(entry)
    assert not list((tmp_path / "zoo" / "downloads").glob("*.partial"))
    assert emulator.log[-1][0].endswith(f"/o/zoo%2F{ARCHIVE}")  # read through the emulator


def test_gs_manifest_with_relative_urls(gcs, tmp_path: Path) -> None:
    # The manifest itself lives in the bucket; its relative URL resolves next to it.
    _, data = gcs
    manifest = hub.Manifest.load(f"gs://{BUCKET}/zoo/manifest.json")
    assert manifest.resolve_url(ARCHIVE) == GOOD
    assert manifest.resolve_url("../corrupt/x.tar") == f"gs://{BUCKET}/corrupt/x.tar"
    _assert_unpacked(hub.pull("tiny", manifest=manifest, cache_dir=tmp_path))


def test_gs_corrupted_byte_is_rejected_and_named(gcs, tmp_path: Path) -> None:
    _, data = gcs
    with pytest.raises(hub.DownloadError, match=rf"{ARCHIVE}.*{BAD}.*sha256 mismatch"):
        hub.pull("tiny", manifest=_manifest(data, [BAD]), cache_dir=tmp_path)
    with pytest.raises(hub.IntegrityError, match=rf"{ARCHIVE} \(from {BAD}\): sha256 mismatch"):
        hub.download(BAD, tmp_path / "d" / ARCHIVE, sha256=hashlib.sha256(data).hexdigest())
    assert not (tmp_path / "zoo" / "entries" / "tiny").exists()
    assert not list((tmp_path / "zoo" / "downloads").iterdir())  # bad bytes not kept
    assert not list((tmp_path / "d").iterdir())


def test_gs_missing_object_names_url_and_leaves_nothing(gcs, tmp_path: Path) -> None:
    _, data = gcs
    with pytest.raises(
        hub.DownloadError, match=rf"{MISSING}: FileNotFoundError: {MISSING}: no such"
    ):
        hub.pull("tiny", manifest=_manifest(data, [MISSING]), cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"{MISSING}: no such object"):
        hub.download(MISSING, tmp_path / "d" / ARCHIVE)
    assert not (tmp_path / "zoo" / "entries").exists()
    assert not list((tmp_path / "zoo" / "downloads").iterdir())
    assert not list((tmp_path / "d").iterdir())
    with pytest.raises(hub.ManifestError, match=rf"gs://{BUCKET}/nope.json: no such object"):
        hub.Manifest.load(f"gs://{BUCKET}/nope.json")


def test_gs_missing_first_url_falls_back_to_second(gcs, tmp_path: Path) -> None:
    emulator, data = gcs
    n = len(emulator.log)
    entry = hub.pull("tiny", manifest=_manifest(data, [MISSING, GOOD]), cache_dir=tmp_path)
    _assert_unpacked(entry)
    assert any(p.endswith(f"/o/zoo%2F{ARCHIVE}") for p, _ in emulator.log[n:])


def test_gs_partial_file_resumes_with_a_ranged_read(gcs, tmp_path: Path) -> None:
    emulator, data = gcs
    half = len(data) // 2
    downloads = tmp_path / "zoo" / "downloads"
    downloads.mkdir(parents=True)
    digest = hashlib.sha256(data).hexdigest()
    # What an interrupted earlier pull leaves behind (fetch_file's name + ".partial").
    (downloads / f"{digest[:16]}-{ARCHIVE}.partial").write_bytes(data[:half])
    n = len(emulator.log)
    _assert_unpacked(hub.pull("tiny", manifest=_manifest(data, [GOOD]), cache_dir=tmp_path))
    ranges = [r for _, r in emulator.log[n:]]
    assert ranges and all(r is not None and r.startswith(f"bytes={half}-") for r in ranges)


def test_gs_partial_longer_than_object_restarts(gcs, tmp_path: Path) -> None:
    # No size known (pull_url without a manifest): a stale partial longer than the object is
    # not a prefix of it, so the download starts over instead of seeking past the end.
    _, data = gcs
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "d" / ARCHIVE
    dest.parent.mkdir()
    dest.with_name(ARCHIVE + ".partial").write_bytes(b"x" * (len(data) + 10))
    assert hub.download(GOOD, dest, sha256=digest).read_bytes() == data


def test_gs_pull_url_with_pinned_hash(gcs, tmp_path: Path) -> None:
    _, data = gcs
    digest = hashlib.sha256(data).hexdigest()
    _assert_unpacked(hub.pull_url(f"{GOOD}#sha256={digest}", cache_dir=tmp_path))
    with pytest.raises(hub.IntegrityError, match="sha256 mismatch"):
        hub.pull_url(f"{GOOD}#sha256={'0' * 64}", cache_dir=tmp_path / "other")


PROMPTS = [f"prompt {i} about {'maths' if i % 2 else 'poetry'} " * (1 + i % 3) for i in range(24)]


def test_export_to_a_bucket_and_load_from_it(gcs, tmp_path: Path) -> None:
    # zoo export --out-dir gs://... and routellm_jax.load("gs://.../export/NAME") share the URL.
    import jax
    import numpy as np

    import routellm_jax
    from routellm_jax.models import registry
    from routellm_jax.publish.export import ExportSpec, export_entry
    from routellm_jax.publish.pack import update_manifest
    from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK

    arch = registry.get_architecture("mf")
    cfg = arch.make_config(
        models=(PAPER_STRONG, PAPER_WEAK), featurizer="hashing:16", text_dim=16, dim=4
    )
    out = f"gs://{BUCKET}/run/export"
    spec = ExportSpec(
        name="gs-entry",
        calibration_prompts=PROMPTS,
        calibration_reference="24 test prompts",
        commit="",
        description="an entry exported into a bucket",
    )
    result = export_entry("mf", cfg, arch.init(jax.random.key(3), cfg), out, spec)
    assert str(result.entry_dir) == f"{out}/gs-entry"
    assert str(result.archive) == f"{out}/gs-entry-{spec.version}.tar"
    assert hashlib.sha256(result.archive.read_bytes()).hexdigest() == result.sha256
    with pytest.raises(FileExistsError, match=f"{out}/gs-entry exists"):
        export_entry("mf", cfg, arch.init(jax.random.key(3), cfg), out, spec, overwrite=False)
    update_manifest(f"{out}/manifest.json", result)
    manifest = hub.Manifest.load(f"{out}/manifest.json")
    assert manifest.get("gs-entry").files[0].urls == [f"gs-entry-{spec.version}.tar"]

    cache = tmp_path / "cache"
    from_folder = routellm_jax.load(f"{out}/gs-entry", cache_dir=cache)
    from_archive = routellm_jax.load(f"{result.archive}#sha256={result.sha256}", cache_dir=cache)
    by_name = routellm_jax.load("gs-entry", manifest=f"{out}/manifest.json", cache_dir=cache)
    rates = [r.win_rate(PROMPTS[:5]) for r in (from_folder, from_archive, by_name)]
    np.testing.assert_array_equal(rates[0], rates[1])
    np.testing.assert_array_equal(rates[0], rates[2])
    with pytest.raises(FileNotFoundError, match="no card.json there"):
        routellm_jax.load(f"gs://{BUCKET}/run/export/absent", cache_dir=cache)
