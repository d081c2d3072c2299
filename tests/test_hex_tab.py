"""The Hex tab without a browser: a human game by `play`, two agents by `agent_move`, the search's visit counts
on the board, an expert-iteration network offered and used, bad settings reported."""

from __future__ import annotations

import numpy as np

from widgets.hex_tab import UNTRAINED, HexTab
from workbench.search.exit import ExItConfig, expert_iteration
from workbench.storage.runs import RunStore


def cell_labels(tab: HexTab) -> list[str]:
    return [b.label for row in tab.board_pane.objects for b in row.objects[1:]]


def test_human_against_an_agent_and_agents_against_each_other(tmp_path):
    tab = HexTab(store_root=tmp_path, board_size=3, black="human", white="uct", simulations=16)
    assert "Black ● to move (human)" in tab.status.object
    for _ in range(9):
        empty = np.flatnonzero(tab.state.board == 0)
        if tab.state.done:
            break
        tab.play(int(empty[0]))
    assert tab.state.done and "wins" in tab.status.object
    # the search's visit counts are written on the board after UCT's move (before the game ended)
    tab.new_game()
    tab.play(4)
    assert any(label.isdigit() for label in cell_labels(tab))
    assert sum(label in ("●", "○") for label in cell_labels(tab)) == 2
    tab.black, tab.white = "pgs", "puct"  # a new game starts with the new players
    assert tab.state.moves == []
    while not tab.state.done:
        tab.agent_move()
    assert "wins" in tab.status.object and ("(pgs)" in tab.status.object or "(puct)" in tab.status.object)


def test_an_expert_iteration_network_is_offered_for_its_board_size(tmp_path):
    store = RunStore(tmp_path)
    _, run_id = expert_iteration(ExItConfig(board_size=3, iterations=1, games_per_iteration=1, simulations=4,
                                            channels=4, blocks=1), store)
    tab = HexTab(store_root=tmp_path, board_size=3, black="puct", white="human", simulations=8)
    assert run_id in tab.net_select.options
    tab.net_select.value = run_id
    tab.new_game()  # puct opens with the stored network
    assert len(tab.state.moves) == 1
    tab.board_size = 4
    assert tab.net_select.options == [UNTRAINED]
