"""Runs tab: a live, sortable, filterable table of the runs in a :class:`workbench.storage.runs.RunStore`.

The widget only reads the store; it computes nothing but presentation (column order, elapsed
time). Text from users (run names, configs, metric names) is shown as plain text: every text
cell and every column title uses Tabulator's ``plaintext`` formatter, which escapes HTML, so a
run named ``<script>...</script>`` is displayed, never executed.
"""

from __future__ import annotations

import html
import json
import os
import sqlite3
import time
from collections.abc import Sequence

import pandas as pd
import panel as pn
import param

from widgets.formatting import number_formatters
from widgets.refresh import PeriodicRefresh
from workbench.storage.runs import RunInfo, RunStore

# Shown first (in this order) when a run logged them; any other metric follows alphabetically.
KEY_METRICS = ("episode_return", "normalized_return", "steps_per_second")

# Columns that are not metrics: field -> title.
RUN_COLUMNS = {
    "id": "id",
    "name": "name",
    "algo": "algo",
    "env": "env",
    "status": "status",
    "env_steps": "env steps",
}
TAIL_COLUMNS = {
    "created": "created",
    "wall_time_s": "wall time (s)",
    "config": "config",
}
TEXT_COLUMNS = ("id", "name", "algo", "env", "status", "created", "config")


def metric_columns(metric_names: Sequence[str]) -> list[str]:
    """Key metrics first (in KEY_METRICS order), then the rest alphabetically."""
    names = set(metric_names)
    return [m for m in KEY_METRICS if m in names] + sorted(names - set(KEY_METRICS))


def _metric_field(name: str) -> str:
    """DataFrame column for a metric: its name, unless that clashes with a run column."""
    field = name
    while field in RUN_COLUMNS or field in TAIL_COLUMNS:
        field = f"{field} (metric)"
    return field


