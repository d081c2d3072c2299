"""Scaling-law fits (workbench.studies.fits, workbench.studies.frontier) against data drawn from known laws:
the bootstrap intervals cover the true exponents, the vectorized bootstrap refits agree with scipy's L-BFGS-B,
too few points is an error, and intrinsic performance is the frontier compute of a family whose learning
curves are known in closed form.

The coverage tests use 200 bootstrap resamples per fit instead of the library's default 1,000, to keep
50 repetitions fast; percentile intervals from 200 resamples are slightly noisier, not biased."""

import numpy as np
import pytest

from workbench.studies import fits
from workbench.studies.fits import (
    JointLaw,
    PowerLawPlusConstant,
    fit_intrinsic_law,
    fit_power_law,
)
from workbench.studies.frontier import (
    RunCurve,
    compute_frontier,
    fit_family,
    intrinsic_performance,
)

REPETITIONS, RESAMPLES = 50, 200


def power_law_data(rng, alpha=0.4, l_inf=0.3, x0=1e4, runs=10, points=10, noise=0.05):
    x = np.tile(np.geomspace(1e3, 1e7, points), runs)
    groups = np.repeat(np.arange(runs), points)
    y = (l_inf + (x0 / x) ** alpha) * np.exp(rng.normal(0, noise, x.size))
    return x, y, groups


def joint_law_data(rng, alpha_n=0.7, alpha_e=0.35, seeds=3, noise=0.05):
    sizes, steps = np.geomspace(1e5, 2e6, 4), np.geomspace(1e4, 1e7, 10)
    n = np.repeat(sizes, seeds * len(steps))
    e = np.tile(steps, len(sizes) * seeds)
    runs = np.repeat(np.arange(len(sizes) * seeds), len(steps))
    beta = alpha_n * alpha_e / (alpha_n + alpha_e)
    intrinsic = ((3e5 / n) ** alpha_n + (2e5 / e) ** alpha_e) ** (-1 / beta) * np.exp(rng.normal(0, noise, n.size))
    return n, e, intrinsic, runs


def test_power_law_intervals_cover_the_true_exponent():
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(REPETITIONS):
        x, y, groups = power_law_data(rng)
        fit = fit_power_law(x, y, groups, n_boot=RESAMPLES, seed=rep)
        lo, hi = fit.intervals["alpha"]
        covered += lo <= 0.4 <= hi
    assert covered >= 0.9 * REPETITIONS, f"{covered}/{REPETITIONS}"


def test_joint_law_intervals_cover_the_true_exponents():
    rng = np.random.default_rng(1)
    covered = {"alpha_n": 0, "alpha_e": 0, "optimal_size_exponent": 0}
    truth = {"alpha_n": 0.7, "alpha_e": 0.35, "optimal_size_exponent": 0.35 / 1.05}
    for rep in range(REPETITIONS):
        n, e, intrinsic, runs = joint_law_data(rng)
        fit = fit_intrinsic_law(n, e, intrinsic, runs, n_boot=RESAMPLES, seed=rep)
        for name in covered:
            lo, hi = fit.intervals[name]
            covered[name] += lo <= truth[name] <= hi
    assert all(c >= 0.9 * REPETITIONS for c in covered.values()), covered


def test_bootstrap_refits_reach_the_lbfgsb_optimum():
    """The vectorized Levenberg-Marquardt bootstrap refits land where scipy's L-BFGS-B does on the same
    resampled data (from the same grid of starting points)."""
    rng = np.random.default_rng(2)
    x, y, groups = power_law_data(rng)
    n, e, intrinsic, runs = joint_law_data(rng)
    problems = [(PowerLawPlusConstant(), (x[:, None] / 1e5, y, groups)),
                (JointLaw(), (np.stack([n / 5e5, e / 3e5], 1), intrinsic / np.exp(np.log(intrinsic).mean()), runs))]
    for model, (X, y, groups) in problems:
        _, samples, _ = fits._fit(model, X, y, groups, None, n_boot=5, delta=0.1, seed=3, widen=False)
        weights = fits.bootstrap_weights(groups, None, 5, 3)
        for b in range(5):
            starts = fits._best_of_grid(model, X, np.log(y)[None], weights[b:b + 1], 0.1, keep=6)[:, 0]
            best = min((fits._lbfgsb(model, t, X, np.log(y), weights[b], 0.1) for t in starts), key=lambda f: f[1])
            f_lm = fits._objective(model, samples[b:b + 1], X, np.log(y)[None], weights[b:b + 1], 0.1)[0]
            assert f_lm <= best[1] * (1 + 1e-6) + 1e-12
            np.testing.assert_allclose(samples[b, -2:], best[0][-2:], rtol=1e-3, atol=1e-4)


