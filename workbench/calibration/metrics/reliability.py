"""Per-bin statistics for a reliability diagram (Clopper-Pearson and bootstrap intervals) and the one-row
summary of every binary calibration metric."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.calibration.metrics.binned import (
    _bin_sums,
    adaptive_ece,
    assign_bins,
    ece,
    mce,
)
from workbench.calibration.metrics.intervals import clopper_pearson
from workbench.calibration.metrics.scores import (
    log_loss,
    murphy_decomposition,
)
from workbench.calibration.metrics.validation import (
    _pair,
)

# ------------------------------------------------------------------------------------------ reliability

@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics for a reliability diagram (every bin, empty ones included with count 0 and NaN).

    ``lower``/``upper``: bin edges; ``count``; ``mean_confidence``; ``accuracy`` (fraction of outcomes = 1);
    ``cp_low``/``cp_high``: Clopper-Pearson exact interval on the accuracy; ``boot_low``/``boot_high``:
    seeded within-bin percentile bootstrap (NaN when not requested). Intervals are 1 - ``alpha``.
    """

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    cp_low: np.ndarray
    cp_high: np.ndarray
    boot_low: np.ndarray
    boot_high: np.ndarray
    n_bins: int
    strategy: str
    closed: str
    alpha: float
    n_bootstrap: int
    seed: int | None
    meta: dict = field(default_factory=dict)

    @property
    def nonempty(self) -> np.ndarray:
        return self.count > 0

    @property
    def ece(self) -> float:
        nz = self.nonempty
        w = self.count[nz] / self.count.sum()
        return float(np.sum(w * np.abs(self.accuracy[nz] - self.mean_confidence[nz])))

    def rows(self) -> list[dict]:
        """One plain dict per bin (JSON-friendly; NaN for empty bins)."""
        keys = ("lower", "upper", "count", "mean_confidence", "accuracy", "cp_low", "cp_high",
                "boot_low", "boot_high")
        return [{k: (int(getattr(self, k)[i]) if k == "count" else float(getattr(self, k)[i])) for k in keys}
                for i in range(self.n_bins)]


def reliability_bins(probs, outcomes, *, n_bins: int = 10, strategy: str = "uniform", closed: str = "right",
                     alpha: float = 0.05, n_bootstrap: int = 1000, seed: int | None = 0) -> ReliabilityBins:
    """Reliability-diagram table: per-bin count, mean confidence, accuracy and 1 - ``alpha`` intervals.

    Binning: ``n_bins`` (default 10) bins, ``strategy`` "uniform" (default) | "quantile" | "equal_count",
    ``closed`` "right" (default) | "left" (module docstring). Every bin is returned; empty bins have
    ``count == 0`` and NaN statistics.

    Intervals on each bin's accuracy: Clopper-Pearson (exact binomial; preferred) and a percentile bootstrap
    that resamples the bin's own outcomes with replacement ``n_bootstrap`` times (drawn as Binomial(n_bin,
    accuracy) counts, which is the same distribution) using ``np.random.default_rng(seed)``. The bootstrap
    keeps bin membership fixed and collapses to zero width on bins that are all 0 or all 1 - the reason to
    prefer Clopper-Pearson. ``n_bootstrap=0`` skips it (NaN columns).
    """
    p, y = _pair(probs, outcomes)
    ids, edges = assign_bins(p, n_bins=n_bins, strategy=strategy, closed=closed)
    counts, sum_p, sum_y = _bin_sums(p, y, ids, n_bins)
    nz = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(nz, sum_p / np.where(nz, counts, 1), np.nan)
        acc = np.where(nz, sum_y / np.where(nz, counts, 1), np.nan)
    successes = np.rint(sum_y).astype(np.int64)
    cp_low, cp_high = clopper_pearson(successes, counts, alpha=alpha)
    boot_low = np.full(n_bins, np.nan)
    boot_high = np.full(n_bins, np.nan)
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0; got {n_bootstrap}")
    if n_bootstrap > 0 and nz.any():
        rng = np.random.default_rng(seed)
        draws = rng.binomial(counts[nz], acc[nz], size=(n_bootstrap, int(nz.sum()))) / counts[nz]
        boot_low[nz] = np.percentile(draws, 100 * alpha / 2, axis=0)
        boot_high[nz] = np.percentile(draws, 100 * (1 - alpha / 2), axis=0)
    if strategy == "equal_count":  # edges of an equal-count bin: its own smallest and largest prediction
        lower = edges[:-1].copy()
        largest = np.full(n_bins, -np.inf)
        np.maximum.at(largest, ids, p)
        upper = np.where(nz, largest, np.nan)
    else:
        lower, upper = edges[:-1].copy(), edges[1:].copy()
    return ReliabilityBins(lower=lower, upper=upper, count=counts, mean_confidence=conf, accuracy=acc,
                           cp_low=cp_low, cp_high=cp_high, boot_low=boot_low, boot_high=boot_high,
                           n_bins=int(n_bins), strategy=strategy, closed=closed, alpha=float(alpha),
                           n_bootstrap=int(n_bootstrap), seed=seed)


# ------------------------------------------------------------------------------------------------ summary

#: The keys of :func:`calibration_summary`, in table order.
SUMMARY_METRICS = ("n", "accuracy", "mean_confidence", "ece", "adaptive_ece", "mce", "brier", "log_loss",
                   "reliability", "resolution", "uncertainty")


def calibration_summary(probs, outcomes, *, n_bins: int = 15, strategy: str = "uniform",
                        closed: str = "right") -> dict[str, float]:
    """Every binary calibration metric of one set of predictions, with fixed conventions (a table row).

    * ``n``, ``accuracy`` (fraction of outcomes = 1), ``mean_confidence``;
    * ``ece`` and ``mce``: ``n_bins`` EQUAL-WIDTH bins (their usual definition, Guo et al. 2017), whatever
      ``strategy`` is; ``adaptive_ece``: ``n_bins`` equal-count bins (Nixon et al. 2019);
    * ``brier`` (mean (p - y)^2) and ``log_loss`` (natural log, eps clipping as :func:`log_loss`): no bins;
    * ``reliability``, ``resolution``, ``uncertainty``: the Murphy decomposition on ``n_bins`` bins of the
      given ``strategy`` (the reliability diagram's bins), ``closed`` as everywhere.

    Empty bins contribute nothing (skipped by MCE).
    """
    p, y = _pair(probs, outcomes)
    d = murphy_decomposition(p, y, n_bins=n_bins, strategy=strategy, closed=closed)
    return {"n": int(p.size), "accuracy": float(y.mean()), "mean_confidence": float(p.mean()),
            "ece": ece(p, y, n_bins=n_bins, strategy="uniform", closed=closed),
            "adaptive_ece": adaptive_ece(p, y, n_bins=n_bins, strategy="equal_count", closed=closed),
            "mce": mce(p, y, n_bins=n_bins, strategy="uniform", closed=closed),
            "brier": d.brier, "log_loss": log_loss(p, y),
            "reliability": d.reliability, "resolution": d.resolution, "uncertainty": d.uncertainty}
