"""The compute-efficient frontier of a family of runs and intrinsic performance (Hilton, Tang, Schulman 2023,
arXiv 2301.13442, Sec. 3), with bootstrap resamples of the runs that the fits in `workbench.studies.fits`
consume.

A run's learning curve is its score (a return: higher is better; pass `higher_is_better=False` for a loss)
against its cumulative training compute (`compute_flops`, workbench.rl.compute). On a common log-spaced
compute grid:
- the curve of a model size is the mean over its seeds (runs) of their curves, interpolated linearly in
  log compute, defined where every seed is, then made monotone (the best score so far: compute already
  spent can always stop at its best checkpoint);
- the frontier is the best of the sizes' curves at each compute (Henighan et al. 2020, arXiv 2010.14701,
  "the lower envelope" of the loss curves), and which size attains it;
- the intrinsic performance of a score is the least compute at which the frontier reaches it, i.e. the
  least compute with which any size of the family reaches it, interpolated linearly in log compute. So on
  the frontier I = C exactly; scores below the frontier's first value or above its best are undefined (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.studies.fits import (
    DEFAULT_BOOTSTRAP,
    bootstrap_weights,
    fit_intrinsic_law,
    fit_power_law,
)


@dataclass
class RunCurve:
    """One run of a family: its model size (parameters), its seed, and its curve at each logged iteration."""

    size: float
    seed: int
    interactions: np.ndarray   # env steps E
    compute: np.ndarray        # cumulative training FLOPs C
    score: np.ndarray          # return (or a loss with higher_is_better=False)


@dataclass
class Frontier:
    compute: np.ndarray        # (G,) log-spaced grid
    score: np.ndarray          # (G,) best seed-averaged score of any size at that compute (NaN: none yet)
    size: np.ndarray           # (G,) the size attaining it
    sizes: np.ndarray          # (S,) the family's sizes
    size_curves: np.ndarray    # (S, G) seed-averaged monotone curves (NaN outside a size's range)


def _grid_values(runs: list[RunCurve], grid: np.ndarray, sign: float) -> np.ndarray:
    """(R, G) each run's sign * score interpolated in log compute on the grid; NaN outside its range."""
    out = np.full((len(runs), len(grid)), np.nan)
    lg = np.log(grid)
    for i, run in enumerate(runs):
        c, s = np.asarray(run.compute, float), sign * np.asarray(run.score, float)
        ok = np.isfinite(c) & (c > 0) & np.isfinite(s)
        if ok.sum() < 2:
            continue
        lc = np.log(c[ok])
        inside = (lg >= lc[0]) & (lg <= lc[-1])
        out[i, inside] = np.interp(lg[inside], lc, s[ok])
    return out


def _frontiers(values, size_index, n_sizes, weights):
    """Seed-averaged monotone size curves and their envelope for each row of run weights (B, R):
    returns (B, S, G) curves, (B, G) frontier (sign * score), (B, G) argmax size index."""
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0)
    curves = np.full((weights.shape[0], n_sizes, values.shape[1]), np.nan)
    for s in range(n_sizes):
        members = size_index == s
        w = weights[:, members]                                    # (B, r)
        total = w.sum(1, keepdims=True)
        covered = (w @ finite[members]) == total                   # every drawn seed has a value there
        mean = (w @ v[members]) / np.maximum(total, 1e-300)
        curves[:, s] = np.where(covered & (total > 0), mean, np.nan)
    curves = np.fmax.accumulate(curves, axis=2)                    # best so far (NaN-skipping)
    best = np.nanmax(np.where(np.isnan(curves), -np.inf, curves), axis=1)
    arg = np.argmax(np.where(np.isnan(curves), -np.inf, curves), axis=1)
    best = np.where(np.isfinite(best), best, np.nan)
    return curves, best, arg


