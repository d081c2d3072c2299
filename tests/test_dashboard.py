"""The dashboard: the runs table reads the store faithfully, shows user text as text, refreshes
while served, and the server refuses to listen on a network without a login."""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import panel as pn
import pytest

import widgets.app as app
from widgets.runs_table import TEXT_COLUMNS, RunsTable
from workbench.storage.runs import RunStore

REPO = Path(__file__).resolve().parents[1]
XSS_NAME = "<script>alert(1)</script>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_by_loop(logged: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Reference: each metric's value at its highest step (the later write on a tie)."""
    best: dict[str, tuple[int, float]] = {}
    for step, metrics in logged:
        for name, value in metrics.items():
            if name not in best or step >= best[name][0]:
                best[name] = (step, value)
    return {name: value for name, (_, value) in best.items()}


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "store")


def test_table_has_every_run_with_its_latest_metrics(store):
    logs = {
        "a": [(10, {"episode_return": 1.0, "loss": 0.5}), (20, {"episode_return": 2.0}),
              (15, {"episode_return": 9.0, "loss": 0.25})],          # logged out of step order
        "b": [(5, {"normalized_return": 0.1, "steps_per_second": 1000.0})],
        "c": [],                                                      # no metrics yet
    }
    ids = {}
    for key, entries in logs.items():
        ids[key] = store.create_run(algo="ppo", env="coinrun", config={"key": key}, name=f"run {key}")
        for step, metrics in entries:
            store.log_metrics(ids[key], step, metrics)
    store.set_status(ids["a"], "finished")

    df = RunsTable(store_root=store.root).tabulator.value

    assert df["id"].tolist() == [run.id for run in store.list_runs()]  # newest first, all of them
    # Key metrics lead, in their fixed order; then the others alphabetically.
    metric_cols = [c for c in df.columns if c not in ("id", "name", "algo", "env", "status", "env_steps",
                                                      "created", "wall_time_s", "config")]
    assert metric_cols == ["episode_return", "normalized_return", "steps_per_second", "loss"]
    for key, entries in logs.items():
        row = df.loc[ids[key]]
        run = store.get_run(ids[key])
        assert row["name"] == f"run {key}" and row["status"] == run.status
        assert row["env_steps"] == max((step for step, _ in entries), default=0)
        expected = latest_by_loop(entries)
        for name in metric_cols:
            if name in expected:
                assert row[name] == expected[name], (key, name)
            else:
                assert math.isnan(row[name]), (key, name)
        assert row["wall_time_s"] == pytest.approx(run.updated_at - run.created_at)
    assert df.loc[ids["a"], "status"] == "finished"
    assert df.loc[ids["a"], "episode_return"] == 2.0  # step 20 wins over the later-logged step 15


def test_refresh_reads_new_runs_and_metrics_and_keeps_the_selection(store):
    first = store.create_run(algo="ppo", env="coinrun", config={})
    store.log_metrics(first, 1, {"episode_return": 1.0})
    table = RunsTable(store_root=store.root)
    table.tabulator.selection = [0]
    assert table.selected_run_ids == [first]

    second = store.create_run(algo="ppo", env="bigfish", config={})  # newest: becomes row 0
    store.log_metrics(first, 2, {"episode_return": 5.0, "value_loss": 0.5})
    assert len(table.tabulator.value) == 1  # nothing changes until a refresh
    table.refresh()

    df = table.tabulator.value
    assert df["id"].tolist() == [second, first]
    assert df.loc[first, "episode_return"] == 5.0 and df.loc[first, "value_loss"] == 0.5
    assert math.isnan(df.loc[second, "value_loss"])
    assert table.selected_run_ids == [first]
    assert table.tabulator.selection == [1]


