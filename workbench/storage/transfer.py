"""Runs as plain data, to move them between stores on different machines (the Ray executor of
workbench.studies): a *bundle* holds each run's record, its metric rows, its registered checkpoints and the
bytes of their files (and, from a scratch store, every other file the job wrote, e.g. reward models).

A run that trains on another machine trains into a local scratch store there; the bundle travels back to the
driver (Ray's object store), which writes it into the study's store with :func:`import_bundle`. SQLite is
therefore only ever opened on local disk, never over a network filesystem.

    bundle = export_bundle(store, run_ids)                 # {"runs": [...], "files": {relpath: bytes}}
    import_bundle(other_store, bundle, after_step=-1)      # the same runs, ids kept
"""

from __future__ import annotations

import contextlib
import json
import os

from workbench.storage.durable import atomic_write
from workbench.storage.runs import DB_FILENAME, RunStore


def export_bundle(store: RunStore, run_ids: list[str], *, all_files: bool = False) -> dict:
    """The runs' records, metrics and checkpoints; ``all_files``: also every other file under the store root
    (what a job wrote beside its runs), except the database itself."""
    conn = store._conn()
    runs, files = [], {}
    for run_id in run_ids:
        info = store.get_run(run_id)
        metrics = conn.execute("SELECT step, wall_time, name, value FROM metrics WHERE run_id = ? ORDER BY id",
                               (run_id,)).fetchall()
        checkpoints = conn.execute("SELECT step, path, created_at FROM checkpoints WHERE run_id = ? ORDER BY step",
                                   (run_id,)).fetchall()
        for _, path, _ in checkpoints:
            files[path] = (store.root / path).read_bytes()
        runs.append({"id": info.id, "name": info.name, "algo": info.algo, "env": info.env, "status": info.status,
                     "config": info.config, "created_at": info.created_at, "updated_at": info.updated_at,
                     "metrics": [tuple(m) for m in metrics], "checkpoints": [tuple(c) for c in checkpoints]})
    if all_files:
        for path in store.root.rglob("*"):
            relative = path.relative_to(store.root).as_posix()
            if path.is_file() and not relative.startswith(DB_FILENAME) and relative not in files:
                files[relative] = path.read_bytes()
    return {"runs": runs, "files": files}


def latest_checkpoint_step(bundle: dict, run_id: str) -> int:
    """The step of a bundled run's latest checkpoint (-1 when it has none): where a resumed run restarts."""
    run = next((r for r in bundle["runs"] if r["id"] == run_id), None)
    steps = [c[0] for c in run["checkpoints"]] if run else []
    return max(steps, default=-1)


def import_bundle(store: RunStore, bundle: dict, *, after_step: dict[str, int] | None = None,
                  status: str | None = None) -> list[str]:
    """Write a bundle's runs into ``store`` (ids kept; a run already there is updated). Files are written
    (atomically) before the rows that point at them. Metric rows up to ``after_step[run_id]`` are kept as the
    store has them and only later ones replaced, as a local resume does (so dashboards polling new rows see
    each step once); ``status`` overrides the bundled status (e.g. "stopped" for a run about to resume)."""
    after_step = after_step or {}
    for relative, data in bundle["files"].items():
        target = (store.root / relative).resolve()
        if store.root.resolve() not in target.parents:
            raise ValueError(f"a bundled file would land outside the store: {relative!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda f, data=data: f.write(data))
    ids = []
    for run in bundle["runs"]:
        keep = after_step.get(run["id"], -1)
        with store._write(durable=True) as conn:
            conn.execute(
                "INSERT INTO runs (id, name, algo, env, status, config, created_at, updated_at, pid) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
                "config = excluded.config, updated_at = excluded.updated_at, pid = NULL",
                (run["id"], run["name"], run["algo"], run["env"], status or run["status"],
                 json.dumps(run["config"], sort_keys=True), run["created_at"], run["updated_at"]))
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run["id"], keep))
            conn.executemany("INSERT INTO metrics (run_id, step, wall_time, name, value) VALUES (?, ?, ?, ?, ?)",
                             [(run["id"], *m) for m in run["metrics"] if m[0] > keep])
            old = {p for (p,) in conn.execute("SELECT path FROM checkpoints WHERE run_id = ?", (run["id"],))}
            conn.execute("DELETE FROM checkpoints WHERE run_id = ?", (run["id"],))
            conn.executemany("INSERT INTO checkpoints (run_id, step, path, created_at) VALUES (?, ?, ?, ?)",
                             [(run["id"], *c) for c in run["checkpoints"]])
        for path in old - {c[1] for c in run["checkpoints"]}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(store.root / path)
        ids.append(run["id"])
    return ids

