"""What the sweep machinery costs: a small study (2 widths x 2 seeds on colour_cue) run by the local executor
with 1 and 2 processes at a time and by a local Ray runtime; prints, per executor, the wall time, env steps
per second over the whole study, the slot time per run not spent training (process start, imports, env
creation; for Ray also shipping the run back) and the training throughput in FLOP/s as a fraction of the
machine's GEMM peak (when runs log compute_flops).

    PYTHONPATH=. python benchmarks/bench_sweep.py [--steps 4096] [--no-ray]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import fraction_of_peak, machine_report  # noqa: E402

from workbench.storage.runs import RunStore  # noqa: E402
from workbench.studies.executors import LocalExecutor, RayExecutor  # noqa: E402
from workbench.studies.spec import StudySpec  # noqa: E402
from workbench.studies.sweep import run_study  # noqa: E402


def measure(label: str, make_executor, steps: int, peak: dict) -> None:
    with tempfile.TemporaryDirectory() as root:
        spec = StudySpec(name="bench", algo="ppo", base={"env": "colour_cue", "total_timesteps": steps, "num_envs": 8,
                                                         "num_steps": 32, "num_minibatches": 4},
                         axes={"width": [0.25, 0.5], "seed": [0, 1]})
        executor = make_executor(root)
        slots = executor.slots
        t0 = time.perf_counter()
        report = run_study(spec, root, executor, log=lambda m: None)
        wall = time.perf_counter() - t0
        store = RunStore(root)
        training, flops = [], 0.0
        for p in report.failed:
            print(f"  {label}: {p.run_name} failed: {(p.error or '')[-400:]}")
        for p in report.points:
            if p.run_id is None:
                continue
            rows = store.read_metrics(p.run_id, ["iteration", "compute_flops"])
            walls = [r.wall_time for r in rows if r.name == "iteration"]
            info = store.get_run(p.run_id)
            training.append(max(walls) - info.created_at)
            flops += max((r.value for r in rows if r.name == "compute_flops"), default=0.0)
        n = max(1, len(training))
        overhead = (wall * min(slots, n) - sum(training)) / n
        line = (f"{label:24} {report.status:8} wall {wall:6.1f} s  {n * steps / wall:8.0f} env steps/s  "
                f"training {sum(training) / n:5.1f} s/run  overhead {overhead:5.1f} s/run")
        if flops:
            rate = flops / sum(training)
            line += f"  {rate / 1e9:.2f} GFLOP/s per run = {fraction_of_peak(rate, peak):.1%} of the fp32 GEMM peak"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4096)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    peak = machine_report()
    print(f"study: 2 widths x 2 seeds, colour_cue, {args.steps} env steps per run")
    measure("local, 1 at a time", lambda root: LocalExecutor(root, parallel=1), args.steps, peak)
    measure("local, 2 at a time", lambda root: LocalExecutor(root, parallel=2), args.steps, peak)
    if not args.no_ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            measure("ray (local, 2 CPUs)", lambda root: RayExecutor(root, cpus_per_run=1), args.steps, peak)
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
