"""The TrainingMonitor component without a browser: drive its param state, check what its panes hold."""

from __future__ import annotations

import csv
import html
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import panel as pn
import pytest

import widgets.app as app
from widgets.training_monitor import TrainingMonitor
from workbench.monitor import launch
from workbench.monitor import metrics as mon
from workbench.storage.runs import RunStore

REPO = Path(__file__).resolve().parents[1]
XSS = "<script>alert(1)</script>"


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "store")


def make_seeds(store, n_seeds=3, n_steps=40, lr=5e-4, name="run"):
    ids = []
    for seed in range(n_seeds):
        run = store.create_run(algo="ppo", env="colour_cue", config={"learning_rate": lr, "seed": seed},
                               name=f"{name}{seed}")
        for k in range(n_steps):
            store.log_metrics(run, (k + 1) * 128, {"episode_return": math.sin(k / 4) + seed, "value_loss": 1 / (k + 1),
                                                   "iteration": k + 1}, wall_time=1000.0 + k)
        ids.append(run)
    return ids


def main_traces(monitor):
    return [t for t in monitor.figure["data"] if t.get("name") is not None]


def test_curves_of_selected_runs_match_the_store(store):
    ids = make_seeds(store, n_seeds=2)
    m = TrainingMonitor(store_root=store.root, smoothing=0.0)
    assert m.figure["data"] == [] and m.points_plotted == 0
    m.selected_run_ids = ids
    traces = main_traces(m)
    assert [t["name"] for t in traces] == ["run0", "run1"]
    for trace, run_id in zip(traces, ids):
        steps, values = store.metric_series(run_id, "episode_return")
        assert trace["x"] == steps.tolist() and trace["y"] == pytest.approx(values.tolist())
    assert m.points_plotted == 80
    assert m.figure["layout"]["uirevision"] == "monitor"  # plotly keeps zoom across refreshes

    m.metrics = ["value_loss", "episode_return"]
    assert {t["yaxis"] for t in m.figure["data"]} == {"y", "y2"}
    m.x_axis = "wall time (s)"
    created = store.get_run(ids[0]).created_at
    assert main_traces(m)[0]["x"][0] == pytest.approx(1000.0 - created)


def test_smoothing_slider_applies_tensorboards_ema(store):
    [run] = make_seeds(store, n_seeds=1)
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[run])
    m.smoothing = 0.9
    _, values = store.metric_series(run, "episode_return")
    assert main_traces(m)[0]["y"] == pytest.approx(mon.ema_smooth_loop(values, 0.9))
    raw = [t for t in m.figure["data"] if t.get("name") is None]
    assert raw and raw[0]["y"] == pytest.approx(values.tolist())  # the raw curve faintly behind
    m.show_raw = False
    assert all(t.get("name") for t in m.figure["data"])


def test_refresh_reads_only_new_rows_and_keeps_zoom(store, monkeypatch):
    [run] = make_seeds(store, n_seeds=1, n_steps=5)
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[run], smoothing=0.0)
    assert m.points_plotted == 5
    calls = []
    original = mon._read_columns
    monkeypatch.setattr(mon, "_read_columns", lambda st, run_id, names, after_id, upto_id=None:
                        calls.append(after_id) or original(st, run_id, names, after_id, upto_id))
    shown = max(r.id for r in store.read_metrics(run, ["episode_return"]))
    store.log_metrics(run, 10_000, {"episode_return": 9.0})
    m.refresh()
    assert m.points_plotted == 6 and main_traces(m)[0]["y"][-1] == 9.0
    assert calls == [shown]  # one read, of the rows after those shown
    assert m.plot.object["layout"]["uirevision"] == "monitor"


def test_seed_grouping_with_bands(store):
    ids = make_seeds(store, n_seeds=3)
    other = make_seeds(store, n_seeds=1, lr=1e-3, name="other")
    m = TrainingMonitor(store_root=store.root, selected_run_ids=ids + other, smoothing=0.0, group_seeds=True)
    traces = main_traces(m)
    assert [t["name"] for t in traces] == ["ppo colour_cue (3 seeds)", "other0"]
    stack = np.stack([store.metric_series(r, "episode_return")[1] for r in ids])
    assert traces[0]["y"] == pytest.approx(stack.mean(0).tolist())
    band = [t for t in m.figure["data"] if t.get("fill") == "toself"][0]
    n = stack.shape[1]
    assert band["y"][:n] == pytest.approx(stack.max(0).tolist())
    assert band["y"][n:] == pytest.approx(stack.min(0)[::-1].tolist())
    m.band = "standard error"
    band = [t for t in m.figure["data"] if t.get("fill") == "toself"][0]
    se = stack.std(0, ddof=1) / math.sqrt(3)
    assert band["y"][:n] == pytest.approx((stack.mean(0) + se).tolist())


