"""``tools/profile_train_step.py`` on a tiny encoder: the trace is read back and summed per
operation kind, and the dot fusions are found in the compiled step (nothing is timed here)."""

from __future__ import annotations

import doctest

from tools import profile_train_step


def test_doctests_run():
    failed, attempted = doctest.testmod(profile_train_step)
    assert attempted > 0 and failed == 0


def test_tiny_step_profile_lists_kinds_and_dot_groups(capsys):
    assert (
        profile_train_step.main(
            ["--tiny", "--steps", "1", "--batch", "4", "--seq", "32", "--top", "100"]
        )
        == 0
    )
    out = capsys.readouterr().out
    kinds = out.split("kind | ms/step | share\n")[1].split("dot group")[0].strip().splitlines()
    groups = out.split("| GFLOP/s\n")[1].split("load average")[0].strip().splitlines()
    assert kinds and all(line.count(" | ") == 2 for line in kinds)
    # Every encoder matmul is found, forward and backward (attention q/k/v/output, feed-forward);
    # the table is ordered by time, so all rows are printed (--top 100) before looking for them.
    assert any(g.startswith("intermediate/dense forward") for g in groups)
    assert any(g.startswith("attention/self/query backward") for g in groups)


def test_plain_dots_are_counted_like_dot_fusions():
    # On CPUs where XLA leaves a matmul unfused it runs as a plain ``dot`` thunk: it is a group too.
    hlo = (
        "ENTRY %main (p: f32[8,4], w: f32[4,2]) -> f32[8,2] {\n"
        "  %p = f32[8,4]{1,0} parameter(0)\n"
        "  %w = f32[4,2]{1,0} parameter(1)\n"
        "  ROOT %dot.7 = f32[8,2]{1,0} dot(%p, %w), lhs_contracting_dims={1}, "
        'rhs_contracting_dims={0}, metadata={op_name="jit(f)/jvp(M)/bert/encoder/layer_0/'
        'intermediate/dense/dot_general"}\n'
        "}\n"
    )
    assert profile_train_step.dot_operations(hlo) == {
        "dot.7": {"group": "intermediate/dense forward f32[8,4] x f32[4,2]", "flops": 2.0 * 16 * 4}
    }
