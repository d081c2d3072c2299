"""Calibration metrics with explicit conventions (numpy only, vectorized).

Every function names its binning in its signature and docstring, because published numbers differ mostly in
these choices:

* ``strategy`` - how bin edges are chosen:
    - ``"uniform"``: ``n_bins`` equal-width bins over [0, 1] (edges ``np.linspace(0, 1, n_bins + 1)``).
    - ``"quantile"``: edges at the ``np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)`` of the
      predictions, exactly as scikit-learn's ``calibration_curve(strategy="quantile")``. Repeated edges
      (many equal predictions) make empty bins, which are dropped - in effect the duplicate edges merge.
    - ``"equal_count"``: sort the predictions (stable sort, ties keep input order) and split them into
      ``n_bins`` runs whose sizes differ by at most one (``np.array_split``); tied predictions may straddle
      two bins. This is the "adaptive" (equal-mass) binning of Nixon et al. 2019 (arXiv 1904.01685).
* ``closed`` - which side of an interior edge a prediction equal to it falls on:
    - ``"right"`` (default): bins are (lo, hi], except that the first bin also holds its lower edge. This is
      scikit-learn >= 1.1 (``np.searchsorted(edges[1:-1], p, side="left")``) and BIG-bench's
      ``np.digitize(..., right=True)``.
    - ``"left"``: bins are [lo, hi), except that the last bin also holds 1.0 (scikit-learn < 1.1, which
      used ``np.digitize`` on left-closed bins; CalibratedMath's published numbers date from then).
* Empty bins: they contribute nothing to ECE, are skipped by MCE and by the unweighted average (ACE /
  CalibratedMath MAD, as scikit-learn's ``calibration_curve`` drops them), and appear with ``count == 0``
  and NaN statistics in :func:`reliability_bins`.

Sources: ECE (Naeini et al. 2015; Guo et al. 2017, arXiv 1706.04599); BIG-bench (arXiv 2206.04615,
``bigbench/api/task_metrics.py``); CalibratedMath (Lin, Hilton, Evans 2022, arXiv 2205.14334); Murphy 1973 and
Stephenson et al. 2008 for the Brier decomposition; Clopper & Pearson 1934.

Bad input raises ``ValueError`` saying what was wrong and what is valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

STRATEGIES = ("uniform", "quantile", "equal_count")
CLOSED = ("right", "left")

__all__ = [
    "CLOSED",
    "STRATEGIES",
    "SUMMARY_METRICS",
    "BrierDecomposition",
    "ReliabilityBins",
    "adaptive_ece",
    "assign_bins",
    "average_calibration_error",
    "bigbench_brier",
    "bigbench_ece",
    "brier_score",
    "calibratedmath_mad",
    "calibratedmath_mse",
    "calibration_summary",
    "clopper_pearson",
    "ece",
    "log_loss",
    "mce",
    "multiclass_brier",
    "multiclass_ece",
    "murphy_decomposition",
    "reliability_bins",
    "softmax",
]


# ----------------------------------------------------------------------------------------------- validation

def _as_probs(p, name: str = "probabilities", ndim: int | None = 1) -> np.ndarray:
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers in [0, 1]; got something not convertible to float ({exc})") \
            from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one prediction is needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; valid probabilities are finite numbers in [0, 1]")
    lo, hi = arr.min(), arr.max()
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got values in [{lo:.6g}, {hi:.6g}] (pass probabilities, "
                         f"not percentages or logits; see softmax() for log-probabilities)")
    return arr


def _as_binary(y, name: str = "outcomes") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of 0/1 labels; got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.float64)
    try:
        f = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 0/1 (or bool) labels; got dtype {arr.dtype}") from None
    bad = ~((f == 0.0) | (f == 1.0))
    if bad.any():
        examples = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{name} must be binary labels 0/1 (or bool); found other values, e.g. {examples}")
    return f


def _pair(p, y, p_name: str = "probabilities", y_name: str = "outcomes") -> tuple[np.ndarray, np.ndarray]:
    p = _as_probs(p, p_name)
    y = _as_binary(y, y_name)
    if p.shape != y.shape:
        raise ValueError(f"{p_name} and {y_name} must have the same length; got {p.shape[0]} and {y.shape[0]}")
    return p, y


def _check_binning(n_bins, strategy: str, closed: str) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
    if closed not in CLOSED:
        raise ValueError(f"closed must be one of {CLOSED}; got {closed!r}")
    return int(n_bins)


def _as_multiclass(probs, atol: float, name: str = "probs") -> np.ndarray:
    p = _as_probs(probs, name, ndim=2)
    if p.shape[1] < 2:
        raise ValueError(f"{name} must have one column per class (at least 2); got shape {p.shape}")
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"each row of {name} must sum to 1 (within atol={atol}); row {i} sums to {sums[i]:.6g} "
                         f"(normalize first, e.g. softmax() over log-probabilities)")
    return p


def _as_labels(labels, n: int, k: int, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} class indices; got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer class indices in [0, {k}); got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= k:
        raise ValueError(f"{name} must be class indices in [0, {k}); got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


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


# ---------------------------------------------------------------------------------------------- BIG-bench

def softmax(logits, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax; BIG-bench turns the choices' log-probabilities into probabilities this way."""
    x = np.asarray(logits, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("log-probabilities must be finite numbers")
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _bigbench_rows(probs, targets, atol):
    """Split (possibly ragged) BIG-bench inputs into same-width 2-D blocks: [(probs (m,K), target_scores (m,K))]."""
    ragged = not isinstance(probs, np.ndarray) and len(probs) > 0 and \
        len({np.asarray(r).shape for r in probs}) > 1
    if not ragged:
        p = _as_multiclass(probs, atol)
        n, k = p.shape
        t = np.asarray(targets)
        if t.ndim == 1:
            lab = _as_labels(t, n, k, "targets")
            t = np.zeros((n, k))
            t[np.arange(n), lab] = 1.0
        elif t.shape != p.shape:
            raise ValueError(f"targets must be class indices (n,) or target scores shaped like probs {p.shape}; "
                             f"got shape {t.shape}")
        return [(p, _check_target_scores(t))]
    if len(targets) != len(probs):
        raise ValueError(f"probs has {len(probs)} rows but targets has {len(targets)}")
    rows_p = [np.asarray(r, dtype=np.float64) for r in probs]
    rows_t = []
    for i, (rp, rt) in enumerate(zip(rows_p, targets)):
        rt = np.asarray(rt)
        if rt.ndim == 0:
            idx = int(rt)
            if not 0 <= idx < rp.size:
                raise ValueError(f"targets[{i}] = {idx} is not a valid choice index in [0, {rp.size})")
            rt = np.zeros(rp.size)
            rt[idx] = 1.0
        if rt.shape != rp.shape:
            raise ValueError(f"targets[{i}] has shape {rt.shape} but probs[{i}] has shape {rp.shape}")
        rows_t.append(rt.astype(np.float64))
    blocks = []
    widths = np.array([r.size for r in rows_p])
    for w in np.unique(widths):
        sel = np.flatnonzero(widths == w)
        blocks.append((_as_multiclass(np.stack([rows_p[i] for i in sel]), atol),
                       _check_target_scores(np.stack([rows_t[i] for i in sel]))))
    return blocks


def _check_target_scores(t) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)) or (t < 0).any():
        raise ValueError("target scores must be finite and non-negative (1 for a correct choice, 0 otherwise)")
    if (t.sum(axis=1) <= 0).any():
        raise ValueError("every example needs at least one choice with a positive target score")
    return t


