"""The Monitor's curves as a plotly figure: smoothing, seed or config groups with bands, min-max downsampling,
log axes, one chart per metric or all metrics on one chart. Reads through the monitor's metric cache; the
numbers come from :mod:`workbench.monitor.metrics`."""

from __future__ import annotations

import html

import numpy as np

from workbench.monitor import metrics as mon
from workbench.safety.alarm import ALARM_METRIC

# "wall time (s)" is the time since the run started (TensorBoard's "Relative"); "wall clock" is the date and time
# (TensorBoard's "Wall").
X_AXES = {"env steps": "step", "wall time (s)": "relative", "wall clock": "wall"}
GROUP_GRID_POINTS = 5000  # groups of longer runs are averaged on an evenly spaced grid of this many steps
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


class CurvesMixin:
    """Curves and figure of :class:`widgets.training_monitor.TrainingMonitor` (needs its params and caches)."""

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
        kind = X_AXES[self.x_axis]
        if kind == "step":
            return series.steps
        if kind == "wall":  # milliseconds since the epoch: plotly's date axis reads them as dates
            return series.wall_times * 1000.0
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
                for group in mon.group_runs(infos, self.group_by or None):
                    agg = mon.aggregate_seeds([(by_id[i.id][0], by_id[i.id][2]) for i in group],
                                              max_points=GROUP_GRID_POINTS)
                    label = mon.group_label(group, self.group_by or None)
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

    def alarm_starts(self, run_ids: list[str]) -> list[tuple[str, int, float]]:
        """(run id, step, x on the current axis) where each run's proxy-gaming alarm starts firing."""
        out = []
        for run_id in run_ids:
            series = self.cache.series(run_id, ALARM_METRIC)
            if series is None or series.n == 0:
                continue
            on = series.values > 0.5
            starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
            x = self._x(run_id, series)
            out += [(run_id, int(series.steps[i]), float(x[i])) for i in starts]
        return out

    def _alarm_marks(self, run_ids: list[str], charts: int) -> tuple[list, list]:
        """Dashed red vertical lines over every chart where an alarm starts, labelled on the top chart."""
        shapes, notes = [], []
        for run_id, _step, x in self.alarm_starts(run_ids):
            if X_AXES[self.x_axis] == "relative" and self.log_x and x <= 0:
                continue
            for i in range(charts):
                axis = "" if i == 0 else str(i + 1)
                shapes.append({"type": "line", "xref": f"x{axis}", "yref": f"y{axis} domain", "x0": x, "x1": x,
                               "y0": 0, "y1": 1, "line": {"color": "#b00020", "width": 1.5, "dash": "dash"}})
            notes.append({"x": x, "xref": "x", "y": 1, "yref": "y domain", "yanchor": "bottom", "showarrow": False,
                          "text": "&#9888; proxy gaming: " + html.escape(self._infos[run_id].name),
                          "font": {"color": "#b00020", "size": 11}})
        return shapes, notes

    def build_figure(self, run_ids: list[str]) -> dict:
        """One chart per metric sharing the x axis, or (``one_chart``) every metric on one chart; log axes
        as chosen (a date axis for the wall clock is never logarithmic)."""
        logged = set(self.cache.metric_names(run_ids))
        metrics = [m for m in self.metrics if m in logged] or list(self.metrics[:1])
        charts = 1 if self.one_chart else max(1, len(metrics))
        gap = 0.08 if charts > 1 else 0.0
        height = (1.0 - gap * (charts - 1)) / charts
        layout: dict = {"uirevision": "monitor", "height": 120 + 260 * charts,
                        "margin": {"l": 60, "r": 20, "t": 30, "b": 40}, "legend": {"orientation": "h"},
                        "hovermode": "closest"}
        x_type = "date" if X_AXES[self.x_axis] == "wall" else ("log" if self.log_x else "linear")
        for i in range(charts):
            axis = "" if i == 0 else str(i + 1)
            top = 1.0 - i * (height + gap)
            title = "value" if self.one_chart and len(metrics) > 1 else metrics[i]
            layout[f"yaxis{axis}"] = {"domain": [max(0.0, top - height), top], "title": {"text": html.escape(title)},
                                      "anchor": f"x{axis}", "type": "log" if self.log_y else "linear"}
            layout[f"xaxis{axis}"] = {"anchor": f"y{axis}", "title": {"text": self.x_axis if i == charts - 1 else ""},
                                      "type": x_type}
            if i > 0:
                layout[f"xaxis{axis}"]["matches"] = "x"
        traces = []
        points = 0
        color_of: dict[str, str] = {}
        for curve in self.curves(run_ids):
            if curve["metric"] not in metrics:
                continue
            i = 0 if self.one_chart else metrics.index(curve["metric"])
            axis = "" if i == 0 else str(i + 1)
            key = f"{curve['label']} · {curve['metric']}" if self.one_chart and len(metrics) > 1 else curve["label"]
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
        layout["shapes"], layout["annotations"] = self._alarm_marks(run_ids, charts)
        return {"data": traces, "layout": layout}
