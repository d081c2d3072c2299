"""Reliability diagram: accuracy vs confidence per bin, with intervals, a count histogram and a metrics table.

Works in a Jupyter cell and as part of the dashboard (``widgets.calibration_tab``)::

    import panel as pn
    pn.extension("plotly")
    from widgets.reliability_diagram import ReliabilityDiagram
    ReliabilityDiagram(series={"model A": (conf_a, correct_a), "model B": (conf_b, correct_b)})

``series`` maps a name (a model, a method, a task) to ``(confidence, outcome)``: predicted P(outcome = 1) in
[0, 1] and 0/1 outcomes. Every number shown comes from :mod:`workbench.calibration.metrics`
(:func:`~workbench.calibration.metrics.reliability_bins` for the bins and their intervals,
:func:`~workbench.calibration.metrics.calibration_summary` for the table); this module only draws them.

Controls: bin count, binning strategy (equal width / equal mass at the predictions' quantiles as
scikit-learn / equal count), interval (Clopper-Pearson exact, percentile bootstrap, or none) and its level.
The table states its conventions (ECE and MCE on equal-width bins, adaptive ECE on equal-count bins, the
Murphy decomposition on the diagram's bins; see ``docs/calibration.md``).

Export:

* HTML: :meth:`ReliabilityDiagram.to_html` (plotly's ``to_html``, plotly.js inlined so the file opens
  offline) or the "Download HTML" button. Always works.
* PNG / SVG: the camera button of the plot's toolbar downloads the image in the browser, in the format of
  ``image_format`` ("png" or "svg"). Server-side image export (:meth:`ReliabilityDiagram.save` with a
  ``.png``/``.svg`` path) needs plotly's ``kaleido`` package, which this workbench does NOT install; without
  it ``save`` raises an error that says so (use the toolbar button or export HTML instead).

Series names are user text (file names, run names): they are HTML-escaped everywhere they are shown.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.calibration import metrics as cal

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]
STRATEGY_LABELS = {"equal width": "uniform", "equal mass (quantile)": "quantile", "equal count": "equal_count"}
INTERVALS = {"Clopper-Pearson": "clopper-pearson", "bootstrap": "bootstrap", "none": "none"}
METRIC_LABELS = {
    "n": "n", "accuracy": "accuracy (base rate)", "mean_confidence": "mean confidence",
    "ece": "ECE (equal width)", "adaptive_ece": "adaptive ECE (equal count)", "mce": "MCE (equal width)",
    "brier": "Brier", "log_loss": "log loss (nats)", "reliability": "Murphy reliability",
    "resolution": "Murphy resolution", "uncertainty": "Murphy uncertainty",
}


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


class ReliabilityDiagram(pn.viewable.Viewer):
    """Reliability diagram of one or several prediction sets (see the module docstring)."""

    series = param.Dict(default={}, doc="""
        name -> (confidence, outcome): predicted P(outcome = 1) in [0, 1] and 0/1 outcomes, one entry per
        curve (model, method or task).""")
    n_bins = param.Integer(default=15, bounds=(1, 100), doc="Number of bins (also for the metrics table).")
    strategy = param.Selector(default="uniform", objects=STRATEGY_LABELS, doc="""
        Bin edges: equal width over [0, 1]; equal mass at the predictions' percentiles (scikit-learn's
        calibration_curve(strategy="quantile")); or equal count (sorted predictions split evenly).""")
    interval = param.Selector(default="clopper-pearson", objects=INTERVALS, doc="""
        Per-bin interval on the accuracy: Clopper-Pearson (exact binomial; preferred), a percentile
        bootstrap (collapses to zero width on bins that are all 0 or all 1), or none.""")
    alpha = param.Number(default=0.05, bounds=(0.001, 0.5), doc="Intervals have level 1 - alpha.")
    n_bootstrap = param.Integer(default=1000, bounds=(10, 100_000), doc="Bootstrap resamples per bin.")
    closed = param.Selector(default="right", objects=list(cal.CLOSED), doc="""
        Side of a bin edge a prediction equal to it falls on ("right": (lo, hi], scikit-learn >= 1.1).""")
    image_format = param.Selector(default="png", objects=["png", "svg"], doc="""
        Format of the image the plot toolbar's camera button downloads.""")
    title = param.String(default="Reliability diagram")
    height = param.Integer(default=560, bounds=(200, None))

    def __init__(self, **params):
        super().__init__(**params)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.error = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-cal-error"])
        self.plot = pn.pane.Plotly({"data": [], "layout": {}}, sizing_mode="stretch_width", height=self.height,
                                   min_width=460, css_classes=["wb-cal-plot"], config=self.plotly_config())
        # fixed width beside the plot; long series names wrap, a wide table scrolls instead of overlapping
        self.metrics_pane = pn.pane.HTML("", css_classes=["wb-cal-metrics"], width=520,
                                         styles={"overflow-x": "auto"})
        self.html_download = pn.widgets.FileDownload(callback=lambda: io.StringIO(self.to_html()),
                                                     filename="reliability_diagram.html", label="Download HTML",
                                                     width=150)
        self.controls = pn.Row(
            pn.widgets.IntSlider.from_param(self.param.n_bins, name="Bins", start=2, end=50, width=180),
            pn.widgets.RadioButtonGroup.from_param(self.param.strategy, name="Binning"),
            pn.widgets.Select.from_param(self.param.interval, name="Interval", width=150),
            pn.widgets.FloatInput.from_param(self.param.alpha, name="alpha", width=80, step=0.01),
            pn.widgets.RadioButtonGroup.from_param(self.param.image_format, name="Image"),
            self.html_download,
            sizing_mode="stretch_width",
        )
        self._layout = pn.Column(
            self.controls, self.error,
            pn.Row(self.plot, self.metrics_pane, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self._set_arrays()
        self._redraw()

    # ---- data -------------------------------------------------------------------------------------

    def _set_arrays(self) -> None:
        """Validate and cache ``series`` (raises ValueError naming the bad series)."""
        if not isinstance(self.series, Mapping):
            raise ValueError("series must be a dict: name -> (confidence, outcome)")  # noqa: TRY004
        arrays = {}
        for name, value in self.series.items():
            try:
                conf, out = value
            except (TypeError, ValueError):
                raise ValueError(f"series {name!r} must be a pair (confidence, outcome)") from None
            try:
                cal.brier_score(conf, out)  # validates: probabilities in [0, 1], 0/1 outcomes, equal lengths
            except ValueError as exc:
                raise ValueError(f"series {name!r}: {exc}") from None
            arrays[str(name)] = (np.asarray(conf, dtype=np.float64), np.asarray(out, dtype=np.float64))
        self._arrays = arrays

    @param.depends("series", watch=True)
    def _on_series(self) -> None:
        self._set_arrays()
        self._redraw()

    @param.depends("n_bins", "strategy", "interval", "alpha", "n_bootstrap", "closed", "title", watch=True)
    def _redraw(self) -> None:
        try:
            fig = self.figure()
            table = self._metrics_html()
        except ValueError as exc:  # e.g. a binning the data cannot support; keep the last good plot
            self.error.object = f'<div style="color:#b00020">{html.escape(str(exc))}</div>'
            return
        self.error.object = ""
        self.plot.object = fig
        self.metrics_pane.object = table

    @param.depends("image_format", watch=True)
    def _on_format(self) -> None:
        self.plot.config = self.plotly_config()

    def bins(self) -> dict[str, cal.ReliabilityBins]:
        """Per-series bin table, from :func:`workbench.calibration.metrics.reliability_bins` with the current controls."""
        n_boot = self.n_bootstrap if self.interval == "bootstrap" else 0
        return {name: cal.reliability_bins(c, y, n_bins=self.n_bins, strategy=self.strategy, closed=self.closed,
                                           alpha=self.alpha, n_bootstrap=n_boot, seed=0)
                for name, (c, y) in self._arrays.items()}

    def metrics(self) -> dict[str, dict[str, float]]:
        """Per-series metrics, from :func:`workbench.calibration.metrics.calibration_summary` with the current bins."""
        return {name: cal.calibration_summary(c, y, n_bins=self.n_bins, strategy=self.strategy, closed=self.closed)
                for name, (c, y) in self._arrays.items()}

    def warnings(self) -> dict[str, list[str]]:
        """Per series, why its numbers are not meaningful (all one class, one bin, too few predictions)."""
        return {name: reasons for name, (c, y) in self._arrays.items()
                if (reasons := cal.degenerate_reasons(c, y, n_bins=self.n_bins, strategy=self.strategy,
                                                      closed=self.closed))}

    def metrics_frame(self) -> pd.DataFrame:
        """The metrics table: one row per metric, one column per series."""
        m = self.metrics()
        return pd.DataFrame({name: [row[k] for k in cal.SUMMARY_METRICS] for name, row in m.items()},
                            index=list(cal.SUMMARY_METRICS))

    def conventions(self) -> str:
        strategy = {v: k for k, v in STRATEGY_LABELS.items()}[self.strategy]
        interval = {v: k for k, v in INTERVALS.items()}[self.interval]
        level = f"{100 * (1 - self.alpha):g}%"
        ivl = "no intervals" if self.interval == "none" else f"{level} {interval} intervals"
        return (f"{self.n_bins} {strategy} bins, {self.closed}-closed, empty bins skipped; {ivl}. "
                f"ECE/MCE: {self.n_bins} equal-width bins; adaptive ECE: {self.n_bins} equal-count bins; "
                f"Murphy decomposition: the diagram's bins.")

    # ---- drawing ----------------------------------------------------------------------------------

    def plotly_config(self) -> dict:
        return {"responsive": True, "displaylogo": False,
                "toImageButtonOptions": {"format": self.image_format, "filename": "reliability_diagram",
                                         "scale": 2 if self.image_format == "png" else 1}}

    def figure(self):
        """The plotly figure (a ``plotly.graph_objects.Figure``): reliability curves on top, counts beneath."""
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.05)
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", hoverinfo="skip",
                        meta={"kind": "diagonal"},
                        line={"color": "#888", "dash": "dash", "width": 1}, row=1, col=1)
        level = f"{100 * (1 - self.alpha):g}%"
        for i, (name, b) in enumerate(self.bins().items()):
            color = COLORS[i % len(COLORS)]
            label = html.escape(name)
            nz = b.nonempty
            if self.interval == "bootstrap":
                low, high = b.boot_low, b.boot_high
            else:
                low, high = b.cp_low, b.cp_high
            custom = np.column_stack([b.count, b.mean_confidence, b.accuracy, low, high, b.lower, b.upper])[nz]
            interval_text = "" if self.interval == "none" else (
                f"<br>{level} interval: [%{{customdata[3]:.3f}}, %{{customdata[4]:.3f}}]")
            error_y = {"visible": False} if self.interval == "none" else {
                "type": "data", "symmetric": False, "array": (high - b.accuracy)[nz],
                "arrayminus": (b.accuracy - low)[nz], "color": color, "thickness": 1.2, "width": 3}
            fig.add_scatter(
                x=b.mean_confidence[nz], y=b.accuracy[nz], mode="lines+markers", name=label, legendgroup=label,
                marker={"color": color, "size": 7}, line={"color": color, "width": 1.5}, error_y=error_y,
                customdata=custom, meta={"series": name, "kind": "reliability"},
                hovertemplate=(f"<b>{label}</b><br>bin (%{{customdata[5]:.3f}}, %{{customdata[6]:.3f}}]"
                               "<br>n = %{customdata[0]:d}<br>mean confidence = %{customdata[1]:.3f}"
                               f"<br>accuracy = %{{customdata[2]:.3f}}{interval_text}<extra></extra>"),
                row=1, col=1)
            lower = np.where(np.isfinite(b.lower), b.lower, 0.0)
            upper = np.where(np.isfinite(b.upper), b.upper, lower)
            width = np.maximum(upper - lower, 0.004)
            fig.add_bar(x=((lower + upper) / 2)[nz], y=b.count[nz], width=width[nz], name=label, legendgroup=label,
                        showlegend=False, marker={"color": _rgba(color, 0.45), "line": {"color": color, "width": 1}},
                        meta={"series": name, "kind": "counts"},
                        customdata=np.column_stack([b.lower, b.upper, b.count])[nz],
                        hovertemplate=(f"<b>{label}</b><br>bin (%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                                       "<br>n = %{customdata[2]:d}<extra></extra>"),
                        row=2, col=1)
        if not self._arrays:
            fig.add_annotation(text="No predictions selected", x=0.5, y=0.5, xref="x", yref="y", showarrow=False,
                               font={"size": 16, "color": "#888"}, row=1, col=1)
        fig.update_layout(
            title={"text": html.escape(self.title), "x": 0.01, "font": {"size": 15}},
            barmode="overlay", height=self.height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
            legend={"x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)",
                    "font": {"size": 11}},
            hoverlabel={"align": "left"}, template="plotly_white")
        fig.update_xaxes(range=[0, 1], row=1, col=1)
        fig.update_xaxes(range=[0, 1], title_text="confidence (mean predicted probability in the bin)", row=2, col=1)
        fig.update_yaxes(range=[-0.02, 1.02], title_text="accuracy (fraction of outcome = 1)", row=1, col=1)
        fig.update_yaxes(title_text="count", rangemode="tozero", row=2, col=1)
        return fig

    def _metrics_html(self) -> str:
        frame = self.metrics_frame()
        if frame.empty:
            return "<div style='color:#888'>No predictions selected.</div>"
        head = "".join(f"<th style='text-align:right;padding:2px 8px;max-width:150px;white-space:normal;"
                       f"overflow-wrap:anywhere;vertical-align:bottom'>{html.escape(str(c))}</th>"
                       for c in frame.columns)
        rows = []
        for key in frame.index:
            cells = "".join(
                f"<td style='text-align:right;padding:2px 8px'>{int(v) if key == 'n' else _fmt(v)}</td>"
                for v in frame.loc[key])
            rows.append(f"<tr data-metric='{key}'><th style='text-align:left;padding:2px 8px;font-weight:normal'>"
                        f"{html.escape(METRIC_LABELS[key])}</th>{cells}</tr>")
        warnings = "".join(f"<div class='wb-cal-warning' style='color:#8a5300;margin-bottom:4px'>"
                           f"{html.escape(name)}: {html.escape(reason)}.</div>"
                           for name, reasons in self.warnings().items() for reason in reasons)
        return (warnings + "<table class='wb-metrics-table' style='border-collapse:collapse;font-size:13px'>"
                f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
                f"<div style='color:#666;font-size:11px;max-width:480px;margin-top:6px'>"
                f"{html.escape(self.conventions())}</div>")

    # ---- export -----------------------------------------------------------------------------------

    def to_html(self, include_plotlyjs: bool | str = True, full_html: bool = True) -> str:
        """The figure as HTML (plotly's ``to_html``; plotly.js inlined by default so the file opens offline),
        with the metrics table beneath it."""
        import plotly.io as pio

        fig_html = pio.to_html(self.figure(), include_plotlyjs=include_plotlyjs, full_html=False,
                               config=self.plotly_config())
        body = f"{fig_html}\n<div class='wb-cal-metrics'>{self._metrics_html()}</div>"
        if not full_html:
            return body
        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"</head><body>{body}</body></html>")

    def save(self, path: str | os.PathLike) -> None:
        """Write the diagram to ``path``: ``.html`` always; ``.png``/``.svg`` only with plotly's ``kaleido``
        package, which the workbench does not install (use the toolbar's camera button in the browser)."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext in (".html", ".htm"):
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.to_html())
            return
        if ext not in (".png", ".svg"):
            raise ValueError(f"unsupported export format {ext!r}; use .html, .png or .svg")
        try:
            import kaleido  # noqa: F401
        except ImportError:
            raise RuntimeError(
                f"saving {ext} on the server needs plotly's 'kaleido' package, which is not installed. In the "
                f"browser, set image_format={ext[1:]!r} and use the camera button of the plot's toolbar; or "
                f"export HTML (save('diagram.html')) and take the image from there.") from None
        self.figure().write_image(path)

    def __repr__(self) -> str:  # short: the default param repr prints every array
        return (f"ReliabilityDiagram(series={list(self._arrays)}, n_bins={self.n_bins}, strategy={self.strategy!r}, "
                f"interval={self.interval!r})")

    def __panel__(self):
        return self._layout


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"
