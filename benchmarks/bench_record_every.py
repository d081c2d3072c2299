"""Cost of recording episodes during training (`PPOConfig.record_every`, `--record-every K`).

One training run records an episode (with the 512x512 render, H.264-encoded) every `--record-every`
iterations. Training logs `record_seconds` for each recording and `steps_per_second` per iteration
(which excludes the recording), so both costs come from the same run on the same (noisy) machine:

    overhead = (time spent recording) / (time spent training)

Also printed: the projected overhead for the paper's batch (64 envs x 256 steps) at K = 10, scaling the
measured per-step training cost (recording cost does not depend on the batch).

    python benchmarks/bench_record_every.py --env coinrun --num-envs 32 --num-steps 128 --iterations 6 --record-every 2
"""

import argparse
import tempfile
import time

import numpy as np

from workbench.episodes.rollouts import RolloutStore
from workbench.registry import train
from workbench.rl.algos.ppo import PPOConfig
from workbench.storage.runs import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="coinrun")
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--record-every", type=int, default=2)
    parser.add_argument("--hires", type=int, default=1)
    args = parser.parse_args()
    root = tempfile.mkdtemp()
    store = RunStore(root)
    cfg = PPOConfig(env=args.env, num_envs=args.num_envs, num_steps=args.num_steps,
                    total_timesteps=args.num_envs * args.num_steps * args.iterations, checkpoint_every=1000,
                    record_every=args.record_every, record_hires=bool(args.hires), seed=0)
    t0 = time.perf_counter()
    run_id = train(cfg, store=store, progress=False)
    wall = time.perf_counter() - t0
    _, sps = store.metric_series(run_id, "steps_per_second")
    _, record_seconds = store.metric_series(run_id, "record_seconds")
    episodes = RolloutStore(root).list(run_id=run_id)
    train_seconds = float(np.sum(cfg.batch_size / sps))
    record_total = float(record_seconds.sum())
    steps = sum(i.length for i in episodes)
    print(f"env {args.env}, batch {cfg.batch_size} ({args.num_envs} envs x {args.num_steps} steps), "
          f"{args.iterations} iterations, record every {args.record_every}, hires={bool(args.hires)}")
    print(f"training (rollout + update) {train_seconds:.1f} s = {train_seconds / args.iterations:.1f} s/iteration; "
          f"wall {wall:.1f} s")
    print(f"recording: {len(episodes)} episodes, {steps} steps, {record_total:.1f} s "
          f"({1000 * record_total / max(steps, 1):.1f} ms/step)")
    print(f"overhead in this run: {100 * record_total / train_seconds:.1f}%")
    per_step_train = train_seconds / (cfg.batch_size * args.iterations)
    per_episode_record = record_total / max(len(episodes), 1)
    paper_iteration = per_step_train * 64 * 256
    print(f"projected for the paper batch (64 x 256 = 16384 steps/iteration, {paper_iteration:.1f} s) at K = 10: "
          f"{100 * per_episode_record / (10 * paper_iteration):.2f}% (mean episode {steps / max(len(episodes), 1):.0f} steps)")


if __name__ == "__main__":
    main()
