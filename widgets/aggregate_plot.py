"""The aggregate-score plot of "Deep RL at the edge of the statistical precipice" (Agarwal et al. 2021): each
algorithm's IQM and mean with 95% stratified bootstrap intervals, and performance profiles with their bands.
It draws the plain data `workbench benchmark` writes to aggregate.json (workbench.rl.aggregate)::

    import json, panel as pn
    from widgets.aggregate_plot import aggregate_figure
    pn.pane.Plotly(aggregate_figure(json.load(open("benchmark-results/aggregate.json"))))
"""

from __future__ import annotations

import html

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def aggregate_figure(aggregate: dict) -> dict:
    """A plotly figure: left, IQM and mean with intervals per algorithm; right, performance profiles with
    bootstrap bands. `aggregate`: {"aggregate": aggregate_rows(...), "profile": profile_data(...)}."""
    traces = []
    profile = aggregate.get("profile", {})
    for i, row in enumerate(aggregate["aggregate"]):
        algo, color = row["algo"], COLORS[i % len(COLORS)]
        for stat in ("iqm", "mean"):
            traces.append({"type": "scatter", "mode": "markers", "x": [row[stat]],
                           "y": [f"{html.escape(algo)} · {stat.upper()}"], "marker": {"color": color, "size": 9},
                           "error_x": {"type": "data", "symmetric": False, "array": [row[f"{stat}_hi"] - row[stat]],
                                       "arrayminus": [row[stat] - row[f"{stat}_lo"]]},
                           "showlegend": False, "xaxis": "x", "yaxis": "y"})
        if algo in profile:
            taus, band = profile["taus"], profile[algo]
            traces.append({"type": "scatter", "mode": "lines", "x": taus + taus[::-1],
                           "y": band["high"] + band["low"][::-1], "fill": "toself", "line": {"width": 0},
                           "fillcolor": _rgba(color, 0.2), "hoverinfo": "skip", "showlegend": False,
                           "xaxis": "x2", "yaxis": "y2"})
            traces.append({"type": "scatter", "mode": "lines", "name": html.escape(algo), "x": taus,
                           "y": band["fraction"], "line": {"color": color}, "xaxis": "x2", "yaxis": "y2"})
    layout = {"height": 380, "margin": {"l": 130, "r": 20, "t": 30, "b": 50}, "legend": {"orientation": "h"},
              "xaxis": {"domain": [0.0, 0.42], "title": {"text": "normalized score (95% stratified bootstrap CI)"}},
              "yaxis": {"anchor": "x"},
              "xaxis2": {"domain": [0.55, 1.0], "title": {"text": "normalized score threshold tau"}},
              "yaxis2": {"anchor": "x2", "range": [0, 1.02], "title": {"text": "fraction of runs with score > tau"}}}
    return {"data": traces, "layout": layout}
