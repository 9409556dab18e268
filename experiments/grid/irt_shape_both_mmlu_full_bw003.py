"""irt+shape, battle weight 0.03, on both_mmlu_full: the same recipe on every training row we have.

Why: GSM8K is the one benchmark no mix moved (every learned router 0.47-0.58 against prompt
length's 0.599 and the paper's 0.622). The both_mmlu mix keeps 20% of RouterBench train and 25% of
LLMRouter train and leaves out RouterDC's ARC-Easy, cuts made earlier for CPU time (the PyTorch
embedder), not for quality. LLMRouter's training file grades 9 open models (7B to 70B) on ~1k
GSM8K/MATH-style word problems among its 14 tasks, and RouterBench's rows are the pair's own
correctness: the hypothesis is that more graded math and more of the pair's outcomes carry a
difficulty signal the 25% cut threw away. Nothing else differs from irt_shape_both_mmlu_bw003
(battle weight, steps, featurizer), so the row isolates the data.

Mix: both_mmlu_full = judge + all of RouterBench train, RouterDC ARC-Challenge/ARC-Easy/GSM8K/HumanEval
train and LLMRouter train + the 1,500-question MMLU golden split (evaluated on the other 12,537);
decontaminated against MMLU, GSM8K, MT-Bench, the held-out judge prompts and the RouterBench test
prompts, as every mix.

Command:
    python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu_full_bw003.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: (not run yet)
"""

import ml_collections

from experiments.grid.irt_shape_both_mmlu_bw003 import get_config as base_config


def get_config() -> ml_collections.ConfigDict:
    """irt_shape_both_mmlu_bw003's config on the both_mmlu_full mix."""
    c = base_config()
    c.name = "irt_shape_both_mmlu_full_bw003"
    c.grid = ml_collections.ConfigDict({"mix": "both_mmlu_full", "label": "irt+shape bw=0.03"})
    return c
