"""Numbers as people read them in tables: step counts with separators or as 1.2M, other values to four
significant digits, never 0.123456789. The tables keep numeric columns (so they still sort by value) and only
their display is formatted."""

from __future__ import annotations

import math
from collections.abc import Iterable

from bokeh.models.widgets.tables import NumberFormatter

COUNT_COLUMNS = ("env_steps", "steps", "episodes", "iterations")


def format_number(value) -> str:
    """1234567 -> "1.23M", 12345 -> "12,345", 0.123456789 -> "0.1235", 1.5e-06 -> "1.5e-06", True -> "True"."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value / 1e6:.3g}M" if abs(value) >= 1_000_000 else f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return format_number(int(value))
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def column_format(values: Iterable[float], count: bool = False) -> str:
    """A numbro format (bokeh's NumberFormatter) for a column, chosen from its magnitude: separators for
    counts (abbreviated past a million), four significant digits otherwise, scientific for tiny values."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))]
    top = max(finite, default=0.0)
    if count:
        return "0.00a" if top >= 1e6 else "0,0"
    if top >= 1e6:
        return "0.00a"
    if top >= 1000:
        return "0,0"
    if top >= 10:
        return "0,0.0[0]"
    if top >= 0.01 or top == 0:
        return "0.[0000]"
    return "0.000e+0"


def number_formatters(frame, count_columns: Iterable[str] = COUNT_COLUMNS) -> dict[str, NumberFormatter]:
    """Tabulator formatters for the numeric columns of a pandas DataFrame."""
    counts = set(count_columns)
    return {c: NumberFormatter(format=column_format(frame[c].tolist(), count=c in counts), text_align="right")
            for c in frame.columns if frame[c].dtype.kind in "if"}
