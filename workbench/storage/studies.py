"""Studies in the run store: a study is a named family of runs (workbench.studies.spec); each of its points
(one setting of the axes) has a row with its axis values, the name its run gets, the run once the job has
registered it, a status and the error of a failed job.

    studies = StudyStore(root)                  # the same database as RunStore(root)
    studies.register("widths", kind="train", spec={...}, points=[{"width": 0.25}, ...], run_names=[...])
    studies.list_studies(); studies.points("widths")   # -> [StudyPoint(idx, point, run_name, run_id, status, error)]

Point statuses: queued (not started, or waiting), running, finished, failed (``error`` says why), stopped
(interrupted: a re-run resumes it from its last checkpoint). The tables live in ``workbench.sqlite`` (schema
version 3 of :mod:`workbench.storage.runs`), so dashboards and notebooks find studies beside their runs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from workbench.storage.runs import RunStore

STUDY_STATUSES = ("created", "running", "finished", "failed", "stopped")
POINT_STATUSES = ("queued", "running", "finished", "failed", "stopped")


class UnknownStudyError(ValueError):
    """A study name that is not in the store."""


@dataclass(frozen=True)
class StudyInfo:
    name: str
    kind: str
    spec: dict
    status: str
    pid: int | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class StudyPoint:
    idx: int
    point: dict          # the axis values of this run
    run_name: str
    run_id: str | None
    status: str
    error: str | None


class StudyStore:
    """Studies and their points in the run store at ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None, *, runs: RunStore | None = None):
        self.runs = runs or RunStore(root)
        self.root = self.runs.root

    def _conn(self):
        return self.runs._conn()

    def register(self, name: str, *, kind: str, spec: dict, points: list[dict], run_names: list[str]) -> bool:
        """Create the study with one queued row per point; returns False (and changes nothing) when a study of
        this name with the same spec exists (re-running a sweep continues it). A different spec under the
        same name is refused: its runs would mix two families."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a study needs a non-empty name, got {name!r}")
        if len(points) != len(run_names):
            raise ValueError("one run name per point")
        spec_json = json.dumps(spec, sort_keys=True)
        now = time.time()
        with self.runs._write(durable=True) as conn:
            row = conn.execute("SELECT spec FROM studies WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if json.loads(row[0]) != json.loads(spec_json):
                    raise ValueError(f"study {name!r} already exists with a different spec; continue it with "
                                     f"`workbench sweep --resume {name}` or give the new one another name")
                return False
            conn.execute("INSERT INTO studies (name, kind, spec, status, pid, created_at, updated_at) "
                         "VALUES (?, ?, ?, 'created', NULL, ?, ?)", (name, kind, spec_json, now, now))
            conn.executemany(
                "INSERT INTO study_runs (study, idx, point, run_name, run_id, status, error, updated_at) "
                "VALUES (?, ?, ?, ?, NULL, 'queued', NULL, ?)",
                [(name, i, json.dumps(p), n, now) for i, (p, n) in enumerate(zip(points, run_names))])
        return True

    @staticmethod
    def _info(row) -> StudyInfo:
        return StudyInfo(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6])

    def get(self, name: str) -> StudyInfo:
        row = self._conn().execute("SELECT name, kind, spec, status, pid, created_at, updated_at FROM studies "
                                   "WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [s.name for s in self.list_studies()]
            raise UnknownStudyError(f"unknown study {name!r} in {self.runs.db_path}; studies: "
                                    f"{', '.join(known) or 'none yet (start one with `workbench sweep`)'}")
        return self._info(row)

    def list_studies(self) -> list[StudyInfo]:
        """All studies, newest first."""
        rows = self._conn().execute("SELECT name, kind, spec, status, pid, created_at, updated_at FROM studies "
                                    "ORDER BY created_at DESC, rowid DESC").fetchall()
        return [self._info(r) for r in rows]

    def points(self, name: str) -> list[StudyPoint]:
        self.get(name)
        rows = self._conn().execute("SELECT idx, point, run_name, run_id, status, error FROM study_runs "
                                    "WHERE study = ? ORDER BY idx", (name,)).fetchall()
        return [StudyPoint(i, json.loads(p), n, r, s, e) for i, p, n, r, s, e in rows]

    def set_study_status(self, name: str, status: str, *, pid: int | None = None) -> None:
        """The study's status; ``pid`` is the sweep driver's process (None clears it)."""
        if status not in STUDY_STATUSES:
            raise ValueError(f"invalid study status {status!r}; valid: {', '.join(STUDY_STATUSES)}")
        with self.runs._write(durable=True) as conn:
            conn.execute("UPDATE studies SET status = ?, pid = ?, updated_at = ? WHERE name = ?",
                         (status, pid, time.time(), name))

    def set_point(self, name: str, idx: int, status: str, *, run_id: str | None = None,
                  error: str | None = None) -> None:
        """A point's status (and its run once known; the error of a failed job, cleared otherwise)."""
        if status not in POINT_STATUSES:
            raise ValueError(f"invalid point status {status!r}; valid: {', '.join(POINT_STATUSES)}")
        with self.runs._write(durable=True) as conn:
            conn.execute("UPDATE study_runs SET status = ?, run_id = COALESCE(?, run_id), error = ?, updated_at = ? "
                         "WHERE study = ? AND idx = ?", (status, run_id, error, time.time(), name, idx))

    def delete(self, name: str) -> None:
        """Forget a study (its runs stay in the store)."""
        self.get(name)
        with self.runs._write(durable=True) as conn:
            conn.execute("DELETE FROM study_runs WHERE study = ?", (name,))
            conn.execute("DELETE FROM studies WHERE name = ?", (name,))
