"""Start, stop and resume a study's sweep as its own OS process (what the Studies tab's buttons do), with the
Monitor's guard rails (workbench.monitor.launch): the spec and every point's settings are validated before
anything starts, a study whose driver is alive is not started twice, a finished study has nothing to resume,
and the driver runs in its own process session with its output in ``<store>/logs/`` so it outlives the page.

    create_study(store_root, toml_text)        # validate and store a spec given as TOML; returns its name
    start_study(store_root, name, parallel=2)  # the sweep driver: `workbench sweep --resume NAME`; returns its pid
    stop_study(store_root, name)               # SIGTERM: each run checkpoints and stops; resume continues
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import tomllib
from pathlib import Path

from workbench.monitor.launch import _spawn
from workbench.storage.studies import StudyStore
from workbench.studies.spec import StudySpec
from workbench.studies.sweep import driver_alive, register_study


def create_study(store_root, toml_text: str) -> str:
    """Store a study given as TOML text (workbench.studies.spec's format); returns its name."""
    try:
        values = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"the study is not valid TOML: {e}") from None
    spec = StudySpec.from_dict(values)
    register_study(spec, store_root)
    return spec.name


def start_study(store_root, name: str, *, parallel: int = 1, executor: str = "local",
                ray_address: str | None = None) -> int:
    """Run (or continue) a stored study in a new sweep driver process; returns its pid."""
    store_root = Path(store_root).expanduser().absolute()
    studies = StudyStore(store_root)
    info = studies.get(name)
    pid = driver_alive(store_root, name)
    if pid is not None:
        raise ValueError(f"study {name!r} is running (sweep pid {pid}); stop it first")
    if info.status == "finished" and all(p.status == "finished" for p in studies.points(name)):
        raise ValueError(f"study {name!r} has finished; there is nothing to resume")
    if not isinstance(parallel, int) or isinstance(parallel, bool) or not 1 <= parallel <= 64:
        raise ValueError(f"parallel must be a whole number from 1 to 64, got {parallel!r}")
    register_study(StudySpec.from_dict(info.spec), store_root)  # validates every point again
    argv = [sys.executable, "-m", "workbench.cli", "--store", str(store_root), "sweep", "--resume", name,
            "--parallel", str(parallel), "--executor", executor]
    if ray_address:
        argv += ["--ray-address", ray_address]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    proc = _spawn(store_root, argv, f"sweep-{safe}-{secrets.token_hex(3)}")
    return proc.pid


def stop_study(store_root, name: str) -> bool:
    """Ask a study's sweep driver to stop (its runs checkpoint and stop). False when no driver is alive."""
    pid = driver_alive(store_root, name)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
