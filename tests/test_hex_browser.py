"""The Hex tab in a real browser (Playwright + Debian's Chromium): play a whole game against the default agent
(UCT) by clicking cells, and see the winner announced; the stored tournament table is shown below the board."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dashboard_browser import CHROMIUM, dashboard_page, pane_text, wait_until

from workbench.search.agents import make_agent
from workbench.search.tournament import round_robin, save_result
from workbench.storage.runs import RunStore


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_play_a_game_of_hex_by_clicks(tmp_path):
    root = tmp_path / "store"
    RunStore(root).close()
    result = round_robin(lambda name, seed: make_agent(name, 3, 4, seed=seed), ["random", "uct"], 3, 4, 2)
    save_result(root, result)
    with dashboard_page(root, "hex_tab.png") as page:
        page.get_by_text("Hex", exact=True).first.click()
        page.locator(".wb-hex-cell").first.wait_for(timeout=60_000)
        assert "Elo" in pane_text(page, ".wb-hex-table")
        status = lambda: pane_text(page, ".wb-hex-status")
        assert "Black ● to move (human)" in status()
        clicks = 0
        while "wins" not in status():
            move = len(page.locator(".wb-hex-black").all())  # stones black has
            page.locator(".wb-hex-cell button:not([disabled])").first.click()
            clicks += 1
            # the click places a black stone, then the agent answers (or the game ends)
            wait_until(lambda move=move: len(page.locator(".wb-hex-black").all()) > move and
                       ("wins" in status() or "Black ● to move" in status()), 30, "the move and the answer",
                       status)
            assert clicks <= 25
        assert "wins" in status() and ("(human)" in status() or "(uct)" in status())
        assert clicks >= 3  # a Hex win needs at least five stones on 5x5
