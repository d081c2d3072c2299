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

from workbench.preferences.labels.connection import DB_FILENAME
from workbench.preferences.labels.records import (
    CAMPAIGN_KINDS,
    CHOICES,
    EXPORT_SCHEMA_VERSION,
    GRADED_SCALE,
    MAX_RANKING_K,
    MIN_RANKING_K,
    PREFERRED,
    RANKED,
    SCHEMA_VERSION,
    Assignment,
    AssignmentExpiredError,
    Campaign,
    Comparison,
    Label,
    Ranking,
    UnknownCampaignError,
)
from workbench.preferences.labels.store import LabelStore
from workbench.preferences.labels.validation import (
    check_source,
    read_items_jsonl,
    validate_payload,
)

__all__ = [
    "CAMPAIGN_KINDS", "CHOICES", "DB_FILENAME", "EXPORT_SCHEMA_VERSION", "GRADED_SCALE", "MAX_RANKING_K",
    "MIN_RANKING_K", "PREFERRED", "RANKED", "SCHEMA_VERSION", "Assignment", "AssignmentExpiredError", "Campaign",
    "Comparison", "Label", "LabelStore", "Ranking", "UnknownCampaignError", "check_source", "read_items_jsonl",
    "validate_payload",
]
