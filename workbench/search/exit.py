"""Expert iteration (Anthony, Tian, Barber 2017, arXiv 1705.08439) for Hex with MCTS (PUCT) or Policy Gradient
Search (arXiv 1904.03646) as the expert, reading top to bottom like the workbench's RL engines.

Each iteration: the expert plays `games_per_iteration` self-play games (moves sampled from the expert's visit
distribution for the first `sample_moves` moves, its best move afterwards; Dirichlet noise at MCTS roots); every
position gives a target policy (the expert's root visit distribution; for PGS the counts of its simulations'
first moves, or the root visits of the shallow-tree variant) and the game's outcome; the network (the
apprentice) is trained by cross-entropy to the target policy plus squared error to the outcome, with the board's
180-degree rotation (a symmetry of Hex) as augmentation. Metrics and checkpoints go to the run store.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from workbench.search.hex import HexState, canonical_planes, canonical_to_action
from workbench.search.mcts import MCTS, MCTSConfig
from workbench.search.net import PolicyValueNet, masked_log_softmax, save_net
from workbench.search.pgs import PGSConfig, PolicyGradientSearch


@dataclass
class ExItConfig:
    board_size: int = 5
    expert: str = "mcts"  # "mcts" (PUCT) or "pgs" (the shallow-tree PGS variant, as in the paper's PGS-ExIt)
    iterations: int = 10
    games_per_iteration: int = 16
    simulations: int = 64
    sample_moves: int = 4  # moves sampled in proportion to the expert's visits at the start of each game
    dirichlet_alpha: float = 0.3
    channels: int = 32
    blocks: int = 3
    learning_rate: float = 1e-3
    epochs: int = 4
    minibatch_size: int = 64
    replay_iterations: int = 4  # train on the positions of the last this-many iterations
    device: str = "cpu"  # "cuda" runs the network (searches and training) on a GPU
    seed: int = 0

    def validate(self) -> ExItConfig:
        if self.expert not in ("mcts", "pgs"):
            raise ValueError(f"expert must be 'mcts' or 'pgs', got {self.expert!r}")
        for name in ("iterations", "games_per_iteration", "simulations", "epochs", "minibatch_size",
                     "replay_iterations", "channels", "blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 2 <= self.board_size <= 19:
            raise ValueError(f"board_size must be from 2 to 19, got {self.board_size}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.learning_rate <= 0 or self.sample_moves < 0 or self.dirichlet_alpha < 0:
            raise ValueError("learning_rate must be > 0, sample_moves and dirichlet_alpha >= 0")
        return self


def make_expert(config: ExItConfig, net: PolicyValueNet, rng: np.random.Generator, pgs: PGSConfig | None = None):
    if config.expert == "mcts":
        return MCTS(MCTSConfig(simulations=config.simulations, rule="puct",
                               dirichlet_alpha=config.dirichlet_alpha), net, rng)
    return PolicyGradientSearch(replace(pgs or PGSConfig(), simulations=config.simulations, root_tree=True), net, rng)


def self_play_game(expert, n: int, sample_moves: int, rng: np.random.Generator):
    """One self-play game: (canonical planes, canonical target policy, outcome for the player to move) per move."""
    state, records = HexState(n), []
    while not state.done:
        counts = expert.search(state)
        target = counts / counts.sum()
        action = (int(rng.choice(n * n, p=target)) if len(state.moves) < sample_moves
                  else expert.best_action(counts))
        planes = canonical_planes(state.board[None], np.array([state.to_play]))[0]
        canon_target = target[canonical_to_action(np.arange(n * n), state.to_play, n)]
        records.append((planes, canon_target, state.to_play))
        state.apply(action)
    return [(p, t, 1.0 if player == state.winner else -1.0) for p, t, player in records]


def rotate180(planes: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, c) -> (n-1-r, n-1-c) maps a Hex position to an equivalent one (same edges, same adjacency)."""
    return planes[:, :, ::-1, ::-1].copy(), targets[:, ::-1].copy()


def train_step(net: PolicyValueNet, optimizer, planes, targets, outcomes) -> dict[str, float]:
    logits, value = net(planes)
    legal = planes[:, 2].flatten(1) > 0
    policy_loss = -(targets * masked_log_softmax(logits, legal)).sum(1).mean()
    value_loss = ((value - outcomes) ** 2).mean()
    optimizer.zero_grad()
    (policy_loss + value_loss).backward()
    optimizer.step()
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item()}


def expert_iteration(config: ExItConfig, store=None, name: str | None = None, pgs: PGSConfig | None = None,
                     progress=None) -> tuple[PolicyValueNet, str | None]:
    """Train a PolicyValueNet by expert iteration; returns (net, run id or None without a store)."""
    cfg = config.validate()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n = cfg.board_size
    net = PolicyValueNet(n, cfg.channels, cfg.blocks).to(cfg.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    run_id = None
    if store is not None:
        run_id = store.create_run(algo=f"exit-{cfg.expert}", env=f"hex{n}", config=asdict(cfg), name=name)
        store.set_status(run_id, "running")
    replay: list[list] = []
    try:
        for iteration in range(1, cfg.iterations + 1):
            t0 = time.perf_counter()
            net.eval()
            expert = make_expert(cfg, net, rng, pgs)
            positions = [rec for _ in range(cfg.games_per_iteration)
                         for rec in self_play_game(expert, n, cfg.sample_moves, rng)]
            replay = (replay + [positions])[-cfg.replay_iterations:]
            data = [rec for chunk in replay for rec in chunk]
            planes = np.stack([p for p, _, _ in data])
            targets = np.stack([t for _, t, _ in data])
            outcomes = np.array([z for _, _, z in data], dtype=np.float32)
            rot_planes, rot_targets = rotate180(planes, targets)
            planes_t = torch.from_numpy(np.concatenate([planes, rot_planes]))
            targets_t = torch.from_numpy(np.concatenate([targets, rot_targets])).float()
            outcomes_t = torch.from_numpy(np.concatenate([outcomes, outcomes]))
            net.train()
            losses = []
            for _ in range(cfg.epochs):
                order = torch.from_numpy(rng.permutation(len(planes_t)))
                for start in range(0, len(order), cfg.minibatch_size):
                    idx = order[start:start + cfg.minibatch_size]
                    losses.append(train_step(net, optimizer, planes_t[idx].to(cfg.device),
                                             targets_t[idx].to(cfg.device), outcomes_t[idx].to(cfg.device)))
            net.eval()
            metrics = {key: float(np.mean([m[key] for m in losses])) for key in losses[0]}
            metrics.update(positions=len(positions), seconds=time.perf_counter() - t0)
            if progress is not None:
                progress(iteration, metrics)
            if store is not None:
                store.log_metrics(run_id, iteration, metrics)
        if store is not None:
            store.save_checkpoint(run_id, cfg.iterations, save_net(net))
            store.set_status(run_id, "finished")
    except BaseException:
        if store is not None and run_id is not None:
            store.set_status(run_id, "failed")
        raise
    return net, run_id


def net_from_run(store, run_id: str) -> PolicyValueNet:
    """The network saved by an expert-iteration run (checkpoints load with weights_only)."""
    from workbench.search.net import load_net

    info = store.get_run(run_id)
    if not info.algo.startswith("exit-"):
        raise ValueError(f"run {run_id!r} is a {info.algo!r} run, not an expert-iteration (exit-*) run")
    return load_net(store.load_checkpoint(run_id))
