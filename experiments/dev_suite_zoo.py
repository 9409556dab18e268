"""The development suite for the bundled zoo routers (``routellm-jax eval --dev-suite --router
NAME`` for each, with MiniLM embeddings served from the grid's cache instead of recomputed).

    python -m experiments.dev_suite_zoo --out experiments/results/dev_suite_zoo

Writes ``dev_suite.md``, ``dev_suite.json`` and ``dev_suite.png`` (strong share per task type at
50% overall) for every bundled entry (the default `irt-mix-minilm` first) beside prompt length, random and the oracle. Which groups an
entry trained on is in its data card: ``irt-shape-minilm`` on the whole golden split (the knowledge
group), the three older entries on mixes made before the held-out judge split (open-ended).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import routellm_jax
from experiments.run_grid import EmbeddingStore
from routellm_jax.eval import dev_suite as D
from routellm_jax.eval.baselines import (
    oracle_win_rates,
    prompt_length_router,
    random_router,
)

HERE = Path(__file__).resolve().parent

BUNDLED = ("irt-mix-minilm", "irt-shape-minilm", "irt-minilm", "mf-minilm", "sw-ranking-minilm")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "dev_suite_zoo"))
    ap.add_argument("--routers", nargs="+", default=list(BUNDLED))
    ap.add_argument("--cache", default=None, help="embedding store (default: the machine's)")
    args = ap.parse_args(argv)
    suite = D.build_dev_suite()
    store = EmbeddingStore(Path(args.cache) if args.cache else None)
    rows = []
    for name in args.routers:
        spec = routellm_jax.load(name, fuse_encoder=False).featurizer.spec
        router = routellm_jax.load(name, fuse_encoder=False, featurizer=store.featurizer(spec))
        rates = D.route_suite(
            suite, lambda ps, r=router: r.win_rate(ps, D.STRONG_MODEL, D.WEAK_MODEL)
        )
        rows.append(D.score_dev_suite(suite, rates, name))
    rows.append(
        D.score_dev_suite(suite, D.route_suite(suite, prompt_length_router), "prompt_length")
    )
    rows.append(D.score_dev_suite(suite, D.route_suite(suite, random_router), "random"))
    oracle = {g: oracle_win_rates(b) for g, b in suite.items()}
    rows.append(D.score_dev_suite(suite, oracle, "oracle"))
    D.write_dev_report(args.out, rows, suite)
    print(D.dev_table_markdown(rows, suite))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
