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


def _run_capturing_settings(argv, monkeypatch):
    import routellm_jax.serve.server as server

    seen = {}
    real = server.create_app

    def create_app(routers, settings):
        seen["settings"] = settings
        return real(routers, settings)

    monkeypatch.setattr(server, "create_app", create_app)
    code, captured = _run(argv, monkeypatch)
    return code, captured, seen.get("settings")


def test_client_keys_and_limits_reach_the_server(monkeypatch, tmp_path, capsys, caplog):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# clients of team A\n\n  key-file-one-1a2b  \nkey-file-two-3c4d\n")
    monkeypatch.setenv("CLIENT_KEYS_VAR", "key-env-one-5e6f, key-env-two-7a8b,")
    argv = ARGV + [
        "--api-keys-file",
        str(keys_file),
        "--api-keys-env",
        "CLIENT_KEYS_VAR",
        "--host",
        "0.0.0.0",
        "--max-body-bytes",
        "1000",
        "--max-tokens",
        "256",
        "--max-queue",
        "32",
    ]
    code, captured, settings = _run_capturing_settings(argv, monkeypatch)
    assert code == 0 and captured["host"] == "0.0.0.0"
    assert settings.client_api_keys == (
        "key-file-one-1a2b",
        "key-file-two-3c4d",
        "key-env-one-5e6f",
        "key-env-two-7a8b",
    )
    assert (settings.max_body_bytes, settings.max_tokens, settings.max_queue) == (1000, 256, 32)
    out = capsys.readouterr()
    assert "4 client key(s)" in out.out
    for key in settings.client_api_keys:
        assert key not in out.out + out.err + caplog.text + repr(settings)
    assert "WITHOUT client authentication" not in caplog.text  # keys are set


def test_listening_beyond_loopback_without_keys_warns_loudly(monkeypatch, caplog):
    code, _ = _run(ARGV + ["--host", "0.0.0.0"], monkeypatch)
    assert code == 0
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("0.0.0.0 WITHOUT client authentication" in r.getMessage() for r in warnings)
    caplog.clear()
    for host in ("127.0.0.1", "localhost", "::1"):
        assert _run(ARGV + ["--host", host], monkeypatch)[0] == 0
    assert "WITHOUT client authentication" not in caplog.text


@pytest.mark.parametrize(
    "content, flags, message",
    [
        ("# only a comment\n\n", ["--api-keys-file", "{file}"], "{file}: holds no key"),
        ("ok-key\nsecret with space\n", ["--api-keys-file", "{file}"], "{file}, line 2"),
        (None, ["--api-keys-file", "{missing}"], "{missing}: No such file"),
        (None, ["--api-keys-env", "UNSET_KEYS_VAR"], "--api-keys-env UNSET_KEYS_VAR: "),
    ],
)
def test_key_flags_that_give_no_usable_key_fail_naming_the_source(
    monkeypatch, tmp_path, content, flags, message
):
    monkeypatch.delenv("UNSET_KEYS_VAR", raising=False)
    names = {"file": str(tmp_path / "keys.txt"), "missing": str(tmp_path / "nope.txt")}
    if content is not None:
        (tmp_path / "keys.txt").write_text(content)
    flags = [f.format(**names) for f in flags]
    with pytest.raises(SystemExit) as info:
        _run(ARGV + flags, monkeypatch)
    assert message.format(**names) in str(info.value)
    assert "secret" not in str(info.value)
