"""Calibration metrics with explicit conventions (numpy, vectorized; scipy for the beta quantiles), one module
per job: input checks (`validation`), binning and binned errors (`binned`), BIG-bench's metrics (`bigbench`),
Brier, log loss and CalibratedMath scores (`scores`), Clopper-Pearson intervals (`intervals`), reliability bins
and the summary row (`reliability`). This package's namespace is the API:
`from workbench.calibration import metrics as cal`.

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
    - ``"right"`` (the default everywhere except :func:`calibratedmath_mad`): bins are (lo, hi], except that
      the first bin also holds its lower edge. This is scikit-learn >= 1.1
      (``np.searchsorted(edges[1:-1], p, side="left")``) and BIG-bench's ``np.digitize(..., right=True)``.
    - ``"left"``: bins are [lo, hi), except that the last bin also holds 1.0 (scikit-learn < 1.1, which
      used ``np.digitize`` on left-closed bins; CalibratedMath's published numbers date from then, so it is
      :func:`calibratedmath_mad`'s default).
* Empty bins: they contribute nothing to ECE, are skipped by MCE and by the unweighted average (ACE /
  CalibratedMath MAD, as scikit-learn's ``calibration_curve`` drops them), and appear with ``count == 0``
  and NaN statistics in :func:`reliability_bins`.

Sources: ECE (Naeini et al. 2015; Guo et al. 2017, arXiv 1706.04599); BIG-bench (arXiv 2206.04615,
``bigbench/api/task_metrics.py``); CalibratedMath (Lin, Hilton, Evans 2022, arXiv 2205.14334); Murphy 1973 and
Stephenson et al. 2008 for the Brier decomposition; Clopper & Pearson 1934.

Bad input raises ``ValueError`` saying what was wrong and what is valid.
"""

from workbench.calibration.metrics.bigbench import bigbench_brier, bigbench_ece, softmax
from workbench.calibration.metrics.binned import (
    adaptive_ece,
    assign_bins,
    average_calibration_error,
    ece,
    mce,
    multiclass_ece,
)
from workbench.calibration.metrics.intervals import clopper_pearson
from workbench.calibration.metrics.reliability import (
    SUMMARY_METRICS,
    ReliabilityBins,
    calibration_summary,
    reliability_bins,
)
from workbench.calibration.metrics.scores import (
    BrierDecomposition,
    brier_score,
    calibratedmath_mad,
    calibratedmath_mse,
    log_loss,
    multiclass_brier,
    murphy_decomposition,
)
from workbench.calibration.metrics.validation import CLOSED, STRATEGIES

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
