"""Machine and per-run resource use for the monitor: CPU/memory (psutil), GPU memory via torch.cuda when
available, and CPU/RSS of each run's process."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from workbench.storage.runs import process_alive

_PROCS: dict[int, Any] = {}


def _process_stats(pid: int) -> dict | None:
    import psutil

    try:
        proc = _PROCS.get(pid)
        if proc is None or not proc.is_running():
            proc = _PROCS[pid] = psutil.Process(pid)
            proc.cpu_percent(None)  # the first call primes the counter
        family = [proc] + proc.children(recursive=True)
        rss = 0
        for p in family:
            try:
                rss += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return {"pid": pid, "cpu_percent": proc.cpu_percent(None), "rss_bytes": rss}
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        _PROCS.pop(pid, None)
        return None


def gpu_stats() -> list[dict]:
    """Per GPU: name and memory used/total (torch.cuda.mem_get_info), utilization when pynvml allows.
    Empty when torch or CUDA is absent (torch is only imported when it is installed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return []
    if "torch" not in sys.modules and not os.path.exists("/proc/driver/nvidia"):
        return []  # no NVIDIA driver: do not pay for importing torch just to learn there is no GPU
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        out = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            entry = {"index": i, "name": torch.cuda.get_device_name(i), "memory_used_bytes": total - free,
                     "memory_total_bytes": total}
            try:
                entry["utilization_percent"] = torch.cuda.utilization(i)
            except Exception:  # needs pynvml
                pass
            out.append(entry)
        return out
    except Exception:
        return []


def system_stats(run_pids: Mapping[str, int | None] | None = None, *, gpu: bool = True) -> dict:
    """Machine CPU/memory (and GPUs), and CPU/RSS of each live run process (run id -> pid)."""
    import psutil

    vm = psutil.virtual_memory()
    runs = {}
    for run_id, pid in (run_pids or {}).items():
        if pid and process_alive(pid):
            stats = _process_stats(pid)
            if stats is not None:
                runs[run_id] = stats
    return {
        "cpu_percent": psutil.cpu_percent(None),
        "cpu_count": psutil.cpu_count(),
        "memory_used_bytes": vm.total - vm.available,
        "memory_total_bytes": vm.total,
        "memory_percent": vm.percent,
        "gpus": gpu_stats() if gpu else [],
        "runs": runs,
    }
