"""Hex on an n x n rhombus, as one game (`HexState`, union-find) and as a batch of games (`HexBatch`, numpy).

Conventions follow OpenSpiel's ``hex`` game (checked against ``pyspiel.load_game("hex", {"board_size": n})`` on
thousands of random games by tests/test_hex_search.py):

* player 0 ("x", black) moves first and connects the top row to the bottom row; player 1 ("o", white) connects
  the left column to the right column;
* action ``a`` is the cell ``(row, col) = divmod(a, n)``;
* cell ``(r, c)`` touches ``(r-1, c), (r-1, c+1), (r, c-1), (r, c+1), (r+1, c-1), (r+1, c)``;
* no swap (pie) rule: OpenSpiel's ``swap`` parameter is False by default and it is not implemented here, so the
  first player has a winning strategy; tournaments play every pairing with both colours to cancel that.

Hex has no draws, and once a player is connected no later stone can disconnect them, so the winner of a game
played out to a full board equals the winner at the moment the game ended. A random rollout therefore needs no
move-by-move win check: fill the empty cells in a random order (alternating colours) and look once
(`random_rollout_winners`), the trick fast Hex MCTS programs use.
"""

from __future__ import annotations

from functools import cache

import numpy as np

OFFSETS = ((-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0))
EMPTY, BLACK, WHITE = 0, 1, 2  # a cell holds 0, or 1 + the player who owns it


@cache
def neighbours(n: int) -> tuple[tuple[int, ...], ...]:
    """For each cell index, the indices of the cells it touches."""
    table = []
    for r in range(n):
        for c in range(n):
            table.append(tuple((r + dr) * n + c + dc for dr, dc in OFFSETS if 0 <= r + dr < n and 0 <= c + dc < n))
    return tuple(table)