def bigbench_ece(probs, targets, *, n_bins: int = 15, edges: str = "n_bins", atol: float = 1e-6) -> float:
    """BIG-bench's multiple-choice ECE (arXiv 2206.04615, ``bigbench/api/task_metrics.py``).

    ``probs``: (n, K) choice probabilities (a softmax over the choices' log-probabilities, see
    :func:`softmax`), or a list of 1-D rows of different lengths. ``targets``: the correct choice index per
    example, or target scores shaped like ``probs`` (e.g. ``[0, 1, 0]``). Convention: confidence = max
    probability; correct = ``argmax(targets) == argmax(probs)`` (ties, and several correct choices: the first
    maximal index, so with two correct choices only the first counts); bins right-closed (lo, hi] as
    ``np.digitize(conf, edges, right=True)``; ECE = sum over non-empty bins of |sum(correct) - sum(conf)| / n.

    ``edges``: ``"n_bins"`` (default) - ``n_bins`` (15) equal-width buckets over [0, 1], as the BIG-bench paper
    describes. ``"linspace_points"`` - edges ``np.linspace(0, 1, num=n_bins)``, i.e. only ``n_bins - 1``
    equal-width buckets (plus one for confidence exactly 0), which is what the widely copied
    ``expected_calibration_error(y_true, y_pred, num_bins=15)`` snippet computes; use it to compare with code
    built on that snippet.
    """
    if edges not in ("n_bins", "linspace_points"):
        raise ValueError(f"edges must be 'n_bins' or 'linspace_points'; got {edges!r}")
    _check_binning(n_bins, "uniform", "right")
    confs, corrects = [], []
    for p, t in _bigbench_rows(probs, targets, atol):
        confs.append(p.max(axis=1))
        corrects.append((np.argmax(p, axis=1) == np.argmax(t, axis=1)).astype(np.float64))
    conf, correct = np.concatenate(confs), np.concatenate(corrects)
    if edges == "n_bins":
        return ece(conf, correct, n_bins=n_bins, strategy="uniform", closed="right")
    if n_bins < 2:
        raise ValueError("edges='linspace_points' needs n_bins >= 2 (n_bins points make n_bins - 1 buckets)")
    ids = np.digitize(conf, np.linspace(0.0, 1.0, num=n_bins), right=True)
    _counts, sum_p, sum_y = _bin_sums(conf, correct, ids, n_bins + 1)
    return float(np.abs(sum_y - sum_p).sum() / conf.size)


