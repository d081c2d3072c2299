"""How often the scaling fits' 95% bootstrap intervals hold the true exponent, on synthetic studies drawn from
known laws (the designs of tests/test_fits.py), with and without the small-sample widening of the bootstrap
(workbench.studies.fits._small_sample_widening).

    python benchmarks/fit_coverage.py [--reps 100] [--boot 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from machine import machine_report  # noqa: E402


def coverage(samples, theta_value, truth, factor, level=0.95):
    """(widened covers, unwidened covers): the unwidened samples undo the widening around the estimate."""
    q = [50 * (1 - level), 50 * (1 + level)]
    lo, hi = np.percentile(samples, q)
    raw = theta_value + (samples - theta_value) / factor
    lo_raw, hi_raw = np.percentile(raw, q)
    return lo <= truth <= hi, lo_raw <= truth <= hi_raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--boot", type=int, default=200)
    args = parser.parse_args()
    machine_report()
    from test_fits import joint_law_data, power_law_data

    from workbench.studies import fits

    t0 = time.perf_counter()
    rng, counts = np.random.default_rng(0), np.zeros(2)
    for rep in range(args.reps):
        x, y, groups = power_law_data(rng)
        fit = fits.fit_power_law(x, y, groups, n_boot=args.boot, seed=rep)
        factor = fits._small_sample_widening(groups, None, 0.95)
        counts += coverage(fit.samples["alpha"], fit.alpha, 0.4, factor)
    print(f"power law plus constant (10 runs x 10 points, 5% noise), {args.reps} studies, {args.boot} resamples: "
          f"95% intervals hold alpha in {counts[0] / args.reps:.0%} widened, {counts[1] / args.reps:.0%} unwidened")
    rng, counts = np.random.default_rng(1), np.zeros((3, 2))
    truth = {"alpha_n": 0.7, "alpha_e": 0.35, "optimal_size_exponent": 0.35 / 1.05}
    for rep in range(args.reps):
        n, e, intrinsic, runs = joint_law_data(rng)
        fit = fits.fit_intrinsic_law(n, e, intrinsic, runs, n_boot=args.boot, seed=rep)
        factor = fits._small_sample_widening(runs, None, 0.95)
        for k, (name, value) in enumerate(truth.items()):
            estimate = {"alpha_n": fit.alpha_n, "alpha_e": fit.alpha_e,
                        "optimal_size_exponent": fit.optimal_size_exponent}[name]
            # the widening acts on the fitted parameters; for the derived exponent it is approximately linear
            counts[k] += coverage(fit.samples[name], estimate, value, factor)
    for k, name in enumerate(truth):
        print(f"joint law (4 sizes x 3 seeds x 10 points, 5% noise), {args.reps} studies: 95% intervals hold "
              f"{name} in {counts[k, 0] / args.reps:.0%} widened, {counts[k, 1] / args.reps:.0%} unwidened")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
