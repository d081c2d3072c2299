"""The dashboard's Calibration tab in a real browser (Playwright + Debian's Chromium).

Two stored prediction sets are overlaid: the page's plotly figure has one reliability curve per set with one
point per non-empty bin (the numbers of workbench.calibration.metrics.reliability_bins), count bars beneath, and the
metrics table shows the sets' ECE. Then a bad JSONL upload shows its line-numbered errors and stores nothing,
and a good one is imported and drawn. A screenshot goes to test-artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_dashboard_browser import CHROMIUM, dashboard_page, pane_text, wait_until

from workbench.calibration import metrics as cal
from workbench.calibration.predictions import PredictionStore
from workbench.storage.runs import RunStore

N_BINS = 15  # the diagram's default


def curves(page) -> dict[str, dict]:
    """Reliability traces of the page's figure: series name -> {"x", "y", "kind"} (what the browser draws)."""
    plot = page.locator(".wb-cal-plot .js-plotly-plot")
    if plot.count() == 0:
        return {}
    data = plot.first.evaluate("el => (el.data || []).filter(t => t.meta && t.meta.series)"
                               ".map(t => ({series: t.meta.series, kind: t.meta.kind, x: Array.from(t.x),"
                               " y: Array.from(t.y)}))")
    return {f"{d['kind']}:{d['series']}": d for d in data}


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_calibration_tab_in_the_browser(tmp_path):
    root = tmp_path / "store"
    RunStore(root).close()
    store = PredictionStore(root)
    rng = np.random.default_rng(0)
    c1 = rng.random(2000)
    y1 = (rng.random(2000) < c1).astype(int)
    c2 = rng.random(800)
    y2 = (rng.random(800) < c2 ** 2).astype(int)
    a = store.save("calibrated model", c1, y1, source="reward_model")
    b = store.save("overconfident critic", c2, y2, source="value_function")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"confidence": 0.5, "correct": 1}\n{"confidence": 75, "correct": 1}\nnot json\n')
    good = tmp_path / "uploaded model.jsonl"
    good.write_text("".join(json.dumps({"confidence": float(p), "correct": int(p > 0.3)}) + "\n"
                            for p in np.linspace(0.05, 0.95, 50)))

    with dashboard_page(root, "calibration_tab.png") as page:
        page.get_by_text("Calibration", exact=True).first.click()
        page.locator(".wb-cal-plot .js-plotly-plot").first.wait_for(timeout=60_000)

        # the newest set is drawn first; choose the other one too in the picker
        wait_until(lambda: len(curves(page)) == 2, 30, "the first set's traces", lambda: list(curves(page)))
        page.locator(".wb-cal-picker input").first.click()
        page.get_by_text("calibrated model · reward_model", exact=False).first.click()
        page.keyboard.press("Escape")
        wait_until(lambda: len(curves(page)) == 4, 30, "both sets' traces", lambda: list(curves(page)))

        drawn = curves(page)
        for sid, (c, y) in ((a, (c1, y1)), (b, (c2, y2))):
            info = store.info(sid)
            name = f"{info.name} · {info.source} · n={info.n} · {sid[-6:]}"
            bins = cal.reliability_bins(c, y, n_bins=N_BINS, n_bootstrap=0)
            nz = bins.count > 0
            rel = drawn[f"reliability:{name}"]
            assert len(rel["x"]) == int(nz.sum())  # one point per non-empty bin
            np.testing.assert_allclose(rel["y"], bins.accuracy[nz], rtol=1e-9)
            np.testing.assert_allclose(rel["x"], bins.mean_confidence[nz], rtol=1e-9)
            assert sum(drawn[f"counts:{name}"]["y"]) == c.size
        # the figure is drawn, not just sent: plotly made one SVG path group per curve
        assert page.locator(".wb-cal-plot .scatterlayer .trace").count() >= 3

        table = pane_text(page, ".wb-cal-metrics")
        assert "ECE (equal width)" in table and "Murphy reliability" in table
        for c, y in ((c1, y1), (c2, y2)):
            assert f"{cal.ece(c, y, n_bins=N_BINS):.4f}" in table

        # a bad upload: every bad line reported, nothing stored
        page.locator(".wb-cal-file input[type=file]").first.set_input_files(str(bad))
        page.wait_for_timeout(1000)  # the file's bytes travel over the websocket
        page.locator(".wb-cal-import button").first.click()
        wait_until(lambda: "Nothing imported" in pane_text(page, ".wb-cal-message"), 30, "the import error",
                   lambda: pane_text(page, ".wb-cal-message"))
        message = pane_text(page, ".wb-cal-message")
        assert "line 2" in message and "line 3" in message and "divide percentages by 100" in message
        assert len(store.list()) == 2

        # a good upload is stored and drawn
        page.locator(".wb-cal-file input[type=file]").first.set_input_files(str(good))
        page.wait_for_timeout(1000)
        page.locator(".wb-cal-import button").first.click()
        wait_until(lambda: "Imported 50 predictions" in pane_text(page, ".wb-cal-message"), 30,
                   "the import", lambda: pane_text(page, ".wb-cal-message"))
        wait_until(lambda: len(curves(page)) == 6, 30, "the imported set's traces", lambda: list(curves(page)))
        assert [i.name for i in store.list(source="jsonl")] == ["uploaded model"]
