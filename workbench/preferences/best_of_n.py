"""Best-of-n sampling against a proxy reward: the unbiased estimator, its KL, and the functional forms of
reward-model overoptimization.

The estimator (WebGPT, Nakano et al. 2021, arXiv 2112.09332, appendix "rejection sampling"). Draw N >= n
samples from the base policy for one prompt (here: one level seed), sort them by proxy score ascending
(i = 1..N). Best-of-n picks the proxy-best of n samples; over all C(N, n) equally likely n-subsets of the N,
the sample at rank i is the best exactly when it is in the subset and the other n - 1 come from the i - 1
below it, so

    E[gold of best-of-n] = sum_{i=n..N} C(i-1, n-1) / C(N, n) * gold_(i).

This is the average over *every* subset, computed in O(N) per n (no resampling noise, unbiased for the
best-of-n of the base policy). :func:`best_of_n_curve` applies it for every n = 1..N, per prompt, and reports
the mean over prompts with the standard error across prompts (std with ddof 1 / sqrt(#prompts)).

Ties in the proxy. Best-of-n with a tied maximum is defined here as picking uniformly at random among the
tied samples. ``ties="average"`` (default) is then *exactly* that expectation: averaging the sorted-order
estimator over all orderings of each block of tied proxy scores equals replacing the gold values of a tied
block by the block's mean (the estimator is linear in the gold values and every tie ordering is equally
likely). ``ties="random"`` breaks ties by a seeded random permutation instead: unbiased in expectation over
the seed, but noisier. Both are tested against brute-force enumeration of all subsets.

KL. For a continuous proxy score (no ties), the best-of-n distribution has density n F(x)^{n-1} relative to
the base, so KL(best-of-n || base) = log n - (n - 1) / n exactly (Stiennon et al. 2020, appendix; used by
Gao, Schulman, Hilton 2022, arXiv 2210.10760, section 2.2). With ties or a discrete base it is an upper
bound (Beirami et al. 2024); :func:`kl_best_of_n_discrete` gives the exact value for a discrete base.

Functional forms (Gao et al. 2022, section 3, with d = sqrt(KL) and scores shifted so the initial policy
scores 0):
    best-of-n:  R_bon(d) = d (alpha - beta d)       peak at d* = alpha / (2 beta)
    RL:         R_RL(d)  = d (alpha - beta log d)   peak at d* = exp(alpha / beta - 1)
Both are *linear* in (alpha, beta) (regressors d, -d^2 and d, -d log d), so the non-linear least-squares fit
public reproductions run with ``scipy.optimize.curve_fit`` has a unique closed-form solution: ordinary
(or weighted) linear least squares, computed here with numpy. The parameter covariance is curve_fit's
(``absolute_sigma=False``: scaled by the residual variance); the tests check both against scipy.

Everything is numpy only; bad input raises ``ValueError`` saying what was wrong and what is valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TIE_MODES = ("average", "random")
FORMS = ("bon", "rl")

__all__ = [
    "TIE_MODES", "FORMS", "best_of_n_weights", "best_of_n_estimates", "best_of_n_curve", "BestOfNCurve",
    "kl_best_of_n", "kl_best_of_n_discrete", "r_bon", "r_rl", "fit_functional_form", "FunctionalFit",
]


# ------------------------------------------------------------------------------------------- estimator

def _log_factorials(n: int) -> np.ndarray:
    """log k! for k = 0..n (a cumulative sum of logs: exact enough and needs no scipy)."""
    out = np.zeros(n + 1)
    if n:
        out[1:] = np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))
    return out


def best_of_n_weights(N: int) -> np.ndarray:
    """W[n-1, i-1] = C(i-1, n-1) / C(N, n) for n, i = 1..N (zero for i < n): the probability that the sample
    of ascending proxy rank i is the best of a uniformly random n-subset. Each row sums to 1."""
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N must be an integer >= 1 (the number of samples per prompt); got {N!r}")
    N = int(N)
    lf = _log_factorials(N)
    n = np.arange(1, N + 1)[:, None]
    i = np.arange(1, N + 1)[None, :]
    valid = i >= n
    safe_i = np.where(valid, i, n)  # keeps the log-gamma arguments >= 0 where the weight is 0
    log_w = (lf[safe_i - 1] - lf[n - 1] - lf[safe_i - n]) - (lf[N] - lf[n] - lf[N - n])
    return np.where(valid, np.exp(log_w), 0.0)


def _as_matrix(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers, shape (prompts, N) or (N,); {exc}") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] < 1 or arr.shape[0] < 1:
        raise ValueError(f"{name} must have shape (prompts, N) or (N,) with N >= 1; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; every sample needs a finite score")
    return arr


def _sorted_gold(proxy: np.ndarray, gold: np.ndarray, ties: str, rng: np.random.Generator) -> np.ndarray:
    """Gold values of one prompt in ascending proxy order, ties resolved as `ties` says."""
    if ties == "random":
        order = np.lexsort((rng.random(len(proxy)), proxy))  # proxy first, random key within ties
        return gold[order]
    order = np.argsort(proxy, kind="stable")
    p, g = proxy[order], gold[order].copy()
    # Replace each block of equal proxy scores by its mean gold (= the average over tie orderings).
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    for s, e in zip(starts, ends):
        if e - s > 1:
            g[s:e] = g[s:e].mean()
    return g


def best_of_n_estimates(proxy, gold=None, *, ties: str = "average", seed: int = 0) -> np.ndarray:
    """Per-prompt unbiased estimates E[gold of best-of-n] for n = 1..N: shape (prompts, N).

    `proxy`, `gold`: (prompts, N) or (N,) scores of the same N samples per prompt (gold defaults to proxy,
    which gives the proxy score of the selection). `ties`: "average" (exact expectation under uniformly random
    tie-breaking) or "random" (one seeded random tie-breaking)."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}; got {ties!r}")
    proxy = _as_matrix(proxy, "proxy")
    gold = proxy if gold is None else _as_matrix(gold, "gold")
    if gold.shape != proxy.shape:
        raise ValueError(f"proxy and gold must have the same shape (one gold score per sample); got "
                         f"{proxy.shape} and {gold.shape}")
    weights = best_of_n_weights(proxy.shape[1])
    rng = np.random.default_rng(seed)
    sorted_gold = np.stack([_sorted_gold(p, g, ties, rng) for p, g in zip(proxy, gold)])
    return sorted_gold @ weights.T


