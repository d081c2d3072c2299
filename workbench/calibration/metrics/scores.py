"""Scores without a reliability diagram: Brier (binary and multiclass) with the Murphy decomposition (Murphy 1973;
Stephenson et al. 2008), log loss, and CalibratedMath's MSE and MAD (Lin, Hilton, Evans 2022, arXiv 2205.14334)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.calibration.metrics.binned import (
    _bin_sums,
    assign_bins,
    average_calibration_error,
)
from workbench.calibration.metrics.validation import (
    _as_labels,
    _as_multiclass,
    _pair,
)

# ------------------------------------------------------------------------------------------------- Brier

def brier_score(probs, outcomes) -> float:
    """Binary Brier score: mean over predictions of (p - y)^2, p = P(y = 1). No binning. Range [0, 1]."""
    p, y = _pair(probs, outcomes)
    return float(np.mean((p - y) ** 2))


def multiclass_brier(probs, labels, *, atol: float = 1e-6) -> float:
    """Multi-class Brier score (Brier 1950): per-example SUM over classes of (p_k - [k == label])^2, averaged
    over examples. Range [0, 2]. Compare :func:`bigbench_brier`, which averages over (example, class) pairs."""
    p = _as_multiclass(probs, atol)
    lab = _as_labels(labels, p.shape[0], p.shape[1])
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), lab] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


@dataclass(frozen=True)
class BrierDecomposition:
    """Murphy (1973) decomposition of the binary Brier score on bins, with the two within-bin terms of
    Stephenson et al. (2008) that make it exact:

        brier = reliability - resolution + uncertainty + within_bin_variance - 2 * within_bin_covariance

    ``reliability`` = sum_k n_k/n (mean p_k - mean y_k)^2 (lower is better), ``resolution`` = sum_k n_k/n
    (mean y_k - mean y)^2 (higher is better), ``uncertainty`` = mean y (1 - mean y). The within-bin terms
    vanish when every prediction equals its bin's mean prediction (e.g. forecasts taking only a few values,
    each its own bin); ``binned_brier`` = reliability - resolution + uncertainty.
    """

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float
    n_bins: int
    strategy: str
    closed: str

    @property
    def binned_brier(self) -> float:
        return self.reliability - self.resolution + self.uncertainty


def murphy_decomposition(probs, outcomes, *, n_bins: int = 10, strategy: str = "uniform",
                         closed: str = "right") -> BrierDecomposition:
    """Murphy decomposition of the binary Brier score computed on bins (see :class:`BrierDecomposition`).

    Binning: ``n_bins`` (default 10) bins, ``strategy`` "uniform" (default) | "quantile" | "equal_count",
    ``closed`` "right" (default) | "left"; empty bins contribute nothing. The identity with the within-bin
    terms holds to rounding for any binning.
    """
    p, y = _pair(probs, outcomes)
    ids, _ = assign_bins(p, n_bins=n_bins, strategy=strategy, closed=closed)
    counts, sum_p, sum_y = _bin_sums(p, y, ids, n_bins)
    n = p.size
    nz = counts > 0
    safe = np.where(nz, counts, 1)
    pbar, ybar = sum_p / safe, sum_y / safe
    obar = y.mean()
    rel = float(np.sum(counts[nz] * (pbar[nz] - ybar[nz]) ** 2) / n)
    res = float(np.sum(counts[nz] * (ybar[nz] - obar) ** 2) / n)
    unc = float(obar * (1.0 - obar))
    dp = p - pbar[ids]
    wbv = float(np.sum(dp ** 2) / n)
    wbc = float(np.sum(dp * (y - ybar[ids])) / n)
    return BrierDecomposition(brier=float(np.mean((p - y) ** 2)), reliability=rel, resolution=res,
                              uncertainty=unc, within_bin_variance=wbv, within_bin_covariance=wbc,
                              n_bins=int(n_bins), strategy=strategy, closed=closed)


def log_loss(probs, labels, *, eps: float | None = None, atol: float = 1e-6) -> float:
    """Mean negative log-likelihood (natural log), as scikit-learn's ``log_loss``.

    1-D ``probs`` = P(label == 1) with 0/1 ``labels``; 2-D ``probs`` (n, K) rows summing to 1 with class-index
    ``labels``. Probabilities are clipped to [eps, 1 - eps] first, eps defaulting to float64 machine epsilon
    as scikit-learn >= 1.5 does, so a confident wrong 0 or 1 gives a large finite loss.
    """
    eps = float(np.finfo(np.float64).eps) if eps is None else float(eps)
    arr = np.asarray(probs)
    if arr.ndim == 1:
        p, y = _pair(arr, labels, "probs", "labels")
        p = np.clip(p, eps, 1.0 - eps)
        return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
    p = _as_multiclass(arr, atol)
    lab = _as_labels(labels, p.shape[0], p.shape[1])
    picked = np.clip(p[np.arange(p.shape[0]), lab], eps, 1.0 - eps)
    return float(-np.mean(np.log(picked)))


# ------------------------------------------------------------------------------------------ CalibratedMath

def calibratedmath_mse(confidences, correct, *, scale: float = 100.0) -> float:
    """CalibratedMath's MSE (Lin, Hilton, Evans 2022): mean((correct - confidence)^2) * ``scale``.

    ``confidences`` in [0, 1] (divide verbalized percentages by 100 first). The paper reports x100
    (``scale=100``, default); ``scale=1`` gives the plain Brier score. No binning.
    """
    p, y = _pair(confidences, correct, "confidences", "correct")
    return float(np.mean((y - p) ** 2) * scale)


def calibratedmath_mad(confidences, correct, *, n_bins: int = 20, strategy: str = "quantile",
                       closed: str = "left", scale: float = 100.0) -> float:
    """CalibratedMath's MAD: unweighted mean over bins of |fraction correct - mean confidence| * ``scale``.

    Binning as the paper's code: scikit-learn ``calibration_curve(correct, confidences, n_bins=20,
    strategy="quantile")`` - 20 bins at the predictions' percentiles, empty bins (from repeated edges, e.g.
    many identical verbalized confidences) dropped, every remaining bin weighted equally. ``closed="left"``
    (default) is the scikit-learn < 1.1 binning (``np.digitize`` on [lo, hi) bins) of the paper's time
    (Lin, Hilton, Evans 2022, arXiv 2205.14334), so its numbers are comparable with the paper's;
    ``closed="right"`` matches today's scikit-learn >= 1.1. The two differ only for predictions lying exactly
    on an edge, which is common with verbalized confidences (a prediction equal to a repeated quantile edge
    falls in the upper bin with "left", the lower with "right").
    """
    return average_calibration_error(confidences, correct, n_bins=n_bins, strategy=strategy, closed=closed) * scale
