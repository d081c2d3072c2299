"""Run store: runs, their metrics and their checkpoints, on local disk.

What is stored where
--------------------
Everything lives under one root directory: the ``root`` argument, else ``$WORKBENCH_HOME``,
else ``./runs`` (made absolute when the store is opened, so a later ``chdir`` does not move it).

* ``<root>/workbench.sqlite`` -- an embedded SQLite database (plus its ``-wal`` / ``-shm`` files)
  with these tables:

  - ``runs``: one row per run (id, name, algo, env, status, config as JSON, timestamps, pid).
  - ``metrics``: one row per (step, metric name) -- ``id`` is an ever-growing integer
    (AUTOINCREMENT, so ids are never reused, even after :meth:`RunStore.truncate_metrics`), which
    lets a dashboard poll with ``read_metrics(run_id, after_id=last_seen_id)`` and get only new rows.
  - ``checkpoints``: one row per checkpoint file kept on disk (run, step, path relative to root).
  - ``rollouts``: one row per recorded episode (see :mod:`workbench.episodes.rollouts`), whose files live
    under ``<root>/rollouts/<episode_id>/``.
  - ``studies`` and ``study_runs``: named families of runs and each point's axis values, run and status
    (see :mod:`workbench.storage.studies`).

  The schema version is ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`); tables are created when
  missing, and a database written by a newer workbench is refused rather than misread.

* ``<root>/checkpoints/<run_id>/step_<N>.pt`` -- ``torch.save`` files of a ``dict`` of tensors,
  numbers, strings and nested containers. They are loaded with ``torch.load(weights_only=True)``,
  which refuses arbitrary pickled Python objects (a checkpoint cannot run code when loaded).

Durability and concurrency
--------------------------
The database runs in WAL (write-ahead log) mode: readers never block the writer and the writer
never blocks readers, so a dashboard in another process can read metrics while training writes
them, and it only ever sees whole committed transactions (one ``log_metrics`` call is one
transaction). Writers wait up to 30 s for each other (``busy_timeout``).

* A committed transaction survives a kill of the writing process (SIGKILL, OOM killer, crash):
  in WAL mode the commit is in the log file, which the OS holds even if the process dies.
  An interrupted transaction is rolled back when the database is next opened; the file is never
  corrupted.
* Metrics are written with ``synchronous=NORMAL``: the WAL is not fsynced on every commit, so an
  OS crash or power loss may lose the last few metric transactions -- but never corrupts the
  database. That trade buys fast logging.
* Checkpoint rows and status changes are committed with ``synchronous=FULL`` (fsync on commit),
  so they also survive an OS crash once the call has returned.
* Checkpoint files are written atomically: ``torch.save`` to a temporary file in the same
  directory, flush + fsync, ``os.replace`` onto the final name, fsync the directory, and only
  then the row in ``checkpoints``. The table is the source of truth for "latest checkpoint", so a
  half-written or unregistered file is never picked up.

Each thread uses its own SQLite connection (``threading.local``), re-opened after a ``fork``,
so one :class:`RunStore` may be shared by threads.
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from workbench.storage.durable import atomic_write, connect, immediate_transaction

RUN_STATUSES = ("created", "running", "finished", "failed", "stopped")
SCHEMA_VERSION = 3  # 2: the rollouts index (workbench.episodes.rollouts); 3: studies (workbench.storage.studies)
DB_FILENAME = "workbench.sqlite"
DEFAULT_KEEP_CHECKPOINTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    algo        TEXT NOT NULL,
    env         TEXT NOT NULL,
    status      TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    pid         INTEGER
);
CREATE TABLE IF NOT EXISTS metrics (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: safe cursor for after_id polling
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    wall_time  REAL NOT NULL,
    name       TEXT NOT NULL,
    value      REAL                                -- NULL stores NaN (SQLite has no NaN)
);
CREATE INDEX IF NOT EXISTS metrics_run_id ON metrics(run_id, id);
CREATE INDEX IF NOT EXISTS metrics_run_name_step ON metrics(run_id, name, step);
CREATE INDEX IF NOT EXISTS metrics_run_step ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    path        TEXT NOT NULL,                     -- relative to the store root
    created_at  REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS rollouts (              -- recorded episodes (workbench.episodes.rollouts)
    id               TEXT PRIMARY KEY,
    run_id           TEXT,                         -- NULL for a random policy. No foreign key: a recording outlives its run
    checkpoint_step  INTEGER,
    env              TEXT NOT NULL,
    level_seed       INTEGER,
    levels           TEXT NOT NULL,
    distribution_mode TEXT NOT NULL,
    policy           TEXT NOT NULL,
    ret              REAL NOT NULL,
    length           INTEGER NOT NULL,
    has_hires        INTEGER NOT NULL,
    path             TEXT NOT NULL,                -- directory relative to the store root
    created_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_run ON rollouts(run_id, checkpoint_step);
CREATE INDEX IF NOT EXISTS rollouts_seed ON rollouts(env, level_seed);
CREATE TABLE IF NOT EXISTS studies (               -- named families of runs (workbench.storage.studies)
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,                     -- the job kind: "train" or a registered one
    spec        TEXT NOT NULL,                     -- the study spec as JSON
    status      TEXT NOT NULL,                     -- created, running, finished, failed, stopped
    pid         INTEGER,                           -- the sweep driver's process while it runs
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS study_runs (            -- one row per point of a study
    study       TEXT NOT NULL REFERENCES studies(name) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    point       TEXT NOT NULL,                     -- the axis values as JSON
    run_name    TEXT NOT NULL,
    run_id      TEXT,                              -- NULL until the job has registered its run
    status      TEXT NOT NULL,                     -- queued, running, finished, failed, stopped
    error       TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (study, idx)
);
CREATE INDEX IF NOT EXISTS runs_name ON runs(name);
"""

