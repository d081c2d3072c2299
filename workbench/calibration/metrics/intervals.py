"""The Clopper-Pearson (1934) exact binomial interval, with the incomplete beta function and its inverse in numpy."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

# --------------------------------------------------------------------------- Clopper-Pearson (numpy only)

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
_std_normal = NormalDist()
_TINY = 1e-300


def _betacf(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < _TINY, _TINY, d)
    d = 1.0 / d
    h = d.copy()
    done = np.zeros(x.shape, dtype=bool)
    max_iter = int(200 + 20 * math.sqrt(float(np.max(np.maximum(a, b)))))
    for m in range(1, max_iter + 1):
        m2 = 2.0 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < _TINY, _TINY, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < _TINY, _TINY, c)
        d = 1.0 / d
        h = np.where(done, h, h * d * c)
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < _TINY, _TINY, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < _TINY, _TINY, c)
        d = 1.0 / d
        delta = d * c
        h = np.where(done, h, h * delta)
        done |= np.abs(delta - 1.0) < 1e-15
        if done.all():
            break
    return h


def _betainc(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1] (vectorized)."""
    a, b, x = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(x, float))
    out = np.where(x <= 0.0, 0.0, 1.0)
    inner = (x > 0.0) & (x < 1.0)
    if inner.any():
        ai, bi, xi = a[inner], b[inner], x[inner]
        flip = xi > (ai + 1.0) / (ai + bi + 2.0)
        A, B, X = np.where(flip, bi, ai), np.where(flip, ai, bi), np.where(flip, 1.0 - xi, xi)
        log_front = (_lgamma(A + B) - _lgamma(A) - _lgamma(B) + A * np.log(X) + B * np.log1p(-X))
        val = np.exp(log_front) * _betacf(A, B, X) / A
        out[inner] = np.where(flip, 1.0 - val, val)
    return out


def _beta_ppf(q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inverse of I_x(a, b) in x: safeguarded Newton (bisection fallback inside a shrinking bracket)."""
    q, a, b = np.broadcast_arrays(np.asarray(q, float), np.asarray(a, float), np.asarray(b, float))
    q, a, b = q.astype(float).ravel(), a.astype(float).ravel(), b.astype(float).ravel()
    lo, hi = np.zeros_like(q), np.ones_like(q)
    # start from the normal approximation to the beta distribution
    z = np.array([_std_normal.inv_cdf(float(v)) if 0.0 < v < 1.0 else 0.0 for v in q])
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    x = np.clip(mean + z * sd, 1e-12, 1 - 1e-12)
    log_norm = _lgamma(a + b) - _lgamma(a) - _lgamma(b)
    for _ in range(200):
        f = _betainc(a, b, x) - q
        lo = np.where(f < 0, x, lo)
        hi = np.where(f >= 0, x, hi)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            pdf = np.exp(log_norm + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x))
            step = f / pdf
            newton = x - step
        ok = np.isfinite(newton) & (newton > lo) & (newton < hi)
        x_new = np.where(ok, newton, 0.5 * (lo + hi))
        converged = (ok & (np.abs(x_new - x) <= 1e-13 * x_new)) | (hi - lo <= 4e-16 * hi)
        x = x_new
        if converged.all():
            break
    return x


def clopper_pearson(successes, trials, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson 1934) two-sided 1 - ``alpha`` interval for a binomial proportion.

    lower = Beta.ppf(alpha/2, k, n - k + 1) (0 when k = 0); upper = Beta.ppf(1 - alpha/2, k + 1, n - k)
    (1 when k = n). Works elementwise on arrays; NaN where n = 0. Computed with numpy alone (continued-fraction
    incomplete beta, safeguarded Newton inverse); agrees with ``scipy.stats.beta.ppf`` to ~1e-12.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    k, n = np.broadcast_arrays(k, n)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    if (k < 0).any() or (k > n).any() or (k != np.round(k)).any() or (n != np.round(n)).any():
        raise ValueError("successes and trials must be whole numbers with 0 <= successes <= trials")
    lower = np.full(k.shape, np.nan)
    upper = np.full(k.shape, np.nan)
    has = n > 0
    lower[has & (k == 0)] = 0.0
    upper[has & (k == n)] = 1.0
    m = has & (k > 0)
    if m.any():
        lower[m] = _beta_ppf(np.full(m.sum(), alpha / 2), k[m], n[m] - k[m] + 1)
    m = has & (k < n)
    if m.any():
        upper[m] = _beta_ppf(np.full(m.sum(), 1 - alpha / 2), k[m] + 1, n[m] - k[m])
    return lower, upper
