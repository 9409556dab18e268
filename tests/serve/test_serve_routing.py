"""Model-name parsing and prompt extraction shared by the server and the local client."""

from __future__ import annotations

import pytest

from routellm_jax.serve.routing import RouteSpec, RoutingError, parse_model, routing_prompt
from routellm_jax.serve.testing import HashRouter

ROUTERS = ["mf", "mf-minilm", "bert"]


@pytest.mark.parametrize(
    "model, spec",
    [
        ("router-mf-minilm-0.11593", RouteSpec("mf-minilm", threshold=0.11593)),
        ("router-mf-0.5", RouteSpec("mf", threshold=0.5)),
        ("router-mf-minilm@0.3", RouteSpec("mf-minilm", strong_share=0.3)),
        ("router-bert-1", RouteSpec("bert", threshold=1.0)),
        ("router-bert-0", RouteSpec("bert", threshold=0.0)),
        ("router-mf@1e-1", RouteSpec("mf", strong_share=0.1)),
    ],
)
def test_parse_model_accepts_thresholds_and_shares(model, spec):
    assert parse_model(model, ROUTERS) == spec


@pytest.mark.parametrize(
    "model, reason",
    [
        ("router-nope-0.5", "unknown router"),
        ("gpt-4o", "not a router model"),
        ("router-mf-minilm", "no threshold"),
        ("router-mf-minilm-1.5", "out of range"),
        ("router-mf-minilm--0.1", "out of range"),
        ("router-mf-minilm-nan", "out of range"),
        ("router-mf-minilm-abc", "not a number"),
        ("router-mf-minilm@2", "out of range"),
        ("", "non-empty string"),
        (None, "non-empty string"),
    ],
)
def test_parse_model_rejects_with_reason(model, reason):
    with pytest.raises(RoutingError, match=reason) as info:
        parse_model(model, ROUTERS)
    assert info.value.param == "model"


def test_share_resolves_through_calibration():
    router = HashRouter("mf")
    threshold = RouteSpec("mf", strong_share=0.3).resolve_threshold(router)
    assert threshold == router.threshold_for_share(0.3)
    prompts = [f"p{i}" for i in range(4000)]
    share = float((router.win_rate(prompts) >= threshold).mean())
    assert abs(share - 0.3) < 0.04


def test_share_without_calibration_is_a_routing_error():
    class NoTable(HashRouter):
        def threshold_for_share(self, share):
            raise KeyError("card has no calibration table")

    with pytest.raises(RoutingError, match="calibration table"):
        RouteSpec("x", strong_share=0.3).resolve_threshold(NoTable("x"))


def test_routing_prompt_last_user_and_conversation():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
        {"role": "tool", "content": "tool output"},
    ]
    assert routing_prompt(messages, "last") == "second"
    assert routing_prompt(messages, "conversation") == (
        "be brief\n\nfirst\n\nanswer\n\nsecond\n\ntool output"
    )


@pytest.mark.parametrize(
    "messages, reason",
    [
        (None, "non-empty list"),
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        ([{"content": "x"}], r"messages\[0\].role"),
        ([{"role": "user", "content": 3}], r"messages\[0\].content"),
        ([{"role": "system", "content": "x"}], "no message with role 'user'"),
        ([{"role": "user", "content": "   "}], "no text"),
        ([{"role": "user", "content": [{"text": "x"}]}], r"content\[0\]"),
    ],
)
def test_routing_prompt_rejects_bad_messages(messages, reason):
    with pytest.raises(RoutingError, match=reason):
        routing_prompt(messages, "last")
