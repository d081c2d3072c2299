"""Calibration tab: reliability diagrams of any stored prediction sets, and JSONL import.

Prediction sets live in a :class:`workbench.calibration.predictions.PredictionStore` (same root as the run store): a
reward model's held-out P(A > B) (source "reward_model"), a value function's predicted success probability on
a binary-outcome game (source "value_function"), an imported JSONL file (source "jsonl"), or anything a
notebook saved. Pick one or several to overlay them in one :class:`widgets.reliability_diagram.ReliabilityDiagram`.

Value functions: pick a run of a binary-outcome game (CoinRun, Ninja, Jumper) and press "Score its value
function" to store V(s0)/10 against success on the run's recorded episodes (record them first with
``workbench rollout RUN --episodes 100 --levels test``).

Import: choose a ``.jsonl`` file of ``{"confidence": p, "correct": 0/1}`` lines and press Import. The import
is all or nothing; when a line is bad, every problem is listed with its line number and nothing is stored.

In a notebook::

    import panel as pn; pn.extension("plotly")
    from widgets.calibration_tab import CalibrationTab
    CalibrationTab(store_root="runs")

User text (set names, file names, error messages quoting file content) is HTML-escaped.
"""

from __future__ import annotations

import html
import os
import sqlite3
import time

import panel as pn
import param

from widgets.reliability_diagram import ReliabilityDiagram
from workbench.calibration.predictions import (
    SUCCESS_REWARD,
    PredictionImportError,
    PredictionSetInfo,
    PredictionStore,
    save_value_function_predictions,
)
from workbench.storage.runs import RunStore

ALL_SOURCES = "all sources"
MAX_OPTIONS = 500  # newest sets offered in the picker


def set_label(info: PredictionSetInfo) -> str:
    """How a set is named in the picker and the legend: name, source, size and a short id (names may repeat)."""
    return f"{info.name} · {info.source} · n={info.n} · {info.id[-6:]}"


