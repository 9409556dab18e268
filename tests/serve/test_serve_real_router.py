"""The server with a real ``routellm_jax.api`` router (mf architecture, hashing featurizer, exported
and loaded like a zoo entry): the protocol fits, and share-based routing goes through the card's
calibration table exactly as ``Router.route`` does."""

from __future__ import annotations

import httpx
import jax
import numpy as np
import openai
import pytest

from routellm_jax import api
from routellm_jax.models import registry
from routellm_jax.publish.export import ExportSpec, export_entry
from routellm_jax.serve.client import Controller
from routellm_jax.serve.routing import RouterLike
from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK

PROMPTS = [f"question {i}: " + "word " * (i % 11) + f"topic{i % 5}" for i in range(48)]


@pytest.fixture(scope="module")
def entry_dir(tmp_path_factory):
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(
        models=(PAPER_STRONG, PAPER_WEAK), featurizer="hashing:32", text_dim=32, dim=8
    )
    params = arch.init(jax.random.key(0), cfg)
    result = export_entry(
        "mf",
        cfg,
        params,
        tmp_path_factory.mktemp("zoo"),
        ExportSpec(
            name="mf-serve-test",
            calibration_prompts=PROMPTS,
            calibration_reference="48 synthetic serving-test prompts",
            description="serving test router",
            license="Apache-2.0",
            commit="0" * 40,
        ),
    )
    return result.entry_dir


@pytest.fixture(scope="module")
def real_router(entry_dir) -> api.Router:
    return api.load(entry_dir)


def test_real_router_behind_the_server(real_router, start_server):
    assert isinstance(real_router, RouterLike)
    # The calibrated threshold as it is (the online share controller would adapt it to this
    # batch's scores; tests/serve/test_share_controller.py covers that).
    server = start_server({real_router.name: real_router}, share_control=False)
    share = 0.3
    got = httpx.post(
        server.url + "/v1/route",
        json={"model": f"router-{real_router.name}@{share}", "prompt": PROMPTS},
        timeout=60,
    ).json()["data"]
    expected = real_router.route(PROMPTS, strong_share=share)
    assert [d["routed_to"] == "strong" for d in got] == expected.tolist()
    np.testing.assert_allclose(
        [d["win_rate"] for d in got], real_router.win_rate(PROMPTS), rtol=1e-6
    )
    assert got[0]["threshold"] == pytest.approx(real_router.threshold_for_share(share))
    assert 0 < expected.sum() < len(PROMPTS)


def test_controller_loads_a_router_by_path(entry_dir, real_router, fresh_upstreams):
    strong_up, weak_up = fresh_upstreams
    controller = Controller(
        routers=[str(entry_dir)],
        strong_model="big-model",
        weak_model="small-model",
        strong_client=openai.OpenAI(base_url=strong_up.base_url, api_key="k", max_retries=0),
        weak_client=openai.OpenAI(base_url=weak_up.base_url, api_key="k", max_retries=0),
    )
    assert list(controller.routers) == [real_router.name]
    expected = real_router.route(PROMPTS[:6], strong_share=0.5)
    models = [
        controller.chat.completions.create(
            model=f"router-{real_router.name}@0.5", messages=[{"role": "user", "content": p}]
        ).model
        for p in PROMPTS[:6]
    ]
    assert models == ["big-model" if s else "small-model" for s in expected]


def test_load_routers_passes_the_precision(entry_dir):
    from routellm_jax.serve.client import load_routers

    assert list(load_routers([str(entry_dir)], precision="float32")) == ["mf-serve-test"]
    # bf16 needs the fused MiniLM path; a hashing-featurizer router says so by name.
    with pytest.raises(api.RouterError, match="mf-serve-test.*needs an encoder inside"):
        load_routers([str(entry_dir)], precision="bfloat16")
