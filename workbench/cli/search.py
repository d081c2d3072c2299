"""`workbench hex ...`: Hex matches between search agents, tournaments, expert iteration.

See docs/policy_gradient_search.md.

    workbench hex play --size 5 --black pgs --white uct --simulations 64 --games 10 [--net RUN]
    workbench hex tournament --size 5 --agents uct,puct,pgs,mcs --simulations 64 --games-per-pair 10 [--net RUN]
    workbench hex train --size 5 --expert pgs --iterations 10 --games 16 --simulations 64

Agents that need a network (policy, mcs, pgs, pgs-tree, puct) use the one trained by an expert-iteration run
(`--net RUN`, a run id from `workbench hex train`), or else a fresh untrained network (seeded).
"""

from __future__ import annotations

import argparse
import sys


def _agent_list(text: str) -> list[str]:
    from workbench.search.agents import AGENT_NAMES

    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in AGENT_NAMES]
    if unknown or len(names) < 2:
        raise argparse.ArgumentTypeError(f"expected two or more of {', '.join(AGENT_NAMES)} separated by commas, "
                                         f"got {text!r}")
    return names


def add_parsers(sub) -> None:
    from workbench.search.agents import AGENT_NAMES

    hexp = sub.add_parser("hex", help="Hex: play matches, run tournaments, train by expert iteration")
    hsub = hexp.add_subparsers(dest="hex_command", required=True)

    def common(p):
        p.add_argument("--size", type=int, default=5, help="board size n (n x n), 2..19 (default 5)")
        p.add_argument("--simulations", type=int, default=64, help="simulations per move for every search")
        p.add_argument("--net", default=None, metavar="RUN", help="expert-iteration run whose network to use")
        p.add_argument("--seed", type=int, default=0)

    play = hsub.add_parser("play", help="a match between two agents, alternating colours")
    common(play)
    play.add_argument("--black", default="pgs", choices=AGENT_NAMES)
    play.add_argument("--white", default="uct", choices=AGENT_NAMES)
    play.add_argument("--games", type=int, default=2)
    play.set_defaults(handler=cmd_play)

    tour = hsub.add_parser("tournament", help="round robin with win rates, Wilson intervals and Elo; stored")
    common(tour)
    tour.add_argument("--agents", type=_agent_list, default=["uct", "puct", "pgs", "mcs"])
    tour.add_argument("--games-per-pair", type=int, default=10)
    tour.set_defaults(handler=cmd_tournament)

    train = hsub.add_parser("train", help="expert iteration with MCTS or PGS as the expert; prints the run id")
    train.add_argument("--size", type=int, default=5)
    train.add_argument("--expert", default="mcts", choices=("mcts", "pgs"))
    train.add_argument("--iterations", type=int, default=10)
    train.add_argument("--games", type=int, default=16, help="self-play games per iteration")
    train.add_argument("--simulations", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--name", default=None)
    train.set_defaults(handler=cmd_train)


def _net(args, store):
    from workbench.search.hex import check_board_size
    from workbench.search.net import PolicyValueNet

    check_board_size(args.size)
    if args.net:
        from workbench.search.exit import net_from_run

        net = net_from_run(store, args.net)
        if net.board_size != args.size:
            raise ValueError(f"run {args.net!r} trained a {net.board_size}x{net.board_size} network; "
                             f"use --size {net.board_size}")
        return net
    import torch

    torch.manual_seed(args.seed)
    return PolicyValueNet(args.size).eval()


def cmd_play(args, store) -> int:
    from workbench.search.agents import make_agent, play_game

    if args.games < 1:
        raise ValueError(f"--games must be at least 1, got {args.games}")
    net = _net(args, store)
    score = {args.black: 0, args.white: 0} if args.black != args.white else None
    for game in range(args.games):
        names = (args.black, args.white) if game % 2 == 0 else (args.white, args.black)
        black = make_agent(names[0], args.size, args.simulations, net, seed=args.seed + 2 * game)
        white = make_agent(names[1], args.size, args.simulations, net, seed=args.seed + 2 * game + 1)
        winner, moves = play_game(black, white, args.size)
        print(f"game {game + 1}: black {names[0]} vs white {names[1]}: {names[winner]} "
              f"({'black' if winner == 0 else 'white'}) wins in {len(moves)} moves")
        if score is not None:
            score[names[winner]] += 1
    if score is not None:
        print("score: " + ", ".join(f"{k} {v}" for k, v in score.items()))
    return 0


def cmd_tournament(args, store) -> int:
    from workbench.search.agents import make_agent
    from workbench.search.tournament import round_robin, save_result

    net = _net(args, store)
    result = round_robin(lambda name, seed: make_agent(name, args.size, args.simulations, net, seed=seed),
                         args.agents, args.size, args.simulations, args.games_per_pair, seed=args.seed,
                         progress=lambda a, b, r: print(f"  {a} vs {b} done", file=sys.stderr))
    print(result.format())
    print(f"saved to {save_result(store.root, result)}")
    return 0


def cmd_train(args, store) -> int:
    from workbench.search.exit import ExItConfig, expert_iteration

    config = ExItConfig(board_size=args.size, expert=args.expert, iterations=args.iterations,
                        games_per_iteration=args.games, simulations=args.simulations, seed=args.seed)
    _, run_id = expert_iteration(config, store, name=args.name, progress=lambda i, m: print(
        f"iteration {i}: policy loss {m['policy_loss']:.3f}, value loss {m['value_loss']:.3f}, "
        f"{m['positions']} positions, {m['seconds']:.1f} s", file=sys.stderr))
    print(run_id)
    return 0