def bigbench_brier(probs, targets, *, atol: float = 1e-6) -> float:
    """BIG-bench's multiple-choice Brier score: the mean over EVERY (example, choice) pair of
    t (p - 1)^2 + (1 - t) p^2.

    ``t`` is the choice's target score normalized to sum to 1 over the example's choices (two correct choices
    get t = 0.5 each). For t in {0, 1} the pair term is (p - t)^2; for fractional t it is (p - t)^2 + t(1 - t),
    BIG-bench's formula, kept as is. It is an average per option, not the per-example sum of the multi-class
    Brier score (:func:`multiclass_brier`): for a fixed number of choices K and one correct choice it equals
    that value divided by K. ``probs``/``targets`` as in :func:`bigbench_ece` (ragged rows allowed; the mean
    is over all pairs).
    """
    total, pairs = 0.0, 0
    for p, t in _bigbench_rows(probs, targets, atol):
        tn = t / t.sum(axis=1, keepdims=True)
        total += float((tn * (p - 1.0) ** 2 + (1.0 - tn) * p ** 2).sum())
        pairs += p.size
    return total / pairs


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
                       closed: str = "right", scale: float = 100.0) -> float:
    """CalibratedMath's MAD: unweighted mean over bins of |fraction correct - mean confidence| * ``scale``.

    Binning as the paper's code: scikit-learn ``calibration_curve(correct, confidences, n_bins=20,
    strategy="quantile")`` - 20 bins at the predictions' percentiles, empty bins (from repeated edges, e.g.
    many identical verbalized confidences) dropped, every remaining bin weighted equally. ``closed="right"``
    matches scikit-learn >= 1.1; ``closed="left"`` matches the scikit-learn < 1.1 binning of the paper's time
    (the two differ only for predictions lying exactly on an edge, common with verbalized confidences).
    """
    return average_calibration_error(confidences, correct, n_bins=n_bins, strategy=strategy, closed=closed) * scale


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
