"""Choose irt's per-source nuisance term (``source_effect``) on TRAINING data only.

Dev sets, all held out of training here and all from the training mix (no evaluation set is read:
not the non-golden MMLU, not GSM8K test, not the held-out judge split):

* ``golden_dev``: a hashed part of the golden MMLU split, the pair's correctness (APGR for
  gpt-4-1106 vs Mixtral);
* ``gsm8k_dev``: a hashed part of RouterDC's GSM8K *train* questions, 7 open models' correctness.
  The pair has no labels there, so it is scored on every pair of those models whose training-part
  accuracies differ by >= 0.2 (stronger one as "strong"), mean APGR; and as ``gsm8k_difficulty``,
  the Spearman correlation of the router's mean predicted P(correct) over those models with their
  mean correctness per question: does the router rank math word problems by difficulty? (For two
  7B models gain is not difficulty -- hard problems are lost by both -- so the APGR stays near 0.5
  for every router; for a strong/weak pair like gpt-4 (86% on GSM8K) and Mixtral (64%) the gain
  is mostly the weak model's failures, i.e. difficulty.)
* ``alpaca_dev``: a hashed part of the mix's AlpacaEval training prompts, the pair's preference;
* ``arena_dev``: a hashed part of the mix's arena-bench-v1 training prompts, the pair's GPT-4 grades.

``--variants`` lists the ``source_effect`` variants (default none, difficulty, model);
``--noise-dims N`` trains with irt's input noise on the first N features only (the MiniLM part of
MiniLM + shape: 384).

``--folds K`` repeats with K disjoint hash slices (fold i holds out [0.3 i, 0.3 (i+1)) of the
golden and GSM8K-train prompts, 0.2 of the AlpacaEval and arena-bench ones), and the printed numbers are the
means over folds (the golden dev part is ~400 questions: one slice is noisy).

Usage (after run_grid has built the mix under its --workdir):
    python -m experiments.source_effect_dev /tmp/routellm_grid4/mixes/both_mmlu --folds 3 \
        --variants none difficulty model
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from pathlib import Path

import ml_collections
import numpy as np
import pandas as pd

from experiments import run_grid as G
from experiments.grid import SHAPE, SOURCE_GROUPS
from routellm_jax.data.mixtures import BUILTIN_SOURCES, load_mixture
from routellm_jax.data.records import TrainingData
from routellm_jax.eval.baselines import prompt_length_router
from routellm_jax.eval.benchmarks import Benchmark, benchmark_from_outcomes
from routellm_jax.eval.evaluate import evaluate_win_rates
from routellm_jax.eval.judge_heldout import alpaca_pair_outcomes
from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.paths import data_dir
from routellm_jax.training.config import default_config

GSM8K_SOURCE = "routerdc/gsm8k-train"
ARENA_SOURCE = "arena_bench_v1"
FEATURIZER = SHAPE


# The label sources whose labeller (an LLM judge) has its own view of each model; the correctness
# sources' per-model levels are real ability on that domain, which should transfer.
JUDGE_GROUPS = ("alpaca_eval", "arena_bench_v1")


def cell_config(
    variant: str,
    battle_weight: float,
    groups: tuple[str, ...] = SOURCE_GROUPS,
    noise_dims: int | None = None,
) -> ml_collections.ConfigDict:
    """The irt+shape cell's trainer config with ``source_effect = variant`` over ``groups``."""
    cf = default_config()
    cf.name = f"source_dev_{variant}"
    cf.arch = "irt"
    extra = {} if variant == "none" else {"source_groups": tuple(groups)}
    cf.arch_config = ml_collections.ConfigDict(
        dict(
            latent_dim=16,
            hidden_dim=256,
            alpha=0.1,
            win_rate_mode="gain",
            featurizer=FEATURIZER,
            text_dim=featurizer_dim(FEATURIZER),
            battle_weight=battle_weight,
            source_effect=variant,
            noise_dims=noise_dims,
            **extra,
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
    return cf


def apgr(bench: Benchmark, wr) -> float:
    """APGR (trapezoid) of win rates on a benchmark."""
    return float(evaluate_win_rates(bench, np.asarray(wr, np.float64)).metrics.apgr_trapezoid)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties).

    Example:
        >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 0.0]))
        -1.0
    """
    return float(pd.Series(x).rank().corr(pd.Series(y).rank()))


def mean_correctness_fn(workdir: Path, models: list[str], store: G.EmbeddingStore):
    """``prompts -> mean predicted P(correct)`` over ``models`` of the irt run in ``workdir``."""
    from routellm_jax.models.irt import score_models
    from routellm_jax.models.registry import get_architecture
    from routellm_jax.training.checkpoints import load_params

    name, acfg, params = load_params(workdir)
    arch = get_architecture(name)
    ids = [list(acfg.models).index(m) for m in models]

    feat = store.featurizer(acfg.featurizer) or arch.make_featurizer(acfg)

    def fn(prompts: list[str]) -> np.ndarray:
        inputs = arch.prompt_inputs(prompts, feat, acfg)
        return np.asarray(score_models(params, inputs, ids, acfg)).mean(axis=1)

    return fn


def main() -> None:
    """CLI (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mix", help="a mix folder written by run_grid (<workdir>/mixes/both_mmlu)")
    ap.add_argument("--folds", type=int, default=1)
    ap.add_argument("--variants", nargs="+", default=["none", "difficulty", "model"])
    ap.add_argument("--noise-dims", type=int, default=None, help="irt noise_dims (default: all)")
    ap.add_argument("--battle-weight", type=float, default=0.03)
    ap.add_argument("--workdir", default="/tmp/source_effect_dev")
    ap.add_argument(
        "--groups", choices=("all", "judge"), default="all", help="SOURCE_GROUPS or JUDGE_GROUPS"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = data_dir(None)
    store = G.EmbeddingStore()
    data, _ = load_mixture(Path(args.mix))
    gold = BUILTIN_SOURCES["mmlu_golden"](root).outcomes
    alp = alpaca_pair_outcomes(root, G.STRONG, G.WEAK)
    o = data.outcomes
    gsm = o.take(o.source == GSM8K_SOURCE)
    arena = o.take(o.source == ARENA_SOURCE)
    if not len(gsm):
        raise SystemExit(f"{args.mix}: no {GSM8K_SOURCE!r} rows in the mix")
    train_prompts = set(data.comparisons.prompt.tolist())
    results: dict[str, list[dict[str, float]]] = {v: [] for v in ["prompt_length", *args.variants]}
    for fold in range(args.folds):
        lo, hi = 0.3 * fold, 0.3 * (fold + 1)
        alo, ahi = 0.2 * fold, 0.2 * (fold + 1)

        def held(p: str, salt: str, lo: float = lo, hi: float = hi) -> bool:
            return lo <= G.hash_fraction(p, salt) < hi

        gdev = {p for p in set(gold.prompt.tolist()) if held(p, "golden_dev")}
        mdev = {p for p in set(gsm.prompt.tolist()) if held(p, "gsm8k_dev")}
        adev = {
            p
            for p in set(alp.prompt.tolist())
            if p in train_prompts and held(p, "alpaca_dev", alo, ahi)
        }
        rdev = {p for p in set(arena.prompt.tolist()) if held(p, "arena_dev", alo, ahi)}
        drop = gdev | mdev | adev | rdev
        c = data.comparisons
        train = TrainingData(
            c.take(np.array([p not in drop for p in c.prompt])),
            o.take(np.array([p not in drop for p in o.prompt])),
        )
        benches = {
            "golden_dev": benchmark_from_outcomes(
                gold.take(np.array([p in gdev for p in gold.prompt])), G.STRONG, G.WEAK, name="g"
            ),
            "alpaca_dev": benchmark_from_outcomes(
                alp.take(np.array([p in adev for p in alp.prompt])),
                G.STRONG,
                G.WEAK,
                name="a",
                duplicates="mean",
            ),
            "arena_dev": benchmark_from_outcomes(
                arena.take(np.array([p in rdev for p in arena.prompt])),
                G.STRONG,
                G.WEAK,
                name="r",
                duplicates="mean",
            ),
        }
        # GSM8K-train pairs: accuracies from the training part only.
        gtrain = gsm.take(np.array([p not in mdev for p in gsm.prompt]))
        acc = {m: float(gtrain.score[gtrain.model == m].mean()) for m in sorted(set(gtrain.model))}
        gdev_table = gsm.take(np.array([p in mdev for p in gsm.prompt]))
        pairs = [
            (s, w) if acc[s] > acc[w] else (w, s)
            for s, w in itertools.combinations(sorted(acc), 2)
            if abs(acc[s] - acc[w]) >= 0.2
        ]
        gsm_benches = {
            (s, w): benchmark_from_outcomes(gdev_table, s, w, name=f"{s}/{w}") for s, w in pairs
        }

        gsm_prompts = sorted(mdev)
        by_prompt = pd.Series(gdev_table.score).groupby(gdev_table.prompt).mean()
        gsm_mean = by_prompt.loc[gsm_prompts].to_numpy()

        def score(
            fn,
            mean_p=None,
            benches=benches,
            gsm_benches=gsm_benches,
            gsm_prompts=gsm_prompts,
            gsm_mean=gsm_mean,
        ) -> dict[str, float]:
            out = {k: apgr(b, fn(list(b.prompts), G.STRONG, G.WEAK)) for k, b in benches.items()}
            out["gsm8k_dev"] = float(
                np.mean([apgr(b, fn(list(b.prompts), s, w)) for (s, w), b in gsm_benches.items()])
            )
            if mean_p is not None:
                out["gsm8k_difficulty"] = spearman(mean_p(gsm_prompts), gsm_mean)
            return out

        results["prompt_length"].append(
            score(
                lambda ps, s, w: prompt_length_router(ps),
                lambda ps: -np.array([len(p) for p in ps], np.float64),
            )
        )
        print(
            f"fold {fold}: golden_dev {len(benches['golden_dev'])}, alpaca_dev "
            f"{len(benches['alpaca_dev'])}, gsm8k_dev {len(mdev)} x {len(pairs)} pairs",
            "prompt_length",
            {k: round(v, 3) for k, v in results["prompt_length"][-1].items()},
            flush=True,
        )
        for variant in args.variants:
            t = time.time()
            run_dir = Path(args.workdir) / f"{variant}_{fold}"
            fn, _ = G.train_cell(
                cell_config(
                    variant,
                    args.battle_weight,
                    SOURCE_GROUPS if args.groups == "all" else JUDGE_GROUPS,
                    args.noise_dims,
                ),
                train,
                store,
                run_dir,
            )
            results[variant].append(score(fn, mean_correctness_fn(run_dir, sorted(acc), store)))
            print(
                f"fold {fold}",
                variant,
                {k: round(v, 3) for k, v in results[variant][-1].items()},
                f"{time.time() - t:.0f}s",
                flush=True,
            )
    print(
        f"mean over {args.folds} fold(s), battle_weight {args.battle_weight}, {args.groups}, "
        f"noise_dims {args.noise_dims}:"
    )
    for name, rows in results.items():
        keys = rows[0].keys()
        print(f"  {name:14s}", {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys})


if __name__ == "__main__":
    main()
