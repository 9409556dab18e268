"""Local zoos for tests: an HTTP server with per-file faults, a GCS emulator, a tiny archive.

``ZooServer`` serves files from a folder on 127.0.0.1, with per-file faults.

Faults (set in ``server.faults[path]``): ``"corrupt"`` flips one byte, ``"truncate"`` serves the
first half as if it were the whole file, ``"drop"`` announces the full length and closes the
connection halfway (once; the next request is served normally), ``"404"``, ``"flood"`` streams
the file followed by up to :data:`FLOOD_BYTES` of junk with no length announced (a mirror that
sends far too much), ``"flood-announced"`` the same with that length announced. ``Range:
bytes=N-`` requests are answered with 206. Every request is logged as ``(path, range header or
None)``; ``server.sent[path]`` counts the bytes of the last response the client accepted.

``GcsEmulator`` runs ``gcp-storage-emulator`` (in memory, in a thread of this process) on a free
127.0.0.1 port and points gcsfs at it (``STORAGE_EMULATOR_HOST``, anonymous token). gs:// is served
by gcsfs' plain ``GCSFileSystem`` meanwhile: the ``ExtendedGcsFileSystem`` that gcsfs >= 2026.10
registers by default asks a gRPC storage-control API for each bucket's type, which the emulator
does not speak (with an anonymous token it retries for minutes).

TensorStore (what Orbax writes arrays with) reaches the same emulator through its own settings:
``TENSORSTORE_GCS_HTTP_URL`` (the GCS JSON API root; the gcs driver's ``--tensorstore_gcs_http_url``
flag) and ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` (a fixed bearer token instead of Google credentials).
:meth:`GcsEmulator.client_env` is every variable a child process needs to read and write the
emulator's buckets through gcsfs, :mod:`etils.epath` and TensorStore alike (fsspec takes its gcsfs
arguments from ``FSSPEC_GS_<ARG>``, and ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` keeps gcsfs on
the plain filesystem).

One gap of the emulator is filled while it runs: its object downloads carry no
``x-goog-generation`` header, which real GCS always sends and TensorStore's gcs driver requires
(it reads an object's generation from it; without it a read fails with "Malformed
StorageGeneration", e.g. when OCDBT re-reads its manifest during a save). The emulator does not
enforce ``ifGenerationMatch`` preconditions either, so concurrent writers to one object would not
be refused as on GCS; the runs here never write one object from two processes.

``make_archive`` writes the tiny entry archive (a valid card naming ``tiny@1.0`` and listing its
one checkpoint file) and ``manifest_json`` lists it as entry ``tiny``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import sys
import tarfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ZooServer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.faults: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
        self.sent: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                rel = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.log.append((rel, rng))
                fault = server.faults.get(rel)
                path = server.root / rel
                if fault == "404" or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                if fault in ("flood", "flood-announced"):
                    self._flood(rel, data, announce=fault == "flood-announced")
                    return
                if fault == "corrupt":
                    i = len(data) // 2
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
                if fault == "truncate":
                    data = data[: len(data) // 2]
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes=") : -1])
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "drop":
                    server.faults.pop(rel)  # fail once, then serve normally
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _flood(self, rel: str, data: bytes, announce: bool) -> None:
                self.send_response(200)
                if announce:
                    self.send_header("Content-Length", str(len(data) + FLOOD_BYTES))
                self.end_headers()
                self.close_connection = True  # no length: the body ends when the socket closes
                sent, junk = 0, b"\xab" * (1 << 16)
                try:
                    self.wfile.write(data)
                    sent = len(data)
                    while sent < len(data) + FLOOD_BYTES:
                        self.wfile.write(junk)
                        sent += len(junk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what it takes is what counts
                server.sent[rel] = sent

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ZooServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


ARCHIVE = "tiny-1.0.tar"
BLOB = bytes(range(256)) * 400  # ~100 KB, several read chunks
FLOOD_BYTES = 64 * 1024 * 1024  # what a "flood" fault streams after the file, at most


def card_json(name: str = "tiny", version: str = "1.0") -> bytes:
    """A minimal valid model card naming ``name@version`` and listing ``params/blob.bin``."""
    card = {
        "name": name,
        "version": version,
        "architecture": "mf",
        "config": {},
        "models": [],
        "default_strong": "strong",
        "default_weak": "weak",
        "checkpoint": {
            "path": "params",
            "files": {"blob.bin": {"size": len(BLOB), "sha256": hashlib.sha256(BLOB).hexdigest()}},
        },
    }
    return json.dumps(card, indent=1).encode()


CARD = card_json()


def make_archive(path: Path, card: bytes = CARD) -> bytes:
    """Write the ``tiny`` entry archive (``card.json`` + ``params/blob.bin``); return its bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, payload in {"card.json": card, "params/blob.bin": BLOB}.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def manifest_json(data: bytes, urls: Sequence[str]) -> dict[str, Any]:
    """A one-entry manifest (``tiny@1.0``) whose one file is ``data`` at ``urls``."""
    file = {
        "path": ARCHIVE,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "urls": list(urls),
    }
    entry = {"name": "tiny", "version": "1.0", "description": "test entry", "files": [file]}
    return {"format": 1, "entries": [entry]}


