"""``routellm-jax route --models ... --prices ... --budget ...``: the chosen model and why, and the
flag and price-file errors (one line naming the flag, or the file and field; exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest

from routellm_jax import api
from routellm_jax.cli import main
from routellm_jax.eval.policy import Policy, read_prices
from routellm_jax.models import registry

MODELS = ("big", "mid", "small")


@pytest.fixture(scope="module")
def tiny_irt() -> api.Router:
    arch = registry.get_architecture("irt")
    cfg = arch.make_config(
        models=MODELS, featurizer="hashing:16", text_dim=16, hidden_dim=8, latent_dim=4
    )
    params = arch.init(jax.random.key(3), cfg)
    return api.Router.from_params("irt", cfg, params, name="irt-tiny", strong="big", weak="small")


@pytest.fixture()
def loaded(monkeypatch, tiny_irt) -> api.Router:
    monkeypatch.setattr(api, "load", lambda *a, **k: tiny_irt)
    return tiny_irt


@pytest.fixture()
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "big": {"input_per_1k": 10.0, "output_per_1k": 30.0},
                "mid": {"input_per_1k": 1.0, "output_per_1k": 2.0},
                "small": 0.05,
            }
        )
    )
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_route_among_three_models_says_which_and_why(loaded, prices, capsys) -> None:
    prompts = ["What is 2+2?", "Prove that there are infinitely many primes", "hello there"]
    argv = ["route", "--models", "big,mid,small", "--prices", str(prices), "--tradeoff", "0.3"]
    code, out, err = _run(argv + prompts, capsys)
    assert code == 0
    expected = loaded.choose_models(prompts, MODELS, read_prices(prices), Policy("tradeoff", 0.3))
    lines = out.splitlines()
    assert len(lines) == 3
    for line, d in zip(lines, expected):
        model, quality, cost, why, _ = line.split("\t")
        assert model == d["model"] and quality == f"quality {d['quality']:.4f}"
        assert cost == f"cost {d['cost']:.6g}" and why == d["reason"]
    assert "tradeoff lambda=0.3 among 3 models" in err
    code, out, _ = _run(argv + ["--json"] + prompts, capsys)
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["model"] for r in rows] == [d["model"] for d in expected]
    assert set(rows[0]["candidates"]) == set(MODELS) and rows[0]["within_budget"] is True


def test_budget_decides_between_affordable_models(loaded, prices, capsys) -> None:
    argv = ["route", "--models", "big,mid,small", "--prices", str(prices), "--json"]
    # 0.05 per call affords only "small"; a budget of 0 affords nothing (flagged, cheapest).
    _, out, _ = _run(argv + ["--budget", "0.06", "hi"], capsys)
    row = json.loads(out)
    assert row["model"] == "small" and row["within_budget"]
    _, out, _ = _run(argv + ["--budget", "0", "hi"], capsys)
    row = json.loads(out)
    assert row["model"] == "small" and not row["within_budget"]
    assert "no candidate costs at most 0" in row["reason"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "1", "hi"], "--budget needs --models"),
        (["--models", "big,mid", "hi"], "--models needs a policy"),
        (["--models", "big", "--budget", "1", "hi"], "at least two"),
        (["--models", "big,mid", "--budget", "1", "hi"], "--models needs --prices"),
        (["--models", "big,mid", "--budget", "1", "--strong-share", "0.3", "hi"], "for pairs"),
    ],
)
def test_flag_errors_name_the_flag(extra, message, loaded, capsys) -> None:
    code, _, err = _run(["route", *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_negative_budget_is_refused_by_the_parser(loaded, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["route", "--models", "big,mid", "--budget", "-1", "hi"])
    assert exit_.value.code == 2 and "--budget" in capsys.readouterr().err


def test_price_file_errors_name_file_and_field(loaded, tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.json"
    argv = ["route", "--models", "big,mid,small", "--prices", str(path), "--budget", "1", "hi"]
    path.write_text(json.dumps({"big": 1.0, "mid": {"input_per_1k": "two"}, "small": 0.1}))
    code, _, err = _run(argv, capsys)
    assert code == 2 and f"{path}: mid.input_per_1k: must be a number" in err
    path.write_text(json.dumps({"big": 1.0, "mid": 0.5}))
    code, _, err = _run(argv, capsys)
    assert code == 2 and f"{path}: no price for model(s) ['small']" in err
    path.write_text(json.dumps({"big": 1.0, "mid": 0.5, "smal": 0.1}))
    code, _, err = _run(
        ["route", "--models", "big,mid,smal", "--prices", str(path), "--budget", "1", "hi"], capsys
    )
    assert code == 2 and "unknown model 'smal'; closest: ['small']" in err
