"""Headless pieces of the training monitor (workbench/monitor/metrics.py) against plain references, and the
launcher with a real tiny colour_cue run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.monitor import launch
from workbench.monitor import metrics as mon
from workbench.monitor import system as system_use
from workbench.storage import tensorboard
from workbench.storage.runs import RunStore, process_alive

REPO = Path(__file__).resolve().parents[1]
TINY = dict(env="colour_cue", num_envs=8, width=0.25, num_steps=16, num_minibatches=2, timesteps=1_000_000)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "store")


# ---- incremental reading ------------------------------------------------------------------------

def test_poll_reads_only_new_rows_and_matches_the_store(store, monkeypatch):
    a = store.create_run(algo="ppo", env="coinrun", config={})
    b = store.create_run(algo="ppo", env="coinrun", config={})
    for step in range(1, 6):
        store.log_metrics(a, step * 10, {"episode_return": step * 1.0, "value_loss": 1.0 / step})
    store.log_metrics(b, 7, {"episode_return": math.nan})
    cache = mon.MetricCache(store)

    seen_after = []
    original = mon._read_columns
    monkeypatch.setattr(mon, "_read_columns", lambda st, run_id, names, after_id, upto_id=None:
                        seen_after.append((run_id, after_id)) or original(st, run_id, names, after_id, upto_id))
    assert cache.poll([a, b]) == {a: 10, b: 1}
    assert cache.poll([a, b]) == {a: 0, b: 0}  # nothing new: nothing read
    last_seen = {run_id: max(r.id for r in store.read_metrics(run_id)) for run_id in (a, b)}
    store.log_metrics(a, 60, {"episode_return": 6.0})
    assert cache.poll([a, b]) == {a: 1, b: 0}
    # each poll asked only for rows after the last id it had seen
    assert seen_after[-2:] == [(a, last_seen[a]), (b, last_seen[b])]

    for run_id in (a, b):
        for name in ("episode_return", "value_loss"):
            steps, values = store.metric_series(run_id, name)
            series = cache.series(run_id, name)
            if series is None:
                assert len(steps) == 0
                continue
            np.testing.assert_array_equal(series.steps, steps)
            np.testing.assert_array_equal(series.values, values)  # NaN stays NaN
    assert cache.metric_names() == ["episode_return", "value_loss"]


def test_poll_follows_a_resume_that_truncated_metrics(store):
    run = store.create_run(algo="ppo", env="coinrun", config={})
    store.set_status(run, "running", pid=101)
    for step in (10, 20, 30, 40):
        store.log_metrics(run, step, {"x": float(step)})
    cache = mon.MetricCache(store)
    cache.poll([run], pids={run: 101})
    store.truncate_metrics(run, after_step=20)  # what a resume from the step-20 checkpoint does ...
    store.set_status(run, "running", pid=202)  # ... in a new process
    store.log_metrics(run, 30, {"x": -30.0})
    cache.poll([run], pids={run: store.get_run(run).pid})
    steps, values = store.metric_series(run, "x")
    np.testing.assert_array_equal(cache.series(run, "x").steps, steps)
    np.testing.assert_array_equal(cache.series(run, "x").values, values)


def test_poll_keeps_out_of_order_steps_sorted_and_reads_only_chosen_metrics(store):
    run = store.create_run(algo="ppo", env="coinrun", config={})
    logged = [(10, {"a": 1.0, "b": 5.0}), (20, {"a": 2.0}), (15, {"a": 9.0, "b": 6.0}), (20, {"a": 3.0})]
    cache = mon.MetricCache(store)
    for step, metrics in logged[:2]:
        store.log_metrics(run, step, metrics)
    cache.poll([run], names=["a"])
    assert cache.metric_names() == ["a"]  # b was not read
    for step, metrics in logged[2:]:
        store.log_metrics(run, step, metrics)
    cache.poll([run], names=["a", "b"])  # b newly chosen: its earlier rows are read too
    for name in ("a", "b"):
        steps, values = store.metric_series(run, name)  # ordered by step, then logging order
        np.testing.assert_array_equal(cache.series(run, name).steps, steps)
        np.testing.assert_array_equal(cache.series(run, name).values, values)


def test_latest_metrics_incremental_equals_the_store(store):
    run = store.create_run(algo="ppo", env="coinrun", config={})
    latest = mon.LatestMetrics(store)
    assert latest.get(store.get_run(run)) == {}
    for step, metrics in [(10, {"a": 1.0}), (20, {"a": 2.0, "b": 1.0}), (15, {"a": 9.0}), (20, {"b": 7.0})]:
        store.log_metrics(run, step, metrics)
        assert latest.get(store.get_run(run)) == store.latest_metrics(run)
    store.truncate_metrics(run, 12)
    store.set_status(run, "running", pid=7)  # a resume: new process
    assert latest.get(store.get_run(run)) == store.latest_metrics(run)


# ---- downsampling -------------------------------------------------------------------------------

def downsample_by_loop(x, y, n_buckets):
    """Reference: loop over buckets, keep first/last and each bucket's first min and first max."""
    n = len(x)
    keep = {0, n - 1}
    x0, x1 = float(x[0]), float(x[-1])
    buckets: dict[int, list[int]] = {}
    for i in range(n):
        b = 0 if x1 == x0 else min(int((float(x[i]) - x0) * (n_buckets / (x1 - x0))), n_buckets - 1)
        buckets.setdefault(b, []).append(i)
    for members in buckets.values():
        finite = [i for i in members if not math.isnan(y[i])]
        if finite:
            keep.add(min(finite, key=lambda i: (y[i], i)))
            keep.add(min(finite, key=lambda i: (-y[i], i)))
    return sorted(keep)