def _quiet_handle_error(original: Any) -> Any:
    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            original(request, client_address)

    return handle_error


def _clear_gs_caches() -> None:
    """Forget every gs:// filesystem instance (gcsfs' and the one epath keeps)."""
    import fsspec
    from etils.epath import backend

    fsspec.get_filesystem_class("gs").clear_instance_cache()
    backend.fsspec_backend._get_filesystem.cache_clear()


class GcsEmulator:
    """An in-memory GCS (JSON API) on 127.0.0.1 for gcsfs; a context manager.

    Sets ``STORAGE_EMULATOR_HOST`` and an anonymous gcsfs token (fsspec config) while open and
    restores both on exit; clears gcsfs' instance cache at both ends so no filesystem keeps
    pointing at a stopped emulator. ``log`` records ``(object path, Range header or None)`` for
    every object download.
    """

    def __init__(self) -> None:
        from gcp_storage_emulator import server as emulator

        with socket.socket() as s:  # a free port (the emulator cannot report one it picked)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: list[tuple[str, str | None]] = []
        self._emulator = emulator
        self._server = emulator.create_server("127.0.0.1", self.port, in_memory=True)
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> GcsEmulator:
        import fsspec

        handler = self._emulator.RequestHandler
        original = handler.do_GET
        log = self.log

        def do_get(request_handler: Any) -> None:
            if "alt=media" in request_handler.path:  # an object download, not metadata
                log.append((request_handler.path.split("?")[0], request_handler.headers["Range"]))
            original(request_handler)

        import gcsfs.core

        self._saved = {
            "classes": {p: fsspec.get_filesystem_class(p) for p in ("gs", "gcs")},
            "do_GET": original,
            "env": {k: os.environ.get(k) for k in self.client_env()},
            "conf": fsspec.config.conf.get("gcs"),
        }
        handler.do_GET = do_get
        self._add_generation_headers()
        for protocol in ("gs", "gcs"):
            fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
        os.environ.update(self.client_env())
        fsspec.config.conf["gcs"] = {**(self._saved["conf"] or {}), "token": "anon"}
        self.fs = self._fresh_fs()
        self._saved["log_level"] = logging.getLogger("gcp_storage_emulator").level
        # TensorStore probes for objects before it writes them (each a logged "not found"),
        # and closes connections early (each a socketserver traceback): neither is a failure.
        logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
        self._server.start()  # creates the HTTP server (in its thread) before it returns
        httpd = self._server._api._httpd
        httpd.handle_error = _quiet_handle_error(httpd.handle_error)
        return self

    def _add_generation_headers(self) -> None:
        from gcp_storage_emulator import server
        from gcp_storage_emulator.handlers import objects

        original = objects.download

        def download(request: Any, response: Any, storage: Any, *args: Any, **kw: Any) -> None:
            original(request, response, storage, *args, **kw)
            if response.status in (200, 206):
                obj = storage.get_file_obj(
                    request.params["bucket_name"], request.params["object_id"]
                )
                response["x-goog-generation"] = str(obj["generation"])
                response["x-goog-metageneration"] = str(obj["metageneration"])

        # objects.get (?alt=media) calls the module's download; the routing table holds its own.
        objects.download = download
        routes = [h for _, h in server.HANDLERS if h.get("GET") is original]
        for handlers in routes:
            handlers["GET"] = download
        self._saved["download"] = (objects, original, routes)

    def _restore_downloads(self) -> None:
        objects, original, routes = self._saved["download"]
        objects.download = original
        for handlers in routes:
            handlers["GET"] = original

    def forget_listings(self) -> None:
        """Drop this process's cached bucket listings (gcsfs keeps them with no expiry), so
        what other processes wrote since is seen."""
        self.fs.invalidate_cache()
        _clear_gs_caches()

    def client_env(self) -> dict[str, str]:
        """Environment variables that point a process's gcsfs, epath and TensorStore here."""
        return {
            "STORAGE_EMULATOR_HOST": self.url,
            "FSSPEC_GS_TOKEN": "anon",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "TENSORSTORE_GCS_HTTP_URL": self.url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
        }

    def _fresh_fs(self) -> Any:
        import fsspec

        _clear_gs_caches()
        return fsspec.filesystem("gs")

    def __exit__(self, *exc: object) -> None:
        import fsspec

        self._server.stop()
        self._emulator.RequestHandler.do_GET = self._saved["do_GET"]
        self._restore_downloads()
        logging.getLogger("gcp_storage_emulator").setLevel(self._saved["log_level"])
        for key, value in self._saved["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._saved["conf"] is None:
            fsspec.config.conf.pop("gcs", None)
        else:
            fsspec.config.conf["gcs"] = self._saved["conf"]
        for protocol, cls in self._saved["classes"].items():
            fsspec.register_implementation(protocol, cls, clobber=True)
        _clear_gs_caches()

    def put(self, url: str, data: bytes) -> None:
        """Upload ``data`` to ``gs://BUCKET/NAME`` (the bucket is created if needed)."""
        bucket = url.removeprefix("gs://").split("/", 1)[0]
        if not self.fs.exists(bucket):
            self.fs.mkdir(bucket)
        self.fs.pipe(url, data)
