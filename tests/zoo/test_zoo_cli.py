"""``routellm-jax route|calibrate|zoo`` end to end on a small exported entry (mf, hashing
featurizer: no weights to fetch)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest

from routellm_jax.cli import main
from routellm_jax.models import registry
from routellm_jax.publish.export import ExportSpec, export_entry
from routellm_jax.publish.pack import update_manifest
from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK

PROMPTS = [
    f"prompt number {i} about {'maths' if i % 2 else 'poetry'} " * (1 + i % 4) for i in range(40)
]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    arch = registry.get_architecture("mf")
    cfg = arch.make_config(
        models=(PAPER_STRONG, PAPER_WEAK), featurizer="hashing:16", text_dim=16, dim=4
    )
    out = tmp_path_factory.mktemp("model_zoo")
    res = export_entry(
        "mf",
        cfg,
        arch.init(jax.random.key(3), cfg),
        out,
        ExportSpec(
            name="cli-test",
            calibration_prompts=PROMPTS,
            calibration_reference="40 test prompts",
            commit="",
            description="a CLI test entry",
        ),
    )
    update_manifest(out / "manifest.json", res)
    return out, res


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_route_prompts_and_files(zoo, tmp_path: Path, capsys) -> None:
    out, res = zoo
    code, stdout, stderr = _run(
        ["route", "What is 2+2?", "Write a sonnet", "--router", str(res.entry_dir)], capsys
    )
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 2
    rate, model, prompt = lines[0].split("\t")
    assert 0.0 <= float(rate) <= 1.0 and model in (PAPER_STRONG, PAPER_WEAK)
    assert prompt == "What is 2+2?" and "strong share 50%" in stderr

    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "\n".join(json.dumps({"prompt": p, "id": i}) for i, p in enumerate(PROMPTS)) + "\n"
    )
    dest = tmp_path / "out.jsonl"
    code, _, _ = _run(
        [
            "route",
            "--router",
            str(res.entry_dir),
            "--input",
            str(inp),
            "--output",
            str(dest),
            "--threshold",
            "0.5",
        ],
        capsys,
    )
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert code == 0 and [r["id"] for r in rows] == list(range(40))
    assert all(r["model"] == (PAPER_STRONG if r["win_rate"] >= 0.5 else PAPER_WEAK) for r in rows)
    assert all(r["threshold"] == 0.5 for r in rows)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    code, _, stderr = _run(["route", "--router", str(res.entry_dir), "--input", str(bad)], capsys)
    assert code == 2 and "bad.jsonl:2: expected an object with a string 'prompt'" in stderr


def test_calibrate(zoo, tmp_path: Path, capsys) -> None:
    _, res = zoo
    prompts = tmp_path / "traffic.txt"
    prompts.write_text("\n".join(PROMPTS[:20]) + "\n")
    table = tmp_path / "table.json"
    code, stdout, _ = _run(
        [
            "calibrate",
            "--router",
            str(res.entry_dir),
            "--prompts",
            str(prompts),
            "--strong-share",
            "0.25",
            "--output",
            str(table),
        ],
        capsys,
    )
    result = json.loads(stdout)
    assert code == 0 and result["n_prompts"] == 20 and result["strong"] == PAPER_STRONG
    import routellm_jax

    rates = routellm_jax.load(res.entry_dir).win_rate(PROMPTS[:20])
    assert (rates >= result["threshold"]).sum() == 5
    assert len(json.loads(table.read_text())["thresholds"]) == 19


def test_zoo_list_pull_verify(zoo, tmp_path: Path, capsys, monkeypatch) -> None:
    out, res = zoo
    manifest = str(out / "manifest.json")
    cache = str(tmp_path / "cache")
    code, stdout, _ = _run(["zoo", "list", "--manifest", manifest, "--cache-dir", cache], capsys)
    assert (
        code == 0 and "cli-test" in stdout and "bundled" in stdout and "a CLI test entry" in stdout
    )
    assert " -/-  " in stdout  # no evaluations in this entry's card, so none in the manifest
    real = _run(["zoo", "list"], capsys)[1]  # the repository's zoo: its cards' APGRs
    from routellm_jax import api
    from routellm_jax.zoo import hub

    apgr = {e["benchmark"]: e["apgr"] for e in hub.Manifest.load().get(api.DEFAULT_ROUTER).evals}
    assert f"{apgr['mmlu']:.3f}/{apgr['gsm8k']:.3f}" in real
    code, stdout, _ = _run(
        ["zoo", "pull", "cli-test", "--manifest", manifest, "--cache-dir", cache], capsys
    )
    pulled = Path(stdout.strip())
    assert code == 0 and (pulled / "card.json").is_file()
    code, stdout, _ = _run(
        ["zoo", "verify", "cli-test", "--manifest", manifest, "--cache-dir", cache], capsys
    )
    assert code == 0 and stdout.startswith("ok:")
    # Alter one checkpoint byte in the cache: verify names the file and fails.
    blob = max(
        (p for p in (pulled / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    code, _, stderr = _run(
        ["zoo", "verify", "cli-test", "--manifest", manifest, "--cache-dir", cache], capsys
    )
    assert code == 1 and blob.name in stderr and "sha256" in stderr
    code, _, stderr = _run(
        ["zoo", "pull", "absent", "--manifest", manifest, "--cache-dir", cache], capsys
    )
    assert code == 2 and "'absent'" in stderr  # an unknown name is the user's to fix
    # Routing by zoo name through the manifest.
    monkeypatch.setenv("ROUTELLM_JAX_ZOO_MANIFEST", manifest)
    code, stdout, _ = _run(
        ["route", "hello", "--router", "cli-test", "--cache-dir", str(tmp_path / "c2")], capsys
    )
    assert code == 0 and stdout.count("\t") == 2


def test_export_needs_a_place_before_any_work(tmp_path: Path, capsys) -> None:
    # No --bundle and no --url: refused before the checkpoint is even looked at.
    code, _, err = _run(
        [
            "zoo",
            "export",
            "--workdir",
            str(tmp_path / "no-run"),
            "--name",
            "x",
            "--out-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 2 and "--bundle" in err and "--url" in err
    code, _, err = _run(
        [
            "zoo",
            "export",
            "--workdir",
            str(tmp_path / "no-run"),
            "--name",
            "x",
            "--out-dir",
            str(tmp_path / "out"),
            "--manifest",
            str(tmp_path / "elsewhere" / "manifest.json"),
            "--bundle",
        ],
        capsys,
    )
    assert code == 2 and "not under the manifest's folder" in err


def test_export_prints_its_apgr_before_listing_fails(
    zoo, tmp_path: Path, capsys, monkeypatch
) -> None:
    import dataclasses

    import routellm_jax.publish.export as export_mod
    from routellm_jax.zoo.card import EvalResult

    _, res = zoo
    card = dataclasses.replace(res.card, evals=[EvalResult("gsm8k", 0.5432, {}, "cmd")])
    monkeypatch.setattr(
        export_mod, "export_from_workdir", lambda *a, **k: dataclasses.replace(res, card=card)
    )
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{not json")  # the listing step fails after the work
    code, out, err = _run(
        [
            "zoo",
            "export",
            "--workdir",
            str(tmp_path),
            "--name",
            "cli-test",
            "--out-dir",
            str(tmp_path),
            "--url",
            "https://example.org/x.tar",
        ],
        capsys,
    )
    assert code != 0 and "gsm8k: APGR 0.5432" in out, (out, err)
