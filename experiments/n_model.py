"""N-model cost-quality curves of the bundled model-aware routers on RouterBench's held-out prompts.

    python -m experiments.n_model --out experiments/results/n_model

RouterBench zero-shot test split (ARC-Challenge, MBPP, Winogrande: 0/1 correctness and the
measured cost of each of 11 models on each prompt). Each router sees the question without its
file's shared few-shot demonstrations (:func:`routed_prompts`) and estimates every candidate's
quality (``Router.model_quality``) and routes on a price list known in advance: each model's mean
cost per call on the *train* split. Curves: the trade-off policy swept over lambda, and "cheapest
adequate" (the cheapest model whose estimated quality reaches a floor) swept over the floor;
against every single model, random mixing (their upper convex hull) and the oracle (the trade-off
policy on true correctness and costs). Scalars per curve: AIQ (average quality of the curve's
hull over the single models' spend range) and the spend to reach the best single model's
quality. Candidates are the benchmark's models that are in the router's table (all 11 for the
irt routers, 8 for mf and sw_ranking, whose baselines are computed on the same 8).

A router whose training prompts include RouterBench test prompts' near duplicates
(:data:`TRAINED_NEAR_TEST`: ``irt-minilm`` trained on all of RouterBench's train split, which shares
near-identical prompts with the test split, without decontamination against it) is left out of the
full-split table; it gets its own table, on the test prompts with neither an exact nor a near
duplicate (MiniLM cosine >= 0.95, the training pipeline's rule) among its training prompts, where
every router with its candidates and every baseline is scored on the same prompts.

Writes ``n_model.md``, ``n_model.json`` and one ``n_model_<candidates>.png`` per candidate set.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import routellm_jax
from experiments._mixtures import mixture
from experiments.run_grid import EmbeddingStore
from routellm_jax.data.mixtures import SourceSpec, load_source
from routellm_jax.data.sources.correctness import without_shared_prefixes
from routellm_jax.eval import n_model as N

ROUTERS = ("irt-mix-minilm", "irt-shape-minilm", "irt-minilm", "mf-minilm", "sw-ranking-minilm")
HERE = Path(__file__).resolve().parent
COMMAND = "python -m experiments.n_model --out experiments/results/n_model"
# Routers trained without decontamination against RouterBench's test split, and the training
# mixture they used (model_zoo/recipes.py: irt-minilm is experiments/irt_minilm.py).
TRAINED_NEAR_TEST = {"irt-minilm": "outcomes_and_battles"}


def training_prompts(mix: str) -> list[str]:
    """The distinct prompts of a training mixture's sources (battles and outcomes)."""
    prompts: dict[str, None] = {}
    for source in mixture(mix).sources:
        data = load_source(SourceSpec(source["name"]))
        for column in (data.comparisons.prompt, data.outcomes.prompt):
            prompts.update(dict.fromkeys(map(str, column)))
    return list(prompts)


def _fmt_money(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x * 1e3:.3f}"


