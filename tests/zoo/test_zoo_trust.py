"""Attacks on the zoo and what stops them: a manifest whose entry name or version is a path, a link
out of the cache, an archive whose card names another entry, an edited cached card, a mirror that
streams far more than the manifest declares, and a pinned local archive.

Each test does the attack; nothing outside the cache may change, and nothing half-done may stay in
it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from zoo_server import ARCHIVE, FLOOD_BYTES, ZooServer, card_json, make_archive, manifest_json

from routellm_jax import api, paths
from routellm_jax.cli import main as cli_main
from routellm_jax.zoo import hub
from routellm_jax.zoo.card import CardError
from routellm_jax.zoo.entry import read_entry, resolve_entry

ZOO = paths.repo_root() / "model_zoo"


def _snapshot(root: Path, skip: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` but ``skip``: file bytes, or None for a folder."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        out[path.relative_to(root).as_posix()] = None if path.is_dir() else path.read_bytes()
    return out


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


@pytest.fixture()
def site(tmp_path: Path) -> dict:
    """The genuine tiny archive, a victim folder with a file in it, and an empty cache."""
    victim = tmp_path / "victim"
    (victim / "1.0").mkdir(parents=True)
    (victim / "precious.txt").write_text("do not delete")
    (victim / "1.0" / "precious.txt").write_text("do not delete either")
    archive = tmp_path / "served" / ARCHIVE
    archive.parent.mkdir()
    data = make_archive(archive)
    return {"tmp": tmp_path, "victim": victim, "archive": archive, "data": data,
            "cache": tmp_path / "cache"}  # fmt: skip


def _evil_manifest(site: dict, **entry_fields: str) -> Path:
    manifest = manifest_json(site["data"], [str(site["archive"])])  # genuine bytes, true sha256
    manifest["entries"][0].update(entry_fields)
    path = site["tmp"] / "evil.json"
    path.write_text(json.dumps(manifest))
    return path


# --------------------------------------------------------------------------------------------
# A manifest entry's name or version that is a path


@pytest.mark.parametrize(
    "field, value",
    [
        ("version", "VICTIM"),  # the victim folder's absolute path
        ("version", "../../../../victim"),  # from <cache>/zoo/entries/tiny up to tmp_path
        ("name", "../../../victim"),
        ("name", "VICTIM"),
        ("version", "1.0/../../../../../victim"),
        ("name", "Tiny"),
        ("version", ".."),
    ],
)
def test_manifest_path_in_name_or_version_is_refused_and_touches_nothing(
    site: dict, field: str, value: str, capsys, monkeypatch
) -> None:
    value = value.replace("VICTIM", str(site["victim"]))
    evil = _evil_manifest(site, **{field: value})
    before = _snapshot(site["tmp"], skip=site["cache"])
    match = rf"evil\.json: entries\[0\]\.{field}: .* is not a valid entry {field}"
    with pytest.raises(hub.ManifestError, match=match):
        hub.Manifest.load(evil)
    with pytest.raises(hub.ManifestError, match=match):
        hub.pull("tiny", manifest=evil, cache_dir=site["cache"])
    code = cli_main(
        ["zoo", "pull", "tiny", "--manifest", str(evil), "--cache-dir", str(site["cache"])]
    )
    err = capsys.readouterr().err
    assert code == 2 and "evil.json" in err and f".{field}" in err
    # The attack end to end: routing by zoo name through the evil manifest.
    monkeypatch.setenv("ROUTELLM_JAX_ZOO_MANIFEST", str(evil))
    try:
        code = cli_main(["route", "hello", "--router", "tiny", "--cache-dir", str(site["cache"])])
    except hub.ManifestError as err:  # raised, or printed by the CLI: never a route (exit 0)
        assert err.args[0].startswith(str(evil)), err
        code = None
    assert code != 0
    assert _snapshot(site["tmp"], skip=site["cache"]) == before  # nothing outside the cache
    assert (site["victim"] / "precious.txt").read_text() == "do not delete"


def test_entry_names_and_versions_are_single_plain_components() -> None:
    for name in ("mf-minilm", "irt-shape-minilm", "a", "x.y_z-1"):
        assert hub.check_name(name, "n") == name
    for name in ("", ".", "..", "a..b", "-x", "_by_hash", "A", "a/b", "/a", "a\\b", "a" * 65):
        with pytest.raises(hub.ManifestError, match="not a valid entry name"):
            hub.check_name(name, "n")
    for version in ("1", "0.1.0", "1.2.3.4", "1.2-rc1", "2.0+build.5"):
        assert hub.check_version(version, "v") == version
    for version in ("", "..", "1/2", "/1", "1..2", "v1", "1.0/..", "1.2.3.4.5", "1.0-"):
        with pytest.raises(hub.ManifestError, match="not a valid entry version"):
            hub.check_version(version, "v")
    with pytest.raises(hub.ManifestError):  # however an entry is made (export, code)
        hub.ManifestEntry("../x", "1", "", [])


def test_link_out_of_the_cache_is_not_followed(site: dict) -> None:
    manifest = _evil_manifest(site)  # a valid manifest: tiny@1.0
    entries = hub.entries_root(site["cache"])
    entries.mkdir(parents=True)
    (entries / "tiny").symlink_to(site["victim"], target_is_directory=True)
    before = _snapshot(site["tmp"], skip=site["cache"])
    for force in (False, True):
        with pytest.raises(hub.UnsafePath, match="outside the zoo cache"):
            hub.pull("tiny", manifest=manifest, cache_dir=site["cache"], force=force)
    with pytest.raises(hub.UnsafePath):  # and the low-level writer checks on its own
        f = hub.ManifestFile(ARCHIVE, len(site["data"]), "0" * 64, ["x"])
        hub.unpack_files([(f, site["archive"])], site["victim"] / "1.0", {}, root=entries)
    assert _snapshot(site["tmp"], skip=site["cache"]) == before


# --------------------------------------------------------------------------------------------
# The card must be the entry that was asked for


def test_card_naming_another_entry_is_refused_and_nothing_cached(site: dict) -> None:
    manifest = _evil_manifest(site, name="other")  # the tiny archive, listed as other@1.0
    with pytest.raises(
        hub.IntegrityError, match="is tiny@1.0, but the manifest lists .* other@1.0"
    ):
        hub.pull("other", manifest=manifest, cache_dir=site["cache"])
    assert _files(hub.entries_root(site["cache"])) == []  # no entry, no temporary folder


def test_bundled_archive_served_under_another_name_is_refused(tmp_path: Path) -> None:
    # The substitution this guards against: asking for irt-shape-minilm got the mf-minilm card.
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    mf = manifest.get("mf-minilm").files[0]
    manifest.get("irt-shape-minilm").files = [
        hub.ManifestFile(mf.path, mf.size, mf.sha256, [str(ZOO / mf.path)])
    ]
    path = tmp_path / "swapped.json"
    manifest.save(path)
    with pytest.raises(hub.IntegrityError, match="mf-minilm@0.1.0, but .* irt-shape-minilm@0.1.0"):
        api.load("irt-shape-minilm", manifest=path, cache_dir=tmp_path / "cache")
    assert _files(hub.entries_root(tmp_path / "cache")) == []


def test_archive_with_a_bad_card_or_a_forged_record_is_refused(site: dict) -> None:
    for card, error in ((b"{not json", CardError), (b'{"name": "tiny"}', CardError)):
        bad = site["tmp"] / "bad.tar"
        make_archive(bad, card=card)
        with pytest.raises(error, match="card.json"):
            hub.pull_url(str(bad), cache_dir=site["cache"])
    wrong = json.loads(card_json())
    wrong["checkpoint"]["files"]["blob.bin"]["sha256"] = "0" * 64
    make_archive(bad, card=json.dumps(wrong).encode())
    with pytest.raises(hub.IntegrityError, match="params/blob.bin"):
        hub.pull_url(str(bad), cache_dir=site["cache"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(hub.SOURCE_RECORD)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    bad.write_bytes(buf.getvalue())
    with pytest.raises(hub.IntegrityError, match="cache's own record"):
        hub.pull_url(str(bad), cache_dir=site["cache"])
    assert _files(hub.entries_root(site["cache"])) == []


# --------------------------------------------------------------------------------------------
# A pulled entry edited in the cache


def test_edited_cached_card_fails_verify_and_load(tmp_path: Path, capsys) -> None:
    manifest = str(ZOO / "manifest.json")
    cache = tmp_path / "cache"
    entry = hub.pull("mf-minilm", manifest=manifest, cache_dir=cache)
    zoo = ["--manifest", manifest, "--cache-dir", str(cache)]
    assert cli_main(["zoo", "verify", "mf-minilm", *zoo]) == 0
    capsys.readouterr()
    card_path = entry / "card.json"
    card = json.loads(card_path.read_text())
    card["calibration"]["thresholds"] = [0.0] * len(card["calibration"]["thresholds"])
    card_path.write_text(json.dumps(card))  # still a valid card: every prompt would go strong
    code = cli_main(["zoo", "verify", "mf-minilm", *zoo])
    err = capsys.readouterr().err
    assert code == 1 and "card.json: size" in err and "pull it again" in err
    assert cli_main(["zoo", "verify", str(entry)]) == 1  # the folder by path, too
    capsys.readouterr()
    with pytest.raises(hub.IntegrityError, match=r"card\.json: size"):
        api.load("mf-minilm", manifest=manifest, cache_dir=cache)
    # The same length, one digit changed: the hash tells.
    text = hub.pull("mf-minilm", manifest=manifest, cache_dir=cache, force=True) / "card.json"
    original = text.read_text()
    key = original.index('"thresholds"')
    digit = next(i for i in range(key, len(original)) if original[i] in "123456789")
    text.write_text(original[:digit] + "0" + original[digit + 1 :])
    with pytest.raises(hub.IntegrityError, match=r"card\.json: sha256"):
        read_entry(entry)
    # A pull with --force repairs it.
    hub.pull("mf-minilm", manifest=manifest, cache_dir=cache, force=True)
    assert cli_main(["zoo", "verify", "mf-minilm", *zoo]) == 0
    # An added file is a change too; so is a deleted one.
    extra = entry / "params" / "extra.bin"
    extra.write_bytes(b"x")
    with pytest.raises(hub.IntegrityError, match="extra.bin: not one of the unpacked files"):
        hub.verify_cached("mf-minilm", manifest=manifest, cache_dir=cache)
    extra.unlink()
    victim = next(p for p in (entry / "params").rglob("*") if p.is_file())
    victim.unlink()
    with pytest.raises(hub.IntegrityError, match=f"{victim.name}: missing"):
        hub.verify_cached("mf-minilm", manifest=manifest, cache_dir=cache)


def test_entry_cached_without_file_hashes_is_unpacked_again(site: dict) -> None:
    manifest = _evil_manifest(site)  # valid: tiny@1.0
    entry = hub.pull("tiny", manifest=manifest, cache_dir=site["cache"])
    record_path = entry / hub.SOURCE_RECORD
    record = json.loads(record_path.read_text())
    assert set(record["unpacked"]) == {"card.json", "params/blob.bin"}
    del record["unpacked"]  # as an older version wrote it
    record_path.write_text(json.dumps(record))
    with pytest.raises(hub.IntegrityError, match="no hashes of the unpacked files"):
        hub.verify_cached("tiny", manifest=manifest, cache_dir=site["cache"])
    hub.pull("tiny", manifest=manifest, cache_dir=site["cache"])  # not taken as cached
    assert hub.verify_cached("tiny", manifest=manifest, cache_dir=site["cache"]) == entry


# --------------------------------------------------------------------------------------------
# A mirror that sends far more than the manifest declares


def _sent(server: ZooServer, path: str) -> int:
    deadline = time.monotonic() + 30  # the server notices the closed socket on its next write
    while path not in server.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.sent[path]


@pytest.mark.parametrize("fault", ["flood", "flood-announced"])
def test_download_stops_at_the_declared_size(site: dict, fault: str) -> None:
    data = site["data"]
    with ZooServer(site["archive"].parent) as server:
        server.faults[ARCHIVE] = fault
        url = server.url + ARCHIVE
        seen: list[int] = []
        dest = site["tmp"] / "downloads" / ARCHIVE
        digest = hashlib.sha256(data).hexdigest()
        with pytest.raises(
            hub.IntegrityError, match=rf"{url}: sent at least \d+ bytes, more than the {len(data)}"
        ):
            hub.download(url, dest, size=len(data), sha256=digest, progress=seen.append)
        assert max(seen, default=0) <= len(data)  # nothing past the declared size written
        assert not dest.exists() and not list(dest.parent.glob("*.partial"))
        assert _sent(server, ARCHIVE) < FLOOD_BYTES // 2  # it stopped reading, not drained it
        # Through a pull: the error names the URL and both sizes, and nothing is unpacked.
        manifest = hub.Manifest.from_json_text(json.dumps(manifest_json(data, [url])))
        with pytest.raises(
            hub.DownloadError, match=rf"{ARCHIVE}: sent at least .* {len(data)} bytes"
        ):
            hub.pull("tiny", manifest=manifest, cache_dir=site["cache"])
    assert (
        not hub.entries_root(site["cache"]).exists()
        or _files(hub.entries_root(site["cache"])) == []
    )


# --------------------------------------------------------------------------------------------
# A local archive with a #sha256= pin


def test_local_archive_with_sha256_pin(site: dict) -> None:
    archive, cache = site["archive"], site["cache"]
    digest = hashlib.sha256(site["data"]).hexdigest()
    entry = resolve_entry(f"{archive}#sha256={digest}", cache_dir=cache)
    assert (entry / "card.json").is_file() and hub.verify_unpacked(entry)
    other = site["tmp"] / "c2"
    with pytest.raises(hub.IntegrityError, match="sha256 mismatch"):
        resolve_entry(f"{archive}#sha256={'0' * 64}", cache_dir=other)
    with pytest.raises(hub.IntegrityError, match="not 64 hex digits"):
        resolve_entry(f"{archive}#sha256=abc", cache_dir=other)
    with pytest.raises(FileNotFoundError, match="no such zoo entry archive"):
        resolve_entry(f"{archive}.gone#sha256={digest}", cache_dir=other)
    assert not other.exists() or _files(other) == []
    # Relative to the working directory as well.
    cwd = os.getcwd()
    try:
        os.chdir(archive.parent)
        assert resolve_entry(f"{ARCHIVE}#sha256={digest}", cache_dir=cache) == entry
    finally:
        os.chdir(cwd)


def test_export_refuses_a_name_the_manifest_would_refuse(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    for name, version, bad in (("../escape", "0.1.0", "--name"), ("ok", "/abs", "--version")):
        argv = ["zoo", "export", "--workdir", str(tmp_path), "--out-dir", str(out)]
        assert cli_main([*argv, "--name", name, "--version", version]) == 2
        assert f"{bad}: " in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "escape").exists()


def test_restored_parameters_come_back_from_a_verified_copy_and_a_bad_copy_is_redone(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """The second read of an entry restores its parameters from the plain-array copy the first
    wrote (no Orbax); a copy whose arrays no longer match its digest is removed, and the
    checkpoint restored by Orbax again."""
    import logging

    import numpy as np

    from routellm_jax.zoo import entry as entry_module
    from routellm_jax.zoo.cache import pull

    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(tmp_path / "cache"))
    entry_dir = pull(
        "irt-mix-minilm", manifest="model_zoo/manifest.json", cache_dir=tmp_path / "cache"
    )
    orbax_restores = []
    real_restore = entry_module._restore_orbax
    monkeypatch.setattr(
        entry_module,
        "_restore_orbax",
        lambda ckpt: orbax_restores.append(ckpt) or real_restore(ckpt),
    )
    _, first = read_entry(entry_dir)
    copies = list((tmp_path / "cache" / "zoo" / "params").glob("*.npz"))
    assert len(orbax_restores) == 1 and len(copies) == 1
    _, second = read_entry(entry_dir)
    assert len(orbax_restores) == 1  # read from the copy
    flat_first = dict(entry_module._flat(first))
    flat_second = dict(entry_module._flat(second))
    assert sorted(flat_first) == sorted(flat_second)
    for name, value in flat_first.items():
        assert flat_second[name].dtype == value.dtype
        np.testing.assert_array_equal(flat_second[name], value)

    # One array of the copy changed, its digest kept: detected, removed, restored again.
    with np.load(copies[0], allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    name = next(n for n in arrays if n != "__sha256__")
    arrays[name] = arrays[name] + 1.0
    np.savez(copies[0], **arrays)
    with caplog.at_level(logging.WARNING, logger="routellm_jax.zoo.entry"):
        _, third = read_entry(entry_dir)
    assert "do not match its digest" in caplog.text and str(copies[0]) in caplog.text
    assert len(orbax_restores) == 2
    np.testing.assert_array_equal(entry_module._flat(third)[name], flat_first[name])
    # A read without verification never uses (or writes) the copy.
    read_entry(entry_dir, verify=False)
    assert len(orbax_restores) == 3
