"""Training monitor tab: live curves of selected runs, a launch form, stop/resume, configs and their
diff, system use, and CSV/HTML export. The computing is in :mod:`workbench.monitor.metrics` (headless); this
module only lays it out.

In a notebook::

    from widgets import TrainingMonitor
    monitor = TrainingMonitor(store_root="runs")
    monitor              # shows live in the cell (call monitor.refresh() or enable auto-refresh)

User text (run names, configs, metric names, error messages) is escaped before it reaches HTML.
"""

from __future__ import annotations

import html
import io
import json
import os
import sqlite3
import time

import panel as pn
import param

from widgets.formatting import format_number
from widgets.hparams_view import HparamsView
from widgets.monitor_figure import ALARM_METRIC, X_AXES, CurvesMixin
from widgets.monitor_launch_form import LaunchFormMixin, _error
from widgets.refresh import PeriodicRefresh
from widgets.runs_table import RunsTable
from workbench.monitor import launch
from workbench.monitor import metrics as mon
from workbench.monitor import system as system_use
from workbench.storage.runs import RunStore

DEFAULT_METRICS = ["episode_return", "normalized_return"]
CURVE_METRICS = [
    "episode_return", "normalized_return", "episode_length", "policy_loss", "value_loss", "entropy",
    "approx_kl", "approx_kl_behavior", "clip_fraction", "explained_variance", "steps_per_second",
]
BANDS = ("min-max", "standard error")


def _cell(value) -> str:
    return format_number(value) if isinstance(value, (int, float)) else json.dumps(value)


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(c if isinstance(c, str) else _cell(c))}"
                         "</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class MonitorRunsTable(RunsTable):
    """The runs table, with each run's latest metrics kept up to date incrementally (only rows newer than
    those seen are read) instead of recomputed from every row of a changed run."""

    @property
    def latest(self) -> mon.LatestMetrics:
        if getattr(self, "_latest", None) is None:
            self._latest = mon.LatestMetrics(self.store)
        return self._latest

    def _latest_metrics(self, run):
        return self.latest.get(run)


