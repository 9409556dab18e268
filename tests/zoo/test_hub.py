"""Zoo downloads against a local HTTP server: success, corruption, truncation, a dropped
connection (resumed), URL fallback, a missing entry, and manifest validation."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from zoo_server import ARCHIVE, CARD, ZooServer, make_archive, manifest_json

from routellm_jax import paths
from routellm_jax.zoo import hub


@pytest.fixture()
def zoo(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    data = make_archive(root / ARCHIVE)
    with ZooServer(root) as server:
        manifest = manifest_json(data, [ARCHIVE])  # relative to the manifest URL
        (root / "manifest.json").write_text(json.dumps(manifest))
        yield server, server.url + "manifest.json", tmp_path / "cache", data


def test_pull_success_then_cached(zoo) -> None:
    server, manifest_url, cache, _ = zoo
    entry = hub.pull("tiny", manifest=manifest_url, cache_dir=cache)
    assert (entry / "card.json").read_bytes() == CARD
    assert (entry / "params" / "blob.bin").stat().st_size == 256 * 400
    assert (entry / hub.SOURCE_RECORD).is_file()
    n = len(server.log)
    # A second pull of the same files needs the manifest only, not the archive.
    assert hub.pull("tiny", manifest=manifest_url, cache_dir=cache) == entry
    assert [p for p, _ in server.log[n:]] == ["manifest.json"]
    assert not list((cache / "zoo" / "downloads").glob("*.partial"))


def test_corrupted_byte_is_rejected_and_named(zoo) -> None:
    server, manifest_url, cache, _ = zoo
    server.faults[ARCHIVE] = "corrupt"
    with pytest.raises(hub.DownloadError, match=rf"{ARCHIVE}.*sha256 mismatch"):
        hub.pull("tiny", manifest=manifest_url, cache_dir=cache)
    assert not (cache / "zoo" / "entries" / "tiny").exists()  # nothing unpacked
    assert not list((cache / "zoo" / "downloads").iterdir())  # bad bytes not kept


def test_truncated_file_is_rejected(zoo) -> None:
    server, manifest_url, cache, _ = zoo
    server.faults[ARCHIVE] = "truncate"
    with pytest.raises(hub.DownloadError, match=rf"{ARCHIVE}.*size .* expected"):
        hub.pull("tiny", manifest=manifest_url, cache_dir=cache)
    assert not (cache / "zoo" / "entries" / "tiny").exists()


def test_dropped_connection_resumes_with_range(zoo) -> None:
    server, manifest_url, cache, data = zoo
    server.faults[ARCHIVE] = "drop"
    entry = hub.pull("tiny", manifest=manifest_url, cache_dir=cache)
    assert (entry / "params" / "blob.bin").is_file()
    archive_requests = [r for p, r in server.log if p == ARCHIVE]
    assert archive_requests[0] is None
    assert archive_requests[1] == f"bytes={len(data) // 2}-"  # resumed, not restarted


def test_drop_without_retries_keeps_partial_for_next_call(zoo) -> None:
    server, manifest_url, cache, data = zoo
    server.faults[ARCHIVE] = "drop"
    with pytest.raises(hub.DownloadError, match="partial file"):
        hub.pull("tiny", manifest=manifest_url, cache_dir=cache, retries=0)
    partials = list((cache / "zoo" / "downloads").glob("*.partial"))
    assert len(partials) == 1 and partials[0].stat().st_size == len(data) // 2
    hub.pull("tiny", manifest=manifest_url, cache_dir=cache, retries=0)
    assert server.log[-1] == (ARCHIVE, f"bytes={len(data) // 2}-")


def test_fallback_to_second_url(zoo, tmp_path: Path) -> None:
    server, manifest_url, cache, data = zoo
    m = hub.Manifest.load(manifest_url)
    m.entries[0].files[0].urls = [server.url + "missing.tar", server.url + ARCHIVE]
    entry = hub.pull("tiny", manifest=m, cache_dir=cache)
    assert (entry / "card.json").is_file()


def test_all_urls_fail_lists_each(zoo) -> None:
    server, manifest_url, cache, _ = zoo
    m = hub.Manifest.load(manifest_url)
    m.entries[0].files[0].urls = [server.url + "nope1.tar", server.url + "nope2.tar"]
    with pytest.raises(hub.DownloadError) as err:
        hub.pull("tiny", manifest=m, cache_dir=cache)
    assert "nope1.tar" in str(err.value) and "nope2.tar" in str(err.value)


def test_missing_entry(zoo) -> None:
    _, manifest_url, cache, _ = zoo
    with pytest.raises(hub.EntryNotFound, match=r"'absent'.*known: \['tiny'\]"):
        hub.pull("absent", manifest=manifest_url, cache_dir=cache)
    with pytest.raises(hub.EntryNotFound, match="no version '9'"):
        hub.pull("tiny@9", manifest=manifest_url, cache_dir=cache)


def test_local_and_file_urls(zoo, tmp_path: Path) -> None:
    server, manifest_url, cache, _ = zoo
    local_manifest = server.root / "manifest.json"  # relative URL -> next to this file
    entry = hub.pull("tiny", manifest=str(local_manifest), cache_dir=tmp_path / "c2")
    assert (entry / "card.json").is_file()
    assert not any(p == ARCHIVE for p, _ in server.log)  # never touched the network
    m = hub.Manifest.load(local_manifest)
    m.entries[0].files[0].urls = [(server.root / ARCHIVE).as_uri()]
    assert (hub.pull("tiny", manifest=m, cache_dir=tmp_path / "c3") / "card.json").is_file()


def test_pull_url_with_pinned_hash(zoo) -> None:
    server, _, cache, data = zoo
    digest = hashlib.sha256(data).hexdigest()
    entry = hub.pull_url(f"{server.url}{ARCHIVE}#sha256={digest}", cache_dir=cache)
    assert (entry / "card.json").is_file()
    with pytest.raises(hub.IntegrityError, match="sha256 mismatch"):
        hub.pull_url(f"{server.url}{ARCHIVE}#sha256={'0' * 64}", cache_dir=cache / "other")


def test_manifest_errors_name_the_key(tmp_path: Path) -> None:
    bad = {"format": 1, "entries": [{"name": "x", "version": "1", "files": [{"path": "a.tar"}]}]}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(hub.ManifestError, match=r"entries\[0\]\.files\[0\]: missing key 'sha256'"):
        hub.Manifest.load(path)
    good_file = {"path": "a.tar", "sha256": "0" * 64, "size": 1, "urls": ["a.tar"]}
    entry = {"name": "x", "version": "1", "files": [good_file], "evals": [{"benchmark": "mmlu"}]}
    path.write_text(json.dumps({"format": 1, "entries": [entry]}))
    with pytest.raises(hub.ManifestError, match=r"entries\[0\]\.evals\[0\]: missing key 'apgr'"):
        hub.Manifest.load(path)
    entry["evals"] = [{"benchmark": "mmlu", "apgr": 0.61}]
    path.write_text(json.dumps({"format": 1, "entries": [entry]}))
    assert hub.Manifest.load(path).get("x").evals == [{"benchmark": "mmlu", "apgr": 0.61}]
    path.write_text("{\n  oops")
    with pytest.raises(hub.ManifestError, match="manifest.json: not valid JSON .line 2"):
        hub.Manifest.load(path)


def test_unsafe_archive_member_rejected(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "evil.tar"
    archive.write_bytes(buf.getvalue())
    f = hub.ManifestFile("evil.tar", len(buf.getvalue()), "0" * 64, ["evil.tar"])
    with pytest.raises(hub.IntegrityError, match="unsafe path"):
        hub.unpack_files([(f, archive)], tmp_path / "entry", {}, root=tmp_path)
    assert not (tmp_path / "escape.txt").exists()


def test_missing_default_manifest_says_how_to_get_one(monkeypatch, tmp_path: Path) -> None:
    # As in a non-editable install: the package's repo_root() has no model_zoo/ next to it.
    monkeypatch.delenv("ROUTELLM_JAX_ZOO_MANIFEST", raising=False)
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    with pytest.raises(hub.ManifestError, match="ROUTELLM_JAX_ZOO_MANIFEST") as err:
        hub.Manifest.load()
    assert str(tmp_path / "model_zoo" / "manifest.json") in str(err.value)