def test_config_panel_and_diff_escape_user_text(store):
    a = store.create_run(algo="ppo", env="colour_cue", config={"learning_rate": 1e-3, "note": XSS}, name=XSS)
    store.log_metrics(a, 1, {"episode_return": 1.0})
    b = store.create_run(algo="ppo", env="colour_cue", config={"learning_rate": 5e-4, "note": XSS}, name="b")
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[a])
    assert "Config of" in m.config_pane.object and "<script>" not in m.config_pane.object
    assert "&lt;script&gt;" in m.config_pane.object
    assert main_traces(m)[0]["name"] == "&lt;script&gt;alert(1)&lt;/script&gt;"  # plotly shows entities as text
    m.selected_run_ids = [a, b]
    text = m.config_pane.object
    assert "Config diff" in text and "learning_rate" in text and "note" not in text  # only what differs
    assert "<script>" not in text


def test_a_dead_running_run_is_shown_as_such(store):
    run = store.create_run(algo="ppo", env="colour_cue", config={}, name="killed")
    store.set_status(run, "running", pid=2**22 + 12345)  # no such process
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[run])
    assert "died" in m.status.object


def test_launch_form_has_paper_defaults_and_refuses_invalid_input(store, monkeypatch):
    from workbench.registry import make_config

    spawned = []
    monkeypatch.setattr(launch.subprocess, "Popen", lambda *a, **k: spawned.append(a))
    m = TrainingMonitor(store_root=store.root)
    paper = make_config("ppo", "easy")
    assert m.form_timesteps.value == str(paper.total_timesteps) and m.form_levels.value == "200"
    assert m.form_hyper["learning_rate"].value == str(paper.learning_rate)
    m.form_mode.value = "hard"
    assert m.form_levels.value == "500" and m.form_hyper["num_envs"].value == "256"
    m.form_algo.value = "ppg"
    assert m.form_hyper["update_epochs"].value == str(make_config("ppg", "hard").update_epochs)

    for widget, bad, message in [(m.form_seeds, "zero", "seeds"), (m.form_timesteps, "lots", "not a number"),
                                 (m.form_hyper["num_minibatches"], "7", "divisible"),
                                 (m.form_extra, "[1]", "JSON object"), (m.form_extra, '{"nope": 1}', "nope")]:
        m.fill_defaults()
        m.form_seeds.value, m.form_extra.value = "0", ""
        widget.value = bad
        assert m.launch() == []
        assert "Not launched" in m.message.object and message in m.message.object
    m.fill_defaults()
    m.form_extra.value = '{"name": "<img src=x onerror=alert(1)>", "num_levels": "x"}'
    assert m.launch() == []
    assert "<img" not in m.message.object
    assert spawned == [] and store.list_runs() == []


def test_launch_from_the_form_starts_one_process_per_seed(store, monkeypatch):
    launched = []
    monkeypatch.setattr(launch, "launch_run", lambda root, algo, fields: launched.append((algo, fields))
                        or (store.create_run(algo=algo, env=fields["env"], config={}), 1))
    m = TrainingMonitor(store_root=store.root)
    m.form_env.value = "colour_cue"
    m.form_seeds.value = "0-2"
    m.form_timesteps.value = "1e6"
    ids = m.launch()
    assert len(ids) == 3 and sorted(m.selected_run_ids) == sorted(ids)
    assert [f["seed"] for _, f in launched] == [0, 1, 2]
    assert launched[0][1]["total_timesteps"] == 1_000_000 and launched[0][1]["env"] == "colour_cue"
    assert "Launched" in m.message.object


def test_stop_and_resume_buttons_act_only_on_the_selection(store, monkeypatch):
    a, b = make_seeds(store, n_seeds=2, n_steps=1)
    stopped, resumed = [], []
    monkeypatch.setattr(launch, "stop_run", lambda root, r: stopped.append(r) or True)
    monkeypatch.setattr(launch, "resume_run", lambda root, r: resumed.append(r) or 1)
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[b])
    m.stop_button.clicks += 1
    m.resume_button.clicks += 1
    assert stopped == [b] and resumed == [b]


