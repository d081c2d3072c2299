"""Scaling-law fits: the power law plus constant, the compute-efficient frontier, intrinsic performance and
the joint power law in model size and environment interactions, with bootstrap confidence intervals.

Laws (x = parameters, interactions or compute):
- Henighan et al. 2020 (arXiv 2010.14701), eq. 1.1: L(x) = L_inf + (x0 / x)^alpha.
- Hilton, Tang, Schulman 2023 (arXiv 2301.13442), Sec. 3: the intrinsic performance I of a return is the
  least training compute with which any model of a family (seed-averaged learning curves) reaches that
  return, so I = C on the compute-efficient frontier; their law
      I^(-beta) = (N_c / N)^alpha_N + (E_c / E)^alpha_E,   beta = alpha_N alpha_E / (alpha_N + alpha_E),
  and, with C proportional to N E, the compute-optimal size N_opt proportional to C^(alpha_E / (alpha_N + alpha_E)).
  (The beta makes I = C on the law's own frontier; `IntrinsicLawFit.optimal_size` checks that numerically.)

How it is fitted (the Chinchilla approach-3 replication of Besiroglu et al. 2024, arXiv 2404.10102): a Huber
loss on log residuals log(prediction) - log(observation); the linear coefficients (L_inf and (x0)^alpha; the
two terms' coefficients of the joint law) solved exactly by weighted least squares for every point of a grid
of exponents (variable projection), the best grid points then refined by L-BFGS-B on all parameters. The
bootstrap resamples whole runs (seeds within each model size when sizes are given) 1,000 times by default;
each resample is refitted from its own variable-projection grid optimum and the full-data optimum, refined
by a vectorized Levenberg-Marquardt on the same Huber objective (iteratively reweighted), which reaches the
same optimum as L-BFGS-B (tests check this) at a fraction of the cost. Percentile intervals.
Departure: Hilton et al. fit I jointly with a monotone map from return to I inside a black-box optimizer;
here I is the empirical frontier inversion (its definition) and the law is fitted to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm
from scipy.stats import t as student_t

DEFAULT_DELTA = 0.1        # Huber threshold on log residuals: RL curves scatter by 5-30% (Chinchilla's 1e-3
                           # suited language-model losses, whose log residuals are ~100x smaller)
DEFAULT_BOOTSTRAP = 1000


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


# ================================================================================================ models

class _Model:
    """A law in log space: `log_predict(theta (B, p), X (n, k)) -> (B, n)`; `varpro_grid` gives, for a grid of
    exponents, the exactly solved linear coefficients as full parameter vectors (G, B, p)."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    def log_predict(self, theta, X):
        raise NotImplementedError

    def varpro_grid(self, X, logy, w):
        raise NotImplementedError


def _weighted_2x2(u, v, t, wt):
    """Weighted least squares t ~ a u + b v (broadcast over leading axes, summed over the last) with
    a, b >= 0: the unconstrained solution, else the better single-term fit."""
    suu, svv, suv = (wt * u * u).sum(-1), (wt * v * v).sum(-1), (wt * u * v).sum(-1)
    sut, svt = (wt * u * t).sum(-1), (wt * v * t).sum(-1)
    det = suu * svv - suv * suv
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (sut * svv - svt * suv) / det
        b = (svt * suu - sut * suv) / det
        a_only, b_only = np.maximum(sut / suu, 0), np.maximum(svt / svv, 0)
    bad = ~np.isfinite(a) | ~np.isfinite(b) | (a < 0) | (b < 0)
    sse = lambda a_, b_: (wt * (t - a_[..., None] * u - b_[..., None] * v) ** 2).sum(-1)
    use_a = sse(a_only, np.zeros_like(a_only)) <= sse(np.zeros_like(b_only), b_only)
    a = np.where(bad, np.where(use_a, a_only, 0.0), a)
    b = np.where(bad, np.where(use_a, 0.0, b_only), b)
    return a, b


_TINY = 1e-12


