"""Synthetic labelers: comparisons answered by a known "gold" reward instead of a person.

Gao, Schulman, Hilton (2022, arXiv 2210.10760, section 2) replace human labelers with a gold reward model so
that the true objective can be measured while a policy over-optimizes a proxy; Christiano et al. (2017,
section 3.1.1) label Atari/MuJoCo clips synthetically from the environment's true reward. Both are here:

* **Gold from the environment** (:class:`EnvGold`): a clip's gold score is the sum of the true rewards of its
  steps, ``Episode.rewards[start:start + length].sum()`` (the reward received after each action in the clip).
* **Gold from a reward model** (:class:`ModelGold`): a :class:`workbench.preferences.reward.RewardEnsemble` (for example a
  large one trained on many synthetic labels) scores clips (``clip_rewards``) or texts (``text_rewards``).

How a :class:`SyntheticLabeler` turns two gold scores into an answer:

* ``mode="deterministic"`` (Gao et al.): the higher gold score wins; equal scores (within ``tie_tolerance``)
  are answered "equal".
* ``mode="bradley_terry"``: A is preferred with probability sigma((g_A - g_B) / temperature), the labeler model
  the reward model assumes (Christiano et al. section 2.2.3); never "equal". Rankings sample a Plackett-Luce
  order (the K-item Bradley-Terry: repeatedly pick the next best with probability softmax(g / temperature)).
* ``flip_prob``: after deciding, a strict answer ("left"/"right") is flipped with this probability (label
  noise); "equal" is kept. For rankings, flip noise is not defined here (ValueError).

Labels are written through the same :class:`workbench.preferences.labels.LabelStore` as human labels, with
``label_direct(..., source="synthetic:<name>")`` (display order = canonical, so "left" means "a"). The answer
is seeded: ``seed`` and the item id determine it, so relabeling a campaign gives the same answers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODES = ("deterministic", "bradley_terry")

__all__ = ["MODES", "SyntheticLabeler", "EnvGold", "ModelGold", "label_campaign", "clip_gold_return",
           "colour_reward_episodes"]


@dataclass(frozen=True)
class SyntheticLabeler:
    """How gold scores become answers (see the module docstring). `name` goes into the label's source
    ("synthetic:<name>") and is the default labeler id."""

    name: str = "gold"
    mode: str = "deterministic"
    temperature: float = 1.0
    flip_prob: float = 0.0
    tie_tolerance: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not self.name.strip() or any(c.isspace() for c in self.name):
            problems.append(f"name must be a non-empty string without spaces, got {self.name!r}")
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature > 0):
            problems.append(f"temperature must be a number > 0, got {self.temperature!r}")
        if not (isinstance(self.flip_prob, (int, float)) and 0.0 <= self.flip_prob <= 1.0):
            problems.append(f"flip_prob must be a probability in [0, 1], got {self.flip_prob!r}")
        if not (isinstance(self.tie_tolerance, (int, float)) and self.tie_tolerance >= 0):
            problems.append(f"tie_tolerance must be a number >= 0, got {self.tie_tolerance!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            problems.append(f"seed must be an integer >= 0, got {self.seed!r}")
        if problems:
            raise ValueError("invalid SyntheticLabeler: " + "; ".join(problems))

    @property
    def source(self) -> str:
        return f"synthetic:{self.name}"

    def rng(self, item_id: int) -> np.random.Generator:
        """The generator of one item's answer: fixed by (seed, item id)."""
        return np.random.default_rng([int(self.seed), int(item_id)])

    def choose(self, gold_a: float, gold_b: float, rng: np.random.Generator) -> str:
        """"left" (A), "right" (B) or "equal", display order canonical."""
        if not (math.isfinite(gold_a) and math.isfinite(gold_b)):
            raise ValueError(f"gold scores must be finite, got {gold_a!r} and {gold_b!r}")
        if self.mode == "deterministic":
            diff = gold_a - gold_b
            if abs(diff) <= self.tie_tolerance:
                return "equal"
            choice = "left" if diff > 0 else "right"
        else:
            z = (gold_a - gold_b) / self.temperature
            p_a = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
            choice = "left" if rng.random() < p_a else "right"
        if self.flip_prob > 0 and rng.random() < self.flip_prob:
            choice = "right" if choice == "left" else "left"
        return choice

    def rank(self, gold: Sequence[float], rng: np.random.Generator) -> list[int]:
        """Canonical indices, best first. Deterministic: by descending gold, ties by index (InstructGPT's
        labelers could not tie in a ranking either). Bradley-Terry: a Plackett-Luce sample."""
        g = np.asarray(gold, dtype=np.float64)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"gold scores must be finite, got {gold!r}")
        if self.flip_prob > 0:
            raise ValueError("flip_prob is for pairwise campaigns; a ranking has no single answer to flip "
                             "(use mode='bradley_terry' with a temperature for noisy rankings)")
        if self.mode == "deterministic":
            return [int(i) for i in np.argsort(-g, kind="stable")]
        remaining, order = list(range(len(g))), []
        while remaining:
            logits = g[remaining] / self.temperature
            p = np.exp(logits - logits.max())
            pick = int(rng.choice(len(remaining), p=p / p.sum()))
            order.append(remaining.pop(pick))
        return order


