"""Adjudication: the items whose labelers disagree, and an admin's resolution of each into a SEPARATE
adjudicated label (table ``adjudications``, schema version 2). The raw labels are never touched: the export
carries the adjudication beside them (column ``adjudication``), and adjudicating an item again supersedes
the earlier decision (kept, with ``superseded_at``) instead of overwriting it."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass

from workbench.preferences.labels.records import GRADED_SCALE, RANKED
from workbench.preferences.labels.validation import _is_int, _name

NO_JUDGMENT = ("cant_tell", "skip")


@dataclass(frozen=True)
class Adjudication:
    id: int
    campaign: str
    item_id: int
    admin: str
    preferred: str  # "a" | "b" | "equal" | "ranked"
    scale: int | None  # canonical, negative = a better
    ranking: list[int] | None  # canonical indices, best first
    comment: str
    created_at: float

    def as_dict(self) -> dict:
        return {"adjudication_id": self.id, "admin": self.admin, "preferred": self.preferred, "scale": self.scale,
                "ranking": self.ranking, "comment": self.comment, "created_at": self.created_at}


@dataclass(frozen=True)
class Disagreement:
    item_id: int
    payload: dict
    answers: dict[str, object]  # labeler -> canonical answer ("a"/"b"/"equal", or a ranking tuple)
    adjudication: Adjudication | None


def _answer(lab) -> object:
    return tuple(lab.ranking) if lab.ranking is not None else lab.preferred


class Adjudicating:
    """Adjudication methods of :class:`~workbench.preferences.labels.LabelStore`."""

    def disagreements(self, campaign: str, *, include_resolved: bool = True) -> list[Disagreement]:
        """Items with answers from at least two labelers that are not all the same (can't-tell / skip left
        out), in item order, with their current adjudication (if any)."""
        by_item: dict[int, dict[str, object]] = defaultdict(dict)
        payloads = {}
        for lab in self.labels(campaign):
            if lab.preferred in NO_JUDGMENT:
                continue
            by_item[lab.item_id][lab.labeler] = _answer(lab)
            payloads[lab.item_id] = lab.payload
        current = self.adjudications(campaign)
        out = []
        for item_id in sorted(by_item):
            answers = by_item[item_id]
            if len(answers) >= 2 and len(set(answers.values())) > 1:
                if include_resolved or item_id not in current:
                    out.append(Disagreement(item_id, payloads[item_id], dict(sorted(answers.items())),
                                            current.get(item_id)))
        return out

    def adjudicate(self, campaign: str, item_id: int, admin: str, preferred: str | None = None, *,
                   scale: int | None = None, ranking: list[int] | None = None, comment: str = "") -> int:
        """Store the admin's resolution of an item (canonical terms: ``preferred`` "a"/"b"/"equal" with an
        optional graded ``scale``, or a ``ranking`` of canonical indices best first). A previous adjudication
        of the item is superseded, never deleted; the raw labels are untouched. Returns the new id."""
        camp = self.get_campaign(campaign)
        admin = _name("admin", admin)
        if not _is_int(item_id):
            raise ValueError(f"item_id must be an integer, got {item_id!r}")
        if not isinstance(comment, str):
            raise ValueError(f"comment must be a string, got {type(comment).__name__}")
        with self._write(durable=True) as conn:
            row = conn.execute("SELECT campaign, payload FROM items WHERE id = ?", (int(item_id),)).fetchone()
            if row is None or row[0] != camp.name:
                raise ValueError(f"item {item_id} is not an item of campaign {camp.name!r}")
            if camp.kind == "ranking":
                n = len(json.loads(row[1])["responses"])
                if (preferred not in (None, RANKED) or scale is not None or not isinstance(ranking, (list, tuple))
                        or not all(_is_int(r) for r in ranking) or sorted(ranking) != list(range(n))):
                    raise ValueError(f"a ranking item is adjudicated with ranking=[canonical indices 0..{n - 1}, best "
                                     f"first], got preferred={preferred!r}, ranking={ranking!r}")
                preferred, ranking = RANKED, [int(r) for r in ranking]
            else:
                if ranking is not None or preferred not in ("a", "b", "equal"):
                    raise ValueError(f"a pair is adjudicated with preferred 'a', 'b' or 'equal' (no ranking), got "
                                     f"preferred={preferred!r}")
                if scale is not None:
                    if not camp.graded_scale or not _is_int(scale) or not -3 <= scale <= 3:
                        raise ValueError(f"scale must be an integer -3..3 ({GRADED_SCALE[0]!r} .. "
                                         f"{GRADED_SCALE[-1]!r}, negative = a better) in a graded-scale campaign, "
                                         f"got {scale!r}")
                    implied = "a" if scale < 0 else "b" if scale > 0 else "equal"
                    if implied != preferred:
                        raise ValueError(f"scale {scale} means {implied!r} is preferred, not {preferred!r}")
            now = time.time()
            conn.execute("UPDATE adjudications SET superseded_at = ? WHERE item_id = ? AND superseded_at IS NULL",
                         (now, int(item_id)))
            return conn.execute(
                "INSERT INTO adjudications (campaign, item_id, admin, preferred, scale, ranking, comment, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (camp.name, int(item_id), admin, preferred, None if scale is None else int(scale),
                 None if ranking is None else json.dumps(ranking), comment, now)).fetchone()[0]

    def adjudications(self, campaign: str) -> dict[int, Adjudication]:
        """item id -> its current (not superseded) adjudication."""
        self.get_campaign(campaign)
        rows = self._conn().execute(
            "SELECT id, campaign, item_id, admin, preferred, scale, ranking, comment, created_at FROM adjudications "
            "WHERE campaign = ? AND superseded_at IS NULL ORDER BY item_id", (campaign,))
        return {r[2]: Adjudication(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else json.loads(r[6]),
                                   r[7], r[8]) for r in rows}
