"""The README's decision table: a router's choices on a dozen varied prompts, so a reader can judge
it at a glance (code, math, a proof, extraction, small talk, creative writing, a factual question).

    python tools/route_examples.py                       # the zoo default, 50% strong share
    python tools/route_examples.py --router irt-minilm --share 0.3

Prints a markdown table: task type, prompt, win rate (P(strong beats weak)) and the model chosen
at the calibrated threshold of the given strong share (the card's calibration table).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import routellm_jax
from routellm_jax.api import DEFAULT_ROUTER

# (task type, prompt): fixed, so the table changes only when the router does.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("code", "Write a Python function that returns the longest palindromic substring of a string."),
    ("code", 'Why does this C code segfault? int *p; *p = 5; printf("%d", *p);'),
    ("math", "A train leaves at 3:40 pm and travels 210 km at 84 km/h. When does it arrive?"),
    ("math", "Solve for x: 3x^2 - 12x + 9 = 0."),
    ("proof", "Prove that every bounded monotone sequence of real numbers converges."),
    (
        "reasoning",
        "If all bloops are razzies and some razzies are lazzies, must some bloops be lazzies?",
    ),
    (
        "extraction",
        "List every date and amount in: 'Paid $120 on 3 May, $75 on 9 June and $300 on 1 July.'",
    ),
    ("small talk", "Hi! How are you doing today?"),
    ("small talk", "What is 2+2?"),
    ("creative writing", "Write a short poem about autumn leaves falling in a quiet park."),
    ("roleplay", "Pretend you are a pirate captain and greet your new crew."),
    ("factual", "What is the capital of Australia?"),
)


def decision_table(router_name: str = DEFAULT_ROUTER, share: float = 0.5) -> str:
    """The markdown table of ``router_name``'s decisions on :data:`EXAMPLES`."""
    router = routellm_jax.load(router_name)
    decisions = router.decide([p for _, p in EXAMPLES], strong_share=share)
    lines = [
        f"| task | prompt | win rate | `{router_name}` at {share:.0%} strong |",
        "|---|---|---|---|",
    ]
    for (task, prompt), d in zip(EXAMPLES, decisions):
        text = prompt.replace("|", "\\|")
        lines.append(f"| {task} | {text} | {d['win_rate']:.3f} | {d['model']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", default=DEFAULT_ROUTER, help="zoo name or checkpoint path")
    ap.add_argument("--share", type=float, default=0.5, help="strong share (default 0.5)")
    args = ap.parse_args(argv)
    sys.stdout.write(decision_table(args.router, args.share))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
