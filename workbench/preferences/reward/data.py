"""Preference data for training: comparisons turned into items and soft targets (rankings grouped), clips
deduplicated into one frame bank, held-out splits of whole items, and labeler agreement."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.preferences.reward.config import (
    RewardConfig,
)


@dataclass
class ClipBank:
    """Frames of all clips, deduplicated: item i covers frames[starts[i] : starts[i] + lengths[i]]."""

    frames: np.ndarray   # (F, 64, 64, 3) uint8
    starts: np.ndarray   # (items,) int64
    lengths: np.ndarray  # (items,) int64

    @classmethod
    def from_refs(cls, refs: Sequence[tuple[str, int, int]], load_frames: Callable[[str], np.ndarray]) -> "ClipBank":
        """`refs`: (episode_id, start, length) per item; `load_frames(episode_id)` -> (T, 64, 64, 3) uint8,
        called once per episode. Keeps only each episode's span covered by clips."""
        spans: dict[str, list[int]] = {}
        for ep, start, length in refs:
            lo, hi = spans.get(ep, (start, start + length))
            spans[ep] = [min(lo, start), max(hi, start + length)]
        pieces, offsets, total = [], {}, 0
        for ep, (lo, hi) in spans.items():
            frames = np.asarray(load_frames(ep))
            if frames.dtype != np.uint8 or frames.ndim != 4:
                raise ValueError(f"episode {ep!r}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
            if hi > len(frames):
                raise ValueError(f"a clip of episode {ep!r} ends at step {hi}, past the episode's {len(frames)} steps")
            pieces.append(frames[lo:hi])
            offsets[ep] = total - lo
            total += hi - lo
        starts = np.array([offsets[ep] + start for ep, start, _ in refs], dtype=np.int64)
        lengths = np.array([length for _, _, length in refs], dtype=np.int64)
        return cls(np.concatenate(pieces) if pieces else np.zeros((0, 64, 64, 3), np.uint8), starts, lengths)

    def frame_indices(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frame index of every step of the given items, concatenated; which of `items` each step belongs to)."""
        idx = np.concatenate([np.arange(self.starts[i], self.starts[i] + self.lengths[i]) for i in items])
        owner = np.repeat(np.arange(len(items)), self.lengths[items])
        return idx, owner


@dataclass
class PreferenceData:
    """Comparisons as index arrays over unique items (clips or (prompt, response) texts)."""

    kind: str                      # "clip" | "text"
    items: list                    # clip: (episode_id, start, length); text: (prompt, response)
    ia: np.ndarray                 # (P,) item index of A
    ib: np.ndarray                 # (P,) item index of B
    mu: np.ndarray                 # (P,) label: 1 A preferred, 0 B preferred, 0.5 equal
    group: np.ndarray              # (P,) batch element of each pair (a ranking's pairs share one)
    item_id: np.ndarray            # (P,) the labeled item's id in the LabelStore (the split unit)
    labeler: list[str]             # (P,)
    counts: dict = field(default_factory=dict)   # what was found, by preference

    def subset(self, mask: np.ndarray) -> "PreferenceData":
        return PreferenceData(self.kind, self.items, self.ia[mask], self.ib[mask], self.mu[mask], self.group[mask],
                              self.item_id[mask], [lab for lab, keep in zip(self.labeler, mask) if keep],
                              dict(self.counts))

    def __len__(self) -> int:
        return len(self.mu)


def _comparison_kind(c: Any) -> str:
    a, b = getattr(c, "a", None), getattr(c, "b", None)
    if isinstance(a, dict) and isinstance(b, dict):
        return "clip"
    if isinstance(a, str) and isinstance(b, str):
        return "text"
    return "unknown"


def comparisons_to_data(comparisons: Sequence[Any], config: RewardConfig, *, expected_kind: str | None = None,
                        campaign: str = "?", found: dict[str, int] | None = None) -> PreferenceData:
    """Filter and index :class:`workbench.preferences.labels.Comparison` records (or anything with their fields).

    "cant_tell" and "skip" are excluded; "equal" is a 0.5 label or dropped (``config.equal``). Raises a
    ValueError when nothing usable is left or the comparisons are not of `expected_kind` ("clip" | "text").
    `found`: the campaign's label counts by answer, for that message (default: counted from `comparisons`)."""
    counts: dict[str, int] = dict(found) if found is not None else {}
    if found is None:
        for c in comparisons:
            counts[c.preferred] = counts.get(c.preferred, 0) + 1
    found = ", ".join(f"{n} {k!r}" for k, n in sorted(counts.items())) or "no labels at all"
    keep_prefs = ("a", "b", "equal") if config.equal == "soft" else ("a", "b")
    usable = [c for c in comparisons if c.preferred in keep_prefs and c.mu_a is not None]
    if not usable or not any(c.preferred in ("a", "b") for c in usable):
        dropped = " ('equal' is dropped with equal='drop')" if config.equal == "drop" else ""
        raise ValueError(
            f"campaign {campaign!r} has no usable labels: found {found}. Training needs comparisons answered "
            f"'a' or 'b' (left/right){dropped}; 'cant_tell' and 'skip' are always excluded. Label more items first.")
    kinds = {_comparison_kind(c) for c in usable}
    if len(kinds) != 1 or "unknown" in kinds:
        raise ValueError(f"campaign {campaign!r} mixes or has unrecognized item kinds {sorted(kinds)}: clip "
                         "comparisons need clip references (dicts), text comparisons need response strings")
    kind = kinds.pop()
    if expected_kind is not None and kind != expected_kind:
        what = {"clip": "clip pairs (clip_pair campaigns)", "text": "text comparisons (text_pair or ranking campaigns)"}
        raise ValueError(f"campaign {campaign!r} holds {len(usable)} {what[kind]}, but the {expected_kind} reward "
                         f"model needs {what[expected_kind]}; use model='{kind}' (or 'auto') or another campaign")
    index: dict[Any, int] = {}
    items: list = []

    def item_index(c, side) -> int:
        value = getattr(c, side)
        if kind == "clip":
            from workbench.episodes.clips import check_clip_ref
            key = check_clip_ref(value)
        else:
            key = (getattr(c, "prompt", None), value)
        if key not in index:
            index[key] = len(items)
            items.append(key)
        return index[key]

    ia, ib, mu, group, item_id, labeler = [], [], [], [], [], []
    group_ids: dict[Any, int] = {}
    for c in usable:
        ia.append(item_index(c, "a"))
        ib.append(item_index(c, "b"))
        mu.append(float(c.mu_a))
        ranking = getattr(c, "group", None)
        key = ("ranking", ranking) if (ranking is not None and config.group_rankings) else ("pair", len(mu))
        group.append(group_ids.setdefault(key, len(group_ids)))
        item_id.append(int(getattr(c, "item_id", len(mu))))
        labeler.append(str(getattr(c, "labeler", "")))
    mu_arr = np.array(mu, dtype=np.float64)
    if np.any((mu_arr < 0) | (mu_arr > 1)):
        raise ValueError("mu_a must lie in [0, 1]")
    return PreferenceData(kind, items, np.array(ia, np.int64), np.array(ib, np.int64), mu_arr,
                          np.array(group, np.int64), np.array(item_id, np.int64), labeler, counts)


def split_heldout(data: PreferenceData, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, held-out) over pairs, splitting whole labeled items (and whole rankings)."""
    if fraction == 0:
        return np.ones(len(data), bool), np.zeros(len(data), bool)
    # Union of item ids and groups: a ranking's pairs share a group; all labels of an item share an id.
    parent: dict[Any, Any] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, g in zip(data.item_id.tolist(), data.group.tolist()):
        parent[find(("item", i))] = find(("group", g))
    roots = sorted({find(("item", i)) for i in data.item_id.tolist()}, key=repr)
    if len(roots) < 2:
        raise ValueError(f"a held-out split needs labels on at least 2 items; found {len(roots)} (set "
                         "heldout_fraction=0 to train on everything without validation)")
    rng = np.random.default_rng(seed)
    n_held = min(max(1, int(round(fraction * len(roots)))), len(roots) - 1)
    held_roots = {roots[j] for j in rng.permutation(len(roots))[:n_held]}
    held = np.array([find(("item", i)) in held_roots for i in data.item_id.tolist()])
    return ~held, held


def labeler_agreement(data: PreferenceData) -> tuple[float, np.ndarray]:
    """Agreement of pairs of labels from different labelers on the same comparison (the ceiling a model can
    be compared with), WebGPT's convention: same answer 1, a neutral ("equal") against a strict answer 1/2,
    opposite answers 0. Returns (agreement or NaN without overlap, mask of pairs on overlapping comparisons)."""
    keys: dict[tuple, list[int]] = {}
    for p, (i, a, b) in enumerate(zip(data.item_id.tolist(), data.ia.tolist(), data.ib.tolist())):
        keys.setdefault((i, min(a, b), max(a, b)), []).append(p)
    scores, overlap = [], np.zeros(len(data), bool)
    for (_, lo, _hi), members in keys.items():
        # Orient every label as "P(lower-index item preferred)".
        labels = [(data.labeler[p], data.mu[p] if data.ia[p] == lo else 1 - data.mu[p]) for p in members]
        pair_scores = [1.0 - abs(m1 - m2) for x, (l1, m1) in enumerate(labels) for l2, m2 in labels[x + 1:] if l1 != l2]
        if pair_scores:
            scores.extend(pair_scores)
            overlap[members] = True
    return (float(np.mean(scores)) if scores else math.nan), overlap


# ================================================================================================ training
