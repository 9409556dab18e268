"""The local Controller: routes in-process and calls openai clients pointed at fake upstreams."""

from __future__ import annotations

import asyncio

import numpy as np
import openai
import pytest

from routellm_jax.serve.client import Controller
from routellm_jax.serve.routing import RoutingError
from routellm_jax.serve.testing import HashRouter


@pytest.fixture
def controller_for(fresh_upstreams):
    strong_up, weak_up = fresh_upstreams

    def make(router=None, async_clients=False, **kw) -> Controller:
        cls = openai.AsyncOpenAI if async_clients else openai.OpenAI
        return Controller(
            routers=[router or HashRouter("mf-minilm")],
            strong_model="big-model",
            weak_model="small-model",
            strong_client=cls(base_url=strong_up.base_url, api_key="k1", max_retries=0),
            weak_client=cls(base_url=weak_up.base_url, api_key="k2", max_retries=0),
            **kw,
        )

    return make


def _split(router: HashRouter, threshold: float) -> tuple[str, str]:
    prompts = [f"question {i}" for i in range(50)]
    decisions = router.route(prompts, threshold=threshold)
    return prompts[int(np.argmax(decisions))], prompts[int(np.argmin(decisions))]


def test_create_routes_both_ways_like_openai(controller_for, fresh_upstreams):
    router = HashRouter("mf-minilm")
    controller = controller_for(router)
    to_strong, to_weak = _split(router, 0.116)
    for prompt, model in ((to_strong, "big-model"), (to_weak, "small-model")):
        reply = controller.chat.completions.create(
            model="router-mf-minilm-0.116",
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
        )
        assert reply.model == model  # the upstream reported "<model>-upstream"
        assert reply.choices[0].message.content == f"{model} answers: {prompt}"
    assert fresh_upstreams[0].requests[-1][0]["temperature"] == 0.0
    assert dict(controller.model_counts["mf-minilm"]) == {"big-model": 1, "small-model": 1}


def test_stream_and_share_and_explicit_threshold(controller_for):
    router = HashRouter("mf-minilm")
    # The calibrated threshold as it is (test_serve_n_model.py covers the share controller).
    controller = controller_for(router, share_control=False)
    to_strong, _ = _split(router, router.threshold_for_share(0.5))
    with controller.chat.completions.create(
        model="router-mf-minilm@0.5", messages=[{"role": "user", "content": to_strong}], stream=True
    ) as stream:
        chunks = list(stream)
    assert {c.model for c in chunks} == {"big-model"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks).endswith(to_strong)
    # RouteLLM's keyword form.
    reply = controller.chat.completions.create(
        router="mf-minilm", threshold=1.0, messages=[{"role": "user", "content": to_strong}]
    )
    assert reply.model == "small-model"
    decision = controller.route(to_strong, model="router-mf-minilm@0.5")
    assert decision.role == "strong" and decision.threshold == router.threshold_for_share(0.5)


def test_errors_and_fallback(controller_for, fresh_upstreams):
    strong_up, weak_up = fresh_upstreams
    controller = controller_for()
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(RoutingError, match="unknown router"):
        controller.chat.completions.create(model="router-nope-0.5", messages=messages)
    with pytest.raises(RoutingError, match="out of range"):
        controller.chat.completions.create(model="router-mf-minilm-2", messages=messages)
    with pytest.raises(RoutingError, match="exactly one"):
        controller.chat.completions.create(router="mf-minilm", messages=messages)

    strong_up.mode = "error"
    with pytest.raises(openai.InternalServerError):
        controller.chat.completions.create(model="router-mf-minilm-0", messages=messages)
    assert not weak_up.requests
    falling_back = controller_for(fallback="other")
    reply = falling_back.chat.completions.create(model="router-mf-minilm-0", messages=messages)
    assert reply.model == "small-model" and len(weak_up.requests) == 1


def test_async_create_with_async_clients(controller_for):
    router = HashRouter("mf-minilm")
    controller = controller_for(router, async_clients=True)
    prompts = [f"async {i}" for i in range(6)]

    async def main():
        replies = await asyncio.gather(
            *(
                controller.chat.completions.acreate(
                    model="router-mf-minilm-0.5", messages=[{"role": "user", "content": p}]
                )
                for p in prompts
            )
        )
        stream = await controller.chat.completions.acreate(
            model="router-mf-minilm-0", messages=[{"role": "user", "content": "s"}], stream=True
        )
        chunks = [c async for c in stream]
        return replies, chunks

    replies, chunks = asyncio.run(main())
    expected = router.route(prompts, threshold=0.5)
    assert [r.model for r in replies] == ["big-model" if s else "small-model" for s in expected]
    assert {c.model for c in chunks} == {"big-model"}


def test_text_that_is_not_unicode_is_refused_before_routing(controller_for, fresh_upstreams):
    """An unpaired surrogate is a RoutingError naming its place; the router never sees it (a
    tokenizer would raise TypeError) and no upstream is called."""
    router = HashRouter("mf-minilm")
    controller = controller_for(router)
    messages = [{"role": "system", "content": "ok"}, {"role": "user", "content": "hi \ud800"}]
    with pytest.raises(RoutingError, match=r"messages\[1\]\.content: not valid Unicode") as info:
        controller.chat.completions.create(model="router-mf-minilm-0.5", messages=messages)
    assert info.value.param == "messages[1].content"
    with pytest.raises(RoutingError, match="^messages: not valid Unicode"):
        controller.route("\udfff", model="router-mf-minilm-0.5")
    with pytest.raises(RoutingError, match=r"stop\[0\]: not valid Unicode"):
        controller.chat.completions.create(
            model="router-mf-minilm-0.5",
            messages=[{"role": "user", "content": "hi"}],
            stop=["\ud800"],
        )
    with pytest.raises(RoutingError, match=r"messages\[0\]\.content"):
        asyncio.run(
            controller.chat.completions.acreate(
                model="router-mf-minilm-0.5", messages=[{"role": "user", "content": "\ud800"}]
            )
        )
    assert not router.batch_sizes
    assert not fresh_upstreams[0].requests and not fresh_upstreams[1].requests
