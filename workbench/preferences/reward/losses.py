"""The Bradley-Terry preference model and its losses (Christiano et al. 2017, arXiv 1706.03741, section 2.2.3),
with the optional 10% noise floor, and the per-ranking mean of InstructGPT (arXiv 2203.02155, section 3.5)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

NOISE_FLOOR_SCALE, NOISE_FLOOR_OFFSET = 0.9, 0.05   # Christiano et al. 2017, section 2.2.3


def _log_probs(logit: torch.Tensor, noise_floor: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """log P and log(1 - P) of P = sigma(logit), or of P_e = 0.9 P + 0.05, computed stably."""
    if not noise_floor:
        return F.logsigmoid(logit), F.logsigmoid(-logit)
    log_scale, log_offset = math.log(NOISE_FLOOR_SCALE), math.log(NOISE_FLOOR_OFFSET)
    offset = torch.full_like(logit, log_offset)
    return (torch.logaddexp(log_scale + F.logsigmoid(logit), offset),
            torch.logaddexp(log_scale + F.logsigmoid(-logit), offset))


def preference_probability(r_a: torch.Tensor, r_b: torch.Tensor, *, noise_floor: bool = False) -> torch.Tensor:
    """P(A > B) = sigma(r_a - r_b), or 0.9 sigma(r_a - r_b) + 0.05 with the noise floor."""
    p = torch.sigmoid(r_a - r_b)
    return NOISE_FLOOR_SCALE * p + NOISE_FLOOR_OFFSET if noise_floor else p


def pair_losses(r_a: torch.Tensor, r_b: torch.Tensor, mu_a: torch.Tensor, *, noise_floor: bool = False) -> torch.Tensor:
    """Per-pair Bradley-Terry cross-entropy -[mu log P + (1 - mu) log(1 - P)], P = P(A > B)."""
    mu_a = torch.as_tensor(mu_a, dtype=r_a.dtype, device=r_a.device)
    log_p, log_q = _log_probs(r_a - r_b, noise_floor)
    return -(mu_a * log_p + (1.0 - mu_a) * log_q)


def grouped_mean(values: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
    """Mean over groups of each group's mean (InstructGPT's 1/C(K, 2) within a ranking); `group` holds any
    integer ids (one per value); None means every value is its own group (the plain mean)."""
    if group is None:
        return values.mean()
    group = torch.as_tensor(group, device=values.device)
    uniq, inverse = torch.unique(group, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    counts = torch.zeros(len(uniq), dtype=values.dtype, device=values.device).index_add_(
        0, inverse, torch.ones_like(values))
    return (sums / counts).mean()


def bradley_terry_loss(r_a: torch.Tensor, r_b: torch.Tensor, mu_a, *, noise_floor: bool = False,
                       group=None) -> torch.Tensor:
    """The mean Bradley-Terry loss of a batch; with `group`, pairs of one group (one ranking) are averaged
    first, then groups (see :func:`grouped_mean`)."""
    return grouped_mean(pair_losses(r_a, r_b, mu_a, noise_floor=noise_floor), group)


def _prob_nll(p: np.ndarray, mu: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(mu * np.log(p) + (1 - mu) * np.log1p(-p))


def _accuracy(p: np.ndarray, mu: np.ndarray) -> float:
    """Accuracy on the strict preferences (mu 0 or 1); a prediction of exactly 0.5 counts half."""
    strict = mu != 0.5
    if not strict.any():
        return math.nan
    p, mu = p[strict], mu[strict]
    return float(np.mean(np.where(p == 0.5, 0.5, (p > 0.5) == (mu > 0.5))))


def _grouped_mean_np(values: np.ndarray, group: np.ndarray) -> float:
    if len(values) == 0:
        return math.nan
    uniq, inverse = np.unique(group, return_inverse=True)
    return float(np.mean(np.bincount(inverse, weights=values) / np.bincount(inverse)))


# ================================================================================================ models