def _invert(frontier_values, grid, scores):
    """Least compute at which a monotone frontier (NaN before it starts) reaches each score (NaN if never,
    or if reached before the frontier's first point)."""
    ok = np.isfinite(frontier_values)
    if ok.sum() < 2:
        return np.full(np.shape(scores), np.nan)
    f, lg = frontier_values[ok], np.log(grid[ok])
    scores = np.asarray(scores, float)
    # first index where the frontier reaches the score, interpolated between it and the point before
    idx = np.searchsorted(f, scores, side="left")
    out = np.full(scores.shape, np.nan)
    valid = (idx > 0) & (idx < len(f)) & np.isfinite(scores)
    i = idx[valid]
    lo, hi = f[i - 1], f[i]
    frac = np.where(hi > lo, (scores[valid] - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    out[valid] = np.exp(lg[i - 1] + frac * (lg[i] - lg[i - 1]))
    exact_first = np.isfinite(scores) & (scores == f[0])
    out[exact_first] = grid[ok][0]
    return out


def compute_frontier(runs: list[RunCurve], *, grid_points: int = 96, higher_is_better: bool = True) -> Frontier:
    """The frontier of a family (module docstring). Needs runs of at least 2 sizes."""
    sizes, size_index = np.unique([r.size for r in runs], return_inverse=True)
    if len(sizes) < 2:
        raise ValueError(f"a frontier needs runs of at least 2 model sizes; got sizes {sizes.tolist()}")
    grid = _compute_grid(runs, grid_points)
    sign = 1.0 if higher_is_better else -1.0
    curves, best, arg = _frontiers(_grid_values(runs, grid, sign), size_index, len(sizes), np.ones((1, len(runs))))
    return Frontier(grid, sign * best[0], np.where(np.isfinite(best[0]), sizes[arg[0]], np.nan), sizes,
                    sign * curves[0])


def _compute_grid(runs, grid_points):
    all_c = np.concatenate([np.asarray(r.compute, float) for r in runs])
    all_c = all_c[np.isfinite(all_c) & (all_c > 0)]
    if all_c.size < 2:
        raise ValueError("the runs have no positive compute values (was compute_flops logged?)")
    return np.geomspace(all_c.min(), all_c.max(), grid_points)


def intrinsic_performance(scores, frontier: Frontier, *, higher_is_better: bool = True) -> np.ndarray:
    """Hilton et al.'s intrinsic performance of each score: the least compute at which the family's frontier
    reaches it (NaN where it never does or where it was passed before the first measured compute)."""
    sign = 1.0 if higher_is_better else -1.0
    return _invert(sign * frontier.score, frontier.compute, sign * np.asarray(scores, float))


@dataclass
class StudyPoints:
    """The points of a family that the joint law is fitted to, one row per (run, kept iteration)."""

    size: np.ndarray
    interactions: np.ndarray
    compute: np.ndarray
    score: np.ndarray
    intrinsic: np.ndarray
    run: np.ndarray


def family_points(runs: list[RunCurve], frontier: Frontier, *, skip_fraction: float = 1 / 64,
                  higher_is_better: bool = True, min_gain: float = 0.0) -> StudyPoints:
    """Every run's iterations after the first `skip_fraction` of its training (Hilton et al. drop the
    early part of training), with their intrinsic performance. Scores less than `min_gain` x (the frontier's
    range) past the frontier's first value get none (NaN): on the flat start of a curve that has not begun
    to learn (random play), the least compute that reaches a score says nothing about the model."""
    rows = []
    for k, run in enumerate(runs):
        e = np.asarray(run.interactions, float)
        keep = e > skip_fraction * e.max()
        rows.append((np.full(keep.sum(), run.size), e[keep], np.asarray(run.compute, float)[keep],
                     np.asarray(run.score, float)[keep], np.full(keep.sum(), k)))
    size, e, c, s, run_index = (np.concatenate(col) for col in zip(*rows))
    intrinsic = intrinsic_performance(s, frontier, higher_is_better=higher_is_better)
    if min_gain > 0:
        sign = 1.0 if higher_is_better else -1.0
        f = sign * frontier.score[np.isfinite(frontier.score)]
        intrinsic[sign * s < f[0] + min_gain * (f.max() - f[0])] = np.nan
    return StudyPoints(size, e, c, s, intrinsic, run_index)


def bootstrap_family(runs: list[RunCurve], points: StudyPoints, frontier: Frontier, *, n_boot: int = DEFAULT_BOOTSTRAP,
                     seed: int = 0, higher_is_better: bool = True):
    """Resamples of the runs (seeds drawn with replacement within each size): per resample the frontier is
    recomputed from the drawn runs, so its uncertainty reaches the fits. Returns the point weights (B, n),
    each point's intrinsic performance (B, n) and the frontier scores (B, G)."""
    sizes, size_index = np.unique([r.size for r in runs], return_inverse=True)
    sign = 1.0 if higher_is_better else -1.0
    run_weights = bootstrap_weights(np.arange(len(runs)), size_index, n_boot, seed)      # (B, R)
    _, best, _ = _frontiers(_grid_values(runs, frontier.compute, sign), size_index, len(sizes), run_weights)
    intrinsic = np.stack([_invert(best[b], frontier.compute, sign * points.score) for b in range(n_boot)])
    return run_weights[:, points.run], intrinsic, sign * best


def fit_family(runs: list[RunCurve], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0, higher_is_better: bool = True,
               skip_fraction: float = 1 / 64, grid_points: int = 96, min_gain: float = 0.0):
    """Frontier, points with intrinsic performance, and Hilton et al.'s joint law fitted to them with
    frontier-propagating bootstrap intervals (`min_gain`: see `family_points`). Returns (frontier, points,
    IntrinsicLawFit)."""
    frontier = compute_frontier(runs, grid_points=grid_points, higher_is_better=higher_is_better)
    points = family_points(runs, frontier, skip_fraction=skip_fraction, higher_is_better=higher_is_better,
                           min_gain=min_gain)
    weights, intrinsic, _ = bootstrap_family(runs, points, frontier, n_boot=n_boot, seed=seed,
                                             higher_is_better=higher_is_better)
    intrinsic[:, ~np.isfinite(points.intrinsic)] = np.nan       # the same points in every resample
    law = fit_intrinsic_law(points.size, points.interactions, points.intrinsic, points.run, strata=points.size,
                            n_boot=n_boot, seed=seed, boot=(intrinsic, weights))
    return frontier, points, law


def fit_frontier_power_law(runs: list[RunCurve], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                           grid_points: int = 32):
    """Henighan et al.'s L(C) = L_inf + (C0 / C)^alpha fitted to the frontier of a family of losses (lower is
    better), the frontier recomputed for every resample of the runs. Returns (frontier, PowerLawFit)."""
    frontier = compute_frontier(runs, grid_points=grid_points, higher_is_better=False)
    sizes, size_index = np.unique([r.size for r in runs], return_inverse=True)
    run_weights = bootstrap_weights(np.arange(len(runs)), size_index, n_boot, seed)
    _, best, _ = _frontiers(_grid_values(runs, frontier.compute, -1.0), size_index, len(sizes), run_weights)
    losses = -best                                                                       # (B, G)
    weights = np.isfinite(losses).astype(float)
    fit = fit_power_law(frontier.compute, frontier.score, n_boot=n_boot, seed=seed, boot=(losses, weights))
    return frontier, fit
