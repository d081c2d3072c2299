"""Best-of-n: the unbiased estimator against brute-force enumeration of all subsets (with ties), the analytic
KL against Monte Carlo and an exact discrete computation, and the functional-form fits against scipy."""

import itertools
import math

import numpy as np
import pytest

from workbench.preferences.best_of_n import (
    best_of_n_curve,
    best_of_n_estimates,
    best_of_n_weights,
    fit_functional_form,
    kl_best_of_n,
    kl_best_of_n_discrete,
    r_bon,
    r_rl,
)


def brute_force_best_of_n(proxy, gold, n):
    """Average over every n-subset of the gold of its proxy-best sample, a tied maximum picked uniformly at
    random (so the subset's value is the mean gold over its tied maxima)."""
    values = []
    for subset in itertools.combinations(range(len(proxy)), n):
        p = np.array([proxy[i] for i in subset])
        g = np.array([gold[i] for i in subset])
        values.append(g[p == p.max()].mean())
    return float(np.mean(values))


def test_weights_are_the_hypergeometric_formula():
    N = 7
    w = best_of_n_weights(N)
    for n in range(1, N + 1):
        for i in range(1, N + 1):
            expected = math.comb(i - 1, n - 1) / math.comb(N, n) if i >= n else 0.0
            assert w[n - 1, i - 1] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    # Large N stays finite (log-space computation).
    big = best_of_n_weights(2000)
    assert np.all(np.isfinite(big)) and np.allclose(big.sum(axis=1), 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_estimator_matches_brute_force_without_ties(seed):
    rng = np.random.default_rng(seed)
    N = 8
    proxy, gold = rng.normal(size=N), rng.normal(size=N)
    est = best_of_n_estimates(proxy, gold)[0]
    for n in range(1, N + 1):
        assert est[n - 1] == pytest.approx(brute_force_best_of_n(proxy, gold, n), rel=1e-10, abs=1e-12)
    assert est[0] == pytest.approx(gold.mean())           # best-of-1 is the base policy
    assert est[-1] == pytest.approx(gold[np.argmax(proxy)])  # best-of-N is the proxy argmax


@pytest.mark.parametrize("seed", range(4))
def test_estimator_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    N = 9
    proxy = rng.integers(0, 3, size=N).astype(float)  # many ties
    gold = rng.normal(size=N)
    est = best_of_n_estimates(proxy, gold, ties="average")[0]
    for n in range(1, N + 1):
        assert est[n - 1] == pytest.approx(brute_force_best_of_n(proxy, gold, n), rel=1e-10, abs=1e-12)
    # ties="random" is unbiased: its average over many seeds converges to the same values.
    random_mean = np.mean([best_of_n_estimates(proxy, gold, ties="random", seed=s)[0] for s in range(3000)], axis=0)
    np.testing.assert_allclose(random_mean, est, atol=0.03)


def test_curve_means_and_standard_errors_across_prompts():
    rng = np.random.default_rng(1)
    proxy, gold = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    curve = best_of_n_curve(proxy, gold)
    per_prompt = np.array([[brute_force_best_of_n(p, g, n) for n in range(1, 7)] for p, g in zip(proxy, gold)])
    np.testing.assert_allclose(curve.gold_mean, per_prompt.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(curve.gold_se, per_prompt.std(axis=0, ddof=1) / math.sqrt(5), rtol=1e-10)
    per_prompt_proxy = np.array([[brute_force_best_of_n(p, p, n) for n in range(1, 7)] for p in proxy])
    np.testing.assert_allclose(curve.proxy_mean, per_prompt_proxy.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(curve.kl, np.log(curve.n) - (curve.n - 1) / curve.n)
    np.testing.assert_allclose(curve.d, np.sqrt(curve.kl))
    # Ragged prompts: the curve stops at the smallest N.
    ragged = best_of_n_curve([proxy[0], proxy[1, :4]], [gold[0], gold[1, :4]])
    assert len(ragged.n) == 4
    assert ragged.gold_mean[1] == pytest.approx((per_prompt[0, 1] + brute_force_best_of_n(proxy[1, :4], gold[1, :4], 2)) / 2)


def test_analytic_kl_matches_monte_carlo_for_a_continuous_score():
    # Base: x ~ U(0, 1) scored by x itself. best-of-n is the max of n uniforms, with density n x^(n-1);
    # KL = E_bon[log(n x^(n-1))], estimated from samples of the max.
    rng = np.random.default_rng(0)
    for n in (1, 2, 4, 16, 64):
        x = rng.random((200_000, n)).max(axis=1)
        mc = np.mean(math.log(n) + (n - 1) * np.log(x))
        se = np.std(math.log(n) + (n - 1) * np.log(x)) / math.sqrt(len(x))
        assert abs(mc - kl_best_of_n(n)) < 4 * se + 1e-9
    assert kl_best_of_n(1000) == pytest.approx(math.log(1000) - 999 / 1000)  # about 5.9 nats


def test_discrete_kl_is_bounded_by_and_converges_to_the_analytic_kl():
    rng = np.random.default_rng(3)
    for n in (2, 4, 16):
        coarse = rng.dirichlet(np.ones(5))
        assert kl_best_of_n_discrete(coarse, n) < kl_best_of_n(n)
        fine = np.full(20_000, 1 / 20_000)
        assert kl_best_of_n_discrete(fine, n) == pytest.approx(kl_best_of_n(n), abs=2e-3)
    # Exact value against an explicit enumeration of all n-tuples for a 3-outcome base.
    p = np.array([0.5, 0.3, 0.2])
    n = 3
    q = np.zeros(3)
    for tup in itertools.product(range(3), repeat=n):
        q[max(tup)] += np.prod(p[list(tup)])
    assert kl_best_of_n_discrete(p, n) == pytest.approx(float(np.sum(q * np.log(q / p))), rel=1e-12)
    # Monte Carlo of the same discrete case.
    samples = rng.choice(3, p=p, size=(400_000, n)).max(axis=1)
    q_mc = np.bincount(samples, minlength=3) / len(samples)
    assert float(np.sum(q_mc * np.log(q_mc / p))) == pytest.approx(kl_best_of_n_discrete(p, n), abs=0.01)


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_fit_matches_scipy_curve_fit(form):
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    d = np.linspace(0.05, 3.0, 40)
    f = r_bon if form == "bon" else r_rl
    truth = (1.3, 0.4)
    r = f(d, *truth) + rng.normal(0, 0.05, size=d.size)
    fit = fit_functional_form(d, r, form)
    popt, pcov = scipy_optimize.curve_fit(lambda x, a, b: f(x, a, b), d, r, p0=(1.0, 0.1))
    np.testing.assert_allclose([fit.alpha, fit.beta], popt, rtol=1e-6)
    np.testing.assert_allclose(fit.cov, pcov, rtol=1e-4)
    assert abs(fit.alpha - truth[0]) < 4 * fit.alpha_se + 0.05
    # Weighted fit equals curve_fit with sigma.
    sigma = rng.uniform(0.02, 0.2, size=d.size)
    wfit = fit_functional_form(d, r, form, sigma=sigma)
    wpopt, wpcov = scipy_optimize.curve_fit(lambda x, a, b: f(x, a, b), d, r, p0=(1.0, 0.1), sigma=sigma)
    np.testing.assert_allclose([wfit.alpha, wfit.beta], wpopt, rtol=1e-6)
    np.testing.assert_allclose(wfit.cov, wpcov, rtol=1e-4)


def test_peaks_and_zero():
    assert r_rl(0.0, 1.0, 1.0) == 0.0 and r_bon(0.0, 1.0, 1.0) == 0.0
    d = np.linspace(0.01, 20, 200_001)
    for form, f, a, b in (("bon", r_bon, 1.0, 0.25), ("rl", r_rl, 1.0, 0.5)):
        fit = fit_functional_form(d[::1000], f(d[::1000], a, b), form)
        assert fit.alpha == pytest.approx(a) and fit.beta == pytest.approx(b)
        assert fit.peak_d == pytest.approx(d[np.argmax(f(d, a, b))], abs=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        best_of_n_estimates(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="ties"):
        best_of_n_estimates([1.0, 2.0], ties="first")
    with pytest.raises(ValueError, match="finite"):
        best_of_n_estimates([1.0, np.nan])
    with pytest.raises(ValueError, match="N must be"):
        best_of_n_weights(0)
    with pytest.raises(ValueError, match="n must be"):
        kl_best_of_n(0)
    with pytest.raises(ValueError, match="form"):
        fit_functional_form([1, 2, 3], [1, 2, 3], "linear")
    with pytest.raises(ValueError, match="at least 3"):
        fit_functional_form([1, 2], [1, 2], "bon")
    with pytest.raises(ValueError, match="d = sqrt"):
        fit_functional_form([-1, 1, 2], [0, 1, 2], "bon")


def test_sample_best_of_n_scores_episodes_with_the_proxy_and_the_gold():
    """End to end on colour_choice with a random policy: the proxy is a known function of the pixels (red
    frames), the gold the env reward (also red frames), so the two agree; the curve is the estimator applied
    to the per-episode sums, and best-of-n raises the gold."""
    import torch

    from workbench.preferences.best_of_n import best_of_n_curve, sample_best_of_n
    from workbench.rl.toy_env import PALETTE

    red = torch.tensor(PALETTE[0], dtype=torch.float32)

    def proxy_fn(obs_u8):
        return ((obs_u8.float().mean(dim=(1, 2)) - red).abs().max(-1).values < 30).float()

    curve, proxy, gold = sample_best_of_n(None, "colour_choice", proxy_fn, n=8, groups=6, seed=0)
    assert proxy.shape == gold.shape == (6, 8)
    np.testing.assert_allclose(proxy, gold)  # the proxy counts exactly the frames the env pays for
    reference = best_of_n_curve(proxy, gold)
    np.testing.assert_allclose(curve.gold_mean, reference.gold_mean)
    assert curve.gold_mean[-1] > curve.gold_mean[0]
    np.testing.assert_allclose(curve.gold_mean[-1], gold.max(axis=1).mean())
    with pytest.raises(ValueError, match="either level_seeds"):
        sample_best_of_n(None, "colour_choice", proxy_fn, n=2)
    # Procgen: n episodes on each given level
    curve, proxy, gold = sample_best_of_n(None, "coinrun", proxy_fn, n=2, level_seeds=[4, 5], max_steps=5)
    assert proxy.shape == (2, 2) and curve.num_prompts == 2 and list(curve.n) == [1, 2]