def _plot(path: Path, title: str, curves: list[N.CostQualityCurve], singles, models) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for c in curves:
        xs, ys = c.spend, c.quality
        if c.name in ("oracle", "random mixing"):  # mixing is linear in spend, not in log spend
            hx, hy = c.hull()
            xs = np.geomspace(hx[0], hx[-1], 200)
            ys = np.interp(xs, hx, hy)
        order = np.argsort(xs)
        style = "--" if c.name in ("oracle", "random mixing") else "-"
        marker = "" if c.name in ("oracle", "random mixing") else "."
        ax.plot(
            np.asarray(xs)[order] * 1e3, np.asarray(ys)[order], style, marker=marker, label=c.name
        )
    ax.scatter(singles.spend * 1e3, singles.quality, color="black", zorder=5, s=14)
    for x, y, m in zip(singles.spend, singles.quality, models):
        ax.annotate(m, (x * 1e3, y), fontsize=6, xytext=(3, -3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per prompt (USD per 1,000 prompts, log scale)")
    ax.set_ylabel("mean correctness")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def routed_prompts(bench: N.NModelBenchmark) -> list[str]:
    """What the routers see: each prompt without its task file's shared few-shot demonstrations.
    ARC-Challenge and Winogrande repeat one block of worked examples, longer than MiniLM's window,
    before every question; with it, a router could only choose per file. The models answered the
    whole prompt; the router routes the question, as the development suite's reasoning group does.
    """
    if bench.task is None:
        return [str(p) for p in bench.prompts]
    return without_shared_prefixes(bench.prompts, bench.task)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "n_model"))
    ap.add_argument("--routers", nargs="+", default=list(ROUTERS))
    ap.add_argument("--cache", default=None, help="embedding store (default: the machine's)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test = N.routerbench_n_model(split="test")
    train = N.routerbench_n_model(split="train")
    if train.models != test.models:
        raise SystemExit(f"train and test model columns differ: {train.models} vs {test.models}")
    prompts = routed_prompts(test)
    store = EmbeddingStore(Path(args.cache) if args.cache else None)
    groups: dict[tuple[str, ...], list[N.CostQualityCurve]] = {}
    estimates: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for name in args.routers:
        spec = routellm_jax.load(name, fuse_encoder=False).featurizer.spec
        router = routellm_jax.load(name, fuse_encoder=False, featurizer=store.featurizer(spec))
        candidates = tuple(m for m in test.models if m in router.models)
        bench = test.select(candidates)
        prices = train.select(candidates).prices()
        estimate = router.model_quality(prompts, candidates)
        estimates[name] = (candidates, estimate)
        print(f"{name}: {len(candidates)} candidates scored", file=sys.stderr)
        if name in TRAINED_NEAR_TEST:  # scored on its held-out prompts only (below)
            continue
        curves = groups.setdefault(candidates, [])
        curves.append(N.policy_curve(bench, estimate, prices, f"{name} (trade-off)"))
        curves.append(N.floor_curve(bench, estimate, prices, f"{name} (cheapest adequate)"))
    # Held-out prompts of each router trained near the test split: every router sharing its
    # candidates, and every baseline, scored on them.
    # (candidates, router the prompts are held out from or "", what the prompts are, bench, curves)
    sections = [(c, "", "", test, curves) for c, curves in groups.items()]
    for name, mix in TRAINED_NEAR_TEST.items():
        if name not in estimates:
            continue
        seen = training_prompts(mix)
        store.ensure(prompts + seen)
        keep = N.unseen_prompts(prompts, seen, store.embed(prompts), store.embed(seen))
        candidates = estimates[name][0]
        held = test.rows(keep, f"{test.name} held out from {name}")
        held_prices = train.select(candidates).prices()
        curves = []
        for other, (their, estimate) in estimates.items():
            if their == candidates:
                for make, kind in (
                    (N.policy_curve, "trade-off"),
                    (N.floor_curve, "cheapest adequate"),
                ):
                    curves.append(
                        make(
                            held.select(candidates),
                            estimate[keep],
                            held_prices,
                            f"{other} ({kind})",
                        )
                    )
        note = (
            f"{int(keep.sum())} of {len(prompts)} test prompts with no exact or near duplicate "
            f"(MiniLM cosine >= 0.95) among the {len(seen)} distinct training prompts of {name} "
            f"(mixture {mix})"
        )
        sections.append((candidates, name, note, held, curves))
    report: dict = {"benchmark": test.name, "prompts": len(prompts), "command": COMMAND, "sets": []}
    lines = [
        "# N-model routing on RouterBench (held-out test split)",
        "",
        f"{len(prompts)} prompts (ARC-Challenge, MBPP, Winogrande), correctness and measured cost",
        "per call of each model. Routers see each question without its file's shared few-shot",
        "demonstrations, and route on each model's mean cost per call on the train",
        "split. Spend in USD per 1,000 prompts; AIQ = mean correctness of the curve's convex",
        "hull over the single models' spend range; 'spend to best' = least spend reaching the",
        f"best single model's correctness. Command: `{COMMAND}`.",
    ]
    for candidates, held_from, note, source, curves in sections:
        bench = source.select(candidates)
        singles = N.single_model_curve(bench)
        baselines = [N.oracle_curve(bench), N.random_mixing_curve(bench)]
        reference, results = N.score_curves(bench, [*curves, *baselines])
        best, cheapest = reference["best_model"], reference["cheapest_model"]
        tag = f"{len(candidates)}_models" + (f"_held_out_from_{held_from}" if note else "")
        title = f"## {len(candidates)} candidate models" + (
            f", prompts held out from {held_from}" if note else ""
        )
        lines += [
            "",
            title,
            "",
            *([note + ".", ""] if note else []),
            f"Best single model {best}: correctness {reference['best_quality']:.3f} at "
            f"{_fmt_money(reference['best_spend'])}; cheapest {cheapest}: "
            f"{reference['cheapest_quality']:.3f} at {_fmt_money(reference['cheapest_spend'])}.",
            "",
            "| curve | AIQ | best correctness | spend to best single model |",
            "|---|---|---|---|",
        ]
        for r in results:
            lines.append(
                f"| {r.curve.name} | {r.aiq:.3f} | {r.max_quality:.3f} | "
                f"{_fmt_money(r.spend_to_best)} |"
            )
        lines += ["", f"![{tag}](n_model_{tag}.png)"]
        _plot(
            out / f"n_model_{tag}.png",
            f"RouterBench test ({len(source.prompts)} prompts"
            + (f", held out from {held_from}" if note else "")
            + f"), {len(candidates)} models",
            [*curves, *baselines],
            singles,
            candidates,
        )
        report["sets"].append(
            {
                "models": list(candidates),
                "prompts": len(source.prompts),
                "held_out": note,
                "reference": reference,
                "single_models": {
                    m: {"spend": float(s), "quality": float(q)}
                    for m, s, q in zip(candidates, singles.spend, singles.quality)
                },
                "curves": [
                    {
                        "name": r.curve.name,
                        "aiq": r.aiq,
                        "max_quality": r.max_quality,
                        "spend_to_best": None if math.isnan(r.spend_to_best) else r.spend_to_best,
                        "spend": r.curve.spend.tolist(),
                        "quality": r.curve.quality.tolist(),
                        "settings": r.curve.settings.tolist(),
                    }
                    for r in results
                ],
            }
        )
    (out / "n_model.md").write_text("\n".join(lines) + "\n")
    (out / "n_model.json").write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
