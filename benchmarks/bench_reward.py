"""Reward models and best-of-n: learning on a task with a known answer, throughput, estimator speed.

    python benchmarks/bench_reward.py            # prints the tables of benchmarks/RESULTS_REWARD.md

1. Learning: colour-cue frames whose per-step true reward is the colour index
   (`workbench.preferences.synthetic.colour_reward_episodes`, 24 episodes x 8 steps), 240 uniform pairs of 4-step clips
   labeled by the deterministic gold labeler; held-out accuracy, loss and the learned order of the colours
   for a few model sizes (the second row is the setting of tests/test_reward.py).
2. Throughput of the clip reward model: `step_rewards` (inference) and one member's training step
   (forward + backward + Adam), frames of 64x64x3 per second, batches of 256 frames.
3. `best_of_n_curve` for 64 prompts x N = 1,000 samples.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from workbench.episodes.clips import sample_clip_pairs
from workbench.episodes.rollouts import RolloutStore
from workbench.preferences.best_of_n import best_of_n_curve
from workbench.preferences.labels import LabelStore
from workbench.preferences.reward import (
    RewardConfig,
    build_ensemble,
    train_reward_model,
)
from workbench.preferences.synthetic import (
    SyntheticLabeler,
    colour_reward_episodes,
    label_campaign,
)

LEARNING = [dict(width=0.125, hidden=16, lr=3e-3), dict(width=0.25, hidden=32, lr=1e-3),
            dict(width=0.25, hidden=32, lr=3e-3, l2=0.0)]
THROUGHPUT = [(0.25, 32, 1), (0.5, 64, 1), (0.5, 64, 3), (1.0, 256, 3)]


def learning() -> None:
    print("| model | held-out accuracy | held-out loss | learned colour order | seconds |\n|---|---|---|---|---|")
    for settings in LEARNING:
        root = tempfile.mkdtemp()
        _, frames, true = colour_reward_episodes(root)
        labels = LabelStore(root)
        labels.create_campaign("colours", "clip_pair")
        labels.add_items("colours", sample_clip_pairs(RolloutStore(root).list(), 240, length=4, rng=0))
        label_campaign("colours", SyntheticLabeler("gold"), store_root=root)
        t0 = time.perf_counter()
        result = train_reward_model("colours", root, RewardConfig(members=2, epochs=8, batch_size=32, **settings))
        seconds = time.perf_counter() - t0
        r = result.ensemble.step_rewards(torch.from_numpy(frames.reshape(-1, 64, 64, 3))).numpy()
        means = [r[true.reshape(-1) == v].mean() for v in (0.0, 1.0, 2.0, 3.0)]
        order = " < ".join(str(c) for c in np.argsort(means))
        m = result.metrics
        print(f"| 2 members, {settings} | {m['heldout_accuracy']:.3f} | {m['heldout_loss']:.3f} | {order} | "
              f"{seconds:.1f} |")


def throughput(batch: int = 256, repeats: int = 5) -> None:
    print("\n| clip model | step_rewards frames/s | training frames/s (one member) |\n|---|---|---|")
    frames = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8)
    for width, hidden, members in THROUGHPUT:
        ens = build_ensemble("clip", members, {"width": width, "hidden": hidden}, reward_std=0.05,
                             noise_floor=True)
        ens.step_rewards(frames)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            ens.step_rewards(frames)
        infer = repeats * batch / (time.perf_counter() - t0)
        member = ens.members[0]
        opt = torch.optim.Adam(member.parameters(), lr=1e-4)
        t0 = time.perf_counter()
        for _ in range(repeats):
            loss = member(frames).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        train = repeats * batch / (time.perf_counter() - t0)
        print(f"| width {width}, hidden {hidden}, {members} member(s) | {infer:.0f} | {train:.0f} |")


def estimator() -> None:
    rng = np.random.default_rng(0)
    proxy, gold = rng.normal(size=(64, 1000)), rng.normal(size=(64, 1000))
    t0 = time.perf_counter()
    best_of_n_curve(proxy, gold)
    print(f"\nbest_of_n_curve, 64 prompts x N = 1,000 (every n, gold and proxy): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    learning()
    throughput()
    estimator()
