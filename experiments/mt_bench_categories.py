"""A final check, not a selection signal: each router's strong share per MT-Bench category when it
sends 50% of the 80 MT-Bench first turns to the strong model (its threshold at its own median win
rate on them). MT-Bench is an evaluation set with no grades for the paper's pair offline, so this
reads only its prompts and categories, and only for routers already chosen.

    python experiments/mt_bench_categories.py irt-mix-minilm irt-shape-minilm
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

import routellm_jax
from routellm_jax.data.sources.routellm_evals import STRONG_MODEL, WEAK_MODEL, evals_dir
from routellm_jax.paths import data_dir

ORDER = ("coding", "math", "reasoning", "extraction", "stem", "humanities", "writing", "roleplay")


def category_shares(router_name: str, share: float = 0.5) -> dict[str, float]:
    """Strong share per MT-Bench category at ``share`` overall (ties at the threshold go strong)."""
    path = evals_dir(data_dir()) / "mt_bench" / "question.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    prompts = [r["turns"][0] for r in rows]
    cats = np.array([r["category"] for r in rows])
    rates = routellm_jax.load(router_name).win_rate(prompts, STRONG_MODEL, WEAK_MODEL)
    strong = rates >= np.quantile(rates, 1.0 - share)
    return {c: float(strong[cats == c].mean()) for c in ORDER if (cats == c).any()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("routers", nargs="+")
    args = ap.parse_args(argv)
    print("| router | " + " | ".join(ORDER) + " |")
    print("|---|" + "---|" * len(ORDER))
    for name in args.routers:
        s = category_shares(name)
        print(f"| {name} | " + " | ".join(f"{100 * s[c]:.0f}%" for c in ORDER) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
