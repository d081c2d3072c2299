"""PPO's losses (Schulman et al. 2017, arXiv 1707.06347), as train-procgen / baselines compute them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PolicyLossOutput:
    loss: torch.Tensor          # scalar, to minimize
    clip_fraction: torch.Tensor  # fraction of samples whose ratio left [1 - eps, 1 + eps]
    approx_kl: torch.Tensor      # E[(r - 1) - log r], the low-variance estimator of KL[pi_old || pi]


def clipped_policy_loss(new_log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                        clip_coef: float) -> PolicyLossOutput:
    """L_clip = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)], r = pi(a|s) / pi_old(a|s)."""
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    with torch.no_grad():
        clip_fraction = ((ratio - 1.0).abs() > clip_coef).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return PolicyLossOutput(loss, clip_fraction, approx_kl)


def value_loss(new_value: torch.Tensor, returns: torch.Tensor, old_value: torch.Tensor | None = None,
               clip_coef: float | None = None) -> torch.Tensor:
    """0.5 * E[(V - R)^2]; with `clip_coef`, baselines' clipped form
    0.5 * E[max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)]."""
    squared = (new_value - returns) ** 2
    if clip_coef is not None:
        if old_value is None:
            raise ValueError("the clipped value loss needs old_value (the values recorded during the rollout)")
        clipped = old_value + (new_value - old_value).clamp(-clip_coef, clip_coef)
        squared = torch.maximum(squared, (clipped - returns) ** 2)
    return 0.5 * squared.mean()


def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit (population) std, as baselines (numpy std, ddof=0)."""
    return (advantages - advantages.mean()) / (advantages.std(correction=0) + eps)


def decoupled_policy_loss(new_log_prob: torch.Tensor, behavior_log_prob: torch.Tensor,
                          proximal_log_prob: torch.Tensor, advantages: torch.Tensor, clip_coef: float,
                          max_importance_weight: float = 100.0) -> PolicyLossOutput:
    """The decoupled clipped objective of PPO-EWMA (Hilton, Cobbe, Schulman 2021, arXiv 2110.00641):

        L = -E[ (pi_prox / pi_behav) * min(r A, clip(r, 1 - eps, 1 + eps) A) ],   r = pi / pi_prox.

    With pi_prox = pi_behav it is PPO's clipped objective. As in openai/ppo-ewma, computed in log space with
    the importance weight pi / pi_behav capped at `max_importance_weight` (log pi_behav is clipped from
    below at log pi - log 100, with pi detached). `approx_kl` is measured against the proximal policy and
    `clip_fraction` counts ratios r outside [1 - eps, 1 + eps].
    """
    behavior = capped_behavior_log_prob(new_log_prob, behavior_log_prob, max_importance_weight)
    weight = (proximal_log_prob - behavior).exp()
    log_ratio = new_log_prob - proximal_log_prob
    ratio = log_ratio.exp()
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * advantages)
    loss = -(weight * surrogate).mean()
    with torch.no_grad():
        clip_fraction = ((ratio - 1.0).abs() > clip_coef).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return PolicyLossOutput(loss, clip_fraction, approx_kl)


def capped_behavior_log_prob(new_log_prob: torch.Tensor, behavior_log_prob: torch.Tensor,
                             max_importance_weight: float) -> torch.Tensor:
    """log pi_behav clipped from below at log pi - log(max weight), pi detached (openai/ppo-ewma)."""
    return torch.maximum(behavior_log_prob, new_log_prob.detach() - torch.log(
        torch.tensor(max_importance_weight, dtype=new_log_prob.dtype, device=new_log_prob.device)))


def kl_penalty_policy_loss(new_log_prob: torch.Tensor, behavior_log_prob: torch.Tensor,
                           proximal_log_prob: torch.Tensor, advantages: torch.Tensor, kl_coef: float | torch.Tensor,
                           max_importance_weight: float = 100.0) -> PolicyLossOutput:
    """The KL-penalized objective the PPG and EWMA papers compare with clipping (PPO-KL / PPG-KL; PPG paper
    arXiv 2009.04416 Sec. 3 "L^KL", EWMA paper arXiv 2110.00641 "L^KLPEN"):

        L = -E[ (pi / pi_behav) A ] + beta * KL[pi_prox || pi],

    with the sample estimate KL ~ 0.5 E[(log pi - log pi_prox)^2] of openai/phasic-policy-gradient
    (ppo.py, `compute_losses`: `kl_penalty * 0.5 * (logratio ** 2).mean()`, no clipping when clip_param = 0)
    and the importance weight pi / pi_behav capped as in `decoupled_policy_loss`. With pi_prox = pi_behav it
    is the PPG paper's PPO-KL. `approx_kl` is that KL estimate; `clip_fraction` is 0 (nothing is clipped).
    """
    behavior = capped_behavior_log_prob(new_log_prob, behavior_log_prob, max_importance_weight)
    surrogate = (new_log_prob - behavior).exp() * advantages
    log_ratio = new_log_prob - proximal_log_prob
    kl = 0.5 * (log_ratio ** 2).mean()
    loss = -surrogate.mean() + kl_coef * kl
    return PolicyLossOutput(loss, torch.zeros((), device=loss.device), kl.detach())


class AdaptiveKLCoefficient:
    """beta of the KL-penalized objective. Fixed (`target=None`) as the PPG and EWMA papers run it (beta = 1;
    the EWMA paper leaves it unchanged under batch scaling), or adaptive as the PPO paper's Sec. 4 (Schulman et
    al. 2017, arXiv 1707.06347): after each update with mean KL d, beta /= 2 if d < target / 1.5 and
    beta *= 2 if d > 1.5 target."""

    def __init__(self, initial: float, target: float | None = None):
        self.value, self.target = float(initial), target

    def update(self, kl: float) -> float:
        if self.target is not None:
            if kl < self.target / 1.5:
                self.value /= 2.0
            elif kl > self.target * 1.5:
                self.value *= 2.0
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