class TrainingMonitor(LaunchFormMixin, CurvesMixin, PeriodicRefresh, pn.viewable.Viewer):
    """Live curves and controls for the runs of a run store (see the module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    selected_run_ids = param.List(default=[], item_type=str, doc="Runs whose curves are drawn.")
    metrics = param.ListSelector(default=list(DEFAULT_METRICS), objects=list(CURVE_METRICS), doc="Metrics drawn.")
    x_axis = param.Selector(default="env steps", objects=list(X_AXES))
    smoothing = param.Number(default=0.6, bounds=(0.0, 0.999), step=0.01, doc="TensorBoard-style EMA weight.")
    group_seeds = param.Boolean(default=False, doc="Draw seeds of one configuration as a mean with a band.")
    band = param.Selector(default="min-max", objects=list(BANDS))
    group_by = param.ListSelector(default=[], objects=[], doc="""
        Settings whose values define a group (e.g. learning_rate); empty: seeds of one configuration.""")
    log_x = param.Boolean(default=False, doc="Logarithmic x axis (steps or relative time).")
    log_y = param.Boolean(default=False, doc="Logarithmic y axis (points <= 0 are not drawn).")
    one_chart = param.Boolean(default=False, doc="Every metric on one chart instead of one chart per metric.")
    show_raw = param.Boolean(default=True, doc="Draw the unsmoothed curve faintly behind the smoothed one.")
    max_points = param.Integer(default=1000, bounds=(10, None), doc="Pixel buckets per curve when drawing.")
    refresh_period_ms = param.Integer(default=1000, bounds=(100, None), doc="""
        How often the monitor reads new rows (a written metric reaches the page within about this).""")
    refresh_in_notebook = True

    def __init__(self, **params):
        super().__init__(**params)
        self.store = RunStore(self.store_root)
        self.cache = mon.MetricCache(self.store)
        self._ema_cache: dict[tuple[str, str], mon.IncrementalEma] = {}
        self._infos: dict = {}
        self._periodic = None
        self.figure: dict = {"data": [], "layout": {}}
        self.points_plotted = 0
        self.last_refresh_s = 0.0
        self._drawn: tuple | None = None
        self._blocks: dict[tuple[str, str, str], tuple[tuple, mon.BlockExtremes]] = {}

        self.runs_table = MonitorRunsTable(store_root=self.store.root, auto_refresh=False, show_controls=False)
        self.runs_table.param.watch(lambda e: setattr(self, "selected_run_ids", list(e.new)), "selected_run_ids")
        self.plot = pn.pane.Plotly(self.figure, sizing_mode="stretch_width", height=420, css_classes=["wb-plot"],
                                   config={"responsive": True, "displaylogo": False})
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-status"])
        self.config_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self.system_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-message"])
        self._build_form()
        self._build_controls()
        self.hparams = HparamsView(store_root=self.store.root)
        self.param.watch(lambda e: setattr(self.hparams, "run_ids", list(e.new)), "selected_run_ids")
        self.refresh()

    # ---- layout ---------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        self.metric_choice = pn.widgets.MultiChoice.from_param(self.param.metrics, label="Metrics")
        self.group_choice = pn.widgets.MultiChoice.from_param(self.param.group_by, label="Group by")
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.stop_button = pn.widgets.Button(label="Stop selected", color="warning", width=130, css_classes=["wb-stop"])
        self.stop_button.on_click(lambda _e: self.stop_selected())
        self.resume_button = pn.widgets.Button(label="Resume selected", width=130, css_classes=["wb-resume"])
        self.resume_button.on_click(lambda _e: self.resume_selected())
        self.csv_download = pn.widgets.FileDownload(callback=lambda: io.StringIO(self.curves_csv()),
                                                    filename="curves.csv", label="Curves CSV", width=120)
        self.html_download = pn.widgets.FileDownload(callback=lambda: io.StringIO(self.curves_html()),
                                                     filename="curves.html", label="Curves HTML", width=120)
        self.controls = pn.Column(
            self.metric_choice,
            pn.widgets.RadioButtonGroup.from_param(self.param.x_axis),
            pn.widgets.FloatSlider.from_param(self.param.smoothing, label="Smoothing (EMA)"),
            pn.widgets.Checkbox.from_param(self.param.show_raw, label="Show raw curve"),
            pn.Row(pn.widgets.Checkbox.from_param(self.param.log_x, label="Log x", css_classes=["wb-log-x"]),
                   pn.widgets.Checkbox.from_param(self.param.log_y, label="Log y", css_classes=["wb-log-y"])),
            pn.widgets.Checkbox.from_param(self.param.one_chart, label="All metrics on one chart"),
            pn.widgets.Checkbox.from_param(self.param.group_seeds, label="Group runs (seeds of a configuration, "
                                                                         "or by the settings below)"),
            self.group_choice,
            pn.widgets.RadioButtonGroup.from_param(self.param.band),
            pn.Row(self.refresh_button, pn.widgets.Checkbox.from_param(self.param.auto_refresh, label="Auto")),
            pn.Row(self.stop_button, self.resume_button),
            pn.Row(self.csv_download, self.html_download),
            width=320,
        )

    # ---- refresh ----------------------------------------------------------------------------------

    @param.depends("selected_run_ids", "metrics", "x_axis", "smoothing", "group_seeds", "band", "show_raw",
                   "group_by", "log_x", "log_y", "one_chart", watch=True)
    def _redraw(self) -> None:
        self.refresh(read_runs=False)

    def refresh(self, read_runs: bool = True) -> None:
        """Read new rows of the selected runs (only those newer than the ones shown) and redraw."""
        t0 = time.perf_counter()
        try:
            if read_runs:
                self.runs_table.refresh()
            self._infos = {info.id: info for info in self.store.list_runs()}
            run_ids = [r for r in self.selected_run_ids if r in self._infos]
            self.cache.poll(run_ids, names=[*self.metrics, ALARM_METRIC],
                            pids={r: self._infos[r].pid for r in run_ids})
            logged = sorted({n for r in run_ids for n in self.runs_table.latest.get(self._infos[r])})
        except (sqlite3.Error, OSError) as e:
            self.status.object = _error(f"Could not read the run store: {e}")
            return
        known = list(self.param.metrics.objects)
        logged = [n for n in logged if n not in known and n != "iteration"]
        if logged:  # e.g. PPG's aux/... metrics become choosable once a run logs them
            self.param.metrics.objects = known + logged
            self.metric_choice.options = known + logged
        # Redraw only when something drawn changed (new rows, other runs or settings): an unchanged figure
        # would still cost a deep comparison and a send.
        keys = mon.config_keys(list(self._infos.values()))
        if keys != list(self.param.group_by.objects):
            self.param.group_by.objects = keys
            self.group_choice.options = keys
        drawn = (tuple(run_ids), tuple(self.metrics), self.x_axis, self.smoothing, self.group_seeds, self.band,
                 self.show_raw, self.max_points, tuple(self.group_by), self.log_x, self.log_y, self.one_chart,
                 tuple((self.cache.runs[r].rows_read, self.cache.runs[r].pid) for r in run_ids))
        if drawn != self._drawn:
            self.figure = self.build_figure(run_ids)
            self.plot.height = self.figure["layout"]["height"]
            self.plot.object = self.figure
            self._drawn = drawn
        self.config_pane.object = self._config_html(run_ids)
        self.system_pane.object = self._system_html()
        self.last_refresh_s = time.perf_counter() - t0
        statuses = ", ".join(f"{self._infos[r].name}: {launch.display_status(self._infos[r])}" for r in run_ids)
        self.status.object = (f"<div>{len(run_ids)} run(s) shown, {self.points_plotted} points plotted"
                              f"{' — ' + html.escape(statuses) if statuses else ''} "
                              f"<span style='color:#888'>(refresh {self.last_refresh_s * 1000:.0f} ms)</span></div>"
                              + self._alarm_html(run_ids))

    def _alarm_html(self, run_ids: list[str]) -> str:
        """A line per run whose proxy-gaming alarm has fired (workbench.safety.alarm), under the status."""
        lines = [f"<div class='wb-alarm' style='color:#b00020'>&#9888; Proxy-gaming alarm: "
                 f"{html.escape(self._infos[run_id].name)} from step {format_number(step)} (the proxy reward "
                 "rises while the reward models disagree more or the gold reward falls)</div>"
                 for run_id, step, _x in self.alarm_starts(run_ids)]
        return "".join(lines)

    # ---- side panels --------------------------------------------------------------------------------

    def _config_html(self, run_ids: list[str]) -> str:
        if len(run_ids) == 2:
            a, b = (self._infos[r] for r in run_ids)
            diff = mon.config_diff({"algo": a.algo, **a.config}, {"algo": b.algo, **b.config})
            if not diff:
                return "<h4>Config diff</h4><div>The two runs have the same settings.</div>"
            return "<h4>Config diff</h4>" + _table(diff, ("setting", a.name, b.name))
        if len(run_ids) == 1:
            info = self._infos[run_ids[0]]
            rows = [("algo", info.algo)] + sorted(info.config.items())
            return f"<h4>Config of {html.escape(info.name)}</h4>" + _table(rows, ("setting", "value"))
        return "<div style='color:#888'>Select one run to see its config, two to see what differs.</div>"

    def _system_html(self) -> str:
        pids = {r: i.pid for r, i in self._infos.items() if i.status == "running"}
        try:
            stats = system_use.system_stats(pids)
        except Exception as e:  # psutil on an unusual platform: show why, keep the monitor working
            return _error(f"System stats unavailable: {e}")
        gib = 1024 ** 3
        lines = [f"Machine: CPU {stats['cpu_percent']:.0f}% of {stats['cpu_count']} cores, memory "
                 f"{stats['memory_used_bytes'] / gib:.1f} / {stats['memory_total_bytes'] / gib:.1f} GiB"]
        for g in stats["gpus"]:
            util = f", {g['utilization_percent']}% busy" if "utilization_percent" in g else ""
            lines.append(f"GPU {g['index']} {g['name']}: {g['memory_used_bytes'] / gib:.1f} / "
                         f"{g['memory_total_bytes'] / gib:.1f} GiB{util}")
        for run_id, s in stats["runs"].items():
            name = self._infos[run_id].name if run_id in self._infos else run_id
            lines.append(f"{name} (pid {s['pid']}): CPU {s['cpu_percent']:.0f}%, RSS {s['rss_bytes'] / 2**20:.0f} MiB")
        return "<h4>System</h4>" + "".join(f"<div>{html.escape(line)}</div>" for line in lines)

    # ---- export -------------------------------------------------------------------------------------

    def curves_csv(self) -> str:
        """The shown curves at full resolution: metric, label, run ids, x, y (smoothed or seed mean), raw,
        low, high."""
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["metric", "curve", "runs", self.x_axis, "value", "raw", "low", "high"])
        run_ids = [r for r in self.selected_run_ids if r in self._infos]
        for curve in self.curves(run_ids):
            n = len(curve["x"])
            raw = curve.get("raw", [None] * n)
            low, high = curve.get("low", [None] * n), curve.get("high", [None] * n)
            runs = " ".join(curve["runs"])
            for i in range(n):
                writer.writerow([curve["metric"], curve["label"], runs, curve["x"][i], curve["y"][i], raw[i],
                                 low[i], high[i]])
        return buf.getvalue()

    def curves_html(self) -> str:
        """A standalone HTML page of the figure (plotly.js inlined, so it opens offline)."""
        import plotly.io as pio

        return pio.to_html(self.figure, include_plotlyjs=True, full_html=True)

    # ---- serving --------------------------------------------------------------------------------------

    def __panel__(self):
        self._start_periodic_refresh()
        return pn.Column(
            self.runs_table.__panel__(),
            pn.Row(self.controls, pn.Column(self.status, self.plot, sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.Tabs(("Launch", self.form), ("Config", self.config_pane), ("System", self.system_pane),
                    ("Hyperparameters", self.hparams), dynamic=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
