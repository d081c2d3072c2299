"""The monitor's habits from TensorBoard and W&B: log axes, relative and wall-clock time, several metrics on one
chart, grouping runs by chosen settings, the hyperparameter view, the launch form's time estimate and a launch
that does not block the page. Each checked against the store's own numbers or a formula."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from widgets.hparams_view import HparamsView, parcoords_figure
from widgets.training_monitor import TrainingMonitor
from workbench.monitor import launch
from workbench.monitor import metrics as mon
from workbench.monitor.hparams import final_metric, hparam_table
from workbench.storage.runs import RunStore


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "store")


def make_run(store, lr, seed, n=30, arch="dual", offset=0.0):
    run = store.create_run(algo="ppo", env="colour_cue", config={"learning_rate": lr, "seed": seed, "arch": arch},
                           name=f"lr{lr}-s{seed}")
    for k in range(n):
        store.log_metrics(run, (k + 1) * 100, {"episode_return": offset + k / n + seed, "value_loss": 1 / (k + 1),
                                               "steps_per_second": 500.0 + k}, wall_time=1000.0 + k)
    return run


def named(m):
    return [t for t in m.figure["data"] if t.get("name") is not None]


def test_log_axes_and_wall_clock(store):
    ids = [make_run(store, 1e-3, 0)]
    m = TrainingMonitor(store_root=store.root, smoothing=0.0, selected_run_ids=ids)
    assert m.figure["layout"]["xaxis"]["type"] == "linear" and m.figure["layout"]["yaxis"]["type"] == "linear"
    m.param.update(log_x=True, log_y=True)
    assert m.figure["layout"]["xaxis"]["type"] == "log" and m.figure["layout"]["yaxis"]["type"] == "log"
    m.x_axis = "wall clock"
    layout = m.figure["layout"]
    assert layout["xaxis"]["type"] == "date"  # a date axis is never logarithmic
    _, values = store.metric_series(ids[0], "episode_return")
    [trace] = named(m)
    assert trace["x"][0] == pytest.approx(1000.0 * 1000)  # milliseconds since the epoch
    m.x_axis = "wall time (s)"  # relative: seconds since the run was created
    [trace] = named(m)
    created = store.get_run(ids[0]).created_at
    assert trace["x"][0] == pytest.approx(1000.0 - created)


def test_several_metrics_on_one_chart(store):
    ids = [make_run(store, 1e-3, 0), make_run(store, 3e-4, 0)]
    m = TrainingMonitor(store_root=store.root, smoothing=0.0, selected_run_ids=ids,
                        metrics=["episode_return", "value_loss"])
    assert "yaxis2" in m.figure["layout"]  # one chart per metric by default
    m.one_chart = True
    layout = m.figure["layout"]
    assert "yaxis2" not in layout and all(t["yaxis"] == "y" for t in m.figure["data"])
    names = sorted(t["name"] for t in named(m))
    assert names == sorted(f"{store.get_run(r).name} · {metric}" for r in ids
                           for metric in ("episode_return", "value_loss"))
    by_name = {t["name"]: t for t in named(m)}
    _, loss = store.metric_series(ids[1], "value_loss")
    assert by_name[f"{store.get_run(ids[1]).name} · value_loss"]["y"] == pytest.approx(loss.tolist())


def test_group_runs_by_chosen_settings(store):
    a = [make_run(store, 1e-3, s, arch="dual") for s in range(2)]
    b = [make_run(store, 1e-3, 2, arch="detach")]
    c = [make_run(store, 3e-4, 0, arch="dual")]
    infos = [store.get_run(r) for r in a + b + c]
    assert [[i.id for i in g] for g in mon.group_runs(infos)] == [a, b, c]  # seeds of one configuration
    by_lr = mon.group_runs(infos, ["learning_rate"])
    assert [[i.id for i in g] for g in by_lr] == [a + b, c]
    assert mon.group_label(by_lr[0], ["learning_rate"]) == "learning_rate=0.001 (3 runs)"
    assert "learning_rate" in mon.config_keys(infos) and mon.config_keys(infos)[:2] == ["algo", "env"]

    m = TrainingMonitor(store_root=store.root, smoothing=0.0, selected_run_ids=a + b + c, group_seeds=True,
                        group_by=["learning_rate"])
    means = {t["name"]: t for t in named(m)}
    assert set(means) == {"learning_rate=0.001 (3 runs)", "learning_rate=0.0003 (1 runs)"}
    # The group's curve is the mean over its runs at each step (all runs log the same steps here).
    expected = np.mean([store.metric_series(r, "episode_return")[1] for r in a + b], axis=0)
    assert means["learning_rate=0.001 (3 runs)"]["y"] == pytest.approx(expected.tolist())


def test_hparam_table_and_parallel_coordinates(store):
    ids = [make_run(store, 1e-3, 0, arch="dual"), make_run(store, 3e-4, 1, arch="detach", offset=5.0)]
    infos = [store.get_run(r) for r in ids]
    table = hparam_table(store, infos, "episode_return", tail=5)
    assert set(table.settings) == {"learning_rate", "arch"}  # seed differs but is ignored; algo/env are equal
    for run_id, value in zip(ids, table.values):
        _, values = store.metric_series(run_id, "episode_return")
        assert value == pytest.approx(float(np.mean(values[-5:])))
    assert final_metric(store, ids[0], "no_such_metric") != final_metric(store, ids[0], "no_such_metric")  # NaN
    figure = parcoords_figure(table)
    dims = {d["label"]: d for d in figure["data"][0]["dimensions"]}
    assert dims["learning_rate"]["values"] == [1e-3, 3e-4]
    assert dims["arch"]["ticktext"] == ["detach", "dual"] and dims["arch"]["values"] == [1, 0]
    assert dims["episode_return"]["values"] == pytest.approx(table.values)
    with pytest.raises(ValueError, match="tail"):
        hparam_table(store, infos, "episode_return", tail=0)

    view = HparamsView(store_root=store.root, run_ids=ids)
    assert view.draw() is not None and view.plot.object["data"][0]["type"] == "parcoords"
    view.run_ids = ids[:1]
    assert "two or more" in view.message.object


def test_time_estimate_uses_the_measured_speed(store):
    assert launch.estimate_wall_time(store, "ppo", "colour_cue", 1e6) is None
    run = make_run(store, 1e-3, 0)
    est = launch.estimate_wall_time(store, "ppo", "colour_cue", 1e6)
    _, sps = store.metric_series(run, "steps_per_second")
    assert est.steps_per_second == pytest.approx(float(np.median(sps)))
    assert est.seconds == pytest.approx(1e6 / float(np.median(sps)))
    assert launch.estimate_wall_time(store, "ppg", "colour_cue", 1e6) is None
    assert [launch.format_duration(s) for s in (45, 600, 3.5 * 3600, 3 * 86400)] == ["45 s", "10 min", "3.5 h",
                                                                                      "3.0 days"]
    m = TrainingMonitor(store_root=store.root)
    m.form_env.value = "colour_cue"
    m.form_timesteps.value = "1000000"
    assert "per run at" in m.estimate.object and store.get_run(run).name in m.estimate.object


def test_launching_from_the_button_does_not_block(store, monkeypatch):
    started = []

    def slow_launch(root, algo, fields, seeds):
        time.sleep(0.5)  # a process that takes a while to register its run
        started.append(seeds)
        return [(store.create_run(algo=algo, env=fields["env"], config={}), 1)]

    monkeypatch.setattr(launch, "launch_seeds", slow_launch)
    m = TrainingMonitor(store_root=store.root)
    m.form_env.value = "colour_cue"
    t0 = time.perf_counter()
    thread = m.launch_in_background()
    assert time.perf_counter() - t0 < 0.3 and "Starting" in m.message.object and m.launch_button.disabled
    thread.join(10)
    assert started == [[0]] and "Launched" in m.message.object and not m.launch_button.disabled
    assert math.isfinite(m.last_refresh_s)


def test_numbers_in_tables_are_rounded():
    from widgets.formatting import column_format, format_number

    assert [format_number(v) for v in (1234567, 12345, 0.123456789, 1.5e-06, 3.0, True)] == \
        ["1.23M", "12,345", "0.1235", "1.5e-06", "3", "True"]
    assert column_format([3000, 25_000_000], count=True) == "0.00a"
    assert column_format([0.123456789, 0.5]) == "0.[0000]" and column_format([1e-5]) == "0.000e+0"


def test_the_monitor_shows_one_table_and_one_set_of_run_controls(store):
    make_run(store, 1e-3, 0)
    m = TrainingMonitor(store_root=store.root)
    buttons = [w.label for w in m.__panel__().select(lambda o: hasattr(o, "label") and type(o).__name__ == "Button")]
    assert buttons.count("Refresh") == 1 and buttons.count("Resume selected") == 1, buttons
    assert m.runs_table.tabulator.formatters["episode_return"].format == "0.[0000]"


def test_rollout_and_eval_show_a_progress_bar_with_the_time_left(tmp_path):
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "workbench.cli", "--store", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=120)

    out = run("rollout", "--random", "colour_cue", "--episodes", "3", "--no-hires")
    assert out.returncode == 0, out.stderr
    assert "3/3" in out.stderr and "episode" in out.stderr and "<" in out.stderr  # tqdm: done/total [elapsed<left]
    quiet = run("rollout", "--random", "colour_cue", "--episodes", "2", "--no-hires", "--no-progress")
    assert quiet.returncode == 0 and "episode/s" not in quiet.stderr


def test_degenerate_calibration_data_says_why_its_numbers_mean_little():
    import numpy as np

    from widgets.reliability_diagram import ReliabilityDiagram
    from workbench.calibration import metrics as cal

    rng = np.random.default_rng(0)
    p = rng.uniform(size=400)
    assert cal.degenerate_reasons(p, (rng.uniform(size=400) < p).astype(int)) == []
    one_class = cal.degenerate_reasons(p, np.ones(400, int))
    assert len(one_class) == 1 and "every outcome is 1" in one_class[0]
    one_bin = cal.degenerate_reasons(np.full(400, 0.73), rng.integers(0, 2, 400), n_bins=10)
    assert len(one_bin) == 1 and "one bin" in one_bin[0]
    assert "only 5 predictions" in cal.degenerate_reasons(p[:5], np.array([0, 1, 0, 1, 1]))[-1]
    diagram = ReliabilityDiagram(series={"all ones": (p, np.ones(400, int))})
    assert "every outcome is 1" in diagram._metrics_html() and "wb-cal-warning" in diagram._metrics_html()
