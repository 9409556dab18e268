"""How far can open-model difficulty on GSM8K *train* carry a router on GSM8K test?

An analysis, not a router: nothing here is exported or chosen. Every learned router of the grid
stays at or below prompt length on GSM8K (0.599) while the paper's best is 0.622. The only math
word problems graded in the training data are RouterDC's GSM8K-train questions (7 open ~7B models)
and LLMRouter's word problems; the pair (gpt-4-1106: 86%, Mixtral: 64% on GSM8K test) has none.
For that pair most of the gain is Mixtral's failures, so a router needs the questions' difficulty.
This script fits the simplest difficulty model -- ridge regression of the 7 models' mean
correctness per question -- on the mix's (decontaminated) GSM8K-train rows, from four feature
sets, and reports:

* ``dev_r``: Pearson correlation with the mean correctness on a hashed 30% of GSM8K-train held out
  of the fit (training data only: this is what could choose a feature set);
* ``gsm8k_apgr``: APGR on the GSM8K *test* set of the paper's pair when the negated predicted
  correctness is used as the win rate (the fit uses all of GSM8K-train). This reads the evaluation
  set, which is why nothing here is exported: it measures the ceiling of the signal.

``--smollm2`` adds two feature sets from a causal LM, the mean-pooled final hidden state of
SmolLM2-135M-Instruct (576-d; alone and with shape): does a language model's reading of the problem
carry its difficulty where MiniLM's does not? (~25 minutes on 2 shared CPU cores for ~2.3k questions;
cached in ``cache_dir()/experiments/smollm2_gsm8k.npz``.)

Usage (after run_grid has built the mix under its --workdir):
    python -m experiments.gsm8k_difficulty_ceiling /tmp/routellm_grid7/mixes/both_mmlu [--smollm2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import run_grid as G
from experiments.source_effect_dev import GSM8K_SOURCE, apgr
from routellm_jax.data.mixtures import load_mixture
from routellm_jax.eval.benchmarks import gsm8k_benchmark
from routellm_jax.models.featurizers import prompt_shape
from routellm_jax.paths import cache_dir, data_dir

FEATURE_SETS = ("log_length", "shape", "minilm", "minilm+shape")
SMOLLM2_SETS = ("smollm2", "smollm2+shape")
RIDGE = (1.0, 100.0, 1000.0)


def smollm2_mean_hidden(prompts: list[str], batch_size: int = 16) -> np.ndarray:
    """``[n, 576]`` SmolLM2-135M-Instruct final hidden states, mean over each prompt's tokens
    (cached per prompt text in ``cache_dir()/experiments/smollm2_gsm8k.npz``)."""
    import jax

    from routellm_jax.models.encoders import llama
    from routellm_jax.models.encoders.smollm import load_smollm2

    path = cache_dir() / "experiments" / "smollm2_gsm8k.npz"
    table: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as z:
            table = dict(zip(z["prompts"].tolist(), z["hidden"]))
    missing = [p for p in dict.fromkeys(prompts) if p not in table]
    if missing:
        config, params, tok = load_smollm2()
        module = llama.LlamaForCausalLM(config)

        @jax.jit
        def pooled(ids, mask):
            h = module.apply({"params": params}, ids, mask, method=module.encode)
            m = mask[..., None].astype(h.dtype)
            return (h * m).sum(1) / m.sum(1)

        ids = [tok(p).input_ids[:256] for p in missing]
        order = np.argsort([len(i) for i in ids])
        for lo in range(0, len(order), batch_size):
            rows = order[lo : lo + batch_size]
            # Pad to a multiple of 32 tokens: a few compiled shapes, little padding.
            width = -(-max(len(ids[r]) for r in rows) // 32) * 32
            batch = np.zeros((batch_size, width), np.int32)
            mask = np.zeros((batch_size, width), np.int32)
            for k, r in enumerate(rows):
                batch[k, : len(ids[r])], mask[k, : len(ids[r])] = ids[r], 1
            mask[len(rows) :, 0] = 1  # padding rows: one token, dropped below
            out = np.asarray(pooled(batch, mask))
            for k, r in enumerate(rows):
                table[missing[r]] = out[k]
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(table)
        np.savez(path, prompts=np.array(keys, dtype=str), hidden=np.stack([table[k] for k in keys]))
    return np.stack([table[p] for p in prompts]).astype(np.float64)


def features(prompts: list[str], kind: str, store: G.EmbeddingStore) -> np.ndarray:
    """``[n, d]`` features of one kind (standardised later, inside :func:`fit_ridge`)."""
    shape = np.stack([prompt_shape(p) for p in prompts]).astype(np.float64)
    if kind == "log_length":
        return shape[:, 1:2]  # log character count
    if kind == "shape":
        return shape
    if kind.startswith("smollm2"):
        emb = smollm2_mean_hidden(prompts)
    else:
        emb = np.asarray(store.embed(prompts), np.float64)
    return emb if "+" not in kind else np.hstack([emb, shape])


def fit_ridge(x: np.ndarray, y: np.ndarray, lam: float):
    """Ridge on standardised features with an unpenalised intercept; returns ``x -> y_hat``.

    Example:
        >>> f = fit_ridge(np.arange(4.0)[:, None], np.arange(4.0), 1e-9)
        >>> [round(float(v), 6) for v in f(np.array([[5.0]]))]
        [5.0]
    """
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    a = z.T @ z + lam * np.eye(z.shape[1])
    w = np.linalg.solve(a, z.T @ (y - y.mean()))
    return lambda x2: ((x2 - mu) / sd) @ w + y.mean()


def main() -> None:
    """CLI (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mix", help="a mix folder written by run_grid (<workdir>/mixes/both_mmlu)")
    ap.add_argument("--smollm2", action="store_true", help="add SmolLM2 hidden-state features")
    args = ap.parse_args()
    store = G.EmbeddingStore()
    data, _ = load_mixture(Path(args.mix))
    o = data.outcomes
    gsm = o.take(o.source == GSM8K_SOURCE)
    if not len(gsm):
        raise SystemExit(f"{args.mix}: no {GSM8K_SOURCE!r} rows in the mix")
    mean = pd.Series(gsm.score).groupby(gsm.prompt).mean()
    prompts, y = list(mean.index), mean.to_numpy()
    dev = np.array([G.hash_fraction(p, "gsm8k_dev") < 0.3 for p in prompts])
    test = gsm8k_benchmark(data_dir(None))
    test_prompts = list(test.prompts)
    store.ensure(prompts + test_prompts)
    print(
        f"GSM8K-train: {len(prompts)} questions ({dev.sum()} dev), mean correctness {y.mean():.3f}"
    )
    print(f"prompt_length baseline on GSM8K test: {apgr(test, [len(p) for p in test_prompts]):.3f}")
    for kind in FEATURE_SETS + (SMOLLM2_SETS if args.smollm2 else ()):
        x, x_test = features(prompts, kind, store), features(test_prompts, kind, store)
        for lam in RIDGE:
            dev_r = float(np.corrcoef(fit_ridge(x[~dev], y[~dev], lam)(x[dev]), y[dev])[0, 1])
            win = -fit_ridge(x, y, lam)(x_test)
            print(
                f"  {kind:13s} ridge {lam:6.0f}: dev_r {dev_r:.3f}  gsm8k_apgr {apgr(test, win):.3f}"
            )


if __name__ == "__main__":
    main()
