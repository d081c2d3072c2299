"""Studies tab: pick a study (a family of runs, workbench.studies); see its runs with their axis values and
status (queued, running, finished, failed, stopped, interrupted); their learning curves against env steps and
against compute, coloured by model size with seed bands; the compute frontier; intrinsic performance against
compute with the fitted joint law and its bootstrap band; the compute-optimal model size; the residuals.

Start, stop and resume a study from the page (workbench.studies.control, the Monitor's guard rails: settings
validated before anything starts, no second driver for a running study, nothing to resume when finished), or
create one from TOML text (the format of ``workbench sweep --config``).

In a notebook::

    import panel as pn; pn.extension("tabulator", "plotly")
    from widgets.studies_tab import StudiesTab
    StudiesTab(store_root="runs", study="widths")

Study names, axis values and errors are shown as plain text (Tabulator's plaintext formatter, escaped HTML).
"""

from __future__ import annotations

import html
import os
import sqlite3

import pandas as pd
import panel as pn
import param

from widgets import study_plots
from workbench.storage.studies import StudyStore
from workbench.studies import control
from workbench.studies.analysis import scaling_analysis, study_curves, study_table

EXAMPLE_TOML = """name = "widths"
algo = "ppo"
[base]
env = "colour_cue"
total_timesteps = 4096
[axes]
width = [0.25, 0.5, 1.0]
seed = [0, 1]
"""


def _error(text: str) -> str:
    return f'<span style="color:#b00020">{html.escape(text)}</span>'


