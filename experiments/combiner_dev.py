"""A learned router combined with a cheap signal (log prompt length), the combiner fitted on dev data
only and measured cross-fitted: the development suite is split in two halves by a hash of the
prompt; the weight of log length is chosen on one half under the selection rule (admissible,
then best mean APGR) and scored on the other, and the other way round.

    python -m experiments.combiner_dev --router irt-mix-minilm

Win rate of the combination: ``sigmoid(z(logit(router)) + b * z(log chars))`` with ``z`` the
standardisation on the fitting half; ``b`` from :data:`WEIGHTS`. A measurement: nothing is exported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import routellm_jax
from experiments.run_grid import EmbeddingStore
from routellm_jax.data.hashing import hash_fraction
from routellm_jax.eval import dev_suite as D

HERE = Path(__file__).resolve().parent

WEIGHTS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0)
MIN_MARGIN = 0.10  # the rule's no-inversion margin (experiments/results/README.md)


def _features(rates: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    r = np.clip(rates, 1e-6, 1 - 1e-6)
    return np.log(r / (1 - r)), np.log1p([len(p) for p in prompts])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", default="irt-mix-minilm")
    ap.add_argument("--cache", default=None, help="embedding store (default: the machine's)")
    args = ap.parse_args(argv)
    suite = D.build_dev_suite()
    store = EmbeddingStore(Path(args.cache) if args.cache else None)
    spec = routellm_jax.load(args.router, fuse_encoder=False).featurizer.spec
    router = routellm_jax.load(args.router, fuse_encoder=False, featurizer=store.featurizer(spec))
    rates = D.route_suite(suite, lambda ps: router.win_rate(ps, D.STRONG_MODEL, D.WEAK_MODEL))
    feats = {g: _features(rates[g], [str(p) for p in b.prompts]) for g, b in suite.items()}
    halves = {
        g: np.array([hash_fraction(str(p), "combiner_fold") < 0.5 for p in b.prompts])
        for g, b in suite.items()
    }

    def score(b: float, fit: bool, on: bool) -> D.DevScores:
        fit_l = np.concatenate([feats[g][0][halves[g] == fit] for g in suite])
        fit_n = np.concatenate([feats[g][1][halves[g] == fit] for g in suite])
        sub, wr = {}, {}
        for g, bench in suite.items():
            m = halves[g] == on
            sub[g] = bench.take(np.flatnonzero(m))
            lo, ln = feats[g][0][m], feats[g][1][m]
            z = (lo - fit_l.mean()) / fit_l.std() + b * (ln - fit_n.mean()) / fit_n.std()
            wr[g] = 1 / (1 + np.exp(-z))
        return D.score_dev_suite(sub, wr, f"b={b}")

    print("| held-out half | b chosen on the other half | mean APGR | margin | router alone |")
    print("|---|---|---|---|---|")
    for held in (True, False):
        fits = [(b, score(b, not held, not held)) for b in WEIGHTS]
        ok = [(b, s) for b, s in fits if s.inversion_margin >= MIN_MARGIN] or fits
        b, _ = max(ok, key=lambda t: t[1].mean_apgr)
        test, alone = score(b, not held, held), score(0.0, not held, held)
        print(
            f"| {'A' if held else 'B'} | {b} | {test.mean_apgr:.3f} | "
            f"{100 * test.inversion_margin:+.0f} pt | {alone.mean_apgr:.3f} "
            f"({100 * alone.inversion_margin:+.0f} pt) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
