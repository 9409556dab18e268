"""The bundled zoo entries in model_zoo/: listed with the right hashes, under 5 MB, valid cards,
and the README's first command (route a prompt with mf-minilm) works from them."""

from __future__ import annotations

from routellm_jax import api, paths
from routellm_jax.cli import main
from routellm_jax.zoo import hub

ZOO = paths.repo_root() / "model_zoo"


def test_bundled_entries_match_manifest_and_cards(tmp_path) -> None:
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    assert "mf-minilm" in manifest.names()
    for entry in manifest.entries:
        for f in entry.files:
            if hub._scheme(f.urls[0]):
                continue  # published elsewhere, not bundled
            local = ZOO / f.urls[0]
            assert local.is_file(), f"{entry.key}: {local} missing"
            assert local.stat().st_size == f.size < hub.BUNDLED_LIMIT_BYTES
            assert hub.sha256_file(local) == f.sha256, f"{local}: sha256 differs from the manifest"
        entry_dir = hub.pull(entry.name, manifest=manifest, cache_dir=tmp_path)
        hub.verify_entry_dir(entry_dir)
        card = api.read_entry(entry_dir)[0]
        assert card.name == entry.name and card.architecture == entry.architecture
        assert card.encoder is not None and card.encoder.name == "all-MiniLM-L6-v2"
        assert card.calibration is not None and len(card.calibration.thresholds) == 19
        assert all(e.command.startswith("routellm-jax eval") for e in card.evals)
        assert card.license and card.commit and card.data.counts


def test_readme_route_command_with_default_router(tmp_path, capsys) -> None:
    assert main(["route", "What is 2+2?", "--cache-dir", str(tmp_path)]) == 0
    rate, model, prompt = capsys.readouterr().out.strip().split("\t")
    assert 0.0 <= float(rate) <= 1.0 and prompt == "What is 2+2?"
    # The CLI's fused encoder+head path gives the architecture's own (unfused) answer.
    plain = api.load("mf-minilm", cache_dir=tmp_path, fuse_encoder=False)
    assert model in (plain.default_strong, plain.default_weak)
    assert abs(float(plain.win_rate(["What is 2+2?"])[0]) - float(rate)) < 1e-4
