"""mf router: learns a prompt-dependent preference, noise only in training, pair symmetry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData
from routellm_jax.models import mf
from routellm_jax.models.registry import get_architecture

MODELS = ("model-a", "model-b", "model-c")
TEXT_DIM = 16


def _cluster_data(tmp_path, n_per_cluster=120, seed=0):
    """Two prompt clusters: model-a beats model-b near cluster 1, loses near cluster 2.

    Embeddings are written to a precomputed table, so the test also runs the precomputed path.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, TEXT_DIM))
    prompts, vectors, rows = [], [], []
    for cluster in (0, 1):
        for i in range(n_per_cluster):
            prompt = f"cluster{cluster}-prompt{i}"
            vec = centres[cluster] + 0.3 * rng.normal(size=TEXT_DIM)
            prompts.append(prompt)
            vectors.append(vec / np.linalg.norm(vec))
            a_wins = rng.random() < (0.9 if cluster == 0 else 0.1)
            pair = ("model-a", "model-b") if rng.random() < 0.5 else ("model-b", "model-a")
            outcome = "a" if (pair[0] == "model-a") == a_wins else "b"
            rows.append(Comparison(prompt, pair[0], pair[1], outcome))
            rows.append(Comparison(prompt, "model-c", "model-b", "tie"))  # dropped: ties
    path = tmp_path / "emb.npz"
    np.savez(path, prompts=np.array(prompts), embeddings=np.array(vectors, np.float32))
    return TrainingData.of(ComparisonTable.from_records(rows)), prompts, path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data, prompts, path = _cluster_data(tmp_path_factory.mktemp("mf"))
    config = mf.MFConfig(
        models=MODELS, featurizer=f"precomputed:{path}", text_dim=TEXT_DIM, dim=16, alpha=0.1
    )
    featurizer = mf.make_featurizer(config)
    ex = mf.examples_from_records(data, featurizer, config)
    assert len(ex["label"]) == 240  # the 240 ties are dropped (reference MF behaviour)
    params = mf.init(jax.random.key(0), config)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, rng):
        (value, _), grads = jax.value_and_grad(mf.loss, has_aux=True)(params, batch, rng, config)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    key = jax.random.key(1)
    n = len(ex["label"])
    losses = []
    for _ in range(300):
        key, k_batch, k_noise = jax.random.split(key, 3)
        idx = np.asarray(jax.random.randint(k_batch, (64,), 0, n))
        batch = {k: v[idx] for k, v in ex.items()}
        params, state, value = step(params, state, batch, k_noise)
        losses.append(float(value))
    return config, featurizer, params, prompts, losses


def test_training_separates_clusters(trained):
    config, featurizer, params, prompts, losses = trained
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 0.2
    inputs = mf.prompt_inputs(prompts, featurizer, config)
    p = np.asarray(mf.win_rate(params, inputs, 0, 1, config))
    assert p.shape == (len(prompts),)
    assert np.all((p >= 0) & (p <= 1))
    c1, c2 = p[: len(prompts) // 2], p[len(prompts) // 2 :]
    assert c1.mean() > 0.75 and c2.mean() < 0.25
    assert np.mean(c1 > 0.5) > 0.95 and np.mean(c2 < 0.5) > 0.95


def test_swap_gives_complement_and_array_pairs(trained):
    config, featurizer, params, prompts, _ = trained
    inputs = mf.prompt_inputs(prompts[:10], featurizer, config)
    p = np.asarray(mf.win_rate(params, inputs, 0, 1, config))
    q = np.asarray(mf.win_rate(params, inputs, 1, 0, config))
    np.testing.assert_allclose(p, 1 - q, atol=1e-6)
    np.testing.assert_allclose(mf.win_rate(params, inputs, 2, 2, config), 0.5)
    strong = np.array([0] * 5 + [1] * 5)
    weak = 1 - strong
    r = np.asarray(mf.win_rate(params, inputs, strong, weak, config))
    np.testing.assert_allclose(r, np.where(strong == 0, p, q), atol=1e-6)
    with pytest.raises(IndexError, match="strong index 3"):
        mf.win_rate(params, inputs, 3, 0, config)


def test_noise_only_in_training(trained):
    config, featurizer, params, prompts, _ = trained
    batch = {
        "embedding": jnp.asarray(featurizer.embed(prompts[:8])),
        "model_a": jnp.zeros(8, jnp.int32),
        "model_b": jnp.ones(8, jnp.int32),
        "label": jnp.ones(8),
    }
    loss = jax.jit(mf.loss, static_argnames="config")
    l1 = loss(params, batch, jax.random.key(1), config)[0]
    l2 = loss(params, batch, jax.random.key(2), config)[0]
    assert abs(float(l1) - float(l2)) > 1e-6  # alpha > 0: the rng matters in the loss
    quiet = mf.MFConfig(**{**config.__dict__, "alpha": 0.0})
    q1 = loss(params, batch, jax.random.key(1), quiet)[0]
    q2 = loss(params, batch, jax.random.key(2), quiet)[0]
    assert float(q1) == float(q2)
    # win_rate takes no rng and is deterministic: it equals the noise-free loss's prediction.
    p = mf.win_rate(params, {"embedding": batch["embedding"]}, 0, 1, config)
    np.testing.assert_allclose(-jnp.mean(jnp.log(p)), q1, rtol=1e-5)


def test_reference_structure_and_param_count():
    config = mf.MFConfig(models=tuple(f"m{i}" for i in range(64)), text_dim=1536, dim=128)
    params = mf.init(jax.random.key(0), config)
    shapes = jax.tree.map(lambda x: x.shape, params)
    # Reference MFModel: P [64, 128], text_proj Linear(1536, 128, bias=False), classifier
    # Linear(128, 1, bias=False).
    assert shapes == {
        "model_embed": (64, 128),
        "text_proj": {"kernel": (1536, 128)},
        "classifier": {"kernel": (128, 1)},
    }
    # Model embeddings are L2-normalised: scaling a model's raw vector changes nothing.
    emb = jax.random.normal(jax.random.key(1), (4, 1536))
    scaled = {**params, "model_embed": params["model_embed"].at[3].multiply(7.0)}
    np.testing.assert_allclose(
        mf.model_scores(params, emb, jnp.arange(5), config),
        mf.model_scores(scaled, emb, jnp.arange(5), config),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="text_dim"):
        mf.make_featurizer(mf.MFConfig(featurizer="hashing:8", text_dim=16))
    with pytest.raises(ValueError, match="use_proj"):
        mf.MFConfig(use_proj=False, text_dim=384, dim=128)
    assert get_architecture("mf") is mf.ARCHITECTURE
