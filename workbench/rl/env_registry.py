"""One place that turns an environment name into a vectorized env: the 16 Procgen games and the small
test tasks. Training, evaluation and the CLI build envs through `make_vec_env` so names are checked once."""

from __future__ import annotations

import numpy as np

from workbench.rl.envs import (
    GAMES,
    NORMALIZATION_CONSTANTS,
    ProcgenVecEnv,
    normalized_return,
)
from workbench.rl.digits_env import DIGITS_TASKS
from workbench.rl.toy_env import ColourChoiceVecEnv, ColourCueVecEnv

TEST_TASKS = {"colour_cue": ColourCueVecEnv, "colour_choice": ColourChoiceVecEnv, **DIGITS_TASKS}
ENV_NAMES: tuple[str, ...] = GAMES + tuple(TEST_TASKS)


def validate_env_name(name: str) -> str:
    if name not in ENV_NAMES:
        import difflib

        close = difflib.get_close_matches(str(name), ENV_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown env {name!r}{hint}; valid: Procgen games {', '.join(GAMES)}; "
                         f"test tasks {', '.join(TEST_TASKS)}")
    return name


def make_vec_env(name: str, num_envs: int, *, distribution_mode: str = "easy", num_levels: int = 0,
                 start_level: int = 0, rand_seed: int = 0, render_mode: str | None = None):
    """A Procgen game as `ProcgenVecEnv`, or a test task (levels and mode do not apply to those)."""
    validate_env_name(name)
    if name in TEST_TASKS:
        return TEST_TASKS[name](num_envs, seed=rand_seed, render_mode=render_mode)
    return ProcgenVecEnv(name, num_envs, distribution_mode=distribution_mode, num_levels=num_levels,
                         start_level=start_level, rand_seed=rand_seed, render_mode=render_mode)


def normalized_return_or_nan(name: str, returns, distribution_mode: str = "easy"):
    """Procgen-normalized return; NaN (same shape) for envs without normalization constants."""
    if name in NORMALIZATION_CONSTANTS.get(distribution_mode, {}):
        return normalized_return(name, returns, distribution_mode)
    return np.full(np.shape(returns), np.nan) if np.ndim(returns) else float("nan")
