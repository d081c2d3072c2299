"""Presets named after the paper whose experiments they reproduce (`workbench.registry.make_config(...,
preset=...)`, `workbench train --preset ...`). Each gives a protocol (mode, levels, budget, envs) and, where the
paper ran code other than baselines, that code's settings:

- "procgen" -- Procgen paper (Cobbe et al. 2019, arXiv 1912.01588; openai/train-procgen): easy 64 envs,
  200 levels, 25M steps; hard 256 envs, 500 levels, 200M steps; PPO with baselines' settings. The default.
- "ppg-paper" -- PPG paper (Cobbe et al. 2020, arXiv 2009.04416; openai/phasic-policy-gradient): hard mode,
  the full level distribution (num_levels = 0), 100M steps, 4 workers x 64 = 256 envs; minibatches of whole
  env rollouts and separate value-only epochs (ppo.py `learn`, `minibatch_optimize`). Its PPO baseline is PPO
  run in that code (README: `--n_epoch_pi 3 --n_epoch_vf 3 --n_aux_epochs 0 --arch shared`): one shared
  network, Adam eps 1e-8, no gradient clipping, no value clipping, per-batch advantage normalization, value
  coefficient 0.5 (ppo.py `learn`'s default): `make_config("ppo", preset="ppg-paper")`.
- "ewma-paper" -- "Batch size-invariance for policy optimization" (Hilton et al. 2021, arXiv 2110.00641;
  openai/ppo-ewma, built on the PPG code): the same protocol and code settings as "ppg-paper" for every
  algorithm (PPO-EWMA / PPG-EWMA and their PPO / PPG baselines), with the auxiliary phase's own step size
  (`aux_lr` 5e-4, unscaled by batch scaling).
"""

from __future__ import annotations

PRESETS = ("procgen", "ppg-paper", "ewma-paper")
DEFAULT_PRESET = "procgen"

# The protocol of the PPG and EWMA papers (hard only).
_FULL_DISTRIBUTION_100M = dict(num_levels=0, total_timesteps=100_000_000, num_envs=256)
# What the PPG / EWMA code does wherever it differs from baselines' PPO (PPG's config already has these).
_PPG_CODE = dict(adam_eps=1e-8, max_grad_norm=None, clip_value_loss=False, advantage_norm="batch",
                 minibatch_unit="rollouts", epoch_schedule="separate")
_PPG_CODE_PPO = dict(_PPG_CODE, update_epochs=3, value_epochs=3, vf_coef=0.5)


def preset_overrides(preset: str, algo: str, distribution_mode: str | None) -> tuple[str, dict]:
    """(distribution mode, field overrides) of `preset` for `algo`; the caller's overrides go on top."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    if preset == "procgen":
        return distribution_mode or "easy", {}
    if distribution_mode not in (None, "hard"):
        raise ValueError(f"preset {preset!r} reproduces a hard-mode paper; distribution mode "
                         f"{distribution_mode!r} is not part of it (use the 'procgen' preset for easy mode)")
    ppg_like = algo.startswith("ppg")
    values = dict(_FULL_DISTRIBUTION_100M, **(_PPG_CODE if ppg_like else _PPG_CODE_PPO))
    if preset == "ewma-paper" and ppg_like:
        values["aux_lr"] = 5e-4
    return "hard", values
