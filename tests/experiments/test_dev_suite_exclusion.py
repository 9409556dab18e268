"""No dev-suite prompt is in a dev-clean training mix (experiments/_mixtures.py: DEV_CLEAN_MIXES),
checked on the real data; the declared cuts and the suite's constants agree."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from experiments import _mixtures as M
from routellm_jax.data.decontaminate import normalize_text
from routellm_jax.data.mixtures import MixtureSpec, load_source
from routellm_jax.eval import dev_suite as D

JUDGE_SOURCES = {"alpaca_eval", "arena_bench_v1"}


@pytest.fixture(scope="module")
def suite_texts(data_dir: Path) -> dict[str, set[str]]:
    suite = D.build_dev_suite(data_dir)
    return {g: {normalize_text(str(p)) for p in b.prompts} for g, b in suite.items()}


@cache
def _one_source(spec_json: str, root: Path) -> frozenset[str]:
    # The mixes share sources: each filtered source is read once per test session.
    s = MixtureSpec.from_dict({"sources": [json.loads(spec_json)]}).sources[0]
    data = load_source(s, root)
    texts = [*data.outcomes.prompt.tolist(), *data.comparisons.prompt.tolist()]
    return frozenset(normalize_text(str(p)) for p in texts)


def _source_texts(spec: MixtureSpec, root: Path) -> set[str]:
    texts: set[str] = set()
    for s in spec.sources:
        if s.name in JUDGE_SOURCES:
            continue  # removed through the held-out split (checked below and in the mix tests)
        texts |= _one_source(json.dumps(s.to_dict(), sort_keys=True), root)
    return texts


def test_declared_cuts_match_the_suite() -> None:
    assert M.GOLDEN_TRAIN_PART == {"fraction": 1.0 - D.GOLDEN_DEV_FRACTION, "salt": D.DEV_SALT}
    cut = M.TRAIN_FRACTIONS["routerbench_train"]
    assert D.ROUTERBENCH_CUT == {"fraction": cut, "salt": "routerbench_train"}


@pytest.mark.parametrize("mix", M.DEV_CLEAN_MIXES)
def test_dev_clean_mix_holds_no_dev_prompt(
    data_dir: Path, suite_texts: dict[str, set[str]], mix: str
) -> None:
    spec = MixtureSpec.from_dict(M.mixture(mix).to_dict())
    if {s.name for s in spec.sources} & JUDGE_SOURCES:
        assert spec.heldout_split == D.SPLIT_FILE
    texts = _source_texts(spec, data_dir)
    for group, dev in suite_texts.items():
        assert not dev & texts, f"{mix}: {len(dev & texts)} {group} dev prompts in training"


def test_control_the_golden_mix_without_the_dev_cut_overlaps(
    data_dir: Path, suite_texts: dict[str, set[str]]
) -> None:
    """both_mmlu trains on the whole golden split: the check above would catch it."""
    spec = MixtureSpec.from_dict(M.mixture("both_mmlu").to_dict())
    assert suite_texts["knowledge"] & _source_texts(spec, data_dir)


@pytest.mark.parametrize("mix", M.DEV_CLEAN_MIXES)
def test_dev_clean_mix_asks_no_reasoning_question_in_another_format(data_dir: Path, mix: str):
    # RouterDC's ARC train asks RouterBench's ARC-Challenge questions as "Question:<q>\nAnswer:";
    # the exact-text check above cannot see that.
    reasoning = D.build_dev_suite(data_dir)["reasoning"]
    questions = {D.question_line(str(p)) for p in reasoning.prompts}
    spec = MixtureSpec.from_dict(M.mixture(mix).to_dict())
    asked: set[str] = set()
    for s in spec.sources:
        if s.name not in JUDGE_SOURCES:
            data = load_source(s, data_dir)
            asked |= {D.question_line(str(p)) for p in data.outcomes.prompt.tolist()}
    assert not questions & asked, f"{mix}: {len(questions & asked)} reasoning questions in training"


def test_reasoning_prompts_are_questions_without_the_shared_demonstrations(data_dir: Path):
    reasoning = D.build_dev_suite(data_dir)["reasoning"]
    assert set(reasoning.metadata["parts"]) == {"arc_challenge", "winograde"}
    prompts = [str(p) for p in reasoning.prompts]
    assert len(set(prompts)) == len(prompts)
    # The few-shot files' prompts ran to 1,200-2,000 characters; a question with its options and
    # the answer instruction is a few hundred.
    assert max(len(p) for p in prompts) < 1200
    assert all("Answer:" in p for p in prompts)
    assert all(p.count("Answer:") == 1 for p in prompts)
