"""Overoptimization view: an analysed reward-model overoptimization study (workbench.studies.overoptimization).

For one study, label count and proxy variant (single member, ensemble mean, minimum over members):

* best-of-n: gold and proxy score against d = sqrt(KL) for each proxy size, the measured points (mean over
  prompts, with standard errors) and the fitted R_bon(d) = d (alpha - beta d) with its 95% bootstrap band;
* RL: gold against d for each KL coefficient and proxy size, with the fitted R_RL(d) = d (alpha - beta log d);
* the coefficients alpha and beta (with intervals) against proxy parameters (the paper's figure 4) and
  against label counts.

In a notebook::

    import panel as pn; pn.extension("plotly")
    from widgets.overoptimization_view import OveroptimizationView
    OveroptimizationView(store_root="runs", study="cpu-study")

Study names are folder names checked by the study's settings; other text shown is numbers.
"""

from __future__ import annotations

import html
import os

import panel as pn
import param
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.studies.overoptimization_report import list_studies, load_summary

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _band(fig, band, colour, name, row, col, show):
    fig.add_trace(go.Scatter(x=band["d"] + band["d"][::-1], y=band["high"] + band["low"][::-1], fill="toself",
                             fillcolor=colour, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                             showlegend=False, legendgroup=name), row=row, col=col)
    fig.add_trace(go.Scatter(x=band["d"], y=band["fit"], mode="lines", line={"color": colour, "dash": "dash"},
                             name=f"{name} fit", legendgroup=name, showlegend=show), row=row, col=col)


def curves_figure(summary: dict, labels: int, variant: str) -> go.Figure:
    """Best-of-n gold and proxy, and RL gold, against d for each proxy size."""
    proxies = [p for p in summary["proxies"] if p["labels"] == labels and p["variant"] == variant]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("best-of-n: gold", "best-of-n: proxy", "RL: gold"))
    for i, p in enumerate(sorted(proxies, key=lambda p: p["params"])):
        colour, name = COLOURS[i % len(COLOURS)], f"{p['params']} params"
        bon = p["bon"]
        fig.add_trace(go.Scatter(x=bon["d"], y=bon["gold"], mode="markers", marker={"color": colour}, name=name,
                                 legendgroup=name, error_y={"array": bon["gold_se"]}), row=1, col=1)
        if bon["fit"]:
            _band(fig, bon["fit"]["band"], colour, name, 1, 1, True)
        fig.add_trace(go.Scatter(x=bon["d"], y=bon["proxy"], mode="lines+markers", line={"color": colour},
                                 legendgroup=name, showlegend=False), row=1, col=2)
        for j, rl in enumerate(p["rl"]):
            for run in rl["runs"]:
                fig.add_trace(go.Scatter(x=run["d"], y=run["gold"], mode="markers",
                                         marker={"color": colour, "symbol": ["circle", "square", "diamond",
                                                                             "cross"][j % 4]},
                                         name=f"{name}, kl {rl['kl_coef']:g}", legendgroup=name), row=1, col=3)
            if rl["fit"] and rl["kl_coef"] == 0:
                _band(fig, rl["fit"]["band"], colour, name, 1, 3, False)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="d = sqrt(KL(pi || pi_init))", row=1, col=col)
    fig.update_yaxes(title_text="score - pi_init's score", row=1, col=1)
    fig.update_layout(height=420, title=f"labels = {labels}, proxy = {variant}", margin={"t": 70})
    return fig