def clip_gold_return(episode: Any, ref: dict) -> float:
    """The gold score of one clip: the sum of the episode's true rewards over the clip's steps."""
    from workbench.episodes.clips import check_clip_ref

    _, start, length = check_clip_ref(ref, len(episode.rewards))
    return float(np.asarray(episode.rewards[start:start + length], dtype=np.float64).sum())


class EnvGold:
    """Gold scores of clips from the environment's true reward (Episode.rewards), episodes loaded once."""

    kinds = ("clip_pair",)

    def __init__(self, store_root: str | os.PathLike | None = None, rollouts: Any = None):
        if rollouts is None:
            from workbench.episodes.rollouts import RolloutStore

            rollouts = RolloutStore(store_root)
        self.rollouts = rollouts
        self._episodes: dict[str, Any] = {}

    def _episode(self, episode_id: str):
        if episode_id not in self._episodes:
            self._episodes[episode_id] = self.rollouts.load(episode_id, hires=False)
        return self._episodes[episode_id]

    def pair_scores(self, payloads: Sequence[dict]) -> list[tuple[float, float]]:
        return [(clip_gold_return(self._episode(p["a"]["episode_id"]), p["a"]),
                 clip_gold_return(self._episode(p["b"]["episode_id"]), p["b"])) for p in payloads]

    def ranking_scores(self, payloads: Sequence[dict]) -> list[list[float]]:
        raise ValueError("the environment gold scores clips; ranking campaigns hold texts (use ModelGold with a "
                         "text reward model)")


class ModelGold:
    """Gold scores from a reward model (a RewardEnsemble): clip campaigns through `clip_rewards` on the 64x64
    observations, text campaigns (pairs and rankings) through `text_rewards`."""

    def __init__(self, ensemble: Any, store_root: str | os.PathLike | None = None, rollouts: Any = None,
                 batch_size: int = 64):
        self.ensemble, self.batch_size = ensemble, batch_size
        self.kinds = ("clip_pair",) if ensemble.kind == "clip" else ("text_pair", "ranking")
        self._rollouts, self._store_root = rollouts, store_root
        self._episodes: dict[str, Any] = {}

    def _frames(self, ref: dict) -> np.ndarray:
        from workbench.episodes.clips import clip_frames

        if self._rollouts is None:
            from workbench.episodes.rollouts import RolloutStore

            self._rollouts = RolloutStore(self._store_root)
        if ref["episode_id"] not in self._episodes:
            self._episodes[ref["episode_id"]] = self._rollouts.load(ref["episode_id"], hires=False)
        return clip_frames(self._episodes[ref["episode_id"]], ref, hires=False)

    def _clip_scores(self, refs: Sequence[dict]) -> np.ndarray:
        import torch

        out = []
        for lo in range(0, len(refs), self.batch_size):
            chunk = refs[lo:lo + self.batch_size]
            lengths = {r["length"] for r in chunk}
            if len(lengths) == 1:
                clips = torch.from_numpy(np.stack([self._frames(r) for r in chunk]))
                out.append(self.ensemble.clip_rewards(clips).double().numpy())
            else:  # clips of different lengths: one at a time
                out.append(np.array([float(self.ensemble.clip_rewards(torch.from_numpy(self._frames(r))[None])[0])
                                     for r in chunk]))
        return np.concatenate(out) if out else np.zeros(0)

    def pair_scores(self, payloads: Sequence[dict]) -> list[tuple[float, float]]:
        if self.ensemble.kind == "clip":
            a = self._clip_scores([p["a"] for p in payloads])
            b = self._clip_scores([p["b"] for p in payloads])
        else:
            prompts = [p.get("prompt") for p in payloads]
            a = self.ensemble.text_rewards(prompts, [p["a"] for p in payloads]).double().numpy()
            b = self.ensemble.text_rewards(prompts, [p["b"] for p in payloads]).double().numpy()
        return list(zip(a.tolist(), b.tolist()))

    def ranking_scores(self, payloads: Sequence[dict]) -> list[list[float]]:
        if self.ensemble.kind != "text":
            raise ValueError("ranking campaigns hold texts; this gold reward model scores clips")
        return [self.ensemble.text_rewards([p["prompt"]] * len(p["responses"]), p["responses"]).double().tolist()
                for p in payloads]


