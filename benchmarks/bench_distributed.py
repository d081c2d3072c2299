"""Data-parallel throughput (issue 18): env steps/s of the same PPO job on 1 and on 2 ranks of this machine.

Both runs are `workbench train --nproc-per-node K` (torchrun, gloo on the CPU, NCCL on GPUs) with the same job
config: `num_envs` is the job's total, split across the ranks, so each iteration collects the same number of
steps. The rate is the job's env steps per second as rank 0 logs it (all ranks' steps / iteration wall time),
median over the iterations after the first. FLOP/s counts the model's forward passes while acting and forward +
backward (~3x forward) per update epoch, and is given as a fraction of the GEMM peak of the whole machine.

    PYTHONPATH=. python benchmarks/bench_distributed.py [--env coinrun] [--iterations 6] [--ranks 1 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from machine import fraction_of_peak, machine_report
from torch.utils.flop_counter import FlopCounterMode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from workbench.rl.algos.ppo import PPOConfig, make_policy
from workbench.storage.runs import RunStore


def flops_per_env_step(config: PPOConfig) -> float:
    core = make_policy(config)
    obs = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        core.forward(obs)
    forward = counter.get_total_flops()
    return forward * (1 + 3 * config.update_epochs)


def run(ranks: int, args, store_root: str) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "workbench.cli", "--store", store_root, "train", "--env", args.env,
           "--num-envs", str(args.num_envs), "--width", str(args.width), "--device", args.device,
           "--timesteps", str(args.num_envs * args.num_steps * args.iterations), "--no-progress",
           "--set", f"num_steps={args.num_steps}", "--set", "checkpoint_every=1000",
           "--nproc-per-node", str(ranks)]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": str(args.threads_per_rank)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    run_id = out.strip().splitlines()[-1]
    _, rates = RunStore(store_root).metric_series(run_id, "steps_per_second")
    return float(np.median(rates[1:])), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="coinrun")
    parser.add_argument("--num-envs", type=int, default=16, help="the job's total envs")
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads-per-rank", type=int, default=1,
                        help="OMP threads of each rank (1: no oversubscription on a busy 2-core machine)")
    args = parser.parse_args()
    peak = machine_report()
    config = PPOConfig(env=args.env, num_envs=args.num_envs, num_steps=args.num_steps, width=args.width,
                       device="cpu", bf16=False, cuda_graph=False)
    per_step = flops_per_env_step(config)
    print(f"job: PPO {args.env}, {args.num_envs} envs in all x {args.num_steps} steps, IMPALA width {args.width}, "
          f"{config.update_epochs} epochs, {args.iterations} iterations; {per_step / 1e6:.1f} MFLOP per env step "
          f"(act + update, fp32 count)")
    print(f"GPU: {'yes, ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'none on this machine'}")
    print("| ranks | OMP threads per rank | env steps/s (median) | wall s | model FLOP/s | fraction of fp32 peak |")
    print("|---|---|---|---|---|---|")
    base = None
    with tempfile.TemporaryDirectory() as root:
        for ranks in args.ranks:
            rate, wall = run(ranks, args, root)
            base = base or rate
            flops = rate * per_step
            print(f"| {ranks} | {args.threads_per_rank} | {rate:,.0f} ({rate / base:.2f}x) | {wall:.1f} | "
                  f"{flops / 1e9:.2f} G | {fraction_of_peak(flops, peak):.1%} |", flush=True)


if __name__ == "__main__":
    main()
