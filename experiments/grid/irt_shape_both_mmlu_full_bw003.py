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
    RESULT: mmlu=0.620, gsm8k=0.563, alpaca_heldout=0.516, arena_heldout=0.511, arena_heldout:claude-2.1/mistral-7b-instruct-v0.1=0.493, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.453, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.365 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from experiments.grid.irt_shape_both_mmlu_bw003 import get_config as base_config


def get_config() -> ml_collections.ConfigDict:
    """irt_shape_both_mmlu_bw003's config on the both_mmlu_full mix."""
    c = base_config()
    c.name = "irt_shape_both_mmlu_full_bw003"
    c.grid = ml_collections.ConfigDict({"mix": "both_mmlu_full", "label": "irt+shape bw=0.03"})
    return c