def label_campaign(campaign: str, labeler: SyntheticLabeler, gold: Any = None, *,
                   store_root: str | os.PathLike | None = None, labeler_id: str | None = None,
                   item_ids: Iterable[int] | None = None, limit: int | None = None) -> int:
    """Label every item of `campaign` that `labeler_id` (default ``labeler.name``) has not labeled yet (or only
    `item_ids`, at most `limit`), with gold scores from `gold` (default: :class:`EnvGold` for clip campaigns).
    Each label is written by ``LabelStore.label_direct(..., source=labeler.source)`` in its own durable
    transaction. Returns the number of labels written."""
    from workbench.preferences.labels import LabelStore

    store = LabelStore(store_root)
    camp = store.get_campaign(campaign)
    if gold is None:
        if camp.kind != "clip_pair":
            raise ValueError(f"campaign {campaign!r} is a {camp.kind} campaign: the environment gold only scores "
                             "clips; pass gold=ModelGold(text_reward_model)")
        gold = EnvGold(store_root)
    if camp.kind not in gold.kinds:
        raise ValueError(f"campaign {campaign!r} is a {camp.kind} campaign but this gold scores {gold.kinds} "
                         "campaigns")
    who = labeler_id or labeler.name
    done = {lab.item_id for lab in store.labels(campaign, labeler=who)}
    wanted = None if item_ids is None else {int(i) for i in item_ids}
    todo = [(i, p) for i, p in store.items(campaign) if i not in done and (wanted is None or i in wanted)]
    if limit is not None:
        todo = todo[:max(0, int(limit))]
    if not todo:
        return 0
    payloads = [p for _, p in todo]
    written = 0
    if camp.kind == "ranking":
        for (item_id, _), scores in zip(todo, gold.ranking_scores(payloads)):
            order = labeler.rank(scores, labeler.rng(item_id))
            store.label_direct(campaign, item_id, who, None, ranking=order, source=labeler.source)
            written += 1
        return written
    for (item_id, _), (g_a, g_b) in zip(todo, gold.pair_scores(payloads)):
        choice = labeler.choose(g_a, g_b, labeler.rng(item_id))
        # No graded-scale answer: a gold score difference has no calibrated "much better" vs "slightly better".
        store.label_direct(campaign, item_id, who, choice, source=labeler.source)
        written += 1
    return written


def colour_reward_episodes(store_root=None, *, n_episodes: int = 24, length: int = 8, seed: int = 0):
    """A reward-learning task with a known answer: colour-cue frames (4 colours) saved as episodes whose
    per-step true reward is the colour index (0..3), a function of the pixels alone (the toy env's own reward
    depends on the action, which a frame does not show). Label clip pairs of them with the gold labeler and a
    reward model should learn to order the colours. Returns (episode ids, frames (E, T, 64, 64, 3),
    true per-step rewards (E, T))."""
    import numpy as np

    from workbench.episodes.rollouts import Episode, RolloutStore
    from workbench.rl.toy_env import ColourCueVecEnv

    env = ColourCueVecEnv(n_episodes, num_colours=4, seed=seed)
    frames, colours = [], []
    for _ in range(length):
        frames.append(env.reset())
        colours.append(env._colours.copy())
        env.step(np.zeros(n_episodes, dtype=np.int64))
    frames, colours = np.stack(frames, 1), np.stack(colours, 1)
    reward_of_colour = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    store = RolloutStore(store_root)
    ids = []
    for e in range(n_episodes):
        episode = Episode(frames=frames[e], actions=np.zeros(length, np.int64),
                          probs=np.full((length, 15), 1 / 15, np.float32), values=np.full(length, np.nan, np.float32),
                          rewards=reward_of_colour[colours[e]], dones=np.arange(length) == length - 1,
                          env="colour_cue", level_seed=None, levels="test", distribution_mode="easy", policy="random")
        ids.append(store.save(episode))
    return ids, frames, reward_of_colour[colours]
