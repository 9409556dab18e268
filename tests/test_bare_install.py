"""The README's first command runs on a bare install (no extras): the route path and the encoder
fetcher must not import a package that only an extra installs. CI also runs that command in an
empty virtual environment (.ci/run); this test catches the regression in the ordinary suite."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

# Distributions that only the optional extras (serve, gcs, tfds, dev) install.
EXTRAS_ONLY = (
    "httpx",
    "fastapi",
    "uvicorn",
    "prometheus_client",
    "gcsfs",
    "openai",
    "torch",
    "tensorflow",
    "tensorflow_datasets",
)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/models/x"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_route_path_and_encoder_probe_need_no_extra(answering_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        class Blocked(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {EXTRAS_ONLY!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: extras only)")
                return None

        sys.meta_path.insert(0, Blocked())
        import routellm_jax.api, routellm_jax.api_cli, routellm_jax.zoo.hub
        from routellm_jax.data.sources import chatbot_arena
        from routellm_jax.models.encoders import fetch

        fetch._probe({answering_url!r}, 5.0)  # a 404 still means the host answers
        try:
            fetch._probe("http://127.0.0.1:{_closed_port()}/", 5.0)
        except fetch.SourceUnavailable as err:
            print("unreachable:", err)
        try:
            chatbot_arena._probe_hub("http://127.0.0.1:{_closed_port()}", "r", "f.csv", 5.0)
        except chatbot_arena.SourceUnavailableError as err:
            print("unreachable:", err)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("unreachable: http://127.0.0.1:") == 1, proc.stdout
    assert proc.stdout.count("unreachable:") == 2, proc.stdout
