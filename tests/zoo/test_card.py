"""Model card validation (errors name the key), config round trips, calibration tables, export
packing and manifest updates."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from routellm_jax.integrity import sha256_file
from routellm_jax.publish import pack
from routellm_jax.zoo import card as C
from routellm_jax.zoo import hub


def _card(**over) -> dict:
    base = {
        "name": "x",
        "version": "1",
        "architecture": "mf",
        "config": {},
        "models": ["s", "w"],
        "default_strong": "s",
        "default_weak": "w",
        "checkpoint": {"path": "params", "files": {"a": {"size": 1, "sha256": "0" * 64}}},
        "calibration": dataclasses.asdict(
            C.calibration_from_win_rates(np.linspace(0, 1, 50), strong="s", weak="w", reference="r")
        ),
        "evals": [{"benchmark": "gsm8k", "apgr": 0.6, "cpt": {"50%": 0.3}, "command": "cmd"}],
    }
    base.update(over)
    return base


def test_valid_card_round_trips(tmp_path: Path) -> None:
    card = C.ModelCard.from_json(_card())
    card.save(tmp_path / "card.json")
    back = C.ModelCard.load(tmp_path / "card.json")
    assert back == card
    assert back.calibration.shares == list(C.CALIBRATION_SHARES)
    assert len(back.calibration.shares) == 19 and back.calibration.shares[0] == 0.05


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": 3}, r"name: expected str"),
        ({"default_strong": "gpt-9"}, r"default_strong: 'gpt-9' is not in models"),
        ({"surprise": 1}, r"unknown key\(s\) \['surprise'\]"),
        (
            {"checkpoint": {"files": {"a": {"size": 1, "sha256": "xyz"}}}},
            r"checkpoint.files\['a'\].sha256",
        ),
        ({"evals": [{"benchmark": "mmlu", "apgr": "high"}]}, r"evals\[0\].apgr: expected float"),
        (
            {"evals": [{"benchmark": "mmlu", "apgr": 0.5, "cpt": {"50%": "x"}}]},
            r"evals\[0\].cpt\['50%'\]",
        ),
        (
            {"encoder": {"name": "m", "files": {"model.safetensors": "short"}}},
            r"encoder.files\['model.safetensors'\]",
        ),
    ],
)
def test_errors_name_the_key(change: dict, message: str) -> None:
    with pytest.raises(C.CardError, match=message):
        C.ModelCard.from_json(_card(**change), "entry/card.json")


def test_calibration_errors() -> None:
    bad = _card()
    bad["calibration"]["thresholds"][3] = 2.0  # rises: not monotone
    with pytest.raises(C.CardError, match=r"calibration.thresholds\[3\]"):
        C.ModelCard.from_json(bad)
    bad = _card()
    bad["calibration"]["thresholds"] = bad["calibration"]["thresholds"][:5]
    with pytest.raises(C.CardError, match="19 shares but 5 thresholds"):
        C.ModelCard.from_json(bad)


def test_load_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text('{\n "name": "x",\n oops}')
    with pytest.raises(C.CardError, match=r"card.json: not valid JSON \(line 3\)"):
        C.ModelCard.load(path)
    with pytest.raises(C.CardError, match="no model card"):
        C.ModelCard.load(tmp_path / "absent.json")


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 4
    scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class Outer:
    models: tuple[str, ...] = ()
    inner: Inner = Inner()
    maybe: Inner | None = None
    name: str = "o"


def test_config_round_trip_restores_types() -> None:
    cfg = Outer(models=("a", "b"), inner=Inner(8, 2.0), maybe=Inner(1, 0.5))
    obj = json.loads(json.dumps(C.config_to_json(cfg)))
    back = C.config_from_json(Outer, obj)
    assert back == cfg and isinstance(back.models, tuple) and isinstance(back.inner, Inner)
    hash(back)  # usable as a jit static argument
    assert C.config_from_json(Outer, {"inner": {"scale": 3}}).inner.scale == 3.0
    with pytest.raises(C.CardError, match=r"config: unknown key\(s\) \['widht'\]"):
        C.config_from_json(Outer, {"widht": 1})
    with pytest.raises(C.CardError, match=r"config.inner: unknown key"):
        C.config_from_json(Outer, {"inner": {"depth": 1}})


def test_threshold_at_share_counts() -> None:
    rates = np.random.default_rng(0).random(200)
    for share in C.CALIBRATION_SHARES:
        t = C.threshold_at_share(rates, share)
        assert (rates >= t).sum() == round(share * 200)
    assert (rates >= C.threshold_at_share(rates, 0.0)).sum() == 0
    assert (rates >= C.threshold_at_share(rates, 1.0)).all()


def test_pack_is_deterministic_and_safe(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    (entry / "params" / "d").mkdir(parents=True)
    (entry / "card.json").write_text("{}")
    (entry / "params" / "d" / "blob").write_bytes(b"\x00" * 10)
    a = pack.pack_entry(entry, tmp_path / "a.tar")
    b = pack.pack_entry(entry, tmp_path / "b.tar")
    assert sha256_file(a) == sha256_file(b)
    with tarfile.open(a) as tar:
        names = tar.getnames()
        assert names == sorted(names) and all(m.mtime == 0 for m in tar.getmembers())


def test_update_manifest_bundled_and_limits(tmp_path: Path) -> None:
    zoo = tmp_path / "model_zoo"
    zoo.mkdir()
    archive = zoo / "x-1.tar"
    archive.write_bytes(b"tar bytes")
    card = C.ModelCard.from_json(_card(description="desc"))
    result = pack.ExportResult(zoo / "x", archive, sha256_file(archive), 9, card)
    entry = pack.update_manifest(zoo / "manifest.json", result, urls=["https://h/x-1.tar"])
    assert entry.files[0].urls == ["x-1.tar", "https://h/x-1.tar"]
    m = hub.Manifest.load(zoo / "manifest.json")
    assert m.get("x").description == "desc" and m.get("x").files[0].size == 9
    outside = dataclasses.replace(result, archive=tmp_path / "elsewhere.tar")
    with pytest.raises(ValueError, match="not under"):
        pack.update_manifest(zoo / "manifest.json", outside)
    big = dataclasses.replace(result, size=hub.BUNDLED_LIMIT_BYTES + 1)
    with pytest.raises(ValueError, match="5 MB"):
        pack.update_manifest(zoo / "manifest.json", big)


def test_data_card_from_trainer_mixture_card() -> None:
    mixture = {
        "card_version": 1,
        "name": "judge_battles",
        "seed": 0,
        "spec": {"name": "judge_battles", "sources": [{"name": "alpaca_eval"}]},
        "decontamination": {"eval_sets": {"gsm8k": 1307}, "removed_rows": {"exact": 2}},
        "sources": [{"name": "alpaca_eval", "loaded": {"comparisons": 10}}],
        "totals": {"comparisons": 8, "outcomes": 0, "prompts": 5},
        "models": ["a", "b"],
    }
    dc = C.DataCard.from_mixture_card(mixture)
    assert dc.counts == {"comparisons": 8, "outcomes": 0, "prompts": 5}
    assert dc.sources[0]["name"] == "alpaca_eval" and dc.mixture["name"] == "judge_battles"
    assert dc.decontamination["removed_rows"] == {"exact": 2}
    # It fits in a card and survives JSON.
    card = C.ModelCard.from_json(_card(data=dataclasses.asdict(dc)))
    assert C.ModelCard.from_json(json.loads(json.dumps(card.to_json()))).data == dc
