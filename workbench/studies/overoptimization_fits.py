"""The analysis of a reward-model overoptimization study (Gao, Schulman, Hilton 2022, arXiv 2210.10760):
both functional forms fitted per proxy with bootstrap intervals, the peak of each curve, the coefficients'
trends against proxy parameters and label counts, the KL-penalty comparison and the ensemble comparison.

Forms (section 3 of the paper; d = sqrt(KL(pi || pi_init)), gold shifted so that pi_init scores 0):
    best-of-n:  R_bon(d) = d (alpha - beta d)       peak d* = alpha / (2 beta),  R(d*) = alpha^2 / (4 beta)
    RL:         R_RL(d)  = d (alpha - beta log d)   peak d* = exp(alpha / beta - 1),  R(d*) = beta d*
The least-squares fit itself is :func:`workbench.preferences.best_of_n.fit_functional_form` (closed form, checked
against ``scipy.optimize.curve_fit`` in its tests). There is no peak when beta <= 0 (d* = inf, R(d*) = inf).

Intervals: ``scipy.stats.bootstrap`` (percentile method) over *resampling units*: for best-of-n the prompts
(each prompt's unbiased best-of-n estimates form one row of the curve, as public reproductions bootstrap over
prompts); for RL the logged (d, gold) points of the runs (case resampling; the paper reports no RL intervals,
and a few seeds are too few units). Peak and trend intervals are percentiles of the same bootstrap
replicates (``method="inverted_cdf"``: no interpolation, so an infinite d* in a replicate stays a bound).

Coefficient trends (the paper's figure 4 plots alpha, beta against proxy parameters on a log axis and finds
approximately logarithmic trends): slope of coefficient vs log10(parameters) (or log10(labels)) by
``scipy.stats.linregress`` on the point estimates, with a percentile interval from refitting the slope on every
bootstrap replicate. Every proxy's bootstrap draws the same unit indices (same seed, same unit count): the
proxies of a study are scored on the same best-of-n prompts, so replicate b resamples the same prompts for all
of them (a paired bootstrap; proxies that rank every response alike then give the same replicates).

KL penalty (section 3.6 of the paper: the penalty raises the proxy at a given KL but does not move the
gold-vs-KL frontier, "akin to early stopping"): the unpenalized run(s) of a proxy, their measured (d, gold)
and (d, proxy) points linearly interpolated in d, are the frontier; for each penalized run the gold and proxy
residuals against it at the same d (only d inside the unpenalized runs' range) are averaged, with bootstrap
intervals over its points. (Interpolating the measurements rather than the fitted RL form keeps a poor fit
near the peak from reading as a frontier shift.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from workbench.preferences.best_of_n import fit_functional_form, r_bon, r_rl

__all__ = ["CurveFit", "Trend", "bon_grid", "fit_curve", "kl_penalty_effect", "peak_of", "trend"]


def bon_grid(n_max: int) -> np.ndarray:
    """n = 1, 2, 4, ... up to n_max (n_max itself included): the best-of-n values a study reports."""
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    grid = [1 << k for k in range(int(math.log2(n_max)) + 1)]
    return np.array(sorted(set(grid + [int(n_max)])), dtype=np.int64)


def peak_of(form: str, alpha, beta) -> tuple[np.ndarray, np.ndarray]:
    """(d*, R(d*)) of the fitted form; inf where beta <= 0 (no peak). Works elementwise on arrays."""
    alpha, beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = np.where(beta > 0, beta, 1.0)
        if form == "bon":
            d_star, r_star = alpha / (2 * safe), alpha * alpha / (4 * safe)
        else:
            d_star = np.exp(np.minimum(alpha / safe - 1.0, 700.0))
            r_star = safe * d_star
    return np.where(beta > 0, d_star, np.inf), np.where(beta > 0, r_star, np.inf)


def _quantiles(x: np.ndarray, confidence: float) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(x, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
    return float(lo), float(hi)


@dataclass(frozen=True)
class CurveFit:
    """One fitted curve with 95% (``confidence``) bootstrap intervals."""

    form: str
    alpha: float
    beta: float
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    d_star: float                 # fitted peak (inf: no peak)
    gold_star: float              # fitted gold at the peak
    d_star_ci: tuple[float, float]
    gold_star_ci: tuple[float, float]
    d_range: tuple[float, float]  # the sampled d
    empirical_peak_d: float       # d of the largest measured (mean) gold
    empirical_peak_gold: float
    rmse: float
    n_units: int
    alpha_boot: np.ndarray        # the bootstrap replicates (for trends)
    beta_boot: np.ndarray
    band: dict                    # the fitted curve and its pointwise interval on a d grid (for plots)

    @property
    def peak_in_range(self) -> bool:
        return self.d_range[0] <= self.d_star <= self.d_range[1]

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("alpha_boot")
        out.pop("beta_boot")
        out["peak_in_range"] = self.peak_in_range
        return out


def fit_curve(form: str, d_units: Sequence[np.ndarray] | np.ndarray, r_units: Sequence[np.ndarray] | np.ndarray, *,
              n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> CurveFit:
    """Fit `form` ("bon" | "rl") to points grouped in resampling units and bootstrap over the units.

    `d_units[u]`, `r_units[u]`: the d and (shifted) gold values of unit u (a prompt's best-of-n curve on the n
    grid, or one RL point). The point fit uses all points; with equal d grids (best-of-n) that is the fit to
    the mean curve over units."""
    d_units = [np.atleast_1d(np.asarray(d, np.float64)) for d in d_units]
    r_units = [np.atleast_1d(np.asarray(r, np.float64)) for r in r_units]
    if len(d_units) != len(r_units) or any(d.shape != r.shape for d, r in zip(d_units, r_units)):
        raise ValueError("d_units and r_units must list the same units with one r per d")
    if len(d_units) < 2:
        raise ValueError(f"a bootstrap needs at least 2 resampling units (prompts or points); got {len(d_units)}")
    d_all, r_all = np.concatenate(d_units), np.concatenate(r_units)
    point = fit_functional_form(d_all, r_all, form)

    def statistic(index):
        idx = np.asarray(index, dtype=np.int64)
        d = np.concatenate([d_units[i] for i in idx])
        r = np.concatenate([r_units[i] for i in idx])
        try:
            f = fit_functional_form(d, r, form)
        except ValueError:  # a degenerate resample (e.g. every point at one d): no information
            return np.array([np.nan, np.nan])
        return np.array([f.alpha, f.beta])

    res = stats.bootstrap((np.arange(len(d_units)),), statistic, vectorized=False, n_resamples=n_resamples,
                          confidence_level=confidence, method="percentile", random_state=np.random.default_rng(seed))
    alpha_b, beta_b = res.bootstrap_distribution
    d_b, g_b = peak_of(form, alpha_b, beta_b)
    d_star, g_star = peak_of(form, point.alpha, point.beta)
    # The empirical peak of the measured curve: mean gold at each distinct d.
    uniq, inverse = np.unique(np.round(d_all, 9), return_inverse=True)
    mean_r = np.bincount(inverse, weights=r_all) / np.bincount(inverse)
    best = int(np.argmax(mean_r))
    grid = np.linspace(0.0, 1.25 * float(d_all.max()), 60)
    form_fn = r_bon if form == "bon" else r_rl
    ok = ~(np.isnan(alpha_b) | np.isnan(beta_b))
    replicates = np.stack([form_fn(grid, a, b) for a, b in zip(alpha_b[ok], beta_b[ok])]) if ok.any() else None
    band = {"d": grid.tolist(), "fit": form_fn(grid, point.alpha, point.beta).tolist(),
            "low": (np.quantile(replicates, (1 - confidence) / 2, axis=0) if replicates is not None
                    else np.full(grid.size, np.nan)).tolist(),
            "high": (np.quantile(replicates, (1 + confidence) / 2, axis=0) if replicates is not None
                     else np.full(grid.size, np.nan)).tolist()}
    return CurveFit(form=form, alpha=point.alpha, beta=point.beta, alpha_ci=_quantiles(alpha_b, confidence),
                    beta_ci=_quantiles(beta_b, confidence), d_star=float(d_star), gold_star=float(g_star),
                    d_star_ci=_quantiles(d_b, confidence), gold_star_ci=_quantiles(g_b, confidence),
                    d_range=(float(d_all.min()), float(d_all.max())), empirical_peak_d=float(uniq[best]),
                    empirical_peak_gold=float(mean_r[best]), rmse=point.rmse, n_units=len(d_units),
                    alpha_boot=np.asarray(alpha_b), beta_boot=np.asarray(beta_b), band=band)


@dataclass(frozen=True)
class Trend:
    """coefficient = intercept + slope * log10(x), with the slope's bootstrap and linregress intervals."""

    coefficient: str
    against: str
    slope: float
    intercept: float
    slope_ci: tuple[float, float]        # percentile interval over the bootstrap replicates
    slope_se: float                      # linregress standard error (NaN with 2 points)
    r_value: float
    x: list
    y: list

    def as_dict(self) -> dict:
        return asdict(self)


