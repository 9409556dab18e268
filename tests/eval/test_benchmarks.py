"""Benchmark builders on small tables, and the golden-split functions."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_jax.data.records import Outcome, OutcomeTable
from routellm_jax.eval import golden
from routellm_jax.eval.benchmarks import Benchmark, benchmark_from_outcomes, read_outcome_file


def _table(rows):
    return OutcomeTable.from_records([Outcome(p, m, s) for p, m, s in rows])


def test_pairs_repeated_prompts_in_order():
    t = _table(
        [("q", "s", 1), ("q", "w", 0), ("r", "s", 0), ("r", "w", 0), ("q", "s", 0), ("q", "w", 1)]
    )
    b = benchmark_from_outcomes(t, "s", "w", name="toy")
    assert b.prompts.tolist() == ["q", "q", "r"]
    assert b.strong_scores.tolist() == [1, 0, 0] and b.weak_scores.tolist() == [0, 1, 0]
    assert b.kind == "correct" and b.strong_quality == pytest.approx(1 / 3)
    m = benchmark_from_outcomes(t, "s", "w", duplicates="mean")
    assert m.prompts.tolist() == ["q", "r"] and m.strong_scores.tolist() == [0.5, 0]


def test_missing_model_rows_are_counted_not_hidden():
    t = _table([("q", "s", 1), ("q", "w", 0), ("r", "s", 1), ("r", "x", 0), ("z", "x", 1)])
    b = benchmark_from_outcomes(t, "s", "w")
    assert len(b) == 1 and b.metadata["prompts_missing_a_model"] == 2


def test_builder_errors():
    t = _table([("q", "s", 1), ("q", "s", 1), ("q", "w", 0)])
    with pytest.raises(ValueError, match="2 outcomes for 's' but 1 for 'w'"):
        benchmark_from_outcomes(t, "s", "w")
    with pytest.raises(ValueError, match="strong model 'z' not in the outcome table"):
        benchmark_from_outcomes(t, "z", "w")
    with pytest.raises(ValueError, match="same"):
        benchmark_from_outcomes(t, "s", "s")


def test_grades_make_a_grade_benchmark():
    b = benchmark_from_outcomes(_table([("q", "s", 9), ("q", "w", 7)]), "s", "w")
    assert b.kind == "grade" and b.quality(np.array([True])) == 9


def test_take_and_golden_exclusion_on_toy():
    b = Benchmark(
        "toy",
        np.array(["a", "b"], dtype=object),
        np.array([1.0, 0.0]),
        np.array([0.0, 0.0]),
        "s",
        "w",
    )
    sub = b.take(np.array([True, False]), note="x")
    assert len(sub) == 1 and sub.metadata["note"] == "x"
    out = b.without_golden()  # toy prompts are not golden
    assert len(out) == 2 and out.metadata["golden_split_removed"] == 0


def test_outcome_files_long_wide_parquet(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("prompt,model,score\nq,s,1\nq,w,0\n", encoding="utf-8")
    assert benchmark_from_outcomes(read_outcome_file(long), "s", "w").strong_scores.tolist() == [1]
    wide = tmp_path / "wide.csv"
    wide.write_text("question_id,prompt,s,w,note\n1,q,9,,x\n2,r,8,7,y\n3,t,,,z\n", encoding="utf-8")
    t = read_outcome_file(wide)
    assert t.models() == ["s", "w"]  # the text column 'note' is not a model
    b = benchmark_from_outcomes(t, "s", "w")
    assert b.prompts.tolist() == ["r"] and b.metadata["prompts_missing_a_model"] == 1
    pq = tmp_path / "t.parquet"
    _table([("q", "s", 1), ("q", "w", 0)]).save(pq)
    assert len(read_outcome_file(pq)) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,model,score\nq,s,high\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv: row 1 .* column 'score'"):
        read_outcome_file(bad)


def test_golden_algorithm_small():
    prompts = [f"question {i}" for i in range(50)] + ["dup", "dup"]
    ids = golden.compute_golden_split(prompts, size=10, seed="s")
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert golden.prompt_id("dup") not in ids  # repeated texts are never golden
    assert ids == golden.compute_golden_split(list(reversed(prompts)), size=10, seed="s")
    assert ids != golden.compute_golden_split(prompts, size=10, seed="other")
    text = golden.render_golden_file(ids, seed="s", source_rows=52)
    assert golden.parse_golden_file(text) == frozenset(ids)
    with pytest.raises(ValueError, match="only 50 distinct"):
        golden.compute_golden_split(prompts, size=51)


def test_golden_file_parse_error():
    with pytest.raises(ValueError, match="f.txt:2: not a sha256"):
        golden.parse_golden_file("# header\nxyz\n", source="f.txt")


def test_committed_golden_file_loads():
    ids = golden.golden_split_ids()
    assert len(ids) == golden.GOLDEN_SIZE
    assert golden.is_golden("definitely not an MMLU question") is False
