"""What the checkpoint checksum costs (issue 15): a PPO checkpoint of the paper's IMPALA network (width 1) with
its Adam state is saved and loaded through the run store; the SHA-256 of the file (computed after each save and
verified before each load) is timed on its own and reported as a share of the save and of the load.

    PYTHONPATH=. python benchmarks/bench_checkpoint_checksum.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_report  # noqa: E402

from workbench.rl.policy import ImpalaCNN  # noqa: E402
from workbench.storage.checkpoint_files import sha256_of  # noqa: E402
from workbench.storage.runs import RunStore  # noqa: E402


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    machine_report()
    model = ImpalaCNN(width=1.0)
    optimizer = torch.optim.Adam(model.parameters())
    for p in model.parameters():  # Adam state as after a step: exp_avg and exp_avg_sq per parameter
        p.grad = torch.randn_like(p)
    optimizer.step()
    state = {"state": {"model": model.state_dict(), "optimizer": optimizer.state_dict()},
             "torch_rng": torch.get_rng_state(), "iteration": 1, "global_step": 16384}
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(root)
        run = store.create_run(algo="ppo", env="coinrun", config={})
        steps = iter(range(1, 10**6))
        save_s = best_of(lambda: store.save_checkpoint(run, next(steps), state))
        _, path = store.latest_checkpoint(run)
        size = path.stat().st_size
        hash_s = best_of(lambda: sha256_of(path))
        load_s = best_of(lambda: store.load_checkpoint(run))
    print(f"checkpoint: {size / 2**20:.1f} MiB (IMPALA width 1 + Adam state)")
    print(f"save (torch.save + fsync + rename + SHA-256 + row): {save_s * 1e3:.1f} ms")
    print(f"load (SHA-256 + torch.load weights_only): {load_s * 1e3:.1f} ms")
    print(f"SHA-256 alone: {hash_s * 1e3:.1f} ms = {size / hash_s / 2**20:.0f} MiB/s; "
          f"{hash_s / save_s:.1%} of a save, {hash_s / load_s:.1%} of a load")


if __name__ == "__main__":
    main()
