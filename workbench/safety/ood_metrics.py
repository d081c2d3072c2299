"""Out-of-distribution detectors read off a policy's own outputs, and the metrics that score them.

Detectors (each returns an *in-distribution score*: higher = more typical of training, as Hendrycks and Gimpel
2017 rank inputs by their maximum softmax probability):

* ``msp``: the maximum softmax probability of the policy's action distribution (Hendrycks and Gimpel 2017,
  "A baseline for detecting misclassified and out-of-distribution examples").
* ``max_logit``: the largest action logit (Hendrycks et al. 2022, "Scaling out-of-distribution detection for
  real-world settings"). A policy's logits are defined up to a constant per frame, so this score is only
  meaningful because the network's logit head is a fixed linear layer; it is reported as the literature does.
* ``energy``: the negative free energy ``logsumexp(logits)`` at temperature 1 (Liu et al. 2020, "Energy-based
  out-of-distribution detection").
* ``ensemble_disagreement``: minus the standard deviation, across members, of the value estimates (in game
  reward units) of an ensemble of runs (Lakshminarayanan et al. 2017 use ensemble disagreement as
  uncertainty); only when an ensemble is given.
* ``knn``: minus the distance from a frame's L2-normalized penultimate features (the policy network's shared
  hidden layer) to its k-th nearest neighbour among the features of *other* training frames (Sun et al. 2022,
  "Out-of-distribution detection with deep nearest neighbors"; they use k = 50 with 50,000 CIFAR-10 references,
  our default k = 10 is for the ~1,000 references an evaluation gathers); only when features are given.

Metrics (the conventions of Hendrycks and Gimpel 2017 and of Outlier Exposure, Hendrycks et al. 2019):

* ``auroc``: area under the ROC curve of the in-distribution score separating in-distribution frames
  (positives) from shifted ones; 0.5 is chance, 1 perfect. Symmetric in which class is called positive.
* ``aupr_in`` / ``aupr_out``: average precision with in-distribution frames as positives (score as is) and with
  shifted frames as positives (score negated); the baseline paper reports both, since AUPR depends on the
  base rate.
* ``fpr95``: the fraction of shifted frames accepted as in-distribution at the threshold that accepts 95% of
  in-distribution frames (lower is better; the usual "FPR at 95% TPR" of ODIN and Outlier Exposure).

They are computed here with plain sorting (ties handled as scikit-learn does: average precision over distinct
thresholds, the ROC area with ties counting one half), and the tests check each against scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import logsumexp, softmax

DETECTORS: tuple[str, ...] = ("msp", "max_logit", "energy", "ensemble_disagreement", "knn")
KNN_K = 10
TPR_LEVEL = 0.95


def normalized(features) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    f = np.asarray(features, dtype=np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def knn_scores(features, reference_features, k: int = KNN_K) -> np.ndarray:
    """Minus the Euclidean distance of each normalized feature row to its k-th nearest normalized reference."""
    from scipy.spatial.distance import cdist

    x, ref = normalized(features), normalized(reference_features)
    if x.ndim != 2 or ref.ndim != 2 or x.shape[1] != ref.shape[1]:
        raise ValueError(f"features {x.shape} and reference features {ref.shape} must be (N, D) with one D")
    if not (isinstance(k, int) and 1 <= k <= len(ref)):
        raise ValueError(f"k must be a whole number in [1, {len(ref)}] (the number of references), got {k!r}")
    distances = cdist(x, ref)
    return -np.partition(distances, k - 1, axis=1)[:, k - 1]


def detector_scores(logits, member_values=None, features=None, reference_features=None,
                    knn_k: int = KNN_K) -> dict[str, np.ndarray]:
    """In-distribution scores of N frames: ``logits`` (N, A) from the policy; ``member_values`` (K, N) value
    estimates of K >= 2 ensemble members (optional: adds ``ensemble_disagreement``); ``features`` (N, D) and
    ``reference_features`` (M, D), the policy's hidden features of these frames and of other training frames
    (optional: adds ``knn``)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be an (N, actions) array with N >= 1, got shape {logits.shape}")
    scores = {"msp": softmax(logits, axis=1).max(axis=1), "max_logit": logits.max(axis=1),
              "energy": logsumexp(logits, axis=1)}
    if member_values is not None:
        values = np.asarray(member_values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] != logits.shape[0]:
            raise ValueError(f"member_values must be (members >= 2, {logits.shape[0]}), got shape {values.shape}")
        scores["ensemble_disagreement"] = -values.std(axis=0)
    if features is not None:
        if reference_features is None or len(features) != logits.shape[0]:
            raise ValueError(f"knn needs features for the {logits.shape[0]} frames and reference features")
        scores["knn"] = knn_scores(features, reference_features, knn_k)
    return scores


def _check_scores(id_scores, shifted_scores) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(id_scores, dtype=np.float64).ravel()
    b = np.asarray(shifted_scores, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"need at least one score on each side (got {a.size} in-distribution, {b.size} shifted)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite numbers")
    return a, b


def _distinct_threshold_counts(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives when accepting every score >= t, for each distinct t descending."""
    scores = np.concatenate([positives, negatives])
    is_pos = np.concatenate([np.ones(positives.size), np.zeros(negatives.size)])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_pos = scores[order], is_pos[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    tp = np.cumsum(is_pos)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return tp, fp


def auroc(positives, negatives) -> float:
    """P(score of a positive > score of a negative) + P(tie) / 2 (the Mann-Whitney form of the ROC area)."""
    pos, neg = _check_scores(positives, negatives)
    tp, fp = _distinct_threshold_counts(pos, neg)
    tpr = np.r_[0.0, tp / pos.size]
    fpr = np.r_[0.0, fp / neg.size]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # the trapezoid rule (ties: a diagonal step)


def average_precision(positives, negatives) -> float:
    """Sum over distinct thresholds of (recall step) x precision: scikit-learn's average_precision_score."""
    pos, neg = _check_scores(positives, negatives)
    tp, fp = _distinct_threshold_counts(pos, neg)
    precision = tp / (tp + fp)
    recall_step = np.diff(np.r_[0.0, tp / pos.size])
    return float(np.sum(recall_step * precision))


def fpr_at_tpr(positives, negatives, tpr_level: float = TPR_LEVEL) -> float:
    """The false-positive rate at the highest threshold whose true-positive rate reaches ``tpr_level``."""
    pos, neg = _check_scores(positives, negatives)
    tp, fp = _distinct_threshold_counts(pos, neg)
    first = int(np.argmax(tp / pos.size >= tpr_level - 1e-12))
    return float(fp[first] / neg.size)


@dataclass(frozen=True)
class OODMetrics:
    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    n_in: int
    n_shifted: int

    def as_dict(self) -> dict:
        return asdict(self)


def ood_metrics(id_scores, shifted_scores) -> OODMetrics:
    """AUROC, AUPR (in and out) and FPR at 95% TPR of an in-distribution score (higher = more typical)."""
    a, b = _check_scores(id_scores, shifted_scores)
    return OODMetrics(auroc=auroc(a, b), aupr_in=average_precision(a, b), aupr_out=average_precision(-b, -a),
                      fpr95=fpr_at_tpr(a, b), n_in=int(a.size), n_shifted=int(b.size))


__all__ = [
    "DETECTORS",
    "KNN_K",
    "TPR_LEVEL",
    "OODMetrics",
    "auroc",
    "average_precision",
    "detector_scores",
    "fpr_at_tpr",
    "knn_scores",
    "normalized",
    "ood_metrics",
]
