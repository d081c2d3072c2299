"""Plotly figures of a study (the Studies tab and notebooks): learning curves against env steps and compute,
coloured by model size with seed bands; the compute frontier; intrinsic performance against compute with the
fitted law and its interval band; the compute-optimal model size; the fit's residuals.

Each function takes the headless results of workbench.studies.analysis and returns a ``plotly`` Figure. Trace
names are plain text (plotly escapes them); the frontier trace is named "frontier" and fitted curves "fit ...".
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from workbench.studies.analysis import Curve, ScalingResult

LAYOUT = dict(height=340, margin=dict(l=60, r=20, t=40, b=50), legend=dict(font=dict(size=10)),
              template="plotly_white")


def size_colours(sizes) -> dict[float, str]:
    """One colour per model size, from small (dark) to large (bright) on a log scale."""
    sizes = sorted(set(float(s) for s in sizes if np.isfinite(s)))
    if not sizes:
        return {}
    logs = np.log(sizes)
    span = (logs.max() - logs.min()) or 1.0
    return dict(zip(sizes, sample_colorscale("Viridis", list(0.85 * (logs - logs.min()) / span))))


def _size_label(size: float) -> str:
    return f"{size / 1e6:.2f}M params" if size >= 1e6 else f"{size / 1e3:.0f}k params"


def _band(x_runs: list[np.ndarray], y_runs: list[np.ndarray], points: int = 60):
    """Mean, min and max over seeds on a common log-spaced grid where every seed has data."""
    lo = max(x[0] for x in x_runs)
    hi = min(x[-1] for x in x_runs)
    if not (lo > 0 and hi > lo):
        return None
    grid = np.geomspace(lo, hi, points)
    ys = np.stack([np.interp(np.log(grid), np.log(x), y) for x, y in zip(x_runs, y_runs)])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def learning_curves(curves: list[Curve], x: str = "steps", title: str | None = None) -> go.Figure:
    """Score against env steps (``x="steps"``) or training compute (``x="compute"``), log x axis, one colour per
    model size: the seeds' mean as a line and their range as a band."""
    fig = go.Figure()
    colours = size_colours([c.size for c in curves])
    for size, colour in colours.items():
        runs = [c for c in curves if c.size == size and len(c.steps) >= 2]
        if not runs:
            continue
        xs = [np.asarray(getattr(c, x), float) for c in runs]
        band = _band(xs, [c.score for c in runs])
        label = _size_label(size)
        if band is None:
            for c, xv in zip(runs, xs):
                fig.add_trace(go.Scatter(x=xv, y=c.score, mode="lines", line=dict(color=colour), name=label))
            continue
        grid, mean, low, high = band
        if len(runs) > 1:
            fig.add_trace(go.Scatter(x=np.r_[grid, grid[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                     fillcolor=colour, opacity=0.2, line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, name=f"{label} seeds"))
        fig.add_trace(go.Scatter(x=grid, y=mean, mode="lines", line=dict(color=colour, width=2),
                                 name=f"{label} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"))
    axis = "env steps" if x == "steps" else "training compute (FLOPs)"
    fig.update_layout(title=title or f"Learning curves against {axis}", xaxis=dict(type="log", title=axis),
                      yaxis_title="return", **LAYOUT)
    return fig


def frontier_figure(result: ScalingResult) -> go.Figure:
    """Each size's seed-averaged (monotone) curve against compute and the frontier over them."""
    fig = go.Figure()
    f = result.frontier
    if f is not None:
        colours = size_colours(f.sizes)
        for size, curve in zip(f.sizes, f.size_curves):
            ok = np.isfinite(curve)
            fig.add_trace(go.Scatter(x=f.compute[ok], y=curve[ok], mode="lines", name=_size_label(size),
                                     line=dict(color=colours.get(float(size)), width=1.5)))
        ok = np.isfinite(f.score)
        fig.add_trace(go.Scatter(x=f.compute[ok], y=f.score[ok], mode="lines", name="frontier",
                                 line=dict(color="black", width=3, dash="dot")))
    fig.update_layout(title="Compute frontier (best size at each compute)",
                      xaxis=dict(type="log", title="training compute (FLOPs)"), yaxis_title="return", **LAYOUT)
    return fig


def intrinsic_figure(result: ScalingResult) -> go.Figure:
    """Intrinsic performance of every kept iteration against its compute (on the frontier I = C), with the
    fitted joint law per model size and its bootstrap band."""
    fig = go.Figure()
    pts = result.points
    if pts is not None:
        colours = size_colours(pts.size)
        for size, colour in colours.items():
            mine = (pts.size == size) & np.isfinite(pts.intrinsic)
            fig.add_trace(go.Scatter(x=pts.compute[mine], y=pts.intrinsic[mine], mode="markers",
                                     marker=dict(color=colour, size=5), name=_size_label(size)))
        ok = np.isfinite(pts.intrinsic) & (pts.intrinsic > 0)
        if ok.any():
            lo, hi = np.nanmin(pts.compute[ok]), np.nanmax(pts.compute[ok])
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="I = C (frontier)",
                                     line=dict(color="grey", dash="dot")))
        for size, (compute, fitted, low, high) in result.law_curves.items():
            colour = colours.get(float(size), "black")
            fig.add_trace(go.Scatter(x=np.r_[compute, compute[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                     fillcolor=colour, opacity=0.15, line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, name=f"fit band {_size_label(size)}"))
            fig.add_trace(go.Scatter(x=compute, y=fitted, mode="lines", line=dict(color=colour, width=2),
                                     name=f"fit {_size_label(size)}"))
    law = result.law
    title = "Intrinsic performance against compute"
    if law is not None:
        title += f" · fit: αN={law.alpha_n:.2f}, αE={law.alpha_e:.2f}, β={law.beta:.2f}"
    fig.update_layout(title=title, xaxis=dict(type="log", title="training compute (FLOPs)"),
                      yaxis=dict(type="log", title="intrinsic performance (FLOPs)"), **LAYOUT)
    return fig


def optimal_size_figure(result: ScalingResult) -> go.Figure:
    fig = go.Figure()
    if result.optimal is not None:
        compute, n_opt, low, high = result.optimal
        fig.add_trace(go.Scatter(x=np.r_[compute, compute[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                 fillcolor="rgba(31,119,180,0.2)", line=dict(width=0), hoverinfo="skip",
                                 name="95% band"))
        fig.add_trace(go.Scatter(x=compute, y=n_opt, mode="lines", name="fit N_opt(C)", line=dict(width=2)))
    title = "Compute-optimal model size"
    if result.law is not None:
        title += f" · N_opt ∝ C^{result.law.optimal_size_exponent:.2f}"
    fig.update_layout(title=title, xaxis=dict(type="log", title="training compute (FLOPs)"),
                      yaxis=dict(type="log", title="parameters"), **LAYOUT)
    return fig


def residuals_figure(result: ScalingResult) -> go.Figure:
    fig = go.Figure()
    if result.residuals is not None:
        x, res = result.residuals
        fig.add_trace(go.Scatter(x=x, y=res, mode="markers", marker=dict(size=4), name="log residual"))
        fig.add_hline(y=0, line=dict(color="grey", dash="dot"))
    fig.update_layout(title="Residuals of the joint law (log observed - log fitted)",
                      xaxis=dict(type="log", title="training compute (FLOPs)"), yaxis_title="log residual", **LAYOUT)
    return fig
