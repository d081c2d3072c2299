"""Calibration metrics against scikit-learn, scipy and hand computations; BIG-bench and CalibratedMath
conventions on small hand-computed fixtures; input validation."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.stats import beta
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from workbench.calibration import metrics as C


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    y = (rng.random(2000) < p ** 1.5).astype(int)
    return p, y


def hand_bins(p, y, edges, right=True):
    """Plain loop over bins: (count, mean p, mean y) of non-empty bins."""
    out = []
    n = len(edges) - 1
    for i in range(n):
        lo, hi = edges[i], edges[i + 1]
        if right:
            m = ((p > lo) | (i == 0) & (p >= lo)) & (p <= hi)
        else:
            m = (p >= lo) & ((p < hi) | (i == n - 1) & (p <= hi))
        if m.any():
            out.append((m.sum(), p[m].mean(), y[m].mean()))
    return out


# ------------------------------------------------------------------------------------------ vs scikit-learn

@pytest.mark.parametrize("strategy,n_bins", [("uniform", 10), ("uniform", 15), ("quantile", 20), ("quantile", 7)])
def test_bins_match_sklearn_calibration_curve(data, strategy, n_bins):
    p, y = data
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    rb = C.reliability_bins(p, y, n_bins=n_bins, strategy=strategy, n_bootstrap=0)
    np.testing.assert_allclose(rb.accuracy[rb.nonempty], prob_true, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rb.mean_confidence[rb.nonempty], prob_pred, rtol=0, atol=1e-15)
    assert C.average_calibration_error(p, y, n_bins=n_bins, strategy=strategy) == pytest.approx(
        np.abs(prob_true - prob_pred).mean(), abs=1e-15)


def test_calibratedmath_mad_matches_sklearn_with_ties_and_duplicate_edges():
    # verbalized confidences take few values: many quantile edges repeat, scikit-learn drops the empty bins
    rng = np.random.default_rng(1)
    conf = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], size=500, p=[0.1, 0.1, 0.2, 0.3, 0.3])
    y = (rng.random(500) < conf).astype(int)
    prob_true, prob_pred = calibration_curve(y, conf, n_bins=20, strategy="quantile")
    assert len(prob_true) < 20  # the fixture really has duplicate edges
    assert C.calibratedmath_mad(conf, y, closed="right") == pytest.approx(100 * np.abs(prob_true - prob_pred).mean(),
                                                                        abs=1e-12)
    # points on interior uniform edges go to the lower bin, as in scikit-learn >= 1.1
    conf = np.array([0.0, 0.25, 0.5, 0.5, 0.75, 1.0])
    y = np.array([0, 1, 0, 1, 1, 1])
    pt, pp = calibration_curve(y, conf, n_bins=4)
    rb = C.reliability_bins(conf, y, n_bins=4, n_bootstrap=0)
    np.testing.assert_array_equal(rb.count, [2, 2, 1, 1])
    np.testing.assert_allclose(rb.accuracy[rb.nonempty], pt)
    np.testing.assert_allclose(rb.mean_confidence[rb.nonempty], pp)


def _calibration_curve_before_sklearn_1_1(y, prob, n_bins):
    """scikit-learn 0.24's calibration_curve(strategy="quantile"), the version of CalibratedMath's paper."""
    bins = np.percentile(prob, np.linspace(0, 1, n_bins + 1) * 100)
    bins[-1] = bins[-1] + 1e-8
    ids = np.digitize(prob, bins) - 1
    total = np.bincount(ids, minlength=len(bins))
    nonzero = total != 0
    return (np.bincount(ids, weights=y, minlength=len(bins))[nonzero] / total[nonzero],
            np.bincount(ids, weights=prob, minlength=len(bins))[nonzero] / total[nonzero])


def test_calibratedmath_mad_bins_as_the_papers_scikit_learn_by_default():
    # Lin, Hilton, Evans 2022 (arXiv 2205.14334) computed MAD with scikit-learn < 1.1: left-closed bins.
    rng = np.random.default_rng(3)
    conf = np.round(rng.beta(4, 2, size=300), 1)  # verbalized: a few values, so many lie on quantile edges
    y = (rng.random(300) < conf * 0.8).astype(int)
    prob_true, prob_pred = _calibration_curve_before_sklearn_1_1(y, conf, 20)
    paper = 100 * np.abs(prob_true - prob_pred).mean()
    assert C.calibratedmath_mad(conf, y) == pytest.approx(paper, abs=1e-12)
    assert C.calibratedmath_mad(conf, y, closed="left") == pytest.approx(paper, abs=1e-12)
    assert abs(C.calibratedmath_mad(conf, y, closed="right") - paper) > 0.5  # the fixture tells the two apart


def test_constant_prediction_mad_is_gap_in_one_bin():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0])
    assert C.calibratedmath_mad(np.full(8, 0.6), y) == pytest.approx(100 * abs(0.25 - 0.6))
    assert C.calibratedmath_mse(np.full(8, 0.6), y) == pytest.approx(100 * np.mean((y - 0.6) ** 2))
    assert C.calibratedmath_mse(np.full(8, 0.6), y, scale=1) == pytest.approx(np.mean((y - 0.6) ** 2))


def test_closed_left_is_the_old_sklearn_digitize_convention():
    conf = np.array([0.0, 0.25, 0.5, 0.5, 0.75, 1.0])
    ids, _ = C.assign_bins(conf, n_bins=4, closed="left")
    np.testing.assert_array_equal(ids, [0, 1, 2, 2, 3, 3])
    old = np.digitize(conf, np.append(np.linspace(0, 1, 5)[:-1], 1 + 1e-8)) - 1  # scikit-learn < 1.1
    np.testing.assert_array_equal(ids, old)
    ids, _ = C.assign_bins(conf, n_bins=4, closed="right")
    np.testing.assert_array_equal(ids, [0, 0, 1, 1, 2, 3])


def test_brier_and_log_loss_match_sklearn(data):
    p, y = data
    assert C.brier_score(p, y) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    assert C.log_loss(p, y) == pytest.approx(sk_log_loss(y, p), rel=1e-12)
    extreme = np.array([0.0, 1.0, 1.0, 0.3])
    ye = np.array([1, 1, 0, 0])
    assert C.log_loss(extreme, ye) == pytest.approx(sk_log_loss(ye, extreme), rel=1e-9)
    rng = np.random.default_rng(2)
    probs = C.softmax(rng.normal(size=(300, 4)) * 2)
    labels = rng.integers(0, 4, 300)
    assert C.log_loss(probs, labels) == pytest.approx(sk_log_loss(labels, probs, labels=[0, 1, 2, 3]), rel=1e-12)
    onehot = np.eye(4)[labels]
    assert C.multiclass_brier(probs, labels) == pytest.approx(((probs - onehot) ** 2).sum(1).mean())


# ------------------------------------------------------------------------------------------ hand computed

@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_ece_mce_match_plain_loops(data, strategy):
    p, y = data
    edges = np.linspace(0, 1, 16) if strategy == "uniform" else np.percentile(p, np.linspace(0, 1, 16) * 100)
    bins = hand_bins(p, y, edges)
    ece = sum(n * abs(py - pp) for n, pp, py in bins) / len(p)
    mce = max(abs(py - pp) for n, pp, py in bins)
    assert C.ece(p, y, n_bins=15, strategy=strategy) == pytest.approx(ece, abs=1e-12)
    assert C.mce(p, y, n_bins=15, strategy=strategy) == pytest.approx(mce, abs=1e-12)


def test_adaptive_ece_equal_count_bins():
    p = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.7, 0.4])
    y = np.array([1, 0, 1, 1, 0, 0, 0])
    ids, _ = C.assign_bins(p, n_bins=3, strategy="equal_count")
    # sorted: .1 .2 .3 | .4 .7 | .8 .9  (sizes 3, 2, 2)
    np.testing.assert_array_equal(np.bincount(ids), [3, 2, 2])
    expected = (abs(1 - 0.6) + abs(0 - 1.1) + abs(2 - 1.7)) / 7
    assert C.adaptive_ece(p, y, n_bins=3) == pytest.approx(expected)
    with pytest.raises(ValueError, match="equal-mass"):
        C.adaptive_ece(p, y, strategy="uniform")


def test_multiclass_ece_is_top_label():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    labels = np.array([0, 2, 2])
    conf, correct = np.array([0.7, 0.6, 0.5]), np.array([1, 0, 1])
    assert C.multiclass_ece(probs, labels, n_bins=10) == pytest.approx(C.ece(conf, correct, n_bins=10))
    assert C.multiclass_ece(probs, labels, n_bins=10) == pytest.approx((0.3 + 0.6 + 0.5) / 3)


def test_murphy_decomposition():
    # forecasts take three values, one per bin: the binned decomposition is exact
    p = np.array([0.1] * 4 + [0.5] * 4 + [0.9] * 4)
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1])
    d = C.murphy_decomposition(p, y, n_bins=10)
    obar = y.mean()
    rel = (4 * (0.1 - 0.25) ** 2 + 4 * (0.5 - 0.5) ** 2 + 4 * (0.9 - 1.0) ** 2) / 12
    res = (4 * (0.25 - obar) ** 2 + 4 * (0.5 - obar) ** 2 + 4 * (1.0 - obar) ** 2) / 12
    assert d.reliability == pytest.approx(rel)
    assert d.resolution == pytest.approx(res)
    assert d.uncertainty == pytest.approx(obar * (1 - obar))
    assert d.within_bin_variance == pytest.approx(0, abs=1e-15)
    assert d.brier == pytest.approx(d.binned_brier)
    assert d.brier == pytest.approx(brier_score_loss(y, p))


@pytest.mark.parametrize("strategy", ["uniform", "quantile", "equal_count"])
def test_murphy_identity_with_within_bin_terms(data, strategy):
    p, y = data
    d = C.murphy_decomposition(p, y, n_bins=8, strategy=strategy)
    assert d.brier == pytest.approx(d.binned_brier + d.within_bin_variance - 2 * d.within_bin_covariance, abs=1e-14)


# ----------------------------------------------------------------------------------------------- BIG-bench

BB_PROBS = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.3, 0.25, 0.45]])
BB_TARGETS = np.array([0, 0, 2])


def test_bigbench_ece_by_hand():
    # confidences .7, .5, .45 fall in three different 1/15-wide bins; correct = 1, 0, 1
    assert C.bigbench_ece(BB_PROBS, BB_TARGETS) == pytest.approx((0.3 + 0.5 + 0.55) / 3)
    # target scores instead of indices give the same
    assert C.bigbench_ece(BB_PROBS, np.eye(3)[BB_TARGETS]) == pytest.approx((0.3 + 0.5 + 0.55) / 3)
    # .65 and .70 share a bucket only with the 'linspace_points' edges (14 buckets of width 1/14)
    probs, targets = np.array([[0.65, 0.35], [0.70, 0.30]]), np.array([0, 1])
    assert C.bigbench_ece(probs, targets) == pytest.approx((0.35 + 0.70) / 2)
    assert C.bigbench_ece(probs, targets, edges="linspace_points") == pytest.approx(abs(1 - 1.35) / 2)


def test_bigbench_brier_by_hand():
    # per example: .09+.04+.01, .36+.25+.01, .09+.0625+.3025; mean over the 9 (example, option) pairs
    assert C.bigbench_brier(BB_PROBS, BB_TARGETS) == pytest.approx((0.14 + 0.62 + 0.455) / 9)
    assert C.bigbench_brier(BB_PROBS, BB_TARGETS) == pytest.approx(C.multiclass_brier(BB_PROBS, BB_TARGETS) / 3)
    # two correct options: t = .5 each, per-pair term t(p-1)^2 + (1-t)p^2
    p, t = np.array([[0.6, 0.3, 0.1]]), np.array([[1, 1, 0]])
    assert C.bigbench_brier(p, t) == pytest.approx((0.08 + 0.18 + 0.245 + 0.045 + 0.01) / 3)
    assert C.bigbench_ece(p, t) == pytest.approx(0.4)  # argmax(target) = 0 = argmax(probs): correct


def test_bigbench_ragged_rows():
    probs = [np.array([0.7, 0.2, 0.1]), np.array([0.4, 0.6]), np.array([0.3, 0.25, 0.45])]
    targets = [0, 1, 2]
    pairs = (0.09 + 0.04 + 0.01) + (0.16 + 0.16) + (0.09 + 0.0625 + 0.3025)
    assert C.bigbench_brier(probs, targets) == pytest.approx(pairs / 8)
    assert C.bigbench_ece(probs, targets) == pytest.approx((0.3 + 0.4 + 0.55) / 3)
    logits = np.log(BB_PROBS) + 3.0
    np.testing.assert_allclose(C.softmax(logits), BB_PROBS)


# ------------------------------------------------------------------------------------- intervals, reliability

def test_clopper_pearson_matches_scipy():
    for n in (1, 2, 7, 30, 250, 5000):
        k = np.arange(n + 1) if n <= 30 else np.unique(np.linspace(0, n, 13).round().astype(int))
        for alpha in (0.05, 0.01, 0.3):
            lo, hi = C.clopper_pearson(k, np.full(k.shape, n), alpha=alpha)
            ref_lo = np.where(k > 0, beta.ppf(alpha / 2, np.maximum(k, 1), n - k + 1), 0.0)
            ref_hi = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)), 1.0)
            np.testing.assert_allclose(lo, ref_lo, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(hi, ref_hi, rtol=1e-9, atol=1e-12)
    lo, hi = C.clopper_pearson(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def test_reliability_bins_table():
    p = np.array([0.05, 0.12, 0.18, 0.55, 0.56, 0.95, 0.96, 0.97])
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1])
    rb = C.reliability_bins(p, y, n_bins=5, n_bootstrap=500, seed=3)
    np.testing.assert_array_equal(rb.count, [3, 0, 2, 0, 3])
    assert np.isnan(rb.accuracy[1]) and np.isnan(rb.cp_low[1]) and np.isnan(rb.boot_low[1])
    np.testing.assert_allclose(rb.accuracy[rb.nonempty], [1 / 3, 0.5, 1.0])
    np.testing.assert_allclose(rb.mean_confidence[rb.nonempty], [0.35 / 3, 0.555, 0.96])
    np.testing.assert_allclose(rb.lower, [0, 0.2, 0.4, 0.6, 0.8])
    lo, hi = C.clopper_pearson(np.array([1, 1, 3]), np.array([3, 2, 3]))
    np.testing.assert_allclose(rb.cp_low[rb.nonempty], lo)
    np.testing.assert_allclose(rb.cp_high[rb.nonempty], hi)
    # an all-correct bin: the bootstrap band collapses, Clopper-Pearson does not
    assert rb.boot_low[4] == rb.boot_high[4] == 1.0
    assert rb.cp_low[4] == pytest.approx(0.025 ** (1 / 3)) and rb.cp_high[4] == 1.0
    assert rb.ece == pytest.approx(C.ece(p, y, n_bins=5))
    again = C.reliability_bins(p, y, n_bins=5, n_bootstrap=500, seed=3)
    np.testing.assert_array_equal(rb.boot_low, again.boot_low)
    assert len(rb.rows()) == 5 and rb.rows()[1]["count"] == 0


def test_reliability_bins_equal_count_edges():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    rb = C.reliability_bins(p, np.array([0, 0, 1, 0, 1, 1]), n_bins=3, strategy="equal_count", n_bootstrap=0)
    np.testing.assert_allclose(rb.lower, [0.1, 0.3, 0.5])
    np.testing.assert_allclose(rb.upper, [0.2, 0.4, 0.6])
    np.testing.assert_array_equal(rb.count, [2, 2, 2])


# ---------------------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("probs,outcomes,match", [
    ([0.2, 1.3], [0, 1], r"must lie in \[0, 1\]"),
    ([0.2, -0.1], [0, 1], r"must lie in \[0, 1\]"),
    ([0.2, np.nan], [0, 1], "NaN"),
    ([0.2, 0.3, 0.4], [0, 1], "same length"),
    ([0.2, 0.3], [0, 2], "binary labels 0/1"),
    ([0.2, 0.3], [0.5, 1], "binary labels 0/1"),
    ([], [], "empty"),
    ([[0.2, 0.3]], [0, 1], "1-D"),
])
def test_bad_input_raises_clear_errors(probs, outcomes, match):
    with pytest.raises(ValueError, match=match):
        C.ece(probs, outcomes)


def test_bad_options_and_multiclass_input():
    with pytest.raises(ValueError, match="strategy must be one of"):
        C.ece([0.5], [1], strategy="kmeans")
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        C.ece([0.5], [1], n_bins=0)
    with pytest.raises(ValueError, match="closed must be one of"):
        C.mce([0.5], [1], closed="both")
    with pytest.raises(ValueError, match="must sum to 1"):
        C.multiclass_ece([[0.5, 0.6]], [0])
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        C.multiclass_ece([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="target scores shaped like probs"):
        C.bigbench_brier(BB_PROBS, np.ones((3, 2)))
    with pytest.raises(ValueError, match="at least one choice"):
        C.bigbench_ece(BB_PROBS, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="whole numbers"):
        C.clopper_pearson(3, 2)


def test_calibration_summary_row(data):
    p, y = data
    row = C.calibration_summary(p, y, n_bins=12, strategy="quantile")
    assert tuple(row) == C.SUMMARY_METRICS
    assert row["n"] == p.size and row["accuracy"] == pytest.approx(y.mean())
    assert row["mean_confidence"] == pytest.approx(p.mean())
    assert row["brier"] == pytest.approx(brier_score_loss(y, p))
    assert row["log_loss"] == pytest.approx(sk_log_loss(y, p))
    # ECE/MCE stay on equal-width bins whatever the strategy; adaptive ECE on equal-count bins
    edges = np.linspace(0, 1, 13)
    bins = hand_bins(p, y, edges)
    assert row["ece"] == pytest.approx(sum(n * abs(my - mp) for n, mp, my in bins) / p.size)
    assert row["mce"] == pytest.approx(max(abs(my - mp) for _, mp, my in bins))
    assert row["adaptive_ece"] == pytest.approx(C.adaptive_ece(p, y, n_bins=12))
    d = C.murphy_decomposition(p, y, n_bins=12, strategy="quantile")
    assert (row["reliability"], row["resolution"], row["uncertainty"]) == (d.reliability, d.resolution,
                                                                           d.uncertainty)


def test_vectorized_speed_smoke():
    rng = np.random.default_rng(0)
    p = rng.random(1_000_000)
    y = (rng.random(1_000_000) < p).astype(np.int8)
    t = time.perf_counter()
    C.ece(p, y)
    C.calibratedmath_mad(p, y)
    assert time.perf_counter() - t < 5.0  # ~0.2 s on one core; generous for a shared CI machine


def test_headless_modules_import_no_ui_library():
    code = ("import sys, workbench.calibration.metrics, workbench.calibration.verifiers, workbench.calibration.calibrated_math, "
            "workbench.calibration.predictions; "
            "print([m for m in ('panel', 'plotly', 'ipywidgets', 'bokeh') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