@pytest.mark.parametrize("seed", range(4))
def test_downsample_matches_a_loop_and_keeps_extremes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3000, 6000))
    x = np.cumsum(rng.integers(0, 5, size=n)).astype(np.int64)  # repeats and gaps
    y = rng.normal(size=n)
    y[rng.integers(0, n, size=20)] = np.nan
    y[int(rng.integers(0, n))] = 50.0  # a spike must survive
    idx = mon.downsample_minmax(x, y, 100)
    assert idx.tolist() == downsample_by_loop(x, y, 100)
    assert len(idx) <= 2 * 100 + 2
    assert np.nanmax(y[idx]) == np.nanmax(y) and np.nanmin(y[idx]) == np.nanmin(y)
    assert idx[0] == 0 and idx[-1] == n - 1


def test_downsample_keeps_short_series_whole():
    x = np.arange(10)
    assert mon.downsample_minmax(x, x * 1.0, 100).tolist() == list(range(10))


# ---- smoothing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("weight", [0.0, 0.25, 0.6, 0.9, 0.99, 0.999, 1.0])
def test_ema_matches_tensorboards_loop(weight):
    rng = np.random.default_rng(1)
    y = rng.normal(size=1500) * 3 + 1
    y[[0, 7, 400, 1499]] = [np.nan, np.inf, -np.inf, np.nan]
    np.testing.assert_allclose(mon.ema_smooth(y, weight), mon.ema_smooth_loop(y, weight), rtol=1e-9, atol=1e-9,
                               equal_nan=True)


def test_ema_first_value_is_debiased_and_constant_series_untouched():
    assert mon.ema_smooth(np.array([5.0, 7.0]), 0.9)[0] == pytest.approx(5.0)  # not 0.5: debiased
    np.testing.assert_array_equal(mon.ema_smooth(np.full(10, 3.0), 0.9), np.full(10, 3.0))
    with pytest.raises(ValueError):
        mon.ema_smooth(np.ones(3), 1.5)


# ---- seed groups and diffs ----------------------------------------------------------------------

def test_group_key_ignores_seed_and_name_only(store):
    ids = [store.create_run(algo="ppo", env="coinrun", config={"lr": 1, "seed": s, "name": f"n{s}"}) for s in range(3)]
    other = store.create_run(algo="ppo", env="coinrun", config={"lr": 2, "seed": 0})
    ewma = store.create_run(algo="ppo-ewma", env="coinrun", config={"lr": 1, "seed": 0})
    groups = mon.group_runs([store.get_run(r) for r in ids + [other, ewma]])
    assert [[i.id for i in g] for g in groups] == [ids, [other], [ewma]]