def trend(x: Sequence[float], fits: Sequence[CurveFit], coefficient: str, against: str, *,
          confidence: float = 0.95) -> Trend:
    """The trend of `coefficient` ("alpha" | "beta") of `fits` against log10(x) (x: parameters or labels)."""
    if coefficient not in ("alpha", "beta"):
        raise ValueError(f"coefficient must be 'alpha' or 'beta', got {coefficient!r}")
    x = np.asarray(x, np.float64)
    if len(x) != len(fits) or len(np.unique(x)) < 2:
        raise ValueError(f"a trend needs at least 2 distinct x values with one fit each; got x = {x.tolist()}")
    if np.any(x <= 0):
        raise ValueError("x must be positive (it is put on a log axis)")
    lx = np.log10(x)
    y = np.array([getattr(f, coefficient) for f in fits])
    fit = stats.linregress(lx, y)
    boot = np.stack([getattr(f, f"{coefficient}_boot") for f in fits])  # (fits, B)
    boot = boot[:, ~np.isnan(boot).any(axis=0)]
    lx_c = lx - lx.mean()
    slopes = (lx_c @ (boot - boot.mean(axis=0))) / (lx_c @ lx_c)  # least-squares slope of every replicate
    slope_se = float(fit.stderr) if len(x) > 2 else math.nan
    return Trend(coefficient=coefficient, against=against, slope=float(fit.slope), intercept=float(fit.intercept),
                 slope_ci=_quantiles(slopes, confidence), slope_se=slope_se,
                 r_value=float(fit.rvalue) if len(x) > 2 else math.nan, x=x.tolist(), y=y.tolist())


