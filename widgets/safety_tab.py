"""Safety tab: the ML-safety roadmap's monitors for one run (docs/safety.md).

* **Out-of-distribution detection**: the stored evaluations of the run (``workbench ood RUN``, or the
  Evaluate button here): AUROC, AUPR-in, AUPR-out and FPR95 per shift and detector, and the histogram of one
  detector's in-distribution scores on training frames against each shift.
* **Calibration under shift**: the value function's success probability on training levels, held-out levels
  and hard mode (``workbench calibration-shift RUN``) as one reliability diagram.
* **Proxy-gaming alarm**: for runs against a reward model, the alarm's verdict over the run's series.

In a notebook::

    import panel as pn; pn.extension("plotly", "tabulator")
    from widgets.safety_tab import SafetyTab
    SafetyTab(store_root="runs", run_id=RUN)

All science is in ``workbench.safety``; user text (run names, error messages) is HTML-escaped.
"""

from __future__ import annotations

import html
import os
import sqlite3
import threading

import numpy as np
import pandas as pd
import panel as pn
import param

from widgets.formatting import number_formatters
from widgets.on_page import on_page
from widgets.reliability_diagram import ReliabilityDiagram
from workbench.calibration.predictions import PredictionStore
from workbench.safety.alarm import check_run
from workbench.safety.calibration_shift import shift_sets
from workbench.safety.ood import CORRUPTIONS, ENV_SHIFTS, OODStore, check_shifts, evaluate_ood
from workbench.safety.ood_metrics import DETECTORS
from workbench.storage.runs import RunStore

METRIC_COLUMNS = ["shift", "detector", "auroc", "aupr_in", "aupr_out", "fpr95", "n_in", "n_shifted"]


def _escaped(text) -> str:
    return html.escape(str(text))


