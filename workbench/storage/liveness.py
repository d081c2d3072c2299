"""Liveness of training processes: a run records its process id and a heartbeat (every HEARTBEAT_S, from a
thread of `workbench.rl.algos.session.TrainingSession`); a run marked "running" whose process is gone (SIGKILL,
OOM killer, a reboot) or whose heartbeat is older than HEARTBEAT_STALE_S has died and can be resumed.
"""

from __future__ import annotations

import time

HEARTBEAT_S = 30.0            # a training process records a heartbeat this often ...
HEARTBEAT_STALE_S = 600.0     # ... and a run silent this long has died (even if its pid was reused since)


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


def alive(pid: int | None, heartbeat_at: float | None, now: float | None = None) -> bool:
    """Whether a run's training process (``pid``, last heartbeat ``heartbeat_at``; None before the first) lives."""
    now = time.time() if now is None else now
    if heartbeat_at is not None and now - heartbeat_at > HEARTBEAT_STALE_S:
        return False
    return process_alive(pid)
