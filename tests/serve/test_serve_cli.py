"""``routellm-jax serve``: arguments, keys read from the environment, the app handed to uvicorn."""

from __future__ import annotations

import pytest

from routellm_jax.cli import build_parser
from routellm_jax.serve.testing import HashRouter

ARGV = [
    "serve",
    "--router",
    "mf-minilm",
    "--strong-model",
    "big",
    "--weak-model",
    "small",
    "--strong-base-url",
    "http://127.0.0.1:9001/v1",
    "--weak-base-url",
    "http://127.0.0.1:9002/v1",
]


def _run(argv, monkeypatch):
    captured = {}
    import uvicorn

    import routellm_jax.serve.client as client

    def load_routers(names, precision=None):
        captured["precision"] = precision
        return {n: HashRouter(n) for n in names}

    monkeypatch.setattr(client, "load_routers", load_routers)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    args = build_parser(argv).parse_args(argv)
    code = args._run(args)
    return code, captured


def test_serve_builds_app_with_keys_from_env(monkeypatch, capsys):
    monkeypatch.setenv("STRONG_KEY_VAR", "sk-cli-secret")
    argv = ARGV + [
        "--strong-api-key-env",
        "STRONG_KEY_VAR",
        "--port",
        "7001",
        "--fallback",
        "error",
    ]
    code, captured = _run(argv, monkeypatch)
    assert code == 0 and captured["port"] == 7001 and captured["host"] == "127.0.0.1"
    assert [r.path for r in captured["app"].routes if r.path.startswith("/v1")] == [
        "/v1/chat/completions",
        "/v1/route",
        "/v1/models",
    ]
    assert "sk-cli-secret" not in capsys.readouterr().out


def test_missing_key_variable_is_named_not_shown(monkeypatch):
    monkeypatch.delenv("NOT_SET_VAR", raising=False)
    with pytest.raises(SystemExit, match="--weak-api-key-env NOT_SET_VAR"):
        _run(ARGV + ["--weak-api-key-env", "NOT_SET_VAR"], monkeypatch)


def test_bad_settings_exit_2(monkeypatch, capsys):
    code, _ = _run(ARGV + ["--max-batch", "0"], monkeypatch)
    assert code == 2 and "max_batch" in capsys.readouterr().err


def test_router_precision_reaches_the_loader(monkeypatch):
    code, captured = _run(ARGV + ["--router-precision", "bfloat16"], monkeypatch)
    assert code == 0 and captured["precision"] == "bfloat16"
    code, captured = _run(ARGV, monkeypatch)
    assert code == 0 and captured["precision"] is None  # float32 unless asked