def test_exports(store):
    ids = make_seeds(store, n_seeds=2, n_steps=10)
    m = TrainingMonitor(store_root=store.root, selected_run_ids=ids, smoothing=0.0)
    rows = list(csv.DictReader(io.StringIO(m.curves_csv())))
    assert len(rows) == 20 and rows[0]["metric"] == "episode_return" and rows[0]["curve"] == "run0"
    assert float(rows[3]["value"]) == pytest.approx(store.metric_series(ids[0], "episode_return")[1][3])
    page = m.curves_html()
    assert page.lower().lstrip().startswith(("<!doctype html>", "<html>")) and "plotly" in page.lower()


def test_new_metric_names_become_choosable(store):
    run = store.create_run(algo="ppg", env="colour_cue", config={})
    store.log_metrics(run, 1, {"aux/value_loss": 0.5})
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[run])
    assert "aux/value_loss" in m.param.metrics.objects
    m.metrics = ["aux/value_loss"]
    assert main_traces(m)[0]["y"] == [0.5]


def test_the_runs_table_selects_the_curves(store):
    make_seeds(store, n_seeds=2, n_steps=3)
    m = TrainingMonitor(store_root=store.root)
    m.runs_table.tabulator.selection = [0]
    assert m.selected_run_ids == [m.runs_table.tabulator.value.index[0]]
    assert m.points_plotted == 3


def test_monitor_is_a_tab_of_the_app_and_exported(store):
    tabs = app.build_app(store.root).main[0]
    assert "Monitor" in tabs._names
    out = subprocess.run([sys.executable, "-c", "from widgets import TrainingMonitor; print(TrainingMonitor.__name__)"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "TrainingMonitor"
    layout = TrainingMonitor(store_root=store.root).__panel__()
    assert isinstance(layout, pn.Column)


def test_workbench_never_imports_ui_libraries():
    code = ("import sys, workbench.monitor.metrics; bad = [m for m in ('panel', 'plotly', 'bokeh', 'ipywidgets') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_long_series_are_downsampled_keeping_extremes_while_they_grow(store):
    run = store.create_run(algo="ppo", env="colour_cue", config={})
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(size=60_000))
    values[31_337] = 1e5
    conn = store._conn()
    conn.executemany("INSERT INTO metrics (run_id, step, wall_time, name, value) VALUES (?, ?, ?, 'episode_return', ?)",
                     [(run, (i + 1) * 64, 1.0 + i, float(v)) for i, v in enumerate(values)])
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[run], smoothing=0.0, max_points=500)
    y = main_traces(m)[0]["y"]
    assert len(y) <= 1002 and max(y) == 1e5 and min(y) == values.min()
    store.log_metrics(run, 10**9, {"episode_return": -1e5})
    m.refresh()
    y = main_traces(m)[0]["y"]
    assert y[-1] == -1e5 and max(y) == 1e5 and len(y) <= 1002


def test_a_fired_proxy_gaming_alarm_is_marked_on_the_curves_and_named_in_the_status(store):
    """workbench.safety.alarm logs safety/proxy_gaming_alarm; the Monitor draws a dashed line where it starts
    firing on every chart and names the run (escaped) under the status."""
    gamed = store.create_run(algo="ppo-rm", env="colour_cue", config={}, name=XSS)
    quiet = store.create_run(algo="ppo-rm", env="colour_cue", config={}, name="quiet")
    for k in range(10):
        store.log_metrics(gamed, (k + 1) * 256, {"episode_return": k, "value_loss": 1.0,
                                                "safety/proxy_gaming_alarm": float(k in (4, 5, 8))})
        store.log_metrics(quiet, (k + 1) * 256, {"episode_return": k, "safety/proxy_gaming_alarm": 0.0})
    m = TrainingMonitor(store_root=store.root, selected_run_ids=[gamed, quiet],
                        metrics=["episode_return", "value_loss"])
    shapes = m.figure["layout"]["shapes"]
    assert sorted({s["x0"] for s in shapes}) == [5 * 256, 9 * 256]  # where it starts firing, twice
    assert {s["yref"] for s in shapes} == {"y domain", "y2 domain"}  # over both charts
    assert "Proxy-gaming alarm" in m.status.object and "from step 1,280" in m.status.object
    assert XSS not in m.status.object and html.escape(XSS) in m.status.object
    assert "quiet" not in m.status.object.split("Proxy-gaming")[1]