def _mean_ci(values: np.ndarray, n_resamples: int, confidence: float, seed: int) -> tuple[float, tuple[float, float]]:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return math.nan, (math.nan, math.nan)
    if values.size == 1 or np.all(values == values[0]):
        return float(values.mean()), (float(values.mean()), float(values.mean()))
    res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", random_state=np.random.default_rng(seed))
    ci = res.confidence_interval
    return float(values.mean()), (float(ci.low), float(ci.high))


def kl_penalty_effect(runs: Sequence[dict], *, n_resamples: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> list[dict]:
    """Compare RL runs of one proxy at several KL coefficients (see the module docstring).

    `runs`: dicts with ``kl_coef``, ``d``, ``gold`` (shifted), ``proxy`` (shifted) lists. Returns one row per
    penalized coefficient: the largest d reached, the final gold, and the mean gold and proxy residuals against
    the unpenalized runs' measured curve at matched d with intervals. A gold residual interval that covers 0 while the largest
    d shrinks is the paper's "the penalty acts like early stopping"."""
    free = [r for r in runs if float(r["kl_coef"]) == 0.0]
    if not free:
        raise ValueError("the KL-penalty comparison needs at least one run with kl_coef = 0 (the frontier)")
    d0 = np.concatenate([np.asarray(r["d"], np.float64) for r in free])
    order = np.argsort(d0, kind="stable")
    d0 = d0[order]
    gold0 = np.concatenate([np.asarray(r["gold"], np.float64) for r in free])[order]
    proxy0 = np.concatenate([np.asarray(r["proxy"], np.float64) for r in free])[order]

    def gold_fit(d):  # the unpenalized runs' measured curve, linearly interpolated in d
        return np.interp(d, d0, gold0)

    def proxy_fit(d):
        return np.interp(d, d0, proxy0)

    rows = []
    for coef in sorted({float(r["kl_coef"]) for r in runs}):
        group = [r for r in runs if float(r["kl_coef"]) == coef]
        d = np.concatenate([np.asarray(r["d"], np.float64) for r in group])
        gold = np.concatenate([np.asarray(r["gold"], np.float64) for r in group])
        proxy = np.concatenate([np.asarray(r["proxy"], np.float64) for r in group])
        inside = (d >= d0.min()) & (d <= d0.max())
        g_mean, g_ci = _mean_ci(gold[inside] - gold_fit(d[inside]), n_resamples, confidence, seed)
        p_mean, p_ci = _mean_ci(proxy[inside] - proxy_fit(d[inside]), n_resamples, confidence, seed)
        rows.append({"kl_coef": coef, "runs": len(group), "max_d": float(d.max()),
                     "final_gold": float(np.mean([r["gold"][-1] for r in group])),
                     "peak_gold": float(gold.max()), "points_in_frontier_range": int(inside.sum()),
                     "gold_residual": g_mean, "gold_residual_ci": g_ci,
                     "proxy_residual": p_mean, "proxy_residual_ci": p_ci})
    return rows
