"""BIG-bench's calibration metrics (arXiv 2206.04615, ``bigbench/api/task_metrics.py``): its ECE over every
(example, target) row and its multiple-choice Brier score."""

from __future__ import annotations

import numpy as np

from workbench.calibration.metrics.binned import (
    _bin_sums,
    ece,
)
from workbench.calibration.metrics.validation import (
    _as_labels,
    _as_multiclass,
    _check_binning,
)

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
