"""Choosing which pairs of rollout clips a human is asked to compare (headless).

A *clip* is a fixed-length segment of a recorded episode, referenced as
``{"episode_id": str, "start": int, "length": int}`` (frames ``start .. start+length-1`` of the episode
in :class:`workbench.episodes.rollouts.RolloutStore`). A clip-pair payload, as stored by
:class:`workbench.preferences.labels.LabelStore` for a ``clip_pair`` campaign, is
``{"a": clip, "b": clip, "meta": {...}}``.

Conventions follow Christiano et al. (2017), "Deep reinforcement learning from human preferences":

* clips are 25 steps long by default -- about 1.7 s at the 15 fps the clips are shown at (Sec. 3.1.2 and
  App. A.2 use 25-step Atari segments; the labeler sees them as short looping videos);
* ``strategy="uniform"`` draws each clip uniformly among all valid segments of the given episodes (an
  episode contributes ``T - length + 1`` start positions, so long episodes are not under-sampled), and
  never offers the same unordered pair twice in one call;
* ``strategy="disagreement"`` is their Sec. 2.2.4 query selection: draw many candidate pairs uniformly,
  score each with the reward-model ensemble ("the variance of the predictions across ensemble members")
  and keep the ``n_pairs`` with the highest score. The paper notes this heuristic helps in some tasks and
  hurts in others; uniform sampling is the default. The number of candidates is not fixed by the paper;
  ours defaults to 10 per pair asked for.

Episodes shorter than ``length`` are left out (a comparison of clips of different lengths would favour
the longer one for any reward that is a sum over steps); if none is long enough that is a ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

DEFAULT_CLIP_LENGTH = 25          # Christiano et al. (2017), App. A.2
CLIP_FPS = 15                     # shown at 15 frames per second
STRATEGIES = ("uniform", "disagreement")
DEFAULT_CANDIDATES_PER_PAIR = 10

Scorer = Callable[[list[dict]], Sequence[float]]


def _episode_ref(item: Any) -> tuple[str, int]:
    """(id, length) of a RolloutInfo, an Episode or a mapping with "id"/"episode_id" and "length"."""
    if isinstance(item, dict):
        ident = item.get("id", item.get("episode_id"))
        length = item.get("length")
    else:
        ident = getattr(item, "id", None)
        length = getattr(item, "length", None)
    if not isinstance(ident, str) or not ident:
        raise ValueError(f"every episode needs an id (save it to a RolloutStore first); got {item!r:.120}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"episode {ident!r} has no valid length (got {length!r})")
    return ident, int(length)


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


class _Segments:
    """All valid (episode, start) segments of one length, indexable 0..total-1 (uniform sampling)."""

    def __init__(self, episodes: Iterable[Any], length: int):
        refs = [_episode_ref(item) for item in episodes]
        if not refs:
            raise ValueError("no episodes given: record some rollouts first (workbench rollout ...)")
        seen: set[str] = set()
        self.ids: list[str] = []
        counts: list[int] = []
        for ident, ep_len in refs:
            if ident in seen:  # the same episode twice would double its weight
                continue
            seen.add(ident)
            if ep_len >= length:
                self.ids.append(ident)
                counts.append(ep_len - length + 1)
        if not self.ids:
            longest = max(ep_len for _, ep_len in refs)
            raise ValueError(f"no episode has {length} steps (the longest has {longest}): "
                             f"choose a clip length <= {longest} or record longer episodes")
        self.length = length
        self.cumulative = np.cumsum(counts)
        self.total = int(self.cumulative[-1])

    def segment(self, index: int) -> tuple[str, int]:
        episode = int(np.searchsorted(self.cumulative, index, side="right"))
        before = int(self.cumulative[episode - 1]) if episode else 0
        return self.ids[episode], index - before

    def clip(self, index: int) -> dict:
        episode_id, start = self.segment(index)
        return {"episode_id": episode_id, "start": start, "length": self.length}


def _uniform_pairs(segments: _Segments, n: int, rng: np.random.Generator, strategy: str) -> list[dict]:
    distinct = math.comb(segments.total, 2)
    if n > distinct:
        raise ValueError(f"asked for {n} distinct pairs but the episodes only have {segments.total} "
                         f"segments of {segments.length} steps ({distinct} distinct pairs): ask for fewer "
                         "pairs, use shorter clips or record more episodes")
    chosen: set[tuple[int, int]] = set()
    payloads: list[dict] = []
    while len(payloads) < n:
        # Draw in batches (fast for many pairs); rejections (same segment, a repeated pair) are rare
        # unless n is close to the number of distinct pairs, where this still terminates.
        batch = rng.integers(0, segments.total, size=(max(16, 2 * (n - len(payloads))), 2))
        for i, j in batch.tolist():
            key = (min(i, j), max(i, j))
            if i == j or key in chosen:
                continue
            chosen.add(key)
            payloads.append({"a": segments.clip(i), "b": segments.clip(j), "meta": {"strategy": strategy}})
            if len(payloads) == n:
                break
    return payloads


def sample_clip_pairs(
    rollout_infos_or_episodes: Iterable[Any],
    n_pairs: int,
    length: int = DEFAULT_CLIP_LENGTH,
    rng: np.random.Generator | int | None = None,
    strategy: str = "uniform",
    scorer: Scorer | None = None,
    candidates: int | None = None,
) -> list[dict]:
    """``n_pairs`` clip-pair payloads (``{"a": clip, "b": clip, "meta": {...}}``) from the given episodes.

    ``rollout_infos_or_episodes``: RolloutInfo or saved Episode objects (anything with ``id`` and
    ``length``). ``strategy="uniform"``: random pairs of random segments (see the module docstring).
    ``strategy="disagreement"``: ``candidates`` uniform pairs (default ``10 * n_pairs``, at most the number
    of distinct pairs) are scored by ``scorer(payloads) -> one float per payload`` (higher = more worth
    asking, e.g. :func:`ensemble_disagreement_scorer`) and the ``n_pairs`` best are returned, best first,
    each with its ``meta["score"]``.
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be an integer >= 1 (steps per clip), got {length!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    n_pairs, length = int(n_pairs), int(length)
    generator = _rng(rng)
    segments = _Segments(rollout_infos_or_episodes, length)

    if strategy == "uniform":
        if scorer is not None or candidates is not None:
            raise ValueError('scorer and candidates are for strategy="disagreement" only')
        return _uniform_pairs(segments, n_pairs, generator, "uniform")

    if scorer is None or not callable(scorer):
        raise ValueError('strategy="disagreement" needs scorer=callable(list of pair payloads) -> scores, '
                         "e.g. ensemble_disagreement_scorer(ensemble, rollout_store)")
    distinct = math.comb(segments.total, 2)
    if candidates is None:
        candidates = min(DEFAULT_CANDIDATES_PER_PAIR * n_pairs, distinct)
    if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)) or candidates < n_pairs:
        raise ValueError(f"candidates must be an integer >= n_pairs ({n_pairs}), got {candidates!r}")
    pool = _uniform_pairs(segments, int(candidates), generator, "disagreement")
    scores = np.asarray(scorer([dict(p) for p in pool]), dtype=np.float64).reshape(-1)
    if scores.shape != (len(pool),):
        raise ValueError(f"the scorer returned {scores.size} scores for {len(pool)} candidate pairs")
    if not np.all(np.isfinite(scores)):
        raise ValueError("the scorer returned a NaN or infinite score")
    best = np.argsort(-scores, kind="stable")[:n_pairs]  # ties: the earlier candidate first
    out = []
    for index in best.tolist():
        payload = pool[index]
        payload["meta"] = {"strategy": "disagreement", "score": float(scores[index]), "candidates": len(pool)}
        out.append(payload)
    return out


