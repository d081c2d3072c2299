"""`workbench train ... --nproc-per-node K` (and `resume`): start K ranks on this machine with torchrun
(torch.distributed.run, `--standalone`), each running the same command without the flag; report the run.

Several machines: run torchrun yourself on each (docs/distributed.md):
    torchrun --nnodes N --nproc-per-node K --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m workbench.cli train ...

A rank that dies (SIGKILL, out of memory, an exception) makes torchrun stop the other ranks; this launcher then
prints which rank failed and how to resume: the run continues from its last checkpoint, and the metrics logged
after that checkpoint are dropped and produced again, as after a single-process crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

RUN_ID_FILE_ENV = "WORKBENCH_RUN_ID_FILE"  # rank 0 writes the run id here as soon as it exists


def announce_run_id(run_id: str) -> None:
    """Rank 0: tell the launcher which run this job trains (so it can say how to resume a failed job)."""
    path = os.environ.get(RUN_ID_FILE_ENV)
    if path:
        Path(path).write_text(run_id)


def without_flag(argv: list[str], flag: str) -> list[str]:
    """`argv` without `flag VALUE` / `flag=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


def torchrun_command(argv: list[str], nproc_per_node: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}",
            "-m", "workbench.cli", *argv]


def run_ranks(argv: list[str], nproc_per_node: int, *, env: dict | None = None) -> tuple[int, str | None]:
    """Run `workbench <argv>` as `nproc_per_node` ranks on this machine; (exit code, run id or None).
    Rank 0's output passes through (it prints the run id at the end)."""
    with tempfile.TemporaryDirectory(prefix="workbench-launch-") as tmp:
        id_file = Path(tmp) / "run_id"
        child_env = {**(env or os.environ), RUN_ID_FILE_ENV: str(id_file),
                     "OMP_NUM_THREADS": (env or os.environ).get("OMP_NUM_THREADS", "1")}
        # Rank 0's stdout is the job's; torchrun's own log (and the other ranks' tracebacks) go to stderr.
        proc = subprocess.run(torchrun_command(argv, nproc_per_node), env=child_env, check=False)
        run_id = id_file.read_text().strip() if id_file.exists() else None
    return proc.returncode, run_id


def failure_message(returncode: int, run_id: str | None, nproc_per_node: int, store_flag: str = "") -> str:
    """What to tell the user when a rank of the job failed."""
    how = (f"-{-returncode} (signal)" if returncode < 0 else str(returncode))
    text = (f"a rank of the {nproc_per_node}-process job failed (torchrun exit status {how}; its report above "
            "names the rank and the signal or error), so every rank was stopped")
    if run_id is None:
        return text + "; no run had been created yet"
    return (text + f". Run {run_id} keeps its last checkpoint; continue it with "
            f"`workbench{store_flag} resume {run_id} --nproc-per-node {nproc_per_node}`")
