"""Round-robin Hex tournaments: every agent against every other at the same simulation budget, both colours,
win rates with Wilson confidence intervals (scipy) and Elo ratings fitted by maximum likelihood (scipy.optimize).

Games of a pairing come in colour-swapped pairs that share a random opening move (`opening_moves`), so that
deterministic searches do not replay one game and the first player's advantage (there is no swap rule) cancels.

Elo: P(i beats j) = 1 / (1 + 10 ** ((R_j - R_i) / 400)); the ratings maximise the likelihood of all games, plus
one virtual draw per pairing (half a win each way) so that an agent that won every game gets a finite rating;
they are shifted so that the first agent listed is 0. Tables are stored as JSON under <store>/hex/.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from workbench.search.agents import play_game
from workbench.search.hex import HexState
from workbench.storage.durable import atomic_write

TABLE_DIR = "hex"


def wilson_interval(wins: int, games: int, confidence: float = 0.95) -> tuple[float, float]:
    if games == 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(wins), int(games)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def fit_elo(wins: np.ndarray, prior_draws: float = 0.5) -> np.ndarray:
    """Maximum-likelihood Elo ratings from wins[i, j] = games i won against j (anchored: rating[0] = 0)."""
    k = wins.shape[0]
    games = wins + wins.T
    w = wins + prior_draws * (games > 0)  # the virtual draw, only where the pair met

    def negative_log_likelihood(free: np.ndarray) -> float:
        r = np.concatenate([[0.0], free])
        diff = (r[:, None] - r[None, :]) * np.log(10) / 400
        return float(-(w * -np.logaddexp(0, -diff)).sum())

    result = optimize.minimize(negative_log_likelihood, np.zeros(k - 1), method="BFGS")
    return np.concatenate([[0.0], result.x])


@dataclass
class TournamentResult:
    board_size: int
    simulations: int
    agents: list[str]
    wins: list[list[int]]  # wins[i][j]: games agent i won against agent j
    seconds: dict[str, float] = field(default_factory=dict)  # search time per agent
    moves: dict[str, int] = field(default_factory=dict)  # moves per agent

    def elo(self) -> np.ndarray:
        return fit_elo(np.array(self.wins, dtype=float))

    def rows(self) -> list[dict]:
        """One row per ordered pair: wins, games, win rate and its 95% Wilson interval."""
        wins = np.array(self.wins)
        out = []
        for i, j in itertools.permutations(range(len(self.agents)), 2):
            games = int(wins[i, j] + wins[j, i])
            low, high = wilson_interval(wins[i, j], games)
            out.append({"agent": self.agents[i], "opponent": self.agents[j], "wins": int(wins[i, j]),
                        "games": games, "win_rate": wins[i, j] / max(games, 1), "ci_low": low, "ci_high": high})
        return out

    def format(self) -> str:
        """The table as text: a cross table of win rates with intervals, then Elo and search speed."""
        names, wins = self.agents, np.array(self.wins)
        width = max(len(n) for n in names) + 2
        lines = [(f"Hex {self.board_size}x{self.board_size}, {self.simulations} simulations per move; "
                  "row's win rate vs column [95% Wilson CI]")]
        lines.append(" " * width + "".join(f"{n:>20}" for n in names))
        for i, a in enumerate(names):
            cells = []
            for j in range(len(names)):
                games = wins[i, j] + wins[j, i]
                if i == j or games == 0:
                    cells.append(f"{'-':>20}")
                else:
                    low, high = wilson_interval(wins[i, j], games)
                    cells.append(f"{wins[i, j] / games:>6.2f} [{low:.2f},{high:.2f}]".rjust(20))
            lines.append(f"{a:<{width}}" + "".join(cells))
        elo = self.elo()
        lines.append("")
        lines.append(f"{'agent':<{width}}{'Elo':>8}{'score':>10}{'ms/move':>10}")
        for i in np.argsort(-elo):
            games = (wins[i] + wins[:, i]).sum()
            ms = 1000 * self.seconds.get(names[i], 0.0) / max(self.moves.get(names[i], 0), 1)
            score = wins[i].sum() / max(games, 1)
            lines.append(f"{names[i]:<{width}}{round(float(elo[i])):>8d}{score:>10.2f}{ms:>10.1f}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"board_size": self.board_size, "simulations": self.simulations, "agents": self.agents,
                "wins": self.wins, "seconds": self.seconds, "moves": self.moves}

    @classmethod
    def from_json(cls, data: dict) -> TournamentResult:
        return cls(**data)


class _Timed:
    """Wraps an agent to add up its thinking time and moves."""

    def __init__(self, agent, name: str, result: TournamentResult):
        self.agent, self.name, self.result = agent, name, result

    def act(self, state: HexState):
        t0 = time.perf_counter()
        out = self.agent.act(state)
        self.result.seconds[self.name] = self.result.seconds.get(self.name, 0.0) + time.perf_counter() - t0
        self.result.moves[self.name] = self.result.moves.get(self.name, 0) + 1
        return out


def round_robin(make, names: list[str], board_size: int, simulations: int, games_per_pair: int,
                opening_moves: int = 1, seed: int = 0, progress=None) -> TournamentResult:
    """Play every pair of `names` (agents made by `make(name, seed)`) `games_per_pair` times (even: each opening
    once with each colour)."""
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"a tournament needs at least two different agents, got {names}")
    if games_per_pair < 2 or games_per_pair % 2:
        raise ValueError(f"games_per_pair must be an even number >= 2 (both colours), got {games_per_pair}")
    rng = np.random.default_rng(seed)
    k = len(names)
    result = TournamentResult(board_size, simulations, list(names), [[0] * k for _ in range(k)])
    for i, j in itertools.combinations(range(k), 2):
        for game in range(games_per_pair // 2):
            opening = [int(m) for m in rng.choice(board_size ** 2, size=opening_moves, replace=False)]
            for first, second in ((i, j), (j, i)):
                game_seed = int(rng.integers(2 ** 31))
                black = _Timed(make(names[first], game_seed), names[first], result)
                white = _Timed(make(names[second], game_seed + 1), names[second], result)
                winner, _ = play_game(black, white, board_size, opening)
                won = first if winner == 0 else second
                result.wins[won][second if won == first else first] += 1
        if progress is not None:
            progress(names[i], names[j], result)
    return result


def save_result(store_root: str | Path, result: TournamentResult) -> Path:
    path = Path(store_root) / TABLE_DIR / f"tournament-{result.board_size}x{result.board_size}.json"
    atomic_write(path, lambda f: f.write(json.dumps(result.to_json(), indent=1).encode()))
    return path


def load_results(store_root: str | Path) -> list[TournamentResult]:
    """Every tournament stored under <store>/hex/, smallest board first; unreadable files are skipped."""
    out = []
    for path in sorted((Path(store_root) / TABLE_DIR).glob("tournament-*.json")):
        try:
            out.append(TournamentResult.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda r: r.board_size)
