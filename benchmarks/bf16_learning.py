"""Does bf16 autocast change what PPO learns? Same config, same seed, fp32 vs bf16, on a short Procgen run.

    python benchmarks/bf16_learning.py [--env starpilot] [--iterations 25] [--num-envs 32] [--num-steps 128]

Prints the per-iteration mean episode return of both runs side by side, and the mean over the last third.
The decision it informed (bf16 default on the CPU) and its numbers are in benchmarks/RESULTS.md.
"""

import argparse
import tempfile
import time

import numpy as np

from workbench.rl.algos.ppo import PPOConfig, train
from workbench.storage.runs import RunStore


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="starpilot")
    p.add_argument("--iterations", type=int, default=25)
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--num-steps", type=int, default=128)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    store = RunStore(tempfile.mkdtemp(prefix="bf16-learning-"))
    curves, times = {}, {}
    for bf16 in (False, True):
        cfg = PPOConfig(env=args.env, num_envs=args.num_envs, num_steps=args.num_steps,
                        num_minibatches=args.num_minibatches, num_levels=0, seed=args.seed, device=args.device,
                        total_timesteps=args.iterations * args.num_envs * args.num_steps, bf16=bf16,
                        checkpoint_every=10_000)
        t = time.perf_counter()
        run = train(cfg, store=store, progress=False)
        times[bf16] = time.perf_counter() - t
        steps, values = store.metric_series(run, "episode_return")
        curves[bf16] = dict(zip(steps.tolist(), values.tolist()))
    print(f"env={args.env} batch={args.num_envs}x{args.num_steps} iterations={args.iterations} seed={args.seed}")
    print(f"{'step':>8} {'fp32':>8} {'bf16':>8}")
    for step in sorted(set(curves[False]) | set(curves[True])):
        f, b = curves[False].get(step, np.nan), curves[True].get(step, np.nan)
        print(f"{step:>8} {f:>8.2f} {b:>8.2f}")
    for bf16 in (False, True):
        vals = [v for _, v in sorted(curves[bf16].items())]
        tail = vals[-max(1, len(vals) // 3):]
        print(f"{'bf16' if bf16 else 'fp32'}: first {vals[0]:.2f}, mean of last third {np.mean(tail):.2f}, "
              f"wall {times[bf16]:.0f} s")


if __name__ == "__main__":
    main()
