"""Procgen environments behind one small vectorized interface.

Procgen (Cobbe et al. 2019, "Leveraging Procedural Generation to Benchmark Reinforcement Learning",
arXiv 1912.01588) is 16 procedurally generated games with 15 discrete actions and 64x64x3 uint8
observations. `ProcgenVecEnv` wraps `procgen.ProcgenGym3Env` (gym3 interface) and adds what a training
loop needs: uint8 observations, float32 rewards, bool done flags and the episodes that finished on each
step, with their return, length and level seed.

gym3 semantics (what `step` builds on):
- The env starts when it is created: there is no reset; `observe()` returns `(rew, {"rgb": obs}, first)`.
- After `act(a)`, `rew` is the reward of that action and `first[i]` says that `obs[i]` is the first
  observation of a new episode, i.e. env i's episode ended with that action and procgen reset it. So the
  reward on a `first` step belongs to the episode that just ended, and `done == first`.
- `get_info()[i]["prev_level_seed"]` is the seed of the level env i played on its last action, which on a
  `first` step is the level of the episode that just ended (`"level_seed"` is the new one).

Normalized return: (R - R_min) / (R_max - R_min) with the per-game constants of the reference code
(openai/train-procgen `train_procgen/constants.py`, EASY_GAME_RANGES and HARD_GAME_RANGES; the hard
column is repeated in openai/phasic-policy-gradient). R_min is roughly what a random/untrained agent
scores and R_max the best score reachable (Cobbe et al. 2019, appendix).
"""

from __future__ import annotations

import contextlib
import difflib
import io
from dataclasses import dataclass

import numpy as np

GAMES: tuple[str, ...] = (
    "bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot",
    "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot",
)
DISTRIBUTION_MODES = ("easy", "hard")
RENDER_MODES = (None, "rgb_array")
NUM_ACTIONS = 15
OBS_SHAPE = (64, 64, 3)
RENDER_SHAPE = (512, 512, 3)
# procgen passes seeds and level counts to C as int32.
_INT32_MAX = 2**31 - 1

# mode -> game -> (R_min, R_max); train-procgen constants.py (Cobbe et al. 2019).
NORMALIZATION_CONSTANTS: dict[str, dict[str, tuple[float, float]]] = {
    "easy": {
        "bigfish": (1.0, 40.0),
        "bossfight": (0.5, 13.0),
        "caveflyer": (3.5, 12.0),
        "chaser": (0.5, 13.0),
        "climber": (2.0, 12.6),
        "coinrun": (5.0, 10.0),
        "dodgeball": (1.5, 19.0),
        "fruitbot": (-1.5, 32.4),
        "heist": (3.5, 10.0),
        "jumper": (1.0, 10.0),
        "leaper": (1.5, 10.0),
        "maze": (5.0, 10.0),
        "miner": (1.5, 13.0),
        "ninja": (3.5, 10.0),
        "plunder": (4.5, 30.0),
        "starpilot": (2.5, 64.0),
    },
    "hard": {
        "bigfish": (0.0, 40.0),
        "bossfight": (0.5, 13.0),
        "caveflyer": (2.0, 13.4),
        "chaser": (0.5, 14.2),
        "climber": (1.0, 12.6),
        "coinrun": (5.0, 10.0),
        "dodgeball": (1.5, 19.0),
        "fruitbot": (-0.5, 27.2),
        "heist": (2.0, 10.0),
        "jumper": (1.0, 10.0),
        "leaper": (1.5, 10.0),
        "maze": (4.0, 10.0),
        "miner": (1.5, 20.0),
        "ninja": (2.0, 10.0),
        "plunder": (3.0, 30.0),
        "starpilot": (1.5, 35.0),
    },
}


@dataclass(frozen=True)
class EpisodeStats:
    """One finished episode: which env, its undiscounted return and length, and its level seed
    (None where the env has no levels)."""

    env_index: int
    ret: float
    length: int
    level_seed: int | None


def _unknown_choice(kind: str, value, choices) -> str:
    """'unknown game 'coinrn' (did you mean 'coinrun'?); valid games: bigfish, ...'"""
    message = f"unknown {kind} {value!r}"
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    valid = ", ".join(repr(c) if c is None else str(c) for c in choices)
    return f"{message}; valid {kind}s: {valid}"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(name: str, value, low: int, high: int = _INT32_MAX) -> list[str]:
    if not _is_int(value) or not low <= value <= high:
        return [f"{name} must be an integer in [{low}, {high}], got {value!r}"]
    return []


def _check_game_and_mode(game, distribution_mode) -> list[str]:
    problems = []
    if game not in GAMES:
        problems.append(_unknown_choice("game", game, GAMES))
    if distribution_mode not in DISTRIBUTION_MODES:
        problems.append(_unknown_choice("distribution mode", distribution_mode, DISTRIBUTION_MODES))
    return problems


def normalized_return(game: str, returns, distribution_mode: str = "easy") -> float | np.ndarray:
    """(R - R_min) / (R_max - R_min) with the constants of Cobbe et al. 2019 (train-procgen).

    A scalar gives a float, an array-like gives a float64 array of the same shape.
    """
    problems = _check_game_and_mode(game, distribution_mode)
    if problems:
        raise ValueError("; ".join(problems))
    r_min, r_max = NORMALIZATION_CONSTANTS[distribution_mode][game]
    if np.ndim(returns) == 0:
        return (float(returns) - r_min) / (r_max - r_min)
    return (np.asarray(returns, dtype=np.float64) - r_min) / (r_max - r_min)


