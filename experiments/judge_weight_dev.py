"""Choose irt's judge-battle weight on TRAINING data only (the grid's irt_shape_both_mmlu_bw* cells).

Dev sets: 30% of the golden MMLU split (pair correctness, by hash) and 20% of the mix's own
AlpacaEval training prompts (the pair's preference share); both are held out of training here. No
evaluation set (non-golden MMLU, GSM8K, held-out judge split) is read. Prints, per battle weight,
the dev APGRs of irt on all-MiniLM-L6-v2+shape trained on the rest of the both_mmlu mix.

Usage (after run_grid has built the mix under its --workdir):
    python -m experiments.judge_weight_dev /tmp/routellm_grid3/mixes/both_mmlu 1 0.3 0.1 0.03 0
"""

import logging
import sys
import time
from pathlib import Path

import ml_collections
import numpy as np

from experiments import run_grid as G
from routellm_jax.data.mixtures import BUILTIN_SOURCES, load_mixture
from routellm_jax.data.records import TrainingData
from routellm_jax.eval.baselines import prompt_length_router
from routellm_jax.eval.benchmarks import benchmark_from_outcomes
from routellm_jax.eval.evaluate import evaluate_win_rates
from routellm_jax.eval.judge_heldout import alpaca_pair_outcomes
from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.paths import data_dir
from routellm_jax.training.config import default_config

logging.basicConfig(level=logging.WARNING)
root = data_dir(None)
store = G.EmbeddingStore()
data, card = load_mixture(Path(sys.argv[1]))
gold = BUILTIN_SOURCES["mmlu_golden"](root).outcomes
gdev = {p for p in set(gold.prompt.tolist()) if G.hash_fraction(p, "golden_dev") < 0.3}
alp = alpaca_pair_outcomes(root, G.STRONG, G.WEAK)
train_prompts = set(data.comparisons.prompt.tolist())
adev = {
    p
    for p in set(alp.prompt.tolist())
    if p in train_prompts and G.hash_fraction(p, "alpaca_dev") < 0.2
}
drop = gdev | adev
c, o = data.comparisons, data.outcomes
train = TrainingData(
    c.take(np.array([p not in drop for p in c.prompt])),
    o.take(np.array([p not in drop for p in o.prompt])),
)
bg = benchmark_from_outcomes(
    gold.take(np.array([p in gdev for p in gold.prompt])), G.STRONG, G.WEAK, name="gdev"
)
ba = benchmark_from_outcomes(
    alp.take(np.array([p in adev for p in alp.prompt])),
    G.STRONG,
    G.WEAK,
    name="adev",
    duplicates="mean",
)


def ap(b, wr):
    return round(float(evaluate_win_rates(b, np.asarray(wr, np.float64)).metrics.apgr_trapezoid), 3)


print(
    "gdev",
    len(bg),
    "adev",
    len(ba),
    "prompt_length",
    ap(bg, prompt_length_router(list(bg.prompts))),
    ap(ba, prompt_length_router(list(ba.prompts))),
    flush=True,
)
S = "all-MiniLM-L6-v2+shape"
for bw in [float(x) for x in sys.argv[2:]]:
    cf = default_config()
    cf.name = "dev2"
    cf.arch = "irt"
    cf.arch_config = ml_collections.ConfigDict(
        dict(
            latent_dim=16,
            hidden_dim=256,
            alpha=0.1,
            win_rate_mode="gain",
            featurizer=S,
            text_dim=featurizer_dim(S),
            battle_weight=bw,
        )
    )
    cf.steps = 2000
    cf.batch_size = 512
    cf.optimizer.lr = 1e-3
    cf.optimizer.weight_decay = 1e-5
    cf.optimizer.warmup_steps = 100
    cf.data.holdout_fraction = 0.02
    cf.log_every = 2000
    cf.checkpoint.async_save = False
    cf.checkpoint.keep = 1
    t = time.time()
    fn, _ = G.train_cell(cf, train, store, Path("/tmp/judge_weight_dev") / str(bw))
    print(
        "battle_weight",
        bw,
        "golden_dev",
        ap(bg, fn(list(bg.prompts), G.STRONG, G.WEAK)),
        "alpaca_train_dev",
        ap(ba, fn(list(ba.prompts), G.STRONG, G.WEAK)),
        "secs",
        round(time.time() - t),
        flush=True,
    )
