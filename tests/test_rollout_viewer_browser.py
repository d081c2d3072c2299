"""The rollout viewer served and driven in a real browser (Playwright + Debian's Chromium).

* A RolloutViewer served on its own: the frame's image is decoded by the browser and drawn with crisp
  pixels; pressing play advances the shown step (and the plot's cursor follows it); pausing stops it;
  dragging the scrub slider to a step shows that step; a screenshot goes to test-artifacts/.
* The dashboard's Rollouts tab lists a recorded episode; clicking its row shows it in the viewer.

Skipped only when /usr/bin/chromium is absent (`apt-get install -y chromium`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_dashboard import (  # tests/ is on sys.path under pytest
    free_port,
    stop_process,
    wait_for_http_200,
)
from test_dashboard_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    child_env,
    dashboard_page,
    wait_until,
)

from workbench.episodes.rollouts import NUM_ACTIONS, Episode, RolloutStore

REPO = Path(__file__).resolve().parents[1]

SERVE_VIEWER = """
import sys
import panel as pn
from widgets.rollout_viewer import RolloutViewer
root, episode_id, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def page():
    pn.extension("plotly")
    return RolloutViewer(episode_id=episode_id, store_root=root, fps=8)

pn.serve({"/": page}, port=port, address="127.0.0.1", show=False, start=True, title="rollout viewer")
"""


def moving_square_episode(length: int = 40) -> tuple[Episode, np.ndarray]:
    """Each frame differs: a white square that moves one cell per step over a dark background."""
    frames = np.full((length, 64, 64, 3), 30, np.uint8)
    for t in range(length):
        row, col = divmod(t % 64, 8)
        frames[t, row * 8:row * 8 + 8, col * 8:col * 8 + 8] = 255
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(NUM_ACTIONS), size=length)
    rewards = np.zeros(length, np.float32)
    rewards[[t for t in (10, 30) if t < length]] = 1.0
    dones = np.zeros(length, bool)
    dones[-1] = True
    episode = Episode(frames=frames, actions=rng.integers(0, NUM_ACTIONS, length), probs=probs,
                      values=np.linspace(0, 2, length), rewards=rewards, dones=dones, env="coinrun", level_seed=5,
                      levels="seed", distribution_mode="easy", policy="checkpoint", run_id="browser-run",
                      checkpoint_step=1000)
    return episode, frames.repeat(8, axis=1).repeat(8, axis=2)


def shown_step(page) -> int:
    return int(page.locator(".wb-frame img").first.get_attribute("data-step"))


def cursor_x(page) -> float:
    return page.locator(".wb-series .js-plotly-plot").first.evaluate("el => el.layout.shapes[0].x0")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_play_pause_and_scrub_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    store = RolloutStore(tmp_path / "store")
    episode, hires = moving_square_episode(40)
    episode_id = store.save(episode, hires)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE_VIEWER, str(store.root), episode_id, str(port)],
                              cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http_200(f"http://127.0.0.1:{port}/", timeout=90, proc=server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                image = page.locator(".wb-frame img").first
                image.wait_for(timeout=60_000)
                assert shown_step(page) == 0
                natural, rendering = image.evaluate("e => [e.naturalWidth, getComputedStyle(e).imageRendering]")
                assert natural == 512 and rendering == "pixelated"  # the hi-res render, crisp
                first_src = image.get_attribute("src")
                page.locator(".wb-series .js-plotly-plot").first.wait_for(timeout=60_000)

                page.locator(".wb-player button.play").first.click()
                steps = []

                def advanced():
                    steps.append(shown_step(page))
                    return len(set(steps)) >= 3

                wait_until(advanced, 60, "the shown step to advance while playing", lambda: f"(steps {steps})")
                assert page.locator(".wb-frame img").first.get_attribute("src") != first_src
                page.locator(".wb-player button.pause").first.click()

                def settled():  # paused: the step stops changing and the cursor has caught up with it
                    a = shown_step(page)
                    time.sleep(0.6)
                    return a == shown_step(page) and cursor_x(page) == a

                wait_until(settled, 30, "playback to stop with the cursor on the shown step",
                           lambda: f"(step {shown_step(page)}, cursor {cursor_x(page)})")

                # Scrub: drag the slider (set its value and fire the events a drag fires).
                page.locator(".wb-player input[type=range]").first.evaluate(
                    "el => { el.value = 27; el.dispatchEvent(new Event('input', {bubbles: true}));"
                    " el.dispatchEvent(new Event('change', {bubbles: true})); }")
                wait_until(lambda: shown_step(page) == 27 and cursor_x(page) == 27, 30,
                           "the slider to show step 28", lambda: f"(step {shown_step(page)}, cursor {cursor_x(page)})")
                readout = page.locator(".wb-step").first.evaluate("el => (el.shadowRoot || el).textContent")
                assert "28 / 40" in readout

                # Jump to the next reward event (step index 30).
                page.locator(".wb-next-reward button").first.click()
                wait_until(lambda: shown_step(page) == 30, 30, "the jump to the reward at step 31")
            finally:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "rollout_viewer.png"), full_page=True)
                browser.close()
    finally:
        stop_process(server)


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_rollouts_tab_in_the_dashboard_shows_a_clicked_episode(tmp_path):
    store = RolloutStore(tmp_path / "store")
    episode, _ = moving_square_episode(12)
    episode_id = store.save(episode)  # no hi-res render: the 64x64 view is shown
    with dashboard_page(store.root, "rollouts_tab.png") as page:
        page.get_by_text("Rollouts", exact=True).first.click()
        cell = page.locator(".wb-ro-table .tabulator-cell", has_text=episode_id).first
        cell.wait_for(timeout=60_000)
        cell.click()
        image = page.locator(".wb-frame img").first
        image.wait_for(timeout=60_000)
        assert image.evaluate("e => e.naturalWidth") == 64  # sent at 64x64, enlarged by the browser
        assert shown_step(page) == 0
