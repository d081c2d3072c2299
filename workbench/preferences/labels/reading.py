"""Reading labels back: :class:`Label` rows with their canonical fields, labelers, pairwise comparisons (a
ranking expanded into its C(K, 2) pairs, InstructGPT arXiv 2203.02155 Sec. 3.5) and rankings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from workbench.preferences.labels.connection import _LABEL_COLUMNS
from workbench.preferences.labels.records import (
    _MU_A,
    PREFERRED,
    Campaign,
    Comparison,
    Label,
    Ranking,
)


class LabelReading:
    """Label-reading methods of :class:`~workbench.preferences.labels.LabelStore`."""

    # ---- reading labels -----------------------------------------------------------------------

    def _label_row(self, camp: Campaign, row: tuple) -> Label:
        (lid, campaign, item_id, payload, labeler, source, origin, swapped, order, choice, preferred,
         scale_shown, ranking_shown, flags, comment, started_at, submitted_at) = row
        order = json.loads(order)
        ranking_shown = None if ranking_shown is None else json.loads(ranking_shown)
        return Label(
            id=lid, campaign=campaign, kind=camp.kind, item_id=item_id, payload=json.loads(payload),
            labeler=labeler, source=source, origin=origin, swapped=bool(swapped), display_order=order,
            choice=choice, preferred=preferred, scale_shown=scale_shown,
            scale=None if scale_shown is None else (-scale_shown if swapped else scale_shown),
            ranking_shown=ranking_shown,
            ranking=None if ranking_shown is None else [order[p] for p in ranking_shown],
            flags=tuple(json.loads(flags)), comment=comment, started_at=started_at, submitted_at=submitted_at,
            seconds=None if started_at is None else submitted_at - started_at,
        )

    def labels(self, campaign: str, *, labeler: str | None = None, source: str | None = None) -> list[Label]:
        """The campaign's live labels (not undone), oldest first, optionally of one labeler / source."""
        camp = self.get_campaign(campaign)
        query = (f"SELECT {_LABEL_COLUMNS} FROM labels l JOIN items i ON i.id = l.item_id "
                 "WHERE l.campaign = ? AND l.undone_at IS NULL")
        params: list[Any] = [camp.name]
        if labeler is not None:
            query += " AND l.labeler = ?"
            params.append(labeler)
        if source is not None:
            query += " AND l.source = ?"
            params.append(source)
        return [self._label_row(camp, r) for r in self._conn().execute(query + " ORDER BY l.id", params)]

    def labelers(self, campaign: str) -> list[str]:
        """Labelers with at least one live label in the campaign, sorted."""
        self.get_campaign(campaign)
        rows = self._conn().execute("SELECT DISTINCT labeler FROM labels WHERE campaign = ? AND undone_at IS NULL"
                                    " ORDER BY labeler", (campaign,))
        return [r[0] for r in rows]

    def comparisons(self, campaign: str, *, include: Sequence[str] = ("a", "b", "equal"),
                    source: str | None = None) -> list[Comparison]:
        """Canonical pairwise comparisons whose ``preferred`` is in ``include``, in label order.

        A ranking of K responses becomes its C(K, 2) pairs (a = the lower canonical index), each with
        ``group`` = the ranking's label id; a skipped / can't-tell ranking yields no pairs.
        """
        if isinstance(include, str):
            raise ValueError(f"include must be a list such as ('a', 'b', 'equal'), not a string; "
                             f"did you mean [{include!r}]?")
        bad = [x for x in include if x not in PREFERRED]
        if bad:
            raise ValueError(f"include has invalid values {bad}; valid: {', '.join(PREFERRED)}")
        include = set(include)
        out = []
        for lab in self.labels(campaign, source=source):
            if lab.kind == "ranking":
                if lab.ranking is None:
                    continue
                rank_of = {idx: r for r, idx in enumerate(lab.ranking)}
                responses = lab.payload["responses"]
                for i, j in combinations(range(len(responses)), 2):
                    preferred = "a" if rank_of[i] < rank_of[j] else "b"
                    if preferred in include:
                        out.append(Comparison(lab.id, lab.item_id, lab.campaign, lab.labeler, lab.source, lab.kind,
                                              lab.payload["prompt"], responses[i], responses[j], preferred,
                                              _MU_A[preferred], None, lab.id))
            elif lab.preferred in include:
                out.append(Comparison(lab.id, lab.item_id, lab.campaign, lab.labeler, lab.source, lab.kind,
                                      lab.payload.get("prompt"), lab.payload["a"], lab.payload["b"], lab.preferred,
                                      _MU_A.get(lab.preferred), lab.scale, None))
        return out

    def rankings(self, campaign: str, *, source: str | None = None) -> list[Ranking]:
        """The ranking labels of a ranking campaign (skipped / can't-tell ones left out), in label order."""
        camp = self.get_campaign(campaign)
        if camp.kind != "ranking":
            raise ValueError(f"campaign {campaign!r} is a {camp.kind} campaign, not a ranking campaign")
        return [Ranking(lab.id, lab.item_id, lab.campaign, lab.labeler, lab.source, lab.payload["prompt"],
                        list(lab.payload["responses"]), list(lab.ranking))
                for lab in self.labels(campaign, source=source) if lab.ranking is not None]
