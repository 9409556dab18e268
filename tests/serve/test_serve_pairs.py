"""A model-aware router serving another pair: served names are looked up in its model table
(aliases included), and when they cannot be, the Controller and the server say which pair they
score (a logged warning, ``Controller.scored_pairs``, ``/health`` and a response header)."""

from __future__ import annotations

import logging

import httpx
import jax
import numpy as np
import pytest

from routellm_jax.api import Router
from routellm_jax.models import registry
from routellm_jax.serve import Controller
from routellm_jax.serve.pairs import scored_pair

MODELS = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "llama-2-70b-chat", "claude-2.1")
PROMPT = "Prove that there are infinitely many primes."


@pytest.fixture(scope="module")
def router() -> Router:
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(models=MODELS, featurizer="hashing:16", text_dim=16, dim=4)
    return Router.from_params(
        "mf",
        cfg,
        arch.init(jax.random.key(7), cfg),
        name="mf-pairs",
        strong=MODELS[0],
        weak=MODELS[1],
    )


def test_served_names_found_through_aliases_are_the_scored_pair(router, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        controller = Controller(
            routers=[router],
            strong_model="claude-2.1",
            weak_model="meta-llama/Llama-2-70b-chat-hf",  # an alias of llama-2-70b-chat
            strong_client=object(),
            weak_client=object(),
        )
    pair = controller.scored_pairs["mf-pairs"]
    assert pair.scored == ("claude-2.1", "llama-2-70b-chat") and not pair.warning
    assert not caplog.records
    decision = controller.route(PROMPT, model="router-mf-pairs-0.5")
    want = router.win_rate([PROMPT], strong="claude-2.1", weak="llama-2-70b-chat")[0]
    default = router.win_rate([PROMPT])[0]
    assert decision.win_rate == pytest.approx(float(want)) and want != pytest.approx(default)


def test_unmapped_served_names_warn_and_name_the_scored_pair(router, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        controller = Controller(
            routers=[router],
            strong_model="gpt-4o",
            weak_model="llama-3.1-8b-instruct",
            strong_client=object(),
            weak_client=object(),
        )
    pair = controller.scored_pairs["mf-pairs"]
    assert pair.scored == (MODELS[0], MODELS[1]) and pair.strong is None
    message = caplog.records[-1].getMessage()
    assert "gpt-4o and llama-3.1-8b-instruct are not in its model table" in message
    assert f"scores its default pair {MODELS[0]} vs {MODELS[1]}" in message
    assert "--router-strong" in message
    # router_strong/router_weak choose the pair explicitly: no warning.
    chosen = scored_pair(router, "gpt-4o", "llama-3.1-8b-instruct", "claude-2.1", MODELS[1])
    assert chosen.scored == ("claude-2.1", MODELS[1]) and not chosen.warning


def test_pair_specific_router_says_it_scores_only_its_pair() -> None:
    class PairOnly:
        name, models = "bert-like", []
        default_strong, default_weak = MODELS[0], MODELS[1]

    assert not scored_pair(PairOnly(), MODELS[0], MODELS[1]).warning
    warning = scored_pair(PairOnly(), "gpt-4o", "llama-3.1-8b-instruct").warning
    assert "scores only the pair it was trained on" in warning and MODELS[0] in warning


def test_server_reports_the_scored_pair(router, start_server) -> None:
    server = start_server(routers={"mf-pairs": router})  # serves big-model / small-model
    health = httpx.get(server.url + "/health").json()
    info = health["scored_pairs"]["mf-pairs"]
    assert info["scored"] == f"{MODELS[0]} vs {MODELS[1]}"
    assert "big-model and small-model are not in its model table" in info["warning"]
    reply = httpx.post(
        server.url + "/v1/route", json={"model": "router-mf-pairs-0.5", "prompt": PROMPT}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-routellm-scored-pair"] == f"{MODELS[0]} vs {MODELS[1]}"
    np.testing.assert_allclose(reply.json()["win_rate"], router.win_rate([PROMPT])[0], atol=1e-6)
