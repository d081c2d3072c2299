"""A tiny image task with a known optimum, for tests that an agent learns at all.

Each step every env shows a 64x64 image filled with one of `num_colours` colours plus a little pixel
noise; the rewarded action is the colour's index (reward 1, else 0). Colours are drawn i.i.d. each step,
so the task is a contextual bandit dressed as an episodic image env: a policy that ignores the pixels
earns episode_length / 15 per episode on average, one that reads them earns episode_length.

The interface is `ProcgenVecEnv`'s (workbench.rl.envs): auto-reset, the same 4-tuple from step() and
EpisodeStats for finished episodes (level_seed None: there are no levels), and reset() returns the
current observations without restarting anything, as gym3 envs do.
"""

from __future__ import annotations

import numpy as np

from workbench.rl.envs import (
    NUM_ACTIONS,
    OBS_SHAPE,
    RENDER_MODES,
    EpisodeStats,
    check_actions,
)

# Well separated colours, channels inside [40, 230] so that noise up to 25 never clips.
PALETTE = np.array(
    [
        (220, 40, 40),    # red
        (40, 180, 40),    # green
        (40, 80, 220),    # blue
        (230, 210, 40),   # yellow
        (200, 60, 200),   # magenta
        (40, 200, 200),   # cyan
        (230, 130, 40),   # orange
        (120, 60, 180),   # purple
        (150, 230, 90),   # lime
        (140, 90, 50),    # brown
        (230, 140, 170),  # pink
        (40, 110, 110),   # teal
        (120, 120, 40),   # olive
        (200, 200, 200),  # light grey
        (80, 80, 80),     # dark grey
    ],
    dtype=np.uint8,
)
# Noisy frames are precomputed: a step then costs one gather instead of drawing 12k random numbers per env.
_NOISE_FRAMES_PER_COLOUR = 16