class SafetyTab(pn.viewable.Viewer):
    """OOD results, calibration under shift and the proxy-gaming alarm of one run (module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the store; None means $WORKBENCH_HOME, else ./runs.""")
    run_id = param.String(default="", doc="The run shown.")
    result_id = param.String(default="", doc="The OOD result shown (default: the run's newest).")
    detector = param.Selector(default="msp", objects=list(DETECTORS), doc="Detector of the score histogram.")

    def __init__(self, **params):
        super().__init__(**params)
        self.runs = RunStore(self.store_root)
        self._result = None  # the OOD result shown, as loaded
        self.ood_store = OODStore(self.runs.root)
        self.predictions = PredictionStore(self.runs.root)
        self.run_select = pn.widgets.Select(label="Run", options=[], width=360, css_classes=["wb-safety-run"])
        self.result_select = pn.widgets.Select(label="OOD result", options=[], width=360,
                                               css_classes=["wb-safety-result"])
        self.detector_select = pn.widgets.Select.from_param(self.param.detector, label="Histogram of", width=200)
        self.shift_choice = pn.widgets.MultiChoice(label="Shifts", options=list(ENV_SHIFTS + CORRUPTIONS),
                                                   value=["test", "noise", "blur", "colour"], width=360)
        self.frames_input = pn.widgets.IntInput(label="Frames", value=256, start=16, end=100_000, width=110)
        self.evaluate_button = pn.widgets.Button(label="Evaluate", button_type="primary", width=110,
                                                 css_classes=["wb-safety-evaluate"])
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-safety-message"])
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=METRIC_COLUMNS), disabled=True, show_index=False,
                                          sizing_mode="stretch_width", height=260, css_classes=["wb-safety-table"])
        self.histogram = pn.pane.Plotly({"data": [], "layout": {}}, height=320, sizing_mode="stretch_width")
        self.calibration = ReliabilityDiagram(title="Value function under shift", n_bins=10, height=420)
        self.calibration_note = pn.pane.HTML("", sizing_mode="stretch_width")
        self.alarm_pane = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-safety-alarm"])
        self.run_select.param.watch(lambda e: setattr(self, "run_id", e.new or ""), "value")
        self.result_select.param.watch(lambda e: setattr(self, "result_id", e.new or ""), "value")
        self.evaluate_button.on_click(self._on_evaluate)
        self._layout = pn.Column(
            pn.pane.Markdown("Monitors of the ML-safety roadmap (Hendrycks et al. 2021): is the policy out of its "
                             "depth, is its confidence still calibrated off its training levels, is RL gaming "
                             "its reward model? See docs/safety.md."),
            self.run_select,
            pn.pane.Markdown("### Out-of-distribution detection"),
            pn.Row(self.result_select, self.detector_select),
            pn.Row(self.shift_choice, self.frames_input, self.evaluate_button),
            self.message, self.table, self.histogram,
            pn.pane.Markdown("### Calibration under shift"), self.calibration_note, self.calibration,
            pn.pane.Markdown("### Proxy-gaming alarm"), self.alarm_pane,
            sizing_mode="stretch_width",
        )
        self.reload()

    # ---- data -------------------------------------------------------------------------------------

    def reload(self) -> None:
        runs = self.runs.list_runs()
        self.run_select.options = {f"{r.name or r.id} ({r.algo}, {r.env})": r.id for r in runs}
        if runs and self.run_id not in {r.id for r in runs}:
            evaluated = {r.get("run_id") for r in self.ood_store.list()}  # open on a run that has results
            self.run_id = next((r.id for r in runs if r.id in evaluated), runs[0].id)
        self.run_select.value = self.run_id or None
        self._show_run()

    @param.depends("run_id", watch=True)
    def _show_run(self) -> None:
        if not self.run_id:
            self.message.object = "No runs in the store yet."
            return
        self.shift_choice.value = self._default_shifts()
        results = self.ood_store.list(self.run_id)
        self.result_select.options = {f"{r['id']} (step {r['checkpoint_step']:,}: {', '.join(r['shifts'])})": r["id"]
                                      for r in results}
        ids = [r["id"] for r in results]
        self.result_id = self.result_id if self.result_id in ids else (ids[0] if ids else "")
        self.result_select.value = self.result_id or None
        self._show_result()
        self._show_calibration()
        self._show_alarm()

    def _default_shifts(self) -> list[str]:
        """Every shift that applies to the run's env and mode (e.g. no test levels for a colour-cue task)."""
        try:
            config = self.runs.get_run(self.run_id).config
        except (ValueError, OSError, sqlite3.Error):  # an unreadable run keeps the choice; its errors show elsewhere
            return list(self.shift_choice.value)
        valid = []
        for shift in ENV_SHIFTS + CORRUPTIONS:
            try:
                valid += check_shifts([shift], config.get("env", ""), config.get("distribution_mode", "easy"))
            except ValueError:
                continue
        return valid

    @param.depends("result_id", "detector", watch=True)
    def _show_result(self) -> None:
        if not self.result_id:
            self.table.value = pd.DataFrame(columns=METRIC_COLUMNS)
            self.histogram.object = {"data": [], "layout": {}}
            self.message.object = ("No OOD evaluation of this run yet: press Evaluate or run "
                                   f"<code>workbench ood {_escaped(self.run_id)}</code>.")
            return
        if self._result is None or self._result.id != self.result_id:  # changing the detector re-reads nothing
            self._result = self.ood_store.load(self.result_id)
        result = self._result
        frame = pd.DataFrame(result.table())[METRIC_COLUMNS]
        self.table.formatters = number_formatters(frame, count_columns=("n_in", "n_shifted"))
        self.table.value = frame
        self.message.object = ""
        traces = []
        for source, by_detector in result.scores.items():
            if self.detector in by_detector:
                traces.append({"type": "histogram", "x": np.asarray(by_detector[self.detector]).tolist(),
                               "name": source, "opacity": 0.55, "histnorm": "probability"})
        if not traces:
            self.message.object = (f"This result has no {_escaped(self.detector)} scores (no ensemble was given, "
                                   "or it was stored before the detector existed).")
        self.histogram.object = {"data": traces, "layout": {
            "barmode": "overlay", "title": f"{self.detector}: training frames against each shift",
            "xaxis": {"title": "in-distribution score (higher = more typical)"},
            "yaxis": {"title": "fraction of frames"}, "margin": {"t": 40}}}

    def _show_calibration(self) -> None:
        sets = shift_sets(self.run_id, self.runs.root)
        series = {}
        for shift, set_id in sets.items():
            confidence, outcome, _ = self.predictions.load(set_id)
            series[shift] = (confidence, outcome)
        self.calibration.series = series
        self.calibration_note.object = "" if series else (
            "No calibration-under-shift sets for this run (binary-outcome games only: coinrun, ninja, jumper): "
            f"<code>workbench calibration-shift {_escaped(self.run_id)}</code>.")

    def _show_alarm(self) -> None:
        info = self.runs.get_run(self.run_id)
        if not info.algo.endswith("-rm"):
            self.alarm_pane.object = "The alarm watches runs against a reward model (ppo-rm, ppg-rm)."
            return
        try:
            report = check_run(self.runs, self.run_id)
        except ValueError as exc:
            self.alarm_pane.object = _escaped(exc)
            return
        if report.fired:
            self.alarm_pane.object = (f"<b style='color:#b00'>Proxy-gaming alarm from step {report.first_step:,}</b>"
                                      f" ({_escaped(report.events[0]['reason'])}); it held on "
                                      f"{int(report.firing.sum())} of {len(report.steps)} iterations.")
        else:
            self.alarm_pane.object = f"No alarm over {len(report.steps)} logged iterations."

    # ---- actions ----------------------------------------------------------------------------------

    def _on_evaluate(self, _event=None, *, wait: bool = False) -> None:
        run_id, shifts, frames = self.run_id, list(self.shift_choice.value), int(self.frames_input.value)
        self.evaluate_button.disabled = True
        self.message.object = "Evaluating…"
        doc = pn.state.curdoc  # captured here: a worker thread has no current document

        def work():
            try:
                result_id, error = evaluate_ood(run_id, shifts=shifts, frames=frames, store_root=self.runs.root).id, ""
            except (ValueError, OSError) as exc:
                result_id, error = "", str(exc)

            on_page(doc, lambda: self._finished(result_id, error))

        thread = threading.Thread(target=work, daemon=True)  # off the event loop: it plays the game
        thread.start()
        if wait:
            thread.join()

    def _finished(self, result_id: str, error: str) -> None:
        self.evaluate_button.disabled = False
        if error:
            self.message.object = f"<span style='color:#b00'>Not evaluated: {_escaped(error)}</span>"
            return
        self.result_id = result_id
        self._show_run()

    def __panel__(self):
        return self._layout


__all__ = ["SafetyTab"]
