"""Returns, advantages and reward normalization: the pieces PPO and PPG share.

Conventions (used across `workbench.rl.algos`): arrays are time-major (T, N). `dones[t]` is True when the
action taken at step t ended the episode, so step t must not bootstrap from the value of the next
observation (which is the first observation of a new episode).
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.distributed.reduce import pooled_mean_std, pooled_moments


@torch.no_grad()
def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                   gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2015, arXiv 1506.02438).

    One reverse scan over time on the tensors' device, vectorized over environments:
        delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
    with V_T = `last_value` (the value of the observation after the last step). Returns (advantages,
    returns = advantages + values), both (T, N) float32.
    """
    if rewards.shape != values.shape or rewards.shape != dones.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and dones "
                         f"{tuple(dones.shape)} must all be (T, N)")
    not_done = 1.0 - dones.float()
    next_values = torch.cat([values[1:], last_value[None]], dim=0)
    deltas = rewards + gamma * next_values * not_done - values
    discounts = gamma * lam * not_done
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + discounts[t] * running
        advantages[t] = running
    return advantages, advantages + values


class RunningMeanStd:
    """Mean and variance of a stream, merged batch by batch (Chan et al.'s parallel algorithm), with the
    small prior count of baselines' RunningMeanStd (1e-4) so the first update is well defined.
    `distributed=True`: each batch is pooled over every rank's batch (workbench.distributed.reduce), as the PPG
    code's RunningMeanStd(distributed=True), so the moments are identical on every rank."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4, distributed: bool = False):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon
        self.distributed = distributed

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64)
        if self.distributed:
            b_mean, b_var, b_count = pooled_moments(batch)
        else:
            b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": torch.as_tensor(self.mean), "var": torch.as_tensor(self.var), "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], np.float64)
        self.var = np.asarray(state["var"], np.float64)
        self.count = float(state["count"])


class RewardNormalizer:
    """Scale rewards by a running estimate of the std of the discounted return, as baselines' VecNormalize
    (used by the Procgen paper's train-procgen): ret <- gamma * ret + r; update the running variance with
    ret; emit clip(r / sqrt(var + eps), -clip, clip); ret <- 0 where the episode ended.

    `gamma` is a setting because reference codes differ: 0.99 in OpenAI's code (train-procgen and
    phasic-policy-gradient, our default) and 0.999 in the popular PyTorch port. Rewards are not centred.
    """

    def __init__(self, num_envs: int, gamma: float = 0.99, clip: float = 10.0, epsilon: float = 1e-8):
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.ret = np.zeros(num_envs, np.float64)
        self.ret_rms = RunningMeanStd(distributed=True)  # pooled over ranks in a data-parallel run

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + rewards
        self.ret_rms.update(self.ret)
        scaled = np.clip(rewards / np.sqrt(self.ret_rms.var + self.epsilon), -self.clip, self.clip)
        self.ret[dones] = 0.0
        return scaled.astype(np.float32)

    def state_dict(self) -> dict:
        # The per-env running returns are not saved: a resumed run starts fresh episodes.
        return {"ret_rms": self.ret_rms.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.ret[:] = 0.0


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]; NaN when the target has no variance."""
    var_target = target.var()
    if var_target.item() == 0:
        return float("nan")
    return float(1.0 - (target - predicted).var() / var_target)


class AdvantageNormalizer:
    """Advantage normalization by an EWMA of the batch moments (PPO-EWMA's batch size-invariant form,
    Hilton et al. 2021, arXiv 2110.00641): with decay `beta`, the mean and second moment are exponentially
    averaged over iterations and bias-corrected; beta = 0 is plain per-batch normalization. When the batch
    is divided by c, the span 2 / (1 - beta) - 1 (in iterations) is multiplied by c.
    """

    def __init__(self, beta: float = 0.0, eps: float = 1e-8):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta_adv must be in [0, 1) (got {beta})")
        self.beta, self.eps = beta, eps
        self.m1 = self.m2 = self.weight = 0.0

    def update(self, advantages: torch.Tensor) -> None:
        b = self.beta
        mean, std = pooled_mean_std(advantages.double())  # over every rank's batch in a data-parallel run
        self.m1 = b * self.m1 + (1 - b) * float(mean)
        self.m2 = b * self.m2 + (1 - b) * float(std**2 + mean**2)
        self.weight = b * self.weight + (1 - b)

    def __call__(self, advantages: torch.Tensor) -> torch.Tensor:
        mean = self.m1 / self.weight
        std = max(self.m2 / self.weight - mean**2, 0.0) ** 0.5
        return (advantages - mean) / (std + self.eps)

    def state_dict(self) -> dict:
        return {"m1": self.m1, "m2": self.m2, "weight": self.weight}

    def load_state_dict(self, state: dict) -> None:
        self.m1, self.m2, self.weight = float(state["m1"]), float(state["m2"]), float(state["weight"])
