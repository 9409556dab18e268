"""``tools/profile_train_step.py`` on a tiny encoder: the trace is read back and summed per
operation kind, and the dot fusions are found in the compiled step (nothing is timed here)."""

from __future__ import annotations

import doctest

from tools import profile_train_step


def test_doctests_run():
    failed, attempted = doctest.testmod(profile_train_step)
    assert attempted > 0 and failed == 0


def test_tiny_step_profile_lists_kinds_and_dot_groups(capsys):
    assert profile_train_step.main(["--tiny", "--steps", "1", "--batch", "4", "--seq", "32"]) == 0
    out = capsys.readouterr().out
    kinds = out.split("kind | ms/step | share\n")[1].split("dot group")[0].strip().splitlines()
    groups = out.split("| GFLOP/s\n")[1].split("load average")[0].strip().splitlines()
    assert kinds and all(line.count(" | ") == 2 for line in kinds)
    # Every encoder matmul is found, forward and backward (attention q/k/v/output, feed-forward).
    assert any(g.startswith("intermediate/dense forward") for g in groups)
    assert any(g.startswith("attention/self/query backward") for g in groups)