def test_point_estimates_recover_the_laws_and_report_residuals():
    rng = np.random.default_rng(4)
    x, y, groups = power_law_data(rng, noise=0.01)
    fit = fit_power_law(x, y, groups, n_boot=0)
    assert fit.alpha == pytest.approx(0.4, rel=0.05) and fit.l_inf == pytest.approx(0.3, rel=0.05)
    assert fit.x0 == pytest.approx(1e4, rel=0.1)
    assert fit.residuals.shape == y.shape and np.std(fit.residuals) == pytest.approx(0.01, rel=0.3)
    n, e, intrinsic, runs = joint_law_data(rng, noise=0.01)
    law = fit_intrinsic_law(n, e, intrinsic, runs, n_boot=0)
    assert law.alpha_n == pytest.approx(0.7, rel=0.05) and law.alpha_e == pytest.approx(0.35, rel=0.05)
    assert law.n_c == pytest.approx(3e5, rel=0.1) and law.e_c == pytest.approx(2e5, rel=0.1)
    # compute-optimal size: numerically (C = 6 N E) it grows as C^(alpha_e / (alpha_n + alpha_e))
    compute = np.geomspace(1e14, 1e18, 5)
    n_opt = law.optimal_size(compute, lambda size: 6 * size)
    slope = np.polyfit(np.log(compute), np.log(n_opt), 1)[0]
    assert slope == pytest.approx(law.optimal_size_exponent, abs=0.01)
    # on the law's own frontier, I is proportional to C (the role of beta)
    i_opt = law.predict(n_opt, compute / (6 * n_opt))
    assert np.polyfit(np.log(compute), np.log(i_opt), 1)[0] == pytest.approx(1.0, abs=0.01)


def test_too_few_points_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="at least 5 positive finite points"):
        fit_power_law([1, 2, 3, 4], [1, 0.8, 0.7, 0.6])
    with pytest.raises(ValueError, match="3 distinct"):
        fit_power_law([1, 1, 2, 2, 2, 1], [1, 1, 0.5, 0.5, 0.5, 1])
    with pytest.raises(ValueError, match="joint power law"):
        fit_intrinsic_law([1e5] * 9, np.arange(1, 10) * 1e4, np.arange(1, 10.0))
    with pytest.raises(ValueError, match="2 model sizes"):
        compute_frontier([RunCurve(1e5, 0, np.arange(1, 5), np.arange(1, 5) * 1e9, np.arange(4.0))])


def known_family(spread=0.0):
    """Sizes N with score R_N(C) = -((2e5 / N)^0.7 + (3e5 / E)^0.35), E = C / (6 N): two seeds per size at
    +-spread, so the seed average is the law itself. Returns the runs and the exact frontier compute C*(R)."""
    sizes = np.array([1e5, 4e5, 1.6e6])
    runs = []
    for n in sizes:
        e = np.geomspace(1e3, 1e8, 400)
        score = -((2e5 / n) ** 0.7 + (3e5 / e) ** 0.35)
        runs += [RunCurve(n, s, e, 6 * n * e, score + sign * spread) for s, sign in enumerate((1, -1))]

    def frontier_compute(r):
        gap = -r - (2e5 / sizes[:, None]) ** 0.7                   # (S, k) = (3e5 / E)^0.35
        e = 3e5 / np.where(gap > 0, gap, np.nan) ** (1 / 0.35)
        c = 6 * sizes[:, None] * e
        c = np.where((e >= 1e3) & (e <= 1e8), c, np.inf)            # only within the measured curves (NaN: never)
        return c.min(0)

    return runs, frontier_compute


def test_intrinsic_performance_is_the_known_frontier_compute():
    runs, frontier_compute = known_family(spread=0.05)
    frontier = compute_frontier(runs, grid_points=400)
    scores = np.linspace(-6.0, -1.2, 25)
    intrinsic = intrinsic_performance(scores, frontier)
    truth = frontier_compute(scores)
    inside = np.isfinite(truth) & np.isfinite(intrinsic)
    assert inside.sum() >= 20
    np.testing.assert_allclose(intrinsic[inside], truth[inside], rtol=0.02)
    # on the frontier itself I = C
    on = np.isfinite(frontier.score)
    np.testing.assert_allclose(intrinsic_performance(frontier.score[on], frontier)[5:], frontier.compute[on][5:],
                               rtol=1e-9)
    # the frontier is attained by bigger models at more compute
    attained = frontier.size[on]
    assert attained[0] == 1e5 and attained[-1] == 1.6e6 and (np.diff(attained) >= 0).all()


def test_fit_family_recovers_the_exponents_of_a_known_family():
    runs, _ = known_family()
    for run in runs:  # thin the curves to what a study logs
        keep = slice(0, None, 20)
        run.interactions, run.compute, run.score = run.interactions[keep], run.compute[keep], run.score[keep]
    # intrinsic performance is defined through the family itself, so the recovered exponents are the law's
    # only up to the discreteness of 3 sizes; they must still be in the right range and their ratio close
    _, points, law = fit_family(runs, n_boot=50)
    assert np.isfinite(points.intrinsic).sum() > 40
    assert 0.2 < law.optimal_size_exponent < 0.6 and law.intervals["alpha_n"][0] <= law.intervals["alpha_n"][1]
