"""The bundled zoo entries in model_zoo/: listed with the right hashes, under 5 MB, valid cards,
and the README's first command (route prompts with the default router) works from them."""

from __future__ import annotations

import importlib.util
import json

import numpy as np

from routellm_jax import api, paths
from routellm_jax.cli import main
from routellm_jax.integrity import sha256_file
from routellm_jax.models.encoders import bert
from routellm_jax.zoo import hub
from routellm_jax.zoo.entry import read_entry

ZOO = paths.repo_root() / "model_zoo"


def _readme():
    """tests/test_readme.py, which parses the README's set-up commands."""
    path = paths.repo_root() / "tests" / "test_readme.py"
    spec = importlib.util.spec_from_file_location("readme_commands", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bundled(entry: hub.ManifestEntry) -> bool:
    """Whether every file's first URL is a path next to the manifest (in model_zoo/)."""
    return all(f.urls and not hub.url_scheme(f.urls[0]) for f in entry.files)


def test_bundled_entries_match_manifest_and_cards(tmp_path) -> None:
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    assert "mf-minilm" in manifest.names() and api.DEFAULT_ROUTER in manifest.names()
    for entry in manifest.entries:
        if not _bundled(entry):
            continue  # built locally or published elsewhere: tests/zoo/test_published.py
        for f in entry.files:
            local = ZOO / f.urls[0]
            assert local.is_file(), f"{entry.key}: {local} missing"
            assert local.stat().st_size == f.size < hub.BUNDLED_LIMIT_BYTES
            assert sha256_file(local) == f.sha256, f"{local}: sha256 differs from the manifest"
        entry_dir = hub.pull(entry.name, manifest=manifest, cache_dir=tmp_path)
        hub.verify_entry_dir(entry_dir)
        card = read_entry(entry_dir)[0]
        assert card.name == entry.name and card.architecture == entry.architecture
        assert card.encoder is not None and card.encoder.name == "all-MiniLM-L6-v2"
        assert card.calibration is not None and len(card.calibration.thresholds) == 19
        for e in card.evals:  # held-out judge sets are scored by the build (no eval name)
            held = e.benchmark in ("alpaca_heldout", "arena_heldout")
            build = f"routellm-jax zoo build {entry.name}"
            assert e.command == build if held else e.command.startswith("routellm-jax eval")
        assert card.license and card.commit and card.data.counts
        assert entry.evals == [
            {"benchmark": e.benchmark, "apgr": round(e.apgr, 4)} for e in card.evals
        ], f"{entry.key}: the manifest's evals differ from the card's"


def test_readme_route_command_with_default_router(tmp_path, capsys) -> None:
    args = _readme().readme_route_args()  # exactly what the README's first command runs
    prompts = [a for a in args[1:] if not a.startswith("-")]
    assert main([*args, "--cache-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    assert len(rows) == len(prompts)  # long prompts are shown cut, with "..."
    assert all(p.startswith(r[2].removesuffix("...")) for r, p in zip(rows, prompts))
    # The CLI's fused encoder+head path gives the architecture's own (unfused) answer.
    plain = api.load(api.DEFAULT_ROUTER, cache_dir=tmp_path, fuse_encoder=False)
    expected = plain.win_rate(prompts)
    for (rate, model, _), want in zip(rows, expected):
        assert model in (plain.default_strong, plain.default_weak)
        assert abs(float(rate) - float(want)) < 1e-4


def _gsm8k_mt_bench(data_dir, n: int) -> list[str]:
    """The benchmark prompts of tools/bench_infer.py: GSM8K test questions, MT-Bench turns."""
    root = data_dir / "lm-sys__RouteLLM" / "routellm" / "evals"
    gsm = [json.loads(x)["question"] for x in (root / "gsm8k" / "test.jsonl").open()]
    mt = [json.loads(x)["turns"][0] for x in (root / "mt_bench" / "question.jsonl").open()]
    return gsm[: n - 40] + mt[:40]  # mostly GSM8K, plus MT-Bench's longer turns


def test_fused_chunks_and_bfloat16_on_real_prompts(data_dir, tmp_path, capsys, monkeypatch) -> None:
    name = "mf-minilm"  # a pure-MiniLM router: encoder + head in one compiled call
    prompts = _gsm8k_mt_bench(data_dir, 160)
    fused = api.load(name, cache_dir=tmp_path)
    plain = api.load(name, cache_dir=tmp_path, fuse_encoder=False)
    f32 = fused.win_rate(prompts)
    # Length-sorted fine chunks change nothing but the padding: the unfused answer, ...
    np.testing.assert_allclose(f32, plain.win_rate(prompts), atol=1e-5, rtol=0)
    # ... at ~10% padding (the 16/32/64/128/256 buckets padded these 2.3x).
    stats = fused.stats
    assert stats["padded_tokens"] / stats["tokens"] < 1.25, stats
    # bfloat16 encoder (bf16 matmul operands, float32 accumulation and residual stream): win
    # rates within 5e-3 (measured: 2e-4 to 2e-3), decisions at the card's thresholds for 20/50/80%
    # strong calls agree on >= 98% of the prompts (how many flip depends on how densely the
    # entry's scores crowd each threshold: 2 of 160 at 50% for the current mf-minilm).
    bf16 = api.load(name, cache_dir=tmp_path, precision="bfloat16")
    low = bf16.win_rate(prompts)
    assert np.max(np.abs(low - f32)) < 5e-3
    for share in (0.2, 0.5, 0.8):
        t = fused.threshold_for_share(share)
        assert np.mean((low >= t) == (f32 >= t)) >= 0.98, share
    # precision="auto" is bfloat16 where the device runs bf16 matmuls natively, else float32.
    for native, expected, same in ((True, "bfloat16", bf16), (False, None, fused)):
        monkeypatch.setattr(bert, "native_bf16_matmul", lambda device=None, n=native: n)
        auto = api.load(name, cache_dir=tmp_path, precision="auto")
        assert auto.precision == expected and auto.runner.path == "fused"
        np.testing.assert_allclose(
            auto.win_rate(prompts[:8]), same.win_rate(prompts[:8]), atol=1e-6, rtol=0
        )
    # The CLI's --precision reaches the same router.
    assert (
        main(
            [
                "route",
                "--router",
                name,
                "--precision",
                "bfloat16",
                "--cache-dir",
                str(tmp_path),
                *prompts[:3],
            ]
        )
        == 0
    )
    lines = [x for x in capsys.readouterr().out.splitlines() if not x.startswith("#")]
    got = [float(x.split("\t")[0]) for x in lines]  # printed with 4 decimals
    np.testing.assert_allclose(got, bf16.win_rate(prompts[:3]), atol=1e-4)


def test_shape_featurizer_router_runs_fused_and_matches_unfused(data_dir, tmp_path) -> None:
    """ "<encoder>+shape" routers (irt-shape-minilm) fuse too: the shape features are computed on the
    host per chunk and appended inside the compiled function, giving the unfused answer."""
    prompts = _gsm8k_mt_bench(data_dir, 48)
    fused = api.load("irt-shape-minilm", cache_dir=tmp_path)
    assert fused.config.featurizer.endswith("+shape")
    assert fused.runner.path == "fused" and fused.runner.host_dim == 9
    plain = api.load("irt-shape-minilm", cache_dir=tmp_path, fuse_encoder=False)
    want = plain.win_rate(prompts)
    np.testing.assert_allclose(fused.win_rate(prompts), want, atol=1e-5, rtol=0)
    # Warm: the same and other batch sizes over these prompts reuse the compiled shapes, and the
    # per-prompt shape features still line up after length sorting (reversed order, subsets).
    compiles = fused.stats["compiles"]
    np.testing.assert_allclose(fused.win_rate(prompts[::-1]), want[::-1], atol=1e-5, rtol=0)
    np.testing.assert_allclose(fused.win_rate(prompts[5:8]), want[5:8], atol=1e-5, rtol=0)
    assert fused.stats["compiles"] <= compiles + 3  # at most the new row buckets of 3 prompts
    compiles = fused.stats["compiles"]
    fused.win_rate(prompts[5:8])
    fused.win_rate(prompts)
    assert fused.stats["compiles"] == compiles


def test_default_router_is_the_dev_suite_choice_and_its_card_has_the_benchmarks(tmp_path) -> None:
    """The default: irt on plain MiniLM chosen on the development suite, so trained on a mix that
    holds none of the suite's prompts (both_mmlu_dev: the golden split's dev part left out); its
    card carries MMLU (golden split excluded), GSM8K and both held-out judge sets, and the CLI's
    default names the same entry."""
    from routellm_jax import api_cli

    assert api.DEFAULT_ROUTER == api_cli.DEFAULT_ROUTER_NAME == "irt-mix-minilm"
    entry_dir = hub.pull(api.DEFAULT_ROUTER, manifest=ZOO / "manifest.json", cache_dir=tmp_path)
    card = read_entry(entry_dir)[0]
    assert card.architecture == "irt" and card.config["featurizer"] == "all-MiniLM-L6-v2"
    assert card.data.mixture["name"] == "both_mmlu_dev"
    evals = {e.benchmark: e for e in card.evals}
    assert set(evals) >= {"mmlu", "gsm8k", "alpaca_heldout", "arena_heldout"}
    assert "golden split excluded" in evals["mmlu"].notes and evals["mmlu"].extra
    assert all(e.apgr > 0.5 for e in evals.values())  # above random on every benchmark


def test_heldout_judge_numbers_only_from_entries_that_never_saw_them(tmp_path) -> None:
    """A card's held-out judge APGR is only meaningful when its training data had those prompts
    removed (the data card lists them among the decontaminated evaluation sets)."""
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    for entry in manifest.entries:
        if not _bundled(entry):
            continue  # not bundled: the same check in tests/zoo/test_published.py
        card = read_entry(hub.pull(entry.name, manifest=manifest, cache_dir=tmp_path))[0]
        removed = (card.data.decontamination or {}).get("eval_sets") or {}
        for e in card.evals:
            if e.benchmark in ("alpaca_heldout", "arena_heldout"):
                assert e.benchmark in removed, f"{entry.key}: {e.benchmark} was trained on"
