"""Hex players behind one interface, `agent.act(state) -> (action, info)`, made by name with `make_agent`.

`info` holds what a board view can draw: "counts" (the search's visits over cells), "policy" (the network's
or the adapted policy over cells) and "value" (the search's estimate for the player to move).

    random          uniformly random legal moves
    policy          the network's policy, sampled (the simulation policy on its own, no search)
    mcs             Monte Carlo search with the un-adapted simulation policy (PGS with learning rate 0)
    pgs             Policy Gradient Search (arXiv 1904.03646)
    pgs-tree        PGS with a one-level tree at the root (the expert-iteration variant)
    puct            MCTS with the network's priors and values
    uct             MCTS with uniform priors and random rollouts
    openspiel-mcts  OpenSpiel's MCTSBot with a RandomRolloutEvaluator (external reference for `uct`)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from workbench.search.hex import HexState
from workbench.search.mcts import MCTS, MCTSConfig
from workbench.search.net import PolicyValueNet, evaluate
from workbench.search.pgs import PGSConfig, PolicyGradientSearch

AGENT_NAMES = ("random", "policy", "mcs", "pgs", "pgs-tree", "puct", "uct", "openspiel-mcts")
NEEDS_NET = ("policy", "mcs", "pgs", "pgs-tree", "puct")


class RandomAgent:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def act(self, state: HexState) -> tuple[int, dict]:
        return int(self.rng.choice(state.legal_actions())), {}


class PolicyAgent:
    def __init__(self, net: PolicyValueNet, rng: np.random.Generator):
        self.net, self.rng = net, rng

    def act(self, state: HexState) -> tuple[int, dict]:
        prior, value = evaluate(self.net, state.board[None], np.array([state.to_play]))
        action = int(self.rng.choice(len(prior[0]), p=prior[0] / prior[0].sum()))
        return action, {"policy": prior[0], "value": float(value[0])}


class MCTSAgent:
    def __init__(self, config: MCTSConfig, net: PolicyValueNet | None, rng: np.random.Generator):
        self.search = MCTS(config, net, rng)

    def act(self, state: HexState) -> tuple[int, dict]:
        counts = self.search.search(state)
        return self.search.best_action(counts), {"counts": counts, "value": self.search.root_value}


class PGSAgent:
    def __init__(self, config: PGSConfig, net: PolicyValueNet, rng: np.random.Generator):
        self.search = PolicyGradientSearch(config, net, rng)

    def act(self, state: HexState) -> tuple[int, dict]:
        counts = self.search.search(state)
        return self.search.best_action(counts), {"counts": counts, "policy": self.search.adapted_policy,
                                                 "value": self.search.root_value}


class OpenSpielMCTSAgent:
    """open_spiel.python.algorithms.mcts.MCTSBot (UCT, c = 2, one random rollout per leaf), fed our game's
    moves; each of its simulations makes one rollout, so budgets compare one to one with `uct`."""

    def __init__(self, n: int, simulations: int, seed: int):
        import pyspiel
        from open_spiel.python.algorithms import mcts

        self.game = pyspiel.load_game("hex", {"board_size": n})
        rs = np.random.RandomState(seed)
        self.bot = mcts.MCTSBot(self.game, uct_c=2.0, max_simulations=simulations,
                                evaluator=mcts.RandomRolloutEvaluator(n_rollouts=1, random_state=rs),
                                solve=False, random_state=rs)

    def act(self, state: HexState) -> tuple[int, dict]:
        spiel_state = self.game.new_initial_state()
        for move in state.moves:
            spiel_state.apply_action(move)
        return int(self.bot.step(spiel_state)), {}


def make_agent(name: str, n: int, simulations: int = 64, net: PolicyValueNet | None = None, seed: int = 0,
               pgs: PGSConfig | None = None, mcts: MCTSConfig | None = None):
    """An agent by name (see AGENT_NAMES) for n x n boards at a budget of `simulations` per move."""
    if name not in AGENT_NAMES:
        raise ValueError(f"unknown agent {name!r}; choose from {', '.join(AGENT_NAMES)}")
    if simulations < 1:
        raise ValueError(f"simulations must be at least 1, got {simulations}")
    rng = np.random.default_rng(seed)
    if name in NEEDS_NET and net is None:
        raise ValueError(f"agent {name!r} needs a policy-and-value network")
    if net is not None and net.board_size != n:
        raise ValueError(f"the network is for {net.board_size}x{net.board_size} boards, not {n}x{n}")
    pgs = replace(pgs or PGSConfig(), simulations=simulations)
    mcts = replace(mcts or MCTSConfig(), simulations=simulations)
    if name == "random":
        return RandomAgent(rng)
    if name == "policy":
        return PolicyAgent(net, rng)
    if name == "mcs":
        return PGSAgent(replace(pgs, learning_rate=0.0, root_tree=False), net, rng)
    if name == "pgs":
        return PGSAgent(replace(pgs, root_tree=False), net, rng)
    if name == "pgs-tree":
        return PGSAgent(replace(pgs, root_tree=True), net, rng)
    if name == "puct":
        return MCTSAgent(replace(mcts, rule="puct"), net, rng)
    if name == "uct":
        return MCTSAgent(replace(mcts, rule="uct"), None, rng)
    return OpenSpielMCTSAgent(n, simulations, seed)


def play_game(black, white, n: int, opening: list[int] | None = None) -> tuple[int, list[int]]:
    """Play one game (black = player 0 moves first) after the `opening` moves; returns (winner, moves)."""
    state = HexState(n)
    for move in opening or []:
        state.apply(move)
    while not state.done:
        agent = black if state.to_play == 0 else white
        action, _ = agent.act(state)
        state.apply(action)
    return state.winner, state.moves
