"""The label store's vocabulary: campaign kinds, answers and scales, its errors, and the records it returns
(:class:`Campaign`, :class:`Assignment`, :class:`Label`, :class:`Comparison`, :class:`Ranking`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CAMPAIGN_KINDS = ("clip_pair", "text_pair", "ranking")
CHOICES = ("left", "right", "equal", "cant_tell", "skip")  # as the labeler saw them
RANKED = "ranked"  # the choice (and preferred) stored for a ranking label that has a ranking
PREFERRED = ("a", "b", "equal", "cant_tell", "skip")  # canonical answers of a pair
GRADED_SCALE = ("A much better", "A better", "A slightly better", "Equal",
                "B slightly better", "B better", "B much better")  # WebGPT; stored as int -3..3
MIN_RANKING_K, MAX_RANKING_K = 2, 9  # InstructGPT ranks 4..9; 2..9 accepted
SOURCE_PATTERN = re.compile(r"^(human|synthetic:\S.*)$")
MAX_NAME_CHARS = 200
MAX_COMMENT_CHARS = 20_000
SCHEMA_VERSION = 1
EXPORT_SCHEMA_VERSION = 1


class UnknownCampaignError(ValueError):
    """A campaign name that is not in the store."""


class AssignmentExpiredError(ValueError):
    """The assignment timed out and its slot went to another labeler; the answer was not stored."""


# ---- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    name: str
    kind: str
    overlap: int
    guidelines_md: str
    graded_scale: bool
    flags: tuple[str, ...]
    assignment_timeout_s: float
    created_at: float
    meta: dict


@dataclass(frozen=True)
class Assignment:
    """An item handed to a labeler. ``payload`` is canonical; show it in ``display_order``."""

    id: int
    campaign: str
    item_id: int
    labeler: str
    payload: dict
    swapped: bool  # pairs: True = "b" is shown on the left (always False for rankings)
    started_at: float
    display_order: list[int] = field(default_factory=list)  # canonical index shown at each position
    kind: str = ""

    def shown(self) -> list:
        """The things to display, in display order: ``[left, right]`` for pairs, the responses for rankings."""
        if self.kind == "ranking" or "responses" in self.payload:
            return [self.payload["responses"][i] for i in self.display_order]
        canonical = [self.payload["a"], self.payload["b"]]
        return [canonical[i] for i in self.display_order]


@dataclass(frozen=True)
class Label:
    """One stored answer with every raw field (``scale`` and ``ranking`` canonical, ``*_shown`` as shown)."""

    id: int
    campaign: str
    kind: str
    item_id: int
    payload: dict
    labeler: str
    source: str
    origin: str  # "queue" (via next_item/submit) | "direct" (label_direct, or imported as such)
    swapped: bool
    display_order: list[int]
    choice: str  # as shown: CHOICES, or "ranked"
    preferred: str  # canonical: PREFERRED, or "ranked"
    scale_shown: int | None
    scale: int | None
    ranking_shown: list[int] | None
    ranking: list[int] | None  # canonical indices into payload["responses"], best first
    flags: tuple[str, ...]
    comment: str
    started_at: float | None
    submitted_at: float
    seconds: float | None  # submitted_at - started_at

    @property
    def mu_a(self) -> float | None:
        return _MU_A.get(self.preferred)

    def chosen_rejected(self) -> tuple[Any, Any]:
        """Canonical (chosen, rejected) of a pair answered "a" or "b"; (None, None) otherwise."""
        if self.preferred == "a":
            return self.payload["a"], self.payload["b"]
        if self.preferred == "b":
            return self.payload["b"], self.payload["a"]
        return None, None


@dataclass(frozen=True)
class Comparison:
    label_id: int
    item_id: int
    campaign: str
    labeler: str
    source: str  # "human" | "synthetic:<name>"
    kind: str
    prompt: str | None
    a: Any  # clip ref (dict) or response text, canonical
    b: Any
    preferred: str  # "a" | "b" | "equal" | "cant_tell" | "skip"
    mu_a: float | None  # 1.0 a preferred, 0.0 b preferred, 0.5 equal, None otherwise
    scale: int | None  # canonical: negative = a better
    group: int | None  # pairs expanded from a ranking: the ranking's label_id


@dataclass(frozen=True)
class Ranking:
    label_id: int
    item_id: int
    campaign: str
    labeler: str
    source: str
    prompt: str
    responses: list[str]
    order: list[int]  # canonical indices into responses, best first


_MU_A = {"a": 1.0, "b": 0.0, "equal": 0.5}
