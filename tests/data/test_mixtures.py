"""Mixtures: deterministic sampling from a seed, filters, decontamination, data card, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from routellm_jax.data.hashing import hash_fraction
from routellm_jax.data.mixtures import (
    BUILTIN_SOURCES,
    MixtureSpec,
    SourceSpec,
    build_mixture,
    load_mixture,
    load_source,
    save_mixture,
)
from routellm_jax.data.records import (
    Comparison,
    ComparisonTable,
    Outcome,
    OutcomeTable,
    TrainingData,
)


def battles_loader(root: Path) -> TrainingData:
    rows = [
        Comparison(
            f"battle prompt {i}", "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", "ab"[i % 2]
        )
        for i in range(100)
    ]
    rows.append(
        Comparison("What is 2+2?", "gpt-4-1106-preview", "claude-2.1", "a")
    )  # an eval prompt
    return TrainingData.of(comparisons=ComparisonTable.from_records(rows))


def outcomes_loader(root: Path) -> TrainingData:
    rows = []
    for i in range(40):
        rows.append(Outcome(f"graded prompt {i}", "gpt-4-1106-preview", 1.0, "gold", "correct"))
        rows.append(
            Outcome(
                f"graded prompt {i}", "mixtral-8x7b-instruct-v0.1", float(i % 2), "gold", "correct"
            )
        )
    return TrainingData.of(outcomes=OutcomeTable.from_records(rows))


EVAL = {"gsm8k": ["what is 2+2"]}


def _spec(seed: int, **kw) -> MixtureSpec:
    return MixtureSpec(
        [
            SourceSpec("battles", loader=battles_loader, weight=0.5),
            SourceSpec("graded", loader=outcomes_loader, rows=10),
        ],
        seed=seed,
        **kw,
    )


def test_deterministic_by_seed() -> None:
    d1, c1 = build_mixture(_spec(7), eval_prompts=EVAL)
    d2, c2 = build_mixture(_spec(7), eval_prompts=EVAL)
    d3, _ = build_mixture(_spec(8), eval_prompts=EVAL)
    assert d1.comparisons.prompt.tolist() == d2.comparisons.prompt.tolist()
    assert d1.outcomes.prompt.tolist() == d2.outcomes.prompt.tolist()
    assert c1 == c2
    assert d1.comparisons.prompt.tolist() != d3.comparisons.prompt.tolist()
    # weight 0.5 of the 100 clean battles; rows=10 prompts (2 outcomes each) of the graded source.
    assert len(d1.comparisons) == 50 and len(d1.outcomes) == 20
    assert len(set(d1.outcomes.prompt)) == 10
    assert "What is 2+2?" not in set(d1.comparisons.prompt)


def test_data_card_contents_and_files(tmp_path) -> None:
    data, card = build_mixture(_spec(1), eval_prompts=EVAL)
    battles = card["sources"][0]
    assert battles["name"] == "battles"
    assert battles["loaded"] == {"comparisons": 101, "outcomes": 0, "prompts": 101}
    assert battles["decontamination"]["removed"] == {"exact": 1}
    assert battles["decontamination"]["by_eval_set"] == {"gsm8k": {"exact": 1}}
    assert battles["after_decontamination"]["comparisons"] == 100
    assert battles["final"]["comparisons"] == 50
    assert card["sources"][1]["final"] == {"comparisons": 0, "outcomes": 20, "prompts": 10}
    assert card["seed"] == 1 and card["model_table_version"]
    assert card["decontamination"]["removed_rows"] == {"exact": 1}
    assert card["decontamination"]["near_duplicates_checked"] is False
    assert card["totals"] == {"comparisons": 50, "outcomes": 20, "prompts": 60}

    out = save_mixture(data, card, tmp_path / "mix")
    assert sorted(p.name for p in out.iterdir()) == [
        "comparisons.parquet",
        "data_card.json",
        "outcomes.parquet",
    ]
    again, card2 = load_mixture(out)
    assert again.comparisons.prompt.tolist() == data.comparisons.prompt.tolist()
    assert np.array_equal(again.outcomes.score, data.outcomes.score)
    assert card2["totals"] == card["totals"]
    assert (
        json.loads((out / "data_card.json").read_text())["files"]["outcomes"] == "outcomes.parquet"
    )


def test_total_rows_weights_filters_and_to_comparisons() -> None:
    spec = MixtureSpec(
        [
            SourceSpec("battles", loader=battles_loader, weight=3.0),
            SourceSpec(
                "graded",
                loader=outcomes_loader,
                weight=1.0,
                to_comparisons=True,
                filters={"models": ["gpt4_1106_preview", "Mixtral-8x7B-Instruct-v0.1"]},
            ),
        ],
        seed=0,
        total_rows=40,
    )
    data, card = build_mixture(spec, eval_prompts=EVAL)
    assert [s["sampled_units"] for s in card["sources"]] == [30, 10]
    assert len(data.outcomes) == 0 and len(data.comparisons) == 40
    no_claude, _ = build_mixture(
        MixtureSpec(
            [
                SourceSpec(
                    "battles", loader=battles_loader, filters={"exclude_models": ["claude-2.1"]}
                )
            ]
        ),
        eval_prompts={},
    )
    assert len(no_claude.comparisons) == 100 and "claude-2.1" not in no_claude.comparisons.models()
    graded = data.comparisons.take(
        np.array([p.startswith("graded") for p in data.comparisons.prompt])
    )
    assert set(graded.model_a) == {"gpt-4-1106-preview"} and len(graded) == 10
    # A weight above 1 repeats rows.
    up, _ = build_mixture(
        MixtureSpec([SourceSpec("graded", loader=outcomes_loader, weight=2.0)]), eval_prompts=EVAL
    )
    assert len(up.outcomes) == 160


def test_spec_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        SourceSpec("no_such_source")
    with pytest.raises(ValueError, match="weight or rows"):
        SourceSpec("alpaca_eval", weight=1.0, rows=5)
    with pytest.raises(ValueError, match="unknown filter"):
        SourceSpec("alpaca_eval", filters={"colour": "red"})
    with pytest.raises(ValueError, match="distinct"):
        MixtureSpec([SourceSpec("alpaca_eval"), SourceSpec("alpaca_eval")])
    spec = MixtureSpec(
        [SourceSpec("alpaca_eval", weight=0.2, options={"fractional": "round"})], seed=5
    )
    assert MixtureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_builtin_train_sources_never_read_test_files(tmp_path) -> None:
    folder = tmp_path / "shuhao02__RouterDC" / "datasets" / "split2_model7"
    folder.mkdir(parents=True)

    def write(name: str, question: str) -> None:
        rows = [{"question": question, "scores": {"mistralai/Mistral-7B-v0.1": 1}}]
        (folder / name).write_text(json.dumps(rows))

    write("mmlu_train.json", "train q")
    write("gsm8k-train.json", "train q2")
    write("mmlu_test.json", "test q")
    write("mbpp.json", "ood test q")
    data = BUILTIN_SOURCES["routerdc_train"](tmp_path)
    assert sorted(set(data.outcomes.prompt)) == ["train q", "train q2"]
    test = BUILTIN_SOURCES["routerdc_test"](tmp_path)
    assert set(test.outcomes.prompt) == {"test q"}


def test_hash_fraction_filter_is_declared_data() -> None:
    """A seeded part of a source is a declared filter: rows whose prompt hashes below the
    fraction stay (all rows of a prompt together), and the card records the filter, no code."""
    cut = {"fraction": 0.3, "salt": "battles"}
    spec = MixtureSpec(
        [SourceSpec("battles", loader=battles_loader, filters={"hash_fraction": cut})]
    )
    data, card = build_mixture(spec, eval_prompts={})
    full = battles_loader(Path("."))
    expected = [p for p in full.comparisons.prompt if hash_fraction(p, "battles") < 0.3]
    assert data.comparisons.prompt.tolist() == expected and 0 < len(expected) < 101
    assert card["sources"][0]["spec"]["filters"] == {"hash_fraction": cut}
    assert card["sources"][0]["after_filters"]["comparisons"] == len(expected)
    # Outcomes are cut by prompt too; the same salt keeps the same prompts.
    graded = load_source(
        SourceSpec(
            "graded", loader=outcomes_loader, filters={"hash_fraction": {**cut, "salt": "g"}}
        )
    )
    kept = {
        p for p in set(outcomes_loader(Path(".")).outcomes.prompt) if hash_fraction(p, "g") < 0.3
    }
    assert set(graded.outcomes.prompt) == kept and len(graded.outcomes) == 2 * len(kept)
    declared = MixtureSpec([SourceSpec("routerbench_train", filters={"hash_fraction": cut})])
    assert MixtureSpec.from_dict(json.loads(json.dumps(declared.to_dict()))) == declared


@pytest.mark.parametrize(
    "value, match",
    [
        ({"fraction": 0.2}, "must be"),
        ({"fraction": 0.2, "salt": "s", "seed": 1}, "must be"),
        ({"fraction": 1.5, "salt": "s"}, r"in \[0, 1\]"),
        ({"fraction": "0.2", "salt": "s"}, "number"),
        ({"fraction": 0.2, "salt": ""}, "salt"),
        (0.2, "must be"),
    ],
)
def test_hash_fraction_filter_is_checked(value, match) -> None:
    with pytest.raises(ValueError, match=f"source 'alpaca_eval': filter hash_fraction.*{match}"):
        SourceSpec("alpaca_eval", filters={"hash_fraction": value})


DEMOS = "Q: Is ice cold?\nA: yes\n\nQ: Is fire cold?\nA: no\n\n"


def few_shot_loader(root: Path) -> TrainingData:
    """Two benchmark files (sources): one with shared demonstrations, one without; 2 models."""
    rows = []
    for i in range(30):
        for model, score in (("gpt-4-1106-preview", 1.0), ("mixtral-8x7b-instruct-v0.1", i % 2)):
            rows.append(Outcome(f"{DEMOS}Q: Is item {i} cold?\nA:", model, score, "rb/arc"))
            rows.append(Outcome(f"Write function {i}.", model, score, "rb/mbpp"))
    return TrainingData.of(outcomes=OutcomeTable.from_records(rows))


def test_strip_shared_prefix_keeps_every_row_and_cuts_by_the_files_own_text() -> None:
    cut = {"fraction": 0.5, "salt": "fs"}
    filters = {"hash_fraction": cut, "strip_shared_prefix": True}
    data = load_source(SourceSpec("fs", loader=few_shot_loader, filters=filters))
    plain = load_source(SourceSpec("fs", loader=few_shot_loader, filters={"hash_fraction": cut}))
    # The seeded part is the same rows: the cut hashes the text as the file has it.
    assert len(data.outcomes) == len(plain.outcomes) > 0
    assert data.outcomes.model.tolist() == plain.outcomes.model.tolist()
    assert data.outcomes.score.tolist() == plain.outcomes.score.tolist()
    for new, old, source in zip(data.outcomes.prompt, plain.outcomes.prompt, plain.outcomes.source):
        if source == "rb/arc":
            assert old == DEMOS + new and new.startswith("Q: Is item ")
        else:  # a file without demonstrations is left as it is
            assert new == old
    declared = MixtureSpec([SourceSpec("routerbench_train", filters=filters)])
    assert MixtureSpec.from_dict(declared.to_dict()).sources[0].filters == filters


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_strip_shared_prefix_filter_is_checked(value) -> None:
    with pytest.raises(ValueError, match="'alpaca_eval': filter strip_shared_prefix must be"):
        SourceSpec("alpaca_eval", filters={"strip_shared_prefix": value})


def test_routerbench_test_questions_are_the_test_prompts_without_demonstrations(
    data_dir: Path,
) -> None:
    from routellm_jax.data.decontaminate import standard_eval_sets

    sets = standard_eval_sets(data_dir, names=("routerbench_test", "routerbench_test_questions"))
    full, questions = sets["routerbench_test"], sets["routerbench_test_questions"]
    assert len(full) == len(questions) == len(set(questions))
    # Every question is its prompt's end; the few-shot files' prompts lose 1,000+ characters.
    assert all(f.endswith(q) for f, q in zip(full, questions))
    shortened = [len(f) - len(q) for f, q in zip(full, questions) if f != q]
    assert len(shortened) > 700 and min(shortened) > 1000


def test_mmlu_golden_is_a_builtin_source_without_options(tmp_path) -> None:
    spec = MixtureSpec.from_dict({"sources": [{"name": "mmlu_golden", "decontaminate": False}]})
    assert spec.sources[0].loader is None and not spec.sources[0].decontaminate
    with pytest.raises(ValueError, match="mmlu_golden' takes no options"):
        BUILTIN_SOURCES["mmlu_golden"](tmp_path, colour="red")


def test_declared_passes_need_their_encoder_and_are_recorded(tmp_path) -> None:
    """A mix that declares a near-duplicate encoder cannot be built without its vectors; the
    lexical pass removes re-templated copies and keeps rows of an exempt source, after the rest."""
    from routellm_jax.data.records import Outcome

    copy = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
    rows = ComparisonTable.from_records(
        [
            Comparison(copy + " Answer:", "m1", "m2", "a"),  # a re-templated evaluation prompt
            Comparison("Write a haiku about autumn leaves.", "m1", "m2", "b"),
        ]
    )
    golden = OutcomeTable.from_records([Outcome(copy, "m1", 1.0)])
    sources = [
        SourceSpec("chat", loader=lambda root: TrainingData.of(comparisons=rows)),
        SourceSpec(
            "golden", loader=lambda root: TrainingData.of(outcomes=golden), decontaminate=False
        ),
    ]
    evals = {"gsm8k": [copy.replace("clips", "clip")]}
    spec = MixtureSpec(sources, near_duplicate_encoder="enc", lexical_threshold=0.5, threshold=0.99)
    with pytest.raises(ValueError, match="near_duplicate_encoder='enc': pass"):
        build_mixture(spec, data_root=tmp_path, eval_prompts=evals)

    def never_close(texts):  # a random direction per text: no encoder near-duplicate
        return np.stack([np.random.default_rng(len(t)).normal(size=256) for t in texts])

    data, card = build_mixture(spec, data_root=tmp_path, eval_prompts=evals, embed_fn=never_close)
    assert data.comparisons.prompt.tolist() == ["Write a haiku about autumn leaves."]
    assert data.outcomes.prompt.tolist() == [copy]  # exempt: kept
    decon = card["decontamination"]
    assert decon["embedder"] == "enc" and decon["removed_rows"]["lexical_near_duplicate"] == 1
    assert decon["lexical_pass"]["exempt_prompts"] == 1
    assert (
        MixtureSpec.from_dict(
            card["spec"] | {"sources": [{"name": "alpaca_eval"}]}
        ).lexical_threshold
        == 0.5
    )


def test_unknown_or_out_of_range_mixture_keys_are_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lexical'\]"):
        MixtureSpec.from_dict({"name": "m", "sources": [{"name": "alpaca_eval"}], "lexical": 0.9})
    with pytest.raises(ValueError, match="lexical_threshold must be in"):
        MixtureSpec([SourceSpec("alpaca_eval")], lexical_threshold=1.5)
