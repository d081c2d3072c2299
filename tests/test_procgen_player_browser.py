"""Playing Procgen in a real browser (Playwright + Debian's Chromium): hold keys for a few seconds, and find the
episode recorded with the actions of the keys held, in order."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_dashboard import free_port, stop_process, wait_for_http_200
from test_dashboard_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    child_env,
    pane_text,
    wait_until,
)

from workbench.episodes.rollouts import ACTION_NAMES, RolloutStore

SERVE = """
import sys
import panel as pn
from widgets.procgen_player import ProcgenPlayer
pn.extension()
pn.serve(lambda: ProcgenPlayer(store_root=sys.argv[1], env="coinrun", level_seed=3, max_steps=int(sys.argv[3])),
         port=int(sys.argv[2]), address="127.0.0.1", show=False, threaded=False)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_play_with_keys_and_find_the_episode_recorded(tmp_path):
    from playwright.sync_api import sync_playwright

    port, max_steps = free_port(), 45   # 3 s at 15 frames/s
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(tmp_path), str(port), str(max_steps)], cwd=REPO,
                              env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http_200(f"http://127.0.0.1:{port}/", timeout=90, proc=server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator(".wb-player-status").first.wait_for(timeout=60_000)
                assert "RIGHT+UP" in pane_text(page, ".wb-player-mapping")  # the key mapping is on the page
                page.keyboard.down("ArrowRight")
                time.sleep(1.0)
                page.keyboard.up("ArrowRight")
                page.keyboard.down("ArrowUp")
                wait_until(lambda: RolloutStore(tmp_path).list(policy="human"), 60, "an episode to be saved",
                           lambda: pane_text(page, ".wb-player-status"))
                page.keyboard.up("ArrowUp")
            finally:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "procgen_player.png"), full_page=True)
                browser.close()
    finally:
        stop_process(server)
    [info] = RolloutStore(tmp_path).list(policy="human")
    episode = RolloutStore(tmp_path).load(info.id)
    names = [ACTION_NAMES[a] for a in episode.actions]
    assert episode.length == max_steps and episode.level_seed == 3
    # Frames before the first key are NOOPs; then RIGHT while it was held, then UP (a NOOP may fall between).
    assert set(names) <= {"NOOP", "RIGHT", "UP"} and "RIGHT" in names and "UP" in names, names
    first_up = names.index("UP")
    assert "UP" not in names[:names.index("RIGHT")] and "RIGHT" not in names[first_up:], names
