"""The MineRL competition's two tracks as protocols for learning from demonstrations on Procgen.

MineRL 2020 (Guss et al. 2021, arXiv 2101.11071): participants learn from human demonstrations under a limited
environment sample budget (the main track: 8 million environment samples, trained from scratch on a held-out
dataset/environment pair), and in a second, minor track without any environment interaction except at test
time. Here a protocol states the environment budget of training (0 = demonstrations only), counts the env
steps a submitted run used (the run itself and every `init_run` it started from: a BC run uses none, PPO/PPG
fine-tuning its own steps) and, when within budget, scores the run on held-out levels: the unrestricted level
distribution, as the Procgen generalization protocol's test set (workbench.rl.evaluate). Not reproduced:
MineRL's hardware and 4-day limits, its texture changes and action/observation obfuscation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.rl.evaluate import evaluate_run
from workbench.storage.runs import RunStore

MINERL_ENV_BUDGET = 8_000_000   # MineRL 2020's main track: 8M environment samples


@dataclass(frozen=True)
class DemonstrationTrack:
    name: str
    env_budget: int             # env steps allowed in training; 0 = demonstrations only
    description: str = ""

    def with_budget(self, env_budget: int) -> DemonstrationTrack:
        """The same track with a stated budget (a small task needs far fewer than MineRL's 8M)."""
        if self.env_budget == 0:
            raise ValueError(f"track {self.name!r} allows no environment interaction; its budget stays 0")
        if not isinstance(env_budget, int) or env_budget < 1:
            raise ValueError(f"env_budget must be a whole number >= 1 (got {env_budget!r})")
        return DemonstrationTrack(self.name, env_budget, self.description)


TRACKS = {t.name: t for t in (
    DemonstrationTrack("minerl-limited-budget", MINERL_ENV_BUDGET,
                       "MineRL 2020 main track: demonstrations plus a limited environment budget (8M steps)"),
    DemonstrationTrack("minerl-demonstrations-only", 0,
                       "MineRL 2020 minor track: demonstrations only, no environment interaction in training"),
)}


def get_track(name: str, env_budget: int | None = None) -> DemonstrationTrack:
    if name not in TRACKS:
        raise ValueError(f"unknown track {name!r}; valid: {', '.join(TRACKS)}")
    track = TRACKS[name]
    return track if env_budget is None else track.with_budget(env_budget)


def env_steps_used(run_id: str, store: RunStore) -> int:
    """Env steps spent training `run_id` and the runs it was initialized from (`init_run`, recursively)."""
    used, seen = 0, set()
    while run_id is not None:
        if run_id in seen:
            raise ValueError(f"runs initialize each other in a cycle through {run_id}")
        seen.add(run_id)
        info = store.get_run(run_id)
        if info.algo != "bc":  # behavioural cloning consumes demonstrations, not environment steps
            latest = store.latest_checkpoint(run_id)
            used += 0 if latest is None else int(latest[0])
        run_id = info.config.get("init_run")
    return used


def score_track(track: DemonstrationTrack | str, run_id: str, *, store: RunStore | None = None,
                episodes: int = 100, num_envs: int = 64, seed: int = 0, device: str = "auto") -> dict:
    """The run's score under the track: ValueError when it used more env steps than the track allows; else
    its mean return (and normalized return, for Procgen games) on held-out levels, with the train levels'."""
    track = get_track(track) if isinstance(track, str) else track
    store = store or RunStore()
    used = env_steps_used(run_id, store)
    if used > track.env_budget:
        raise ValueError(f"run {run_id} used {used:,} environment steps in training; track {track.name!r} allows "
                         f"{track.env_budget:,}" + (" (demonstrations only)" if track.env_budget == 0 else ""))
    test = evaluate_run(run_id, levels="test", episodes=episodes, store=store, num_envs=num_envs, seed=seed,
                        device=device)
    train = evaluate_run(run_id, levels="train", episodes=episodes, store=store, num_envs=num_envs, seed=seed,
                         device=device)
    score = {"track": track.name, "run_id": run_id, "env_budget": track.env_budget, "env_steps_used": used,
             "test_return": test.mean_return, "test_return_se": test.stderr_return,
             "train_return": train.mean_return}
    if not np.isnan(test.normalized_return):
        score["test_normalized"] = test.normalized_return
    return score


__all__ = ["MINERL_ENV_BUDGET", "TRACKS", "DemonstrationTrack", "env_steps_used", "get_track", "score_track"]
