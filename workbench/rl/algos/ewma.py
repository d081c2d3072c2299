"""The proximal policy of PPO-EWMA / PPG-EWMA: an exponentially weighted moving average of the policy
network's weights (Hilton, Cobbe, Schulman 2021, arXiv 2110.00641; openai/ppo-ewma).

Bias-corrected EWMA: start from the current weights with total weight W = 1; after every optimizer step
that includes the policy loss, W' = beta * W + 1 and theta_prox <- (beta W / W') theta_prox + theta / W'.
`reset()` restarts it from the current weights (PPG-EWMA resets at the start of every policy phase).
The centre of mass of the average is 1 / (1 - beta) - 1 steps; beta_prox = 0.889 puts it at 8 steps.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def beta_for_centre_of_mass(com: float) -> float:
    """beta such that 1 / (1 - beta) - 1 = com (com in optimizer steps)."""
    if com < 0:
        raise ValueError(f"the centre of mass must be >= 0 steps (got {com})")
    return 1.0 - 1.0 / (com + 1.0)


def centre_of_mass(beta: float) -> float:
    return 1.0 / (1.0 - beta) - 1.0


class EWMAModel:
    """A frozen copy of `model` whose floating-point parameters and buffers track its EWMA."""

    def __init__(self, model: nn.Module, beta: float):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta_prox must be in [0, 1) (got {beta})")
        self.beta = beta
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.source = model
        self.total_weight = 1.0

    def _pairs(self):
        src = [t for t in self.source.state_dict().values() if t.is_floating_point()]
        dst = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        return dst, src

    @torch.no_grad()
    def update(self) -> None:
        new_total = self.beta * self.total_weight + 1.0
        dst, src = self._pairs()
        torch._foreach_mul_(dst, self.beta * self.total_weight / new_total)
        torch._foreach_add_(dst, src, alpha=1.0 / new_total)
        self.total_weight = new_total

    @torch.no_grad()
    def reset(self) -> None:
        dst, src = self._pairs()
        torch._foreach_copy_(dst, src)
        self.total_weight = 1.0

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "total_weight": self.total_weight, "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.total_weight = float(state["total_weight"])
