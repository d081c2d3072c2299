"""Calibration metrics on one million predictions: seconds per metric (issue 8: "well under a second").

    python benchmarks/bench_calibration.py                 # N = 1,000,000, best of 5 repeats
    python benchmarks/bench_calibration.py --n 200000 --repeats 3

Binary predictions p ~ U(0, 1) with outcomes y ~ Bernoulli(p^1.5) (a miscalibrated model); a multi-class
set of N x 4 softmax probabilities for the multi-class and BIG-bench metrics. Each metric is timed
end to end (input validation included) with time.perf_counter; the best of ``--repeats`` runs is printed
(the minimum is the least disturbed by other processes). Also timed: the reliability-diagram table with
Clopper-Pearson intervals (and with 1,000 bootstrap resamples per bin), the widget-facing summary row, and
scikit-learn's calibration_curve / brier_score_loss as a reference point.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.calibration import metrics as cal


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    p = rng.random(args.n)
    y = (rng.random(args.n) < p ** 1.5).astype(np.int8)
    logits = rng.normal(size=(args.n, 4)) * 2.0
    probs = cal.softmax(logits)
    labels = rng.integers(0, 4, size=args.n)

    cases = {
        "ece (15 equal-width bins)": lambda: cal.ece(p, y, n_bins=15),
        "ece (15 quantile bins)": lambda: cal.ece(p, y, n_bins=15, strategy="quantile"),
        "adaptive_ece (15 equal-count bins)": lambda: cal.adaptive_ece(p, y, n_bins=15),
        "mce (15 equal-width bins)": lambda: cal.mce(p, y, n_bins=15),
        "brier_score": lambda: cal.brier_score(p, y),
        "log_loss": lambda: cal.log_loss(p, y),
        "murphy_decomposition (10 bins)": lambda: cal.murphy_decomposition(p, y),
        "calibratedmath_mse": lambda: cal.calibratedmath_mse(p, y),
        "calibratedmath_mad (20 quantile bins)": lambda: cal.calibratedmath_mad(p, y),
        "multiclass_ece (N x 4, 15 bins)": lambda: cal.multiclass_ece(probs, labels),
        "bigbench_ece (N x 4, 15 bins)": lambda: cal.bigbench_ece(probs, labels),
        "bigbench_brier (N x 4)": lambda: cal.bigbench_brier(probs, labels),
        "reliability_bins (15 bins, Clopper-Pearson)": lambda: cal.reliability_bins(p, y, n_bins=15, n_bootstrap=0),
        "reliability_bins (15 bins, CP + 1000 bootstrap)": lambda: cal.reliability_bins(p, y, n_bins=15),
        "calibration_summary (the widget's table row)": lambda: cal.calibration_summary(p, y),
    }
    try:
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import brier_score_loss

        cases["reference: sklearn calibration_curve (15 uniform)"] = lambda: calibration_curve(y, p, n_bins=15)
        cases["reference: sklearn brier_score_loss"] = lambda: brier_score_loss(y, p)
    except ImportError:
        pass

    print(f"N = {args.n:,} predictions, best of {args.repeats}; python {platform.python_version()}, "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| metric | seconds |\n|---|---|")
    for name, fn in cases.items():
        fn()  # warm-up (imports, caches)
        print(f"| {name} | {best_of(fn, args.repeats):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
