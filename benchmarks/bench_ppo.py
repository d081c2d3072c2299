"""PPO throughput and memory on the current device, next to a straightforward eager PyTorch PPO.

    python benchmarks/bench_ppo.py [--iterations 2] [--env coinrun] [--device auto] [--skip-baseline]

Prints, at the Procgen paper's easy-mode batch (64 envs x 256 steps, 8 minibatches, 3 epochs, IMPALA width 1):
  env-only steps/s (random actions, 64 envs); act() steps/s; update samples/s; end-to-end PPO env steps/s
  over `--iterations` full iterations; peak memory; and end-to-end time / (env + act + update time measured
  alone). Each end-to-end run is its own process, so its peak RSS is its own. The component timings are
  taken for the workbench's default runtime settings on this device and for the baseline's (fp32, NCHW).
Numbers go in benchmarks/RESULTS.md as ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_ENVS, NUM_STEPS, MINIBATCHES, EPOCHS = 64, 256, 8, 3
BATCH = NUM_ENVS * NUM_STEPS


def env_only(env_name: str, steps: int = 300) -> float:
    from workbench.rl.envs import ProcgenVecEnv

    env = ProcgenVecEnv(env_name, NUM_ENVS, num_levels=200)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 15, size=(steps, NUM_ENVS))
    env.step(actions[0])
    t = time.perf_counter()
    for a in actions:
        env.step(a)
    sps = steps * NUM_ENVS / (time.perf_counter() - t)
    env.close()
    return sps


def act_rate(core, reps: int = 30) -> float:
    obs = np.random.default_rng(0).integers(0, 256, (NUM_ENVS, 64, 64, 3), dtype=np.uint8)
    for _ in range(3):
        core.act(obs)
    _sync(core.device)
    t = time.perf_counter()
    for _ in range(reps):
        out = core.act(obs)
        out.action.cpu()  # the env needs the actions on the host each step
    return reps * NUM_ENVS / (time.perf_counter() - t)


def update_rate(core, minibatches: int = 4) -> float:
    """Samples/s of PPO minibatch steps (forward, losses, backward, clip, Adam) at the paper's minibatch size."""
    from workbench.rl.algos.ppo import PPOConfig, ppo_update
    from workbench.rl.algos.rollout import RolloutBuffer

    mb = BATCH // MINIBATCHES
    cfg = PPOConfig(num_envs=mb // 64, num_steps=64 * minibatches, num_minibatches=minibatches, update_epochs=1)
    buf = RolloutBuffer.allocate(cfg.num_steps, cfg.num_envs, (64, 64, 3), core.device)
    buf.obs.random_(0, 256)
    buf.actions.random_(0, 15)
    buf.log_probs.fill_(-np.log(15))
    adv = torch.randn(cfg.num_steps, cfg.num_envs, device=core.device)
    ret = torch.randn(cfg.num_steps, cfg.num_envs, device=core.device)
    opt = torch.optim.Adam(core.model.parameters(), lr=5e-4, eps=1e-5)
    gen = torch.Generator().manual_seed(0)
    ppo_update(core, opt, buf, adv, ret, PPOConfig(num_envs=cfg.num_envs, num_steps=64, num_minibatches=1,
                                                  update_epochs=1), gen)  # warm-up
    _sync(core.device)
    t = time.perf_counter()
    ppo_update(core, opt, buf, adv, ret, cfg, gen)
    _sync(core.device)
    return cfg.batch_size / (time.perf_counter() - t)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours_end_to_end(env_name: str, iterations: int, device: str) -> dict:
    from workbench.rl.algos.ppo import PPOConfig, train
    from workbench.storage.runs import RunStore

    store = RunStore(tempfile.mkdtemp(prefix="bench-"))
    cfg = PPOConfig.paper("easy", env=env_name, total_timesteps=iterations * BATCH, device=device,
                          checkpoint_every=10_000)
    t = time.perf_counter()
    run = train(cfg, store=store, progress=False)
    elapsed = time.perf_counter() - t
    _, rollout = store.metric_series(run, "rollout_seconds")
    _, update = store.metric_series(run, "update_seconds")
    peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {"impl": "workbench", "env_steps": iterations * BATCH, "seconds": elapsed,
            "loop_seconds": float(rollout.sum() + update.sum()),
            "steps_per_second": iterations * BATCH / float(rollout.sum() + update.sum()),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak_gpu_gb": peak_gpu}


def _subprocess_json(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--env", default="coinrun")
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--_e2e", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._e2e:
        print(json.dumps(ours_end_to_end(args.env, args.iterations, args.device)))
        return

    from workbench.rl.policy import ImpalaCNN, PolicyCore, resolve_device

    device = resolve_device(args.device)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else os.cpu_count()} "
          f"{'' if device.type == 'cuda' else 'CPU threads, torch uses ' + str(torch.get_num_threads())}); "
          f"torch {torch.__version__}; batch {NUM_ENVS}x{NUM_STEPS}, {MINIBATCHES} minibatches, {EPOCHS} epochs")
    env_sps = env_only(args.env)
    print(f"env only ({args.env}, 64 envs, random actions): {env_sps:,.0f} steps/s")

    # Component rates go through the workbench's own update (chunked accumulation included), varying only
    # the runtime settings; the straightforward baseline is measured end to end below (baseline_ppo.py).
    variants = {"workbench default": dict(), "fp32, NCHW": dict(bf16=False, channels_last=False)}
    if device.type == "cpu":
        variants["fp32, channels-last"] = dict(bf16=False, channels_last=True)
    rates = {}
    for label, kw in variants.items():
        torch.manual_seed(0)
        core = PolicyCore(ImpalaCNN(), device, **kw)
        rates[label] = (act_rate(core), update_rate(core))
        print(f"{label:24} bf16={core.bf16!s:5} channels_last={core.channels_last!s:5} "
              f"act {rates[label][0]:>9,.0f} steps/s   update {rates[label][1]:>8,.0f} samples/s")

    ours = _subprocess_json([__file__, "--_e2e", "1", "--iterations", str(args.iterations), "--env", args.env,
                             "--device", args.device])
    act_s, upd_s = rates["workbench default"]
    alone = BATCH / env_sps + BATCH / act_s + EPOCHS * BATCH / upd_s
    per_iter = ours["loop_seconds"] / args.iterations
    print(f"end-to-end workbench PPO: {ours['steps_per_second']:,.0f} env steps/s over {args.iterations} "
          f"iterations; peak RSS {ours['peak_rss_gb']:.2f} GB"
          + (f", peak GPU memory {ours['peak_gpu_gb']:.2f} GB" if ours.get("peak_gpu_gb") else ""))
    print(f"  end-to-end time / (env + act + update alone) = {per_iter:.1f} s / {alone:.1f} s = {per_iter / alone:.2f}")
    if not args.skip_baseline:
        base = _subprocess_json([os.path.join(HERE, "baseline_ppo.py"), "--iterations", str(args.iterations),
                                 "--env", args.env])
        print(f"end-to-end baseline PPO:  {base['steps_per_second']:,.0f} env steps/s; peak RSS "
              f"{base['peak_rss_gb']:.2f} GB")
        print(f"speed-up workbench / baseline: {ours['steps_per_second'] / base['steps_per_second']:.2f}x")


if __name__ == "__main__":
    main()
