"""Regenerate the README's number tables from the files that hold the measured numbers.

The README quotes two kinds of results, and neither is typed in by hand:

* the zoo table, from ``model_zoo/manifest.json``, which quotes each entry's model card (the
  evaluations that ``tools/export_zoo_entry.py`` ran at export, with their commands);
* the experiments table (ours against the paper), from ``experiments/results/results.json``,
  written by ``experiments/run_grid.py``.

Each table lives between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers. Usage::

    python tools/readme_tables.py           # rewrite README.md in place
    python tools/readme_tables.py --check   # exit 1 if README.md is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MANIFEST = ROOT / "model_zoo" / "manifest.json"
RESULTS = ROOT / "experiments" / "results" / "results.json"

# Columns of the experiments table: results.json benchmark key -> header.
RESULT_COLUMNS = {
    "mmlu": "MMLU",
    "gsm8k": "GSM8K",
    "alpaca_heldout": "AlpacaEval held-out",
    "arena_heldout": "arena-bench held-out",
}
ZOO_BENCHMARKS = ("mmlu", "gsm8k", "alpaca_heldout")


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def zoo_table(manifest_path: Path = MANIFEST) -> str:
    """Markdown table of the zoo: one row per manifest entry, with the APGRs the manifest quotes
    from each entry's card (tests/zoo keeps the two equal)."""
    from routellm_jax.zoo import hub

    manifest = hub.Manifest.load(manifest_path)
    header = "| entry | architecture | size | where | " + " | ".join(
        f"{RESULT_COLUMNS[b]} APGR" for b in ZOO_BENCHMARKS
    )
    lines = [header + " |", "|" + "---|" * (4 + len(ZOO_BENCHMARKS))]
    for entry in sorted(manifest.entries, key=lambda e: e.name):
        size = sum(f.size for f in entry.files)
        where = "by URL" if hub._scheme(entry.files[0].urls[0]) else "bundled"
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
    baselines = [r for r in rows if r["mix"] == "-"]
    return baselines + sorted(best.values(), key=worse_of, reverse=True)


def results_table(results_path: Path = RESULTS) -> str:
    """Markdown table: paper's best, baselines and our best mix per router, APGR per benchmark."""
    sys.path.insert(0, str(ROOT))
    from experiments.run_grid import PAPER_BEST as paper  # the one copy of the paper's numbers

    results = json.loads(results_path.read_text())
    cols = list(RESULT_COLUMNS)
    lines = [
        "| router | training mix | " + " | ".join(RESULT_COLUMNS[c] for c in cols) + " |",
        "|" + "---|" * (2 + len(cols)),
        "| paper's best (a different router per benchmark) | Arena + golden / judge | "
        + " | ".join(_fmt(paper.get(c)) for c in cols)
        + " |",
    ]
    for r in _pick_rows(results["rows"]):
        lines.append(
            f"| {r['router']} | {r['mix']} | "
            + " | ".join(_fmt(r["apgr"].get(c)) for c in cols)
            + " |"
        )
    return "\n".join(lines)


def render(readme: str, tables: Mapping[str, str]) -> str:
    """``readme`` with each marked block replaced by its table."""
    for name, table in tables.items():
        pattern = re.compile(
            rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S
        )
        if not pattern.search(readme):
            raise ValueError(f"{README}: no <!-- BEGIN {name} --> ... <!-- END {name} --> block")
        readme = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), readme)
    return readme


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args(argv)
    current = README.read_text()
    updated = render(current, {"zoo-table": zoo_table(), "results-table": results_table()})
    if args.check:
        if updated != current:
            print(f"{README} is out of date: run python tools/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
