"""The roller: steps a vectorized environment with a policy and fills a rollout buffer on the policy's device.

Observations are stored as uint8 (T, N, 64, 64, 3): a 64-env x 256-step batch is 201 MB rather than the
805 MB of float32 frames. Rewards are normalized on the way in (`RewardNormalizer`), while raw episode returns
are reported as they finish.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from workbench.rl.algos.returns import RewardNormalizer
from workbench.rl.policy import PolicyCore


@dataclass
class RolloutBuffer:
    """One iteration's data, time-major, on the policy's device."""

    obs: torch.Tensor         # (T, N, H, W, C) uint8
    actions: torch.Tensor     # (T, N) int64
    log_probs: torch.Tensor   # (T, N) float32, behaviour policy
    values: torch.Tensor      # (T, N) float32
    rewards: torch.Tensor     # (T, N) float32, normalized
    dones: torch.Tensor       # (T, N) bool: the action at t ended the episode
    logits: torch.Tensor | None = None   # (T, N, A) float32, kept when asked for (PPG's behaviour cloning)
    last_value: torch.Tensor = field(default=None)  # (N,) value of the observation after the last step

    @classmethod
    def allocate(cls, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], device: torch.device,
                 num_actions: int | None = None) -> "RolloutBuffer":
        z = lambda dtype, *shape: torch.zeros((num_steps, num_envs, *shape), dtype=dtype, device=device)  # noqa: E731
        return cls(obs=z(torch.uint8, *obs_shape), actions=z(torch.int64), log_probs=z(torch.float32),
                   values=z(torch.float32), rewards=z(torch.float32), dones=z(torch.bool),
                   logits=None if num_actions is None else z(torch.float32, num_actions),
                   last_value=torch.zeros(num_envs, device=device))

    @property
    def num_steps(self) -> int:
        return self.obs.shape[0]

    @property
    def num_envs(self) -> int:
        return self.obs.shape[1]


class Roller:
    """Keeps the environment's current observation between iterations and collects rollouts."""

    def __init__(self, env, core: PolicyCore, reward_normalizer: RewardNormalizer | None,
                 generator: torch.Generator | None = None, episode_window: int = 100,
                 value_core: PolicyCore | None = None, reward_fn=None):
        """`value_core`: a separate value network (PPG) whose values are recorded instead of the policy's.
        `reward_fn`: replaces the env reward before normalization (RL against a reward model,
        workbench.preferences.rlhf): called after every step as `reward_fn(obs_t, act_output, env_reward, done)`
        with the observation the action was chosen on, and asked for `reward_fn.end_iteration(session)`
        metrics at the end of each iteration (`ppo.end_iteration`)."""
        self.env, self.core, self.reward_normalizer = env, core, reward_normalizer
        self.value_core = value_core
        self.reward_fn = reward_fn
        self.generator = generator
        self.obs = env.reset()
        self.recent_episodes: deque = deque(maxlen=episode_window)
        self.env_steps = 0

    @torch.no_grad()
    def collect(self, buf: RolloutBuffer) -> list:
        """Fill `buf` with `buf.num_steps` steps of every env; returns the episodes that finished."""
        finished = []
        for t in range(buf.num_steps):
            obs_t = self.core.to_device(self.obs)
            out = self.core.act(obs_t, self.generator)
            buf.obs[t].copy_(obs_t)
            buf.actions[t].copy_(out.action)
            buf.log_probs[t].copy_(out.log_prob)
            buf.values[t].copy_(out.value if self.value_core is None else self.value_core.forward(obs_t)[1])
            if buf.logits is not None:
                buf.logits[t].copy_(out.logits)
            self.obs, reward, done, episodes = self.env.step(out.action.cpu().numpy())
            if self.reward_fn is not None:
                reward = self.reward_fn(obs_t, out, reward, done)
            if self.reward_normalizer is not None:
                reward = self.reward_normalizer(reward, done)
            buf.rewards[t].copy_(torch.from_numpy(np.asarray(reward, np.float32)))
            buf.dones[t].copy_(torch.from_numpy(np.asarray(done)))
            finished.extend(episodes)
        last_obs = self.core.to_device(self.obs)
        buf.last_value.copy_(self.core.act(last_obs, self.generator).value if self.value_core is None
                             else self.value_core.forward(last_obs)[1])
        self.recent_episodes.extend(finished)
        self.env_steps += buf.num_steps * buf.num_envs
        return finished

    def recent_mean_return(self) -> float:
        if not self.recent_episodes:
            return float("nan")
        return float(np.mean([e.ret for e in self.recent_episodes]))


class StaleBatches:
    """Training on data collected `staleness` iterations ago (EWMA paper, arXiv 2110.00641, Sec. 6): a ring of
    `staleness + 1` rollout buffers; each iteration collects into `next_slot()` and, once the ring is full,
    trains on `oldest()`, collected `staleness` iterations earlier. openai/ppo-ewma keeps the same queue of
    `staleness + 1` batches for PPO and PPG alike (ppo_ewma/ppo.py, `learn`), so both engines share this.
    (After a resume the ring refills first: `staleness` iterations without updates.)"""

    def __init__(self, staleness: int, allocate):
        self.buffers = [allocate() for _ in range(staleness + 1)]
        self.staleness = staleness
        self.filled = 0
        self._next = 0

    def next_slot(self) -> RolloutBuffer:
        return self.buffers[self._next]

    def collected(self) -> None:
        self.filled += 1
        self._next = (self._next + 1) % len(self.buffers)

    @property
    def ready(self) -> bool:
        return self.filled > self.staleness

    def oldest(self) -> RolloutBuffer:
        """After `collected()`, the slot written next is the oldest (the just-collected one if staleness = 0)."""
        return self.buffers[self._next]
