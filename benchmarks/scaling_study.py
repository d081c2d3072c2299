"""The scaling study at this machine's scale: IMPALA widths spanning >= 8x in parameters, several seeds, on
the digits task (horizon 1 and 4; Hilton, Tang, Schulman 2023's toy environment on sklearn's 8x8 digits) and
one Procgen game in easy mode, run through `workbench sweep`; prints the compute accounting of each width, the
frontiers, and the fitted exponents with 95% bootstrap intervals (1,000 resamples of the runs).

    python benchmarks/scaling_study.py [--store DIR] [--parallel 2] [--scale 1.0] [--boot 1000]

Re-running continues the sweeps (finished runs are skipped) and re-fits. `--scale` multiplies every run's
env steps (the default took about 33 minutes on the shared 2-core CPU, docs/scaling_laws.md; on a GPU machine use larger
`--widths` and `--scale`). Everything docs/scaling_laws.md quotes is printed here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine import machine_report

# name, env, horizon (1 for Procgen), seeds, env steps, score transform
FAMILIES = (
    ("digits_h1", "digits", 1, (0, 1, 2, 3), 20_480),
    ("starpilot", "starpilot", 1, (0, 1), 16_384),
    ("digits_h4", "digits_h4", 4, (0, 1), 20_480),
)
DEFAULT_FAMILIES = "digits_h1,starpilot,digits_h4"
MIN_GAIN = 0.1      # points within 10% of the frontier's range above its start (not yet learning) get no I
WIDTHS = (0.03125, 0.0625, 0.125, 0.3125)              # 20.9k to 180k parameters (8.6x)
BASE = {"num_envs": 32, "num_steps": 16, "num_minibatches": 4, "update_epochs": 3, "num_levels": 0,
        "checkpoint_every": 10}


ACCOUNTING_WIDTHS = (0.03125, 0.0625, 0.125, 0.25, 0.3125, 0.5, 1.0, 2.0, 4.0)


def accounting_check() -> None:
    """Logged compute of short PPO and PPG runs against FlopCounterMode's count of what they executed."""
    import tempfile

    from torch.utils.flop_counter import FlopCounterMode

    from workbench.rl.algos import ppg, ppo
    from workbench.storage.runs import RunStore

    tiny = {"env": "digits", "num_envs": 8, "num_steps": 16, "num_minibatches": 2, "width": 0.25, "bf16": False,
            "total_timesteps": 256, "checkpoint_every": 1000}
    for label, engine, config in (("PPO", ppo, ppo.PPOConfig(**tiny)),
                                  ("PPG (dual, n_pi 2)", ppg, ppg.PPGConfig(**tiny, n_pi=2, aux_epochs=2))):
        with tempfile.TemporaryDirectory() as root:
            store = RunStore(root)
            with FlopCounterMode(display=False) as counter:
                run_id = engine.train(config, store=store, progress=False)
            logged = store.metric_series(run_id, "compute_flops")[1][-1]
            store.close()
        measured = counter.get_total_flops()
        print(f"{label}, width 0.25, 256 env steps: logged {logged / 1e9:.2f} GFLOPs, FlopCounterMode measured "
              f"{measured / 1e9:.2f} GFLOPs executed (logged / measured = {logged / measured:.3f})")


def accounting_table(widths) -> None:
    from workbench.rl.compute import count_parameters, policy_forward_flops
    from workbench.rl.policy import ImpalaCNN

    print("\n## compute accounting (workbench.rl.compute): IMPALA CNN, 64x64x3 input")
    print("| width | parameters | forward FLOPs/obs | PPO training FLOPs per env step (3 epochs) |")
    print("|---|---|---|---|")
    for w in widths:
        model = ImpalaCNN(width=w)
        f = policy_forward_flops(model)
        per_step = (1 + 1 / BASE["num_steps"]) * f + 3 * BASE["update_epochs"] * f
        print(f"| {w:g} | {count_parameters(model):,} | {f / 1e6:.2f} M | {per_step / 1e6:.3g} M |")


def study_names(name: str, seeds) -> list[str]:
    """One study per seed (a stored study keeps its spec, so seeds can be added later as new studies)."""
    return [f"{name}-seed{k}" for k in seeds]


def sweep(store: Path, name: str, env: str, seeds, steps: int, widths, parallel: int) -> float:
    t0 = time.perf_counter()
    env_vars = {**os.environ, "PYTHONPATH": str(REPO)}
    for seed, study in zip(seeds, study_names(name, seeds)):
        if legacy_curves(store, name, seed, widths, steps):
            continue
        cmd = [sys.executable, "-m", "workbench.cli", "--store", str(store), "sweep", "--name", study, "--algo", "ppo",
               "--set", f"env={env}", "--set", f"total_timesteps={steps}", "--set", f"seed={seed}",
               "--parallel", str(parallel), "--axis", "width=" + ",".join(f"{w:g}" for w in widths)]
        for key, value in BASE.items():
            cmd += ["--set", f"{key}={value}"]
        done = subprocess.run(cmd, cwd=REPO, env=env_vars, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:])
            raise SystemExit(f"sweep {study} failed (exit {done.returncode})")
    return time.perf_counter() - t0