class StudiesTab(pn.viewable.Viewer):
    """A study's runs, curves, frontier and fits, and its controls (module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    study = param.String(default=None, allow_None=True, doc="The study shown (None: the newest).")
    n_boot = param.Integer(default=200, bounds=(0, 5000), doc="Bootstrap resamples of the fits' intervals.")
    parallel = param.Integer(default=1, bounds=(1, 64), doc="Runs at a time when started from the page.")

    def __init__(self, **params):
        super().__init__(**params)
        self.studies = StudyStore(self.store_root)
        self.picker = pn.widgets.Select(label="Study", options=[], width=320, css_classes=["wb-study-picker"])
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90, css_classes=["wb-study-refresh"])
        self.start_button = pn.widgets.Button(label="Start / resume", color="primary", width=130,
                                              css_classes=["wb-study-start"])
        self.stop_button = pn.widgets.Button(label="Stop", color="warning", width=80,
                                             css_classes=["wb-study-stop"])
        self.parallel_input = pn.widgets.IntInput.from_param(self.param.parallel, label="Runs at a time", width=120)
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-study-status"])
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-study-message"])
        self.table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, layout="fit_data_table",
                                          pagination="local", page_size=25, sizing_mode="stretch_width",
                                          css_classes=["wb-study-runs"])
        self.toml_input = pn.widgets.TextAreaInput(label="New study (TOML)", value=EXAMPLE_TOML, height=170,
                                                   sizing_mode="stretch_width", css_classes=["wb-study-toml"])
        self.create_button = pn.widgets.Button(label="Create and start", width=140, css_classes=["wb-study-create"])
        self.plots = {key: pn.pane.Plotly(None, sizing_mode="stretch_width", height=360, css_classes=[f"wb-{key}"])
                      for key in ("curves-steps", "curves-compute", "frontier", "intrinsic", "optimal", "residuals")}
        self.fit_notes = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-study-fit-notes"])

        self.refresh_button.on_click(lambda _e: self.refresh())
        self.start_button.on_click(lambda _e: self.start())
        self.stop_button.on_click(lambda _e: self.stop())
        self.create_button.on_click(lambda _e: self.create_and_start())
        self.picker.param.watch(lambda e: setattr(self, "study", e.new), "value")
        self.param.watch(lambda _e: self.show_study(), "study")

        plots = self.plots
        self._layout = pn.Column(
            pn.Row(self.picker, self.refresh_button, self.parallel_input, self.start_button, self.stop_button,
                   sizing_mode="stretch_width"),
            self.status, self.message, self.table,
            pn.Row(plots["curves-steps"], plots["curves-compute"], sizing_mode="stretch_width"),
            pn.Row(plots["frontier"], plots["intrinsic"], sizing_mode="stretch_width"),
            pn.Row(plots["optimal"], plots["residuals"], sizing_mode="stretch_width"),
            self.fit_notes,
            pn.Card(self.toml_input, self.create_button, title="New study", collapsed=True,
                    sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    # ---- the store --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the studies (the choice is kept) and redraw the one shown."""
        try:
            names = [s.name for s in self.studies.list_studies()]
        except (sqlite3.Error, OSError) as exc:
            self.status.object = _error(f"Could not read the store: {exc}")
            return
        self.picker.options = names
        if self.study not in names:
            self.study = names[0] if names else None  # triggers show_study
        else:
            self.show_study()
        if self.picker.value != self.study:
            self.picker.value = self.study
        if not names:
            self.status.object = ("No studies yet: start one with <code>workbench sweep</code> or "
                                  "<em>New study</em> below.")

    def show_study(self) -> None:
        """Draw the chosen study: its runs table, curves, frontier and fits."""
        if not self.study:
            return
        try:
            info = self.studies.get(self.study)
            rows = study_table(self.studies.root, self.study)
            curves = study_curves(self.studies.root, self.study)
        except (ValueError, sqlite3.Error, OSError) as exc:
            self.status.object = _error(str(exc))
            return
        counts = pd.Series([r["status"] for r in rows]).value_counts().to_dict() if rows else {}
        driver = control.driver_alive(self.studies.root, self.study)
        state = f"running (sweep pid {driver})" if driver else ("interrupted" if info.status == "running"
                                                                 else info.status)
        self.status.object = (f"<b>{html.escape(info.name)}</b> · {html.escape(info.kind)} · {html.escape(state)}"
                              f" · {len(rows)} runs: " + ", ".join(f"{n} {html.escape(s)}"
                                                                   for s, n in sorted(counts.items())))
        frame = pd.DataFrame(rows)
        self.table.value = frame
        self.table.formatters = {c: {"type": "plaintext"} for c in frame.columns if frame[c].dtype == object}
        self.table.title_formatters = {c: {"type": "plaintext"} for c in frame.columns}
        self.plots["curves-steps"].object = study_plots.learning_curves(curves, "steps")
        self.plots["curves-compute"].object = study_plots.learning_curves(curves, "compute")
        result = scaling_analysis(curves, n_boot=self.n_boot)
        self.plots["frontier"].object = study_plots.frontier_figure(result)
        self.plots["intrinsic"].object = study_plots.intrinsic_figure(result)
        self.plots["optimal"].object = study_plots.optimal_size_figure(result)
        self.plots["residuals"].object = study_plots.residuals_figure(result)
        notes = []
        if result.law is not None:
            law = result.law
            for key in ("alpha_n", "alpha_e", "beta", "optimal_size_exponent"):
                low, high = law.intervals.get(key, (float("nan"), float("nan")))
                value = getattr(law, key)
                notes.append(f"{key} = {value:.3f} [{low:.3f}, {high:.3f}]")
            notes = ["Joint law (95% bootstrap intervals, " f"{law.n_boot} resamples): " + "; ".join(notes)]
        notes += [f"Not fitted: {e}" for e in result.errors]
        self.fit_notes.object = "<br>".join(html.escape(n) for n in notes)

    # ---- controls ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or resume) the chosen study in its own sweep process."""
        if not self.study:
            self.message.object = _error("Choose a study first.")
            return
        try:
            pid = control.start_study(self.studies.root, self.study, parallel=int(self.parallel))
        except (ValueError, RuntimeError, OSError) as exc:
            self.message.object = _error(str(exc))
            return
        self.message.object = f"Started the sweep of {html.escape(self.study)} (pid {pid})."

    def stop(self) -> None:
        if not self.study:
            return
        if control.stop_study(self.studies.root, self.study):
            self.message.object = f"Asked {html.escape(self.study)} to stop: each run checkpoints first."
        else:
            self.message.object = _error(f"{self.study} has no running sweep to stop.")

    def create_and_start(self) -> None:
        """Store the study written in TOML (validated first: nothing starts when it is invalid) and start it."""
        try:
            name = control.create_study(self.studies.root, self.toml_input.value)
        except (ValueError, TypeError) as exc:
            self.message.object = _error(str(exc))
            return
        self.refresh()
        self.study = name
        self.start()
