"""In Chromium: the Monitor tab switched to log axes, and its hyperparameter view drawn for two runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dashboard_browser import CHROMIUM, dashboard_page, wait_until  # noqa: E402 (tests/ is on sys.path)
from test_monitor_views import make_run

from workbench.storage.runs import RunStore


def plot_state(page, css: str, expression: str):
    """Evaluate ``expression`` (over ``el``, the plotly div) in the first plot inside ``css``."""
    plots = page.locator(f"{css} .js-plotly-plot")
    if plots.count() == 0:
        return None
    return plots.first.evaluate(f"el => {expression}")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_log_axes_and_the_hyperparameter_view_in_the_browser(tmp_path):
    store = RunStore(tmp_path / "store")
    ids = [make_run(store, 1e-3, 0, arch="dual"), make_run(store, 3e-4, 1, arch="detach")]
    with dashboard_page(store.root, "monitor_views.png", height=2200) as page:
        page.get_by_text("Monitor", exact=True).first.click()
        rows = page.locator(".wb-plot").first  # the monitor is rendered
        rows.wait_for(timeout=60_000)
        table_rows = page.locator(".tabulator-row:visible")
        wait_until(lambda: table_rows.count() >= 2, 60, "the runs in the monitor's table")
        table_rows.nth(0).click()
        table_rows.nth(1).click(modifiers=["Control"])
        wait_until(lambda: plot_state(page, ".wb-plot", "(el.data || []).filter(t => t.name).length") == 2, 60,
                   "both runs' curves")
        page.locator(".wb-log-y input").first.check()
        wait_until(lambda: plot_state(page, ".wb-plot", "el.layout.yaxis.type") == "log", 60, "a log y axis")
        page.locator(".wb-log-x input").first.check()
        wait_until(lambda: plot_state(page, ".wb-plot", "el.layout.xaxis.type") == "log", 60, "a log x axis")

        page.get_by_text("Hyperparameters", exact=True).first.click()
        wait_until(lambda: plot_state(page, ".wb-hparams-plot", "el.data && el.data[0] && el.data[0].type")
                   == "parcoords", 60, "the parallel coordinates")
        labels = plot_state(page, ".wb-hparams-plot", "el.data[0].dimensions.map(d => d.label)")
        assert labels == ["arch", "learning_rate", "episode_return"]
        counts = plot_state(page, ".wb-hparams-plot", "el.data[0].dimensions[2].values.length")
        assert counts == len(ids)


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_the_served_page_requests_nothing_from_outside(tmp_path):
    """Offline, the page must not wait on a CDN: every resource of every tab comes from the server itself."""
    from widgets.app import TABS

    store = RunStore(tmp_path / "store")
    make_run(store, 1e-3, 0)
    outside, failed = [], []
    with dashboard_page(store.root, "offline.png") as page:
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                     "blob:", "ws://127.0.0.1"))
                else None)
        page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
        page.reload()
        page.wait_for_load_state("networkidle")
        for title, _ in TABS:
            page.get_by_text(title, exact=True).first.click()
            page.wait_for_timeout(1500)
        page.wait_for_load_state("networkidle")
    assert outside == [], outside
    assert failed == [], failed


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_the_rollout_player_is_in_view_on_a_laptop_screen(tmp_path):
    from workbench.episodes.rollouts import record_random

    store = RunStore(tmp_path / "store")
    record_random("coinrun", episodes=1, max_steps=20, store_root=store.root)
    with dashboard_page(store.root, "rollouts_1366x768.png", width=1366, height=768) as page:
        page.get_by_text("Rollouts", exact=True).first.click()
        rows = page.locator(".tabulator-row:visible")
        wait_until(lambda: rows.count() >= 1, 60, "the episode in the table")
        rows.first.click()
        player = page.locator(".wb-player").first
        player.wait_for(timeout=60_000)
        frame = page.locator(".wb-frame").first.bounding_box()
        box = player.bounding_box()
        assert frame["y"] >= 0 and box["y"] + box["height"] <= 768, (frame, box)  # frame and controls, no scrolling
        assert frame["x"] + frame["width"] <= 1366
