"""The inference API on real (mf, hashing featurizer) and test-registered architectures: load from
an entry folder / tar / zoo name, win rates, routing by threshold and by share, recalibration,
decisions, bucketing without recompiles, verification before restore."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax import api
from routellm_jax.models import registry
from routellm_jax.publish.export import ExportSpec, export_entry
from routellm_jax.publish.pack import ExportResult, update_manifest
from routellm_jax.zoo import hub
from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK
from routellm_jax.zoo.entry import read_entry

MODELS = (PAPER_STRONG, PAPER_WEAK, "llama-2-7b-chat")
PROMPTS = [f"question {i}: " + " ".join(["word"] * (i % 13)) + f" topic{i % 7}" for i in range(64)]


@pytest.fixture(scope="module")
def mf_entry(tmp_path_factory) -> ExportResult:
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(models=MODELS, featurizer="hashing:32", text_dim=32, dim=8)
    params = arch.init(jax.random.key(0), cfg)
    out = tmp_path_factory.mktemp("zoo")
    return export_entry(
        "mf",
        cfg,
        params,
        out,
        ExportSpec(
            name="mf-test",
            calibration_prompts=PROMPTS,
            calibration_reference="64 synthetic test prompts",
            description="test router",
            license="Apache-2.0",
            commit="0" * 40,
        ),
    )


@pytest.fixture(scope="module")
def router(mf_entry) -> api.Router:
    return api.load(mf_entry.entry_dir)


def test_win_rate_matches_architecture(router, mf_entry) -> None:
    arch = registry.get_architecture("mf")
    card, params = read_entry(mf_entry.entry_dir)
    inputs = arch.prompt_inputs(PROMPTS[:5], router.featurizer, router.config)
    want = np.asarray(arch.win_rate(params, inputs, 0, 1, router.config))
    got = router.win_rate(PROMPTS[:5])
    assert got.shape == (5,) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Another pair from the model table; swapping the pair gives 1 - p (mf is antisymmetric).
    np.testing.assert_allclose(
        router.win_rate(PROMPTS[:5], strong=PAPER_WEAK, weak=PAPER_STRONG), 1 - got, atol=1e-6
    )
    assert router.win_rate([]).shape == (0,)
    with pytest.raises(api.RouterError, match="'gpt-5' is not in its model table"):
        router.win_rate(["x"], strong="gpt-5")
    with pytest.raises(TypeError, match="sequence of prompts"):
        router.win_rate("just one string")


def test_buckets_never_recompile_when_warm(router) -> None:
    sizes = (1, 2, 5, 7, 8, 30, 33, 100, 128)
    for n in sizes:
        router.win_rate((PROMPTS * 2)[:n])
    compiles = router.stats["compiles"]
    # Vector inputs (hashing features): at most one compiled shape per row bucket.
    assert 0 < compiles <= len([b for b in router.batch_buckets if b <= 128])
    for n in sizes:  # warm: the same sizes again compile nothing ...
        router.win_rate((PROMPTS * 2)[:n])
    router.win_rate(PROMPTS[:6], strong="llama-2-7b-chat")  # ... nor does a new pair
    assert router.stats["compiles"] == compiles
    stats = router.stats
    assert stats["compile_s"] > 0 and stats["steady_s"] > 0 and stats["prompts"] > 0
    # Not fused, and it says why: the featurizer has no encoder to run on the device.
    assert stats["path"] == "vectors" and "'hashing:32' has no encoder" in stats["path_reason"]


def test_route_threshold_and_share(router, mf_entry) -> None:
    rates = router.win_rate(PROMPTS)
    t = float(np.median(rates))
    np.testing.assert_array_equal(router.route(PROMPTS, threshold=t), rates >= t)
    # The card was calibrated on PROMPTS: a share of s sends round(s * 64) prompts strong.
    for share in (0.05, 0.25, 0.5, 0.95):
        assert router.route(PROMPTS, strong_share=share).sum() == round(share * 64)
    assert router.route(PROMPTS, strong_share=0.0).sum() == 0
    assert router.route(PROMPTS, strong_share=1.0).all()
    # Between table rows the threshold is interpolated (monotone).
    ts = [router.threshold_for_share(s) for s in np.linspace(0, 1, 21)]
    assert all(a >= b for a, b in zip(ts, ts[1:]))
    assert router.threshold_for_share(0.125) <= router.threshold_for_share(0.10)
    with pytest.raises(ValueError, match="exactly one"):
        router.route(PROMPTS, threshold=0.5, strong_share=0.5)
    with pytest.raises(api.RouterError, match="no calibration table"):
        router.route(PROMPTS, strong_share=0.5, strong="llama-2-7b-chat")


def test_decide_and_calibrate(mf_entry) -> None:
    r = api.load(mf_entry.entry_dir)
    decisions = r.decide(PROMPTS[:4], threshold=0.5)
    assert [d["model"] for d in decisions] == [
        PAPER_STRONG if d["win_rate"] >= 0.5 else PAPER_WEAK for d in decisions
    ]
    assert set(decisions[0]) == {"win_rate", "strong", "model", "threshold"}
    traffic = PROMPTS[:20]
    t = r.calibrate(traffic, 0.3)
    assert (r.win_rate(traffic) >= t).sum() == 6
    assert r.route(traffic, strong_share=0.3).sum() == 6  # the table now comes from traffic
    assert r.card.calibration.n_prompts == 20
    t2 = r.calibrate(traffic, 0.5, strong="llama-2-7b-chat", weak=PAPER_WEAK)
    assert (r.win_rate(traffic, "llama-2-7b-chat", PAPER_WEAK) >= t2).sum() == 10
    assert r.route(traffic, strong_share=0.5, strong="llama-2-7b-chat").sum() == 10


def test_load_from_tar_and_zoo_name(mf_entry, tmp_path: Path) -> None:
    want = api.load(mf_entry.entry_dir).win_rate(PROMPTS[:4])
    from_tar = api.load(mf_entry.archive, cache_dir=tmp_path / "c1")
    np.testing.assert_allclose(from_tar.win_rate(PROMPTS[:4]), want)
    manifest = mf_entry.archive.parent / "manifest.json"
    update_manifest(manifest, mf_entry)
    by_name = api.load("mf-test", manifest=manifest, cache_dir=tmp_path / "c2")
    assert by_name.name == "mf-test" and by_name.card.license == "Apache-2.0"
    np.testing.assert_allclose(by_name.win_rate(PROMPTS[:4]), want)
    with pytest.raises(hub.EntryNotFound, match="'mf-nope'"):
        api.load("mf-nope", manifest=manifest, cache_dir=tmp_path / "c2")


def test_tampered_checkpoint_is_refused(mf_entry, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "entry"
    shutil.copytree(mf_entry.entry_dir, copy)
    blob = max(
        (p for p in (copy / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(hub.IntegrityError, match=f"{blob.name}: sha256"):
        api.load(copy)


# ---- a user architecture with token inputs, registered at run time ------------------------


@dataclasses.dataclass(frozen=True)
class TokConfig:
    vocab: int = 101
    dim: int = 8
    max_len: int = 40
    models: tuple[str, ...] = ()  # pair-specific


class _Tok:
    def __init__(self, config: TokConfig) -> None:
        self.config = config

    def __call__(self, prompts):
        ids = [
            [1 + (sum(map(ord, w)) % (self.config.vocab - 1)) for w in p.split()][
                : self.config.max_len
            ]
            for p in prompts
        ]
        length = max(1, max(len(i) for i in ids))  # padded to the longest, like HF tokenizers
        out = np.zeros((len(ids), length), np.int32)
        for r, row in enumerate(ids):
            out[r, : len(row)] = row
        return {"input_ids": out, "attention_mask": (out > 0).astype(np.int32)}


def _tok_init(rng, config):
    k1, k2 = jax.random.split(rng)
    return {
        "embed": jax.random.normal(k1, (config.vocab, config.dim)),
        "w": jax.random.normal(k2, (config.dim,)),
    }


def _tok_win_rate(params, inputs, strong, weak, config):
    mask = inputs["attention_mask"].astype(jnp.float32)
    e = params["embed"][inputs["input_ids"]] * mask[..., None]
    pooled = e.sum(1) / jnp.maximum(mask.sum(1, keepdims=True), 1.0)
    return jax.nn.sigmoid(pooled @ params["w"])


TOK_ARCH = registry.Architecture(
    name="tok-test",
    config_cls=TokConfig,
    init=_tok_init,
    make_featurizer=_Tok,
    examples_from_records=lambda data, f, c: {},
    loss=lambda p, b, r, c: (jnp.zeros(()), {}),
    prompt_inputs=lambda prompts, featurizer, config: featurizer(prompts),
    win_rate=_tok_win_rate,
    sequence_keys=("input_ids", "attention_mask"),
    mask_key="attention_mask",
)


@pytest.fixture()
def tok_arch():
    registry.register(TOK_ARCH, overwrite=True)
    yield TOK_ARCH
    registry.unregister(TOK_ARCH.name)


def test_user_architecture_with_sequence_buckets(tok_arch, tmp_path: Path) -> None:
    cfg = TokConfig()
    params = _tok_init(jax.random.key(1), cfg)
    res = export_entry(
        "tok-test",
        cfg,
        params,
        tmp_path,
        ExportSpec(
            name="tok",
            calibration_prompts=PROMPTS,
            calibration_reference="synthetic",
            strong="big",
            weak="small",
            commit="",
        ),
    )
    card = json.loads((res.entry_dir / "card.json").read_text())
    assert card["config"] == {"vocab": 101, "dim": 8, "max_len": 40, "models": []}
    assert card["encoder"] is None and card["calibration"]["strong"] == "big"
    r = api.load(res.entry_dir)
    assert r.stats["path"] == "tokens"
    prompts = ["a b c", "one two three four five six seven", "x " * 20, "short"]
    # Length-sorted chunks cut or padded to a bucket must not change the answer (the mask makes
    # padding inert), in any order.
    want = np.asarray(_tok_win_rate(params, _Tok(cfg)(prompts), 0, 0, cfg))
    np.testing.assert_allclose(r.win_rate(prompts), want, rtol=1e-5)
    np.testing.assert_allclose(r.win_rate(prompts[::-1]), want[::-1], rtol=1e-5)
    shapes = [s.split("input_ids")[1] for s in r.stats["shapes"]]
    widths = {int(s.strip("[]").split(", ")[1]) for s in shapes}
    assert widths <= set(r.seq_buckets) and min(widths) < 20 <= max(widths), shapes
    compiles = r.stats["compiles"]
    r.win_rate(prompts)
    r.win_rate(prompts[2:] + prompts[:2])
    assert r.stats["compiles"] == compiles  # warm: the same lengths compile nothing
    assert r.decide(["a"], threshold=0.0)[0]["model"] == "big"
    with pytest.raises(api.RouterError, match="trained for big vs small only"):
        r.win_rate(["a"], strong="other")


def test_precision_option_is_checked(mf_entry) -> None:
    # float32 is what every router computes: accepted even without a fused encoder path.
    r = api.load(mf_entry.entry_dir, precision="float32")
    assert r.precision == "float32" and r.runner.path == "vectors"
    with pytest.raises(api.RouterError, match="needs an encoder inside the router"):
        api.load(mf_entry.entry_dir, precision="bfloat16")  # hashing featurizer: no encoder
    with pytest.raises(api.RouterError, match="must be one of"):
        api.load(mf_entry.entry_dir, precision="float16")


def test_auto_precision_is_float32_without_an_encoder(mf_entry, monkeypatch) -> None:
    # Even on a device with native bf16 matmuls, "auto" never asks for what "bfloat16" would
    # refuse: a router with no encoder inside runs float32.
    from routellm_jax.models.encoders import bert

    monkeypatch.setattr(bert, "native_bf16_matmul", lambda device=None: True)
    r = api.load(mf_entry.entry_dir, precision="auto")
    assert r.precision is None and r.runner.path == "vectors"
