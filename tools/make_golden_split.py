"""Regenerate routellm_jax/resources/mmlu_golden_split.txt from the RouteLLM MMLU files.

Usage: python tools/make_golden_split.py [--data-dir DIR] [--out PATH] [--check]

The algorithm and seed are documented in routellm_jax/eval/golden.py. ``--check`` compares with the
committed file instead of writing (exit 1 on a difference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routellm_jax.eval.golden import golden_file_text, golden_split_path, parse_golden_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="routing data folder (default: found)")
    parser.add_argument("--out", default=str(golden_split_path()), help="file to write")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = golden_file_text(args.data_dir)
    out = Path(args.out)
    if args.check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'up to date' if same else 'DIFFERS from the data'}")
        return 0 if same else 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(parse_golden_file(text))} ids)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
