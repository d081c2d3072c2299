"""Recording a demonstrator's episodes: the same episodes a person leaves by playing in the browser
(widgets/procgen_player.py), made by a scripted stand-in for tests, notebooks and benchmarks.

`HumanRecorder` is what the browser player drives: one env on one level, `step(action)` per frame, and a
finished episode saved to the `RolloutStore` as policy "human" with the level seed (and the player's login in
the `DemonstrationStore`). `record_demonstrator` plays a scripted `act(obs) -> action` through the same path.
"""

from __future__ import annotations

import numpy as np

from workbench.demonstrations.sets import DemonstrationStore
from workbench.episodes.rollouts import Episode, RolloutStore
from workbench.rl.env_registry import TEST_TASKS, make_vec_env
from workbench.rl.envs import NUM_ACTIONS
from workbench.rl.toy_env import PALETTE

HUMAN_PROBS = np.full(NUM_ACTIONS, np.nan, np.float32)  # a person's action distribution is unknown


class HumanRecorder:
    """One game played step by step on level `level_seed`, saved when it ends.

    `hires`: keep the game's 512x512 render (what the player shows) and store it with the episode."""

    def __init__(self, env: str = "coinrun", level_seed: int = 0, *, distribution_mode: str = "easy",
                 store_root=None, login: str | None = None, hires: bool = True, max_steps: int | None = None):
        if not isinstance(level_seed, (int, np.integer)) or not 0 <= level_seed < 2**31:
            raise ValueError(f"level_seed must be a whole number in [0, 2^31) (got {level_seed!r})")
        self.env_name, self.level_seed, self.distribution_mode = env, int(level_seed), distribution_mode
        self.store_root, self.login, self.hires, self.max_steps = store_root, login, hires, max_steps
        self.saved: list[str] = []
        self._env = make_vec_env(env, 1, distribution_mode=distribution_mode, num_levels=1,
                                 start_level=self.level_seed, rand_seed=self.level_seed,
                                 render_mode="rgb_array" if hires else None)
        self.restart()

    def restart(self) -> None:
        """Drop the episode in progress (unsaved) and start over on the same level."""
        if getattr(self, "_frames", None):
            self._env.close()
            self._env = make_vec_env(self.env_name, 1, distribution_mode=self.distribution_mode, num_levels=1,
                                     start_level=self.level_seed, rand_seed=self.level_seed,
                                     render_mode="rgb_array" if self.hires else None)
        self._obs = self._env.reset()
        self._frames, self._actions, self._rewards, self._hires = [], [], [], []
        self._render = self._env.render()[0] if self.hires else None

    @property
    def observation(self) -> np.ndarray:
        return self._obs[0]

    def render(self) -> np.ndarray:
        """The current 512x512 render (the 64x64 observation scaled up when hires is off)."""
        return self._render if self._render is not None else self._obs[0].repeat(8, 0).repeat(8, 1)

    @property
    def steps(self) -> int:
        return len(self._actions)

    @property
    def episode_return(self) -> float:
        return float(sum(self._rewards))

    def step(self, action: int) -> str | None:
        """Play one action; returns the saved episode's id when this step ended the episode, else None."""
        action = int(action)
        if not 0 <= action < NUM_ACTIONS:
            raise ValueError(f"action must be in [0, {NUM_ACTIONS}) (got {action})")
        self._frames.append(self._obs[0])
        if self.hires:
            self._hires.append(self._render)
        obs, reward, done, _ = self._env.step(np.array([action]))
        self._actions.append(action)
        self._rewards.append(float(reward[0]))
        self._obs = obs
        self._render = self._env.render()[0] if self.hires else None
        if done[0] or (self.max_steps is not None and self.steps >= self.max_steps):
            episode_id = self._save(bool(done[0]))
            self.restart()
            return episode_id
        return None

    def _save(self, ended: bool) -> str:
        t = len(self._actions)
        dones = np.zeros(t, bool)
        dones[-1] = ended
        levels = "seed" if self.env_name not in TEST_TASKS else "train"
        episode = Episode(frames=np.stack(self._frames), actions=np.array(self._actions),
                          probs=np.tile(HUMAN_PROBS, (t, 1)), values=np.full(t, np.nan, np.float32),
                          rewards=np.array(self._rewards, np.float32), dones=dones, env=self.env_name,
                          level_seed=self.level_seed if levels == "seed" else None, levels=levels,
                          distribution_mode=self.distribution_mode, policy="human")
        episode_id = RolloutStore(self.store_root).save(episode, np.stack(self._hires) if self.hires else None)
        demos = DemonstrationStore(self.store_root)
        demos.mark_human(episode_id, self.login)
        demos.close()
        self.saved.append(episode_id)
        return episode_id

    def close(self) -> None:
        self._env.close()


def colour_cue_demonstrator(accuracy: float = 1.0, seed: int = 0):
    """A scripted demonstrator of the colour-cue task: reads the frame's colour (the palette entry nearest its
    mean pixel) and presses its index with probability `accuracy`, otherwise a uniformly random action. Its
    expected reward per step is accuracy + (1 - accuracy) / 15."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1] (got {accuracy})")
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> int:
        colour = int(np.argmin(((PALETTE.astype(float) - obs.reshape(-1, 3).mean(0)) ** 2).sum(1)))
        return colour if rng.random() < accuracy else int(rng.integers(NUM_ACTIONS))

    return act


def record_demonstrator(act, env: str, *, episodes: int, level_seeds=None, store_root=None,
                        login: str | None = "scripted-demonstrator", hires: bool = False,
                        max_steps: int | None = None, distribution_mode: str = "easy") -> list[str]:
    """Play `episodes` episodes with `act(obs) -> action` through `HumanRecorder`; returns the episode ids.
    Level seeds cycle through `level_seeds` (default 0, 1, 2, ...)."""
    seeds = list(level_seeds) if level_seeds is not None else list(range(episodes))
    ids = []
    for i in range(episodes):
        recorder = HumanRecorder(env, seeds[i % len(seeds)], distribution_mode=distribution_mode,
                                 store_root=store_root, login=login, hires=hires, max_steps=max_steps)
        try:
            while not recorder.saved:
                recorder.step(act(recorder.observation))
        finally:
            recorder.close()
        ids.extend(recorder.saved)
    return ids


__all__ = ["HumanRecorder", "colour_cue_demonstrator", "record_demonstrator"]
