"""Learning from demonstrations (workbench.demonstrations, widgets/procgen_player.py): speed and learning.

    python benchmarks/bench_demonstrations.py [--scale test|small]

1. The browser player's server-side frame cost: one coinrun step with the 512x512 render plus the JPEG the page
   shows (median over frames), against the 66.7 ms a frame has at 15 frames/s.
2. Behavioural cloning throughput (demonstration samples per second, forward + backward of the IMPALA network,
   width 0.25, batch 64, fp32 on CPU) and its fraction of the measured GEMM peak (FLOPs counted by
   torch.utils.flop_counter).
3. Colour-cue learning: a scripted demonstrator that presses the right colour 70% of the time; BC on its
   episodes; PPO from the BC policy with a KL penalty (0.01) on a stated budget; the returns per 8-step episode
   of each on held-out levels as the MineRL tracks score them (demonstrations only / limited budget).
4. Exporting a set of random-action coinrun episodes: as a Minari dataset with lossless PNG frames (our
   default), with Minari's own JPEG frames, and as the `.npz` format; seconds and bytes on disk.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time

import numpy as np
import torch
from machine import fraction_of_peak, machine_report
from torch.utils.flop_counter import FlopCounterMode

from workbench import registry
from workbench.demonstrations.finetune import finetune_from_bc
from workbench.demonstrations.scripted import (
    HumanRecorder,
    colour_cue_demonstrator,
    record_demonstrator,
)
from workbench.demonstrations.sets import DemonstrationStore
from workbench.demonstrations.tracks import get_track, score_track
from workbench.rl.policy import ImpalaCNN, PolicyCore
from workbench.storage.runs import RunStore

SCALES = {"test": dict(episodes=60, updates=150, rl_steps=4096, eval_episodes=64, frames=30),
          "small": dict(episodes=200, updates=600, rl_steps=16384, eval_episodes=256, frames=150)}


def player_frame_ms(root, frames: int) -> float:
    from PIL import Image

    recorder = HumanRecorder("coinrun", 0, store_root=root, login="bench")
    times = []
    for t in range(frames):
        start = time.perf_counter()
        recorder.step(7)
        Image.fromarray(recorder.render()).save(io.BytesIO(), format="JPEG", quality=85)
        times.append(time.perf_counter() - start)
    recorder.close()
    return 1000 * float(np.median(times))


def export_costs(root, episodes: int) -> None:
    from pathlib import Path

    from workbench.demonstrations.minari_export import export_minari

    rng = np.random.default_rng(0)
    ids = record_demonstrator(lambda obs: int(rng.integers(15)), "coinrun", episodes=episodes, store_root=root,
                              max_steps=1000)
    demos = DemonstrationStore(root)
    demos.create("export-bench", ids, replace=True)
    steps = sum(e.length for e in demos.episodes("export-bench"))

    def size(path: Path) -> float:
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        return sum(f.stat().st_size for f in files) / 1e6

    rows = []
    for label, run in (("Minari, PNG frames", lambda out: export_minari(demos, "export-bench", "bench/png-v0", out)),
                       ("Minari, its JPEG frames", lambda out: export_minari(demos, "export-bench", "bench/jpeg-v0",
                                                                             out, lossless=False)),
                       (".npz format", lambda out: demos.export("export-bench", out / "set.npz"))):
        out = Path(tempfile.mkdtemp(dir=root))
        start = time.perf_counter()
        written = run(out)
        rows.append((label, time.perf_counter() - start, size(Path(written))))
    print(f"export of {episodes} random coinrun episodes ({steps:,} steps): " + "; ".join(
        f"{label} {seconds:.2f} s ({1000 * seconds / steps:.2f} ms/step, {mb:.1f} MB)" for label, seconds, mb in rows))


def bc_throughput(peak, batch: int = 64, steps: int = 20) -> None:
    core = PolicyCore(ImpalaCNN(width=0.25), "cpu", bf16=False, cuda_graph=False)
    optimizer = torch.optim.Adam(core.model.parameters(), lr=5e-4)
    obs = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8)
    target = torch.randint(0, 15, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(core.forward(obs)[0], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    print(f"BC update: {batch / seconds:,.0f} samples/s ({1000 * seconds:.1f} ms per batch of {batch}); "
          f"{flops / batch / 1e6:.1f} MFLOP per sample; {flops / seconds / 1e9:.2f} GFLOP/s = "
          f"{fraction_of_peak(flops / seconds, peak):.1%} of the fp32 GEMM peak")


def learning(root, s) -> None:
    store = RunStore(root)
    ids = record_demonstrator(colour_cue_demonstrator(0.7, seed=0), "colour_cue", episodes=s["episodes"],
                              store_root=root)
    DemonstrationStore(root).create("cue", ids)
    demo_return = float(np.mean([store_episode.ret for store_episode in DemonstrationStore(root).episodes("cue")]))
    config = registry.make_config("bc", demo_set="cue", env="colour_cue", width=0.25, updates=s["updates"],
                                  batch_size=64, holdout_fraction=0.2, eval_every=50, eval_episodes=0, device="cpu")
    start = time.perf_counter()
    bc_run = registry.train(config, store=store, progress=False)
    bc_seconds = time.perf_counter() - start
    ft_run = finetune_from_bc(bc_run, kl_coef=0.01, store=store, num_envs=16, num_steps=32, num_minibatches=4,
                              total_timesteps=s["rl_steps"], gamma=0.99, checkpoint_every=1000, device="cpu")
    latest = store.latest_metrics(bc_run)
    print(f"demonstrator (70% right): mean return {demo_return:.2f} over {len(ids)} recorded episodes "
          f"(expected {8 * (0.7 + 0.3 / 15):.2f})")
    print(f"BC: {s['updates']} updates in {bc_seconds:.1f} s; held-out accuracy {latest['test/accuracy'][1]:.3f}, "
          f"cross-entropy {latest['test/cross_entropy'][1]:.3f}")
    for track, run in ((get_track("minerl-demonstrations-only"), bc_run),
                       (get_track("minerl-limited-budget", env_budget=s["rl_steps"]), ft_run)):
        score = score_track(track, run, store=store, episodes=s["eval_episodes"], num_envs=16, device="cpu")
        print(f"{track.name}: {'BC' if run == bc_run else 'BC + PPO (KL 0.01)'}, {score['env_steps_used']} env "
              f"steps; held-out return {score['test_return']:.2f} ± {score['test_return_se']:.2f} "
              f"({s['eval_episodes']} episodes)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="test", choices=tuple(SCALES))
    args = parser.parse_args()
    peak = machine_report()
    s = SCALES[args.scale]
    with tempfile.TemporaryDirectory() as root:
        print(f"player frame (coinrun step + 512x512 render + JPEG): {player_frame_ms(root, s['frames']):.1f} ms "
              f"median (a frame at 15 frames/s has 66.7 ms)")
        bc_throughput(peak)
        learning(root, s)
        export_costs(root, 8)