# ---- reading clips -------------------------------------------------------------------------------

def check_clip_ref(ref: Any, episode_length: int | None = None) -> tuple[str, int, int]:
    """(episode_id, start, length) of a clip reference, or a ValueError saying what is wrong."""
    if not isinstance(ref, dict):
        raise ValueError(f"a clip must be a dict with episode_id, start, length; got {type(ref).__name__}")  # noqa: TRY004
    episode_id, start, length = ref.get("episode_id"), ref.get("start"), ref.get("length")
    if not isinstance(episode_id, str) or not episode_id:
        raise ValueError(f"clip episode_id must be a non-empty string, got {episode_id!r}")
    for name, value, low in (("start", start, 0), ("length", length, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"clip {name} must be an integer >= {low}, got {value!r}")
    if episode_length is not None and start + length > episode_length:
        raise ValueError(f"clip {start}..{start + length - 1} is past the end of episode {episode_id!r} "
                         f"({episode_length} steps)")
    return episode_id, int(start), int(length)


def clip_frames(episode: Any, ref: dict, *, hires: bool = True) -> np.ndarray:
    """The clip's frames from a loaded Episode: ``(length, H, W, 3)`` uint8 -- the high-resolution render
    when ``hires`` and the episode has one, else the 64x64 observations."""
    _, start, length = check_clip_ref(ref, len(episode.frames))
    source = getattr(episode, "hires", None) if hires else None
    if source is not None and len(source) >= start + length:
        return np.stack([np.asarray(source.frame(t)) for t in range(start, start + length)])
    return np.asarray(episode.frames[start:start + length])


def ensemble_disagreement_scorer(ensemble: Any, rollout_store: Any, *, batch_size: int = 64) -> Scorer:
    """A scorer for ``strategy="disagreement"``: ``ensemble.disagreement(clips_a, clips_b)`` (the std over
    ensemble members of P(A > B), :class:`workbench.preferences.reward.RewardEnsemble`) on the 64x64 observations the
    reward model sees. Episodes are loaded once per call and clips scored ``batch_size`` pairs at a time."""
    if not hasattr(ensemble, "disagreement"):
        raise ValueError("ensemble must have a disagreement(clips_a, clips_b) method (a RewardEnsemble)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def score(payloads: list[dict]) -> np.ndarray:
        import torch  # only when a reward model is used

        episodes: dict[str, Any] = {}

        def frames(ref: dict) -> np.ndarray:
            episode_id = ref["episode_id"]
            if episode_id not in episodes:
                episodes[episode_id] = rollout_store.load(episode_id, hires=False)
            return clip_frames(episodes[episode_id], ref, hires=False)

        out = []
        with torch.no_grad():
            for lo in range(0, len(payloads), batch_size):
                chunk = payloads[lo:lo + batch_size]
                clips_a = torch.from_numpy(np.stack([frames(p["a"]) for p in chunk]))
                clips_b = torch.from_numpy(np.stack([frames(p["b"]) for p in chunk]))
                out.append(np.asarray(ensemble.disagreement(clips_a, clips_b).detach().cpu(), dtype=np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    return score
