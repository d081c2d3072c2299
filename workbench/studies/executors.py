"""Where a study's jobs run, behind one interface (:class:`Executor`): ``start(job)``, ``poll(timeout)`` for the
jobs that ended, ``stop()`` to ask every running job to checkpoint and stop, ``close()``.

* :class:`LocalExecutor` (the default): each job is an OS process on this machine (workbench.studies.worker),
  at most ``parallel`` at a time, the CPU threads split evenly between them. Output goes to
  ``<store>/logs/studies/<study>/<run>.log``. Jobs write straight into the study's store.
* :class:`RayExecutor`: each job is a Ray task with its CPU/GPU resources (``ray.init(address=...)``, or a
  local Ray runtime). The task trains into a scratch store on its node; its runs (records, metrics,
  checkpoint bytes, other files) come back through Ray's object store and the driver writes them into the
  study's store (workbench.storage.transfer), so SQLite is never opened over a network filesystem. A run to
  resume travels to the task the same way. The workbench must be importable on every node.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.storage.runs import RunStore
from workbench.storage.transfer import export_bundle, import_bundle, latest_checkpoint_step

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Job:
    idx: int            # the point's index in its study
    job_path: str       # "module:function"
    settings: dict
    name: str           # the run's unique name


@dataclass(frozen=True)
class JobResult:
    idx: int
    status: str         # finished | stopped | failed
    run_id: str | None
    error: str | None = None


class Executor:
    """The interface every executor implements."""

    slots: int = 1

    def start(self, job: Job) -> None:
        raise NotImplementedError

    def poll(self, timeout: float = 0.2) -> list[JobResult]:
        """Results of the jobs that ended (waits up to ``timeout`` seconds for one)."""
        raise NotImplementedError

    def active(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask every running job to stop after checkpointing; their results arrive through poll()."""

    def close(self) -> None:
        """Release resources (after the last poll)."""


def _latest_run_id(store: RunStore, name: str) -> str | None:
    runs = store.runs_named(name)
    return runs[0].id if runs else None


def _log_tail(path: Path, limit: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


class LocalExecutor(Executor):
    def __init__(self, store_root: str | os.PathLike, *, parallel: int = 1, threads: int | None = None,
                 log_dir: str | os.PathLike | None = None):
        if parallel < 1:
            raise ValueError(f"parallel must be >= 1 (got {parallel})")
        self.store = RunStore(store_root)
        self.slots = parallel
        self.threads = threads or max(1, (os.cpu_count() or 1) // parallel)
        self.log_dir = Path(log_dir) if log_dir else self.store.root / "logs" / "studies"
        self._procs: dict[int, tuple[Job, subprocess.Popen, Path]] = {}

    def start(self, job: Job) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / (re.sub(r"[^A-Za-z0-9_.=,-]+", "_", job.name)[:200] + ".log")
        argv = [sys.executable, "-m", "workbench.studies.worker", "--store", str(self.store.root),
                "--job", job.job_path, "--name", job.name, "--settings", json.dumps(job.settings),
                "--parent", str(os.getpid())]
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        with open(log_path, "ab") as log:
            # A file, never a pipe: the job must not die of a broken pipe when the driver does.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._procs[job.idx] = (job, proc, log_path)

    def active(self) -> int:
        return len(self._procs)

    def poll(self, timeout: float = 0.2) -> list[JobResult]:
        deadline = time.monotonic() + timeout
        while True:
            results = []
            for idx, (job, proc, log_path) in list(self._procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self._procs[idx]
                run_id = _latest_run_id(self.store, job.name)
                if code == 0:
                    results.append(JobResult(idx, "finished", run_id))
                elif code == 3 or code == -signal.SIGTERM:
                    results.append(JobResult(idx, "stopped", run_id))
                else:
                    results.append(JobResult(idx, "failed", run_id,
                                             f"exit {code}; log {log_path}:\n{_log_tail(log_path)}"))
            if results or time.monotonic() >= deadline or not self._procs:
                return results
            time.sleep(0.05)

    def stop(self) -> None:
        for _, proc, _ in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)


def run_in_scratch_store(job_path: str, settings: dict, name: str, bundle: dict, threads: int) -> dict:
    """A Ray task's body: train in a scratch store on this node (seeded with the run to resume, if any) and
    return every run the job made, with its files, as a bundle."""
    from workbench.studies.spec import resolve_job

    if threads:
        import torch

        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="workbench-study-") as scratch:
        store = RunStore(scratch)
        import_bundle(store, bundle, status="stopped")
        run_id = resolve_job(job_path)(settings, scratch, name)
        ids = [r.id for r in store.list_runs()]
        out = export_bundle(store, ids, all_files=True)
        out["run_id"] = run_id
        out["status"] = store.get_run(run_id).status
        return out


class RayExecutor(Executor):
    def __init__(self, store_root: str | os.PathLike, *, address: str | None = None, parallel: int | None = None,
                 cpus_per_run: float = 1, gpus_per_run: float = 0, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise RuntimeError("the Ray executor needs Ray: pip install 'rl-workbench[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address:
                ray.init(address=address, **kwargs)
            else:  # a local runtime on this machine
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
        self.store = RunStore(store_root)
        self.threads = max(1, int(cpus_per_run))
        total = ray.cluster_resources().get("CPU", 1)
        self.slots = parallel or max(1, int(total // max(cpus_per_run, 1e-9)))
        self._task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(run_in_scratch_store)
        self._refs: dict = {}  # ObjectRef -> (job, step its resume starts from)

    def start(self, job: Job) -> None:
        existing = self.store.runs_named(job.name)
        bundle = export_bundle(self.store, [existing[0].id]) if existing else {"runs": [], "files": {}}
        start_step = latest_checkpoint_step(bundle, existing[0].id) if existing else -1
        ref = self._task.remote(job.job_path, job.settings, job.name, bundle, self.threads)
        self._refs[ref] = (job, start_step)

    def active(self) -> int:
        return len(self._refs)

    def poll(self, timeout: float = 0.2) -> list[JobResult]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        results = []
        for ref in ready:
            job, start_step = self._refs.pop(ref)
            try:
                out = self._ray.get(ref)
            except Exception as e:  # the task raised (RayTaskError wraps the job's exception) or its node died
                results.append(JobResult(job.idx, "failed", _latest_run_id(self.store, job.name),
                                         f"{type(e).__name__}: {str(e)[-1500:]}"))
                continue
            run_id = out["run_id"]
            import_bundle(self.store, out, after_step={run_id: start_step})
            status = out["status"] if out["status"] in ("finished", "stopped") else "failed"
            error = None if status != "failed" else f"the run ended with status {out['status']!r}"
            results.append(JobResult(job.idx, status, run_id, error))
        return results

    def stop(self) -> None:
        # A cancelled task's progress since it was shipped is lost; its run resumes from the last checkpoint
        # that reached this store.
        for ref in list(self._refs):
            self._ray.cancel(ref)

    def close(self) -> None:
        pass
