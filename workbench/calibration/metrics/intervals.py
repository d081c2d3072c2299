"""The Clopper-Pearson (1934) exact binomial interval, from the beta distribution's quantiles (scipy)."""

from __future__ import annotations

import numpy as np
from scipy.stats import beta


def clopper_pearson(successes, trials, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson 1934) two-sided 1 - ``alpha`` interval for a binomial proportion.

    lower = Beta.ppf(alpha/2, k, n - k + 1) (0 when k = 0); upper = Beta.ppf(1 - alpha/2, k + 1, n - k)
    (1 when k = n), with ``scipy.stats.beta.ppf``. Works elementwise on arrays; NaN where n = 0.
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
        lower[m] = beta.ppf(alpha / 2, k[m], n[m] - k[m] + 1)
    m = has & (k < n)
    if m.any():
        upper[m] = beta.ppf(1 - alpha / 2, k[m] + 1, n[m] - k[m])
    return lower, upper