# env_steps of a run = the highest metric step logged for it (0 before any metric).
_RUN_COLUMNS = """
    r.id, r.name, r.algo, r.env, r.status, r.config, r.created_at, r.updated_at, r.pid,
    COALESCE((SELECT MAX(m.step) FROM metrics m WHERE m.run_id = r.id), 0)
"""


class UnknownRunError(ValueError):
    """A run id that is not in the store."""


class MetricRow(NamedTuple):
    id: int
    step: int
    wall_time: float
    name: str
    value: float


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    algo: str
    env: str
    status: str
    config: dict
    created_at: float
    updated_at: float
    pid: int | None
    env_steps: int  # the highest metric step logged


def default_root() -> Path:
    """``$WORKBENCH_HOME`` if set, else ``./runs``."""
    return Path(os.environ.get("WORKBENCH_HOME") or "runs")


def _slug(text: str) -> str:
    """Lower-case, filesystem-safe version of ``text`` (letters, digits, '_', '.', '-')."""
    return re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-.") or "x"


def _check_int(label: str, value: Any, *, minimum: int | None = 0) -> int:
    """``value`` as an int (int, numpy integer or integer 0-d tensor), else a clear ValueError."""
    kind = "an integer" if minimum is None else f"an integer >= {minimum}"
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{label} must be {kind}, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{label} must be {kind}, got {value}")
    return value