class PowerLawPlusConstant(_Model):
    """log L = log(L_inf + B (x / x_ref)^-alpha); theta = (log L_inf, log B, alpha)."""

    names = ("log_l_inf", "log_b", "alpha")
    lower = np.array([np.log(_TINY), -60.0, 1e-3])
    upper = np.array([30.0, 60.0, 5.0])
    alphas = np.geomspace(0.01, 4.0, 60)

    def log_predict(self, theta, X):
        lx = np.log(X[:, 0])
        return np.logaddexp(theta[:, :1], theta[:, 1:2] - theta[:, 2:3] * lx[None])

    def varpro_grid(self, X, logy, w):
        y = np.exp(logy)                                            # (B, n)
        u = np.ones_like(X[:, 0])
        v = np.exp(-self.alphas[:, None] * np.log(X[None, :, 0]))   # (G, n)
        wt = w / y ** 2                                             # relative residuals ~ log residuals
        a, b = _weighted_2x2(u[None, None], v[:, None], y[None], wt[None])  # (G, B)
        alpha = np.broadcast_to(self.alphas[:, None], a.shape)
        return np.stack([np.log(np.maximum(a, _TINY)), np.log(np.maximum(b, _TINY)), alpha], -1)


class JointLaw(_Model):
    """Hilton et al.'s law in normalized units (I, N, E divided by reference values):
    log I = -(1/beta) log(A N^-alpha_N + B E^-alpha_E); theta = (log A, log B, alpha_N, alpha_E)."""

    names = ("log_a", "log_b", "alpha_n", "alpha_e")
    lower = np.array([-60.0, -60.0, 0.02, 0.02])
    upper = np.array([60.0, 60.0, 5.0, 5.0])
    grid = np.geomspace(0.05, 3.0, 16)

    @staticmethod
    def beta(alpha_n, alpha_e):
        return alpha_n * alpha_e / (alpha_n + alpha_e)

    def log_predict(self, theta, X):
        ln, le = np.log(X[:, 0]), np.log(X[:, 1])
        s = np.logaddexp(theta[:, :1] - theta[:, 2:3] * ln[None], theta[:, 1:2] - theta[:, 3:4] * le[None])
        return -s / self.beta(theta[:, 2:3], theta[:, 3:4])

    def varpro_grid(self, X, logy, w):
        an, ae = (g.ravel() for g in np.meshgrid(self.grid, self.grid, indexing="ij"))  # (G,)
        beta = self.beta(an, ae)
        t = np.exp(-beta[:, None, None] * logy[None])                  # I^-beta, (G, B, n)
        u = np.exp(-an[:, None] * np.log(X[None, :, 0]))[:, None]      # (G, 1, n)
        v = np.exp(-ae[:, None] * np.log(X[None, :, 1]))[:, None]
        # log residual of I = -(1/beta) x relative residual of I^-beta
        a, b = _weighted_2x2(u, v, t, w[None] / (beta[:, None, None] * t) ** 2)
        shape = a.shape
        return np.stack([np.log(np.maximum(a, _TINY)), np.log(np.maximum(b, _TINY)),
                         np.broadcast_to(an[:, None], shape), np.broadcast_to(ae[:, None], shape)], -1)


# ================================================================================================ engine

def _objective(model, theta, X, logy, w, delta):
    """(B,) weighted Huber loss of the log residuals."""
    return (w * huber(model.log_predict(theta, X) - logy, delta)).sum(-1)


def _jacobian(model, theta, X, base=None, eps=1e-7):
    """(B, n, p) forward differences of log_predict (`base`: its value at theta, if already computed)."""
    base = model.log_predict(theta, X) if base is None else base
    cols = []
    for j in range(theta.shape[1]):
        shifted = theta.copy()
        shifted[:, j] += eps
        cols.append((model.log_predict(shifted, X) - base) / eps)
    return np.stack(cols, -1)


def _levenberg_marquardt(model, theta, X, logy, w, delta, iterations=100, tol=1e-12):
    """Vectorized damped Gauss-Newton on the Huber objective (IRLS weights), one problem per row of theta;
    stops when no row improves its objective by more than `tol` (relative) for a few iterations."""
    theta = np.clip(theta.copy(), model.lower, model.upper)
    lam = np.full(theta.shape[0], 1e-3)
    pred = model.log_predict(theta, X)
    f = (w * huber(pred - logy, delta)).sum(-1)
    eye = np.eye(theta.shape[1])
    quiet = 0
    for _ in range(iterations):
        r = pred - logy
        u = w * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        J = _jacobian(model, theta, X, pred)
        uJ = u[..., None] * J
        H = np.matmul(uJ.transpose(0, 2, 1), J)
        g = np.matmul(uJ.transpose(0, 2, 1), r[..., None])[..., 0]
        damp = lam[:, None, None] * (H * eye + 1e-9 * eye)
        step = np.linalg.solve(H + damp, -g[..., None])[..., 0]
        trial = np.clip(theta + step, model.lower, model.upper)
        pred_trial = model.log_predict(trial, X)
        f_trial = (w * huber(pred_trial - logy, delta)).sum(-1)
        better = np.isfinite(f_trial) & (f_trial < f)
        gain = np.where(better, (f - f_trial) / np.maximum(f, 1e-300), 0.0)
        theta[better], f[better], pred[better] = trial[better], f_trial[better], pred_trial[better]
        lam = np.where(better, lam * 0.3, lam * 10.0).clip(1e-12, 1e12)
        quiet = quiet + 1 if gain.max(initial=0.0) < tol else 0
        if quiet >= 3:
            break
    return theta, f