class CalibrationTab(pn.viewable.Viewer):
    """Pick stored prediction sets, import JSONL files, and see their reliability diagram (module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the store; None means $WORKBENCH_HOME, else ./runs.""")
    selected_ids = param.List(default=[], item_type=str, doc="Ids of the prediction sets drawn.")
    source = param.String(default=ALL_SOURCES, doc="Only offer sets of this source.")

    def __init__(self, **params):
        super().__init__(**params)
        self.store = PredictionStore(self.store_root)
        self.diagram = ReliabilityDiagram(title="Reliability diagram")
        self._infos: dict[str, PredictionSetInfo] = {}
        self._cache: dict[str, tuple] = {}  # id -> (confidence, outcome); sets never change once stored
        self.source_select = pn.widgets.Select(label="Source", options=[ALL_SOURCES], value=ALL_SOURCES, width=180,
                                               css_classes=["wb-cal-source"])
        self.picker = pn.widgets.MultiChoice(label="Prediction sets", options={}, sizing_mode="stretch_width",
                                             css_classes=["wb-cal-picker"])
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self.file_input = pn.widgets.FileInput(accept=".jsonl,.json,.txt", css_classes=["wb-cal-file"])
        self.import_name = pn.widgets.TextInput(label="Name (default: file name)", width=220,
                                                css_classes=["wb-cal-import-name"])
        self.import_button = pn.widgets.Button(label="Import JSONL", color="primary", width=130,
                                               css_classes=["wb-cal-import"])
        self.value_run = pn.widgets.Select(label="Run (binary-outcome games)", options=[], width=340,
                                           css_classes=["wb-cal-value-run"])
        self.value_button = pn.widgets.Button(label="Score its value function", width=190,
                                              css_classes=["wb-cal-value"])
        self.value_button.on_click(lambda _e: self.score_value_function())
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-cal-message"])
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-cal-status"])

        self.refresh_button.on_click(lambda _e: self.refresh())
        self.import_button.on_click(lambda _e: self.import_uploaded())
        self.source_select.param.watch(self._on_source, "value")
        self.picker.param.watch(lambda e: setattr(self, "selected_ids", list(e.new)), "value")
        self.refresh()
        if not self.selected_ids and self._infos:  # start with the newest set rather than an empty plot
            self.selected_ids = [next(iter(self._infos))]

        self._layout = pn.Column(
            pn.Row(self.source_select, self.picker, self.refresh_button, sizing_mode="stretch_width"),
            self.status,
            pn.Row(self.file_input, self.import_name, self.import_button, sizing_mode="stretch_width"),
            pn.Row(self.value_run, self.value_button, sizing_mode="stretch_width"),
            self.message,
            self.diagram,
            sizing_mode="stretch_width",
        )

    # ---- the store ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the list of stored sets (the selection is kept)."""
        try:
            infos = self.store.list()
        except (sqlite3.Error, OSError) as exc:
            self.status.object = (f'<span style="color:#b00020">Could not read the prediction store: '
                                  f'{html.escape(str(exc))}</span>')
            return
        try:  # runs whose value function can be read as a success probability (CoinRun, Ninja, Jumper)
            runs = [r.id for r in RunStore(self.store.root).list_runs() if r.env in SUCCESS_REWARD]
        except (sqlite3.Error, OSError):
            runs = []
        self.value_run.options = runs
        sources = sorted({i.source for i in infos})
        self.source_select.options = [ALL_SOURCES, *sources]
        offered = [i for i in infos if self.source in (ALL_SOURCES, i.source)][:MAX_OPTIONS]
        self._infos = {i.id: i for i in infos}
        chosen = [i for i in self.selected_ids if i in self._infos]
        keep = [self._infos[i] for i in chosen if self._infos[i] not in offered]  # selected sets stay visible
        self.picker.options = {set_label(i): i.id for i in offered + keep}
        self.picker.value = chosen
        where = html.escape(str(self.store.root))
        self.status.object = (f"{len(infos)} prediction set{'s' if len(infos) != 1 else ''} in <code>{where}</code>"
                              f' <span style="color:#888">(read {time.strftime("%H:%M:%S")})</span>' if infos else
                              f"No prediction sets yet in <code>{where}</code>: import a JSONL file below, or "
                              f"save some with <code>PredictionStore().save(...)</code>.")

    def _on_source(self, event) -> None:
        self.source = event.new
        self.refresh()

    @param.depends("selected_ids", watch=True)
    def _draw(self) -> None:
        if list(self.picker.value) != list(self.selected_ids):
            self.picker.value = [i for i in self.selected_ids if i in self.picker.options.values()]
        series = {}
        for set_id in self.selected_ids:
            info = self._infos.get(set_id)
            if info is None:
                continue
            if set_id not in self._cache:
                try:
                    conf, out, _ = self.store.load(set_id)
                except (OSError, ValueError) as exc:
                    self.message.object = _error(f"Could not load {set_label(info)}: {exc}")
                    continue
                self._cache[set_id] = (conf, out)
            series[set_label(info)] = self._cache[set_id]
        self.diagram.series = series

    # ---- import -------------------------------------------------------------------------------------

    def import_uploaded(self) -> str | None:
        """Import the file chosen in the file input; returns the new set's id (None when refused)."""
        data = self.file_input.value
        filename = self.file_input.filename or "uploaded.jsonl"
        if not data:
            self.message.object = _error("Choose a JSONL file first (one {\"confidence\": p, \"correct\": 0/1} "
                                         "object per line).")
            return None
        return self.import_bytes(data, filename=filename, name=self.import_name.value.strip() or None)

    def import_bytes(self, data: bytes, *, filename: str = "uploaded.jsonl", name: str | None = None) -> str | None:
        """Import JSONL content; shows the outcome (or every bad line) in the message pane."""
        name = name or os.path.splitext(os.path.basename(filename))[0] or "imported"
        try:
            set_id = self.store.import_jsonl(bytes(data), name=name, meta={"imported_from": filename})
        except PredictionImportError as exc:
            lines = "\n".join(f"line {ln}: {msg}" for ln, msg in exc.errors[:20])
            more = f"\n... and {len(exc.errors) - 20} more" if len(exc.errors) > 20 else ""
            self.message.object = _error(
                f"Nothing imported from {filename}: {len(exc.errors)} problem(s). Each line must be a JSON object "
                f'like {{"confidence": 0.8, "correct": 1}}.\n{lines}{more}')
            return None
        except (ValueError, OSError, sqlite3.Error) as exc:
            self.message.object = _error(f"Nothing imported from {filename}: {exc}")
            return None
        info = self.store.info(set_id)
        self.message.object = (f'<div style="color:#1b5e20">Imported {info.n} predictions from '
                               f'{html.escape(filename)} as <b>{html.escape(info.name)}</b>.</div>')
        self.refresh()
        self.selected_ids = [*self.selected_ids, set_id]
        return set_id

    def score_value_function(self, run_id: str | None = None) -> str | None:
        """Store the chosen run's value function as a success predictor on its recorded episodes
        (:func:`workbench.calibration.predictions.save_value_function_predictions`) and draw it; None when refused."""
        run_id = run_id or self.value_run.value
        if not run_id:
            self.message.object = _error("Choose a run of CoinRun, Ninja or Jumper first (none in the store yet?).")
            return None
        try:
            set_id = save_value_function_predictions(run_id, self.store.root)
        except (ValueError, OSError, sqlite3.Error) as exc:
            self.message.object = _error(str(exc))
            return None
        info = self.store.info(set_id)
        self.message.object = (f'<div style="color:#1b5e20">Scored {info.n} episodes of {html.escape(run_id)} as '
                               f'<b>{html.escape(info.name)}</b>.</div>')
        self.refresh()
        self.selected_ids = [*self.selected_ids, set_id]
        return set_id

    def __panel__(self):
        return self._layout


def _error(text: str) -> str:
    return f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</div>'
