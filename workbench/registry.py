"""Every training engine by name: `ppo`, `ppo-ewma`, `ppg`, `ppg-ewma`, and RL against a reward model,
`ppo-rm` and `ppg-rm` (workbench.preferences.rlhf; not in `ALGOS`, which the benchmark grid and the launch form
offer, since they need a reward model). Used by the CLI, resume, evaluation and the benchmark grid, so they
never need to know which module trains which algorithm. Runs against a reward model get the proxy-gaming alarm
(workbench.safety.alarm) as a monitor."""

from __future__ import annotations

from workbench.demonstrations import bc
from workbench.episodes.rollouts import record_training_episode
from workbench.preferences import rlhf
from workbench.rl.algos import ppg, ppo
from workbench.rl.algos.batch_size import adjust_for_batch_size
from workbench.rl.algos.config_check import check_values
from workbench.rl.algos.presets import PRESETS, preset_overrides
from workbench.rl.checkpoints import policy_from_checkpoint
from workbench.safety.alarm import ProxyGamingAlarm

ALGOS = ("ppo", "ppo-ewma", "ppg", "ppg-ewma")
RM_ALGOS = tuple(rlhf.ALGO_CONFIGS)   # ("ppo-rm", "ppg-rm")
DEMO_ALGOS = ("bc",)                  # behavioural cloning on a demonstration set (workbench.demonstrations.bc)
_CONFIG = {"ppo": ppo.PPOConfig, "ppo-ewma": ppo.PPOConfig, "ppg": ppg.PPGConfig, "ppg-ewma": ppg.PPGConfig,
           **rlhf.ALGO_CONFIGS, "bc": bc.BCConfig}
_PRESETS = {**ppo.ALGO_PRESETS, **ppg.ALGO_PRESETS, **{algo: {} for algo in RM_ALGOS + DEMO_ALGOS}}


def _check(algo: str) -> str:
    if algo not in ALGOS + RM_ALGOS + DEMO_ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; valid: {', '.join(ALGOS + RM_ALGOS + DEMO_ALGOS)}")
    return algo


def config_class(algo: str) -> type:
    """The config dataclass of `algo` (PPOConfig, PPGConfig, RMPPOConfig, ...)."""
    return _CONFIG[_check(algo)]


def make_config(algo: str, distribution_mode: str | None = None, *, batch_scale: float | str | None = None,
                preset: str = "procgen", **overrides):
    """The defaults of `algo` under `preset` -- the paper it reproduces (workbench.rl.algos.presets: "procgen",
    the default, easy unless `distribution_mode` says hard; "ppg-paper"; "ewma-paper") -- with overrides,
    optionally batch-size adjusted."""
    cls = _CONFIG[_check(algo)]
    distribution_mode, from_preset = preset_overrides(preset, algo.removesuffix("-rm"), distribution_mode)
    overrides = check_values(cls, {**_PRESETS[algo], **from_preset, **overrides})  # before anything is built
    config = cls.paper(distribution_mode, **overrides)
    if batch_scale is not None:
        config = adjust_for_batch_size(config, batch_scale)
    return config.validate()


def config_from_run(algo: str, values: dict):
    return _CONFIG[_check(algo)].from_dict(values)


def algo_of(config) -> str:
    if isinstance(config, bc.BCConfig):
        return "bc"
    if isinstance(config, rlhf.RewardModelSettings):
        return "ppg-rm" if isinstance(config, ppg.PPGConfig) else "ppo-rm"
    ewma = config.proximal_policy == "ewma"
    if isinstance(config, ppg.PPGConfig):
        return "ppg-ewma" if ewma else "ppg"
    return "ppo-ewma" if ewma else "ppo"


def train(config, **kwargs) -> str:
    """Train with the engine the config belongs to; returns the run id. With `record_every`, the episode
    recorder records into the run's store during training; against a reward model, the proxy-gaming alarm logs
    `safety/proxy_gaming_alarm` (pass `monitors=[]` to leave it out)."""
    if config.record_every:
        kwargs.setdefault("recorder", record_training_episode)
    if isinstance(config, rlhf.RewardModelSettings):
        kwargs.setdefault("monitors", [ProxyGamingAlarm()])
        return rlhf.train(config, **kwargs)
    if isinstance(config, bc.BCConfig):
        return bc.train(config, **kwargs)
    engine = ppg if isinstance(config, ppg.PPGConfig) else ppo
    return engine.train(config, **kwargs)


__all__ = ["PRESETS", "ALGOS", "RM_ALGOS", "config_class", "make_config", "config_from_run", "algo_of", "train", "policy_from_checkpoint",
           "adjust_for_batch_size"]
