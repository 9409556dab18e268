"""Regenerate the README's number tables from the files that hold the measured numbers.

The README quotes two kinds of results, and neither is typed in by hand:

* the zoo table, from ``model_zoo/manifest.json``, which quotes each entry's model card (the
  evaluations that ``routellm-jax zoo build`` ran at export, with their commands);
* the experiments table (ours against the paper), from ``experiments/results/results.json`` and
  ``experiments/results/dev_grid/results.json`` (the default's candidates, seed means), written by
  ``experiments/run_grid.py``; and chosen rows in ``experiments/results/README.md``
  (:data:`PAPER_COMPARISON_ROWS`).

Each table lives between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers. Usage::

    python -m tools.readme_tables           # rewrite both READMEs in place
    python -m tools.readme_tables --check   # exit 1 if either is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.run_grid import (  # PAPER_BEST: the one copy of the paper's numbers
    PAPER_BEST,
    seed_means,
)
from routellm_jax.zoo import hub

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MANIFEST = ROOT / "model_zoo" / "manifest.json"
RESULTS = ROOT / "experiments" / "results" / "results.json"
RESULTS_README = ROOT / "experiments" / "results" / "README.md"
# The candidates for the default, chosen on the development suite (experiments/dev_grid.py, 3 seeds
# each): their rows join the table as the mean over the seeds, never the best seed.
DEV_GRID_RESULTS = ROOT / "experiments" / "results" / "dev_grid" / "results.json"

# Columns of the experiments table: results.json benchmark key -> header.
RESULT_COLUMNS = {
    "mmlu": "MMLU",
    "gsm8k": "GSM8K",
    "alpaca_heldout": "AlpacaEval held-out",
    "arena_heldout": "arena-bench held-out",
}
ZOO_BENCHMARKS = ("mmlu", "gsm8k", "alpaca_heldout")
# The grid row of the zoo's default router (irt-mix-minilm, routellm_jax.api.DEFAULT_ROUTER: the
# seed-0 run of experiments/dev_grid.py:irt_bw01, the checkpoint the zoo ships).
ZOO_DEFAULT_ROW = ("irt bw=0.1", "both_mmlu_dev")
ZOO_DEFAULT_CONFIG = "experiments/dev_grid.py:irt_bw01"
# The previous default (irt-shape-minilm), still bundled.
PREVIOUS_DEFAULT_ROW = ("irt+shape bw=0.03", "both_mmlu")
# experiments/results/README.md's comparison with the paper: (router, mix) rows of results.json,
# each with what it is. A row missing from results.json is an error, never a silent gap.
PAPER_COMPARISON_ROWS = (
    ("prompt_length", "-", "prompt length (no training)"),
    ("irt", "both_mmlu", "irt on plain MiniLM"),
    (*PREVIOUS_DEFAULT_ROW, "irt+shape bw=0.03 (the previous default `irt-shape-minilm`)"),
    ("irt+shape+src bw=0.03", "both_mmlu", "irt+shape+src bw=0.03 (per-source term)"),
    (
        "irt+shape+src bw=0.03 noise=MiniLM",
        "both_mmlu",
        "irt+shape+src bw=0.03, training noise on MiniLM only",
    ),
    ("irt+shape bw=0.03", "both_mmlu_full", "irt+shape bw=0.03 on every training row"),
    ("irt+shape+src bw=0.03", "both_mmlu_full", "irt+shape+src bw=0.03 on every training row"),
    ("irt+shape", "golden_mmlu", "irt+shape, no judge data"),
    ("bert", "golden_mmlu", "bert (MiniLM fine-tuned on the pair's correctness)"),
    ("mf", "judge", "mf on judge battles (the recipe of the old default `mf-minilm`)"),
    ("oracle", "-", "oracle (PGR capped)"),
)


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def zoo_table(manifest_path: Path = MANIFEST) -> str:
    """Markdown table of the zoo: one row per manifest entry, with the APGRs the manifest quotes
    from each entry's card (tests/zoo keeps the two equal)."""

    manifest = hub.Manifest.load(manifest_path)
    header = "| entry | architecture | size | where | " + " | ".join(
        f"{RESULT_COLUMNS[b]} APGR" for b in ZOO_BENCHMARKS
    )
    lines = [header + " |", "|" + "---|" * (4 + len(ZOO_BENCHMARKS))]
    for entry in sorted(manifest.entries, key=lambda e: e.name):
        size = sum(f.size for f in entry.files)
        urls = entry.files[0].urls
        # No URL: published nowhere, the manifest's `build` text says how to build it locally.
        where = "build locally" if not urls else "by URL" if hub.url_scheme(urls[0]) else "bundled"
        cells = []
        for benchmark in ZOO_BENCHMARKS:
            quoted = entry.apgr(benchmark)
            # Slow routers (bert, causal_llm on a CPU) are scored on the hashed 10% MMLU subset.
            subset = " (10%)" if quoted and quoted[1] else ""
            cells.append(_fmt(quoted and quoted[0]) + subset)
        lines.append(
            f"| `{entry.name}` {entry.version} | {entry.architecture} | "
            f"{size / 1e6:.2f} MB | {where} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _pick_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Baselines, then per learned router the mix with the best worse-of(MMLU, GSM8K) APGR: the
    number a single checkpoint has to be judged by, since it must serve both benchmarks."""

    def worse_of(r: Mapping[str, Any]) -> float:
        return min(r["apgr"].get("mmlu") or 0.0, r["apgr"].get("gsm8k") or 0.0)

    best: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        if r["mix"] != "-" and (
            r["router"] not in best or worse_of(r) > worse_of(best[r["router"]])
        ):
            best[r["router"]] = r
    picked = list(best.values())
    # The previous default's own row stays, so the README shows what it replaced.
    picked += [
        r
        for r in rows
        if (r["router"], r["mix"]) == PREVIOUS_DEFAULT_ROW and not any(r is p for p in picked)
    ]
    baselines = [r for r in rows if r["mix"] == "-"]
    return baselines + sorted(picked, key=worse_of, reverse=True)


def _apgr_cells(apgr: Mapping[str, Any]) -> str:
    return " | ".join(_fmt(apgr.get(c)) for c in RESULT_COLUMNS) + " |"


def _table_head(mix_header: str, per: str) -> list[str]:
    """Header, rule and the paper's-best row of an APGR table over :data:`RESULT_COLUMNS`."""
    return [
        f"| router | {mix_header} | " + " | ".join(RESULT_COLUMNS.values()) + " |",
        "|" + "---|" * (2 + len(RESULT_COLUMNS)),
        f"| paper's best (a different router per {per}) | Arena + golden / judge | "
        + _apgr_cells(PAPER_BEST),
    ]


def _default_row(dev_path: Path = DEV_GRID_RESULTS) -> Mapping[str, Any]:
    """The zoo default's own run (seed 0 of its cell): the numbers of its card."""
    for r in json.loads(dev_path.read_text())["rows"]:
        if r.get("config") == ZOO_DEFAULT_CONFIG:
            return r
    raise KeyError(f"{dev_path}: no row of {ZOO_DEFAULT_CONFIG}")


def _dev_grid_means(dev_path: Path = DEV_GRID_RESULTS) -> list[Mapping[str, Any]]:
    """The trained candidates of the dev grid, each the mean over its seeds."""
    rows = json.loads(dev_path.read_text())["rows"]
    return [r for r in seed_means(rows) if r["config"]]


def results_table(results_path: Path = RESULTS, dev_path: Path = DEV_GRID_RESULTS) -> str:
    """Markdown table: paper's best, baselines and our best mix per router (APGR per benchmark),
    then every candidate of the dev grid (mean of 3 seeds) and the zoo default's own run."""
    results = json.loads(results_path.read_text())
    lines = _table_head("training mix", "benchmark")
    for r in _pick_rows(results["rows"]):
        prev = " (previous default)" if (r["router"], r["mix"]) == PREVIOUS_DEFAULT_ROW else ""
        lines.append(f"| {r['router']}{prev} | {r['mix']} | " + _apgr_cells(r["apgr"]))
    for r in _dev_grid_means(dev_path):
        seeds = len(r["seeds"])
        lines.append(f"| {r['router']} | {r['mix']} ({seeds} seeds) | " + _apgr_cells(r["apgr"]))
    d = _default_row(dev_path)
    lines.append(
        f"| **{d['router']}, seed 0 (zoo default `irt-mix-minilm`)** | {d['mix']} | "
        + _apgr_cells(d["apgr"])
    )
    return "\n".join(lines)


def paper_comparison_table(results_path: Path = RESULTS, dev_path: Path = DEV_GRID_RESULTS) -> str:
    """Markdown table of :data:`PAPER_COMPARISON_ROWS` against the paper's best, APGR, with the
    zoo default's row (and its seed mean) from the dev grid."""
    rows = {(r["router"], r["mix"]): r for r in json.loads(results_path.read_text())["rows"]}
    lines = _table_head("mix", "column")
    d = _default_row(dev_path)
    mean = next(r for r in _dev_grid_means(dev_path) if r["config"] == ZOO_DEFAULT_CONFIG)
    lines.append(
        f"| **{d['router']}** (zoo default `irt-mix-minilm`, seed 0) | {d['mix']} | "
        + _apgr_cells(d["apgr"])
    )
    lines.append(f"| {d['router']}, mean of 3 seeds | {d['mix']} | " + _apgr_cells(mean["apgr"]))
    for router, mix, what in PAPER_COMPARISON_ROWS:
        if (router, mix) not in rows:
            raise KeyError(f"{results_path}: no row ({router!r}, {mix!r}) for the paper comparison")
        lines.append(f"| {what} | {mix} | " + _apgr_cells(rows[router, mix]["apgr"]))
    return "\n".join(lines)


def render(readme: str, tables: Mapping[str, str], path: Path = README) -> str:
    """``readme`` (the text of ``path``) with each marked block replaced by its table."""
    for name, table in tables.items():
        pattern = re.compile(
            rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S
        )
        if not pattern.search(readme):
            raise ValueError(f"{path}: no <!-- BEGIN {name} --> ... <!-- END {name} --> block")
        readme = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), readme)
    return readme


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args(argv)
    targets = {
        README: {"zoo-table": zoo_table(), "results-table": results_table()},
        RESULTS_README: {"paper-comparison": paper_comparison_table()},
    }
    stale = []
    for path, tables in targets.items():
        current = path.read_text()
        updated = render(current, tables, path)
        if updated == current:
            continue
        if args.check:
            stale.append(path)
        else:
            path.write_text(updated)
    for path in stale:
        print(f"{path} is out of date: run python -m tools.readme_tables", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
