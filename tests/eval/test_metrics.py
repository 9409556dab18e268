"""Metrics against values worked out by hand on tiny tables (the working is in the comments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from routellm_jax.eval import metrics as M

# Table A: 4 prompts.            A    B    C    D
STRONG_A = np.array([1.0, 1.0, 0.0, 1.0])
WEAK_A = np.array([0.0, 1.0, 1.0, 0.0])
WIN_A = np.array([0.9, 0.3, 0.6, 0.1])
# s = 3/4, w = 2/4, gap 1/4.
# k = 4: quantile positions (n-1) q = 0, .75, 1.5, 2.25, 3 over sorted [.1, .3, .6, .9]
#   -> thresholds .1, .25, .45, .675, .9
#   >= .1: ABCD (c 1, r .75) | >= .25: ABC (c .75: 1+1+0+0 -> .5) | >= .45: AC (c .5: 1+1+0+0 -> .5)
#   >= .675: A (c .25: 1+1+1+0 -> .75) | > .9 (last, strict): none (c 0, r .5)
# sorted by c: c = [0, .25, .5, .75, 1], r = [.5, .75, .5, .5, .75], PGR = [0, 1, 0, 0, 1]


@pytest.fixture(scope="module")
def curve_a() -> M.Curve:
    return M.threshold_curve(WIN_A, STRONG_A, WEAK_A, num_thresholds=4)


def test_thresholds_and_points_by_hand(curve_a):
    np.testing.assert_allclose(
        np.sort(curve_a.thresholds), [0.1, 0.25, 0.45, 0.675, 0.9], atol=1e-12
    )
    np.testing.assert_allclose(curve_a.strong_share, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve_a.quality, [0.5, 0.75, 0.5, 0.5, 0.75])
    np.testing.assert_allclose(M.pgr(curve_a.quality, 0.75, 0.5), [0, 1, 0, 0, 1])


def test_thresholds_equal_pandas_qcut_bins_like_the_reference():
    rates = np.random.default_rng(3).uniform(size=37)
    _, bins = pd.qcut(rates, 10, retbins=True)
    np.testing.assert_allclose(M.quantile_thresholds(rates, 10), bins)


def test_auc_and_apgr_trapezoid_by_hand(curve_a):
    # AUC = .25 * ((.5+.75)/2 + (.75+.5)/2 + (.5+.5)/2 + (.5+.75)/2) = .25 * 2.375
    assert M.auc(curve_a) == pytest.approx(0.59375)
    # PGR trapezoid = .25 * (.5 + .5 + 0 + .5) = .375 = (AUC - .5) / (.75 - .5)
    assert M.apgr_trapezoid(curve_a, 0.75, 0.5) == pytest.approx(0.375)
    assert M.apgr_trapezoid(curve_a, 0.75, 0.5, cap=True) == pytest.approx(0.375)


def test_apgr_10pt_by_hand(curve_a):
    # PGR at c = .1 .. 1.0 on [0, 1, 0, 0, 1] @ [0, .25, .5, .75, 1]:
    # .4 .8 .8 .4 0 0 0 .2 .6 1 -> sum 4.2 -> mean .42
    assert M.apgr_10pt(curve_a, 0.75, 0.5) == pytest.approx(0.42)


def test_cpt_first_crossing_by_hand(curve_a):
    # first segment goes 0 -> 1 over c 0 -> .25: CPT(x) = .25 x
    assert M.cpt(curve_a, 0.75, 0.5, 0.2) == pytest.approx(0.05)
    assert M.cpt(curve_a, 0.75, 0.5, 0.5) == pytest.approx(0.125)
    assert M.cpt(curve_a, 0.75, 0.5, 0.8) == pytest.approx(0.2)
    # never reaches PGR 1.5
    assert np.isnan(M.cpt(curve_a, 0.75, 0.5, 1.5))


def test_ties_in_win_rates_by_hand():
    strong = np.array([1.0, 0.0, 1.0, 1.0])
    weak = np.array([0.0, 0.0, 0.0, 1.0])
    win = np.array([0.5, 0.5, 0.5, 0.9])
    # s = .75, w = .25. k = 2: thresholds .5, .5, .9 -> shares 1, 1 (>= .5) and 0 (> .9).
    c2 = M.threshold_curve(win, strong, weak, 2)
    np.testing.assert_allclose(c2.strong_share, [0, 1, 1])
    np.testing.assert_allclose(c2.quality, [0.25, 0.75, 0.75])
    assert M.apgr_trapezoid(c2, 0.75, 0.25) == pytest.approx(0.5)
    assert M.cpt(c2, 0.75, 0.25, 0.5) == pytest.approx(0.5)
    # k = 4: thresholds .5 .5 .5 .6 .9 -> shares 1 1 1, {D} .25 (no gain on D), 0.
    # c = [0, .25, 1, 1, 1], PGR = [0, 0, 1, 1, 1]: APGR = .75 * .5 = .375; CPT(.5) = .25 + .75/2
    c4 = M.threshold_curve(win, strong, weak, 4)
    np.testing.assert_allclose(c4.strong_share, [0, 0.25, 1, 1, 1])
    np.testing.assert_allclose(M.pgr(c4.quality, 0.75, 0.25), [0, 0, 1, 1, 1])
    assert M.apgr_trapezoid(c4, 0.75, 0.25) == pytest.approx(0.375)
    assert M.cpt(c4, 0.75, 0.25, 0.5) == pytest.approx(0.625)


def test_all_equal_win_rates_is_the_random_line():
    strong = np.array([1.0, 0.0, 1.0])
    weak = np.array([0.0, 0.0, 1.0])
    c = M.threshold_curve(np.full(3, 0.3), strong, weak, 10)
    assert M.apgr_trapezoid(c, 2 / 3, 1 / 3) == pytest.approx(0.5)


def test_reference_interp_cpt_matches_on_monotone_curve():
    c = M.Curve(np.array([0, 0.5, 1.0]), np.array([0.5, 0.7, 0.8]))
    # target .5 -> .5 + .5 * .3 = .65 -> c = .5 * (.15 / .2) = .375
    assert M.cpt(c, 0.8, 0.5, 0.5) == pytest.approx(0.375)
    assert M.cpt_reference_interp(c, 0.8, 0.5, 0.5) == pytest.approx(0.375)


def test_random_expected_curve():
    c = M.random_expected_curve(0.8, 0.6, 10)
    m = M.compute_metrics(c, 0.8, 0.6)
    assert m.apgr_trapezoid == pytest.approx(0.5)
    assert m.apgr_10pt == pytest.approx(0.55)  # = trapezoid + (PGR(1) - PGR(0)) / 20
    for level in M.CPT_LEVELS:
        assert m.cpt[level] == pytest.approx(level)


def test_oracle_curve_by_hand():
    strong = np.array([1.0, 1.0, 0.0, 1.0, 0.0])
    weak = np.array([0.0, 1.0, 1.0, 0.0, 0.0])
    # gains [1, 0, -1, 1, 0]: 2 strong-only prompts; w = .4, s = .6.
    # c = 0 .2 .4 .6 .8 1 -> budget 0..5 calls -> gain min(b, 2) -> r = .4 .6 .8 .8 .8 .8
    c = M.oracle_curve(strong, weak, 5)
    np.testing.assert_allclose(c.quality, [0.4, 0.6, 0.8, 0.8, 0.8, 0.8])
    # PGR 0 1 2 2 2 2: trapezoid .2 * (.5 + 1.5 + 2 + 2 + 2) = 1.6; capped .2 * (.5 + 4) = .9
    assert M.apgr_trapezoid(c, 0.6, 0.4) == pytest.approx(1.6)
    assert M.apgr_trapezoid(c, 0.6, 0.4, cap=True) == pytest.approx(0.9)
    # fractional budgets: c = .1 -> .5 calls -> half a gain (interpolate) or none (floor)
    c10 = M.oracle_curve(strong, weak, 10)
    assert c10.quality[1] == pytest.approx(0.5)
    c10f = M.oracle_curve(strong, weak, 10, budget_rounding="floor")
    assert c10f.quality[1] == pytest.approx(0.4)


def test_oracle_curve_graded_largest_gain_first():
    strong = np.array([9.0, 5.0, 8.0])
    weak = np.array([6.0, 8.0, 7.0])
    # gains 3, -3, 1; w = 7. budgets 0 1 2 3 -> gains 0 3 4 4 -> r = 7 8 8.333 8.333
    c = M.oracle_curve(strong, weak, 3)
    np.testing.assert_allclose(c.quality, [7, 8, 7 + 4 / 3, 7 + 4 / 3])


def test_pgr_errors_and_cap():
    assert M.pgr(1.0, 0.8, 0.6, cap=True) == 1.0
    assert M.pgr(1.0, 0.8, 0.6) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no finite gap"):
        M.pgr(0.5, 0.7, 0.7)


def test_input_validation():
    with pytest.raises(ValueError, match="win_rates has 2 values for 3 prompts"):
        M.threshold_curve(np.array([0.1, 0.2]), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="NaN at index 1"):
        M.threshold_curve(np.array([0.1, np.nan]), np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="sorted"):
        M.Curve(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="budget_rounding"):
        M.oracle_curve(np.ones(2), np.zeros(2), budget_rounding="round")


def test_metrics_to_dict_names():
    d = M.compute_metrics(M.random_expected_curve(1.0, 0.0), 1.0, 0.0).to_dict()
    for key in ("apgr_trapezoid", "apgr_10pt", "apgr_trapezoid_capped", "auc", "cpt_20", "cpt_50"):
        assert key in d
    assert d["cpt_80"] == pytest.approx(0.8)
