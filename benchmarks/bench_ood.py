"""OOD detection (workbench.safety.ood) on the colour-cue task, over seeds: how well each detector separates the
policy's training frames from an unseen colour set and from corrupted frames, and what scoring costs.

    python benchmarks/bench_ood.py [--groups 3] [--members 2] [--steps 24576] [--frames 512]

Each group trains ``members`` PPO runs on colour_cue (width 0.25, 16 envs x 32 steps, 3 epochs; seeds
group * members + k); the first run is scored with the others' value functions as its ensemble on the shifts
colours (palette colours 4-7, never seen in training), noise, blur and colour (severity 3), and so is each
other run in turn. Prints per group the runs' final returns (8 is the maximum), per run every detector's AUROC
and FPR95 per shift, then each detector's mean and spread of AUROC over all runs, and the scoring throughput (policy forward passes) as a fraction of the
machine's fp32 GEMM peak. docs/safety.md quotes this script's output.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from machine import fraction_of_peak, machine_report

from workbench.rl.algos.ppo import PPOConfig, train
from workbench.rl.checkpoints import policy_from_checkpoint
from workbench.rl.compute import forward_flops
from workbench.safety.ood import evaluate_ood, policy_outputs
from workbench.storage.runs import RunStore

SHIFTS = ("colours", "noise", "blur", "colour")


def train_group(store: RunStore, group: int, members: int, steps: int) -> tuple[list[str], list[float]]:
    ids, returns = [], []
    for k in range(members):
        cfg = PPOConfig(env="colour_cue", num_envs=16, num_steps=32, num_minibatches=4, update_epochs=3,
                        width=0.25, gamma=0.99, total_timesteps=steps, checkpoint_every=1000,
                        seed=group * members + k, bf16=False)
        run = train(cfg, store=store, progress=False)
        ids.append(run)
        _, curve = store.metric_series(run, "episode_return")
        returns.append(float(np.nanmean(curve[-5:])) if len(curve) else float("nan"))
    return ids, returns


def scoring_throughput(store: RunStore, run: str, peak: dict[str, float], frames: int = 2048) -> None:
    info = store.get_run(run)
    core = policy_from_checkpoint(info.algo, info.config, store.load_checkpoint(run), "cpu")
    x = np.random.default_rng(0).integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
    flops_per_frame = forward_flops(core.model, core.preprocess(core.to_device(x[:8])))
    policy_outputs(core, x[:256])
    start = time.perf_counter()
    policy_outputs(core, x)
    seconds = time.perf_counter() - start
    rate = frames * flops_per_frame / seconds
    print(f"scoring: {frames / seconds:,.0f} frames/s, {flops_per_frame / 1e6:.2f} MFLOP per frame, "
          f"{rate / 1e9:.2f} GFLOP/s = {fraction_of_peak(rate, peak):.1%} of the fp32 GEMM peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--steps", type=int, default=24_576)
    parser.add_argument("--frames", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    peak = machine_report()
    print(f"\ncolour_cue PPO, {args.steps} steps per run, {args.members} runs per group, {args.frames} frames "
          f"per source, severity 3\n")
    aurocs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(root)
        for group in range(args.groups):
            start = time.perf_counter()
            ids, returns = train_group(store, group, args.members, args.steps)
            trained = time.perf_counter() - start
            print(f"group {group}: seeds {group * args.members}-{(group + 1) * args.members - 1}, final returns "
                  f"{', '.join(f'{r:.2f}' for r in returns)}; trained in {trained:.0f} s")
            for k, run in enumerate(ids):  # each run in turn is the policy, the others its value ensemble
                start = time.perf_counter()
                result = evaluate_ood(run, shifts=SHIFTS, frames=args.frames, ensemble_runs=ids[:k] + ids[k + 1:],
                                      store_root=root)
                print(f"  run {k} (seed {group * args.members + k}), evaluated in {time.perf_counter() - start:.1f} s")
                print(f"    {'shift':8s} {'detector':22s} {'AUROC':>6s} {'FPR95':>6s}")
                for row in result.table():
                    aurocs.setdefault((row["shift"], row["detector"]), []).append(row["auroc"])
                    print(f"    {row['shift']:8s} {row['detector']:22s} {row['auroc']:6.3f} {row['fpr95']:6.3f}")
        print(f"\nAUROC over {len(aurocs[SHIFTS[0], 'msp'])} runs: mean [min, max]")
        for (shift, detector), values in aurocs.items():
            print(f"  {shift:8s} {detector:22s} {np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]")
        scoring_throughput(store, ids[0], peak)


if __name__ == "__main__":
    main()
