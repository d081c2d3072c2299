"""Policy Gradient Search (Anthony, Nishihara, Moritz, Salimans, Schulman 2019, arXiv 1904.03646).

No search tree: every simulation plays the game out from the root with the simulation policy (the network's
policy), and after each simulation the policy's final layer is updated online by REINFORCE towards the moves
that won, for both players, with the value network as the baseline:

    theta <- theta + alpha * sum_t (z_t - V(s_t)) * grad log pi_theta(a_t | s_t)

where z_t is the simulation's outcome (+1 win / -1 loss) for the player who moved at step t, or, for a
simulation cut off after `max_depth` moves, the value network's estimate at the cut. Only `policy_out` (the last
fully connected layer) is adapted; the trunk and value head stay fixed, and theta is reset to the network's
weights at the start of every search (each move). The move played is the root move the simulations chose most
often (`final_move="most_played"`), or the adapted policy's most likely move (`"adapted_policy"`).

`root_tree=True` is the shallow-tree variant used for expert iteration: the root keeps MCTS statistics and
picks its move by PUCT with the adapted policy as the prior, the adapted policy plays every move below the root
(and only those moves are in the policy-gradient update, being on-policy), and the most visited root move is
played, so ExIt has a visit distribution as its target.

`learning_rate=0` is Monte Carlo search with the fixed, un-adapted simulation policy, the baseline PGS must beat.

Departures (docs/policy_gradient_search.md): `parallel` simulations share one update (1 = an update after every
simulation); a "simulation" here is a whole playout, many network calls, where an MCTS simulation is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from workbench.search.hex import (
    HexBatch,
    HexState,
    canonical_planes,
    canonical_to_action,
)
from workbench.search.net import PolicyValueNet, masked_log_softmax


@dataclass
class PGSConfig:
    simulations: int = 64
    parallel: int = 16  # simulations played together between two policy updates
    learning_rate: float = 2.0  # plain SGD on the final layer; 0 = the un-adapted simulation policy
    max_depth: int = 0  # 0: play every simulation to the end; k > 0: cut after k moves, bootstrap with V
    baseline: str = "value"  # "value" (V(s_t), as in the paper) or "none"
    final_move: str = "most_played"  # or "adapted_policy"
    root_tree: bool = False  # the shallow-tree variant (PUCT at the root)
    c_puct: float = 1.5

    def validate(self) -> PGSConfig:
        if self.simulations < 1 or self.parallel < 1:
            raise ValueError(f"simulations and parallel must be at least 1, got {self.simulations}, {self.parallel}")
        if self.learning_rate < 0 or self.max_depth < 0 or self.c_puct <= 0:
            raise ValueError("learning_rate and max_depth must be >= 0 and c_puct > 0")
        if self.baseline not in ("value", "none"):
            raise ValueError(f"baseline must be 'value' or 'none', got {self.baseline!r}")
        if self.final_move not in ("most_played", "adapted_policy"):
            raise ValueError(f"final_move must be 'most_played' or 'adapted_policy', got {self.final_move!r}")
        return self


class PolicyGradientSearch:
    """`search(state)` returns how often each cell was the simulations' first move (n*n,); `adapted_policy`
    (over cells) and `root_value` describe the search afterwards."""

    def __init__(self, config: PGSConfig, net: PolicyValueNet, rng: np.random.Generator | None = None):
        self.config = config.validate()
        self.net = net.eval()
        self.device = next(net.parameters()).device  # the same code runs on a GPU when the net is on one
        self.rng = rng or np.random.default_rng()
        self.torch_gen = torch.Generator(device=self.device).manual_seed(int(self.rng.integers(2 ** 31)))
        self.adapted_policy = np.zeros(net.board_size ** 2)
        self.root_value = 0.0

    def _root_policy(self, state: HexState, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
        n = state.n
        planes = torch.from_numpy(canonical_planes(state.board[None], np.array([state.to_play]))).to(self.device)
        with torch.no_grad():
            features, _ = self.net.features_and_value(planes)
            logp = masked_log_softmax(features @ weight.T + bias, planes[:, 2].flatten(1) > 0)[0].cpu().numpy()
        policy = np.zeros(n * n)
        policy[canonical_to_action(np.arange(n * n), state.to_play, n)] = np.exp(logp)
        return policy

    def search(self, state: HexState) -> np.ndarray:
        if state.done:
            raise ValueError("the game is over: nothing to search")
        cfg, n, net = self.config, state.n, self.net
        if net.board_size != n:
            raise ValueError(f"the network is for {net.board_size}x{net.board_size} boards, the game is {n}x{n}")
        weight = net.policy_out.weight.detach().clone().requires_grad_(True)
        bias = net.policy_out.bias.detach().clone().requires_grad_(True)
        optimizer = torch.optim.SGD([weight, bias], lr=max(cfg.learning_rate, 1e-30))
        first_moves = np.zeros(n * n)
        root_value_sum = np.zeros(n * n)
        done_sims, outcome_sum = 0, 0.0
        while done_sims < cfg.simulations:
            batch = min(cfg.parallel, cfg.simulations - done_sims)
            games = HexBatch.from_state(state, batch)
            steps = []  # (mover, features, sampled canonical cell, legal, V, game rows) of each sampled move
            root_actions = None
            depth = 0
            while not games.done.all() and (cfg.max_depth == 0 or depth < cfg.max_depth):
                rows = np.flatnonzero(~games.done)
                to_play = games.to_play[rows]
                planes = torch.from_numpy(canonical_planes(games.boards[rows], to_play)).to(self.device)
                legal = planes[:, 2].flatten(1) > 0
                with torch.no_grad():
                    features, value = net.features_and_value(planes)
                    logp = masked_log_softmax(features @ weight.T + bias, legal)
                if depth == 0 and cfg.root_tree:
                    prior = logp[0].exp().cpu().numpy()
                    canon = self._puct_root_choices(prior, first_moves, root_value_sum, state, batch)
                else:
                    sampled = torch.multinomial(logp.exp(), 1, generator=self.torch_gen).squeeze(1)
                    steps.append((to_play, features, sampled, legal, value, rows))
                    canon = sampled.cpu().numpy()
                actions = canonical_to_action(canon, to_play, n)
                if depth == 0:
                    root_actions = actions
                full = np.zeros(batch, dtype=np.int64)
                full[rows] = actions
                games.step(full)
                depth += 1
            # outcome for player 0 of each simulation: the winner, or the value network at the cut
            z0 = np.where(games.winner == 0, 1.0, -1.0)
            cut = np.flatnonzero(~games.done)
            if len(cut):
                planes = torch.from_numpy(canonical_planes(games.boards[cut], games.to_play[cut])).to(self.device)
                with torch.no_grad():
                    v = net.features_and_value(planes)[1].cpu().numpy()
                z0[cut] = np.where(games.to_play[cut] == 0, v, -v)
            if cfg.learning_rate > 0 and steps:
                self._update(optimizer, steps, z0, batch, weight, bias)
            root_z = z0 if state.to_play == 0 else -z0
            np.add.at(first_moves, root_actions, 1)
            np.add.at(root_value_sum, root_actions, root_z)
            outcome_sum += root_z.sum()
            done_sims += batch
        self.adapted_policy = self._root_policy(state, weight, bias)
        self.root_value = outcome_sum / done_sims
        return first_moves

    def _update(self, optimizer, steps, z0: np.ndarray, batch: int, weight, bias) -> None:
        movers = np.concatenate([s[0] for s in steps])
        features = torch.cat([s[1] for s in steps])
        actions = torch.cat([s[2] for s in steps])
        legal = torch.cat([s[3] for s in steps])
        baseline = torch.cat([s[4] for s in steps])
        rows = np.concatenate([s[5] for s in steps])
        returns = torch.from_numpy(np.where(movers == 0, z0[rows], -z0[rows])).float().to(self.device)  # mover's
        advantage = returns - (baseline if self.config.baseline == "value" else 0.0)
        logp = masked_log_softmax(features @ weight.T + bias, legal).gather(1, actions[:, None]).squeeze(1)
        loss = -(advantage * logp).sum() / batch  # REINFORCE, summed over each playout's moves
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _puct_root_choices(self, prior_canon: np.ndarray, visits: np.ndarray, value_sum: np.ndarray,
                           state: HexState, batch: int) -> np.ndarray:
        """Root moves (canonical cells) of `batch` simulations by PUCT, counting earlier picks of the same batch
        as visits (a virtual visit with no value) so that parallel simulations spread out."""
        n = state.n
        to_canon = canonical_to_action(np.arange(n * n), state.to_play, n)  # board cell -> canonical cell
        prior = prior_canon[to_canon]
        legal = state.legal_mask()
        n_visits, chosen = visits.copy(), []
        for _ in range(batch):
            q = np.divide(value_sum, n_visits, out=np.zeros(n * n), where=n_visits > 0)
            score = q + self.config.c_puct * prior * math.sqrt(n_visits.sum() + 1) / (1 + n_visits)
            score[~legal] = -np.inf
            cell = int(np.argmax(score))
            n_visits[cell] += 1
            chosen.append(to_canon[cell])
        return np.array(chosen)

    def best_action(self, counts: np.ndarray) -> int:
        if self.config.final_move == "adapted_policy":
            return int(np.argmax(self.adapted_policy))
        top = np.flatnonzero(counts == counts.max())
        return int(top[np.argmax(self.adapted_policy[top])])
