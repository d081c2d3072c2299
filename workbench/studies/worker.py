"""One study job in its own OS process (the local executor starts these):

    python -m workbench.studies.worker --store ROOT --job MODULE:FUNCTION --name RUN_NAME --settings JSON \
        --parent PID

Its CPU threads are set by the executor through OMP_NUM_THREADS (which torch follows).

Prints the run id last. Exit status: 0 the run finished, 3 it stopped (SIGTERM: it checkpointed first), 1 the
job failed (the traceback is in the output). The process asks the kernel for SIGTERM when its parent (the
sweep driver) dies, so a killed driver leaves no orphan training: each run checkpoints and stops, and the next
sweep resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

EXIT_STOPPED = 3


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench.studies.worker")
    parser.add_argument("--store", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--parent", type=int, default=0)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    from workbench.storage.runs import RunStore
    from workbench.studies.spec import resolve_job

    run_id = resolve_job(args.job)(json.loads(args.settings), args.store, args.name)
    print(run_id, flush=True)
    status = RunStore(args.store).get_run(run_id).status
    return 0 if status == "finished" else EXIT_STOPPED if status == "stopped" else 1


if __name__ == "__main__":
    sys.exit(main())
