"""Label store: preference-labeling campaigns, their items, assignments and labels, in SQLite.

Human comparisons are the raw material of reward models (Christiano et al. 2017, arXiv 1706.03741;
WebGPT, arXiv 2112.09332; InstructGPT, arXiv 2203.02155), and a labeler's answer cannot be re-bought:
this store is built so that an acknowledged label is never lost and never silently altered.

What is stored where
--------------------
``<root>/labels.sqlite`` (its own database file next to the run store's ``workbench.sqlite``; ``root`` is
the ``root`` argument, else ``$WORKBENCH_HOME``, else ``./runs``, as for :class:`workbench.storage.runs.RunStore`),
in WAL mode, schema version in ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`). Tables:

* ``campaigns``: name, kind (:data:`CAMPAIGN_KINDS`), ``overlap`` (how many labelers should label each
  item), guidelines (Markdown), whether the graded scale is offered, the campaign's flag names, the
  assignment timeout and free-form metadata.
* ``items``: one row per thing to label, its payload as JSON in CANONICAL order (``"a"``/``"b"``, or the
  list of ``"responses"``), see :func:`validate_payload`.
* ``assignments``: which labeler was handed which item, when, and in which display order. One row per
  (item, labeler) -- a UNIQUE constraint -- with status ``open`` / ``done`` / ``expired``.
* ``labels``: one row per answer: the choice exactly as the labeler saw it (``left``/``right`` of the
  order shown, the graded scale as shown, a ranking of the positions shown), the order shown, and the
  canonical ``preferred`` derived from them; flags, comment, labeler, ``source`` (``"human"`` or
  ``"synthetic:<name>"``), timestamps and seconds taken. A partial UNIQUE index on (item, labeler) over the
  labels not undone makes "never labeled twice by one labeler" a database constraint.

Assignment (the queue)
----------------------
:meth:`LabelStore.next_item` runs in one ``BEGIN IMMEDIATE`` transaction (the write lock is taken before
anything is read), so labelers in several threads or processes can never over-assign an item:

1. The labeler's own open assignments come first (a reloaded page, or an item given back by
   :meth:`~LabelStore.undo_last`), most recently opened first.
2. Otherwise the lowest-id item that (a) this labeler has neither labeled nor holds, and (b) has a free
   slot: ``queue labels + open assignments younger than assignment_timeout_s < overlap``. Items are handed
   out in order, so finished (fully overlapped) items accumulate early and agreement can be measured early.

An assignment older than ``assignment_timeout_s`` no longer holds its slot: the item returns to the queue.
If the slow labeler submits anyway, the label is accepted while the item still has a free slot; if someone
else has taken the slot meanwhile, :class:`AssignmentExpiredError` is raised and nothing is stored (so no
item ever exceeds its overlap). Labels made with :meth:`~LabelStore.label_direct` /
:meth:`~LabelStore.label_direct_many` (synthetic labelers, no queue) do not take queue slots; they still obey
"one label per labeler per item". A server can use :meth:`~LabelStore.submit_and_next` (the answer and the
next assignment in one transaction: one lock wait and one fsync per click).

Items are matched to labelers with two counters kept in step inside the same transactions as the labels
(``items.queue_labels`` and ``items.full``), and a partial index over the items not yet full, so handing
out the next item costs well under a millisecond even when the first tens of thousands of a campaign's
items are finished (benchmarks/bench_labeling.py, benchmarks/RESULTS_labels.md).

Display order
-------------
Each assignment draws its own random display order (``secrets``): for pairs ``swapped = True`` means
``"b"`` is shown on the left; ``display_order[p]`` is the canonical index shown at position ``p``
(``[1, 0]`` when swapped; a random permutation of the responses for rankings). Labels store the answer
as shown plus the order shown; ``preferred`` (``"a"``/``"b"``/``"equal"``/``"cant_tell"``/``"skip"``,
or ``"ranked"`` for a ranking) undoes the order. The graded scale (WebGPT) is an int -3..3, negative = the
LEFT response better as shown; :attr:`Label.scale` is canonical (negative = ``"a"`` better).
Rankings (InstructGPT ranks K = 4..9 responses; K = 2..9 accepted) are given to :meth:`~LabelStore.submit`
as the list of displayed POSITIONS, best first, and stored that way; :attr:`Label.ranking` is the
canonical order (indices into ``responses``), and :meth:`~LabelStore.comparisons` expands a ranking into
its C(K, 2) pairs, all with ``group`` = the ranking's label id (InstructGPT Sec. 3.5 keeps a prompt's pairs
together in one batch element).

Durability
----------
Campaigns, items, labels, undo and imports are committed with ``synchronous=FULL`` (the WAL is fsynced
before :meth:`~LabelStore.submit` returns), so an acknowledged label survives SIGKILL of the process and
an OS crash or power loss. Assignments are committed with ``synchronous=NORMAL`` (losing one to an OS
crash only means the item is handed out again). Each thread uses its own connection (re-opened after a
``fork``), so one :class:`LabelStore` may be shared by the threads of a server; within one process, write
transactions queue first-come-first-served on a lock per database file (SQLite's own busy handler polls
with sleeps of up to 100 ms and is not fair), across processes SQLite's lock applies (``busy_timeout`` 30 s).

Export / import: :meth:`~LabelStore.export_jsonl`, :meth:`~LabelStore.export_parquet` and
:meth:`~LabelStore.import_jsonl`, in the schema documented in ``docs/labels_schema.md``.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from workbench.storage.durable import (
    atomic_write,
    connect,
    immediate_transaction,
    read_jsonl,
)
from workbench.storage.runs import default_root

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


# ---- validation -----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _name(label: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{label} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_CHARS or any(ord(c) < 32 for c in value):
        raise ValueError(f"{label} must be at most {MAX_NAME_CHARS} characters without control characters, "
                         f"got {value[:60]!r}")
    return value


def _json_object(label: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{label} must be a JSON object (dict), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{label} must be JSON-serialisable (str, numbers, bools, None, lists, dicts): {e}") from None


def _clip_ref(label: str, ref: Any) -> dict:
    if not isinstance(ref, Mapping):
        raise ValueError(f"{label} must be a clip reference {{'episode_id': str, 'start': int >= 0, "
                         f"'length': int >= 1}}, got {type(ref).__name__}")
    extra = set(ref) - {"episode_id", "start", "length"}
    if extra:
        raise ValueError(f"{label} has unknown keys {sorted(extra)}; a clip reference has episode_id, start, length")
    episode_id, start, length = ref.get("episode_id"), ref.get("start"), ref.get("length")
    if not isinstance(episode_id, str) or not episode_id:
        raise ValueError(f"{label}.episode_id must be a non-empty string, got {episode_id!r}")
    if not _is_int(start) or start < 0:
        raise ValueError(f"{label}.start must be an integer >= 0, got {start!r}")
    if not _is_int(length) or length < 1:
        raise ValueError(f"{label}.length must be an integer >= 1, got {length!r}")
    return {"episode_id": episode_id, "start": int(start), "length": int(length)}


def _text(label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, got {type(value).__name__}: {str(value)[:60]!r}")
    return value


_PAYLOAD_KEYS = {
    "clip_pair": ("a", "b", "meta"),
    "text_pair": ("prompt", "a", "b", "meta"),
    "ranking": ("prompt", "responses", "meta"),
}


def validate_payload(kind: str, payload: Any, label: str = "payload") -> dict:
    """The canonical form of one item payload of a campaign of ``kind``, or a ValueError naming the field.

    * clip_pair: ``{"a": {"episode_id": str, "start": int >= 0, "length": int >= 1}, "b": {...}, "meta": {...}}``
    * text_pair: ``{"prompt": str, "a": str, "b": str, "meta": {...}}``
    * ranking:   ``{"prompt": str, "responses": [str, ...] (K = 2..9), "meta": {...}}``

    ``meta`` is optional (stored as ``{}``); other keys are refused (they are usually typos).
    """
    if kind not in CAMPAIGN_KINDS:
        raise ValueError(f"unknown campaign kind {kind!r}; valid kinds: {', '.join(CAMPAIGN_KINDS)}")
    if not isinstance(payload, Mapping):
        raise ValueError(f"{label} must be a JSON object (dict) with keys {list(_PAYLOAD_KEYS[kind])}, "
                         f"got {type(payload).__name__}")
    allowed = _PAYLOAD_KEYS[kind]
    extra = [k for k in payload if k not in allowed]
    if extra:
        raise ValueError(f"{label} has unknown keys {extra}; a {kind} item has keys {list(allowed)}")
    missing = [k for k in allowed if k != "meta" and k not in payload]
    if missing:
        raise ValueError(f"{label} is missing {missing}; a {kind} item has keys {list(allowed)}")
    out: dict[str, Any] = {}
    if kind == "clip_pair":
        out["a"] = _clip_ref(f"{label}.a", payload["a"])
        out["b"] = _clip_ref(f"{label}.b", payload["b"])
    elif kind == "text_pair":
        out["prompt"] = _text(f"{label}.prompt", payload["prompt"])
        out["a"] = _text(f"{label}.a", payload["a"])
        out["b"] = _text(f"{label}.b", payload["b"])
    else:
        out["prompt"] = _text(f"{label}.prompt", payload["prompt"])
        responses = payload["responses"]
        if not isinstance(responses, (list, tuple)) or not MIN_RANKING_K <= len(responses) <= MAX_RANKING_K:
            got = f"{len(responses)} responses" if isinstance(responses, (list, tuple)) else type(responses).__name__
            raise ValueError(f"{label}.responses must be a list of {MIN_RANKING_K} to {MAX_RANKING_K} strings "
                             f"(InstructGPT ranks 4 to 9), got {got}")
        out["responses"] = [_text(f"{label}.responses[{i}]", r) for i, r in enumerate(responses)]
    out["meta"] = _json_object(f"{label}.meta", payload.get("meta"))
    return out


def _payload_json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def check_source(source: Any) -> str:
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source) or len(source) > MAX_NAME_CHARS:
        raise ValueError(f"source must be 'human' or 'synthetic:<name>' (e.g. 'synthetic:gold_reward'), got {source!r}")
    return source


@dataclass(frozen=True)
class _Answer:
    choice: str
    preferred: str
    scale_shown: int | None
    ranking_shown: list[int] | None
    flags: list[str]
    comment: str
    source: str


class _AnswerError(ValueError):
    """A bad answer; ``field`` names the export-schema field at fault (for import error messages)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _validate_answer(camp: Campaign, n_shown: int, swapped: bool, display_order: list[int], choice: Any,
                     scale: Any, ranking: Any, flags: Any, comment: Any, source: Any) -> _Answer:
    """Check one answer against its campaign; returns the stored fields (``preferred`` canonical)."""
    try:
        source = check_source(source)
    except ValueError as e:
        raise _AnswerError("source", str(e)) from None
    if camp.kind == "ranking":
        if choice in (None, RANKED):
            if ranking is None:
                raise _AnswerError("ranking_shown", "a ranking campaign needs ranking=[positions shown, best first], "
                                                    "or "
                                 "choice='cant_tell' / 'skip'")
            if not isinstance(ranking, (list, tuple)) or not all(_is_int(p) for p in ranking) \
                    or sorted(int(p) for p in ranking) != list(range(n_shown)):
                raise _AnswerError("ranking_shown", f"ranking must list every displayed position 0..{n_shown - 1} "
                                                    f"once, best first "
                                 f"(a permutation of range({n_shown})), got {ranking!r}")
            choice, preferred, ranking_shown = RANKED, RANKED, [int(p) for p in ranking]
        elif choice in ("cant_tell", "skip"):
            if ranking is not None:
                raise _AnswerError("ranking_shown", f"choice {choice!r} takes no ranking (got {ranking!r})")
            preferred, ranking_shown = choice, None
        else:
            raise _AnswerError("choice", f"invalid choice {choice!r} for a ranking campaign; valid: None or 'ranked' "
                             f"(with ranking=...), 'cant_tell', 'skip'")
        if scale is not None:
            raise _AnswerError("scale_shown", "the graded scale applies to pairs, not to rankings")
        scale_shown = None
    else:
        if choice not in CHOICES:
            raise _AnswerError("choice", f"invalid choice {choice!r}; valid choices: {', '.join(CHOICES)}")
        if ranking is not None:
            raise _AnswerError("ranking_shown", f"ranking is only for ranking campaigns; campaign {camp.name!r} "
                                                f"is {camp.kind}")
        scale_shown = None
        if scale is not None:
            if not camp.graded_scale:
                raise _AnswerError("scale_shown", f"campaign {camp.name!r} has no graded scale (create it with "
                                                  f"graded_scale=True)")
            if not _is_int(scale) or not -3 <= scale <= 3:
                raise _AnswerError("scale_shown", f"scale must be an integer from -3 ({GRADED_SCALE[0]!r}, left as "
                                                  f"shown) to 3 "
                                 f"({GRADED_SCALE[-1]!r}, right as shown), got {scale!r}")
            scale_shown = int(scale)
            implied = "left" if scale_shown < 0 else "right" if scale_shown > 0 else "equal"
            if choice != implied:
                raise _AnswerError("choice", f"scale {scale_shown} ({GRADED_SCALE[scale_shown + 3]!r}) means choice "
                                 f"{implied!r}, but choice is {choice!r}")
        if choice == "left":
            preferred = "b" if swapped else "a"
        elif choice == "right":
            preferred = "a" if swapped else "b"
        else:
            preferred = choice
        ranking_shown = None
    if isinstance(flags, str) or not isinstance(flags, Iterable):
        raise _AnswerError("flags", f"flags must be a list of flag names, got {flags!r}")
    flags = list(flags)
    unknown = [f for f in flags if f not in camp.flags]
    if unknown:
        valid = ", ".join(map(repr, camp.flags)) or "none (the campaign defines no flags)"
        raise _AnswerError("flags", f"unknown flags {unknown} for campaign {camp.name!r}; valid flags: {valid}")
    if len(set(flags)) != len(flags):
        raise _AnswerError("flags", f"flags must not repeat, got {flags}")
    flags = [f for f in camp.flags if f in flags]  # campaign order: one spelling per set of flags
    if not isinstance(comment, str):
        raise _AnswerError("comment", f"comment must be a string, got {type(comment).__name__}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise _AnswerError("comment", f"comment must be at most {MAX_COMMENT_CHARS} characters, got {len(comment)}")
    return _Answer(choice, preferred, scale_shown, ranking_shown, flags, comment, source)


def _count_queue_label(conn: sqlite3.Connection, item_id: int, delta: int) -> None:
    """Add ``delta`` to an item's queue-label count and keep its ``full`` flag in step (one statement)."""
    conn.execute("UPDATE items SET queue_labels = queue_labels + ?, full = (queue_labels + ? >= "
                 "(SELECT c.overlap FROM campaigns c WHERE c.name = items.campaign)) WHERE id = ?",
                 (delta, delta, item_id))


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


# ---- the store ------------------------------------------------------------------------------------


class LabelStore:
    """Campaigns, items, assignments and labels in ``<root>/labels.sqlite`` (see the module docstring)."""

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
        """The labeler's next assignment (see "Assignment" in the module docstring), or None when there is
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

    # ---- export / import (schema: docs/labels_schema.md) ------------------------------------------

    @staticmethod
    def _campaign_config(camp: Campaign) -> dict:
        return {"overlap": camp.overlap, "guidelines_md": camp.guidelines_md, "graded_scale": camp.graded_scale,
                "flags": list(camp.flags), "assignment_timeout_s": camp.assignment_timeout_s,
                "created_at": camp.created_at, "meta": camp.meta}

    def export_rows(self, campaign: str) -> list[dict]:
        """One dict per live label in the export schema (docs/labels_schema.md), oldest first."""
        camp = self.get_campaign(campaign)
        config = self._campaign_config(camp)
        rows = []
        for lab in self.labels(campaign):
            chosen, rejected = lab.chosen_rejected()
            rows.append({
                "schema_version": EXPORT_SCHEMA_VERSION, "label_id": lab.id, "campaign": lab.campaign,
                "kind": lab.kind, "item_id": lab.item_id, "item": lab.payload, "prompt": lab.payload.get("prompt"),
                "chosen": chosen, "rejected": rejected, "labeler": lab.labeler, "source": lab.source,
                "origin": lab.origin, "swapped": lab.swapped, "display_order": lab.display_order,
                "choice": lab.choice, "preferred": lab.preferred, "mu_a": lab.mu_a, "scale_shown": lab.scale_shown,
                "scale": lab.scale, "ranking_shown": lab.ranking_shown, "ranking": lab.ranking,
                "flags": list(lab.flags), "comment": lab.comment, "started_at": lab.started_at,
                "submitted_at": lab.submitted_at, "seconds": lab.seconds, "campaign_config": config,
            })
        return rows

    def export_jsonl(self, campaign: str, path: str | os.PathLike) -> int:
        """Write the campaign's labels as JSON Lines (atomically: temp file + fsync + rename); returns rows."""
        rows = self.export_rows(campaign)
        data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows).encode("utf-8")
        atomic_write(Path(path), lambda f: f.write(data))
        return len(rows)

    def export_parquet(self, campaign: str, path: str | os.PathLike) -> int:
        """Write the campaign's labels as a Parquet file (column types in docs/labels_schema.md); returns rows."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:  # e.g. a pyarrow built for NumPy 2 next to procgen's NumPy 1
            raise RuntimeError(f"Parquet export needs a working pyarrow ({e}); export_jsonl works without it") from e

        camp = self.get_campaign(campaign)
        rows = self.export_rows(campaign)
        if camp.kind == "clip_pair":
            ref = pa.struct([("episode_id", pa.string()), ("start", pa.int64()), ("length", pa.int64())])
        else:
            ref = pa.string()
        schema = pa.schema([
            ("schema_version", pa.int32()), ("label_id", pa.int64()), ("campaign", pa.string()),
            ("kind", pa.string()), ("item_id", pa.int64()), ("item", pa.string()), ("prompt", pa.string()),
            ("chosen", ref), ("rejected", ref), ("labeler", pa.string()), ("source", pa.string()),
            ("origin", pa.string()), ("swapped", pa.bool_()), ("display_order", pa.list_(pa.int64())),
            ("choice", pa.string()), ("preferred", pa.string()), ("mu_a", pa.float64()),
            ("scale_shown", pa.int64()), ("scale", pa.int64()), ("ranking_shown", pa.list_(pa.int64())),
            ("ranking", pa.list_(pa.int64())), ("flags", pa.list_(pa.string())), ("comment", pa.string()),
            ("started_at", pa.float64()), ("submitted_at", pa.float64()), ("seconds", pa.float64()),
            ("campaign_config", pa.string()),
        ])
        flat = [dict(r, item=json.dumps(r["item"], ensure_ascii=False, sort_keys=True),
                     campaign_config=json.dumps(r["campaign_config"], ensure_ascii=False, sort_keys=True))
                for r in rows]
        table = pa.Table.from_pylist(flat, schema=schema)
        atomic_write(Path(path), lambda f: pq.write_table(table, f))
        return len(rows)

    def import_jsonl(self, path: str | os.PathLike, campaign: str | None = None) -> int:
        """Import labels exported by :meth:`export_jsonl` (same schema); returns the number imported.

        Every line is validated before anything is written, and everything is written in one transaction:
        a malformed line raises ValueError naming the line number and the field, and nothing is imported.
        ``campaign`` imports every row into that campaign (else each row's ``campaign``); a missing
        campaign is created from the row's ``campaign_config``. Items are matched by identical payload
        (an existing item of the campaign, or an earlier row), so re-importing into the same store is
        refused (one label per labeler per item) rather than duplicated. Ids are new.
        """
        path = Path(path)
        parsed = read_jsonl(path)
        campaigns: dict[str, Campaign] = {}  # target campaigns (existing, or created in the transaction)
        new_campaigns: list[Campaign] = []
        prepared = []
        for n, row in parsed:
            try:
                prepared.append(self._prepare_import_row(row, campaign, campaigns, new_campaigns))
            except ValueError as e:
                raise ValueError(f"{path}: line {n}: {e}") from None
        with self._write(durable=True) as conn:
            for camp in new_campaigns:
                try:
                    self._insert_campaign(conn, camp)
                except sqlite3.IntegrityError:
                    raise ValueError(f"{path}: campaign {camp.name!r} was created while importing; retry") from None
            item_ids: dict[tuple[str, str], int] = {}
            loaded: set[str] = set()
            now = time.time()
            for (n, _), (camp, payload_text, answer, origin, swapped, order, started_at, submitted_at, labeler) in \
                    zip(parsed, prepared):
                key = (camp.name, payload_text)
                if camp.name not in loaded:  # existing items of the campaign, matched by payload in one pass
                    loaded.add(camp.name)
                    for item_id, text in conn.execute("SELECT id, payload FROM items WHERE campaign = ? "
                                                      "ORDER BY id DESC", (camp.name,)):
                        item_ids[(camp.name, text)] = item_id  # DESC: the lowest id wins
                if key not in item_ids:
                    item_ids[key] = conn.execute(
                        "INSERT INTO items (campaign, payload, created_at) VALUES (?, ?, ?) RETURNING id",
                        (camp.name, payload_text, now)).fetchone()[0]
                try:
                    self._insert_label(conn, camp.name, item_ids[key], labeler, answer, origin=origin,
                                       assignment_id=None, swapped=swapped, order=order, started_at=started_at,
                                       submitted_at=submitted_at)
                except ValueError as e:
                    raise ValueError(f"{path}: line {n}: field 'labeler': {e}") from None
        for camp in new_campaigns:
            self._campaign_cache.pop(camp.name, None)
        return len(prepared)

    def _prepare_import_row(self, row: dict, campaign: str | None, campaigns: dict[str, Campaign],
                            new_campaigns: list[Campaign]):
        def get(name, required=True, default=None):
            if name not in row:
                if required:
                    raise ValueError(f"field {name!r}: missing (required)")
                return default
            return row[name]

        def field_error(name, message):
            return ValueError(f"field {name!r}: {message}")

        version = get("schema_version", False, EXPORT_SCHEMA_VERSION)
        if not _is_int(version) or not 1 <= version <= EXPORT_SCHEMA_VERSION:
            raise field_error("schema_version", f"this workbench reads schema version {EXPORT_SCHEMA_VERSION}, "
                                                f"got {version!r}")
        name = campaign if campaign is not None else get("campaign")
        kind = get("kind")
        if kind not in CAMPAIGN_KINDS:
            raise field_error("kind", f"must be one of {', '.join(CAMPAIGN_KINDS)}, got {kind!r}")
        camp = campaigns.get(name) if isinstance(name, str) else None
        if camp is None:
            try:
                _name("campaign", name)
            except ValueError as e:
                raise field_error("campaign", str(e)) from None
            try:
                camp = self.get_campaign(name)
            except UnknownCampaignError:
                config = get("campaign_config", False, None) or {}
                if not isinstance(config, dict):
                    raise field_error("campaign_config", f"must be an object, got {type(config).__name__}") from None
                unknown = set(config) - {"overlap", "guidelines_md", "graded_scale", "flags",
                                         "assignment_timeout_s", "created_at", "meta"}
                if unknown:
                    raise field_error("campaign_config", f"unknown keys {sorted(unknown)}") from None
                try:
                    camp = self._campaign_from_args(name, kind, **config)
                except (ValueError, TypeError) as e:
                    raise field_error("campaign_config", str(e)) from None
                new_campaigns.append(camp)
            campaigns[name] = camp
        if camp.kind != kind:
            raise field_error("kind", f"{kind!r} does not match campaign {camp.name!r}, which is {camp.kind}")
        try:
            payload = validate_payload(kind, get("item"), "item")
        except ValueError as e:
            raise field_error("item", str(e)) from None
        n = len(payload["responses"]) if kind == "ranking" else 2
        try:
            labeler = _name("labeler", get("labeler"))
        except ValueError as e:
            raise field_error("labeler", str(e)) from None
        origin = get("origin", False, "direct")
        if origin not in ("queue", "direct"):
            raise field_error("origin", f"must be 'queue' or 'direct', got {origin!r}")
        swapped = get("swapped", False, False)
        if not isinstance(swapped, bool):
            raise field_error("swapped", f"must be true or false, got {swapped!r}")
        default_order = ([1, 0] if swapped else [0, 1]) if kind != "ranking" else list(range(n))
        order = get("display_order", False, None)
        if order is None:
            order = default_order
        if not isinstance(order, list) or not all(_is_int(p) for p in order) or sorted(order) != list(range(n)):
            raise field_error("display_order", f"must be a permutation of range({n}), got {order!r}")
        if kind != "ranking" and order != default_order:
            raise field_error("display_order", f"{order} does not match swapped={swapped}")
        choice = get("choice")
        scale = get("scale_shown", False, None)
        ranking = get("ranking_shown", False, None)
        try:
            answer = _validate_answer(camp, n, swapped, order, choice, scale, ranking, get("flags", False, []),
                                      get("comment", False, ""), get("source", False, "human"))
        except _AnswerError as e:
            raise field_error(e.field, str(e)) from None
        started_at = get("started_at", False, None)
        submitted_at = get("submitted_at", False, None)
        for fname, value, nullable in (("started_at", started_at, True), ("submitted_at", submitted_at, False)):
            if (value is None and not nullable) or (value is not None and (isinstance(value, bool) or
                                                                           not isinstance(value, (int, float))
                                                                           or not math.isfinite(value))):
                raise field_error(fname, f"must be a Unix time in seconds{' or null' if nullable else ''}, "
                                         f"got {value!r}")
        # Derived fields, when present, must agree with the raw ones (catches hand-edited or mixed-up files).
        ranking_canonical = None if answer.ranking_shown is None else [order[p] for p in answer.ranking_shown]
        scale_canonical = (None if answer.scale_shown is None
                           else -answer.scale_shown if swapped else answer.scale_shown)
        chosen, rejected = Label.chosen_rejected(_PreferredOnly(answer.preferred, payload))
        derived = {"preferred": answer.preferred, "mu_a": _MU_A.get(answer.preferred), "scale": scale_canonical,
                   "ranking": ranking_canonical, "chosen": chosen, "rejected": rejected,
                   "prompt": payload.get("prompt"),
                   "seconds": None if started_at is None else submitted_at - started_at}
        for fname, expected in derived.items():
            if fname in row:
                got = row[fname]
                same = (math.isclose(got, expected, rel_tol=0, abs_tol=1e-6)
                        if fname == "seconds" and isinstance(got, (int, float)) and expected is not None
                        else got == expected)
                if not same:
                    raise field_error(fname, f"{got!r} disagrees with the raw fields (choice {answer.choice!r}, "
                                             f"swapped {swapped}, order {order}), which give {expected!r}")
        return (camp, _payload_json(payload), answer, origin, swapped, order,
                None if started_at is None else float(started_at), float(submitted_at), labeler)


@dataclass(frozen=True)
class _PreferredOnly:  # enough of a Label for Label.chosen_rejected
    preferred: str
    payload: dict




def read_items_jsonl(path: str | os.PathLike, kind: str) -> list[dict]:
    """Item payloads from a JSON Lines file (one item per line, e.g. ``{"prompt", "a", "b", "meta"}`` or
    ``{"prompt", "responses", "meta"}``), each validated; a bad line raises ValueError naming the line."""
    out = []
    for n, payload in read_jsonl(path):
        try:
            out.append(validate_payload(kind, payload, "item"))
        except ValueError as e:
            raise ValueError(f"{path}: line {n}: {e}") from None
    return out
