"""Hex rules against OpenSpiel, MCTS / PGS strength at small budgets, expert iteration learning on 3x3 (checked
against an exact minimax solution), tournament statistics against closed forms and statsmodels, and the CLI."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from scipy import stats

from workbench.search.agents import make_agent, play_game
from workbench.search.hex import HexBatch, HexState, random_rollout_winners, winners
from workbench.search.net import PolicyValueNet, evaluate
from workbench.search.pgs import PGSConfig
from workbench.search.tournament import fit_elo, round_robin, wilson_interval


def test_rules_agree_with_openspiel_on_thousands_of_random_games():
    pyspiel = pytest.importorskip("pyspiel")
    rng = np.random.default_rng(0)
    games = 0
    for n in (2, 3, 4, 5, 7):
        game = pyspiel.load_game("hex", {"board_size": n})
        assert game.get_parameters()["swap"] is False  # OpenSpiel's default: no pie rule, as here
        for _ in range(400):
            spiel, ours = game.new_initial_state(), HexState(n)
            while not spiel.is_terminal():
                assert ours.legal_actions() == spiel.legal_actions()
                assert ours.to_play == spiel.current_player()
                action = int(rng.choice(spiel.legal_actions()))
                spiel.apply_action(action)
                ours.apply(action)
                assert ours.done == spiel.is_terminal()
            assert ours.legal_actions() == []
            assert ours.winner == (0 if spiel.returns()[0] > 0 else 1)
            assert winners(ours.board.reshape(n, n)) == ours.winner  # the batched flood fill agrees
            games += 1
    assert games == 2000


def test_batched_games_match_single_games():
    rng = np.random.default_rng(1)
    n, batch = 5, 32
    games, singles = HexBatch(n, batch), [HexState(n) for _ in range(batch)]
    while not games.done.all():
        legal = games.legal_mask()
        actions = np.array([rng.choice(np.flatnonzero(row)) if row.any() else 0 for row in legal])
        games.step(actions)
        for k, state in enumerate(singles):
            if not state.done:
                state.apply(int(actions[k]))
        assert np.array_equal(games.winner, [s.winner for s in singles])
        assert np.array_equal(games.boards, np.stack([s.board for s in singles]))


def test_the_winner_of_a_game_is_the_winner_of_its_filled_board():
    """What makes one-look random rollouts exact: playing on after the game ended never changes the winner."""
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(2, 8))
        order = rng.permutation(n * n)
        state, board = HexState(n), np.zeros(n * n, dtype=np.int8)
        for k, cell in enumerate(order):
            board[cell] = k % 2 + 1
            if not state.done:
                state.apply(int(cell))
        assert winners(board.reshape(n, n)) == state.winner
    # and the rollout's first-player win rate matches sequential random play (5x5, within 4 standard errors)
    n, count = 5, 4000
    rollout = random_rollout_winners(np.zeros((count, n * n), np.int8), np.zeros(count, np.int64), rng)
    sequential = [play_game(make_agent("random", n, seed=s), make_agent("random", n, seed=s + 9999), n)[0]
                  for s in range(800)]
    p, q = (rollout == 0).mean(), np.mean(np.array(sequential) == 0)
    assert abs(p - q) < 4 * np.sqrt(p * (1 - p) / 800 + p * (1 - p) / count)


def match(make_a, make_b, n: int, pairs: int, seed: int = 0) -> int:
    """Wins of A over `pairs` colour-swapped game pairs, each pair from its own random first move."""
    rng, wins = np.random.default_rng(seed), 0
    for k in range(pairs):
        opening = [int(rng.integers(n * n))]
        wins += play_game(make_a(2 * k), make_b(2 * k), n, opening)[0] == 0
        wins += play_game(make_b(2 * k + 1), make_a(2 * k + 1), n, opening)[0] == 1
    return wins


def test_mcts_with_more_simulations_beats_mcts_with_fewer():
    """UCT with 64 simulations against UCT with 4 on 4x4: at least 75% of 40 games and a one-sided binomial
    test against 50% at p < 0.01."""
    n = 4
    wins = match(lambda s: make_agent("uct", n, 64, seed=s), lambda s: make_agent("uct", n, 4, seed=1000 + s),
                 n, pairs=20)
    assert wins >= 30, wins
    assert stats.binomtest(wins, 40, 0.5, alternative="greater").pvalue < 0.01


def test_pgs_beats_its_unadapted_simulation_policy_at_the_same_budget():
    """PGS against Monte Carlo search with the same network's un-adapted policy (learning rate 0), both 32
    simulations a move, on 4x4: at least 70% of 30 games, binomial test p < 0.01."""
    n = 4
    torch.manual_seed(0)
    net = PolicyValueNet(n, channels=8, blocks=1).eval()
    wins = match(lambda s: make_agent("pgs", n, 32, net, seed=s), lambda s: make_agent("mcs", n, 32, net, seed=s),
                 n, pairs=15)
    assert wins >= 21, wins
    assert stats.binomtest(wins, 30, 0.5, alternative="greater").pvalue < 0.01


def test_pgs_adapts_towards_the_only_winning_move():
    """A position where one move wins at once and every other loses (white then wins there): the adapted policy
    puts far more mass on it than the prior, and it is played."""
    n = 4
    state = HexState(n)
    for move in (0, 13, 4, 14, 8, 15):  # black: column 0 rows 0-2; white: row 3 but (3, 0); 12 decides
        state.apply(move)
    torch.manual_seed(0)
    net = PolicyValueNet(n, channels=8, blocks=1).eval()
    prior, _ = evaluate(net, state.board[None], np.array([state.to_play]))
    agent = make_agent("pgs", n, 64, net, seed=0, pgs=PGSConfig(parallel=8))
    action, info = agent.act(state)
    assert action == 12
    assert info["policy"][12] > 3 * prior[0][12]


def test_uct_and_openspiel_mcts_are_alike():
    """Cross-check against OpenSpiel's MCTSBot at the same budget (32 rollouts a move, 4x4): both beat random
    play, and neither wins more than 80% of 20 games against the other."""
    pytest.importorskip("open_spiel")
    n = 4
    for name in ("uct", "openspiel-mcts"):
        wins = match(lambda s, name=name: make_agent(name, n, 32, seed=s), lambda s: make_agent("random", n, seed=s),
                     n, 10)
        assert wins >= 17, (name, wins)
    wins = match(lambda s: make_agent("uct", n, 32, seed=s), lambda s: make_agent("openspiel-mcts", n, 32, seed=s),
                 n, 10)
    assert 4 <= wins <= 16, wins


def test_wilson_interval_and_elo_against_references():
    from statsmodels.stats.proportion import proportion_confint

    low, high = wilson_interval(17, 40)
    ref = proportion_confint(17, 40, alpha=0.05, method="wilson")
    assert np.allclose([low, high], ref)
    # two players: the ML rating gap is 400 log10(wins / losses), here with the half-win each way prior
    elo = fit_elo(np.array([[0.0, 30.0], [10.0, 0.0]]))  # player 0 won 30 of 40 games
    assert elo[1] - elo[0] == pytest.approx(400 * np.log10(10.5 / 30.5), abs=0.5)
    # three players: at the optimum each player's expected score equals its actual score
    wins = np.array([[0, 12, 15], [8, 0, 11], [5, 9, 0]], dtype=float)
    r = fit_elo(wins)
    games = wins + wins.T
    played = games + (games > 0)  # with the virtual draw
    expected = played / (1 + 10 ** ((r[None, :] - r[:, None]) / 400))
    actual = wins + 0.5 * (games > 0)
    assert np.allclose(expected.sum(1), actual.sum(1), atol=1e-2)


def test_round_robin_plays_every_pair_in_both_colours(tmp_path):
    from workbench.search.tournament import load_results, save_result

    n = 3
    result = round_robin(lambda name, seed: make_agent(name, n, 8, seed=seed), ["random", "uct", "openspiel-mcts"],
                         n, 8, games_per_pair=4)
    wins = np.array(result.wins)
    assert np.array_equal(wins + wins.T, 4 * (1 - np.eye(3)))
    assert sum(result.moves.values()) > 0 and "Elo" in result.format()
    save_result(tmp_path, result)
    assert load_results(tmp_path)[0].wins == result.wins
    with pytest.raises(ValueError, match="even"):
        round_robin(lambda name, seed: None, ["a", "b"], n, 8, games_per_pair=3)


@cache
def _to_move_wins(board: bytes, to_play: int, n: int) -> bool:
    """Exact minimax: can the player to move force a win? (plain recursion over HexState, 3x3)"""
    state = HexState(n)
    state.board[:] = np.frombuffer(board, dtype=np.int8)
    for cell in range(n * n):
        if state.board[cell] == 0:
            child = _replay(board, to_play, n)
            child.apply(cell)
            if child.done or not _to_move_wins(child.board.tobytes(), child.to_play, n):
                return True
    return False


def _replay(board: bytes, to_play: int, n: int) -> HexState:
    """A HexState (with its union-find) for a board: play black's and white's stones in alternation."""
    cells = np.frombuffer(board, dtype=np.int8)
    black, white = list(np.flatnonzero(cells == 1)), list(np.flatnonzero(cells == 2))
    state = HexState(n)
    while black or white:
        state.apply(int((black if state.to_play == 0 else white).pop()))
    assert state.to_play == to_play
    return state


def _reachable(n: int) -> list[HexState]:
    out, frontier, seen = [], [HexState(n)], set()
    while frontier:
        state = frontier.pop()
        key = state.board.tobytes()
        if key in seen or state.done:
            continue
        seen.add(key)
        out.append(state)
        frontier.extend(state.copy().apply(a) for a in state.legal_actions())
    return out


def _winning_move_rate(net: PolicyValueNet, positions: list[HexState]) -> float:
    """Among positions where the player to move can force a win, how often the net's top move is a winning one."""
    n, hits, total = net.board_size, 0, 0
    for state in positions:
        if not _to_move_wins(state.board.tobytes(), state.to_play, n):
            continue
        prior, _ = evaluate(net, state.board[None], np.array([state.to_play]))
        child = state.copy().apply(int(np.argmax(prior[0])))
        hits += child.done or not _to_move_wins(child.board.tobytes(), child.to_play, n)
        total += 1
    return hits / total