def _best_of_grid(model, X, logy, w, delta, keep=1):
    """The `keep` best variable-projection grid points per row: (keep, B, p)."""
    cand = model.varpro_grid(X, logy, w)                                 # (G, B, p)
    G, B, p = cand.shape
    f = _objective(model, cand.reshape(G * B, p), X, np.tile(logy, (G, 1)), np.tile(w, (G, 1)), delta)
    f = np.where(np.isfinite(f), f, np.inf).reshape(G, B)
    order = np.argsort(f, axis=0)[:keep]                                 # (keep, B)
    return np.take_along_axis(cand, order[..., None], axis=0)


def _lbfgsb(model, theta0, X, logy, w, delta):
    def fun(t):
        t2 = t[None]
        r = model.log_predict(t2, X)[0] - logy
        psi = w * np.clip(r, -delta, delta)                               # Huber derivative
        return float((w * huber(r, delta)).sum()), _jacobian(model, t2, X, eps=1e-8)[0].T @ psi

    bounds = list(zip(model.lower, model.upper))
    res = minimize(fun, np.clip(theta0, model.lower, model.upper), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
    return res.x, float(res.fun)


def _fit(model, X, y, groups, strata, *, n_boot, delta, seed, level=0.95, starts=6, boot=None, widen=True):
    """Point estimate (L-BFGS-B from the best `starts` variable-projection grid points) and bootstrap
    parameter samples (each resample refined by Levenberg-Marquardt from the full-data optimum and from the
    best other grid starts, keeping the lowest objective). `boot`: (y (B, n), weights (B, n)) of resamples
    made by the caller (e.g. a frontier recomputed from resampled runs) instead of resampling groups."""
    logy = np.log(y)
    w1 = np.ones((1, len(y)))
    grid = _best_of_grid(model, X, logy[None], w1, delta, keep=starts)[:, 0]
    fits = [_lbfgsb(model, t0, X, logy, w1[0], delta) for t0 in grid]
    theta, _ = min(fits, key=lambda f: f[1])
    if boot is None:
        weights, logy_boot = bootstrap_weights(groups, strata, n_boot, seed), np.broadcast_to(logy, (n_boot, len(y)))
    else:
        y_boot, weights = (np.asarray(a, float) for a in boot)
        n_boot = len(weights)
        usable = (weights > 0) & np.isfinite(y_boot) & (y_boot > 0)
        weights, logy_boot = np.where(usable, weights, 0.0), np.log(np.where(usable, y_boot, 1.0))
    samples = np.empty((0, len(theta)))
    if n_boot:
        inits = np.concatenate([theta[None], grid[:2]])                  # (3, p)
        k = len(inits)
        rows = np.repeat(inits, n_boot, axis=0)
        t, f = _levenberg_marquardt(model, rows, X, np.tile(logy_boot, (k, 1)), np.tile(weights, (k, 1)), delta)
        best = np.argmin(f.reshape(k, n_boot), axis=0)
        samples = t.reshape(k, n_boot, -1)[best, np.arange(n_boot)]
        if widen:
            samples = np.clip(theta + (samples - theta) * _small_sample_widening(groups, strata, level),
                              model.lower, model.upper)
    residuals = logy - model.log_predict(theta[None], X)[0]
    return theta, samples, residuals


def _small_sample_widening(groups, strata, level) -> float:
    """Factor by which bootstrap deviations are widened when few runs are resampled (a study has a handful):
    drawing m runs with replacement understates a mean's variance by (m - 1) / m (Davison & Hinkley 1997,
    Sec. 3.8; m: the fewest runs in a stratum), and with G runs in all the spread is itself uncertain, for
    which cluster-robust inference uses Student's t with G - 1 degrees of freedom instead of the normal
    (Cameron & Miller 2015). Without it 95% intervals held the truth in 90-93% of the tests' synthetic
    studies (10-12 runs), with it 94-96% (benchmarks/fit_coverage.py)."""
    groups = np.asarray(groups)
    strata = np.zeros(len(groups), int) if strata is None else np.asarray(strata)
    m = min(len(np.unique(groups[strata == s])) for s in np.unique(strata))
    g = len(np.unique(groups))
    factor = np.sqrt(m / (m - 1)) if m > 1 else 1.0
    if g > 1:
        q = 0.5 + level / 2
        factor *= student_t.ppf(q, g - 1) / norm.ppf(q)
    return float(factor)


def bootstrap_weights(groups, strata, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) multiplicities of each point when whole groups (runs) are drawn with replacement, within
    each stratum (model size) when strata are given, so every size stays in every resample."""
    groups = np.asarray(groups)
    strata = np.zeros(len(groups), int) if strata is None else np.asarray(strata)
    rng = np.random.default_rng(seed)
    counts = {}
    for s in np.unique(strata):
        members = np.unique(groups[strata == s])
        draws = rng.integers(len(members), size=(n_boot, len(members)))
        for k, g in enumerate(members):
            counts[g] = (draws == k).sum(1)
    return np.stack([counts[g] for g in groups], 1).astype(float)


def _interval(samples, level):
    lo, hi = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi


def _check(x_arrays, y, groups, min_points, min_groups, what):
    y = np.asarray(y, float)
    arrays = [np.asarray(x, float) for x in x_arrays]
    if any(a.shape != y.shape for a in arrays) or y.ndim != 1:
        raise ValueError(f"{what}: the inputs must be 1-D arrays of the same length")
    ok = np.isfinite(y) & (y > 0)
    for a in arrays:
        ok &= np.isfinite(a) & (a > 0)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    n, distinct = int(ok.sum()), [len(np.unique(a[ok])) for a in arrays]
    n_groups = len(np.unique(groups[ok]))
    if n < min_points or min(distinct) < 3 or n_groups < min_groups:
        raise ValueError(f"{what} needs at least {min_points} positive finite points with at least 3 distinct "
                         f"values of each variable and {min_groups} runs; got {n} points, {distinct} distinct "
                         f"values and {n_groups} runs")
    return [a[ok] for a in arrays], y[ok], groups[ok], ok


# ================================================================================================ results

@dataclass
class PowerLawFit:
    """L(x) = l_inf + (x0 / x)^alpha with 95% (by default) bootstrap intervals and log residuals."""

    l_inf: float
    x0: float
    alpha: float
    intervals: dict[str, tuple[float, float]]
    residuals: np.ndarray          # log(observed) - log(fitted), per point used
    n_points: int
    n_boot: int
    samples: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def predict(self, x) -> np.ndarray:
        return self.l_inf + (self.x0 / np.asarray(x, float)) ** self.alpha

    def band(self, x, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap band of the fitted curve at x."""
        x = np.asarray(x, float)
        curves = self.samples["l_inf"][:, None] + (self.samples["x0"][:, None] / x[None]) ** self.samples["alpha"][:, None]
        return tuple(np.nanpercentile(curves, [50 * (1 - level), 50 * (1 + level)], axis=0))


def fit_power_law(x, y, groups=None, *, strata=None, n_boot: int = DEFAULT_BOOTSTRAP, delta: float = DEFAULT_DELTA,
                  level: float = 0.95, seed: int = 0, boot=None) -> PowerLawFit:
    """Fit y = L_inf + (x0 / x)^alpha (Henighan et al. 2020, eq. 1.1). `groups`: the run (seed) of each
    point, resampled whole by the bootstrap (default: each point on its own); `strata`: the model size of
    each point, resampled within; `boot`: caller-made resamples (y (B, n), weights (B, n)) instead. Needs 5
    points, 3 distinct x and 3 runs, else ValueError."""
    (x,), y, groups, ok = _check([x], y, groups, 5, 3, "a power law plus constant")
    boot = None if boot is None else tuple(np.asarray(a, float)[:, ok] for a in boot)
    strata = None if strata is None else np.asarray(strata)[ok]
    x_ref = float(np.exp(np.mean(np.log(x))))
    model = PowerLawPlusConstant()
    theta, samples, residuals = _fit(model, (x / x_ref)[:, None], y, groups, strata, n_boot=n_boot, delta=delta,
                                     seed=seed, level=level, boot=boot)

    def natural(t):
        t = np.atleast_2d(t)
        return {"l_inf": np.exp(t[:, 0]), "x0": x_ref * np.exp(t[:, 1] / t[:, 2]), "alpha": t[:, 2]}

    point, boot = natural(theta), natural(samples)
    intervals = {k: tuple(map(float, _interval(v, level))) for k, v in boot.items()} if n_boot else {}
    return PowerLawFit(float(point["l_inf"][0]), float(point["x0"][0]), float(point["alpha"][0]), intervals,
                       residuals, len(y), n_boot, boot)


@dataclass
class IntrinsicLawFit:
    """I^(-beta) = (n_c / N)^alpha_n + (e_c / E)^alpha_e (Hilton et al. 2023) with bootstrap intervals for the
    exponents, beta and the compute-optimal size exponent alpha_e / (alpha_n + alpha_e)."""

    n_c: float
    e_c: float
    alpha_n: float
    alpha_e: float
    intervals: dict[str, tuple[float, float]]
    residuals: np.ndarray
    n_points: int
    n_boot: int
    samples: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def beta(self) -> float:
        return JointLaw.beta(self.alpha_n, self.alpha_e)

    @property
    def optimal_size_exponent(self) -> float:
        """d log N_opt / d log C when compute is proportional to N E (Hilton et al. 2023)."""
        return self.alpha_e / (self.alpha_n + self.alpha_e)

    def predict(self, n, e) -> np.ndarray:
        n, e = np.asarray(n, float), np.asarray(e, float)
        return ((self.n_c / n) ** self.alpha_n + (self.e_c / e) ** self.alpha_e) ** (-1.0 / self.beta)

    def optimal_size(self, compute, flops_per_interaction) -> np.ndarray:
        """N_opt(C): the model size that maximizes I at training compute C, where an interaction of a model of
        N parameters costs `flops_per_interaction(N)` (e.g. the measured family interpolated; any callable
        on arrays). Solved numerically on a fine grid of N, so it also holds when cost is not proportional
        to N."""
        compute = np.atleast_1d(np.asarray(compute, float))
        sizes = np.geomspace(self.n_c * 1e-6, self.n_c * 1e6, 4001)
        e = compute[:, None] / np.asarray(flops_per_interaction(sizes), float)[None]
        return sizes[np.argmax(self.predict(sizes[None], e), axis=1)]


def fit_intrinsic_law(n, e, intrinsic, groups=None, *, strata=None, n_boot: int = DEFAULT_BOOTSTRAP,
                      delta: float = DEFAULT_DELTA, level: float = 0.95, seed: int = 0, boot=None) -> IntrinsicLawFit:
    """Fit Hilton et al.'s joint law to points (N parameters, E interactions, I intrinsic performance).
    `groups`, `strata`, `boot`: as `fit_power_law`. Needs 8 points with 3 distinct N and E and 3 runs, else
    ValueError."""
    (n, e), y, groups, ok = _check([n, e], intrinsic, groups, 8, 3, "the joint power law in N and E")
    strata = None if strata is None else np.asarray(strata)[ok]
    refs = [float(np.exp(np.mean(np.log(a)))) for a in (n, e, y)]
    model = JointLaw()
    X = np.stack([n / refs[0], e / refs[1]], 1)
    if boot is not None:
        boot = (np.asarray(boot[0], float)[:, ok] / refs[2], np.asarray(boot[1], float)[:, ok])
    theta, samples, residuals = _fit(model, X, y / refs[2], groups, strata, n_boot=n_boot, delta=delta, seed=seed,
                                     level=level, boot=boot)

    def natural(t):
        t = np.atleast_2d(t)
        an, ae = t[:, 2], t[:, 3]
        b = JointLaw.beta(an, ae)
        # (A / I_ref^-beta) (N / N_ref)^-alpha_n = (N_c / N)^alpha_n
        n_c = refs[0] * np.exp((t[:, 0] - b * np.log(refs[2])) / an)
        e_c = refs[1] * np.exp((t[:, 1] - b * np.log(refs[2])) / ae)
        return {"n_c": n_c, "e_c": e_c, "alpha_n": an, "alpha_e": ae, "beta": b, "optimal_size_exponent": ae / (an + ae)}

    point, boot = natural(theta), natural(samples)
    intervals = {k: tuple(map(float, _interval(v, level))) for k, v in boot.items()} if n_boot else {}
    return IntrinsicLawFit(float(point["n_c"][0]), float(point["e_c"][0]), float(point["alpha_n"][0]),
                           float(point["alpha_e"][0]), intervals, residuals, len(y), n_boot, boot)
