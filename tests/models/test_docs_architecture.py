"""The architecture in docs/adding_an_architecture.md is real code: executed from the page,
registered, checked against the registry contract, trained by the trainer and loaded back through
``routellm_jax.load``. A doc edit that breaks the example fails here."""

from __future__ import annotations

import re
import sys
import types

import jax
import numpy as np
import pytest

from routellm_jax import paths
from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData
from routellm_jax.models import registry

DOC = paths.repo_root() / "docs" / "adding_an_architecture.md"
MODELS = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "llama-2-70b-chat")


def _doc_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, f"{DOC}: no python code block"
    module = types.ModuleType("doc_logit")
    # dataclasses looks the defining module up in sys.modules while building the config class.
    sys.modules[module.__name__] = module
    try:
        exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module


def _battles(n: int = 96) -> TrainingData:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        hard = i % 2 == 0  # "proof" prompts: the strong model wins; "chat" prompts: the weak one
        prompt = f"{'proof theorem lemma' if hard else 'chat hello story'} number {i}"
        winner = "a" if hard == (rng.random() < 0.9) else "b"
        rows.append(Comparison(prompt, MODELS[0], MODELS[rng.integers(1, 3)], winner))
    return TrainingData.of(ComparisonTable.from_records(rows))


@pytest.fixture()
def logit_arch():
    module = _doc_module()
    arch = module.register_logit()
    try:
        yield module, arch
    finally:
        registry.unregister(arch.name)


def test_doc_architecture_follows_the_contract(logit_arch) -> None:
    _, arch = logit_arch
    assert registry.get_architecture("logit") is arch
    config = arch.make_config(featurizer="hashing:32", models=MODELS)
    featurizer = arch.make_featurizer(config)
    params = arch.init(jax.random.key(0), config)
    examples = arch.examples_from_records(_battles(), featurizer, config)
    assert len({len(v) for v in examples.values()}) == 1
    batch = {k: v[:16] for k, v in examples.items()}
    value, metrics = jax.jit(lambda p, b, k: arch.loss(p, b, k, config))(
        params, batch, jax.random.key(1)
    )
    assert np.isfinite(float(value)) and 0.0 <= float(metrics["accuracy"]) <= 1.0
    inputs = arch.prompt_inputs(["prove it", "hello"], featurizer, config)
    # Its embedding_key declaration holds, so with a MiniLM featurizer it runs fused.
    assert set(inputs) == {arch.embedding_key}
    np.testing.assert_array_equal(inputs["embedding"], featurizer.embed(["prove it", "hello"]))
    p = np.asarray(
        jax.jit(lambda p, x, s, w: arch.win_rate(p, x, s, w, config))(params, inputs, 0, 1)
    )
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))


def test_doc_architecture_trains_exports_and_loads(logit_arch, tmp_path) -> None:
    import routellm_jax
    from routellm_jax.data.prepare import save_training_data
    from routellm_jax.publish.export import ExportSpec, export_entry
    from routellm_jax.training.checkpoints import load_params
    from routellm_jax.training.config import default_config
    from routellm_jax.training.train import train

    c = default_config()
    c.arch = "logit"
    c.arch_config = {"featurizer": "hashing:32"}
    c.data.records = str(save_training_data(_battles(), tmp_path / "records"))
    c.data.holdout_fraction = 0.125
    c.batch_size, c.steps, c.log_every = 16, 30, 10
    c.eval.every, c.eval.batch_size, c.checkpoint.every = 30, 16, 30
    c.optimizer.lr, c.optimizer.warmup_steps = 0.1, 1
    train(c, tmp_path / "run", progress=False)
    name, config, params = load_params(tmp_path / "run")
    res = export_entry(
        name,
        config,
        params,
        tmp_path / "zoo",
        ExportSpec(
            name="logit-hashing",
            calibration_prompts=[f"prompt {i} {'proof' if i % 3 else 'chat'}" for i in range(30)],
            calibration_reference="30 synthetic prompts",
            encoder=None,
            commit="test",
        ),
    )
    router = routellm_jax.load(res.archive)
    rates = router.win_rate(["proof theorem lemma number 1000", "chat hello story number 1001"])
    assert rates[0] > 0.5 > rates[1]  # it learned which prompts the strong model wins