def coefficients_figure(summary: dict, variant: str) -> go.Figure:
    """alpha and beta (with 95% intervals) against proxy parameters, one line per label count and method."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("alpha", "beta"))
    proxies = [p for p in summary["proxies"] if p["variant"] == variant]
    series = {}
    for p in proxies:
        fits = [("bon", p["bon"]["fit"])] + [(f"RL kl {r['kl_coef']:g}", r["fit"]) for r in p["rl"]]
        for method, fit in fits:
            if fit:
                series.setdefault((method, p["labels"]), []).append((p["params"], fit))
    for i, ((method, labels), points) in enumerate(sorted(series.items())):
        points.sort(key=lambda t: t[0])
        for col, coef in ((1, "alpha"), (2, "beta")):
            y = [f[coef] for _, f in points]
            fig.add_trace(go.Scatter(
                x=[x for x, _ in points], y=y, mode="lines+markers", name=f"{method}, labels {labels}",
                legendgroup=f"{method}{labels}", showlegend=col == 1, line={"color": COLOURS[i % len(COLOURS)]},
                error_y={"type": "data", "symmetric": False,
                         "array": [f[f"{coef}_ci"][1] - v for (_, f), v in zip(points, y)],
                         "arrayminus": [v - f[f"{coef}_ci"][0] for (_, f), v in zip(points, y)]}), row=1, col=col)
            fig.update_xaxes(type="log", title_text="proxy parameters", row=1, col=col)
    fig.update_layout(height=380, title=f"Coefficients against proxy size (proxy = {variant})", margin={"t": 70})
    return fig


class OveroptimizationView(pn.viewable.Viewer):
    """Pick an analysed study, a label count and a proxy variant; see the curves, fits and coefficients."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the store; None means $WORKBENCH_HOME, else ./runs.""")
    study = param.String(default="", doc="The study shown (empty: the first one).")
    labels = param.Integer(default=0, doc="Label count shown (0: the largest).")
    variant = param.Selector(default="single", objects=["single", "mean", "min"])

    def __init__(self, **params):
        super().__init__(**params)
        self._message = pn.pane.HTML("", sizing_mode="stretch_width")
        self._study = pn.widgets.Select(name="Study", options=[])
        self._labels = pn.widgets.Select(name="Labels", options=[])
        self._variant = pn.widgets.RadioButtonGroup(name="Proxy", options=["single", "mean", "min"],
                                                    value=self.variant)
        self._curves = pn.pane.Plotly(None, sizing_mode="stretch_width")
        self._coefficients = pn.pane.Plotly(None, sizing_mode="stretch_width")
        self._refresh = pn.widgets.Button(label="Refresh", button_type="default")
        self._refresh.on_click(lambda _: self.reload())
        self._study.param.watch(lambda e: self._pick_study(e.new), "value")
        self._labels.param.watch(lambda e: self._set(labels=e.new), "value")
        self._variant.param.watch(lambda e: self._set(variant=e.new), "value")
        self._summary: dict | None = None
        self.reload()

    def reload(self) -> None:
        names = list_studies(self.store_root)
        self._study.options = names
        if not names:
            self._message.object = ("<p>No analysed overoptimization study in this store yet. Run one with "
                                    "<code>workbench.studies.overoptimization.run_study</code> or "
                                    "<code>benchmarks/overoptimization_study.py</code>.</p>")
            return
        self._study.value = self.study if self.study in names else names[0]
        self._pick_study(self._study.value)

    def _pick_study(self, name: str) -> None:
        if not name:
            return
        try:
            self._summary = load_summary(name, self.store_root)
        except ValueError as exc:
            self._message.object = f"<p>{html.escape(str(exc))}</p>"
            return
        self.study = name
        counts = sorted({p["labels"] for p in self._summary["proxies"]})
        self._labels.options = counts
        self._labels.value = self.labels if self.labels in counts else counts[-1]
        self._set(labels=self._labels.value)

    def _set(self, **changes) -> None:
        self.param.update(**{k: v for k, v in changes.items() if v is not None})
        if self._summary is None:
            return
        s = self._summary
        self._message.object = (f"<p>Study <b>{html.escape(self.study)}</b>: {s['records']} proxies trained; "
                                f"gold = {html.escape(str(s.get('settings', {}).get('gold', '?')))}; shaded: 95% "
                                "bootstrap bands of the fitted forms.</p>")
        self._curves.object = curves_figure(s, self.labels, self.variant)
        self._coefficients.object = coefficients_figure(s, self.variant)

    def __panel__(self):
        return pn.Column(pn.Row(self._study, self._labels, self._variant, self._refresh), self._message,
                         self._curves, self._coefficients, sizing_mode="stretch_width")
