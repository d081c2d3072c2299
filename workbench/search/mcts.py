"""Monte Carlo Tree Search for Hex: PUCT with a policy-and-value network, and plain UCT with random rollouts.

One simulation descends the tree by the selection rule, expands one leaf, evaluates it once (a network call, or
one random rollout) and backs the value up; the move played is the root's most visited (ties: the larger
value sum, then the higher prior).
Values are in [-1, 1], +1 a win, each node's statistics from the point of view of the player choosing there.

* PUCT (Silver et al. 2017, AlphaGo Zero): ``Q + c_puct * P * sqrt(N_parent) / (1 + N)``, unvisited Q = 0.
* UCT (Kocsis & Szepesvari 2006): ``Q + c * sqrt(ln N_parent / N)``, unvisited children first, c = 2 as in
  OpenSpiel's examples, whose MCTSBot with a RandomRolloutEvaluator is the external cross-check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.search.hex import HexState, random_rollout_winners


@dataclass
class MCTSConfig:
    simulations: int = 64
    rule: str = "puct"  # "puct" (network priors and values) or "uct" (uniform, random rollouts)
    c_puct: float = 1.5
    c_uct: float = 2.0
    dirichlet_alpha: float = 0.0  # > 0: AlphaZero's root noise, for self-play in expert iteration
    dirichlet_fraction: float = 0.25

    def validate(self) -> MCTSConfig:
        if self.simulations < 1:
            raise ValueError(f"simulations must be at least 1, got {self.simulations}")
        if self.rule not in ("puct", "uct"):
            raise ValueError(f"rule must be 'puct' or 'uct', got {self.rule!r}")
        if self.c_puct <= 0 or self.c_uct <= 0:
            raise ValueError("exploration constants c_puct and c_uct must be positive")
        if self.dirichlet_alpha < 0 or not 0 <= self.dirichlet_fraction <= 1:
            raise ValueError("dirichlet_alpha must be >= 0 and dirichlet_fraction in [0, 1]")
        return self


class Node:
    __slots__ = ("actions", "children", "prior", "state", "value_sum", "visits")

    def __init__(self, state: HexState, prior_over_cells: np.ndarray | None):
        self.state = state
        self.actions = np.asarray(state.legal_actions(), dtype=np.int64)
        k = len(self.actions)
        self.prior = (np.full(k, 1.0 / max(k, 1)) if prior_over_cells is None
                      else prior_over_cells[self.actions] / max(prior_over_cells[self.actions].sum(), 1e-12))
        self.visits = np.zeros(k)
        self.value_sum = np.zeros(k)
        self.children: list[Node | None] = [None] * k


class MCTS:
    """`search(state)` runs the simulations and returns the root's visit counts over all cells (n*n,)."""

    def __init__(self, config: MCTSConfig, net=None, rng: np.random.Generator | None = None):
        self.config = config.validate()
        if config.rule == "puct" and net is None:
            raise ValueError("PUCT needs a policy-and-value network (net=...)")
        self.net = net
        self.rng = rng or np.random.default_rng()
        self.root_value = 0.0

    def _evaluate(self, state: HexState) -> tuple[np.ndarray | None, float]:
        """(prior over cells or None for uniform, value for the player to move)."""
        if state.done:
            return None, -1.0  # the player who just moved has won
        if self.config.rule == "uct":
            winner = random_rollout_winners(state.board[None], np.array([state.to_play]), self.rng)[0]
            return None, 1.0 if winner == state.to_play else -1.0
        from workbench.search.net import evaluate

        prior, value = evaluate(self.net, state.board[None], np.array([state.to_play]))
        return prior[0], float(value[0])

    def _select(self, node: Node) -> int:
        cfg, n_parent = self.config, node.visits.sum()
        q = np.divide(node.value_sum, node.visits, out=np.zeros_like(node.value_sum), where=node.visits > 0)
        if cfg.rule == "uct":
            unvisited = np.flatnonzero(node.visits == 0)
            if len(unvisited):
                return int(self.rng.choice(unvisited))
            score = q + cfg.c_uct * np.sqrt(math.log(n_parent) / node.visits)
        else:
            score = q + cfg.c_puct * node.prior * math.sqrt(n_parent + 1) / (1 + node.visits)
        best = np.flatnonzero(score == score.max())
        return int(best[0] if len(best) == 1 else self.rng.choice(best))

    def search(self, state: HexState) -> np.ndarray:
        if state.done:
            raise ValueError("the game is over: nothing to search")
        cfg = self.config
        prior, value = self._evaluate(state)
        root = Node(state.copy(), prior)
        if cfg.dirichlet_alpha > 0:
            noise = self.rng.dirichlet(np.full(len(root.actions), cfg.dirichlet_alpha))
            root.prior = (1 - cfg.dirichlet_fraction) * root.prior + cfg.dirichlet_fraction * noise
        for _ in range(cfg.simulations):
            node, path = root, []
            while True:
                i = self._select(node)
                path.append((node, i))
                child = node.children[i]
                if child is None:
                    child_state = node.state.copy().apply(int(node.actions[i]))
                    prior, value = self._evaluate(child_state)
                    if not child_state.done:
                        node.children[i] = Node(child_state, prior)
                    break
                node = child
            # `value` is for the player to move at the leaf; the player choosing at each parent is the other.
            for parent, i in reversed(path):
                value = -value
                parent.visits[i] += 1
                parent.value_sum[i] += value
        self.root_value = float(root.value_sum.sum() / max(root.visits.sum(), 1))
        counts = np.zeros(state.n * state.n)
        counts[root.actions] = root.visits
        self._root_prior = np.zeros(state.n * state.n)
        self._root_prior[root.actions] = root.prior
        self._root_value_sum = np.zeros(state.n * state.n)
        self._root_value_sum[root.actions] = root.value_sum
        return counts

    def best_action(self, counts: np.ndarray) -> int:
        """Most visited cell; ties broken by the value backed up (as OpenSpiel's MCTSBot does), then the prior."""
        top = np.flatnonzero(counts == counts.max())
        key = np.lexsort((self._root_prior[top], self._root_value_sum[top]))
        return int(top[key[-1]])
