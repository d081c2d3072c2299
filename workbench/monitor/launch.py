"""Training runs as their own OS processes, started, stopped and resumed from the dashboard.

:func:`launch_run`, :func:`stop_run`, :func:`resume_run` run ``python -m workbench.cli ... train`` with an
argument list, in a new process session so they outlive the dashboard; form fields are validated with
``make_config`` before anything starts.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.rl.algos.config_check import check_values
from workbench.storage.runs import RunInfo, RunStore, process_alive

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for runs started from a source tree

# Fields of a launch form that are not config fields.
FORM_ALIASES = {"timesteps": "total_timesteps", "levels": "num_levels", "mode": "distribution_mode"}


def normalize_fields(fields: Mapping[str, Any]) -> dict:
    """Form fields -> config overrides: aliases resolved, blank text dropped (= the paper default)."""
    out = {}
    for key, value in fields.items():
        key = FORM_ALIASES.get(key, key)
        if isinstance(value, str):
            value = value.strip()
            if value == "" and key != "name":
                continue
            if value == "":
                value = None
        out[key] = value
    return out


def validate_launch(algo: str, fields: Mapping[str, Any]):
    """The validated config of a launch (ValueError with a readable message when the form is invalid)."""
    return _validated(algo, fields)[0]


def _validated(algo: str, fields: Mapping[str, Any]):
    from workbench import registry
    from workbench.rl.env_registry import validate_env_name

    overrides = normalize_fields(fields)
    mode = overrides.pop("distribution_mode", "easy")
    if "env" in overrides:
        validate_env_name(overrides["env"])
    # Types and ranges by the engines' own check (workbench.rl.algos.config_check): 1e6 steps becomes an int.
    overrides = check_values(registry.config_class(algo), overrides)
    config = registry.make_config(algo, mode, **overrides)
    return config, {"distribution_mode": mode, **overrides}


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _spawn(store_root: Path, argv: list[str], log_name: str) -> subprocess.Popen:
    logs = store_root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{log_name}.log"
    with open(log_path, "ab") as log:
        # Output goes to a file, never a pipe: a pipe would break (and kill the run) when the dashboard exits.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(store_root), env=_child_env())
    proc.log_path = log_path  # type: ignore[attr-defined]
    # Reap it when it exits (no zombie while the dashboard lives); the run does not depend on this thread.
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _wait_for_run_of_pid(store: RunStore, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info in store.list_runs():
            if info.pid == proc.pid:
                return info.id
        if proc.poll() is not None:
            raise RuntimeError(f"the training process exited (code {proc.returncode}) before registering a run:\n"
                               f"{_log_tail(proc.log_path)}")
        time.sleep(0.1)
    raise RuntimeError(f"the training process (pid {proc.pid}) registered no run within {timeout:.0f} s; "
                       f"its log: {proc.log_path}")


def launch_run(store_root: str | os.PathLike, algo: str, fields: Mapping[str, Any], *,
               timeout: float = 120.0) -> tuple[str, int]:
    """Start one training run as its own OS process session; returns ``(run_id, pid)``.

    ``fields`` are config settings (``env``, ``mode``/``distribution_mode``, ``num_levels``, ``timesteps``,
    ``seed``, ``width``, ``device``, any hyperparameter); they are validated with ``make_config`` first,
    so invalid input raises ValueError and starts nothing. Waits until the process has registered its run
    in the store (``timeout`` seconds)."""
    config, overrides = _validated(algo, fields)
    store_root = Path(store_root).expanduser().absolute()
    mode = overrides.pop("distribution_mode", config.distribution_mode)
    env_name = overrides.pop("env", config.env)
    argv = [sys.executable, "-m", "workbench.cli", "--store", str(store_root), "train",
            "--algo", algo, "--env", str(env_name), "--distribution-mode", str(mode), "--no-progress"]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    store = RunStore(store_root)
    proc = _spawn(store_root, argv, f"{time.strftime('%Y%m%d-%H%M%S')}-{algo}-{secrets.token_hex(3)}")
    try:
        run_id = _wait_for_run_of_pid(store, proc, timeout)
    except RuntimeError:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        raise
    return run_id, proc.pid


def launch_seeds(store_root, algo: str, fields: Mapping[str, Any], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """One run per seed (all validated before the first starts)."""
    for seed in seeds:
        validate_launch(algo, {**fields, "seed": seed})
    return [launch_run(store_root, algo, {**fields, "seed": seed}) for seed in seeds]


def parse_seeds(text: str) -> list[int]:
    """``"0"``, ``"0,1,2"`` or ``"0-4"`` -> seeds; ValueError with a readable message otherwise."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"seeds must be integers like 0 or 0,1,2 or 0-4, got {text!r}") from None
    if not seeds:
        raise ValueError("give at least one seed")
    if len(seeds) > 64:
        raise ValueError(f"at most 64 seeds at once, got {len(seeds)}")
    return list(dict.fromkeys(seeds))


def stop_run(store_root: str | os.PathLike, run_id: str) -> bool:
    """Ask a running run to stop (SIGTERM: it checkpoints after the current iteration and records
    "stopped"). Returns False when its process is not alive (nothing is signalled)."""
    info = RunStore(store_root).get_run(run_id)
    if info.status != "running" or not process_alive(info.pid):
        return False
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def resume_run(store_root: str | os.PathLike, run_id: str) -> int:
    """Continue a stopped (or killed) run from its last checkpoint in a new process; returns its pid."""
    store_root = Path(store_root).expanduser().absolute()
    info = RunStore(store_root).get_run(run_id)
    if info.status == "running" and not info.died:
        raise ValueError(f"run {run_id} is running (pid {info.pid}); stop it before resuming")
    if info.status == "finished":
        raise ValueError(f"run {run_id} has finished; there is nothing to resume")
    argv = [sys.executable, "-m", "workbench.cli", "--store", str(store_root), "resume", run_id, "--no-progress"]
    proc = _spawn(store_root, argv, f"{run_id}-resume-{secrets.token_hex(3)}")
    return proc.pid


def resume_runs(store_root: str | os.PathLike, run_ids) -> tuple[list[str], list[str]]:
    """Resume each run (its own process); returns the resumed ids and, for the others, why not."""
    resumed, problems = [], []
    for run_id in run_ids:
        try:
            resume_run(store_root, run_id)
            resumed.append(run_id)
        except (ValueError, OSError) as e:
            problems.append(f"{run_id}: {e}")
    return resumed, problems


def display_status(info: RunInfo) -> str:
    """The store's status, except "running" whose process is gone (killed) or silent reads "died"."""
    return info.display_status


@dataclass
class WallTimeEstimate:
    seconds: float
    steps_per_second: float
    run_id: str
    run_name: str


def estimate_wall_time(store: RunStore, algo: str, env: str, timesteps: float) -> WallTimeEstimate | None:
    """How long ``timesteps`` env steps take at the speed the most recent run of ``algo`` on ``env`` measured
    (the median of its logged ``steps_per_second``); None when no such run logged a speed."""
    for info in sorted(store.list_runs(), key=lambda i: i.created_at, reverse=True):
        if info.algo != algo or info.env != env:
            continue
        _, sps = store.metric_series(info.id, "steps_per_second")
        sps = sps[np.isfinite(sps) & (sps > 0)]
        if len(sps):
            speed = float(np.median(sps))
            return WallTimeEstimate(timesteps / speed, speed, info.id, info.name)
    return None


def format_duration(seconds: float) -> str:
    """45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