def kl_best_of_n(n) -> np.ndarray | float:
    """KL(best-of-n || base) = log n - (n - 1) / n nats, exact for a continuous proxy score (no ties)."""
    arr = np.asarray(n, dtype=np.float64)
    if np.any(~np.isfinite(arr)) or np.any(arr < 1):
        raise ValueError(f"n must be >= 1 (the number of samples best-of-n picks from); got {n!r}")
    out = np.log(arr) - (arr - 1.0) / arr
    return float(out) if out.ndim == 0 else out


def kl_best_of_n_discrete(probs, n: int) -> float:
    """Exact KL(best-of-n || base) for a discrete base distribution whose outcomes are listed in ascending
    proxy order with distinct scores (`probs` sums to 1): best-of-n puts mass F_k^n - F_{k-1}^n on outcome k,
    F the CDF. Approaches log n - (n-1)/n as the base becomes continuous (never exceeds it)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError("probs must be a non-empty 1-D array of non-negative probabilities summing to 1, "
                         "in ascending proxy order")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    cdf = np.minimum(np.cumsum(p), 1.0)
    q = cdf ** n - np.r_[0.0, cdf[:-1]] ** n
    keep = q > 0
    return float(np.sum(q[keep] * (np.log(q[keep]) - np.log(p[keep]))))


@dataclass(frozen=True)
class BestOfNCurve:
    """Best-of-n for n = 1..N, averaged over prompts (level seeds), with standard errors across prompts
    (NaN with a single prompt). `kl` is the analytic log n - (n-1)/n and `d` = sqrt(kl)."""

    n: np.ndarray
    kl: np.ndarray
    d: np.ndarray
    gold_mean: np.ndarray
    gold_se: np.ndarray
    proxy_mean: np.ndarray
    proxy_se: np.ndarray
    num_prompts: int

    def as_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    se = x.std(axis=0, ddof=1) / math.sqrt(len(x)) if len(x) > 1 else np.full(x.shape[1], np.nan)
    return mean, se


def best_of_n_curve(proxy, gold, *, ties: str = "average", seed: int = 0) -> BestOfNCurve:
    """The best-of-n curve of one policy. `proxy`/`gold`: (prompts, N) arrays, or a list with one 1-D array
    per prompt (different N allowed: the curve then stops at the smallest N)."""
    if isinstance(proxy, Sequence) and not isinstance(proxy, np.ndarray) and len(proxy) and \
            np.ndim(proxy[0]) == 1 and len({len(p) for p in proxy}) > 1:
        if not isinstance(gold, Sequence) or len(gold) != len(proxy):
            raise ValueError("with ragged per-prompt samples, gold must be a list of the same length as proxy")
        per_gold, per_proxy = [], []
        n_min = min(len(p) for p in proxy)
        for p, g in zip(proxy, gold):
            per_gold.append(best_of_n_estimates(p, g, ties=ties, seed=seed)[0, :n_min])
            per_proxy.append(best_of_n_estimates(p, p, ties=ties, seed=seed)[0, :n_min])
        gold_est, proxy_est = np.stack(per_gold), np.stack(per_proxy)
    else:
        gold_est = best_of_n_estimates(proxy, gold, ties=ties, seed=seed)
        proxy_est = best_of_n_estimates(proxy, proxy, ties=ties, seed=seed)
    n = np.arange(1, gold_est.shape[1] + 1)
    kl = kl_best_of_n(n)
    gm, gs = _mean_se(gold_est)
    pm, ps = _mean_se(proxy_est)
    return BestOfNCurve(n=n, kl=kl, d=np.sqrt(kl), gold_mean=gm, gold_se=gs, proxy_mean=pm, proxy_se=ps,
                        num_prompts=len(gold_est))


# ------------------------------------------------------------------------------------- functional forms

def r_bon(d, alpha: float, beta: float):
    """Gao et al. (2022) best-of-n form: d (alpha - beta d)."""
    d = np.asarray(d, dtype=np.float64)
    return d * (alpha - beta * d)


def _d_log_d(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)  # limit d log d -> 0 at d = 0


def r_rl(d, alpha: float, beta: float):
    """Gao et al. (2022) RL form: d (alpha - beta log d), continued by R(0) = 0."""
    d = np.asarray(d, dtype=np.float64)
    return alpha * d - beta * _d_log_d(d)


@dataclass(frozen=True)
class FunctionalFit:
    form: str            # "bon" | "rl"
    alpha: float
    beta: float
    cov: np.ndarray      # 2x2 covariance of (alpha, beta), as curve_fit's pcov (absolute_sigma=False)
    rmse: float          # root mean squared (unweighted) residual
    n_points: int

    @property
    def alpha_se(self) -> float:
        return float(math.sqrt(self.cov[0, 0]))

    @property
    def beta_se(self) -> float:
        return float(math.sqrt(self.cov[1, 1]))

    @property
    def peak_d(self) -> float:
        """The d where the fitted curve peaks (inf when beta <= 0: no peak)."""
        if self.beta <= 0:
            return math.inf
        return self.alpha / (2 * self.beta) if self.form == "bon" else math.exp(self.alpha / self.beta - 1.0)

    def __call__(self, d):
        return (r_bon if self.form == "bon" else r_rl)(d, self.alpha, self.beta)


def fit_functional_form(d, r, form: str, *, sigma=None) -> FunctionalFit:
    """Least-squares fit of R_bon (`form="bon"`) or R_RL (`form="rl"`) to points (d, r), d = sqrt(KL) >= 0 and
    r shifted so the initial policy scores 0. `sigma`: optional per-point standard errors (weights 1/sigma^2,
    as curve_fit's `sigma`). Closed form: both forms are linear in (alpha, beta)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS} ('bon': d(alpha - beta d), 'rl': d(alpha - beta log d)); "
                         f"got {form!r}")
    d = np.asarray(d, dtype=np.float64).ravel()
    r = np.asarray(r, dtype=np.float64).ravel()
    if d.shape != r.shape:
        raise ValueError(f"d and r must have the same length; got {d.size} and {r.size}")
    if d.size < 3:
        raise ValueError(f"at least 3 points are needed to fit 2 parameters with an error estimate; got {d.size}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(r))):
        raise ValueError("d and r must be finite numbers")
    if np.any(d < 0):
        raise ValueError("d = sqrt(KL) must be >= 0")
    design = np.stack([d, -d * d] if form == "bon" else [d, -_d_log_d(d)], axis=1)
    if sigma is None:
        w = np.ones_like(d)
    else:
        sigma = np.asarray(sigma, dtype=np.float64).ravel()
        if sigma.shape != d.shape or np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
            raise ValueError("sigma must be positive finite numbers, one per point")
        w = 1.0 / sigma
    a, b = design * w[:, None], r * w
    if np.linalg.matrix_rank(a) < 2:
        raise ValueError("the points do not determine both parameters (need at least two distinct d > 0, "
                         "and for 'rl' d values other than only 0 and 1)")
    params, *_ = np.linalg.lstsq(a, b, rcond=None)
    residual = b - a @ params
    dof = d.size - 2
    cov = np.linalg.inv(a.T @ a) * (residual @ residual / dof)
    rmse = float(np.sqrt(np.mean((r - design @ params) ** 2)))
    return FunctionalFit(form=form, alpha=float(params[0]), beta=float(params[1]), cov=cov, rmse=rmse,
                         n_points=int(d.size))


# ------------------------------------------------------------------------------------- sampling a policy
def sample_best_of_n(core, env_name: str, step_reward_fn, *, n: int, level_seeds=None, groups: int | None = None,
                     distribution_mode: str = "easy", seed: int = 0, max_steps: int | None = None,
                     ties: str = "average") -> tuple[BestOfNCurve, np.ndarray, np.ndarray]:
    """Best-of-n of a policy against a proxy reward, end to end: sample ``n`` whole episodes per level seed
    (``core``: a PolicyCore, or None for a uniformly random policy; episodes differ by the policy's sampling),
    score each with the proxy (the sum of ``step_reward_fn`` over its frames, as a clip's reward) and with the
    gold (the env's return), and return the curve for every n' <= n (WebGPT's unbiased estimator, not
    resampling) with the analytic KL, plus the (prompts, n) proxy and gold arrays.

    Envs without levels (the toy tasks): ``groups`` groups of ``n`` consecutive episodes play the prompts."""
    import torch

    from workbench.episodes.rollouts import record_episodes

    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    if (level_seeds is None) == (groups is None):
        raise ValueError("give either level_seeds (Procgen: n episodes per level) or groups (envs without levels)")
    if level_seeds is not None:
        seeds = [int(s) for s in level_seeds]
        recorded = record_episodes(core, env_name, level_seeds=[s for s in seeds for _ in range(n)], hires=False,
                                   distribution_mode=distribution_mode, seed=seed, max_steps=max_steps)
        prompts = len(seeds)
    else:
        recorded = record_episodes(core, env_name, episodes=groups * n, hires=False,
                                   distribution_mode=distribution_mode, seed=seed, max_steps=max_steps)
        prompts = groups
    with torch.no_grad():
        proxy = np.array([float(torch.as_tensor(step_reward_fn(torch.from_numpy(ep.frames))).double().sum())
                          for ep, _ in recorded])
    gold = np.array([ep.ret for ep, _ in recorded])
    proxy, gold = proxy.reshape(prompts, n), gold.reshape(prompts, n)
    return best_of_n_curve(proxy, gold, ties=ties, seed=seed), proxy, gold