def smoothed(values: np.ndarray, window: int = 5) -> np.ndarray:
    """Centred running mean over `window` iterations (fewer at the ends): one iteration's episodes are noisy."""
    kernel = np.ones(min(window, len(values)))
    num = np.convolve(values, kernel, mode="same")
    den = np.convolve(np.ones_like(values), kernel, mode="same")
    return num / den


def stored_studies(store: Path) -> set[str]:
    from workbench.storage.studies import StudyStore

    return {s.name for s in StudyStore(store).list_studies()} if (store / "workbench.sqlite").exists() else set()


def legacy_curves(store: Path, name: str, seed: int, widths, steps: int) -> list:
    """A seed's finished runs from an earlier layout of this script (one study `name` with seed as an axis),
    when they cover every width with the same steps and the seed has no study of its own: such seeds are
    not trained again."""
    from workbench.studies.analysis import study_curves

    studies = stored_studies(store)
    if name not in studies or study_names(name, [seed])[0] in studies:
        return []
    mine = [c for c in study_curves(store, name) if c.seed == seed and len(c.steps) and c.steps[-1] == steps]
    return mine if sorted(c.point.get("width") for c in mine) == sorted(widths) else []


def curves_of(store: Path, name: str, seeds, widths, steps):
    from workbench.studies.analysis import study_curves

    out = []
    for seed, study in zip(seeds, study_names(name, seeds)):
        out += legacy_curves(store, name, seed, widths, steps) or study_curves(store, study)
    return out


def family_runs(store: Path, name: str, horizon: int, seeds, widths, steps, error: bool = False):
    from workbench.studies.frontier import RunCurve

    runs = []
    for c in curves_of(store, name, seeds, widths, steps):
        if len(c.steps) < 4:
            continue
        score = smoothed(c.score / horizon)     # digits: accuracy per guess; Procgen: the return
        runs.append(RunCurve(c.size, c.seed, c.steps.astype(float), c.compute, 1.0 - score if error else score))
    return runs


def fmt(value, interval):
    return f"{value:.3g} [{interval[0]:.3g}, {interval[1]:.3g}]"


def report_family(store: Path, name: str, horizon: int, seeds, widths, steps, n_boot: int) -> dict:
    from workbench.studies.fits import JointLaw
    from workbench.studies.frontier import fit_family, fit_frontier_power_law

    runs = family_runs(store, name, horizon, seeds, widths, steps)
    sizes = sorted({r.size for r in runs})
    print(f"\n## {name}: {len(runs)} runs, sizes {[int(s) for s in sizes]} parameters "
          f"({sizes[-1] / sizes[0]:.1f}x)")
    print("| parameters | seeds | env steps | training TFLOPs | final score (mean of seeds, last 3 iterations) |")
    print("|---|---|---|---|---|")
    for s in sizes:
        mine = [r for r in runs if r.size == s]
        final = [float(np.mean(r.score[-3:])) for r in mine]
        print(f"| {int(s):,} | {len(mine)} | {int(mine[0].interactions[-1]):,} | {mine[0].compute[-1] / 1e12:.3g} | "
              f"{np.mean(final):.3f} +- {np.std(final):.3f} |")
    from workbench.storage.runs import RunStore

    run_store = RunStore(store)
    infos = [run_store.get_run(c.run_id) for c in curves_of(store, name, seeds, widths, steps)]
    busy = sum(i.updated_at - i.created_at for i in infos)
    print(f"(runs' own wall time, created to finished: {busy:.0f} s in all, {busy / max(len(infos), 1):.0f} s per run "
          f"on average; they ran 2 at a time on a 2-core machine shared with other work)")
    out = {}
    try:
        frontier, points, law = fit_family(runs, n_boot=n_boot, min_gain=MIN_GAIN)
    except ValueError as e:
        print(f"joint law: not fitted: {e}")
        return out
    on = np.isfinite(frontier.score)
    print("\nfrontier (seed-averaged, best size at each compute):")
    print("| training TFLOPs | frontier score | size attaining it |")
    print("|---|---|---|")
    for k in np.linspace(np.argmax(on), len(on) - 1, 8).astype(int):
        print(f"| {frontier.compute[k] / 1e12:.3g} | {frontier.score[k]:.3f} | {int(frontier.size[k]):,} |")
    ok = np.isfinite(points.intrinsic)
    iv = law.intervals
    print(f"\njoint law I^-beta = (N_c/N)^alpha_N + (E_c/E)^alpha_E on {ok.sum()} points "
          f"(of {len(ok)}; the rest lie outside the frontier's range or within {MIN_GAIN:.0%} of its start), "
          f"{n_boot} bootstrap resamples of the runs:")
    print(f"  alpha_N = {fmt(law.alpha_n, iv['alpha_n'])}")
    print(f"  alpha_E = {fmt(law.alpha_e, iv['alpha_e'])}")
    print(f"  beta = {fmt(law.beta, iv['beta'])}")
    print(f"  N_opt ~ C^a, a = alpha_E/(alpha_N+alpha_E) = {fmt(law.optimal_size_exponent, iv['optimal_size_exponent'])}")
    print(f"  N_c = {fmt(law.n_c, iv['n_c'])}, E_c = {fmt(law.e_c, iv['e_c'])}")
    print(f"  log residuals of I: sd {np.std(law.residuals):.3f}, max |r| {np.max(np.abs(law.residuals)):.3f}")
    lower, upper = JointLaw.lower[2:], JointLaw.upper[2:]
    for label, value, lo, hi in (("alpha_N", law.alpha_n, lower[0], upper[0]), ("alpha_E", law.alpha_e, lower[1], upper[1])):
        if value <= lo * 1.01 or value >= hi * 0.99:
            print(f"  WARNING: {label} sits at the bound of its search ({lo:g}..{hi:g}): these runs do not identify it")
    out.update(law=law)
    if name.startswith("digits"):
        try:
            _, fit = fit_frontier_power_law(family_runs(store, name, horizon, seeds, widths, steps, error=True), n_boot=n_boot)
            print(f"frontier error rate L(C) = L_inf + (C0/C)^alpha: alpha = {fmt(fit.alpha, fit.intervals['alpha'])}, "
                  f"L_inf = {fmt(fit.l_inf, fit.intervals['l_inf'])}, C0 = {fit.x0:.3g} FLOPs; "
                  f"log residual sd {np.std(fit.residuals):.3f}")
            out.update(frontier_fit=fit)
        except ValueError as e:
            print(f"frontier power law: not fitted: {e}")
    return out


