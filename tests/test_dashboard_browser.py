"""The served dashboard in a real browser (Playwright + Debian's Chromium), and runs outliving the dashboard.

* Start a real short training run from the Monitor tab's form, see the number of plotted points grow,
  stop it from the page, see its status change; a screenshot goes to test-artifacts/.
* Kill the dashboard process while a run it launched trains: the run keeps going, and a restarted
  dashboard shows it again (it re-attaches through the store).

The browser test is skipped only when /usr/bin/chromium is absent (`apt-get install -y chromium`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_dashboard import free_port, stop_process  # noqa: E402 (tests/ is on sys.path under pytest)

from workbench.storage.runs import RunStore, process_alive

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
FORM = {"timesteps": "1000000", "num_envs": "8", "num_steps": "16", "num_minibatches": "2", "width": "0.25",
        "num_levels": "0"}


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1",  # tiny runs on a shared 2-core machine
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def start_dashboard(store_root: Path, port: int) -> subprocess.Popen:
    from test_dashboard import wait_for_http_200

    proc = subprocess.Popen([sys.executable, "-m", "widgets.app", "--port", str(port), "--store", str(store_root)],
                            cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    page = wait_for_http_200(f"http://127.0.0.1:{port}/", timeout=90, proc=proc)
    assert "<title>RL Workbench</title>" in page
    return proc


@contextlib.contextmanager
def dashboard_page(store_root: Path, screenshot: str, *, width: int = 1400, height: int = 1600):
    """The served dashboard (its own process) open in a headless Chromium page. At the end, pass or fail, a
    full-page screenshot goes to test-artifacts/<screenshot>, and the browser and the server are stopped."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = start_dashboard(store_root, port)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                yield page
            finally:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
                browser.close()
    finally:
        stop_process(server)


def kill_runs(store: RunStore) -> None:
    for info in store.list_runs():
        if process_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)


def wait_until(predicate, timeout: float, what: str, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what} {detail()}"
        time.sleep(0.5)


def plotted_points(page) -> int:
    """Points in the page's plotly figure (what the browser draws)."""
    plots = page.locator(".js-plotly-plot")
    if plots.count() == 0:
        return 0
    return plots.first.evaluate("el => (el.data || []).filter(t => t.name)"
                                ".reduce((n, t) => n + (t.x ? t.x.length : 0), 0)")


def pane_text(page, css_class: str) -> str:
    """Text of a Panel pane (its content is inside the element's shadow root, which innerText skips)."""
    return page.locator(css_class).first.evaluate("el => (el.shadowRoot || el).textContent")


def status_text(page) -> str:
    return pane_text(page, ".wb-status")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_launch_watch_and_stop_a_run_from_the_page(tmp_path):
    store = RunStore(tmp_path / "store")
    try:
        with dashboard_page(store.root, "training_monitor.png", height=1800) as page:
            page.get_by_text("Monitor", exact=True).first.click()
            page.locator(".wb-form-env select").first.wait_for(timeout=60_000)
            page.locator(".wb-form-env select").first.select_option("colour_cue")
            for key, value in FORM.items():
                box = page.locator(f".wb-form-{key} input").first
                box.fill(value)
                box.press("Tab")  # Bokeh sends a text input's value on change (blur)
            page.locator(".wb-launch button").first.click()

            wait_until(lambda: store.list_runs(), 120, "the run to be registered")
            [info] = store.list_runs()
            assert info.env == "colour_cue" and info.config["num_envs"] == 8 and info.config["width"] == 0.25
            assert process_alive(info.pid)
            wait_until(lambda: "Launched" in pane_text(page, ".wb-message"), 60, "the message",
                       lambda: pane_text(page, ".wb-message"))

            counts = []

            def grew():
                counts.append(plotted_points(page))
                return len(set(c for c in counts if c > 0)) >= 3

            wait_until(grew, 240, "the number of plotted points to grow",
                       lambda: f"(counts {counts}, status {status_text(page)!r}, run {store.get_run(info.id)})")
            assert counts == sorted(counts), counts  # grows while it trains
            m = re.search(r"(\d+) points plotted", status_text(page))
            assert m and int(m.group(1)) > 0

            page.locator(".wb-stop button").first.click()
            wait_until(lambda: store.get_run(info.id).status == "stopped", 120, 'the store status "stopped"',
                       lambda: f"({store.get_run(info.id)}; message {pane_text(page, '.wb-message')!r})")
            wait_until(lambda: ": stopped" in status_text(page), 60, "the page to show the stopped status",
                       lambda: repr(status_text(page)))
    finally:
        kill_runs(store)


@pytest.mark.slow
def test_a_run_keeps_going_when_the_dashboard_is_killed_and_is_shown_after_a_restart(tmp_path):
    """The dashboard process launches a run from its monitor's form and is then SIGKILLed."""
    store = RunStore(tmp_path / "store")
    code = f"""
import sys, time
from widgets import TrainingMonitor
m = TrainingMonitor(store_root=sys.argv[1])
m.form_env.value = "colour_cue"
for key, value in {FORM!r}.items():
    m.form_inputs[key].value = value
ids = m.launch()
print(ids[0] if ids else "FAILED " + m.message.object, flush=True)
time.sleep(600)
"""
    dashboard = subprocess.Popen([sys.executable, "-c", code, str(store.root)], cwd=REPO, env=child_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = dashboard.stdout.readline().strip()
        assert line and not line.startswith("FAILED"), line + dashboard.stderr.read() if dashboard.poll() else line
        run_id = line
        pid = store.get_run(run_id).pid
        assert process_alive(pid)
        dashboard.send_signal(signal.SIGKILL)
        dashboard.wait(timeout=30)

        steps = store.get_run(run_id).env_steps
        wait_until(lambda: store.get_run(run_id).env_steps > steps, 240, "the run to keep logging")
        assert process_alive(pid) and store.get_run(run_id).status == "running"

        # A new dashboard re-attaches through the store: the run is listed, running, with its curves.
        port = free_port()
        server = start_dashboard(store.root, port)
        try:
            import panel.models.tabulator  # noqa: F401  (registers the model types for decoding)
            from bokeh.client import pull_session

            session = pull_session(url=f"http://127.0.0.1:{port}/")
            try:
                tables = [m for m in session.document.models if type(m).__name__ == "DataTabulator"]
                data = tables[0].source.data
                assert list(data["id"]) == [run_id] and list(data["status"]) == ["running"]
            finally:
                session.close()
        finally:
            stop_process(server)
        from widgets import TrainingMonitor

        monitor = TrainingMonitor(store_root=store.root, selected_run_ids=[run_id])
        assert monitor.points_plotted > 0 and f"{run_id}: running" in monitor.status.object
        assert monitor.stop_selected() == [run_id]
        wait_until(lambda: store.get_run(run_id).status == "stopped", 120, 'status "stopped"')
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
        kill_runs(store)
