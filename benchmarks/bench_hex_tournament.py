"""Hex: train a small network by expert iteration, then a round-robin tournament of every search at the same
simulation budget (both colours, Wilson 95% intervals, maximum-likelihood Elo), and each search's speed.

    PYTHONPATH=. python benchmarks/bench_hex_tournament.py            # 5x5 and 7x7, ~15 minutes on 2 cores
    PYTHONPATH=. python benchmarks/bench_hex_tournament.py --quick    # a smoke run, ~1 minute

Speed: simulations per second of each search on a fixed set of positions (MCTS: one leaf evaluation each; PGS:
one whole playout each), and the network's forward passes per second as a fraction of the measured fp32 GEMM peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from machine import fraction_of_peak, machine_report

from workbench.search.agents import make_agent
from workbench.search.exit import ExItConfig, expert_iteration
from workbench.search.hex import HexState
from workbench.search.tournament import round_robin


def net_flops(net) -> float:
    """Multiply-adds x 2 of one forward pass (conv and linear layers) for one position."""
    n2, flops = net.board_size ** 2, 0.0
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            flops += 2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * n2
        elif isinstance(m, torch.nn.Linear):
            flops += 2 * m.in_features * m.out_features
    return flops


def positions(n: int, count: int, seed: int) -> list[HexState]:
    """Positions from random play, 0 to n*n/2 moves in, for the speed measurement."""
    rng, out = np.random.default_rng(seed), []
    for k in range(count):
        state = HexState(n)
        for _ in range(int(k * (n * n // 2) / max(count - 1, 1))):
            state.apply(int(rng.choice(state.legal_actions())))
            if state.done:
                break
        if not state.done:
            out.append(state)
    return out


def speed(names, n, simulations, net, peak) -> None:
    states = positions(n, 6, seed=1)
    print(f"\nspeed, {n}x{n}, {simulations} simulations a move, {len(states)} positions:")
    for name in names:
        agent = make_agent(name, n, simulations, net, seed=0)
        calls = {"n": 0}
        original = net.features_and_value  # every forward pass goes through it (forward calls it too)

        def counted(planes, original=original, calls=calls):
            calls["n"] += planes.shape[0]
            return original(planes)

        net.features_and_value = counted
        t0 = time.perf_counter()
        for state in states:
            agent.act(state)
        seconds = time.perf_counter() - t0
        del net.features_and_value
        evals = calls["n"] / seconds
        extra = (f", {evals:,.0f} positions through the net/s = "
                 f"{fraction_of_peak(evals * net_flops(net), peak):.2%} of the fp32 GEMM peak" if calls["n"] else "")
        sims = "" if name == "policy" else f"{simulations * len(states) / seconds:>9,.0f} simulations/s"
        print(f"  {name:<15} {sims:>23}  "
              f"{1000 * seconds / len(states):>7.1f} ms/move{extra}")


def board(n: int, agents: list[str], simulations: int, games_per_pair: int, exit_cfg: ExItConfig, peak,
          experts=("mcts", "pgs")) -> None:
    print(f"\n=== {n}x{n} ===")
    t0 = time.perf_counter()
    nets = {}
    for expert in experts:
        cfg = ExItConfig(**{**exit_cfg.__dict__, "board_size": n, "expert": expert})
        net, _ = expert_iteration(cfg, progress=lambda i, m, expert=expert: print(
            f"  ExIt[{expert}] iteration {i}: policy loss {m['policy_loss']:.3f}, value loss "
            f"{m['value_loss']:.3f}, {m['seconds']:.1f} s", flush=True))
        nets[expert] = net
    print(f"expert iteration: {time.perf_counter() - t0:.0f} s for {len(nets)} network(s) ({exit_cfg.iterations} "
          f"iterations x {exit_cfg.games_per_iteration} games, {exit_cfg.simulations} simulations a move)")
    # the two apprentices head to head, each playing its raw policy (sampled) and under PUCT
    for name in ("policy", "puct") if len(nets) == 2 else ():
        res = round_robin(lambda agent, seed, name=name: make_agent(name, n, simulations, nets[agent], seed=seed),
                          ["mcts", "pgs"], n, simulations, games_per_pair)
        rate = res.wins[0][1] / games_per_pair
        print(f"apprentice of ExIt[mcts] vs of ExIt[pgs], both as '{name}': {rate:.2f} of {games_per_pair} games")
    net = nets["mcts"]
    t0 = time.perf_counter()
    result = round_robin(lambda name, seed: make_agent(name, n, simulations, net, seed=seed), agents, n,
                         simulations, games_per_pair, seed=0)
    print(f"\ntournament with the ExIt[mcts] network ({time.perf_counter() - t0:.0f} s):")
    print(result.format())
    speed(agents, n, simulations, net, peak)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    args = parser.parse_args(argv)
    peak = machine_report()
    torch.set_num_threads(1)  # batch-1 searches gain nothing from threads; the machine is shared
    torch.manual_seed(0)
    agents = ["policy", "mcs", "pgs", "pgs-tree", "puct", "uct", "openspiel-mcts"]
    if args.quick:
        cfg = ExItConfig(iterations=1, games_per_iteration=2, simulations=8, channels=8, blocks=1)
        board(4, agents, 8, 2, cfg, peak)
        return 0
    cfg = ExItConfig(iterations=4, games_per_iteration=12, simulations=48, channels=32, blocks=3, epochs=4)
    board(5, agents, 64, 8, cfg, peak)
    cfg7 = ExItConfig(iterations=3, games_per_iteration=8, simulations=32, channels=32, blocks=3, epochs=4)
    board(7, ["mcs", "pgs", "puct", "uct", "openspiel-mcts"], 48, 6, cfg7, peak, experts=("mcts",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