def check_actions(actions, num_envs: int, num_actions: int = NUM_ACTIONS) -> np.ndarray:
    """Actions as an integer array of shape (num_envs,) in [0, num_actions), else a ValueError.
    procgen casts to int32 and indexes its button table with it, so out-of-range values must not pass."""
    actions = np.asarray(actions)
    if actions.shape != (num_envs,) or actions.dtype.kind not in "iu":
        raise ValueError(
            f"actions must be an integer array of shape ({num_envs},), "
            f"got dtype {actions.dtype} and shape {actions.shape}"
        )
    if num_envs and (actions.min() < 0 or actions.max() >= num_actions):
        raise ValueError(f"actions must lie in [0, {num_actions}), got min {actions.min()} and max {actions.max()}")
    return actions


def _import_procgen():
    """procgen, imported on first use (it is slow to import). Its `gym` import prints gym's deprecation banner
    to stderr on every process start; procgen only uses gym's spaces, so the banner is swallowed here, where it
    comes from, instead of on every `workbench` command."""
    with contextlib.redirect_stderr(io.StringIO()):
        import procgen
    return procgen


class ProcgenVecEnv:
    """`num_envs` copies of one Procgen game, auto-resetting (gym3 semantics, see the module docstring).

    `num_levels=0` samples levels from the whole distribution; `num_levels=n>0` plays only the levels
    with seeds in [start_level, start_level + n) (the generalization protocol of Cobbe et al. 2019 trains
    on 200 easy / 500 hard levels from start_level 0). `rand_seed` seeds procgen's level sampling, so
    equal arguments give equal runs.
    """

    num_actions = NUM_ACTIONS
    observation_shape = OBS_SHAPE

    def __init__(
        self,
        game: str,
        num_envs: int = 64,
        *,
        distribution_mode: str = "easy",
        num_levels: int = 0,
        start_level: int = 0,
        rand_seed: int = 0,
        render_mode: str | None = None,
    ):
        # Check everything before starting procgen, and report every problem at once.
        problems = _check_game_and_mode(game, distribution_mode)
        problems += _check_int("num_envs", num_envs, 1)
        problems += _check_int("num_levels", num_levels, 0)
        problems += _check_int("start_level", start_level, 0)
        problems += _check_int("rand_seed", rand_seed, 0)
        if render_mode not in RENDER_MODES:
            problems.append(_unknown_choice("render mode", render_mode, RENDER_MODES))
        if problems:
            raise ValueError("invalid ProcgenVecEnv arguments: " + "; ".join(problems))

        procgen = _import_procgen()

        self.game = game
        self.num_envs = int(num_envs)
        self.distribution_mode = distribution_mode
        self.num_levels = int(num_levels)
        self.start_level = int(start_level)
        self.rand_seed = int(rand_seed)
        self.render_mode = render_mode
        self._env = procgen.ProcgenGym3Env(
            num=self.num_envs,
            env_name=game,
            distribution_mode=distribution_mode,  # procgen's own default is "hard": always pass it
            num_levels=self.num_levels,
            start_level=self.start_level,
            rand_seed=self.rand_seed,
            render_mode=render_mode,
        )
        # Running return/length of each env's current episode; float64 so long episodes do not drift.
        self._episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.closed = False

    def reset(self) -> np.ndarray:
        """The current observations, uint8 (N, 64, 64, 3). gym3 envs start on creation and cannot be
        reset, so this restarts nothing: episodes in progress carry on (and keep their statistics)."""
        _, obs, _ = self._env.observe()  # observe() returns copies: callers may keep them
        return obs["rgb"]

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[EpisodeStats]]:
        """Act in every env. Returns obs uint8 (N, 64, 64, 3) (the first obs of the next episode where
        done), reward float32 (N,), done bool (N,) and the episodes that finished on this step."""
        actions = check_actions(actions, self.num_envs)
        self._env.act(actions)
        reward, obs, done = self._env.observe()
        self._episode_returns += reward
        self._episode_lengths += 1
        finished: list[EpisodeStats] = []
        if done.any():  # per-env Python work only when episodes end
            infos = self._env.get_info()
            for i in np.flatnonzero(done):
                finished.append(
                    EpisodeStats(
                        env_index=int(i),
                        ret=float(self._episode_returns[i]),
                        length=int(self._episode_lengths[i]),
                        level_seed=int(infos[i]["prev_level_seed"]),
                    )
                )
            self._episode_returns[done] = 0.0
            self._episode_lengths[done] = 0
        return obs["rgb"], reward, done, finished

    def render(self) -> np.ndarray | None:
        """High-resolution frames uint8 (N, 512, 512, 3) when render_mode="rgb_array", else None."""
        if self.render_mode is None:
            return None
        return np.stack([info["rgb"] for info in self._env.get_info()])

    def close(self) -> None:
        if not self.closed:
            self._env.close()
            self.closed = True

    def __enter__(self) -> "ProcgenVecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ProcgenVecEnv({self.game!r}, num_envs={self.num_envs}, distribution_mode={self.distribution_mode!r}, "
            f"num_levels={self.num_levels}, start_level={self.start_level}, rand_seed={self.rand_seed})"
        )