class ColourCueVecEnv:
    """`num_envs` colour-cue envs; all episodes last exactly `episode_length` steps (so all envs are done
    on the same steps). `noise` is the half-width of the uniform integer pixel noise. `first_colour` picks which
    palette colours are shown (`PALETTE[first_colour:first_colour + num_colours]`): a shifted colour set for
    out-of-distribution tests (workbench.safety.ood); the rewarded action stays the index within that set."""

    num_actions = NUM_ACTIONS
    observation_shape = OBS_SHAPE

    def __init__(
        self,
        num_envs: int = 64,
        *,
        num_colours: int = 4,
        first_colour: int = 0,
        episode_length: int = 8,
        noise: int = 8,
        seed: int = 0,
        render_mode: str | None = None,
    ):
        problems = []

        def check_int(name, value, low, high):
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            if not ok or not low <= value <= high:
                problems.append(f"{name} must be an integer in [{low}, {high}], got {value!r}")

        check_int("num_envs", num_envs, 1, 2**20)
        check_int("num_colours", num_colours, 1, len(PALETTE))  # each colour needs its own action
        check_int("first_colour", first_colour, 0, len(PALETTE) - 1)
        if not problems and first_colour + num_colours > len(PALETTE):
            problems.append(f"first_colour + num_colours must be at most {len(PALETTE)} (the palette's size), "
                            f"got {first_colour} + {num_colours}")
        check_int("episode_length", episode_length, 1, 2**31 - 1)
        check_int("noise", noise, 0, 25)  # palette channels lie in [40, 230]: the noise never clips
        check_int("seed", seed, 0, 2**63 - 1)
        if render_mode not in RENDER_MODES:
            problems.append(f"unknown render mode {render_mode!r}; valid render modes: None, rgb_array")
        if problems:
            raise ValueError("invalid ColourCueVecEnv arguments: " + "; ".join(problems))

        self.num_envs = int(num_envs)
        self.num_colours = int(num_colours)
        self.episode_length = int(episode_length)
        self.noise = int(noise)
        self.render_mode = render_mode
        self.palette = PALETTE[first_colour: first_colour + self.num_colours]
        self._rng = np.random.default_rng(seed)

        # frames[c, k] = colour c plus noise pattern k.
        noise_patterns = self._rng.integers(
            -self.noise, self.noise + 1, size=(_NOISE_FRAMES_PER_COLOUR, *OBS_SHAPE), dtype=np.int16
        )
        frames = self.palette.astype(np.int16)[:, None, None, None, :] + noise_patterns[None]
        self._frames = np.clip(frames, 0, 255).astype(np.uint8)

        self._step_in_episode = 0
        self._episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self._colours, self._obs = self._draw_observations()
        self.closed = False

    def _draw_observations(self) -> tuple[np.ndarray, np.ndarray]:
        colours = self._rng.integers(self.num_colours, size=self.num_envs)
        patterns = self._rng.integers(_NOISE_FRAMES_PER_COLOUR, size=self.num_envs)
        return colours, self._frames[colours, patterns]  # fancy indexing: a fresh array

    def reset(self) -> np.ndarray:
        """The current observations, uint8 (N, 64, 64, 3); restarts nothing (as ProcgenVecEnv)."""
        return self._obs.copy()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[EpisodeStats]]:
        actions = check_actions(actions, self.num_envs)
        reward = (actions == self._colours).astype(np.float32)
        self._episode_returns += reward
        self._step_in_episode += 1
        finished: list[EpisodeStats] = []
        if self._step_in_episode == self.episode_length:
            done = np.ones(self.num_envs, dtype=bool)
            finished = [
                EpisodeStats(env_index=i, ret=float(r), length=self.episode_length, level_seed=None)
                for i, r in enumerate(self._episode_returns)
            ]
            self._episode_returns[:] = 0.0
            self._step_in_episode = 0
        else:
            done = np.zeros(self.num_envs, dtype=bool)
        self._colours, self._obs = self._draw_observations()
        return self._obs, reward, done, finished

    def render(self) -> np.ndarray | None:
        """The observations scaled 8x to uint8 (N, 512, 512, 3) when render_mode="rgb_array", else None."""
        if self.render_mode is None:
            return None
        return self._obs.repeat(8, axis=1).repeat(8, axis=2)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "ColourCueVecEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ColourChoiceVecEnv(ColourCueVecEnv):
    """colour_cue with observations the agent controls, for RL against a reward model of the frames.

    In colour_cue the frames are drawn at random whatever the agent does, so no policy can change what an
    observation-based reward model sees. Here the next frame shows colour ``action % num_colours`` (the
    first frame of an episode is random), and the env reward of step t is 1 when frame t shows colour
    ``gold_colour`` (a reward of the state the action was chosen on, as RL against a reward model scores
    r(frames[t]), see workbench.preferences.rlhf). A uniformly random policy shows colour 0 after 4 of 15 actions;
    the best policy earns episode_length - 1 per episode (the first frame is random).
    """

    def __init__(self, num_envs: int = 64, *, gold_colour: int = 0, **kwargs):
        super().__init__(num_envs, **kwargs)
        if not 0 <= gold_colour < self.num_colours:
            raise ValueError(f"gold_colour must be in [0, {self.num_colours}) (got {gold_colour})")
        self.gold_colour = int(gold_colour)

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[EpisodeStats]]:
        actions = check_actions(actions, self.num_envs)
        reward = (self._colours == self.gold_colour).astype(np.float32)
        self._episode_returns += reward
        self._step_in_episode += 1
        done = np.zeros(self.num_envs, dtype=bool)
        finished: list[EpisodeStats] = []
        colours = actions % self.num_colours
        if self._step_in_episode == self.episode_length:
            done[:] = True
            finished = [EpisodeStats(env_index=i, ret=float(r), length=self.episode_length, level_seed=None)
                        for i, r in enumerate(self._episode_returns)]
            self._episode_returns[:] = 0.0
            self._step_in_episode = 0
            colours = self._rng.integers(self.num_colours, size=self.num_envs)
        patterns = self._rng.integers(_NOISE_FRAMES_PER_COLOUR, size=self.num_envs)
        self._colours, self._obs = colours, self._frames[colours, patterns]
        return self._obs, reward, done, finished
