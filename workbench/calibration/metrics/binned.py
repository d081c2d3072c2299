"""Binning (uniform, quantile, equal-count; right- or left-closed) and the binned calibration errors: ECE (Naeini
et al. 2015; Guo et al. 2017, arXiv 1706.04599), adaptive ECE (Nixon et al. 2019, arXiv 1904.01685), MCE, ACE and
the top-label multiclass ECE."""

from __future__ import annotations

import numpy as np

from workbench.calibration.metrics.validation import (
    _as_labels,
    _as_multiclass,
    _as_probs,
    _check_binning,
    _pair,
)

# ------------------------------------------------------------------------------------------------- binning

def assign_bins(probs, *, n_bins: int = 15, strategy: str = "uniform", closed: str = "right"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Bin index (0..n_bins-1) of every prediction, and the bin edges.

    ``strategy`` / ``closed`` as in the module docstring. Returns ``(bin_ids, edges)``; ``edges`` has
    ``n_bins + 1`` entries. For ``"equal_count"`` the edges are the smallest prediction of each bin and the
    largest prediction overall (NaN for bins left empty when there are fewer predictions than bins).
    """
    p = _as_probs(probs)
    n_bins = _check_binning(n_bins, strategy, closed)
    if strategy == "equal_count":
        order = np.argsort(p, kind="stable")
        sizes = np.full(n_bins, p.size // n_bins)
        sizes[: p.size % n_bins] += 1
        ids = np.empty(p.size, dtype=np.int64)
        ids[order] = np.repeat(np.arange(n_bins), sizes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        sorted_p = p[order]
        edges = np.full(n_bins + 1, np.nan)
        edges[:n_bins][sizes > 0] = sorted_p[starts[sizes > 0]]
        edges[n_bins] = sorted_p[-1]
        return ids, edges
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:  # quantile: the same expression as scikit-learn, so the edges agree bit for bit
        edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    side = "left" if closed == "right" else "right"
    ids = np.searchsorted(edges[1:-1], p, side=side)
    return ids.astype(np.int64), edges


def _bin_sums(p: np.ndarray, y: np.ndarray, ids: np.ndarray, n_bins: int):
    counts = np.bincount(ids, minlength=n_bins)
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)
    sum_y = np.bincount(ids, weights=y, minlength=n_bins)
    return counts, sum_p, sum_y


def _binned(p, y, n_bins, strategy, closed):
    ids, edges = assign_bins(p, n_bins=n_bins, strategy=strategy, closed=closed)
    return _bin_sums(p, y, ids, n_bins) + (edges,)


# --------------------------------------------------------------------------------------------------- ECE

def ece(probs, outcomes, *, n_bins: int = 15, strategy: str = "uniform", closed: str = "right") -> float:
    """Expected calibration error of binary-outcome predictions.

    ECE = sum over bins of (n_bin / n) * |mean(outcome) - mean(prob)| (Naeini et al. 2015; Guo et al. 2017).
    ``probs[i]`` is the predicted probability that ``outcomes[i] == 1`` (for a classifier's confidence in its
    own answer, ``outcomes`` is "the answer was correct"). Binning: ``n_bins`` bins (default 15),
    ``strategy`` "uniform" (equal width, default) | "quantile" (scikit-learn percentile edges) |
    "equal_count"; ``closed`` "right" (default) | "left". Empty bins contribute nothing.
    """
    p, y = _pair(probs, outcomes)
    _counts, sum_p, sum_y, _ = _binned(p, y, n_bins, strategy, closed)
    return float(np.abs(sum_y - sum_p).sum() / p.size)


def adaptive_ece(probs, outcomes, *, n_bins: int = 15, strategy: str = "equal_count",
                 closed: str = "right") -> float:
    """Adaptive (equal-mass) ECE: :func:`ece` on bins holding (nearly) the same number of predictions.

    Default ``strategy="equal_count"``: sorted predictions split into ``n_bins`` runs of sizes differing by at
    most one, ties possibly straddling bins (Nixon et al. 2019, arXiv 1904.01685, "adaptive calibration
    error" binning). ``strategy="quantile"`` uses scikit-learn's percentile edges instead, which never split
    ties but may leave bins empty (dropped). Weighted by bin counts like ECE; empty bins contribute nothing.
    """
    if strategy == "uniform":
        raise ValueError("adaptive_ece needs an equal-mass strategy: 'equal_count' or 'quantile' "
                         "(use ece() for equal-width bins)")
    return ece(probs, outcomes, n_bins=n_bins, strategy=strategy, closed=closed)


def mce(probs, outcomes, *, n_bins: int = 15, strategy: str = "uniform", closed: str = "right") -> float:
    """Maximum calibration error: the largest |mean(outcome) - mean(prob)| over NON-EMPTY bins.

    Binning as :func:`ece` (default 15 equal-width bins, right-closed). Empty bins are skipped.
    """
    p, y = _pair(probs, outcomes)
    counts, sum_p, sum_y, _ = _binned(p, y, n_bins, strategy, closed)
    nz = counts > 0
    return float(np.max(np.abs(sum_y[nz] - sum_p[nz]) / counts[nz]))


def average_calibration_error(probs, outcomes, *, n_bins: int = 15, strategy: str = "uniform",
                              closed: str = "right") -> float:
    """Unweighted mean over NON-EMPTY bins of |mean(outcome) - mean(prob)| ("ACE" as netcal names it).

    Every non-empty bin counts once whatever its size; empty bins are dropped (as scikit-learn's
    ``calibration_curve`` drops them). With ``n_bins=20, strategy="quantile"`` this is CalibratedMath's MAD
    (see :func:`calibratedmath_mad`).
    """
    p, y = _pair(probs, outcomes)
    counts, sum_p, sum_y, _ = _binned(p, y, n_bins, strategy, closed)
    nz = counts > 0
    prob_true = sum_y[nz] / counts[nz]
    prob_pred = sum_p[nz] / counts[nz]
    return float(np.abs(prob_true - prob_pred).mean())


def _top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.argmax(probs, axis=1)  # ties: the first maximal class
    return probs[np.arange(probs.shape[0]), pred], (pred == labels).astype(np.float64)


def multiclass_ece(probs, labels, *, n_bins: int = 15, strategy: str = "uniform", closed: str = "right",
                   atol: float = 1e-6) -> float:
    """Top-label ECE of a multi-class predictor (Guo et al. 2017).

    ``probs`` (n, K), rows summing to 1 within ``atol``; ``labels`` (n,) class indices. Confidence = the
    maximum probability; correct = ``argmax(probs) == label`` (ties: the first maximal class). Binning as
    :func:`ece` (default 15 equal-width right-closed bins; empty bins contribute nothing).
    """
    p = _as_multiclass(probs, atol)
    lab = _as_labels(labels, p.shape[0], p.shape[1])
    conf, correct = _top_label(p, lab)
    return ece(conf, correct, n_bins=n_bins, strategy=strategy, closed=closed)