def test_aggregate_seeds_matches_numpy_reference():
    x = np.arange(0, 100, 10)
    curves = [(x, np.sin(x / 10.0) + k) for k in range(4)]
    agg = mon.aggregate_seeds(curves)
    stack = np.stack([y for _, y in curves])
    np.testing.assert_array_equal(agg.x, x)
    np.testing.assert_allclose(agg.mean, stack.mean(0))
    np.testing.assert_allclose(agg.low, stack.min(0))
    np.testing.assert_allclose(agg.high, stack.max(0))
    np.testing.assert_allclose(agg.stderr, stack.std(0, ddof=1) / 2.0)
    assert agg.count == 4


def test_aggregate_seeds_uses_the_overlap_and_interpolates():
    a = (np.array([0.0, 10.0, 20.0, 30.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    b = (np.array([5.0, 15.0]), np.array([10.0, 20.0]))  # a shorter, offset seed
    agg = mon.aggregate_seeds([a, b])
    np.testing.assert_array_equal(agg.x, [5.0, 10.0, 15.0])
    np.testing.assert_allclose(agg.mean, [(0.5 + 10) / 2, (1 + 15) / 2, (1.5 + 20) / 2])
    one = mon.aggregate_seeds([a])
    np.testing.assert_array_equal(one.stderr, np.zeros(4))


def test_config_diff():
    a = {"lr": 1, "seed": 0, "same": [1, 2], "only_a": True}
    b = {"lr": 2, "seed": 0, "same": [1, 2], "only_b": None}
    assert mon.config_diff(a, b) == [("lr", 1, 2), ("only_a", True, mon.MISSING), ("only_b", mon.MISSING, None)]
    assert mon.config_diff(a, dict(a)) == []


def test_parse_seeds():
    assert launch.parse_seeds("0") == [0]
    assert launch.parse_seeds("0, 2,1") == [0, 2, 1]
    assert launch.parse_seeds("3-5") == [3, 4, 5]
    for bad in ("", "a", "1,b"):
        with pytest.raises(ValueError):
            launch.parse_seeds(bad)


def test_system_stats_reports_the_machine_and_a_live_process():
    stats = system_use.system_stats({"me": os.getpid(), "gone": None}, gpu=True)
    assert 0 <= stats["memory_percent"] <= 100 and stats["memory_total_bytes"] > 0
    assert stats["cpu_count"] >= 1 and isinstance(stats["gpus"], list)
    assert "gone" not in stats["runs"]
    assert stats["runs"]["me"]["rss_bytes"] > 10 * 2**20


# ---- launching ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({**TINY, "num_minibatches": 3}, "divisible"),
    ({**TINY, "env": "coinrunn"}, "unknown env"),
    ({**TINY, "mode": "medium"}, "distribution_mode"),
    ({**TINY, "not_a_setting": 1}, "not_a_setting"),
    ({**TINY, "num_levels": "x"}, "num_levels"),
    ({**TINY, "learning_rate": "fast"}, "learning_rate"),
    ({**TINY, "timesteps": 1.5}, "total_timesteps"),
])
def test_invalid_launch_starts_nothing(store, fields, message, monkeypatch):
    spawned = []
    monkeypatch.setattr(launch.subprocess, "Popen", lambda *a, **k: spawned.append(a))
    with pytest.raises(ValueError, match=message):
        launch.launch_run(store.root, "ppo", fields)
    with pytest.raises(ValueError):
        launch.launch_run(store.root, "ppo-typo", TINY)
    assert spawned == [] and store.list_runs() == []


def test_launch_builds_an_argument_list_in_a_new_session(store, monkeypatch):
    calls = []

    class FakeProc:
        pid = 4242
        returncode = None

        def poll(self):
            return None

        def wait(self):
            return 0

    def fake_popen(argv, **kwargs):
        calls.append((argv, kwargs))
        run = store.create_run(algo="ppo", env="colour_cue", config={})
        store.set_status(run, "running", pid=4242)
        return FakeProc()

    monkeypatch.setattr(launch.subprocess, "Popen", fake_popen)
    run_id, pid = launch.launch_run(store.root, "ppo", {**TINY, "timesteps": 1e6, "name": "a; rm -rf /"})
    [(argv, kwargs)] = calls
    assert isinstance(argv, list) and kwargs["start_new_session"] is True and "shell" not in kwargs
    assert argv[:3] == [sys.executable, "-m", "workbench.cli"] and "train" in argv
    assert 'name="a; rm -rf /"' in argv  # one argument, never parsed by a shell
    assert "total_timesteps=1000000" in argv and argv[argv.index("--env") + 1] == "colour_cue"
    assert pid == 4242 and store.get_run(run_id).pid == 4242


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_launch_watch_stop_resume_a_real_run(store, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the run is tiny; do not fight other work for cores
    run_id, pid = launch.launch_run(store.root, "ppo", TINY)
    try:
        info = store.get_run(run_id)
        assert info.status == "running" and info.pid == pid and process_alive(pid)
        assert os.getsid(pid) == pid  # its own session: a dashboard's Ctrl-C or exit does not reach it
        cache = mon.MetricCache(store)
        counts = []

        def grew():
            cache.poll([run_id])
            counts.append(cache.series(run_id, "episode_return").n if cache.series(run_id, "episode_return") else 0)
            return len(set(counts)) >= 3 and counts[-1] >= 2

        wait_until(grew, 240, "metrics to grow")
        assert launch.stop_run(store.root, run_id)
        wait_until(lambda: store.get_run(run_id).status == "stopped", 120, 'status "stopped"')
        wait_until(lambda: not process_alive(pid), 30, "the process to exit")
        assert not launch.stop_run(store.root, run_id)  # nothing to signal now
        assert store.latest_checkpoint(run_id) is not None

        steps_before = store.get_run(run_id).env_steps
        new_pid = launch.resume_run(store.root, run_id)
        wait_until(lambda: store.get_run(run_id).status == "running" and store.get_run(run_id).pid == new_pid,
                   120, "the resumed run")
        with pytest.raises(ValueError, match="running"):
            launch.resume_run(store.root, run_id)
        wait_until(lambda: store.get_run(run_id).env_steps > steps_before, 240, "the resumed run to log")
        assert launch.stop_run(store.root, run_id)
        wait_until(lambda: store.get_run(run_id).status == "stopped", 120, 'status "stopped" after resume')
    finally:
        info = store.get_run(run_id)
        if process_alive(info.pid):
            os.kill(info.pid, 9)


@pytest.mark.slow
def test_a_launched_run_outlives_the_process_that_launched_it(store, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code = ("import sys; from workbench.monitor import launch as m; "
            f"r, p = m.launch_run(sys.argv[1], 'ppo', {TINY!r}); print(r, p, flush=True)")
    launcher = subprocess.run([sys.executable, "-c", code, str(store.root)], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
    assert launcher.returncode == 0, launcher.stderr
    run_id, pid = launcher.stdout.split()
    pid = int(pid)
    try:
        steps = store.get_run(run_id).env_steps
        wait_until(lambda: store.get_run(run_id).env_steps > steps, 240, "the orphaned run to keep logging")
        assert process_alive(pid)
    finally:
        if process_alive(pid):
            os.kill(pid, 15)
            wait_until(lambda: not process_alive(pid), 120, "the run to stop")


def test_incremental_ema_equals_the_whole_series_smoothed():
    rng = np.random.default_rng(3)
    y = rng.normal(size=3000)
    y[[5, 100, 2000]] = np.nan
    ema = mon.IncrementalEma(0.95)
    for end in (0, 1, 2, 70, 71, 500, 1999, 3000):
        out = ema.update(y[:end])
        np.testing.assert_allclose(out, mon.ema_smooth_loop(y[:end], 0.95), rtol=1e-9, atol=1e-9, equal_nan=True)
    # constant so far, then not; a shrunk series (resume) starts over
    z = np.r_[np.ones(10), 2.0, 3.0]
    ema = mon.IncrementalEma(0.5)
    np.testing.assert_array_equal(ema.update(z[:10]), np.ones(10))
    np.testing.assert_allclose(ema.update(z), mon.ema_smooth_loop(z, 0.5))
    np.testing.assert_allclose(ema.update(z[:11], version=1), mon.ema_smooth_loop(z[:11], 0.5))


# ---- TensorBoard event files ----------------------------------------------------------------------

def test_crc32c_known_values():
    assert tensorboard.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tensorboard.crc32c(b"") == 0
    assert tensorboard.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 test vector (32 zero bytes)


def test_export_tensorboard_round_trips(store, tmp_path):
    run = store.create_run(algo="ppo", env="coinrun", config={})
    logged = [(128, {"episode_return": 1.5, "value_loss": 0.25}), (256, {"episode_return": -2.0}),
              (2**40, {"episode_return": 3.0})]
    for step, metrics in logged:
        store.log_metrics(run, step, metrics, wall_time=1000.0 + step % 7)
    path = tensorboard.export_tensorboard(store, run, tmp_path / "tb")
    assert path.parent == tmp_path / "tb" / run and path.name.startswith("events.out.tfevents.")
    events = tensorboard.read_tensorboard_scalars(path)
    assert [(step, values) for _, step, values in events] == logged  # float32 holds these exactly
    assert [wall for wall, _, _ in events] == [1000.0 + step % 7 for step, _ in logged]

    tb = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="tensorboard is not installed: the cross-check with its reader is skipped")
    acc = tb.EventAccumulator(str(path.parent))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["episode_return", "value_loss"]
    assert [(e.step, e.value) for e in acc.Scalars("episode_return")] == [(128, 1.5), (256, -2.0), (2**40, 3.0)]


def test_block_extremes_keep_extremes_and_match_exact_downsampling_of_their_candidates():
    rng = np.random.default_rng(5)
    n = 200_000
    x = np.arange(n) * 16
    y = np.cumsum(rng.normal(size=n))
    y[rng.integers(0, n, 50)] = np.nan
    y[123_457] = 1e6  # a one-point spike
    blocks = mon.BlockExtremes(block=64)
    for end in (1000, 70_001, 150_000, n):  # grows by appends, summarized incrementally
        idx = blocks.downsample(x[:end], y[:end], 1000)
    full = mon.downsample_minmax(x, y, 1000)
    assert idx[0] == 0 and idx[-1] == n - 1 and 123_457 in idx
    assert np.nanmax(y[idx]) == np.nanmax(y) and np.nanmin(y[idx]) == np.nanmin(y)
    assert len(idx) <= 2002
    # a bucket's drawn extremes are within one block of the exact ones
    bucket = lambda i: np.minimum((x[i] - x[0]) * 1000 // (x[-1] - x[0]), 999)  # noqa: E731
    exact_lo = {b: y[i] for b, i in zip(bucket(full), full)}
    assert len(set(bucket(idx))) == len(set(bucket(full))) == len(exact_lo)
    # and the candidates are exactly each complete block's first min and first max
    cand = blocks.update(y)
    for b in (0, 17, 1000, n // 64 - 1):
        block = y[b * 64:(b + 1) * 64]
        assert b * 64 + np.nanargmin(block) in cand and b * 64 + np.nanargmax(block) in cand


def test_training_with_tensorboard_writes_event_files(tmp_path):
    from workbench.rl.algos.ppo import PPOConfig, train
    from workbench.storage.tensorboard import read_tensorboard_scalars

    store = RunStore(tmp_path)
    run = train(PPOConfig(env="colour_cue", num_envs=4, num_steps=8, num_minibatches=2, width=0.25,
                          total_timesteps=96, tensorboard=True), store=store, progress=False)
    files = list((tmp_path / "tensorboard" / run).glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = read_tensorboard_scalars(files[0])
    assert [step for _, step, _ in events] == [32, 64, 96]
    steps, values = store.metric_series(run, "policy_loss")
    assert [e[2]["policy_loss"] for e in events] == pytest.approx(list(values), rel=1e-6)  # float32 in the file
