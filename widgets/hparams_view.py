"""The hyperparameter view: parallel coordinates of the settings that differ between runs against a final metric,
as W&B's sweep view and TensorBoard's HParams dashboard draw them. The table comes from
:func:`workbench.monitor.hparams.hparam_table`; this module only draws it (plotly ``parcoords``).

In a notebook::

    from widgets.hparams_view import HparamsView
    HparamsView(store_root="runs", run_ids=[...])
"""

from __future__ import annotations

import html
import math
import os

import panel as pn
import param

from workbench.monitor.hparams import HparamTable, hparam_table
from workbench.storage.runs import RunStore


def parcoords_figure(table: HparamTable) -> dict:
    """A plotly figure: one axis per setting (text settings numbered, their values as tick labels), the final
    metric last and as the line colour. Runs without the metric are left out (their count is in the title)."""
    keep = [i for i, v in enumerate(table.values) if math.isfinite(v)]
    dimensions = []
    for key, column in table.settings.items():
        values = [column[i] for i in keep]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            dimensions.append({"label": html.escape(key), "values": [float(v) for v in values]})
        else:
            levels = sorted({str(v) for v in values})
            dimensions.append({"label": html.escape(key), "values": [levels.index(str(v)) for v in values],
                               "tickvals": list(range(len(levels))), "ticktext": [html.escape(t) for t in levels]})
    metric_values = [table.values[i] for i in keep]
    dimensions.append({"label": html.escape(table.metric), "values": metric_values})
    missing = len(table.values) - len(keep)
    title = f"{missing} run(s) without {table.metric} left out" if missing else ""
    return {"data": [{"type": "parcoords", "dimensions": dimensions,
                      "line": {"color": metric_values, "colorscale": "Viridis", "showscale": True}}],
            "layout": {"height": 420, "margin": {"l": 80, "r": 60, "t": 70, "b": 30},
                       "title": {"text": html.escape(title)}}}


class HparamsView(pn.viewable.Viewer):
    """Parallel coordinates of the given runs (all runs of the store when ``run_ids`` is empty)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True)
    run_ids = param.List(default=[], item_type=str, doc="Runs drawn; empty means every run in the store.")
    metric = param.String(default="episode_return", doc="The final metric (mean of its last `tail` values).")
    tail = param.Integer(default=10, bounds=(1, None))

    def __init__(self, **params):
        super().__init__(**params)
        self.store = RunStore(self.store_root)
        self.plot = pn.pane.Plotly({"data": [], "layout": {}}, sizing_mode="stretch_width", height=440,
                                   css_classes=["wb-hparams-plot"], config={"displaylogo": False})
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-hparams-message"])
        self.metric_input = pn.widgets.TextInput.from_param(self.param.metric, name="Final metric", width=220)
        self.draw_button = pn.widgets.Button(label="Draw", width=90, css_classes=["wb-hparams-draw"])
        self.draw_button.on_click(lambda _e: self.draw())
        self.table: HparamTable | None = None

    @param.depends("run_ids", "metric", "tail", watch=True)
    def draw(self) -> HparamTable | None:
        ids = set(self.run_ids)
        infos = [i for i in self.store.list_runs() if not ids or i.id in ids]
        if len(infos) < 2:
            self.message.object = "<div>Select two or more runs (or none, to see every run).</div>"
            self.plot.object = {"data": [], "layout": {}}
            return None
        self.table = hparam_table(self.store, infos, self.metric, tail=self.tail)
        if not self.table.settings:
            self.message.object = "<div>These runs have the same settings: nothing to compare.</div>"
        else:
            self.message.object = (f"<div>{len(self.table.settings)} settings that differ, against the mean of the "
                                   f"last {self.tail} values of {html.escape(self.metric)}.</div>")
        self.plot.object = parcoords_figure(self.table)
        return self.table

    def __panel__(self):
        return pn.Column(pn.Row(self.metric_input, self.draw_button), self.message, self.plot,
                         sizing_mode="stretch_width")
