"""Model suggestions for labeling: a saved reward model's predicted preference on one item, with its
confidence, and the items ordered by the ensemble's disagreement (Christiano et al. 2017, arXiv 1706.03741,
Sec. 2.2.4: query the pairs where the members disagree most).

A suggestion is shown to a labeler only AFTER they answer (it must not anchor them), or to an admin
(widgets/labeling.py); this module only computes it. Pairs only (clip_pair or text_pair items)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Suggestion:
    prob_a: float  # the ensemble's P(a preferred over b): the mean of its members' probabilities
    disagreement: float  # std over members of P(a > b) (0 for one member)

    @property
    def preferred(self) -> str:
        return "a" if self.prob_a > 0.5 else "b" if self.prob_a < 0.5 else "equal"

    @property
    def confidence(self) -> float:
        """The model's probability of its own suggestion, max(P, 1 - P)."""
        return max(self.prob_a, 1.0 - self.prob_a)


def _member_probs(ensemble: Any, payloads: Sequence[dict], rollout_store: Any = None) -> np.ndarray:
    """(k members, B pairs) P(a > b) of each member."""
    import torch

    if not payloads:
        return np.zeros((len(ensemble), 0))
    if any("a" not in p or "b" not in p for p in payloads):
        raise ValueError("model suggestions are for pairs (items with 'a' and 'b'), not rankings")
    if ensemble.kind == "text":
        probs = ensemble.text_member_probs([p.get("prompt") for p in payloads], [p["a"] for p in payloads],
                                           [p["b"] for p in payloads])
    else:
        if rollout_store is None:
            raise ValueError("a clip reward model scores clips: give the rollout store they come from")
        from workbench.episodes.clips import clip_frames

        episodes: dict[str, Any] = {}

        def frames(ref: dict) -> np.ndarray:
            if ref["episode_id"] not in episodes:
                episodes[ref["episode_id"]] = rollout_store.load(ref["episode_id"], hires=False)
            return clip_frames(episodes[ref["episode_id"]], ref, hires=False)

        with torch.no_grad():
            probs = ensemble.member_probs(torch.from_numpy(np.stack([frames(p["a"]) for p in payloads])),
                                          torch.from_numpy(np.stack([frames(p["b"]) for p in payloads])))
    return np.asarray(probs.detach().cpu(), dtype=np.float64)


def suggest(ensemble: Any, payloads: Sequence[dict], *, rollout_store: Any = None) -> list[Suggestion]:
    """The reward model's suggestion for each pair payload (canonical ``a``/``b``)."""
    probs = _member_probs(ensemble, payloads, rollout_store)
    return [Suggestion(float(p.mean()), float(p.std())) for p in probs.T]


def disagreement_scorer(ensemble: Any, rollout_store: Any = None) -> Callable[[list[dict]], np.ndarray]:
    """scorer(payloads) -> the members' std of P(a > b) per pair, for text or clip ensembles."""
    return lambda payloads: _member_probs(ensemble, payloads, rollout_store).std(axis=0)


def order_by_disagreement(payloads: Sequence[dict], scorer: Callable[[list[dict]], np.ndarray],
                          n: int | None = None) -> list[dict]:
    """The ``n`` (default all) payloads the ensemble disagrees on most, most first (the label queue hands
    items out in this order), each with ``meta.strategy = "disagreement"`` and ``meta.score``."""
    payloads = list(payloads)
    scores = np.asarray(scorer(payloads), dtype=np.float64)
    if scores.shape != (len(payloads),):
        raise ValueError(f"the scorer returned shape {scores.shape} for {len(payloads)} payloads")
    order = np.argsort(-scores, kind="stable")[: len(payloads) if n is None else n]
    return [dict(payloads[i], meta={**payloads[i].get("meta", {}), "strategy": "disagreement",
                                    "score": float(scores[i])}) for i in order]
