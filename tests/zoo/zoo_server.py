"""A local HTTP zoo for tests: serves files from a folder on 127.0.0.1, with per-file faults.

Faults (set in ``server.faults[path]``): ``"corrupt"`` flips one byte, ``"truncate"`` serves the
first half as if it were the whole file, ``"drop"`` announces the full length and closes the
connection halfway (once; the next request is served normally), ``"404"``. ``Range: bytes=N-``
requests are answered with 206. Every request is logged as ``(path, range header or None)``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ZooServer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.faults: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
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