def scaled_steps(steps: int, scale: float) -> int:
    return max(BASE["num_envs"] * BASE["num_steps"] * 8, int(steps * scale))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="/tmp/workbench_scaling_study")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every run's env steps")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--widths", default=",".join(f"{w:g}" for w in WIDTHS))
    parser.add_argument("--families", default=DEFAULT_FAMILIES, help=f"of {', '.join(f[0] for f in FAMILIES)}")
    parser.add_argument("--fit-only", action="store_true", help="fit the runs already stored; start none")
    args = parser.parse_args()
    machine_report()
    import torch

    print(f"accelerator: {'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (CPU only)'}")
    widths = [float(w) for w in args.widths.split(",")]
    accounting_table(sorted(set(ACCOUNTING_WIDTHS) | set(widths)))
    accounting_check()
    store, chosen = Path(args.store), args.families.split(",")
    t_start = time.perf_counter()
    for name, env, horizon, seeds, steps in FAMILIES:
        if name not in chosen or args.fit_only:
            continue
        steps = scaled_steps(steps, args.scale)
        seconds = sweep(store, name, env, seeds, steps, widths, args.parallel)
        print(f"\nsweep {name}: {len(widths)} widths x {len(seeds)} seeds x {steps:,} env steps in {seconds:.0f} s")
    results = {name: report_family(store, name, horizon, seeds, widths, scaled_steps(steps, args.scale), args.boot)
               for name, _, horizon, seeds, steps in FAMILIES if name in chosen}
    h1, h4 = results.get("digits_h1", {}), results.get("digits_h4", {})
    if "law" in h1 and "law" in h4:
        print("\n## horizon 1 vs 4 (digits): joint-law exponents and coefficients")
        for label, key in (("alpha_N", "alpha_n"), ("alpha_E", "alpha_e"), ("N_opt exponent", "optimal_size_exponent"),
                           ("N_c", "n_c"), ("E_c", "e_c")):
            va, vb = (getattr(r["law"], key) for r in (h1, h4))
            print(f"  {label}: h1 {fmt(va, h1['law'].intervals[key])} | h4 {fmt(vb, h4['law'].intervals[key])}")
    if "frontier_fit" in h1 and "frontier_fit" in h4:
        print("\n## horizon 1 vs 4 (digits): frontier error rate L(C) = L_inf + (C0/C)^alpha")
        for label, key in (("alpha", "alpha"), ("C0 (FLOPs)", "x0"), ("L_inf", "l_inf")):
            va, vb = (getattr(r["frontier_fit"], key) for r in (h1, h4))
            print(f"  {label}: h1 {fmt(va, h1['frontier_fit'].intervals[key])} | "
                  f"h4 {fmt(vb, h4['frontier_fit'].intervals[key])}")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