@pytest.mark.slow
def test_expert_iteration_learns_winning_moves_on_3x3(tmp_path):
    from workbench.search.exit import ExItConfig, expert_iteration, net_from_run
    from workbench.storage.runs import RunStore

    n = 3
    positions = _reachable(n)
    config = ExItConfig(board_size=n, expert="mcts", iterations=4, games_per_iteration=12, simulations=32,
                        channels=16, blocks=2, learning_rate=3e-3, epochs=8, seed=0)
    torch.manual_seed(config.seed)
    before = _winning_move_rate(PolicyValueNet(n, config.channels, config.blocks).eval(), positions)
    store = RunStore(tmp_path)
    net, run_id = expert_iteration(config, store)
    after = _winning_move_rate(net, positions)
    assert after > before + 0.15, (before, after)
    assert store.get_run(run_id).status == "finished"
    loaded = net_from_run(store, run_id)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    # PGS (the shallow-tree variant) as the expert runs too
    _, pgs_run = expert_iteration(ExItConfig(board_size=n, expert="pgs", iterations=1, games_per_iteration=2,
                                             simulations=16, channels=8, blocks=1), store)
    assert len(store.read_metrics(pgs_run)) > 0


def test_cli_plays_a_match_and_rejects_bad_input(tmp_path, capsys):
    from workbench.cli.main import main

    assert main(["--store", str(tmp_path), "hex", "play", "--size", "3", "--black", "uct", "--white", "pgs",
                 "--simulations", "8", "--games", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("wins in") == 2 and "score:" in out
    assert main(["--store", str(tmp_path), "hex", "play", "--size", "1"]) == 2
    assert "board size must be" in capsys.readouterr().err
    assert main(["--store", str(tmp_path), "hex", "tournament", "--size", "3", "--agents", "random,uct",
                 "--simulations", "4", "--games-per-pair", "2"]) == 0
    assert "Elo" in capsys.readouterr().out
