"""Campaigns and their items: creating a campaign (validated, immutable once created), reading campaigns back
(cached), adding items in one transaction and listing them in queue order."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence

from workbench.preferences.labels.records import (
    CAMPAIGN_KINDS,
    Campaign,
    UnknownCampaignError,
)
from workbench.preferences.labels.validation import (
    _is_int,
    _json_object,
    _name,
    _payload_json,
    validate_payload,
)


class CampaignsAndItems:
    """Campaign and item methods of :class:`~workbench.preferences.labels.LabelStore`."""

    # ---- campaigns ----------------------------------------------------------------------------

    def create_campaign(self, name: str, kind: str, *, overlap: int = 1, guidelines_md: str = "",
                        graded_scale: bool = False, flags: Sequence[str] = (), assignment_timeout_s: float = 600.0,
                        meta: dict | None = None, created_at: float | None = None) -> Campaign:
        """Create a campaign (a ValueError if the name is taken). ``created_at`` is for imports."""
        camp = self._campaign_from_args(name, kind, overlap=overlap, guidelines_md=guidelines_md,
                                        graded_scale=graded_scale, flags=flags,
                                        assignment_timeout_s=assignment_timeout_s, meta=meta, created_at=created_at)
        try:
            with self._write() as conn:
                self._insert_campaign(conn, camp)
        except sqlite3.IntegrityError:
            raise ValueError(f"a campaign named {name!r} already exists in {self.db_path}") from None
        return camp

    @staticmethod
    def _campaign_from_args(name, kind, *, overlap=1, guidelines_md="", graded_scale=False, flags=(),
                            assignment_timeout_s=600.0, meta=None, created_at=None) -> Campaign:
        name = _name("campaign name", name)
        if kind not in CAMPAIGN_KINDS:
            raise ValueError(f"unknown campaign kind {kind!r}; valid kinds: {', '.join(CAMPAIGN_KINDS)}")
        if not _is_int(overlap) or overlap < 1:
            raise ValueError(f"overlap must be an integer >= 1 (labelers per item), got {overlap!r}")
        if not isinstance(guidelines_md, str):
            raise ValueError(f"guidelines_md must be a (Markdown) string, got {type(guidelines_md).__name__}")
        if not isinstance(graded_scale, bool):
            raise ValueError(f"graded_scale must be True or False, got {graded_scale!r}")
        if graded_scale and kind == "ranking":
            raise ValueError("the graded scale applies to pair campaigns, not to rankings")
        if isinstance(flags, str) or not isinstance(flags, Iterable):
            raise ValueError(f"flags must be a list of flag names, got {flags!r}")
        flags = tuple(_name("flag name", f) for f in flags)
        if len(set(flags)) != len(flags):
            raise ValueError(f"flag names must be distinct, got {list(flags)}")
        try:
            timeout = float(assignment_timeout_s)
        except (TypeError, ValueError):
            timeout = math.nan
        if not timeout > 0 or math.isinf(timeout):
            raise ValueError(f"assignment_timeout_s must be a positive number of seconds, got {assignment_timeout_s!r}")
        return Campaign(name=name, kind=kind, overlap=int(overlap), guidelines_md=guidelines_md,
                        graded_scale=graded_scale, flags=flags, assignment_timeout_s=timeout,
                        created_at=time.time() if created_at is None else float(created_at),
                        meta=_json_object("meta", meta))

    @staticmethod
    def _insert_campaign(conn: sqlite3.Connection, camp: Campaign) -> None:
        conn.execute(
            "INSERT INTO campaigns (name, kind, overlap, guidelines_md, graded_scale, flags, assignment_timeout_s,"
            " created_at, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (camp.name, camp.kind, camp.overlap, camp.guidelines_md, int(camp.graded_scale),
             json.dumps(list(camp.flags)), camp.assignment_timeout_s, camp.created_at,
             json.dumps(camp.meta, sort_keys=True)),
        )

    @staticmethod
    def _campaign_row(row: tuple) -> Campaign:
        return Campaign(name=row[0], kind=row[1], overlap=row[2], guidelines_md=row[3], graded_scale=bool(row[4]),
                        flags=tuple(json.loads(row[5])), assignment_timeout_s=row[6], created_at=row[7],
                        meta=json.loads(row[8]))

    _CAMPAIGN_COLUMNS = (
        "name, kind, overlap, guidelines_md, graded_scale, flags, assignment_timeout_s, created_at, meta")

    def get_campaign(self, name: str, *, _conn: sqlite3.Connection | None = None) -> Campaign:
        camp = self._campaign_cache.get(name)
        if camp is not None:
            return camp
        row = (_conn or self._conn()).execute(
            f"SELECT {self._CAMPAIGN_COLUMNS} FROM campaigns WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [c.name for c in self.list_campaigns()]
            raise UnknownCampaignError(f"unknown campaign {name!r} in {self.db_path}; campaigns: "
                                       f"{', '.join(map(repr, known)) or 'none yet (create one with create_campaign)'}")
        camp = self._campaign_row(row)
        self._campaign_cache[name] = camp
        return camp

    def list_campaigns(self) -> list[Campaign]:
        """All campaigns, newest first."""
        rows = self._conn().execute(
            f"SELECT {self._CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at DESC, rowid DESC").fetchall()
        return [self._campaign_row(r) for r in rows]

    # ---- items --------------------------------------------------------------------------------

    def add_items(self, campaign: str, payloads: Sequence[dict]) -> list[int]:
        """Validate every payload first, then add them all in one transaction; returns their item ids."""
        camp = self.get_campaign(campaign)
        if isinstance(payloads, Mapping) or not isinstance(payloads, Iterable):
            raise ValueError("payloads must be a list of item dicts")
        canonical = [_payload_json(validate_payload(camp.kind, p, f"item {i}")) for i, p in enumerate(payloads)]
        now = time.time()
        with self._write() as conn:
            return [conn.execute("INSERT INTO items (campaign, payload, created_at) VALUES (?, ?, ?) RETURNING id",
                                 (camp.name, text, now)).fetchone()[0] for text in canonical]

    def get_item(self, item_id: int) -> dict:
        row = self._conn().execute("SELECT payload FROM items WHERE id = ?", (int(item_id),)).fetchone()
        if row is None:
            raise ValueError(f"unknown item id {item_id!r} in {self.db_path}")
        return json.loads(row[0])

    def items(self, campaign: str, *, after_id: int | None = None, limit: int | None = None) -> list[tuple[int, dict]]:
        """``(item_id, canonical payload)`` of the campaign's items, by id: all of them, or ``limit`` items
        with ids above ``after_id`` (the queue hands items out in id order, so these come next)."""
        self.get_campaign(campaign)
        sql, params = "SELECT id, payload FROM items WHERE campaign = ?", [campaign]
        if after_id is not None:
            sql += " AND id > ?"
            params.append(int(after_id))
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [(i, json.loads(p)) for i, p in self._conn().execute(sql, params)]
