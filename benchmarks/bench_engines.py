"""A short run of each engine (PPO, PPO-EWMA, PPG, PPG-EWMA) on a Procgen game: env steps/s and peak memory.

    python benchmarks/bench_engines.py [--env starpilot] [--num-envs 32] [--num-steps 64] [--iterations 8] [--n-pi 4]

Each engine runs in its own process (so its peak RSS is its own) with the same batch; PPG's N_pi is shortened
so that the short run contains whole policy phases and their auxiliary phases (steps/s amortizes them).
Numbers go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

ENGINES = ("ppo", "ppo-ewma", "ppg", "ppg-ewma")


def one(algo: str, args) -> dict:
    from workbench import registry
    from workbench.storage.runs import RunStore

    extra = {"n_pi": args.n_pi} if algo.startswith("ppg") else {}
    config = registry.make_config(algo, "easy", env=args.env, num_envs=args.num_envs, num_steps=args.num_steps,
                                  total_timesteps=args.iterations * args.num_envs * args.num_steps,
                                  checkpoint_every=10_000, device=args.device, **extra)
    store = RunStore(tempfile.mkdtemp(prefix="bench-engines-"))
    t = time.perf_counter()
    run = registry.train(config, store=store, progress=False)
    elapsed = time.perf_counter() - t
    peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {"algo": algo, "steps_per_second": config.total_timesteps / elapsed, "seconds": elapsed,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak_gpu_gb": peak_gpu,
            "final_return": store.latest_metrics(run).get("episode_return", (0, float("nan")))[1]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="starpilot")
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--num-steps", type=int, default=64)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--n-pi", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--_one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._one:
        print(json.dumps(one(args._one, args)))
        return
    print(f"{args.env}, {args.num_envs} envs x {args.num_steps} steps, {args.iterations} iterations, PPG N_pi "
          f"{args.n_pi}, device {args.device}")
    results = []
    for algo in args.engines.split(","):
        argv = [sys.executable, os.path.abspath(__file__), "--_one", algo] + [
            a for a in sys.argv[1:] if a != "--_one"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{algo:9} {r['steps_per_second']:>8,.0f} env steps/s  peak RSS {r['peak_rss_gb']:.2f} GB"
              + (f"  peak GPU {r['peak_gpu_gb']:.2f} GB" if r["peak_gpu_gb"] else ""))
    base = results[0]["steps_per_second"]
    print("relative to PPO: " + ", ".join(f"{r['algo']} {r['steps_per_second'] / base:.2f}" for r in results))


if __name__ == "__main__":
    main()
