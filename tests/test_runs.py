"""Tests of workbench.storage.runs: the SQLite run store and checkpoint files."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.storage.runs import (
    RUN_STATUSES,
    MetricRow,
    RunInfo,
    RunStore,
    UnknownRunError,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def run_id(store):
    return store.create_run(algo="ppo", env="coinrun", config={"lr": 5e-4})


def _python(code: str, *args: str) -> subprocess.Popen:
    """Start ``python -c code args...`` in a real second process that can import workbench."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# ---- runs ------------------------------------------------------------------------------------


def test_create_get_list_runs(store):
    config = {"lr": 5e-4, "num_envs": 64, "gamma": 0.999, "nested": {"a": [1, 2.5, "x"], "b": None}, "ok": True}
    t0 = time.time()
    first = store.create_run(algo="ppo", env="coinrun", config=config, name="baseline")
    second = store.create_run(algo="ppg", env="Star Pilot/hard", config={})

    info = store.get_run(first)
    assert isinstance(info, RunInfo)
    assert (info.id, info.name, info.algo, info.env, info.status) == (first, "baseline", "ppo", "coinrun", "created")
    assert info.config == config  # JSON round trip
    assert info.pid is None and info.env_steps == 0
    assert t0 <= info.created_at <= info.updated_at <= time.time()

    # Ids are unique and filesystem-safe; the name defaults to the id.
    assert first != second
    assert first.startswith("ppo-coinrun-")
    for rid in (first, second):
        assert all(c.isalnum() or c in "-_." for c in rid), rid
    assert store.get_run(second).name == second

    assert [r.id for r in store.list_runs()] == [second, first]  # newest first

    # A second store on the same root sees the same runs (it is the database, not memory).
    assert RunStore(store.root).get_run(first) == info


def test_ids_unique_over_many_runs(store):
    ids = {store.create_run(algo="ppo", env="coinrun", config={}) for _ in range(200)}
    assert len(ids) == 200


def test_set_status_and_pid(store, run_id):
    store.set_status(run_id, "running", pid=1234)
    info = store.get_run(run_id)
    assert (info.status, info.pid) == ("running", 1234)
    store.set_status(run_id, "finished")  # pid kept when not given
    assert (store.get_run(run_id).status, store.get_run(run_id).pid) == ("finished", 1234)


def test_invalid_status_lists_valid_ones(store, run_id):
    with pytest.raises(ValueError) as excinfo:
        store.set_status(run_id, "done")
    message = str(excinfo.value)
    assert "'done'" in message
    for status in RUN_STATUSES:
        assert status in message
    assert store.get_run(run_id).status == "created"


def test_unknown_run_id(store, run_id):
    with pytest.raises(UnknownRunError) as excinfo:
        store.get_run("no-such-run")
    assert isinstance(excinfo.value, ValueError)
    assert "no-such-run" in str(excinfo.value) and "list_runs" in str(excinfo.value)
    for call in (
        lambda: store.set_status("no-such-run", "running"),
        lambda: store.log_metrics("no-such-run", 0, {"x": 1.0}),
        lambda: store.read_metrics("no-such-run"),
        lambda: store.metric_series("no-such-run", "x"),
        lambda: store.latest_metrics("no-such-run"),
        lambda: store.truncate_metrics("no-such-run", 0),
        lambda: store.save_checkpoint("no-such-run", 0, {}),
        lambda: store.latest_checkpoint("no-such-run"),
    ):
        with pytest.raises(UnknownRunError, match="no-such-run"):
            call()


def test_bad_input_is_a_clear_value_error(store, run_id):
    with pytest.raises(ValueError, match="JSON"):
        store.create_run(algo="ppo", env="coinrun", config={"fn": object()})
    with pytest.raises(ValueError, match="algo"):
        store.create_run(algo="", env="coinrun", config={})
    with pytest.raises(ValueError, match="step"):
        store.log_metrics(run_id, -1, {"x": 1.0})
    with pytest.raises(ValueError, match="step"):
        store.log_metrics(run_id, 1.5, {"x": 1.0})
    with pytest.raises(ValueError, match="'x'"):
        store.log_metrics(run_id, 0, {"x": "not a number"})
    with pytest.raises(ValueError, match="list"):
        store.read_metrics(run_id, "x")
    with pytest.raises(ValueError, match="pid"):
        store.set_status(run_id, "running", pid="1234")
    with pytest.raises(ValueError, match="keep"):
        store.save_checkpoint(run_id, 0, {}, keep=0)
    with pytest.raises(ValueError, match="state"):
        store.save_checkpoint(run_id, 0, [torch.zeros(1)])
    assert store.read_metrics(run_id) == []  # nothing half-written by the failed calls


