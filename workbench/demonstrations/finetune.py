"""On top of a behavioural-cloning run: RL from the cloned policy, and best-of-n of it against a reward model.

WebGPT (Nakano et al. 2021, arXiv 2112.09332, Sec. 3.3) improves its behaviour-cloned policy two ways: RL
against a reward model with a per-step KL penalty towards the BC policy, and rejection sampling (best-of-n)
against the reward model. Both reuse what the workbench has for RL from preferences:

- `finetune_from_bc`: PPO or PPG (`RMPPOConfig` / `RMPPGConfig` of workbench.preferences.rlhf) started from the
  BC run's network (`init_run`, so pi_init is the BC policy, frozen and checkpointed) with an optional KL
  penalty `kl_coef` towards it. The reward is the environment's own (`reward="env"`: the MineRL setting, where
  the task reward is known), or a saved reward model's (`reward_model=path`: WebGPT's). The run is recorded as
  `ppo-rm`/`ppg-rm` with `init_run` = the BC run, and logs rlhf/kl etc. like any run against a reward model.
- `bc_best_of_n`: best-of-n of the BC policy against a reward model, scored by the gold (env) reward with the
  unbiased estimator (workbench.preferences.best_of_n.sample_best_of_n).
"""

from __future__ import annotations

import torch

from workbench.preferences import rlhf
from workbench.preferences.best_of_n import sample_best_of_n
from workbench.rl.checkpoints import policy_checkpoint_problem, policy_from_checkpoint
from workbench.storage.runs import RunStore


class EnvRewardKLHook(rlhf.RewardModelHook):
    """RL against the env reward with the KL penalty to pi_init: the reward-model hook whose "reward model" is
    the env reward of the same step (so its proxy and gold metrics coincide)."""

    def __init__(self, config, *, store: RunStore | None = None):
        self._env_reward = None
        super().__init__(config, lambda obs_t: torch.as_tensor(self._env_reward, dtype=torch.float32),
                         store=store)

    def __call__(self, obs_t, out, env_reward, done):
        self._env_reward = env_reward
        return super().__call__(obs_t, out, env_reward, done)


def _bc_info(store: RunStore, bc_run: str):
    info = store.get_run(bc_run)
    if info.algo != "bc":
        raise ValueError(f"run {bc_run} is a {info.algo!r} run, not behavioural cloning ('bc')")
    return info


def finetune_from_bc(bc_run: str, *, algo: str = "ppo", kl_coef: float = 0.0, reward_model: str | None = None,
                     store: RunStore | None = None, progress: bool = False, **overrides) -> str:
    """PPO (`algo="ppo"`) or PPG (`"ppg"`) from the BC run's policy; returns the new run's id. The env, its
    levels and the network width come from the BC run unless overridden; `overrides` are PPO/PPG settings
    (total_timesteps is the environment budget)."""
    store = store or RunStore()
    info = _bc_info(store, bc_run)
    if algo not in ("ppo", "ppg"):
        raise ValueError(f"algo must be 'ppo' or 'ppg' (got {algo!r})")
    cls = rlhf.RMPPOConfig if algo == "ppo" else rlhf.RMPPGConfig
    settings = {key: info.config[key] for key in ("env", "num_levels", "start_level", "width",
                                                  "channels_last", "bf16", "device")}
    config = cls.paper(info.config["distribution_mode"], **{**settings, **overrides, "init_run": bc_run,
                                                           "kl_coef": kl_coef, "reward_model": reward_model})
    config.validate()
    if reward_model:
        return rlhf.train(config, store=store, progress=progress)
    hook = EnvRewardKLHook(config, store=store)
    engine = rlhf.ppg if algo == "ppg" else rlhf.ppo
    return engine.train(config, store=store, progress=progress, extension=hook)


def bc_best_of_n(bc_run: str, step_reward_fn, *, n: int, level_seeds=None, groups: int | None = None,
                 store: RunStore | None = None, seed: int = 0, max_steps: int | None = None):
    """Best-of-n of the BC policy against `step_reward_fn` (a reward model's `step_rewards`), scored by the
    gold reward with WebGPT's unbiased estimator: (BestOfNCurve, proxy, gold) as `sample_best_of_n`."""
    store = store or RunStore()
    info = _bc_info(store, bc_run)
    state = store.load_checkpoint(bc_run, None, check=policy_checkpoint_problem)
    core = policy_from_checkpoint("bc", info.config, state, info.config.get("device", "auto"))
    return sample_best_of_n(core, info.env, step_reward_fn, n=n, level_seeds=level_seeds, groups=groups,
                            distribution_mode=info.config["distribution_mode"], seed=seed, max_steps=max_steps)


__all__ = ["EnvRewardKLHook", "bc_best_of_n", "finetune_from_bc"]
