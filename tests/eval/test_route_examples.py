"""tools/route_examples.py: the README's table of a router's decisions on a dozen varied prompts."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

import routellm_jax
from routellm_jax import paths


def _tool():
    path = paths.repo_root() / "tools" / "route_examples.py"
    spec = importlib.util.spec_from_file_location("route_examples", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _Fake:
    def __init__(self) -> None:
        self.asked = None

    def decide(self, prompts, strong_share=None):
        self.asked = (list(prompts), strong_share)
        rates = np.linspace(0.1, 0.9, len(prompts))
        return [
            {"win_rate": r, "model": "big" if r >= 0.5 else "small", "strong": r >= 0.5}
            for r in rates
        ]


def test_table_has_one_row_per_example_with_the_decision(monkeypatch) -> None:
    tool = _tool()
    fake = _Fake()
    monkeypatch.setattr(routellm_jax, "load", lambda name: fake)
    lines = tool.decision_table("some-router", 0.3).splitlines()
    assert fake.asked == ([p for _, p in tool.EXAMPLES], 0.3)
    assert "`some-router` at 30% strong" in lines[0]
    rows = lines[2:]
    assert len(rows) == len(tool.EXAMPLES) == 12
    assert rows[0].startswith("| code |") and rows[0].endswith("| 0.100 | small |")
    assert rows[-1].endswith("| 0.900 | big |")
    assert {t for t, _ in tool.EXAMPLES} >= {"code", "math", "proof", "small talk", "factual"}
