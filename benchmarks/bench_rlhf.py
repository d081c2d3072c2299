"""RL against a reward model (workbench.preferences.rlhf): the hook's cost, and the online loop's learning.

    python benchmarks/bench_rlhf.py              # prints the tables of benchmarks/RESULTS_RLHF.md

All runs: `colour_choice` (workbench.rl.toy_env.ColourChoiceVecEnv: the next frame shows colour action % 4; the
env (gold) reward is 1 per red frame acted on), PPO 16 envs x 32 steps, 4 minibatches, 3 epochs, width 0.25,
gamma 0.99, fp32, seed 0.

1. Rollout-phase cost per 512-step iteration (median over iterations, `rollout_seconds` from the run store):
   plain PPO; `ppo-rm` with a pixel-colour step reward (the pi_init forward and the KL bookkeeping only);
   `ppo-rm` with an untrained reward ensemble of workbench.preferences.reward's default size (3 members, width 0.5).
2. The online loop from no reward model (the setting of tests/test_rlhf.py): 12 iterations, a label round
   every 3 (96 clip pairs of 8 steps labeled by the gold labeler, a 1-member reward model warm-started each
   round); gold reward per step per iteration and each round's held-out accuracy.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from workbench.preferences import rlhf
from workbench.preferences.reward import build_ensemble
from workbench.rl.algos import ppo
from workbench.rl.toy_env import PALETTE
from workbench.storage.runs import RunStore

BASE = dict(env="colour_choice", num_envs=16, num_steps=32, num_minibatches=4, update_epochs=3, width=0.25,
            gamma=0.99, checkpoint_every=1000, seed=0, bf16=False)


def red_frames(obs_u8: torch.Tensor) -> torch.Tensor:
    red = torch.tensor(PALETTE[0], dtype=torch.float32)
    return ((obs_u8.float().mean(dim=(1, 2)) - red).abs().max(-1).values < 30).float()


def overhead(iterations: int = 8) -> None:
    store = RunStore(tempfile.mkdtemp())
    steps = iterations * 512
    ensemble = build_ensemble("clip", 3, {"width": 0.5, "hidden": 64}, reward_std=0.05, noise_floor=True).eval()
    runs = {
        "plain PPO (env reward)": ppo.train(ppo.PPOConfig(**BASE, total_timesteps=steps), store=store, progress=False),
        "ppo-rm, pixel-colour step reward": rlhf.train(rlhf.RMPPOConfig(**BASE, total_timesteps=steps),
                                                       step_reward_fn=red_frames, store=store, progress=False),
        "ppo-rm, untrained 3-member width-0.5 ensemble": rlhf.train(
            rlhf.RMPPOConfig(**BASE, total_timesteps=steps), step_reward_fn=ensemble.step_rewards, store=store,
            progress=False),
    }
    medians = {name: float(np.median(store.metric_series(run, "rollout_seconds")[1][1:]))  # skip the warm-up
               for name, run in runs.items()}
    base = medians["plain PPO (env reward)"]
    print("| variant | rollout s per iteration | x plain PPO |\n|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {seconds / base:.2f} |")


def online_loop() -> None:
    store = RunStore(tempfile.mkdtemp())
    config = rlhf.RMPPOConfig(**BASE, total_timesteps=12 * 512, online_every=3, online_pairs=96,
                              online_clip_length=8, online_trace_envs=8,
                              online_reward_settings=dict(members=1, epochs=5, width=0.25, hidden=32, device="cpu"))
    run = rlhf.train(config, store=store, progress=False)
    gold = store.metric_series(run, "rlhf/gold_reward")[1]
    accuracy = store.metric_series(run, "rlhf/rm_heldout_accuracy")[1]
    seconds = store.metric_series(run, "rlhf/online_seconds")[1]
    print("\nonline loop, gold reward per step by iteration:", " ".join(f"{g:.2f}" for g in gold))
    print("held-out accuracy of each round's reward model:", " ".join(f"{a:.2f}" for a in accuracy))
    print("seconds per label round (save, label, retrain):", " ".join(f"{s:.1f}" for s in seconds))


if __name__ == "__main__":
    torch.set_num_threads(1)
    overhead()
    online_loop()
