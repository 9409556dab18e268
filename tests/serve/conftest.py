"""Fixtures for the serving tests: fake upstreams (real loopback HTTP servers) and a server factory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from routellm_jax.serve.server import ServeSettings, Upstream, create_app
from routellm_jax.serve.testing import FakeUpstream, HashRouter, ServerThread

STRONG_KEY = "sk-test-STRONG-9f8e7d6c5b4a"  # a fake secret that must never leak


@pytest.fixture
def strong_key() -> str:
    return STRONG_KEY


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream(hang_s=1.0) as strong, FakeUpstream(hang_s=1.0) as weak:
        yield strong, weak


@pytest.fixture
def fresh_upstreams(upstreams) -> tuple[FakeUpstream, FakeUpstream]:
    for up in upstreams:
        up.reset()
    return upstreams


@pytest.fixture
def start_server(fresh_upstreams) -> Iterator[Callable[..., ServerThread]]:
    """start_server(routers=None, **settings) -> a running ServerThread (stopped after the test)."""
    strong, weak = fresh_upstreams
    with contextlib.ExitStack() as stack:

        def start(routers=None, strong_url=None, weak_url=None, **overrides) -> ServerThread:
            routers = routers or {"mf-minilm": HashRouter("mf-minilm")}
            settings = ServeSettings(
                strong=Upstream("strong", "big-model", strong_url or strong.base_url, STRONG_KEY),
                weak=Upstream("weak", "small-model", weak_url or weak.base_url),
                **overrides,
            )
            server = ServerThread(create_app(routers, settings)).start()
            stack.callback(server.stop)
            return server

        yield start