def check_board_size(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or not 2 <= n <= 19:
        raise ValueError(f"board size must be a whole number from 2 to 19, got {n!r}")
    return int(n)


class HexState:
    """One Hex game: the board, whose turn it is, and the winner once there is one (-1 until then).

    Each player's groups are kept in a union-find over the cells plus four virtual edge nodes, so a move costs
    a handful of unions and the win check is one comparison.
    """

    def __init__(self, n: int = 5):
        self.n = check_board_size(n)
        self.board = np.zeros(n * n, dtype=np.int8)
        self.to_play = 0
        self.winner = -1
        self.moves: list[int] = []
        # virtual nodes: n*n top, +1 bottom (player 0's edges), +2 left, +3 right (player 1's edges)
        self._parent = np.arange(n * n + 4, dtype=np.int32)

    def copy(self) -> HexState:
        other = HexState.__new__(HexState)
        other.n, other.to_play, other.winner = self.n, self.to_play, self.winner
        other.board, other._parent, other.moves = self.board.copy(), self._parent.copy(), list(self.moves)
        return other

    @property
    def done(self) -> bool:
        return self.winner >= 0

    def legal_actions(self) -> list[int]:
        return [] if self.done else np.flatnonzero(self.board == EMPTY).tolist()

    def legal_mask(self) -> np.ndarray:
        return (self.board == EMPTY) & (not self.done)

    def _find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _union(self, i: int, j: int) -> None:
        ri, rj = self._find(i), self._find(j)
        if ri != rj:
            self._parent[ri] = rj

    def apply(self, action: int) -> HexState:
        """Play `action` for the player to move (in place; returns self)."""
        n, cells = self.n, self.n * self.n
        if self.done:
            raise ValueError(f"the game is over (player {self.winner} won); no more moves")
        if not (isinstance(action, (int, np.integer)) and 0 <= action < cells) or self.board[action] != EMPTY:
            raise ValueError(f"illegal move {action!r}: legal moves are the empty cells {self.legal_actions()}")
        player, action = self.to_play, int(action)
        self.board[action] = player + 1
        for other in neighbours(n)[action]:
            if self.board[other] == player + 1:
                self._union(action, other)
        r, c = divmod(action, n)
        if player == 0:
            if r == 0:
                self._union(action, cells)
            if r == n - 1:
                self._union(action, cells + 1)
            connected = self._find(cells) == self._find(cells + 1)
        else:
            if c == 0:
                self._union(action, cells + 2)
            if c == n - 1:
                self._union(action, cells + 3)
            connected = self._find(cells + 2) == self._find(cells + 3)
        self.moves.append(action)
        if connected:
            self.winner = player
        self.to_play = 1 - player
        return self

    def __str__(self) -> str:
        rows = []
        for r in range(self.n):
            row = " ".join(".xo"[v] for v in self.board[r * self.n:(r + 1) * self.n])
            rows.append(" " * r + row)
        return "\n".join(rows)


def _shift_or(reach: np.ndarray) -> np.ndarray:
    """reach OR'd with reach moved along each of the six hex directions (boards are the last two axes)."""
    out = reach.copy()
    for dr, dc in OFFSETS:
        # a cell (r, c) is reached from (r - dr, c - dc)
        src_r = slice(max(0, -dr), reach.shape[-2] - max(0, dr))
        dst_r = slice(max(0, dr), reach.shape[-2] - max(0, -dr))
        src_c = slice(max(0, -dc), reach.shape[-1] - max(0, dc))
        dst_c = slice(max(0, dc), reach.shape[-1] - max(0, -dc))
        out[..., dst_r, dst_c] |= reach[..., src_r, src_c]
    return out


def connects_top_bottom(stones: np.ndarray) -> np.ndarray:
    """For boolean boards (..., n, n): does a chain of True cells join row 0 to row n-1? (flood fill)"""
    reach = np.zeros_like(stones)
    reach[..., 0, :] = stones[..., 0, :]
    while True:
        grown = _shift_or(reach) & stones
        if np.array_equal(grown, reach):
            return reach[..., -1, :].any(axis=-1)
        reach = grown


def winners(boards: np.ndarray) -> np.ndarray:
    """Winner of each board (..., n, n) of cell values: 0, 1, or -1 for none yet."""
    black = connects_top_bottom(boards == BLACK)
    white = connects_top_bottom(np.swapaxes(boards == WHITE, -1, -2))  # left-right is top-bottom transposed
    return np.where(black, 0, np.where(white, 1, -1))


def random_rollout_winners(boards: np.ndarray, to_play: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Winners of uniformly random playouts from boards (B, n*n) with `to_play` (B,) to move: each board's empty
    cells are filled in a random order, the player to move first, and the full board is read once."""
    boards = np.array(boards, dtype=np.int8, copy=True)
    batch, cells = boards.shape
    n = round(cells ** 0.5)
    keys = rng.random((batch, cells))
    keys[boards != EMPTY] = np.inf  # occupied cells sort last
    order = np.argsort(keys, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(cells)[None, :].repeat(batch, 0), axis=1)
    colour = ((rank + to_play[:, None]) % 2 + 1).astype(np.int8)
    filled = np.where(boards == EMPTY, colour, boards)
    # A full Hex board has exactly one winner: black joins top-bottom, or else white joins left-right.
    return np.where(connects_top_bottom(filled.reshape(batch, n, n) == BLACK), 0, 1)


class HexBatch:
    """B independent Hex games stepped together (numpy): `boards` (B, n*n) int8, `to_play` (B,), `winner` (B,).

    Finished games ignore their actions. Used by Policy Gradient Search to run many simulations in parallel.
    """

    def __init__(self, n: int, batch: int):
        self.n = check_board_size(n)
        self.boards = np.zeros((batch, n * n), dtype=np.int8)
        self.to_play = np.zeros(batch, dtype=np.int64)
        self.winner = np.full(batch, -1, dtype=np.int64)

    @classmethod
    def from_state(cls, state: HexState, batch: int) -> HexBatch:
        games = cls(state.n, batch)
        games.boards[:] = state.board
        games.to_play[:] = state.to_play
        games.winner[:] = state.winner
        return games

    @property
    def done(self) -> np.ndarray:
        return self.winner >= 0

    def legal_mask(self) -> np.ndarray:
        return (self.boards == EMPTY) & ~self.done[:, None]

    def step(self, actions: np.ndarray) -> None:
        live = ~self.done
        rows = np.flatnonzero(live)
        acts = np.asarray(actions)[rows]
        if (self.boards[rows, acts] != EMPTY).any():
            raise ValueError("a move was played on an occupied cell")
        self.boards[rows, acts] = (self.to_play[rows] + 1).astype(np.int8)
        # Only the player who just moved can have connected.
        n = self.n
        mover = self.to_play[rows]
        stones = self.boards[rows].reshape(-1, n, n) == (mover + 1)[:, None, None].astype(np.int8)
        stones = np.where((mover == 1)[:, None, None], np.swapaxes(stones, 1, 2), stones)
        won = connects_top_bottom(stones)
        self.winner[rows[won]] = mover[won]
        self.to_play[rows] = 1 - mover


def canonical_planes(boards: np.ndarray, to_play: np.ndarray) -> np.ndarray:
    """Network input (B, 3, n, n) float32 seen from the player to move, who always connects top to bottom:
    for player 1 the board is transposed (left-right becomes top-bottom; the hex neighbourhood is symmetric
    under transposition). Planes: own stones, opponent's stones, empty cells."""
    batch, cells = boards.shape
    n = round(cells ** 0.5)
    grid = boards.reshape(batch, n, n)
    grid = np.where((to_play == 1)[:, None, None], np.swapaxes(grid, 1, 2), grid)
    own = grid == (to_play + 1)[:, None, None]
    opp = (grid != EMPTY) & ~own
    return np.stack([own, opp, grid == EMPTY], axis=1).astype(np.float32)


def canonical_to_action(index: np.ndarray, to_play: np.ndarray, n: int) -> np.ndarray:
    """Map cell indices in the canonical frame of `canonical_planes` back to board actions (and vice versa:
    the map is its own inverse)."""
    r, c = np.divmod(np.asarray(index), n)
    return np.where(np.asarray(to_play) == 1, c * n + r, r * n + c)