def test_user_text_is_shown_as_text_not_html(tmp_path):
    root = tmp_path / "<b>store</b>"  # even the store path is user text
    store = RunStore(root)
    run_id = store.create_run(algo="ppo", env="coinrun", config={"note": "<img src=x onerror=alert(2)>"},
                              name=XSS_NAME)
    store.log_metrics(run_id, 1, {"<i>metric</i>": 1.0, "episode_return": 2.0})
    table = RunsTable(store_root=root)
    model = table.tabulator.get_root()

    # The browser gets the exact text (not pre-escaped, which would show "&lt;" literally) ...
    assert list(model.source.data["name"]) == [XSS_NAME]
    assert "<img src=x onerror=alert(2)>" in model.source.data["config"][0]
    # ... and Tabulator's "plaintext" formatter, which escapes HTML, for every text cell and title.
    specs = {spec["field"]: spec for spec in model.configuration["columns"]}
    for field in TEXT_COLUMNS:
        assert specs[field]["formatter"] == "plaintext", field
    for field in table.tabulator.value.columns:
        assert specs[field]["titleFormatter"] == "plaintext", field
        assert specs[field].get("formatter") != "html", field
    # Columns without a Tabulator formatter fall back to Bokeh number formatting (numbers only).
    for column in model.columns:
        if column.field not in TEXT_COLUMNS and column.field != "index":
            assert type(column.formatter).__name__ == "NumberFormatter", column.field
    assert "<i>metric</i>" in table.tabulator.value.columns
    # The status line is HTML: the path must arrive escaped.
    assert "&lt;b&gt;store&lt;/b&gt;" in table._status.object
    assert "<b>store</b>" not in table._status.object


def test_a_store_error_is_reported_and_the_last_table_kept(store, monkeypatch):
    run_id = store.create_run(algo="ppo", env="coinrun", config={})
    table = RunsTable(store_root=store.root)

    def locked():
        raise sqlite3.OperationalError("database is <locked>")

    monkeypatch.setattr(table.store, "list_runs", locked)
    table.refresh()
    assert table.tabulator.value["id"].tolist() == [run_id]
    assert "Could not read the run store" in table._status.object
    assert "&lt;locked&gt;" in table._status.object


def test_refresh_period_is_validated():
    with pytest.raises(ValueError, match="refresh_period_ms"):
        RunsTable(store_root=None, refresh_period_ms=0)


def test_build_app_has_the_title_and_the_registered_tabs(store, monkeypatch):
    page = app.build_app(store.root)
    assert page.title == "RL Workbench"
    tabs = page.main[0]
    assert isinstance(tabs, pn.Tabs) and tabs._names == [title for title, _ in app.TABS]
    assert tabs._names[:2] == ["Runs", "Monitor"]

    # Registering a tab is one entry in app.TABS.
    titles = [title for title, _ in app.TABS]
    monkeypatch.setattr(app, "TABS", app.TABS + [("Extra", lambda store_root: pn.pane.Str(str(store_root)))])
    tabs = app.build_app(store.root).main[0]
    assert tabs._names == titles + ["Extra"]
    assert tabs[-1].object == str(store.root)


# ---- serving ------------------------------------------------------------------------------------

