"""Batch size-invariance rules of PPO-EWMA / PPG-EWMA (Hilton, Cobbe, Schulman 2021, arXiv 2110.00641).

When the batch size (both the iteration batch and the minibatch) is multiplied by `factor` = 1/c:
  1. the Adam step size is multiplied by sqrt(factor) (= divided by sqrt(c); the paper found the linear rule
     clearly worse);
  2. optionally, Adam's beta1 and beta2 are raised to the power `factor` (the paper mostly did not);
  3. beta_prox is chosen so the EWMA's centre of mass (in optimizer steps) is multiplied by c;
  4. advantage normalization becomes an EWMA over iterations whose span, 2 / (1 - beta_adv) - 1, is
     multiplied by c (per-batch normalization is beta_adv = 0, which becomes (c - 1) / (c + 1));
  5. PPG: N_pi is multiplied by c, which holds the auxiliary phase's data constant (its minibatches keep
     their number of rollouts), and the auxiliary phase keeps its own step size (`aux_lr`, unscaled): its
     data and minibatches do not change, so neither does its optimization (openai/ppo-ewma, `aux_lr`).
Growing the batch (c < 1): rules 1-3 and 5 apply as stated (N_pi * c must stay whole). Rule 4 would ask for a
span of c < 1 iterations, but the moment EWMA is updated once per iteration, so its shortest window is one
batch: beta_adv is clamped at 0 (per-batch normalization). A batch 1/c times larger already holds the 1/c
small batches the original span averaged over, so per-batch statistics are estimated from at least as much
data; only normalizing sub-batches separately could shorten the window, which the paper does not describe.
The paper's conditions for invariance: small optimization batches and one policy epoch (E, E_pi = 1). The
KL coefficient, if any, is not changed. Departure: a config with per-minibatch advantage normalization (PPO's
baselines default) is treated as per-batch (beta_adv = 0) before rule 4, since the rule is stated for that.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from workbench.rl.algos.ewma import beta_for_centre_of_mass, centre_of_mass


def parse_factor(text: str | float) -> float:
    """'1/4', '0.25' or 4 -> a positive float."""
    try:
        value = float(Fraction(str(text)))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"batch scale must be a positive number or fraction such as 1/4 (got {text!r})") from None
    if value <= 0:
        raise ValueError(f"batch scale must be > 0 (got {text!r})")
    return value


def adjust_for_batch_size(config, factor: float, *, adjust_adam_betas: bool = False):
    """A copy of `config` for a batch `factor` times the size, with the paper's adjustments (module doc)."""
    factor = parse_factor(factor)
    c = 1.0 / factor
    num_envs = config.num_envs * factor
    if abs(num_envs - round(num_envs)) > 1e-9 or round(num_envs) < 1:
        raise ValueError(f"batch scale {factor:g} gives {num_envs:g} envs from {config.num_envs}; the scaled env "
                         f"count must be a whole number >= 1")
    changes = dict(num_envs=int(round(num_envs)), learning_rate=config.learning_rate * math.sqrt(factor),
                   beta_prox=beta_for_centre_of_mass(centre_of_mass(config.beta_prox) * c))
    beta_adv = config.beta_adv if config.advantage_norm == "ewma" else 0.0
    span = 2.0 / (1.0 - beta_adv) - 1.0
    # max(0, .): a window cannot be shorter than one batch (module doc, "Growing the batch").
    changes.update(advantage_norm="ewma", beta_adv=max(0.0, 1.0 - 2.0 / (span * c + 1.0)))
    if adjust_adam_betas:
        changes["adam_betas"] = tuple(b ** factor for b in config.adam_betas)
    if hasattr(config, "n_pi"):
        n_pi = config.n_pi * c
        if abs(n_pi - round(n_pi)) > 1e-9 or round(n_pi) < 1:
            raise ValueError(f"batch scale {factor:g} gives N_pi = {n_pi:g} from {config.n_pi}; it must be whole")
        changes.update(n_pi=int(round(n_pi)), aux_minibatch_rollouts=config.aux_rollouts_per_minibatch,
                       aux_lr=config.aux_lr or config.learning_rate)
    return dataclasses.replace(config, **changes)
