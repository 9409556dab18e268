"""RouteLLM evaluation-set readers: small files written here, error cases, and the real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from routellm_jax.data.sources import routellm_evals as rev

S, W = rev.STRONG_MODEL, rev.WEAK_MODEL  # canonical names in the tables
SC, WC = rev.STRONG_COLUMN, rev.WEAK_COLUMN  # column names in the files


def _write_csv(path: Path, rows: list[str], header: str | None = None) -> Path:
    header = header or f"prompt,{WC},{SC},{WC}_response,{SC}_response"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _jsonl(path: Path, objs: list) -> Path:
    path.write_text("\n".join(json.dumps(o) for o in objs) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def fake_evals(tmp_path: Path) -> Path:
    """A tiny evals folder in the RouteLLM layout."""
    evals = tmp_path / "evals"
    (evals / "mmlu" / "responses").mkdir(parents=True)
    _write_csv(evals / "mmlu" / "responses" / "mmlu_b.csv", ['"q3\nline2",True,True,x,y'])
    _write_csv(
        evals / "mmlu" / "responses" / "mmlu_a.csv",
        ["q1,False,True,x,y", "q2,True,False,x,y", "q1,True,True,x,y"],
    )
    _jsonl(
        evals / "mmlu" / "contaminated_prompts.jsonl", [{"train_prompt": "t", "eval_prompt": "q2"}]
    )
    (evals / "gsm8k").mkdir()
    _write_csv(evals / "gsm8k" / "gsm8k_responses.csv", ["g1,True,False,a,b", "g2,False,False,a,b"])
    _jsonl(evals / "gsm8k" / "contaminated_prompts.jsonl", [{"eval_prompt": "g2"}])
    (evals / "mt_bench").mkdir()
    _jsonl(
        evals / "mt_bench" / "question.jsonl",
        [
            {"question_id": 1, "category": "writing", "turns": ["t1a", "t1b"]},
            {"question_id": 2, "category": "math", "turns": ["t2a", "t2b"]},
            {"question_id": 3, "category": "math", "turns": ["t3a", "t3b"]},
        ],
    )
    _jsonl(evals / "mt_bench" / "contaminated_prompts.jsonl", [{"eval_prompt": "t3b"}])
    return evals


def test_column_names_map_to_canonical_names():
    assert rev.canonical_model(SC) == S and rev.canonical_model(WC) == W
    assert rev.canonical_model("martian") == "martian"  # unknown to the table: kept as written


def test_read_mmlu_small(fake_evals):
    raw = rev.read_mmlu(fake_evals, decontaminate=False)
    # files in name order (a before b), per row weak then strong
    assert raw.prompt.tolist() == ["q1", "q1", "q2", "q2", "q1", "q1", "q3\nline2", "q3\nline2"]
    assert raw.model.tolist()[:2] == [W, S]
    assert raw.score.tolist()[:4] == [0.0, 1.0, 1.0, 0.0]
    assert set(raw.kind.tolist()) == {"correct"}
    assert raw.source.tolist()[0] == "routellm/mmlu/a"
    clean = rev.read_mmlu(fake_evals)
    assert "q2" not in clean.prompt.tolist() and len(clean) == 6


def test_read_gsm8k_small(fake_evals):
    t = rev.read_gsm8k(fake_evals)
    assert t.prompt.tolist() == ["g1", "g1"]
    assert dict(zip(t.model.tolist(), t.score.tolist())) == {W: 1.0, S: 0.0}


def test_read_mt_bench_decontaminates_on_either_turn(fake_evals):
    assert [q.question_id for q in rev.read_mt_bench(fake_evals, decontaminate=False)] == [1, 2, 3]
    qs = rev.read_mt_bench(fake_evals)
    assert [q.question_id for q in qs] == [1, 2]
    assert qs[0].turns == ("t1a", "t1b")


def test_judgments_average_turns_and_drop_failed(tmp_path, fake_evals):
    path = _jsonl(
        tmp_path / "single.jsonl",
        [
            {"question_id": 1, "model": "a", "score": 8, "turn": 1},
            {"question_id": 1, "model": "a", "score": 8.5, "turn": 2},
            {"question_id": 1, "model": "b", "score": -1, "turn": 1},
            {"question_id": 1, "model": "b", "score": 4, "turn": 2},
            {"question_id": 3, "model": "a", "score": 2, "turn": 1},  # decontaminated question
        ],
    )
    judgments = rev.read_single_judgments(path)
    assert len(judgments) == 5
    table, info = rev.judgments_to_outcomes(judgments, rev.read_mt_bench(fake_evals))
    assert table.prompt.tolist() == ["t1a", "t1a"]
    assert dict(zip(table.model.tolist(), table.score.tolist())) == {"a": 8.25, "b": 4.0}
    assert info == {"failed_scores_dropped": 1, "judgments_of_other_questions": 1}
    assert set(table.kind.tolist()) == {"grade"}


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"question_id": 1, "model": "a", "turn": 1}, "field 'score' missing"),
        ({"question_id": "1", "model": "a", "score": 5, "turn": 1}, "'question_id' must be"),
        ({"question_id": 1, "model": "a", "score": 11, "turn": 1}, "1-10 or -1, got 11"),
        ({"question_id": 1, "model": "a", "score": 5, "turn": 0}, "'turn' must be"),
    ],
)
def test_judgment_errors_name_file_and_line(tmp_path, obj, message):
    good = {"question_id": 1, "model": "a", "score": 5, "turn": 1}
    path = _jsonl(tmp_path / "j.jsonl", [good, obj])
    with pytest.raises(ValueError, match=message) as err:
        rev.read_single_judgments(path)
    assert f"{path}:2:" in str(err.value)


def test_bad_csv_value_names_file_row_and_column(tmp_path):
    path = _write_csv(tmp_path / "mmlu_x.csv", ["q1,True,True,a,b", "q2,maybe,True,a,b"])
    with pytest.raises(ValueError, match=r"row 2 \(after the header\), column '" + WC):
        rev.read_correctness_csv(path, [WC, SC])
    # a number other than 0/1 is a valid grade for the generic reader, but not for MMLU
    path2 = _write_csv(tmp_path / "mmlu_y.csv", ["q1,True,True,a,b", "q2,0.5,True,a,b"])
    assert rev.read_correctness_csv(path2, [WC, SC]).kind[0] == "grade"


def test_missing_column_and_empty_cells(tmp_path):
    path = _write_csv(tmp_path / "x.csv", ["q1,True,,a,b"])
    with pytest.raises(ValueError, match="no column"):
        rev.read_correctness_csv(path, ["other-model"])
    with pytest.raises(ValueError, match=r"row 1 .* column '" + SC):
        rev.read_correctness_csv(path, [WC, SC])
    t = rev.read_correctness_csv(path, allow_missing=True)  # models found from the header
    assert t.model.tolist() == [W]


def test_bad_jsonl_names_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"eval_prompt": "a"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:2: invalid JSON"):
        rev.read_contaminated_prompts(path)
    path.write_text('{"eval_prompt": "a"}\n{"train_prompt": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:2: field 'eval_prompt'"):
        rev.read_contaminated_prompts(path)


def test_questions_errors(tmp_path):
    path = _jsonl(
        tmp_path / "q.jsonl",
        [{"question_id": 1, "turns": ["a"]}, {"question_id": 1, "turns": ["b"]}],
    )
    with pytest.raises(ValueError, match="q.jsonl:2: duplicate question_id 1"):
        rev.read_mt_bench_questions(path)
    path = _jsonl(tmp_path / "q2.jsonl", [{"question_id": 1, "turns": []}])
    with pytest.raises(ValueError, match="q2.jsonl:1: field 'turns'"):
        rev.read_mt_bench_questions(path)


# ---- real data (skipped without ../shared/data; CI makes it an error) ----


def test_real_counts(data_dir):
    evals = rev.evals_dir(data_dir)
    assert len(rev.mmlu_files(evals)) == rev.NUM_MMLU_FILES
    mmlu_raw = rev.read_mmlu(evals, decontaminate=False)
    mmlu = rev.read_mmlu(evals)
    assert (len(mmlu_raw) // 2, len(mmlu) // 2) == (14042, 14037)
    gsm = rev.read_gsm8k(evals)
    assert len(rev.read_gsm8k(evals, decontaminate=False)) // 2 == 1319 and len(gsm) // 2 == 1307
    assert len(rev.read_mt_bench(evals, decontaminate=False)) == 80
    assert len(rev.read_mt_bench(evals)) == 72
    assert set(mmlu.models()) == {S, W} and np.isin(mmlu.score, (0.0, 1.0)).all()


def test_real_mt_bench_judgments(data_dir):
    path = data_dir / rev.MT_BENCH_JUDGMENTS_SUBPATH
    js = rev.read_single_judgments(path)
    assert len(js) == 320 and {j.model for j in js} == {"martian", "unify"}
    table = rev.read_mt_bench_judgments(path, rev.read_mt_bench(rev.evals_dir(data_dir)))
    assert len(table) == 2 * 72