def stop_process(proc: subprocess.Popen) -> None:
    """Terminate, then kill if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_http_200(url: str, timeout: float, proc: subprocess.Popen | None = None) -> str:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"server exited with code {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last_error = e
        time.sleep(0.5)
    pytest.fail(f"no HTTP 200 from {url} within {timeout} s (last error: {last_error})")


@pytest.mark.slow
def test_served_app_shows_the_runs(tmp_path):
    store = RunStore(tmp_path / "store")
    run_id = store.create_run(algo="ppo", env="coinrun", config={}, name=XSS_NAME)
    store.log_metrics(run_id, 3, {"episode_return": 4.5})
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "widgets.app", "--port", str(port), "--store", str(store.root)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        page = wait_for_http_200(f"http://127.0.0.1:{port}/", timeout=60, proc=proc)
        assert "<title>RL Workbench</title>" in page
        assert "tabulator" in page  # the table's JavaScript is on the page
        assert "Traceback" not in page

        # Open a session the way a browser does (websocket) and read the table it was sent.
        import panel.models.tabulator  # noqa: F401  (registers the model types for decoding)
        from bokeh.client import pull_session

        session = pull_session(url=f"http://127.0.0.1:{port}/")
        try:
            tables = [m for m in session.document.models if type(m).__name__ == "DataTabulator"]
            assert len(tables) == 1
            data = tables[0].source.data
            assert list(data["id"]) == [run_id]
            assert list(data["name"]) == [XSS_NAME]
            assert list(data["episode_return"]) == [4.5]
        finally:
            session.close()
    finally:
        stop_process(proc)


@pytest.mark.slow
def test_served_table_refreshes_periodically(store, monkeypatch):
    run_id = store.create_run(algo="ppo", env="coinrun", config={})
    store.log_metrics(run_id, 1, {"episode_return": 1.0})
    made: list[RunsTable] = []

    def runs_tab(store_root):
        made.append(RunsTable(store_root=store_root, refresh_period_ms=200))
        return made[-1]

    monkeypatch.setattr(app, "TABS", [("Runs", runs_tab)])
    port = free_port()
    server = pn.serve({"/": lambda: app.build_app(store.root)}, port=port, threaded=True, show=False,
                      verbose=False)
    try:
        wait_for_http_200(f"http://127.0.0.1:{port}/", timeout=60)  # opens one session
        assert len(made) == 1
        table = made[0]
        store.log_metrics(run_id, 2, {"episode_return": 2.0})
        deadline = time.monotonic() + 20
        while table.tabulator.value.loc[run_id, "episode_return"] != 2.0:
            assert time.monotonic() < deadline, "the served table did not pick up the new metric"
            time.sleep(0.1)
        # Turning auto-refresh off stops reading the store.
        table.auto_refresh = False
        store.log_metrics(run_id, 3, {"episode_return": 3.0})
        time.sleep(1.0)
        assert table.tabulator.value.loc[run_id, "episode_return"] == 2.0
    finally:
        server.stop()


def test_importing_widgets_does_not_import_panel():
    code = "import sys, widgets; print('panel' in sys.modules, 'widgets.runs_table' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_an_unserved_table_starts_no_timer(store):
    table = RunsTable(store_root=store.root)
    table.__panel__()
    assert table._periodic is None


# ---- refusing to serve on a network without a login ---------------------------------------------

@pytest.fixture
def fake_serve(monkeypatch):
    calls = []
    monkeypatch.setattr(app.pn, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_public_address_without_auth_is_refused(address, tmp_path, fake_serve, capsys):
    port = free_port()
    with pytest.raises(SystemExit) as exit_info:
        app.main(["--address", address, "--port", str(port), "--store", str(tmp_path / "store")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "authentication" in err and "--basic-auth" in err
    assert fake_serve == []  # nothing served
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # and nothing listening


def test_public_address_with_basic_auth_is_served_with_a_login(tmp_path, fake_serve):
    port = free_port()
    assert app.main(["--address", "0.0.0.0", "--port", str(port), "--store", str(tmp_path / "s"),
                     "--basic-auth", "credentials.json"]) == 0
    [(args, kwargs)] = fake_serve
    assert kwargs["address"] == "0.0.0.0" and kwargs["port"] == port and kwargs["show"] is False
    assert kwargs["basic_auth"] == "credentials.json"
    assert kwargs["cookie_secret"]  # logins need signed cookies
    assert f"localhost:{port}" in kwargs["websocket_origin"]
    assert f"127.0.0.1:{port}" in kwargs["websocket_origin"]
    assert list(args[0]) == ["/"]


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_login(address, tmp_path, fake_serve):
    assert app.main(["--address", address, "--store", str(tmp_path / "s")]) == 0
    [(_, kwargs)] = fake_serve
    assert kwargs["address"] == address and kwargs["port"] == 5006
    assert "basic_auth" not in kwargs and "oauth_provider" not in kwargs


def test_default_store_is_workbench_home(tmp_path, fake_serve, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    app.main([])
    assert (tmp_path / "home" / "workbench.sqlite").exists()
