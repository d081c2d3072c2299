"""The digits task with a variable horizon: the toy environment of Hilton, Tang, Schulman 2023 ("Scaling
laws for single-agent reinforcement learning", arXiv 2301.13442, Sec. on the horizon), built on
scikit-learn's 8x8 handwritten digits (`sklearn.datasets.load_digits`, 1,797 images, shipped inside
scikit-learn) instead of MNIST, so nothing is downloaded.

Every step each env shows one digit, drawn uniformly from the data set, scaled 8x (nearest neighbour) to
the 64x64x3 frame every policy here reads (grey: the same value in the three channels). The action is a
guess of the label (actions 10-14 are always wrong). An episode lasts `horizon` steps and its whole reward,
the number of correct guesses, is paid on its last step: every guess's reward is delayed by up to
horizon - 1 steps, so the horizon sets how far credit must be assigned while the skill to learn (reading
digits) stays the same. horizon = 1 is a contextual bandit. A uniformly random policy gets 1/15 of the
guesses right, a perfect classifier all of them; `accuracy = return / horizon`.

Departure: the paper's exact construction on MNIST is not reproduced here (it was not in the material
available to this project); this keeps its point, a fixed perception task whose horizon is a parameter.
The interface is `ProcgenVecEnv`'s (workbench.rl.envs), as `workbench.rl.toy_env`.
"""

from __future__ import annotations

import functools

import numpy as np

from workbench.rl.envs import (
    NUM_ACTIONS,
    OBS_SHAPE,
    RENDER_MODES,
    EpisodeStats,
    check_actions,
)

NUM_CLASSES = 10
SCALE = OBS_SHAPE[0] // 8  # 8x8 digits -> 64x64 frames


@functools.lru_cache(maxsize=1)
def digit_frames() -> tuple[np.ndarray, np.ndarray]:
    """All of sklearn's digits as uint8 (1797, 64, 64, 3) frames and their int64 labels (cached)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    grey = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)            # pixel values 0..16
    frames = grey.repeat(SCALE, axis=1).repeat(SCALE, axis=2)[..., None].repeat(3, axis=-1)
    frames.setflags(write=False)
    return frames, data.target.astype(np.int64)


class DigitsVecEnv:
    """`num_envs` digit-guessing envs whose episodes all last `horizon` steps (module docstring)."""

    num_actions = NUM_ACTIONS
    observation_shape = OBS_SHAPE

    def __init__(self, num_envs: int = 64, *, horizon: int = 1, seed: int = 0, render_mode: str | None = None):
        problems = []
        for name, value, high in (("num_envs", num_envs, 2**20), ("horizon", horizon, 2**20),
                                  ("seed", seed, 2**63 - 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not (
                    (0 if name == "seed" else 1) <= value <= high):
                problems.append(f"{name} must be an integer in [{0 if name == 'seed' else 1}, {high}], got {value!r}")
        if render_mode not in RENDER_MODES:
            problems.append(f"unknown render mode {render_mode!r}; valid render modes: None, rgb_array")
        if problems:
            raise ValueError("invalid DigitsVecEnv arguments: " + "; ".join(problems))
        self.num_envs, self.horizon, self.render_mode = int(num_envs), int(horizon), render_mode
        self.frames, self.labels = digit_frames()
        self._rng = np.random.default_rng(seed)
        self._step_in_episode = 0
        self._correct = np.zeros(self.num_envs, dtype=np.float64)
        self._draw()
        self.closed = False

    def _draw(self) -> None:
        self._index = self._rng.integers(len(self.labels), size=self.num_envs)
        self._obs = self.frames[self._index]  # fancy indexing: a fresh array

    @property
    def current_labels(self) -> np.ndarray:
        """The labels of the digits shown now (for tests and oracles)."""
        return self.labels[self._index]

    def reset(self) -> np.ndarray:
        """The current observations, uint8 (N, 64, 64, 3); restarts nothing (as ProcgenVecEnv)."""
        return self._obs.copy()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[EpisodeStats]]:
        actions = check_actions(actions, self.num_envs)
        self._correct += actions == self.current_labels
        self._step_in_episode += 1
        reward = np.zeros(self.num_envs, dtype=np.float32)
        done = np.zeros(self.num_envs, dtype=bool)
        finished: list[EpisodeStats] = []
        if self._step_in_episode == self.horizon:
            reward[:], done[:] = self._correct, True
            finished = [EpisodeStats(env_index=i, ret=float(r), length=self.horizon, level_seed=None)
                        for i, r in enumerate(self._correct)]
            self._correct[:] = 0.0
            self._step_in_episode = 0
        self._draw()
        return self._obs, reward, done, finished

    def render(self) -> np.ndarray | None:
        """The observations scaled 8x to uint8 (N, 512, 512, 3) when render_mode="rgb_array", else None."""
        if self.render_mode is None:
            return None
        return self._obs.repeat(8, axis=1).repeat(8, axis=2)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> DigitsVecEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Names `make_vec_env` accepts: "digits" (horizon 1) and "digits_h<k>" for these horizons.
HORIZONS = (1, 2, 4, 8, 16, 32, 64)
DIGITS_TASKS = {("digits" if h == 1 else f"digits_h{h}"): functools.partial(DigitsVecEnv, horizon=h)
                for h in HORIZONS}
