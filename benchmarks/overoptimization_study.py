"""The CPU-scale reward-model overoptimization study (Gao, Schulman, Hilton 2022, arXiv 2210.10760) on the
colour_choice toy task, and the deliberately flawed proxy that shows the rise and fall.

    python benchmarks/overoptimization_study.py            # about 7 minutes per seed on 2 CPU cores
    python benchmarks/overoptimization_study.py --tiny     # a smoke run of the same code (a minute)

Prints: the machine; the flawed-proxy best-of-n curve and its fit, and RL against it at each KL coefficient; then for the learned proxies (3 sizes,
3 label counts, seeds 0 and 1 (`--seeds`); gold = the env reward; best-of-n with N = 1536 per prompt, n up to 1024; RL with
KL coefficients 0, 0.02, 0.1 at the smallest label count) per proxy size alpha and beta with 95% bootstrap
intervals, d* and the gold at the peak, the coefficient trends, the KL-penalty comparison and the ensemble
variants. The tables are those of docs/overoptimization.md. Wall time is printed (the work itself is not a
GEMM-bound kernel, so no fraction of peak is claimed for it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from machine import machine_report

from workbench.preferences.best_of_n import best_of_n_estimates, kl_best_of_n
from workbench.storage.runs import RunStore
from workbench.studies import overoptimization_report as report
from workbench.studies.overoptimization import (
    OveroptimizationStudy,
    prepare,
    rl_record,
    run_study,
)
from workbench.studies.overoptimization_data import colour_step_reward, sample_responses
from workbench.studies.overoptimization_fits import (
    bon_grid,
    fit_curve,
    kl_penalty_effect,
)

FULL = {"name": "cpu-study", "proxy_sizes": [[0.0625, 8], [0.125, 32], [0.25, 64]], "label_counts": [8, 32, 128],
        "seeds": [0, 1], "members": 3, "rm_steps": 40, "prompts": 3, "bon_samples": 1536, "bon_n_max": 1024,
        "rl_kl_coefs": [0.0, 0.02, 0.1], "rl_variants": ["single"], "rl_label_counts": [8], "rl_iterations": 12,
        "bootstrap": 1000}
TINY = {**FULL, "name": "tiny", "proxy_sizes": [[0.0625, 8], [0.125, 16]], "label_counts": [16, 64],
        "heldout_pairs": 32, "members": 2, "rm_steps": 20, "prompts": 2, "bon_samples": 128, "bon_n_max": 64,
        "rl_kl_coefs": [0.0, 0.1], "rl_label_counts": [64], "rl_iterations": 4, "rl_num_envs": 8, "rl_num_steps": 16,
        "bootstrap": 200}


def flawed_proxy(study: OveroptimizationStudy) -> None:
    """Best-of-n against proxy = red + 1.5 green per frame, gold = red (colour_choice's reward)."""
    proxy = colour_step_reward([1, 1.5, 0, 0])  # the env reward (red frames) is the gold
    grid = bon_grid(study.bon_n_max)
    d = np.sqrt(kl_best_of_n(grid))
    rows_gold, rows_proxy = [], []
    for p in range(study.prompts):
        s = sample_responses(None, study, study.bon_samples, seed=p, scorers={"proxy": lambda f: proxy(f)[None].numpy()})
        g, r = best_of_n_estimates(s["proxy"][0], s["env"])[0, grid - 1], best_of_n_estimates(s["proxy"][0])[0, grid - 1]
        rows_gold.append(g - g[0])
        rows_proxy.append(r - r[0])
    fit = fit_curve("bon", [d] * len(rows_gold), rows_gold, n_resamples=study.bootstrap)
    print("\n## Deliberately flawed proxy (red + 1.5 green), best-of-n, uniform pi_init")
    print("| n | d | gold (shifted) | proxy (shifted) |\n|---|---|---|---|")
    for n, dd, g, r in zip(grid, d, np.mean(rows_gold, 0), np.mean(rows_proxy, 0)):
        print(f"| {n} | {dd:.2f} | {g:+.3f} | {r:+.3f} |")
    print(f"fit R_bon: alpha {fit.alpha:.3f} [{fit.alpha_ci[0]:.3f}, {fit.alpha_ci[1]:.3f}], beta {fit.beta:.3f} "
          f"[{fit.beta_ci[0]:.3f}, {fit.beta_ci[1]:.3f}], d* {fit.d_star:.2f} [{fit.d_star_ci[0]:.2f}, "
          f"{fit.d_star_ci[1]:.2f}], gold at d* {fit.gold_star:.3f}; measured peak at d {fit.empirical_peak_d:.2f} "
          f"gold {fit.empirical_peak_gold:.3f}")


FLAWED_KL_COEFS = [0.0, 0.3, 1.0]  # the flawed proxy pays up to 1.5 per step, not the learned proxies' 0.05 std


def flawed_proxy_rl(study: OveroptimizationStudy, root: str) -> None:
    """ppo-rm against the same flawed proxy from the study's pi_init, without and with a KL penalty."""
    print("\n## Deliberately flawed proxy, RL (ppo-rm, 16 envs x 32 steps per iteration)")
    setup = prepare(study, root)
    runs = [rl_record(study, setup, colour_step_reward([1, 1.5, 0, 0]), None, kl_coef=coef, seed=0,
                      store=RunStore(root), name=f"flawed kl{coef}") for coef in FLAWED_KL_COEFS]
    for run in runs:
        fit = fit_curve("rl", run["d"], run["gold"], n_resamples=study.bootstrap)
        print(f"kl_coef {run['kl_coef']:g}: d " + " ".join(f"{x:.2f}" for x in run["d"]))
        print("  gold  " + " ".join(f"{x:+.2f}" for x in run["gold"]))
        print("  proxy " + " ".join(f"{x:+.2f}" for x in run["proxy"]))
        print(f"  fit R_RL: alpha {fit.alpha:.3f} [{fit.alpha_ci[0]:.3f}, {fit.alpha_ci[1]:.3f}], beta {fit.beta:.3f} "
              f"[{fit.beta_ci[0]:.3f}, {fit.beta_ci[1]:.3f}], d* {fit.d_star:.2f} [{fit.d_star_ci[0]:.2f}, "
              f"{fit.d_star_ci[1]:.2f}]; measured peak at d {fit.empirical_peak_d:.2f} gold {fit.empirical_peak_gold:.3f}")
    for row in kl_penalty_effect(runs, n_resamples=study.bootstrap):
        print(f"  kl_coef {row['kl_coef']:g}: max d {row['max_d']:.2f}, peak gold {row['peak_gold']:+.3f}, final gold "
              f"{row['final_gold']:+.3f}, gold - unpenalized run at the same d {row['gold_residual']:+.3f} "
              f"[{row['gold_residual_ci'][0]:+.3f}, {row['gold_residual_ci'][1]:+.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--store", default=None, help="run store root (default: a temporary directory)")
    parser.add_argument("--flawed-only", action="store_true", help="only the deliberately flawed proxy parts")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds of the learned-proxy study")
    args = parser.parse_args()
    machine_report()
    torch.set_num_threads(1)
    settings = dict(TINY if args.tiny else FULL)
    if not args.tiny:
        settings["seeds"] = [int(x) for x in args.seeds.split(",")]
        settings["name"] = "cpu-study-seeds-" + "-".join(str(x) for x in settings["seeds"])
    study = OveroptimizationStudy.from_dict(settings)
    t0 = time.perf_counter()
    flawed_proxy(study)
    root = args.store or tempfile.mkdtemp(prefix="overopt-")
    flawed_proxy_rl(study, root)
    if args.flawed_only:
        print(f"\nwall time {time.perf_counter() - t0:.0f} s")
        return
    summary = run_study(study, root, progress=lambda m: print(f"[{time.perf_counter() - t0:6.0f} s] {m}", flush=True))
    print(f"\nstore: {root}\n\n## Learned proxies, single member (alpha, beta: 95% bootstrap intervals)")
    print(report.proxy_table(summary, "single"))
    print("\n## Coefficient trends (single member)")
    print(report.trend_table(summary, "single"))
    print("\n## KL penalty")
    print(report.kl_table(summary))
    print("\n## Ensembles as mitigation (best-of-n; same training, 3 members)")
    print(report.ensemble_table(summary))
    print("\n## Ensemble variants: fits")
    for variant in ("mean", "min"):
        print(f"\n### {variant}\n" + report.proxy_table(summary, variant))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
