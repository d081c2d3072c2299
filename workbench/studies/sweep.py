"""The sweep driver: run a study's points on an executor, recording each point's status in the store.

    report = run_study(spec, store_root, LocalExecutor(store_root, parallel=2))

Re-running a study continues it: points whose run finished are skipped; stopped, interrupted (the driver or
the job was killed) and failed ones start again, and a run that exists resumes from its last checkpoint (the
job kind does that: it finds its run by name). Killing the driver loses nothing that was checkpointed: its
local jobs get SIGTERM from the kernel (they checkpoint and stop), the store keeps every committed status,
and the next sweep picks up from there. A failed job is recorded with its error and the others go on.
SIGTERM/SIGINT to the driver stops the study: every job is asked to checkpoint and stop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from workbench.rl.algos.session import StopRequest
from workbench.storage.runs import RunStore, process_alive
from workbench.storage.studies import StudyStore
from workbench.studies.executors import Executor, Job, JobResult
from workbench.studies.spec import StudySpec, job_path, resolve_job


@dataclass(frozen=True)
class PointResult:
    idx: int
    point: dict
    run_name: str
    run_id: str | None
    status: str
    error: str | None


@dataclass(frozen=True)
class StudyReport:
    study: str
    status: str
    points: list[PointResult]

    @property
    def failed(self) -> list[PointResult]:
        return [p for p in self.points if p.status == "failed"]

    def summary(self) -> str:
        counts = {}
        for p in self.points:
            counts[p.status] = counts.get(p.status, 0) + 1
        lines = [f"study {self.study!r}: {self.status}; " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
        lines += [f"  failed {p.run_name}: {(p.error or '').strip().splitlines()[-1] if p.error else ''}"
                  for p in self.failed]
        return "\n".join(lines)


def validate_study(spec: StudySpec) -> None:
    """Check the spec and every point's settings before anything starts (ValueError naming the point)."""
    spec.validate()
    job = resolve_job(job_path(spec.kind))
    check = getattr(job, "validate", None)
    if check is None:
        return
    for point in spec.axis_points():
        try:
            check(spec.settings(point))
        except (ValueError, TypeError) as e:
            raise ValueError(f"study {spec.name!r}, run {spec.run_name(point)}: {e}") from None


def register_study(spec: StudySpec, store_root) -> StudyStore:
    """Validate the spec and store it (an existing study of that name must have the same spec)."""
    validate_study(spec)
    studies = StudyStore(store_root)
    points = spec.axis_points()
    studies.register(spec.name, kind=spec.kind, spec=spec.to_dict(), points=points,
                     run_names=[spec.run_name(p) for p in points])
    return studies


def stored_spec(store_root, name: str) -> StudySpec:
    """The spec of a study already in the store (to resume it)."""
    return StudySpec.from_dict(StudyStore(store_root).get(name).spec)


def driver_alive(store_root, name: str) -> int | None:
    """The pid of the sweep driver running this study now, if any."""
    info = StudyStore(store_root).get(name)
    return info.pid if info.status == "running" and process_alive(info.pid) else None


def run_study(spec: StudySpec, store_root, executor: Executor, *, log=print) -> StudyReport:
    """Run (or continue) every point of ``spec`` on ``executor``; returns each point's outcome."""
    studies = register_study(spec, store_root)
    store: RunStore = studies.runs
    pid = driver_alive(store_root, spec.name)
    if pid is not None and pid != os.getpid():
        raise RuntimeError(f"study {spec.name!r} is being run by another sweep (pid {pid}); stop it first")
    path = job_path(spec.kind)
    pending = []
    for p in studies.points(spec.name):
        runs = store.runs_named(p.run_name)
        if runs and runs[0].status == "finished":
            if p.status != "finished":
                studies.set_point(spec.name, p.idx, "finished", run_id=runs[0].id)
            continue
        studies.set_point(spec.name, p.idx, "queued", error=p.error if p.status == "failed" else None)
        pending.append(Job(p.idx, path, spec.settings(p.point), p.run_name))
    log(f"study {spec.name!r}: {len(pending)} of {len(studies.points(spec.name))} runs to go")
    studies.set_study_status(spec.name, "running", pid=os.getpid())
    stopping = False
    try:
        with StopRequest() as flag:  # SIGTERM/SIGINT: stop between runs
            while pending or executor.active():
                if flag.requested and not stopping:
                    stopping = True
                    log("stopping: every run checkpoints and stops")
                    executor.stop()
                while pending and not stopping and executor.active() < executor.slots:
                    job = pending.pop(0)
                    executor.start(job)
                    studies.set_point(spec.name, job.idx, "running")
                    log(f"started {job.name}")
                for result in executor.poll(0.5):
                    _record(studies, spec.name, result, log)
                if stopping and not executor.active():
                    break
    finally:
        executor.close()
        points = studies.points(spec.name)
        statuses = {p.status for p in points}
        status = ("finished" if statuses == {"finished"} else "stopped" if statuses & {"queued", "stopped", "running"}
                  else "failed")
        studies.set_study_status(spec.name, status, pid=None)
    report = StudyReport(spec.name, status, [PointResult(p.idx, p.point, p.run_name, p.run_id, p.status, p.error)
                                             for p in points])
    log(report.summary())
    return report


def _record(studies: StudyStore, name: str, result: JobResult, log) -> None:
    studies.set_point(name, result.idx, result.status, run_id=result.run_id, error=result.error)
    message = f"{result.status} {result.run_id or '(no run)'}"
    if result.error:
        message += f": {result.error.strip().splitlines()[-1]}"
    log(message)
