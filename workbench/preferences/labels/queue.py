"""The assignment queue: handing out items with overlap and timeouts in one ``BEGIN IMMEDIATE`` transaction,
submitting answers (durably), labeling without the queue (synthetic labelers), undo, and progress."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence

from workbench.preferences.labels.records import (
    Assignment,
    AssignmentExpiredError,
    Campaign,
)
from workbench.preferences.labels.validation import (
    _Answer,
    _is_int,
    _name,
    _validate_answer,
)


def _count_queue_label(conn: sqlite3.Connection, item_id: int, delta: int) -> None:
    """Add ``delta`` to an item's queue-label count and keep its ``full`` flag in step (one statement)."""
    conn.execute("UPDATE items SET queue_labels = queue_labels + ?, full = (queue_labels + ? >= "
                 "(SELECT c.overlap FROM campaigns c WHERE c.name = items.campaign)) WHERE id = ?",
                 (delta, delta, item_id))


class AssignmentQueue:
    """Queue, submit, direct-label, undo and progress methods of :class:`~workbench.preferences.labels.LabelStore`."""

    # ---- the queue ----------------------------------------------------------------------------

    @staticmethod
    def _slots_used(conn: sqlite3.Connection, item_id: int, fresh_after: float, exclude_assignment: int) -> int:
        row = conn.execute(
            "SELECT i.queue_labels + (SELECT COUNT(*) FROM assignments a WHERE a.item_id = i.id AND"
            " a.status = 'open' AND a.started_at >= ? AND a.id != ?) FROM items i WHERE i.id = ?",
            (fresh_after, exclude_assignment, item_id)).fetchone()
        return int(row[0])

    @staticmethod
    def _random_order(kind: str, payload: dict) -> tuple[bool, list[int]]:
        if kind == "ranking":
            order = list(range(len(payload["responses"])))
            for i in range(len(order) - 1, 0, -1):  # Fisher-Yates with the OS's randomness (fork-safe)
                j = secrets.randbelow(i + 1)
                order[i], order[j] = order[j], order[i]
            return False, order
        swapped = bool(secrets.randbelow(2))
        return swapped, [1, 0] if swapped else [0, 1]

    def next_item(self, campaign: str, labeler: str) -> Assignment | None:
        """The labeler's next assignment (see "Assignment" in the package docstring), or None when there is
        nothing left for this labeler (every item labeled by them or full)."""
        labeler = _name("labeler", labeler)
        camp = self.get_campaign(campaign)
        with self._write(durable=False) as conn:
            return self._next_in(conn, camp, labeler, time.time())

    def _next_in(self, conn: sqlite3.Connection, camp: Campaign, labeler: str, now: float) -> Assignment | None:
        fresh_after = now - camp.assignment_timeout_s
        own = conn.execute(
            "SELECT a.id, a.item_id, a.swapped, a.display_order, a.started_at, i.payload FROM assignments a"
            " JOIN items i ON i.id = a.item_id WHERE a.campaign = ? AND a.labeler = ? AND a.status = 'open'"
            " ORDER BY a.started_at DESC, a.id DESC", (camp.name, labeler)).fetchall()
        for aid, item_id, swapped, order, started_at, payload in own:
            if started_at < fresh_after:  # stale: resume it only if its slot is still free
                if self._slots_used(conn, item_id, fresh_after, aid) >= camp.overlap:
                    conn.execute("UPDATE assignments SET status = 'expired' WHERE id = ?", (aid,))
                    continue
                started_at = now
                conn.execute("UPDATE assignments SET started_at = ? WHERE id = ?", (now, aid))
            return Assignment(aid, camp.name, item_id, labeler, json.loads(payload), bool(swapped),
                              started_at, json.loads(order), camp.kind)
        row = conn.execute(
            """
            SELECT i.id, i.payload FROM items i
            WHERE i.campaign = ? AND i.full = 0
              AND i.queue_labels + (SELECT COUNT(*) FROM assignments a
                                    WHERE a.item_id = i.id AND a.status = 'open' AND a.started_at >= ?) < ?
              AND NOT EXISTS (SELECT 1 FROM labels l
                              WHERE l.item_id = i.id AND l.labeler = ? AND l.undone_at IS NULL)
              AND NOT EXISTS (SELECT 1 FROM assignments a
                              WHERE a.item_id = i.id AND a.labeler = ? AND a.status = 'open')
            ORDER BY i.id LIMIT 1
            """,
            (camp.name, fresh_after, camp.overlap, labeler, labeler)).fetchone()
        if row is None:
            return None
        item_id, payload_text = row
        payload = json.loads(payload_text)
        swapped, order = self._random_order(camp.kind, payload)
        # The UNIQUE (item_id, labeler) row may exist as 'expired': it is re-opened, never duplicated.
        aid = conn.execute(
            "INSERT INTO assignments (campaign, item_id, labeler, swapped, display_order, started_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, 'open') ON CONFLICT (item_id, labeler) DO UPDATE SET"
            " swapped = excluded.swapped, display_order = excluded.display_order,"
            " started_at = excluded.started_at, status = 'open' RETURNING id",
            (camp.name, item_id, labeler, int(swapped), json.dumps(order), now)).fetchone()[0]
        return Assignment(aid, camp.name, item_id, labeler, payload, swapped, now, order, camp.kind)

    def submit(self, assignment_id: int, labeler: str, choice: str | None, *, scale: int | None = None,
               ranking: Sequence[int] | None = None, flags: Sequence[str] = (), comment: str = "",
               source: str = "human") -> int:
        """Store the labeler's answer to an assignment in one durable transaction; returns the label id.

        ``choice`` is as shown (:data:`CHOICES`; for rankings None/"ranked" with ``ranking`` = displayed
        positions best first, or "cant_tell"/"skip"); ``scale`` is the graded scale as shown (-3..3,
        negative = left better) and must agree with ``choice``. When this returns, the label is on disk.
        Raises :class:`AssignmentExpiredError` (nothing stored) if the assignment timed out and its slot
        went to another labeler.
        """
        return self._submit(assignment_id, labeler, choice, scale, ranking, flags, comment, source, False)[0]

    def submit_and_next(self, assignment_id: int, labeler: str, choice: str | None, *, scale: int | None = None,
                        ranking: Sequence[int] | None = None, flags: Sequence[str] = (), comment: str = "",
                        source: str = "human") -> tuple[int, Assignment | None]:
        """:meth:`submit` then :meth:`next_item` for the same labeler and campaign in ONE durable
        transaction (one lock wait, one fsync): ``(label_id, next assignment or None)``. For a server."""
        return self._submit(assignment_id, labeler, choice, scale, ranking, flags, comment, source, True)

    def _submit(self, assignment_id, labeler, choice, scale, ranking, flags, comment, source, then_next):
        if not _is_int(assignment_id):
            raise ValueError(f"assignment_id must be an integer, got {assignment_id!r}")
        assignment_id = int(assignment_id)
        labeler = _name("labeler", labeler)
        now = time.time()
        expired = False
        nxt = None
        with self._write(durable=True) as conn:
            row = conn.execute(
                "SELECT a.campaign, a.item_id, a.labeler, a.swapped, a.display_order, a.started_at, a.status"
                " FROM assignments a WHERE a.id = ?", (assignment_id,)).fetchone()
            if row is None:
                raise ValueError(f"unknown assignment id {assignment_id!r}; get one from next_item()")
            campaign, item_id, owner, swapped, order_text, started_at, status = row
            if owner != labeler:
                raise ValueError(f"assignment {assignment_id} belongs to labeler {owner!r}, not {labeler!r}")
            if status == "done":
                raise ValueError(f"assignment {assignment_id} was already submitted; undo_last() first to change it")
            if status == "expired":
                raise AssignmentExpiredError(
                    f"assignment {assignment_id} timed out and item {item_id} went to another labeler; the answer "
                    f"was not stored -- call next_item() for a new one")
            camp = self.get_campaign(campaign, _conn=conn)
            order = json.loads(order_text)
            answer = _validate_answer(camp, len(order), bool(swapped), order, choice, scale, ranking, flags,
                                      comment, source)
            fresh_after = now - camp.assignment_timeout_s
            if started_at < fresh_after and self._slots_used(conn, item_id, fresh_after, assignment_id) >= camp.overlap:
                conn.execute("UPDATE assignments SET status = 'expired' WHERE id = ?", (assignment_id,))
                expired = True
            else:
                label_id = self._insert_label(conn, camp.name, item_id, labeler, answer, origin="queue",
                                              assignment_id=assignment_id, swapped=bool(swapped), order=order,
                                              started_at=started_at, submitted_at=now)
                conn.execute("UPDATE assignments SET status = 'done' WHERE id = ?", (assignment_id,))
                if then_next:
                    nxt = self._next_in(conn, camp, labeler, now)
        if expired:  # raised after the commit, so the assignment's 'expired' status is kept
            raise AssignmentExpiredError(
                f"assignment {assignment_id} timed out ({camp.assignment_timeout_s:g} s) and item {item_id} went to "
                f"another labeler; the answer was not stored -- call next_item() for a new one")
        return label_id, nxt

    @staticmethod
    def _insert_label(conn: sqlite3.Connection, campaign: str, item_id: int, labeler: str, answer: _Answer, *,
                      origin: str, assignment_id: int | None, swapped: bool, order: list[int],
                      started_at: float | None, submitted_at: float) -> int:
        try:
            label_id = conn.execute(
                "INSERT INTO labels (campaign, item_id, labeler, source, origin, assignment_id, swapped,"
                " display_order, choice, preferred, scale_shown, ranking_shown, flags, comment, started_at,"
                " submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (campaign, item_id, labeler, answer.source, origin, assignment_id, int(swapped), json.dumps(order),
                 answer.choice, answer.preferred, answer.scale_shown,
                 None if answer.ranking_shown is None else json.dumps(answer.ranking_shown),
                 json.dumps(answer.flags), answer.comment, started_at, submitted_at)).fetchone()[0]
        except sqlite3.IntegrityError as e:
            if "labels.item_id, labels.labeler" in str(e) or "UNIQUE" in str(e):
                raise ValueError(f"labeler {labeler!r} has already labeled item {item_id} (one label per labeler "
                                 f"per item; undo_last() first to change it)") from None
            raise
        if origin == "queue":
            _count_queue_label(conn, item_id, +1)
        return label_id

    def label_direct(self, campaign: str, item_id: int, labeler: str, choice: str | None, *,
                     scale: int | None = None, ranking: Sequence[int] | None = None, source: str,
                     flags: Sequence[str] = (), comment: str = "") -> int:
        """Label an item without the queue (synthetic labelers): display order = canonical, so ``"left"``
        means ``"a"`` and ``ranking`` lists canonical indices. Does not take a queue slot; still one label
        per labeler per item. One durable transaction; returns the label id."""
        camp = self.get_campaign(campaign)
        with self._write(durable=True) as conn:
            return self._direct_in(conn, camp, item_id, labeler, choice, scale, ranking, source, flags, comment,
                                   time.time())

    def label_direct_many(self, campaign: str, labels: Iterable[Mapping]) -> list[int]:
        """Many :meth:`label_direct` labels in ONE durable transaction (all or nothing; one fsync, so
        thousands of synthetic labels take a fraction of a second). Each entry is a dict with keys
        ``item_id, labeler, choice, source`` and optionally ``scale, ranking, flags, comment``; a bad entry
        raises ValueError naming its index, and nothing is stored."""
        camp = self.get_campaign(campaign)
        allowed = {"item_id", "labeler", "choice", "source", "scale", "ranking", "flags", "comment"}
        entries = list(labels)
        now = time.time()
        ids = []
        with self._write(durable=True) as conn:
            for k, entry in enumerate(entries):
                try:
                    if not isinstance(entry, Mapping):
                        raise ValueError(f"expected a dict, got {type(entry).__name__}")
                    unknown = set(entry) - allowed
                    missing = {"item_id", "labeler", "choice", "source"} - set(entry)
                    if unknown or missing:
                        raise ValueError(f"unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; keys: "
                                         f"{sorted(allowed)}")
                    ids.append(self._direct_in(
                        conn, camp, entry["item_id"], entry["labeler"], entry["choice"], entry.get("scale"),
                        entry.get("ranking"), entry["source"], entry.get("flags", ()), entry.get("comment", ""), now))
                except ValueError as e:
                    raise ValueError(f"labels[{k}]: {e}") from None
        return ids

    def _direct_in(self, conn, camp, item_id, labeler, choice, scale, ranking, source, flags, comment, now) -> int:
        labeler = _name("labeler", labeler)
        if not _is_int(item_id):
            raise ValueError(f"item_id must be an integer, got {item_id!r}")
        row = conn.execute("SELECT campaign, payload FROM items WHERE id = ?", (int(item_id),)).fetchone()
        if row is None or row[0] != camp.name:
            raise ValueError(f"item {item_id} is not an item of campaign {camp.name!r}")
        n = len(json.loads(row[1])["responses"]) if camp.kind == "ranking" else 2
        order = list(range(n))
        answer = _validate_answer(camp, n, False, order, choice, scale, ranking, flags, comment, source)
        label_id = self._insert_label(conn, camp.name, int(item_id), labeler, answer, origin="direct",
                                      assignment_id=None, swapped=False, order=order, started_at=None,
                                      submitted_at=now)
        # A queue assignment this labeler may hold on the item is moot now: free its slot.
        conn.execute("UPDATE assignments SET status = 'expired' WHERE item_id = ? AND labeler = ? AND "
                     "status = 'open'", (int(item_id), labeler))
        return label_id

    def undo_last(self, campaign: str, labeler: str) -> bool:
        """Undo the labeler's most recent label in the campaign (False if there is none).

        The row is kept (``undone_at`` set; ignored everywhere else) for the audit trail. A queue label's
        item goes back to the same labeler with the same display order: their next :meth:`next_item`
        returns it. Calling again undoes the label before that, and so on.
        """
        camp = self.get_campaign(campaign)
        labeler = _name("labeler", labeler)
        now = time.time()
        with self._write(durable=True) as conn:
            row = conn.execute(
                "SELECT id, item_id, origin, swapped, display_order FROM labels WHERE campaign = ? AND labeler = ?"
                " AND undone_at IS NULL ORDER BY id DESC LIMIT 1", (camp.name, labeler)).fetchone()
            if row is None:
                return False
            label_id, item_id, origin, swapped, order = row
            conn.execute("UPDATE labels SET undone_at = ? WHERE id = ?", (now, label_id))
            if origin == "queue":
                _count_queue_label(conn, item_id, -1)
                conn.execute(
                    "INSERT INTO assignments (campaign, item_id, labeler, swapped, display_order, started_at, status)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'open') ON CONFLICT (item_id, labeler) DO UPDATE SET"
                    " swapped = excluded.swapped, display_order = excluded.display_order,"
                    " started_at = excluded.started_at, status = 'open'",
                    (camp.name, item_id, labeler, swapped, order, now))
        return True

    def progress(self, campaign: str, labeler: str | None = None) -> dict:
        """``{"labeled", "assigned", "items", "target"}`` (+ ``"available"`` for one labeler).

        labeled: live labels (the labeler's own when given; every origin); assigned: open assignments not
        timed out (the labeler's own when given); items: items in the campaign; target: items x overlap;
        available: items this labeler could still be handed now.
        """
        camp = self.get_campaign(campaign)
        conn = self._conn()
        fresh_after = time.time() - camp.assignment_timeout_s
        n_items = conn.execute("SELECT COUNT(*) FROM items WHERE campaign = ?", (camp.name,)).fetchone()[0]
        who, params = ("", ()) if labeler is None else (" AND labeler = ?", (_name("labeler", labeler),))
        labeled = conn.execute(f"SELECT COUNT(*) FROM labels WHERE campaign = ? AND undone_at IS NULL{who}",
                               (camp.name, *params)).fetchone()[0]
        assigned = conn.execute(f"SELECT COUNT(*) FROM assignments WHERE campaign = ? AND status = 'open' AND "
                                f"started_at >= ?{who}", (camp.name, fresh_after, *params)).fetchone()[0]
        out = {"labeled": labeled, "assigned": assigned, "items": n_items, "target": n_items * camp.overlap}
        if labeler is not None:
            out["available"] = conn.execute(
                """
                SELECT COUNT(*) FROM items i
                WHERE i.campaign = ? AND i.queue_labels + (SELECT COUNT(*) FROM assignments a
                      WHERE a.item_id = i.id AND a.status = 'open' AND a.started_at >= ? AND a.labeler != ?) < ?
                  AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.item_id = i.id AND l.labeler = ?
                                  AND l.undone_at IS NULL)
                """, (camp.name, fresh_after, labeler, camp.overlap, labeler)).fetchone()[0]
        return out
