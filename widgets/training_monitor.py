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

import numpy as np
import panel as pn
import param

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
X_AXES = {"env steps": "step", "wall time (s)": "wall"}
BANDS = ("min-max", "standard error")
FORM_HYPERPARAMETERS = ("num_envs", "num_steps", "num_minibatches", "update_epochs", "learning_rate", "gamma",
                        "gae_lambda", "clip_coef", "ent_coef")
GROUP_GRID_POINTS = 5000  # seed groups of longer runs are averaged on an evenly spaced grid of this many steps
INTEGER_FIELDS = ("num_envs", "num_steps", "num_minibatches", "update_epochs")
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _error(text: str) -> str:
    return f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</div>'


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(json.dumps(c) if not isinstance(c, str) else c)}"
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


class TrainingMonitor(PeriodicRefresh, pn.viewable.Viewer):
    """Live curves and controls for the runs of a run store (see the module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    selected_run_ids = param.List(default=[], item_type=str, doc="Runs whose curves are drawn.")
    metrics = param.ListSelector(default=list(DEFAULT_METRICS), objects=list(CURVE_METRICS), doc="Metrics drawn.")
    x_axis = param.Selector(default="env steps", objects=list(X_AXES))
    smoothing = param.Number(default=0.6, bounds=(0.0, 0.999), step=0.01, doc="TensorBoard-style EMA weight.")
    group_seeds = param.Boolean(default=False, doc="Draw seeds of one configuration as a mean with a band.")
    band = param.Selector(default="min-max", objects=list(BANDS))
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

        self.runs_table = MonitorRunsTable(store_root=self.store.root, auto_refresh=False)
        self.runs_table.param.watch(lambda e: setattr(self, "selected_run_ids", list(e.new)), "selected_run_ids")
        self.plot = pn.pane.Plotly(self.figure, sizing_mode="stretch_width", height=420, css_classes=["wb-plot"],
                                   config={"responsive": True, "displaylogo": False})
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-status"])
        self.config_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self.system_pane = pn.pane.HTML("", sizing_mode="stretch_width")
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-message"])
        self._build_form()
        self._build_controls()
        self.refresh()

    # ---- layout ---------------------------------------------------------------------------------

    def _build_controls(self) -> None:
        self.metric_choice = pn.widgets.MultiChoice.from_param(self.param.metrics, label="Metrics")
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
            pn.widgets.Checkbox.from_param(self.param.group_seeds, label="Group seeds of a configuration"),
            pn.widgets.RadioButtonGroup.from_param(self.param.band),
            pn.Row(self.refresh_button, pn.widgets.Checkbox.from_param(self.param.auto_refresh, label="Auto")),
            pn.Row(self.stop_button, self.resume_button),
            pn.Row(self.csv_download, self.html_download),
            width=320,
        )

    def _build_form(self) -> None:
        from workbench.registry import ALGOS
        from workbench.rl.env_registry import ENV_NAMES

        self.form_algo = pn.widgets.Select(label="Algorithm", options=list(ALGOS), value="ppo", css_classes=["wb-form-algo"])
        self.form_env = pn.widgets.Select(label="Game", options=list(ENV_NAMES), value="coinrun", css_classes=["wb-form-env"])
        self.form_mode = pn.widgets.Select(label="Mode", options=["easy", "hard"], value="easy", css_classes=["wb-form-mode"])
        self.form_levels = pn.widgets.TextInput(label="Levels (num_levels)", css_classes=["wb-form-num_levels"])
        self.form_timesteps = pn.widgets.TextInput(label="Timesteps", css_classes=["wb-form-timesteps"])
        self.form_seeds = pn.widgets.TextInput(label="Seeds (0 or 0,1,2 or 0-4)", value="0", css_classes=["wb-form-seeds"])
        self.form_width = pn.widgets.TextInput(label="Width", css_classes=["wb-form-width"])
        self.form_device = pn.widgets.TextInput(label="Device", css_classes=["wb-form-device"])
        self.form_name = pn.widgets.TextInput(label="Name (optional)", css_classes=["wb-form-name"])
        self.form_hyper = {k: pn.widgets.TextInput(label=k, css_classes=[f"wb-form-{k}"]) for k in FORM_HYPERPARAMETERS}
        self.form_extra = pn.widgets.TextInput(label="Other settings (JSON object)", placeholder='{"checkpoint_every": 5}',
                                           css_classes=["wb-form-extra"])
        # field -> text input, e.g. monitor.form_inputs["num_envs"].value = "8"
        self.form_inputs = {"num_levels": self.form_levels, "timesteps": self.form_timesteps, "seeds": self.form_seeds,
                            "width": self.form_width, "device": self.form_device, "name": self.form_name,
                            **self.form_hyper, "extra": self.form_extra}
        self.launch_button = pn.widgets.Button(label="Launch", color="primary", width=120, css_classes=["wb-launch"])
        self.launch_button.on_click(lambda _e: self.launch())
        for widget in (self.form_algo, self.form_mode):
            widget.param.watch(lambda _e: self.fill_defaults(), "value")
        self.fill_defaults()
        self.form = pn.Column(
            pn.Row(self.form_algo, self.form_env, self.form_mode),
            pn.Row(self.form_levels, self.form_timesteps, self.form_seeds),
            pn.Row(self.form_width, self.form_device, self.form_name),
            pn.GridBox(*self.form_hyper.values(), ncols=3),
            self.form_extra,
            pn.Row(self.launch_button, self.message),
            sizing_mode="stretch_width",
        )

    def fill_defaults(self) -> None:
        """Fill the form with the paper defaults of the chosen algorithm and mode."""
        from workbench.registry import make_config

        config = make_config(self.form_algo.value, self.form_mode.value)
        self.form_levels.value = str(config.num_levels)
        self.form_timesteps.value = str(config.total_timesteps)
        self.form_width.value = str(config.width)
        self.form_device.value = str(config.device)
        for key, widget in self.form_hyper.items():
            widget.value = str(getattr(config, key))

    # ---- the launch form --------------------------------------------------------------------------

    def form_fields(self) -> dict:
        """The form as config fields (text parsed as JSON numbers where it is one)."""

        def number(text: str, integer: bool = False):
            text = text.strip()
            if text == "":
                return ""
            try:
                return int(text)
            except ValueError:
                pass
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None
            if integer:
                if not value.is_integer():
                    raise ValueError(f"must be a whole number, got {text!r}")
                return int(value)
            return value

        fields: dict = {"env": self.form_env.value, "mode": self.form_mode.value}
        for key, widget, integer in (("num_levels", self.form_levels, True),
                                     ("total_timesteps", self.form_timesteps, True), ("width", self.form_width, False)):
            try:
                fields[key] = number(widget.value, integer)
            except ValueError as e:
                raise ValueError(f"{widget.label}: {e}") from None
        fields["device"] = self.form_device.value
        if self.form_name.value.strip():
            fields["name"] = self.form_name.value.strip()
        for key, widget in self.form_hyper.items():
            try:
                fields[key] = number(widget.value, key in INTEGER_FIELDS)
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
        extra = self.form_extra.value.strip()
        if extra:
            try:
                parsed = json.loads(extra)
            except json.JSONDecodeError as e:
                raise ValueError(f"Other settings must be a JSON object: {e}") from None
            if not isinstance(parsed, dict):
                raise ValueError("Other settings must be a JSON object such as {\"checkpoint_every\": 5}")
            fields.update(parsed)
        return fields

    def launch(self) -> list[str]:
        """Validate the form and start one run per seed; an invalid form shows a message and starts nothing."""
        try:
            seeds = launch.parse_seeds(self.form_seeds.value)
            fields = self.form_fields()
            launched = launch.launch_seeds(self.store.root, self.form_algo.value, fields, seeds)
        except (ValueError, RuntimeError) as e:
            self.message.object = _error(f"Not launched: {e}")
            return []
        ids = [run_id for run_id, _ in launched]
        self.message.object = f"<div>Launched {html.escape(', '.join(ids))}</div>"
        self.selected_run_ids = sorted(set(self.selected_run_ids) | set(ids))
        self.refresh()
        return ids

    def stop_selected(self) -> list[str]:
        stopped = [r for r in self.selected_run_ids if launch.stop_run(self.store.root, r)]
        self.message.object = (f"<div>Asked to stop: {html.escape(', '.join(stopped))}</div>" if stopped
                               else "<div>No selected run is running.</div>")
        return stopped

    def resume_selected(self) -> list[str]:
        resumed, problems = [], []
        for run_id in self.selected_run_ids:
            try:
                launch.resume_run(self.store.root, run_id)
                resumed.append(run_id)
            except ValueError as e:
                problems.append(str(e))
        text = f"Resumed: {', '.join(resumed)}" if resumed else "Nothing resumed."
        self.message.object = _error("\n".join([text, *problems])) if problems else f"<div>{html.escape(text)}</div>"
        return resumed

    # ---- refresh ----------------------------------------------------------------------------------

    @param.depends("selected_run_ids", "metrics", "x_axis", "smoothing", "group_seeds", "band", "show_raw",
                   watch=True)
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
            self.cache.poll(run_ids, names=self.metrics, pids={r: self._infos[r].pid for r in run_ids})
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
        drawn = (tuple(run_ids), tuple(self.metrics), self.x_axis, self.smoothing, self.group_seeds, self.band,
                 self.show_raw, self.max_points,
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
                              f"<span style='color:#888'>(refresh {self.last_refresh_s * 1000:.0f} ms)</span></div>")

    def _smoothed(self, run_id: str, name: str, series: mon.Series) -> np.ndarray:
        """The EMA of a series, computing only the points added since the last refresh."""
        key = (run_id, name)
        ema = self._ema_cache.get(key)
        if ema is None or ema.weight != self.smoothing:
            ema = self._ema_cache[key] = mon.IncrementalEma(self.smoothing)
        return ema.update(series.values, series.version)

    def _downsample(self, curve: dict, kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Indices to draw of one run's curve; long series use cached per-block extremes, so a refresh
        only summarizes the points added since the last one."""
        run_id = curve["runs"][0]
        series = self.cache.series(run_id, curve["metric"])
        key = (run_id, curve["metric"], kind)
        ema = self._ema_cache.get((run_id, curve["metric"])) if kind == "smoothed" else None
        state = (series.version, None if ema is None else (id(ema), ema.generation))
        cached = self._blocks.get(key)
        if cached is None or cached[0] != state or cached[1].done * cached[1].block > len(y):
            cached = self._blocks[key] = (state, mon.BlockExtremes())
        return cached[1].downsample(x, y, self.max_points)

    def _x(self, run_id: str, series: mon.Series) -> np.ndarray:
        if X_AXES[self.x_axis] == "step":
            return series.steps
        return series.wall_times - self._infos[run_id].created_at

    def curves(self, run_ids: list[str]) -> list[dict]:
        """The curves as drawn (full resolution): one dict per (metric, run or seed group)."""
        out = []
        for metric in self.metrics:
            entries = []
            for run_id in run_ids:
                series = self.cache.series(run_id, metric)
                if series is None or series.n == 0:
                    continue
                entries.append((run_id, self._x(run_id, series), series.values, self._smoothed(run_id, metric, series)))
            if self.group_seeds:
                infos = [self._infos[r] for r, *_ in entries]
                by_id = {r: (x, raw, sm) for r, x, raw, sm in entries}
                for group in mon.group_runs(infos):
                    agg = mon.aggregate_seeds([(by_id[i.id][0], by_id[i.id][2]) for i in group],
                                              max_points=GROUP_GRID_POINTS)
                    label = group[0].name if len(group) == 1 else f"{group[0].algo} {group[0].env} ({len(group)} seeds)"
                    if self.band == "min-max":
                        low, high = agg.low, agg.high
                    else:
                        low, high = agg.mean - agg.stderr, agg.mean + agg.stderr
                    out.append({"metric": metric, "label": label, "runs": [i.id for i in group], "x": agg.x,
                                "y": agg.mean, "low": low, "high": high})
            else:
                for run_id, x, raw, sm in entries:
                    out.append({"metric": metric, "label": self._infos[run_id].name, "runs": [run_id], "x": x,
                                "y": sm, "raw": raw})
        return out

    def build_figure(self, run_ids: list[str]) -> dict:
        logged = set(self.cache.metric_names(run_ids))
        metrics = [m for m in self.metrics if m in logged] or list(self.metrics[:1])
        n = max(1, len(metrics))
        gap = 0.08 if n > 1 else 0.0
        height = (1.0 - gap * (n - 1)) / n
        layout: dict = {"uirevision": "monitor", "height": 120 + 260 * n, "margin": {"l": 60, "r": 20, "t": 30, "b": 40},
                        "legend": {"orientation": "h"}, "hovermode": "closest"}
        for i, metric in enumerate(metrics):
            axis = "" if i == 0 else str(i + 1)
            top = 1.0 - i * (height + gap)
            layout[f"yaxis{axis}"] = {"domain": [max(0.0, top - height), top], "title": {"text": html.escape(metric)},
                                      "anchor": f"x{axis}"}
            layout[f"xaxis{axis}"] = {"anchor": f"y{axis}", "title": {"text": self.x_axis if i == n - 1 else ""}}
            if i > 0:
                layout[f"xaxis{axis}"]["matches"] = "x"
        traces = []
        points = 0
        color_of: dict[str, str] = {}
        for curve in self.curves(run_ids):
            if curve["metric"] not in metrics:
                continue
            i = metrics.index(curve["metric"])
            axis = "" if i == 0 else str(i + 1)
            key = curve["label"]
            color = color_of.setdefault(key, COLORS[len(color_of) % len(COLORS)])
            common = {"xaxis": f"x{axis}", "yaxis": f"y{axis}", "legendgroup": key}
            x, y = curve["x"], curve["y"]
            if "low" in curve:
                idx = mon.downsample_minmax(x, y, self.max_points)
                xs = x[idx].tolist()
                traces.append({"type": "scattergl", "mode": "lines", "x": xs + xs[::-1],
                               "y": curve["high"][idx].tolist() + curve["low"][idx][::-1].tolist(),
                               "fill": "toself", "fillcolor": _rgba(color, 0.2), "line": {"width": 0},
                               "hoverinfo": "skip", "showlegend": False, **common})
            elif self.show_raw and self.smoothing > 0:
                ridx = self._downsample(curve, "raw", x, curve["raw"])
                traces.append({"type": "scattergl", "mode": "lines", "x": x[ridx].tolist(),
                               "y": curve["raw"][ridx].tolist(), "line": {"color": _rgba(color, 0.25), "width": 1},
                               "hoverinfo": "skip", "showlegend": False, **common})
                idx = self._downsample(curve, "smoothed", x, y)
            else:
                idx = self._downsample(curve, "smoothed", x, y)
            traces.append({"type": "scattergl", "mode": "lines", "name": html.escape(key), "x": x[idx].tolist(),
                           "y": [None if not np.isfinite(v) else float(v) for v in y[idx]],
                           "line": {"color": color, "width": 2}, "showlegend": i == 0, **common})
            points += len(idx)
        self.points_plotted = points
        return {"data": traces, "layout": layout}

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
                    dynamic=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