def test_workbench_home_env_var(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    store = RunStore()
    assert store.root == home and store.db_path == home / "workbench.sqlite"
    store.create_run(algo="ppo", env="coinrun", config={})
    assert store.db_path.is_file()

    monkeypatch.delenv("WORKBENCH_HOME")
    monkeypatch.chdir(tmp_path)
    assert RunStore().root == tmp_path / "runs"
    assert RunStore(tmp_path / "explicit").root == tmp_path / "explicit"  # argument beats the env var


def test_schema_version(store):
    conn = sqlite3.connect(store.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        RunStore(store.root)


# ---- metrics ---------------------------------------------------------------------------------


def _log_some(store, run_id, rng):
    """Log random metrics at shuffled steps; returns what was logged as (step, name, value)."""
    logged = []
    for step in rng.permutation(40):
        metrics = {name: float(rng.normal()) for name in ("loss", "return", "entropy") if rng.random() < 0.8}
        store.log_metrics(run_id, int(step), metrics)
        logged += [(int(step), name, value) for name, value in metrics.items()]
    return logged


def test_read_metrics_after_id(store, run_id):
    store.log_metrics(run_id, 0, {"loss": 1.0, "return": 0.0}, wall_time=100.0)
    first = store.read_metrics(run_id)
    assert [(r.step, r.wall_time, r.name, r.value) for r in first] == [
        (0, 100.0, "loss", 1.0), (0, 100.0, "return", 0.0)
    ]
    assert all(isinstance(r, MetricRow) for r in first)

    store.log_metrics(run_id, 8, {"loss": 0.5, "return": 2.0})
    newer = store.read_metrics(run_id, after_id=first[-1].id)
    assert [(r.step, r.name, r.value) for r in newer] == [(8, "loss", 0.5), (8, "return", 2.0)]
    assert [r.id for r in newer] == sorted(r.id for r in newer) and newer[0].id > first[-1].id
    assert store.read_metrics(run_id, after_id=newer[-1].id) == []
    assert [r.value for r in store.read_metrics(run_id, ["return"])] == [0.0, 2.0]
    assert store.read_metrics(run_id, []) == []
    assert store.get_run(run_id).env_steps == 8


def test_metrics_are_per_run(store, run_id):
    other = store.create_run(algo="ppo", env="bigfish", config={})
    store.log_metrics(run_id, 1, {"x": 1.0})
    store.log_metrics(other, 5, {"x": 5.0})
    assert [r.value for r in store.read_metrics(run_id)] == [1.0]
    assert store.latest_metrics(other) == {"x": (5, 5.0)}


def test_metric_series_and_latest_against_plain_python(store, run_id):
    logged = _log_some(store, run_id, np.random.default_rng(0))
    for name in ("loss", "return", "entropy"):
        expected = sorted((s, v) for s, n, v in logged if n == name)  # steps are unique here
        steps, values = store.metric_series(run_id, name)
        assert steps.dtype == np.int64 and values.dtype == np.float64
        assert steps.tolist() == [s for s, _ in expected]
        assert values.tolist() == [v for _, v in expected]
    latest = {}
    for step, name, value in logged:
        if name not in latest or step > latest[name][0]:
            latest[name] = (step, value)
    assert store.latest_metrics(run_id) == latest
    assert store.metric_series(run_id, "never-logged")[0].shape == (0,)


def test_latest_metrics_ties_take_last_logged(store, run_id):
    store.log_metrics(run_id, 5, {"x": 1.0})
    store.log_metrics(run_id, 9, {"x": 2.0})
    store.log_metrics(run_id, 9, {"x": 3.0})
    store.log_metrics(run_id, 7, {"x": 4.0})
    assert store.latest_metrics(run_id) == {"x": (9, 3.0)}


def test_nan_and_numpy_torch_values(store, run_id):
    store.log_metrics(run_id, np.int64(3), {"a": np.float32(0.5), "b": torch.tensor(2.0), "c": float("nan")})
    latest = store.latest_metrics(run_id)
    assert latest["a"] == (3, 0.5) and latest["b"] == (3, 2.0)
    assert latest["c"][0] == 3 and np.isnan(latest["c"][1])
    assert np.isnan(store.metric_series(run_id, "c")[1][0])


def test_truncate_metrics_against_plain_filter(store, run_id):
    logged = _log_some(store, run_id, np.random.default_rng(1))
    after_step = 17
    deleted = store.truncate_metrics(run_id, after_step)
    kept = sorted((s, n, v) for s, n, v in logged if s <= after_step)
    assert deleted == len(logged) - len(kept)
    assert sorted((r.step, r.name, r.value) for r in store.read_metrics(run_id)) == kept
    assert store.get_run(run_id).env_steps == max(s for s, _, _ in kept)
    assert store.truncate_metrics(run_id, after_step) == 0


def test_ids_not_reused_after_truncate(store, run_id):
    """A dashboard polling with after_id must see rows logged after a truncation (resume)."""
    store.log_metrics(run_id, 10, {"x": 1.0})
    store.log_metrics(run_id, 20, {"x": 2.0})
    last_seen = store.read_metrics(run_id)[-1].id
    store.truncate_metrics(run_id, 10)
    store.log_metrics(run_id, 15, {"x": 3.0})
    assert [(r.step, r.value) for r in store.read_metrics(run_id, after_id=last_seen)] == [(15, 3.0)]


def test_threads_share_a_store(store, run_id):
    def writer(offset):
        for i in range(50):
            store.log_metrics(run_id, offset * 1000 + i, {"x": float(i)})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.step for r in store.read_metrics(run_id)) == sorted(k * 1000 + i for k in range(4) for i in range(50))


# ---- checkpoints -----------------------------------------------------------------------------


def _state(step):
    return {
        "model": {"conv.weight": torch.randn(4, 3, 3, 3), "fc.bias": torch.arange(5, dtype=torch.float32) + step},
        "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 5e-4, "params": [0]}]},
        "step": step,
        "lr": 2.5e-4,
        "game": "coinrun",
        "rng": torch.get_rng_state(),
    }


def _assert_state_equal(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_state_equal(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_state_equal(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def _stray_files(store, run_id):
    return [p for p in store.checkpoint_dir(run_id).iterdir() if not p.name.startswith("step_") or p.suffix != ".pt"]


def test_checkpoint_round_trip(store, run_id):
    assert store.latest_checkpoint(run_id) is None
    with pytest.raises(ValueError, match="no checkpoints"):
        store.load_checkpoint(run_id)
    state = _state(100)
    path = store.save_checkpoint(run_id, 100, state)
    assert path == store.root / "checkpoints" / run_id / "step_100.pt" and path.is_file()
    assert store.latest_checkpoint(run_id) == (100, path)
    _assert_state_equal(store.load_checkpoint(run_id), state)
    _assert_state_equal(store.load_checkpoint(run_id, 100), state)
    with pytest.raises(ValueError, match="step 5"):
        store.load_checkpoint(run_id, 5)
    assert _stray_files(store, run_id) == []  # no temp files left


def test_keep_last_three_checkpoints(store, run_id):
    states = {}
    for step in (10, 20, 30, 40, 50):
        states[step] = _state(step)
        store.save_checkpoint(run_id, step, states[step])
    directory = store.checkpoint_dir(run_id)
    assert [s for s, _ in store.list_checkpoints(run_id)] == [30, 40, 50]
    assert sorted(p.name for p in directory.iterdir()) == ["step_30.pt", "step_40.pt", "step_50.pt"]
    assert store.latest_checkpoint(run_id) == (50, directory / "step_50.pt")
    _assert_state_equal(store.load_checkpoint(run_id, 40), states[40])
    store.save_checkpoint(run_id, 60, _state(60), keep=1)
    assert [s for s, _ in store.list_checkpoints(run_id)] == [60]


class _Arbitrary:
    """Not a tensor/number/container: weights_only loading must refuse to un-pickle it."""

    def __init__(self):
        self.payload = 42


def test_arbitrary_object_is_refused_on_load(store, run_id):
    store.save_checkpoint(run_id, 1, {"model": {"w": torch.zeros(2)}, "thing": _Arbitrary()})
    with pytest.raises(pickle.UnpicklingError, match="weights_only") as excinfo:
        store.load_checkpoint(run_id)
    assert any("step_1.pt" in note for note in excinfo.value.__notes__)


def test_crash_during_save_keeps_previous_checkpoint(store, run_id, monkeypatch):
    good = _state(10)
    store.save_checkpoint(run_id, 10, good)

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.save_checkpoint(run_id, 20, _state(20))
    monkeypatch.undo()

    assert store.latest_checkpoint(run_id) == (10, store.checkpoint_dir(run_id) / "step_10.pt")
    _assert_state_equal(store.load_checkpoint(run_id), good)
    assert not (store.checkpoint_dir(run_id) / "step_20.pt").exists()
    assert _stray_files(store, run_id) == []


def test_half_written_file_is_never_latest(store, run_id):
    """A temp or truncated file left by a killed process is not in the table, so it is ignored."""
    store.save_checkpoint(run_id, 10, _state(10))
    directory = store.checkpoint_dir(run_id)
    (directory / ".step_20.pt.abc123.tmp").write_bytes(b"PK\x03\x04 half")
    (directory / "step_30.pt").write_bytes(b"PK\x03\x04 renamed but never registered")
    assert store.latest_checkpoint(run_id)[0] == 10
    assert store.load_checkpoint(run_id)["step"] == 10


# ---- other processes -------------------------------------------------------------------------

_WRITER = """
    import sys, time
    from workbench.storage.runs import RunStore
    root, run_id, n, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    store = RunStore(root)
    for step in range(n):
        store.log_metrics(run_id, step, {f"m{k}": float(step * 100 + k) for k in range(METRICS_PER_STEP)})
        print(step, flush=True)  # printed only after the commit returned
        time.sleep(sleep)
"""


def _writer(store, run_id, n, sleep, metrics_per_step):
    code = _WRITER.replace("METRICS_PER_STEP", str(metrics_per_step))
    return _python(code, str(store.root), run_id, str(n), str(sleep))


def test_reader_while_other_process_writes(store, run_id):
    n, per_step = 200, 2
    proc = _writer(store, run_id, n, 0.002, per_step)
    counts, rows, last_id = [], [], 0
    try:
        while True:
            done = proc.poll() is not None
            counts.append(len(store.read_metrics(run_id)))
            new = store.read_metrics(run_id, after_id=last_id)  # incremental, as a dashboard polls
            rows += new
            last_id = new[-1].id if new else last_id
            if done:
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert counts == sorted(counts), "the number of rows a reader sees never shrinks"
    assert all(c % per_step == 0 for c in counts), "a reader never sees half a transaction"
    assert any(0 < c < n * per_step for c in counts), "the reader overlapped the writer"
    assert counts[-1] == n * per_step
    expected = [(s, f"m{k}", float(s * 100 + k)) for s in range(n) for k in range(per_step)]
    assert [(r.step, r.name, r.value) for r in rows] == expected


def test_sigkill_mid_write_loses_no_committed_metric(store, run_id):
    per_step = 50  # big transactions, so the kill likely lands inside one
    proc = _writer(store, run_id, 100_000, 0.0, per_step)
    reported = []
    try:
        for line in proc.stdout:
            reported.append(int(line))
            if len(reported) >= 30:
                break
        os.kill(proc.pid, signal.SIGKILL)
        rest, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    reported += [int(line) for line in rest.split()]
    assert proc.returncode == -signal.SIGKILL, stderr
    assert len(reported) >= 30

    conn = sqlite3.connect(store.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    reopened = RunStore(store.root)
    rows = reopened.read_metrics(run_id)
    by_step = {}
    for r in rows:
        by_step.setdefault(r.step, {})[r.name] = r.value
    for step in reported:
        assert by_step.get(step) == {f"m{k}": float(step * 100 + k) for k in range(per_step)}, step
    # Whole transactions only, and no gaps: the steps present are 0..max.
    assert all(len(v) == per_step for v in by_step.values())
    assert sorted(by_step) == list(range(max(by_step) + 1))
    reopened.log_metrics(run_id, 10**9, {"after": 1.0})  # still writable
