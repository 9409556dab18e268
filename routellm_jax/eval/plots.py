"""Cost-quality plot (PNG) and the results table (markdown + JSON) of an evaluation."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from routellm_jax.eval.benchmarks import Benchmark
from routellm_jax.eval.evaluate import RouterResult


def plot_curves(
    benchmark: Benchmark,
    results: Sequence[RouterResult],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Save the cost-quality curves (x = % strong calls, y = quality) with the weak and strong
    models as dashed lines; random and oracle results are drawn like any router (pass them in
    ``results``, e.g. from ``reference_results``).

    Example:
        >>> import numpy as np
        >>> from routellm_jax.eval.evaluate import reference_results
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")
        >>> results = reference_results(bench, random_seeds=range(2))
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     png = plot_curves(bench, results, Path(tmp) / "toy.png")
        ...     png.name, png.stat().st_size > 0
        ('toy.png', True)
    """
    import matplotlib  # local: matplotlib loads slowly, and only plotting needs it

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    scale = 100.0 if benchmark.kind == "correct" else 1.0
    fig, ax = plt.subplots(figsize=(9, 5.5))
    try:
        for r in results:
            style: dict = {"marker": "."}
            # Reference rows are drawn muted so the router under test stands out.
            if r.name == "random (expected)":
                style = {"linestyle": ":", "color": "tab:gray"}
            elif r.name.startswith("random (mean"):
                style = {"linestyle": "-.", "color": "tab:gray", "alpha": 0.6}
            elif r.name == "oracle":
                style = {"marker": "x", "color": "tab:green"}
            ax.plot(
                r.curve.strong_share * 100,
                r.curve.quality * scale,
                label=f"{r.name} (APGR {r.metrics.apgr_trapezoid:.3f})",
                **style,
            )
        ax.axhline(
            benchmark.weak_quality * scale,
            color="grey",
            linestyle="--",
            label=f"weak: {benchmark.weak_model}",
        )
        ax.axhline(
            benchmark.strong_quality * scale,
            color="red",
            linestyle="--",
            label=f"strong: {benchmark.strong_model}",
        )
        ax.set_xlabel("Strong model calls (%)")
        ax.set_ylabel("Accuracy (%)" if benchmark.kind == "correct" else "Score")
        ax.set_title(title or f"Cost vs quality on {benchmark.name} (n = {len(benchmark)})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def results_markdown(benchmark: Benchmark, results: Sequence[RouterResult]) -> str:
    """The results table in markdown: one row per router with every metric.

    Example:
        >>> import numpy as np
        >>> from routellm_jax.eval.evaluate import reference_results
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")
        >>> results = reference_results(bench, random_seeds=range(2))
        >>> print(results_markdown(bench, results))
        ## toy: 4 prompts
        ...
        | router | APGR | APGR capped | APGR 10pt | ...
        |---|---:|...
        | random (expected) | 0.5000 | 0.5000 | 0.5500 | ...
        | random (mean of 2 seeds) | 0.7500 | ...
        | oracle | 0.8700 | ...
    """
    s = benchmark.summary()
    scale = 100.0 if benchmark.kind == "correct" else 1.0
    unit = " (%)" if benchmark.kind == "correct" else ""
    lines = [
        f"## {benchmark.name}: {len(benchmark)} prompts",
        "",
        f"- strong: `{benchmark.strong_model}` quality {benchmark.strong_quality * scale:.3f}{unit}",
        f"- weak: `{benchmark.weak_model}` quality {benchmark.weak_quality * scale:.3f}{unit}",
    ]
    if s.get("decontaminated"):
        lines.append(
            f"- decontaminated: {s['rows_before_decontamination']} -> "
            f"{s['rows_before_decontamination'] - s['removed_by_decontamination']}"
        )
    if s.get("prompts_missing_a_model"):
        lines.append(
            f"- left out: {s['prompts_missing_a_model']} prompts not scored for both models"
        )
    if s.get("golden_split_excluded"):
        lines.append(
            f"- MMLU golden split excluded: {s['golden_split_removed']} prompts removed "
            f"({s['golden_split_file']})"
        )
    lines += [
        "",
        "APGR = trapezoid over the curve (the paper's tables); 10pt = mean PGR at 10%..100%; "
        "capped = PGR clipped at 1. CPT(x) = strong-call share reaching PGR x.",
        "",
        "| router | APGR | APGR capped | APGR 10pt | APGR 10pt capped | CPT(20%) | CPT(50%) "
        f"| CPT(80%) | AUC{unit} | cost@CPT(50%) | saving@CPT(50%) | cost@CPT(80%) "
        "| saving@CPT(80%) |",
        "|---|" + "---:|" * 12,
    ]
    for r in results:
        m = r.metrics
        c = r.cost or {}
        lines.append(
            f"| {r.name} | {m.apgr_trapezoid:.4f} | {m.apgr_trapezoid_capped:.4f} "
            f"| {m.apgr_10pt:.4f} | {m.apgr_10pt_capped:.4f} "
            f"| {_pct(m.cpt.get(0.2))} | {_pct(m.cpt.get(0.5))} | {_pct(m.cpt.get(0.8))} "
            f"| {m.auc * scale:.3f} "
            f"| {_pct(c.get('relative_cost_at_cpt_50'))} | {_pct(c.get('saving_at_cpt_50'))} "
            f"| {_pct(c.get('relative_cost_at_cpt_80'))} | {_pct(c.get('saving_at_cpt_80'))} |"
        )
    spreads = [r for r in results if "apgr_trapezoid_std" in r.notes]
    for r in spreads:
        lines.append(
            f"\n{r.name}: APGR std {r.notes['apgr_trapezoid_std']:.4f}, "
            f"CPT(50%) std {100 * r.notes.get('cpt_50_std', float('nan')):.2f} points"
        )
    return "\n".join(lines) + "\n"


def results_json(benchmark: Benchmark, results: Sequence[RouterResult]) -> dict:
    """Everything of the evaluation as a JSON-ready dict (benchmark summary, each router's
    metrics, curve and cost).

    Example:
        >>> import numpy as np
        >>> from routellm_jax.eval.evaluate import reference_results
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")
        >>> results = reference_results(bench, random_seeds=range(2))
        >>> data = json.loads(json.dumps(results_json(bench, results)))
        >>> data["benchmark"]["name"], [r["name"] for r in data["results"]]
        ('toy', ['random (expected)', 'random (mean of 2 seeds)', 'oracle'])
    """
    return {"benchmark": benchmark.summary(), "results": [r.to_dict() for r in results]}


def write_results(
    out_dir: str | os.PathLike[str],
    benchmark: Benchmark,
    results: Sequence[RouterResult],
    *,
    stem: str | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.png``, ``<stem>.json`` and ``<stem>.md`` into ``out_dir``.

    Example:
        >>> import numpy as np
        >>> from routellm_jax.eval.evaluate import reference_results
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")
        >>> results = reference_results(bench, random_seeds=range(2))
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     written = write_results(tmp, bench, results)
        ...     {kind: path.name for kind, path in written.items()}
        {'png': 'toy.png', 'json': 'toy.json', 'md': 'toy.md'}
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or benchmark.name
    paths = {"png": out / f"{stem}.png", "json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    plot_curves(benchmark, results, paths["png"])
    paths["json"].write_text(
        json.dumps(results_json(benchmark, results), indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    paths["md"].write_text(results_markdown(benchmark, results), encoding="utf-8")
    return paths