def runs_frame(runs: Sequence[RunInfo], latest: dict[str, dict[str, tuple[int, float]]]) -> pd.DataFrame:
    """One row per run (order kept), indexed by run id.

    ``latest`` maps run id -> ``RunStore.latest_metrics(run_id)``. A run that never logged a
    metric has NaN in its column. ``wall_time_s`` is the time from the run's creation to its last
    update (status change or metric write), so it stops growing when a run stops writing.
    """
    names = metric_columns({name for run in runs for name in latest.get(run.id, {})})
    records = []
    for run in runs:
        metrics = latest.get(run.id, {})
        record = {
            "id": run.id,
            "name": run.name,
            "algo": run.algo,
            "env": run.env,
            "status": run.display_status,  # "died": marked running but its process is gone
            "env_steps": run.env_steps,
        }
        for name in names:
            record[_metric_field(name)] = metrics[name][1] if name in metrics else float("nan")
        record["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
        record["wall_time_s"] = max(0.0, run.updated_at - run.created_at)
        record["config"] = json.dumps(run.config, sort_keys=True)
        records.append(record)
    columns = list(RUN_COLUMNS) + [_metric_field(n) for n in names] + list(TAIL_COLUMNS)
    df = pd.DataFrame.from_records(records, columns=columns)
    # Typed columns even when empty, so sorting and filters behave the same for 0 and N runs.
    df = df.astype({"env_steps": "int64", "wall_time_s": "float64", **{_metric_field(n): "float64" for n in names}})
    # Index by run id: Tabulator keeps a selection attached to the same run when rows move.
    df.index = pd.Index([run.id for run in runs], dtype=object)
    return df


class RunsTable(PeriodicRefresh, pn.viewable.Viewer):
    """Table of the runs in a run store, refreshed periodically while it is served.

    ``selected_run_ids`` holds the ids of the rows the user selected (for tabs that show a run).
    """

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    selected_run_ids = param.List(default=[], item_type=str, doc="""
        Ids of the selected runs (read them; selecting happens in the table).""")
    show_controls = param.Boolean(default=True, doc="""
        Refresh, auto-refresh and resume buttons above the table (off where the host page has its own).""")

    def __init__(self, **params):
        super().__init__(**params)
        self._store: RunStore | None = None
        self._latest_cache: dict[str, tuple[tuple[float, int], dict[str, tuple[int, float]]]] = {}
        self._periodic = None
        self.tabulator = pn.widgets.Tabulator(
            runs_frame([], {}),
            disabled=True,  # read-only: nothing here edits a run
            show_index=False,
            selectable=True,
            sortable=True,
            layout="fit_data_table",
            pagination="local",
            page_size=50,
            sizing_mode="stretch_width",
            widths={"config": 320},
        )
        self._configure_columns(list(self.tabulator.value.columns))
        self.tabulator.param.watch(self._on_selection, "selection")
        self._refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self._refresh_button.on_click(lambda _event: self.refresh())
        self._auto_toggle = pn.widgets.Checkbox.from_param(self.param.auto_refresh, name="Auto-refresh")
        # A run whose process died (SIGKILL, reboot) is offered a resume from its newest intact checkpoint.
        self.resume_button = pn.widgets.Button(label="Resume selected", width=140, css_classes=["wb-resume"])
        self.resume_button.on_click(lambda _event: self.resume_selected())
        self._status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        controls = [self._refresh_button, self._auto_toggle, self.resume_button] if self.show_controls else []
        self._layout = pn.Column(
            pn.Row(*controls, self._status, sizing_mode="stretch_width"),
            self.tabulator,
            sizing_mode="stretch_width",
        )
        self.refresh()

    # ---- reading the store ------------------------------------------------------------------

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = RunStore(self.store_root)
        return self._store

    @param.depends("store_root", watch=True)
    def _reopen_store(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store, self._latest_cache = None, {}
        self.refresh()

    def _latest_metrics(self, run: RunInfo) -> dict[str, tuple[int, float]]:
        # Every metric write bumps the run's updated_at (and usually env_steps) in the same
        # transaction, so an unchanged key means unchanged metrics: finished runs cost one lookup.
        key = (run.updated_at, run.env_steps)
        cached = self._latest_cache.get(run.id)
        if cached is None or cached[0] != key:
            cached = (key, self.store.latest_metrics(run.id))
            self._latest_cache[run.id] = cached
        return cached[1]

    def read_frame(self) -> pd.DataFrame:
        """The table's rows as they are in the store now."""
        runs = self.store.list_runs()
        latest = {run.id: self._latest_metrics(run) for run in runs}
        for gone in self._latest_cache.keys() - latest.keys():
            del self._latest_cache[gone]
        return runs_frame(runs, latest)

    def refresh(self) -> None:
        """Re-read the store and update the table (only sends data to the browser if it changed)."""
        try:
            df = self.read_frame()
        except (sqlite3.Error, OSError) as e:
            # Keep the last good table; say what went wrong (the store may be briefly locked/moved).
            self._status.object = (
                f'<span style="color:#b00020">Could not read the run store: {html.escape(str(e))}</span>'
            )
            return
        current = self.tabulator.value
        if list(df.columns) != list(current.columns):
            self._configure_columns(list(df.columns))
        if not (df.equals(current) and df.index.equals(current.index)):
            self.tabulator.value = df
            self._format_numbers(df)
        where = html.escape(str(self.store.root))
        if len(df):
            text = f"{len(df)} run{'s' if len(df) != 1 else ''} in <code>{where}</code>"
        else:
            text = f"No runs yet in <code>{where}</code>; start one with <code>workbench train</code>."
        died = df.index[df["status"] == "died"].tolist() if len(df) else []
        if died:
            text += (f'; <b>{len(died)} died</b> ({html.escape(", ".join(died[:3]))}{", ..." if len(died) > 3 else ""})'
                     ": select and press Resume to continue from the newest intact checkpoint")
        self._status.object = f'{text} <span style="color:#888">(read {time.strftime("%H:%M:%S")})</span>'

    def resume_selected(self) -> list[str]:
        """Resume the selected runs that died, were stopped or failed (each in its own process)."""
        from workbench.monitor import launch

        resumed, problems = launch.resume_runs(self.store.root, self.selected_run_ids)
        text = f"Resumed {', '.join(resumed)}." if resumed else "Nothing resumed: select a run that died or stopped."
        if problems:
            text += " " + "; ".join(problems)
        self._status.object = html.escape(text)
        return resumed

    # ---- presentation -----------------------------------------------------------------------

    def _configure_columns(self, columns: list[str]) -> None:
        titles = {**RUN_COLUMNS, **TAIL_COLUMNS}
        header_filters = {}
        for column in columns:
            if column == "status":
                header_filters[column] = {"type": "list", "valuesLookup": True, "func": "=", "clearable": True}
            elif column in TEXT_COLUMNS:
                header_filters[column] = {"type": "input", "func": "like", "placeholder": "filter"}
            else:  # numbers: show rows at or above a threshold
                header_filters[column] = {"type": "number", "func": ">=", "placeholder": "≥"}
        self.tabulator.param.update(
            titles={c: titles.get(c, c) for c in columns},
            # plaintext escapes HTML (cells and titles): user text is shown, never rendered.
            formatters={c: {"type": "plaintext"} for c in columns if c in TEXT_COLUMNS},
            title_formatters={c: {"type": "plaintext"} for c in columns},
            header_filters=header_filters,
        )

    def _format_numbers(self, df) -> None:
        """Numeric columns shown rounded (the column's scale decides the digits), sent only when a format changed."""
        numbers = number_formatters(df)
        formats = {c: f.format for c, f in numbers.items()}
        if formats != getattr(self, "_formats", None):
            self._formats = formats
            self.tabulator.formatters = {**{c: f for c, f in self.tabulator.formatters.items() if c not in numbers},
                                         **numbers}

    def _on_selection(self, event) -> None:
        index = self.tabulator.value.index
        self.selected_run_ids = [str(index[i]) for i in event.new if i < len(index)]

    def __panel__(self):
        self._start_periodic_refresh()
        return self._layout
