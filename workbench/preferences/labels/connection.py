"""The label store's database: its schema, the per-thread connections (re-opened after a fork) and the
write transaction, which threads of one process enter first-come-first-served on a lock per database file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from workbench.preferences.labels.records import SCHEMA_VERSION, Campaign
from workbench.storage.durable import connect, immediate_transaction
from workbench.storage.runs import default_root

DB_FILENAME = "labels.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    name                 TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('clip_pair', 'text_pair', 'ranking')),
    overlap              INTEGER NOT NULL CHECK (overlap >= 1),
    guidelines_md        TEXT NOT NULL,
    graded_scale         INTEGER NOT NULL CHECK (graded_scale IN (0, 1)),
    flags                TEXT NOT NULL,              -- JSON list of flag names
    assignment_timeout_s REAL NOT NULL CHECK (assignment_timeout_s > 0),
    created_at           REAL NOT NULL,
    meta                 TEXT NOT NULL               -- JSON object
);
CREATE TABLE IF NOT EXISTS items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign     TEXT NOT NULL REFERENCES campaigns(name) ON DELETE CASCADE,
    payload      TEXT NOT NULL,                      -- canonical JSON (sorted keys)
    queue_labels INTEGER NOT NULL DEFAULT 0 CHECK (queue_labels >= 0),  -- live labels made via the queue
    full         INTEGER NOT NULL DEFAULT 0 CHECK (full IN (0, 1)),     -- queue_labels >= the overlap
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_campaign ON items(campaign, id);
-- next_item walks only the items not yet full: a mature campaign's finished prefix costs nothing.
CREATE INDEX IF NOT EXISTS items_not_full ON items(campaign, id) WHERE full = 0;
CREATE TABLE IF NOT EXISTS assignments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign      TEXT NOT NULL REFERENCES campaigns(name) ON DELETE CASCADE,
    item_id       INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    labeler       TEXT NOT NULL,
    swapped       INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    display_order TEXT NOT NULL,                     -- JSON list: canonical index shown at each position
    started_at    REAL NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'done', 'expired')),
    UNIQUE (item_id, labeler)                        -- an item is never handed twice to one labeler
);
CREATE INDEX IF NOT EXISTS assignments_labeler ON assignments(campaign, labeler, status);
CREATE INDEX IF NOT EXISTS assignments_item_open ON assignments(item_id, status, started_at);
CREATE TABLE IF NOT EXISTS labels (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign      TEXT NOT NULL REFERENCES campaigns(name) ON DELETE CASCADE,
    item_id       INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    labeler       TEXT NOT NULL,
    source        TEXT NOT NULL,                     -- 'human' | 'synthetic:<name>'
    origin        TEXT NOT NULL CHECK (origin IN ('queue', 'direct')),
    assignment_id INTEGER,
    swapped       INTEGER NOT NULL CHECK (swapped IN (0, 1)),
    display_order TEXT NOT NULL,                     -- JSON list, as in assignments
    choice        TEXT NOT NULL CHECK (choice IN ('left', 'right', 'equal', 'cant_tell', 'skip', 'ranked')),
    preferred     TEXT NOT NULL CHECK (preferred IN ('a', 'b', 'equal', 'cant_tell', 'skip', 'ranked')),
    scale_shown   INTEGER CHECK (scale_shown BETWEEN -3 AND 3),  -- negative = left (as shown) better
    ranking_shown TEXT,                              -- JSON list of displayed positions, best first
    flags         TEXT NOT NULL,                     -- JSON list
    comment       TEXT NOT NULL,
    started_at    REAL,                              -- NULL for label_direct
    submitted_at  REAL NOT NULL,
    undone_at     REAL                               -- set by undo_last (the row is kept, but ignored)
);
CREATE UNIQUE INDEX IF NOT EXISTS labels_one_per_labeler ON labels(item_id, labeler) WHERE undone_at IS NULL;
CREATE INDEX IF NOT EXISTS labels_campaign ON labels(campaign, id);
CREATE INDEX IF NOT EXISTS labels_campaign_labeler ON labels(campaign, labeler, id);
"""

_LABEL_COLUMNS = """
    l.id, l.campaign, l.item_id, i.payload, l.labeler, l.source, l.origin, l.swapped, l.display_order,
    l.choice, l.preferred, l.scale_shown, l.ranking_shown, l.flags, l.comment, l.started_at, l.submitted_at
"""


class _FairLock:
    """A first-come-first-served lock: ownership is handed straight to the longest waiter.

    ``threading.Lock`` lets the releasing thread take the lock straight back (its submit is followed by
    its next_item), so under load one labeler's clicks could overtake the others' for a long time.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        baton.acquire()  # released by the owner in release(): the lock is now ours

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # hand over; _held stays True
            else:
                self._held = False

    def __enter__(self) -> "_FairLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


_WRITE_LOCKS: dict[str, _FairLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _process_write_lock(db_path: Path) -> _FairLock:
    """One lock per database file per process, shared by every LabelStore opened on that file."""
    key = os.path.realpath(db_path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = _FairLock()
        return lock


def _reset_write_locks() -> None:  # a lock held by another thread at fork time would never be released
    global _WRITE_LOCKS_GUARD
    _WRITE_LOCKS.clear()
    _WRITE_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_reset_write_locks)


class StoreConnection:
    """The database side of :class:`~workbench.preferences.labels.LabelStore`: opening, connections, writes."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else default_root()).expanduser().absolute()
        self.db_path = self.root / DB_FILENAME
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._campaign_cache: dict[str, Campaign] = {}  # campaigns are immutable once created
        self._create_schema()

    # ---- connections and transactions ---------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # a connection must not cross a fork
            # (journal_mode = WAL is a property of the file, set once in _create_schema: setting it on every
            # new connection takes a lock, and a thread opening its connection could wait in the busy handler.)
            conn = connect(self.db_path, synchronous="FULL", wal=False)
            self._local.conn, self._local.pid, self._local.durable = conn, os.getpid(), True
        return conn

    @contextlib.contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; ``durable``: the commit is fsynced (synchronous=FULL)."""
        conn = self._conn()
        # Threads of one process (a labeling server) queue on a lock here instead of in SQLite's busy
        # handler, which polls with growing sleeps (1 ms .. 100 ms) and lets a busy writer starve the others.
        lock = _process_write_lock(self.db_path)
        lock.acquire()
        try:
            if self._local.durable != durable:  # a PRAGMA round trip only when the mode changes
                conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                self._local.durable = durable
            # IMMEDIATE takes the write lock before the first read: two labelers never both see a free slot.
            with immediate_transaction(conn):
                yield conn
        finally:
            lock.release()

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _create_schema(self) -> None:
        with _process_write_lock(self.db_path):
            if self._conn().execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._conn().execute("PRAGMA journal_mode = WAL")  # persistent: stored in the database file
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.db_path} has schema version {version}, newer than this workbench "
                                   f"understands ({SCHEMA_VERSION}); upgrade the workbench to open it")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):  # executescript() would COMMIT our transaction
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
