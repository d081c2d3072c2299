"""Cost of the reference codes' update settings (docs/presets.md): one PPO update on a random batch for each
minibatch_unit x epoch_schedule x policy_loss, samples/s and fraction of the GEMM peak; and the time of the
aggregate scores' stratified bootstrap.

    python benchmarks/bench_update_options.py [--num-envs 16] [--num-steps 32] [--width 0.25] [--repeats 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import fraction_of_peak, machine_report

peak = machine_report()

import numpy as np
import torch

from workbench.rl.aggregate import interquartile_mean, stratified_bootstrap_ci
from workbench.rl.algos.ppo import PPOConfig, make_optimizers, make_policy, ppo_update
from workbench.rl.algos.returns import AdvantageNormalizer
from workbench.rl.algos.rollout import RolloutBuffer


def forward_flops(core, obs_shape=(64, 64, 3)) -> float:
    """2 x multiply-adds of one forward pass, counted with forward hooks on conv and linear layers."""
    total = [0.0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total[0] += 2.0 * k * output.numel()
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2.0 * module.in_features * output.numel()

    handles = [m.register_forward_hook(hook) for m in core.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        core.forward(torch.zeros((1, *obs_shape), dtype=torch.uint8))
    for h in handles:
        h.remove()
    return total[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--num-steps", type=int, default=32)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    for unit, schedule, loss in itertools.product(("timesteps", "rollouts"), ("interleaved", "separate"), ("clip", "kl")):
        config = PPOConfig(num_envs=args.num_envs, num_steps=args.num_steps, num_minibatches=4, width=args.width,
                           device="cpu", bf16=False, cuda_graph=False, update_epochs=1, value_epochs=2,
                           minibatch_unit=unit, epoch_schedule=schedule, policy_loss=loss).validate()
        core = make_policy(config)
        optimizer, value_optimizer, kl = make_optimizers(config, list(core.model.parameters()), {})
        buf = RolloutBuffer.allocate(config.num_steps, config.num_envs, (64, 64, 3), core.device)
        g = torch.Generator().manual_seed(0)
        buf.obs.copy_(torch.randint(0, 255, buf.obs.shape, generator=g, dtype=torch.uint8))
        buf.actions.copy_(torch.randint(0, 15, buf.actions.shape, generator=g))
        buf.log_probs.fill_(float(np.log(1 / 15)))
        adv, ret = torch.randn(buf.values.shape, generator=g), torch.randn(buf.values.shape, generator=g)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            ppo_update(core, optimizer, buf, adv, ret, config, g, advantage_normalizer=AdvantageNormalizer(0.0),
                       value_optimizer=value_optimizer, kl_coefficient=kl)
            times.append(time.perf_counter() - t)
        # samples passed forward+backward (3 x forward FLOPs each): "separate" runs E_V value-only epochs then E_pi
        # policy-only epochs (3 passes here); "interleaved" max(E_pi, E_V) = 2 passes
        passes = 3 if schedule == "separate" else 2
        samples = passes * config.batch_size
        best = min(times)
        flops = 3 * forward_flops(core) * samples / best
        print(f"{unit:9s} {schedule:11s} {loss:4s}: {samples / best:8.0f} samples/s "
              f"({fraction_of_peak(flops, peak):.1%} of fp32 GEMM peak)")
    rng = np.random.default_rng(0)
    games = [rng.normal(size=3) for _ in range(16)]
    t = time.perf_counter()
    stratified_bootstrap_ci(games, interquartile_mean, reps=2000)
    print(f"stratified bootstrap IQM, 16 games x 3 seeds, 2000 replicates: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
