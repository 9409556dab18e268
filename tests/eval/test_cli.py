"""``routellm-jax eval`` on a small outcome table written here (no shared data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import routellm_jax
from routellm_jax.cli import main
from routellm_jax.data.records import Outcome, OutcomeTable


@pytest.fixture()
def table_path(tmp_path):
    rows = []
    for i in range(40):
        p = f"prompt {i} " + "x" * i
        rows += [Outcome(p, "big", float(i % 3 != 0)), Outcome(p, "small", float(i % 2 == 0))]
    path = tmp_path / "toy.parquet"
    OutcomeTable.from_records(rows).save(path)
    return path


class _FakeRouter:
    models = ("big", "small")

    def __init__(self):
        self.calls = []

    def win_rate(self, prompts, strong=None, weak=None):
        self.calls.append((len(prompts), strong, weak))
        return np.linspace(0, 1, len(prompts))


def test_zoo_router_branch_gets_the_benchmark_pair(table_path, monkeypatch, capsys):
    fake = _FakeRouter()
    loaded = []
    monkeypatch.setattr(
        routellm_jax, "load", lambda name: loaded.append(name) or fake, raising=False
    )
    code = main(
        [
            "eval",
            "--benchmark",
            str(table_path),
            "--strong",
            "big",
            "--weak",
            "small",
            "--router",
            "my-entry",
            "--random-seeds",
            "2",
            "--json",
        ]
    )
    assert code == 0 and loaded == ["my-entry"]
    assert fake.calls == [(40, "big", "small")]
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["results"]][0] == "my-entry"
    assert data["benchmark"]["n"] == 40
    # no prices for these models: cost columns empty, and the reason is said
    assert data["results"][0]["cost"] is None


class _FrozenEncoder:
    """A featurizer with a frozen encoder (what a MiniLM router has), counting real embeddings."""

    spec, dim, embedder = "fake-frozen", 3, object()

    def __init__(self):
        self.cache, self.embedded = {}, 0

    def embed(self, prompts, batch_size=64):
        for p in prompts:
            if p not in self.cache:
                self.embedded += 1
                self.cache[p] = np.ones(3, np.float32)
        return np.stack([self.cache[p] for p in prompts])


def test_zoo_router_embeds_into_the_shared_store(table_path, tmp_path, monkeypatch, capsys):
    """A frozen-encoder router's benchmark prompts go into the machine's embedding store, and the
    second evaluation embeds none of them again."""
    from routellm_jax.models import embedding_store as S

    monkeypatch.setattr(S, "store_path", lambda spec: tmp_path / "store" / f"{spec}.npz")
    loads = []

    def fake_load(name, **kwargs):
        router = _FakeRouter()
        router.featurizer = kwargs.get("featurizer") or _FrozenEncoder()
        loads.append((name, kwargs.get("fuse_encoder")))
        return router

    monkeypatch.setattr(routellm_jax, "load", fake_load, raising=False)
    argv = ["eval", "--benchmark", str(table_path), "--strong", "big", "--weak", "small"]
    argv += ["--router", "my-entry", "--random-seeds", "1", "--json"]
    assert main(argv) == 0
    texts, vectors = S.read_store(tmp_path / "store" / "fake-frozen.npz")
    assert len(texts) == 40 and vectors.shape == (40, 3)
    assert loads == [("my-entry", None), ("my-entry", False)]  # scored on the stored vectors
    fresh = _FrozenEncoder()
    monkeypatch.setattr(
        routellm_jax,
        "load",
        lambda name, **kw: fake_load(
            name,
            featurizer=kw.get("featurizer") or fresh,
            **{k: v for k, v in kw.items() if k != "featurizer"},
        ),
        raising=False,
    )
    assert main(argv) == 0 and fresh.embedded == 0
    capsys.readouterr()


def test_markdown_with_prices_and_num_thresholds(table_path, tmp_path, capsys):
    code = main(
        [
            "eval",
            "--benchmark",
            str(table_path),
            "--strong",
            "big",
            "--weak",
            "small",
            "--router",
            "oracle",
            "--random-seeds",
            "2",
            "--num-thresholds",
            "4",
            "--price",
            "big=10,30",
            "--price",
            "small=1,1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| oracle |" in out and "| random (expected) | 0.5000 |" in out
    data = json.loads((tmp_path / "o" / "toy.json").read_text())
    oracle = data["results"][-1]
    assert len(oracle["curve"]["strong_share"]) == 5
    assert oracle["cost"]["strong_request_cost_usd"] == pytest.approx((95 * 10 + 264 * 30) / 1e6)


def test_bad_arguments(table_path, capsys):
    assert main(["eval", "--benchmark", str(table_path), "--strong", "big", "--weak", "nope"]) == 2
    assert "weak model 'nope' not in the outcome table" in capsys.readouterr().err
    # A bad flag value is argparse's usage error: exit code 2 before any work.
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--benchmark", str(table_path), "--num-thresholds", "0"])
    assert exc.value.code == 2
    assert "--num-thresholds: must be at least 1" in capsys.readouterr().err
