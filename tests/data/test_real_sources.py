"""One check per real source in the shared data folder: the counts its README / FILES.md state,
and every model name resolving in the canonical table (strict reads raise on an unknown name)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from routellm_jax.data.decontaminate import normalize_text, standard_eval_sets
from routellm_jax.data.elo import compute_mle_elo, outcomes_to_comparisons
from routellm_jax.data.mixtures import MixtureSpec, SourceSpec, build_mixture
from routellm_jax.data.model_names import ModelTable, scan_data_model_names
from routellm_jax.data.sources import ReadReport
from routellm_jax.data.sources.alpaca_eval import (
    read_alpaca_eval_annotations,
    read_alpaca_eval_pairwise,
    win_counts,
)
from routellm_jax.data.sources.correctness import read_routerbench_csv, read_scores_json
from routellm_jax.data.sources.fastchat import (
    read_arena_bench_v1,
    read_score_matrix,
    read_single_judgments,
)
from routellm_jax.data.sources.judge_battles import read_judge_battles

MIXTRAL = "mixtral-8x7b-instruct-v0.1"
GPT4 = "gpt-4-1106-preview"


@pytest.fixture(scope="module")
def alpaca(data_dir: Path):
    report = ReadReport()
    start = time.perf_counter()
    table = read_alpaca_eval_pairwise(
        data_dir / "derived/alpaca_eval_pairwise_labels.csv", skip_bad_rows=True, report=report
    )
    return table, report, time.perf_counter() - start


def test_alpaca_eval_pooled(alpaca) -> None:
    table, report, seconds = alpaca
    assert report.rows_read == 108_665  # README: 108,665 rows
    # The only bad rows are 64 annotations without a preference; no unknown generator.
    assert report.n_skipped == 64 and dict(report.skipped_by_field) == {"preference": 64}
    assert len(set(table.prompt)) == 805
    assert set(table.model_a) == {GPT4, "text-davinci-003"}  # the two baselines
    assert len(table.models()) == 103
    assert seconds < 30, f"108k AlpacaEval rows took {seconds:.1f}s"


def test_alpaca_eval_raw_mixtral(data_dir: Path) -> None:
    path = (
        data_dir
        / "tatsu-lab__alpaca_eval/results/Mixtral-8x7B-Instruct-v0.1/alpaca_eval_gpt4_turbo_fn/annotations.json"
    )
    t = read_alpaca_eval_annotations(path)
    assert len(t) == 805
    assert set(t.model_a) == {GPT4} and set(t.model_b) == {MIXTRAL}
    assert win_counts(t, MIXTRAL)["wins"] == 183  # README: Mixtral wins 183 of 805


def test_all_raw_alpaca_annotations_resolve(data_dir: Path) -> None:
    files = sorted((data_dir / "tatsu-lab__alpaca_eval/results").glob("*/*/annotations.json"))
    assert len(files) == 9
    report = ReadReport()
    for f in files:
        read_alpaca_eval_annotations(f, skip_bad_rows=True, report=report)
    assert report.rows_read == 9 * 805
    assert set(report.skipped_by_field) <= {"preference"}  # never a model name


def test_arena_bench_v1(data_dir: Path) -> None:
    report = ReadReport()
    grades = read_arena_bench_v1(data_dir, report=report)
    prompts, models, scores = grades.pivot()
    assert len(prompts) == 300 and len(models) == 15  # README: 300 prompts x 15 models
    assert GPT4 in models and MIXTRAL in models
    assert report.notes == {"failed_judgments_dropped": 39}
    # The derived matrix holds the same grades.
    m_report = ReadReport()
    matrix = read_score_matrix(
        data_dir / "derived/arena_bench_v1_score_matrix.csv", report=m_report
    )
    p2, m2, s2 = matrix.pivot()
    assert m2 == models and m_report.notes == {"missing_scores": 39}
    order = [p2.index(p) for p in prompts]
    pd.testing.assert_frame_equal(pd.DataFrame(scores), pd.DataFrame(s2[order]))
    # As battles with a 1-point tie band, GPT-4-1106 tops the Elo table.
    elo = compute_mle_elo(outcomes_to_comparisons(grades, tie_band=1.0))
    assert elo.index[0] == GPT4 and elo["llama-2-70b-chat"] == pytest.approx(1082.0)


ROUTERBENCH_ROWS = {
    "arc_challenge_test": 445,
    "arc_challenge_train": 1039,
    "mbpp_test": 128,
    "mbpp_train": 299,
    "winograde_test": 380,
    "winograde_train": 887,
}


def test_routerbench(data_dir: Path) -> None:
    folder = data_dir / "shuhao02__RouterDC/datasets/routerbench_zs"
    for stem, rows in ROUTERBENCH_ROWS.items():
        report = ReadReport()
        t = read_routerbench_csv(folder / f"{stem}.csv", report=report)
        assert report.rows_read == rows and report.n_skipped == 0, stem
        assert len(t.models()) == 11 and {GPT4, MIXTRAL} <= set(t.models())
        assert len(t) == rows * 11 - report.notes["missing_scores"]


ROUTERDC_ROWS = {
    "MATH_prealgebra": 871,
    "arc_challenge_test": 352,
    "arc_challenge_train": 820,
    "arc_easy_test": 713,
    "arc_easy_train": 1663,
    "ceval": 1346,
    "cmmlu_test": 3475,
    "cmmlu_train": 2000,
    "gsm8k-test": 1319,
    "gsm8k-train": 1000,
    "humaneval_test": 49,
    "humaneval_train": 115,
    "javascript": 164,
    "mbpp": 500,
    "mmlu_test": 4213,
    "mmlu_train": 2000,
}


def test_routerdc_split2_model7(data_dir: Path) -> None:
    folder = data_dir / "shuhao02__RouterDC/datasets/split2_model7"
    for stem, rows in ROUTERDC_ROWS.items():
        t = read_scores_json(folder / f"{stem}.json")
        assert len(t) == rows * 7, stem
        assert len(t.models()) == 7


def test_llmrouter(data_dir: Path) -> None:
    folder = data_dir / "ulab-uiuc__LLMRouter/data/dcrouter_preprocessed"
    for split, rows in (("train", 5608), ("test", 500)):
        report = ReadReport()
        t = read_scores_json(folder / f"{split}.json", report=report)
        assert report.rows_read == rows and report.n_skipped == 0
        assert len(t.models()) == 9 and MIXTRAL not in t.models()


def test_judge_example(data_dir: Path) -> None:
    path = data_dir / "anyscale__templates/templates/llm-router/assets/labeled_test_dataset.json"
    t = read_judge_battles(path)
    assert len(t) == 10  # README: 10 rows


def test_mt_bench_router_judgments(data_dir: Path) -> None:
    report = ReadReport()
    t = read_single_judgments(
        data_dir / "lm-sys__RouteLLM/benchmarks/mt-bench/gpt-4_single.jsonl",
        data_dir / "lm-sys__RouteLLM/routellm/evals/mt_bench/question.jsonl",
        report=report,
    )
    assert report.rows_read == 320 and t.models() == ["martian", "unify"]
    assert len(t) == 160  # 80 questions x 2 routers, turns averaged


def test_every_other_model_name_resolves(data_dir: Path) -> None:
    table = ModelTable.builtin()
    scanned = scan_data_model_names(data_dir)
    assert table.unknown(scanned) == [] and len(scanned) > 130
    names = list(
        pd.read_csv(
            data_dir / "lm-sys__RouteLLM/routellm/evals/gsm8k/gsm8k_responses.csv", nrows=1
        ).columns[1:3]
    )
    names += list(
        json.loads(
            (
                data_dir / "ulab-uiuc__LLMRouter/data/example_data/llm_candidates/default_llm.json"
            ).read_text()
        )
    )
    names += pd.read_csv(
        data_dir / "lmarena__arena-hard-auto/leaderboard/arena_hard_leaderboard_20240731.csv"
    )["model"].tolist()
    answers = sorted(
        (data_dir / "lmarena__arena-hard-auto/data/arena-bench-v1/model_answer").glob("*.jsonl")
    )
    names += [json.loads(f.open().readline())["model_id"] for f in answers]
    assert table.unknown(names) == []
    assert table.canonical(names[0]) == MIXTRAL and table.canonical(names[1]) == GPT4
    judgment_files = (
        data_dir / "lmarena__arena-hard-auto/data/arena-bench-v1/model_judgment"
    ).glob("*.jsonl")
    assert table.unknown([f.stem for f in judgment_files], context="arena-bench-v1-file") == []


def test_real_mixture_decontaminates_mt_bench_from_alpaca(data_dir: Path, alpaca) -> None:
    evals = standard_eval_sets(data_dir)
    assert len(evals["gsm8k"]) == 1319 and len(evals["mt_bench"]) == 160
    spec = MixtureSpec(
        [
            SourceSpec("alpaca_eval", weight=0.05),
            SourceSpec("routerbench_train", rows=100),
            SourceSpec("llmrouter_train", rows=100),
        ],
        seed=0,
    )
    data, card = build_mixture(spec, data_root=data_dir, eval_prompts=evals)
    entry = card["sources"][0]
    # AlpacaEval's 805 instructions include MT-Bench questions verbatim; count them independently.
    table = alpaca[0]
    null = (table.model_a == "example") | (table.model_b == "example")
    mt = {normalize_text(p) for p in evals["mt_bench"]}
    expected = sum(normalize_text(p) in mt for p in table.prompt[~null])
    assert expected > 0
    assert entry["decontamination"]["by_eval_set"] == {"mt_bench": {"exact": expected}}
    assert entry["read_report"]["n_skipped"] == 64
    assert entry["read_report"]["notes"]["null_model_battles_dropped"] == int(null.sum()) > 0
    assert not set(data.comparisons.prompt) & set(evals["mt_bench"])
    assert "example" not in data.comparisons.models()
    assert len(set(data.outcomes.prompt)) == 200
