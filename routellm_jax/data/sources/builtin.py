"""The mixtures' built-in sources: each name reads the real shared data (through the data folder a
mixture is built from) into a :class:`~routellm_jax.data.records.TrainingData`.

Only training files, except the sources named for what they are: ``mmlu_golden`` (the MMLU golden
split, evaluation data kept for training by the golden-split rule) and the ``*_test`` splits, for a
spec that asks for them. :mod:`routellm_jax.data.mixtures` describes what a mixture does with them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.data.judge_split import prompt_id
from routellm_jax.data.records import OutcomeTable, TrainingData
from routellm_jax.data.sources._common import ReadReport
from routellm_jax.data.sources.alpaca_eval import read_alpaca_eval_pairwise
from routellm_jax.data.sources.chatbot_arena import ARENA_55K_REPO, load_arena_battles
from routellm_jax.data.sources.correctness import read_routerbench_csv, read_scores_json
from routellm_jax.data.sources.fastchat import read_arena_bench_v1
from routellm_jax.data.sources.judge_battles import read_judge_battles
from routellm_jax.data.sources.routellm_evals import evals_dir, read_mmlu

_ROUTERBENCH = Path("shuhao02__RouterDC/datasets/routerbench_zs")
_ROUTERDC = Path("shuhao02__RouterDC/datasets/split2_model7")
_LLMROUTER = Path("ulab-uiuc__LLMRouter/data/dcrouter_preprocessed")
_ALPACA = Path("derived/alpaca_eval_pairwise_labels.csv")
_JUDGE_EXAMPLE = Path("anyscale__templates/templates/llm-router/assets/labeled_test_dataset.json")


# ------------------------------------------------------------------------ built-in sources
def _report_into(report: ReadReport | None) -> ReadReport:
    return report if report is not None else ReadReport()


# AlpacaEval's "NullModel" (generator "example") answers every instruction with one constant,
# judge-gaming response: a probe of the annotator, not a model whose wins say anything about the
# prompt. The built-in source drops its battles unless options={"keep_null_model": True}.
ALPACA_NULL_MODEL = "example"


def _load_alpaca_eval(root: Path, report: ReadReport | None = None, **options: Any) -> TrainingData:

    keep_null = bool(options.pop("keep_null_model", False))
    report = _report_into(report)
    table = read_alpaca_eval_pairwise(root / _ALPACA, skip_bad_rows=True, report=report, **options)
    if not keep_null:
        null = (table.model_a == ALPACA_NULL_MODEL) | (table.model_b == ALPACA_NULL_MODEL)
        report.note("null_model_battles_dropped", int(null.sum()))
        table = table.take(~null)
    return TrainingData.of(comparisons=table)


def _load_arena_bench(root: Path, report: ReadReport | None = None, **options: Any) -> TrainingData:

    return TrainingData.of(
        outcomes=read_arena_bench_v1(
            root, skip_bad_rows=True, report=_report_into(report), **options
        )
    )


def _routerbench(split: str) -> Callable[..., TrainingData]:
    def load(root: Path, report: ReadReport | None = None, **options: Any) -> TrainingData:

        files = sorted((root / _ROUTERBENCH).glob(f"*_{split}.csv"))
        if not files:
            raise FileNotFoundError(f"no *_{split}.csv files in {root / _ROUTERBENCH}")
        rep = _report_into(report)
        return TrainingData.of(
            outcomes=OutcomeTable.concat(
                [read_routerbench_csv(f, skip_bad_rows=True, report=rep, **options) for f in files]
            )
        )

    return load


def _routerdc(split: str) -> Callable[..., TrainingData]:
    def load(root: Path, report: ReadReport | None = None, **options: Any) -> TrainingData:

        folder = root / _ROUTERDC
        files = sorted(
            p for p in folder.glob("*.json") if p.stem.endswith((f"_{split}", f"-{split}"))
        )
        if not files:
            raise FileNotFoundError(f"no *_{split}.json files in {folder}")
        rep = _report_into(report)
        return TrainingData.of(
            outcomes=OutcomeTable.concat(
                [
                    read_scores_json(
                        f, skip_bad_rows=True, report=rep, source=f"routerdc/{f.stem}", **options
                    )
                    for f in files
                ]
            )
        )

    return load


def _llmrouter(split: str) -> Callable[..., TrainingData]:
    def load(root: Path, report: ReadReport | None = None, **options: Any) -> TrainingData:

        path = root / _LLMROUTER / f"{split}.json"
        return TrainingData.of(
            outcomes=read_scores_json(
                path,
                skip_bad_rows=True,
                report=_report_into(report),
                source=f"llmrouter/{split}",
                **options,
            )
        )

    return load


def _load_judge_example(
    root: Path, report: ReadReport | None = None, **options: Any
) -> TrainingData:

    return TrainingData.of(
        comparisons=read_judge_battles(
            root / _JUDGE_EXAMPLE, report=_report_into(report), **options
        )
    )


def _load_chatbot_arena(
    root: Path, report: ReadReport | None = None, **options: Any
) -> TrainingData:

    path = options.pop("path", ARENA_55K_REPO)
    return TrainingData.of(
        comparisons=load_arena_battles(
            path, skip_bad_rows=True, report=_report_into(report), **options
        )
    )


def _load_mmlu_golden(root: Path, report: ReadReport | None = None, **options: Any) -> TrainingData:
    # The golden split's ids live in the evaluation package, above this one: imported here only.
    from routellm_jax.eval.golden import golden_split_ids

    if options:
        raise ValueError(f"source 'mmlu_golden' takes no options, got {sorted(options)}")
    del report  # read_mmlu reads the pair's correctness files strictly: nothing is skipped
    ids = golden_split_ids()
    table = read_mmlu(evals_dir(root), decontaminate=True)
    keep = np.array([prompt_id(p) in ids for p in table.prompt], dtype=bool)
    return TrainingData.of(outcomes=table.take(keep))


BUILTIN_SOURCES: dict[str, Callable[..., TrainingData]] = {
    # training sources
    "alpaca_eval": _load_alpaca_eval,
    "arena_bench_v1": _load_arena_bench,
    "routerbench_train": _routerbench("train"),
    "routerdc_train": _routerdc("train"),
    "llmrouter_train": _llmrouter("train"),
    "judge_example": _load_judge_example,
    "chatbot_arena": _load_chatbot_arena,  # options: path= local file or Hub repo id
    # the MMLU golden split: evaluation data by design (give it decontaminate=False)
    "mmlu_golden": _load_mmlu_golden,
    # held-out splits: only when a spec names them
    "routerbench_test": _routerbench("test"),
    "routerdc_test": _routerdc("test"),
    "llmrouter_test": _llmrouter("test"),
}