def process_alive(pid: int | None) -> bool:
    """Whether `pid` is a live (non-zombie) process that looks like a workbench run. A run whose status is
    still "running" but whose process is gone was killed (SIGKILL, a crash, a reboot) and may be resumed."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    # Guards against the pid having been reused by an unrelated program.
    return "workbench" in cmdline or "python" in cmdline.split(" ")[0]


class RunStore:
    """Runs, metrics and checkpoints under one root directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else default_root()).expanduser().absolute()
        self.db_path = self.root / DB_FILENAME
        self.root.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._create_schema()

    # ---- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        # A connection must not cross a fork: the child opens its own.
        if conn is None or self._local.pid != os.getpid():
            conn = connect(self.db_path)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable``: fsync on commit, so it survives an OS crash too."""
        conn = self._conn()
        if durable:
            conn.execute("PRAGMA synchronous = FULL")
        try:
            with immediate_transaction(conn):
                yield conn
        finally:
            if durable:
                conn.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads' objects are freed)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _create_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.db_path} has schema version {version}, newer than this workbench "
                    f"understands ({SCHEMA_VERSION}); upgrade the workbench to open it"
                )
            if version < SCHEMA_VERSION:
                # One statement at a time: executescript() would COMMIT our transaction first.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _require_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise self._unknown(run_id)

    def _unknown(self, run_id: str) -> UnknownRunError:
        return UnknownRunError(
            f"unknown run id {run_id!r} in {self.db_path}; list the runs with "
            f"RunStore({str(self.root)!r}).list_runs() or `workbench runs`"
        )

    # ---- runs ---------------------------------------------------------------------------------

    def create_run(self, *, algo: str, env: str, config: dict, name: str | None = None) -> str:
        """Register a new run with status "created"; returns its id, e.g.
        ``ppo-coinrun-20261121-093501-a1b2`` (algo, env, UTC time, random suffix)."""
        for label, value in (("algo", algo), ("env", env)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{label} must be a non-empty string, got {value!r}")
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        try:
            config_json = json.dumps(dict(config), sort_keys=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config must be JSON-serialisable (str, numbers, bools, None, lists, dicts): {e}") from None
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string or None, got {name!r}")
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        for _ in range(100):  # a collision needs the same second and the same 16 random bits
            run_id = f"{_slug(algo)}-{_slug(env)}-{stamp}-{secrets.token_hex(2)}"
            try:
                with self._write(durable=True) as conn:
                    conn.execute(
                        "INSERT INTO runs (id, name, algo, env, status, config, created_at, updated_at, pid)"
                        " VALUES (?, ?, ?, ?, 'created', ?, ?, ?, NULL)",
                        (run_id, name if name is not None else run_id, algo, env, config_json, now, now),
                    )
                return run_id
            except sqlite3.IntegrityError:
                continue
        raise RuntimeError("could not find an unused run id after 100 tries")

    @staticmethod
    def _run_info(row: tuple) -> RunInfo:
        return RunInfo(
            id=row[0], name=row[1], algo=row[2], env=row[3], status=row[4], config=json.loads(row[5]),
            created_at=row[6], updated_at=row[7], pid=row[8], env_steps=int(row[9]),
        )

    def get_run(self, run_id: str) -> RunInfo:
        row = self._conn().execute(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise self._unknown(run_id)
        return self._run_info(row)

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest first."""
        rows = self._conn().execute(
            f"SELECT {_RUN_COLUMNS} FROM runs r ORDER BY r.created_at DESC, r.rowid DESC"
        ).fetchall()
        return [self._run_info(row) for row in rows]

    def runs_named(self, name: str) -> list[RunInfo]:
        """The runs with this name, newest first (a study names each of its runs uniquely)."""
        rows = self._conn().execute(
            f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.name = ? ORDER BY r.created_at DESC, r.rowid DESC", (name,)
        ).fetchall()
        return [self._run_info(row) for row in rows]

    def set_status(self, run_id: str, status: str, *, pid: int | None = None) -> None:
        """Set a run's status; ``pid`` (the training process) is recorded when given, else kept."""
        if status not in RUN_STATUSES:
            raise ValueError(f"invalid status {status!r}; valid statuses: {', '.join(RUN_STATUSES)}")
        if pid is not None:
            pid = _check_int("pid", pid)
        with self._write(durable=True) as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, pid = COALESCE(?, pid), updated_at = ? WHERE id = ?",
                (status, pid, time.time(), run_id),
            )
            if cursor.rowcount == 0:
                raise self._unknown(run_id)

    # ---- metrics ------------------------------------------------------------------------------

    def log_metrics(
        self, run_id: str, step: int, metrics: Mapping[str, float], *, wall_time: float | None = None
    ) -> None:
        """Append one row per metric at ``step``, all in one transaction (readers see all or none).

        Values are stored as floats; NaN is stored (as SQL NULL) and read back as NaN.
        """
        step = _check_int("step", step)
        if not isinstance(metrics, Mapping):
            raise ValueError(f"metrics must be a mapping name -> number, got {type(metrics).__name__}")
        wall_time = time.time() if wall_time is None else float(wall_time)
        rows = []
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"metric names must be non-empty strings, got {name!r}")
            try:
                value = float(value)  # also takes numpy scalars and 0-d tensors
            except (TypeError, ValueError):
                raise ValueError(f"metric {name!r} must be a number, got {value!r}") from None
            rows.append((run_id, step, wall_time, name, None if math.isnan(value) else value))
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.executemany(
                "INSERT INTO metrics (run_id, step, wall_time, name, value) VALUES (?, ?, ?, ?, ?)", rows
            )
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))

    def read_metrics(
        self, run_id: str, names: Sequence[str] | None = None, *, after_id: int = 0
    ) -> list[MetricRow]:
        """Rows with ``id > after_id`` (optionally only ``names``), ordered by id.

        Pass the last id you saw as ``after_id`` to get only rows logged since.
        """
        if isinstance(names, str):
            raise ValueError(f"names must be a list of metric names, not a string; did you mean [{names!r}]?")
        conn = self._conn()
        self._require_run(conn, run_id)
        query = "SELECT id, step, wall_time, name, value FROM metrics WHERE run_id = ? AND id > ?"
        params: list[Any] = [run_id, _check_int("after_id", after_id)]
        if names is not None:
            names = list(names)
            if not names:
                return []
            query += f" AND name IN ({', '.join('?' * len(names))})"
            params += names
        query += " ORDER BY id"
        return [
            MetricRow(i, s, w, n, math.nan if v is None else v)
            for i, s, w, n, v in conn.execute(query, params)
        ]

    def max_metric_id(self, run_id: str) -> int:
        """The highest metric row id of a run (0 if none): a snapshot point for incremental readers."""
        row = self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0])

    def read_metric_columns(self, run_id: str, names: Sequence[str] | None = None, *, after_id: int = 0,
                            upto_id: int | None = None):
        """The rows `read_metrics` returns (ids in (after_id, upto_id]), as numpy columns
        `(ids, steps, wall_times, (names, name_index per row), values)` ordered by id, or None when there are
        none: several times faster than MetricRow tuples for millions of rows (the dashboard's first load)."""
        conn = self._conn()
        if upto_id is None:
            upto_id = self.max_metric_id(run_id)  # one snapshot for all the names read below
        if upto_id <= after_id:
            return None
        base = "SELECT id, step, wall_time, value FROM metrics WHERE run_id = ? AND id > ? AND id <= ?"
        if names is None:
            names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM metrics WHERE run_id = ? AND id > ? "
                                                "AND id <= ?", (run_id, after_id, upto_id))]
        parts = []
        for name in dict.fromkeys(names):
            rows = conn.execute(base + " AND name = ? ORDER BY id",
                                (run_id, int(after_id), int(upto_id), name)).fetchall()
            if rows:
                parts.append((name, np.array(rows, dtype=np.float64)))  # SQL NULL (a NaN value) becomes NaN
        if not parts:
            return None
        ids = np.concatenate([t[:, 0] for _, t in parts]).astype(np.int64)
        order = np.argsort(ids, kind="stable") if len(parts) > 1 else slice(None)
        steps = np.concatenate([t[:, 1] for _, t in parts]).astype(np.int64)[order]
        walls = np.concatenate([t[:, 2] for _, t in parts])[order]
        values = np.concatenate([t[:, 3] for _, t in parts])[order]
        row_names = np.concatenate([np.full(len(t), i, dtype=np.int32) for i, (_, t) in enumerate(parts)])[order]
        return ids[order], steps, walls, ([name for name, _ in parts], row_names), values

    def metric_series(self, run_id: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps int64, values float64)`` of one metric, ordered by step (then by logging order)."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute(
            "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step, id", (run_id, name)
        ).fetchall()
        steps = np.array([r[0] for r in rows], dtype=np.int64)
        values = np.array([math.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
        return steps, values

    def latest_metrics(self, run_id: str) -> dict[str, tuple[int, float]]:
        """``name -> (step, value)`` at each metric's highest step (the last logged on ties)."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute(
            """
            SELECT name, step, value FROM (
                SELECT name, step, value,
                       ROW_NUMBER() OVER (PARTITION BY name ORDER BY step DESC, id DESC) AS rank
                FROM metrics WHERE run_id = ?
            ) WHERE rank = 1 ORDER BY name
            """,
            (run_id,),
        ).fetchall()
        return {n: (s, math.nan if v is None else v) for n, s, v in rows}

    def truncate_metrics(self, run_id: str, after_step: int) -> int:
        """Delete the run's metric rows with ``step > after_step``; returns how many were deleted.

        Used on resume from a checkpoint at ``after_step``, so the curves do not hold a stretch
        of training that the resumed run will redo.
        """
        after_step = _check_int("after_step", after_step, minimum=None)
        with self._write(durable=True) as conn:
            self._require_run(conn, run_id)
            cursor = conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, after_step))
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))
            return cursor.rowcount

    # ---- checkpoints --------------------------------------------------------------------------

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / run_id

    def save_checkpoint(self, run_id: str, step: int, state: dict, *, keep: int = DEFAULT_KEEP_CHECKPOINTS) -> Path:
        """Atomically write ``state`` as ``checkpoints/<run_id>/step_<step>.pt``, register it, and
        delete all but the ``keep`` highest-step checkpoints of the run. Returns the file's path."""
        import torch  # imported here so metric readers (dashboards, the CLI) need not load torch

        step = _check_int("step", step)
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict, got {type(state).__name__}")
        keep = _check_int("keep", keep, minimum=1)
        self._require_run(self._conn(), run_id)
        directory = self.checkpoint_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"step_{step}.pt"

        atomic_write(final, lambda f: torch.save(state, f))

        relative = final.relative_to(self.root).as_posix()
        with self._write(durable=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, step, path, created_at) VALUES (?, ?, ?, ?)",
                (run_id, step, relative, time.time()),
            )
            old = conn.execute(
                "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT -1 OFFSET ?",
                (run_id, keep),
            ).fetchall()
            conn.executemany("DELETE FROM checkpoints WHERE run_id = ? AND step = ?", [(run_id, s) for s, _ in old])
        # Rows go first, files after: a crash in between leaves an orphan file, never a dangling row.
        for _, path in old:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / path)
        return final

    def list_checkpoints(self, run_id: str) -> list[tuple[int, Path]]:
        """``(step, path)`` of the run's registered checkpoints, by increasing step."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute("SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step", (run_id,))
        return [(step, self.root / path) for step, path in rows]

    def latest_checkpoint(self, run_id: str) -> tuple[int, Path] | None:
        """``(step, path)`` of the highest-step checkpoint, or None if the run has none."""
        checkpoints = self.list_checkpoints(run_id)
        return checkpoints[-1] if checkpoints else None

    def load_checkpoint(self, run_id: str, step: int | None = None, map_location="cpu") -> dict:
        """Load a checkpoint (the latest when ``step`` is None) with ``torch.load(weights_only=True)``,
        which only un-pickles tensors, numbers, strings and containers of them."""
        import torch

        checkpoints = dict(self.list_checkpoints(run_id))
        if not checkpoints:
            raise ValueError(f"run {run_id!r} has no checkpoints")
        if step is None:
            step = max(checkpoints)
        elif step not in checkpoints:
            raise ValueError(f"run {run_id!r} has no checkpoint at step {step}; it has steps {sorted(checkpoints)}")
        path = checkpoints[step]
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:
            e.add_note(f"while loading checkpoint {path} (run {run_id!r}, step {step})")
            raise
