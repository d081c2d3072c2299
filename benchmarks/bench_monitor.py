"""Training monitor benchmark: server-side time of one refresh, and write-to-page-data latency.

    python benchmarks/bench_monitor.py                       # 8 runs x 1,000,000 points per metric
    python benchmarks/bench_monitor.py --points 200000       # smaller, e.g. on a busy machine

1. Refresh: a store with RUNS runs, each with POINTS points of each drawn metric (episode_return and
   normalized_return, the monitor's defaults), all selected in a TrainingMonitor. The first refresh
   reads everything (reported as "initial load"); then, like live training, each run logs one more
   step and one refresh is timed (read the new rows, smooth, downsample, build the figure, runs table,
   config and system panes). Goal: under 200 ms.
2. Latency: the dashboard is served (threaded, the default 1 s refresh period), a session is opened, a metric
   is written, and the time until it is in the session's figure data (what is sent to the page) is
   measured. Goal: under 2 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.storage.runs import RunStore  # noqa: E402

METRICS = ("episode_return", "normalized_return")


def fill_store(root: Path, runs: int, points: int) -> list[str]:
    store = RunStore(root)
    ids = []
    rng = np.random.default_rng(0)
    for r in range(runs):
        run_id = store.create_run(algo="ppo", env="coinrun", config={"seed": r, "learning_rate": 5e-4})
        ids.append(run_id)
        steps = (np.arange(1, points + 1) * 16384).tolist()
        walls = (1e9 + np.arange(points) * 0.5).tolist()
        conn = sqlite3.connect(store.db_path)
        conn.execute("PRAGMA synchronous = OFF")
        with conn:
            for name in METRICS:
                values = (np.cumsum(rng.normal(size=points)) * 0.01).tolist()
                conn.executemany("INSERT INTO metrics (run_id, step, wall_time, name, value) VALUES (?, ?, ?, ?, ?)",
                                 zip([run_id] * points, steps, walls, [name] * points, values))
        conn.close()
        store.set_status(run_id, "running")
    return ids


def bench_refresh(runs: int, points: int, repeats: int) -> None:
    from widgets.training_monitor import TrainingMonitor

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ids = fill_store(Path(tmp), runs, points)
        print(f"store: {runs} runs x {points:,} points x {len(METRICS)} metrics written in "
              f"{time.perf_counter() - t0:.1f} s")
        store = RunStore(tmp)
        monitor = TrainingMonitor(store_root=tmp, auto_refresh=False)
        t0 = time.perf_counter()
        monitor.selected_run_ids = ids  # the first refresh: reads every row once
        print(f"initial load (read {runs * points * len(METRICS):,} rows, smooth, draw): "
              f"{time.perf_counter() - t0:.2f} s")
        times, idle = [], []
        for k in range(repeats):
            for run_id in ids:
                store.log_metrics(run_id, (points + 1 + k) * 16384, {name: 0.0 for name in METRICS})
            t0 = time.perf_counter()
            monitor.refresh()
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            monitor.refresh()
            idle.append(time.perf_counter() - t0)
        print(f"refresh with one new step per run: median {statistics.median(times) * 1000:.0f} ms "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; goal < 200 ms); "
              f"{monitor.points_plotted:,} points drawn")
        print(f"refresh with nothing new: median {statistics.median(idle) * 1000:.0f} ms")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_latency(samples: int) -> None:
    import urllib.request

    import panel as pn

    from widgets.training_monitor import TrainingMonitor

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        run_id = store.create_run(algo="ppo", env="coinrun", config={})
        store.log_metrics(run_id, 1, {"episode_return": 0.0})
        made: list[TrainingMonitor] = []

        def page():
            made.append(TrainingMonitor(store_root=tmp, selected_run_ids=[run_id], smoothing=0.0))
            return made[-1]

        port = free_port()
        server = pn.serve({"/": page}, port=port, address="127.0.0.1", threaded=True, show=False, verbose=False)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            monitor = made[-1]
            lat = []
            for k in range(samples):
                step = 100 + k
                t0 = time.perf_counter()
                store.log_metrics(run_id, step, {"episode_return": float(k)})
                while not any(t.get("name") and step in t["x"] for t in monitor.plot.object["data"]):
                    time.sleep(0.005)
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError("the metric never reached the page data")
                lat.append(time.perf_counter() - t0)
                time.sleep(0.37)  # de-phase from the refresh period
            print(f"write -> page data (refresh period {monitor.refresh_period_ms} ms): median "
                  f"{statistics.median(lat):.2f} s, max {max(lat):.2f} s over {samples} writes (goal < 2 s)")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-samples", type=int, default=5)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} (timings are slower on a busy machine)")
    bench_refresh(args.runs, args.points, args.repeats)
    if not args.skip_latency:
        bench_latency(args.latency_samples)


if __name__ == "__main__":
    main()
