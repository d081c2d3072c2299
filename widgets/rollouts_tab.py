"""Rollouts tab: pick a run, a checkpoint and a recorded episode and play it; compare two episodes side
by side; record new episodes (of a run's checkpoint or of a random policy) without leaving the page.

In a notebook::

    from widgets.rollouts_tab import RolloutsTab
    tab = RolloutsTab(store_root="runs")
    tab                        # the picker, the episode table and the viewer
    tab.select_episode(id)     # or click a row; tab.compare_with(other_id) for side by side

The episode table lists ``RolloutStore.list`` filtered by run (or "random policy"), checkpoint, level
seed and return range, newest first. Recording calls :func:`workbench.episodes.rollouts.record_run` or
:func:`~workbench.episodes.rollouts.record_random` in a background thread, so the page stays responsive; a
status line says what is being recorded and, when done, the new episodes are listed and the first is
shown. Text from the store (run names, ids, error messages) is escaped before it reaches HTML.
"""

from __future__ import annotations

import html
import os
import sqlite3
import threading
import time

import pandas as pd
import panel as pn
import param

from widgets.on_page import on_page
from widgets.refresh import PeriodicRefresh
from widgets.rollout_viewer import RolloutComparison, RolloutViewer
from workbench.episodes.rollouts import RolloutInfo, RolloutStore
from workbench.monitor import launch
from workbench.rl.env_registry import ENV_NAMES

ALL = "all"
RANDOM = "random policy"
NONE = "none"
EPISODE_COLUMNS = {"id": "episode", "env": "env", "source": "run / policy", "checkpoint_step": "checkpoint",
                   "level_seed": "level seed", "levels": "levels", "ret": "return", "length": "steps",
                   "has_hires": "hi-res", "created": "recorded"}


def _error(text: str) -> str:
    return f'<span style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</span>'


def _optional_int(text: str, what: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number or empty, got {text!r}") from None


def _optional_float(text: str, what: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number or empty, got {text!r}") from None


def episodes_frame(infos: list[RolloutInfo]) -> pd.DataFrame:
    """One row per episode (order kept), indexed by episode id."""
    records = [{
        "id": i.id, "env": i.env, "source": RANDOM if i.policy == "random" else (i.run_id or ""),
        "checkpoint_step": -1 if i.checkpoint_step is None else int(i.checkpoint_step),
        "level_seed": -1 if i.level_seed is None else int(i.level_seed), "levels": i.levels, "ret": float(i.ret),
        "length": int(i.length), "has_hires": "yes" if i.has_hires else "no",
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(i.created_at)),
    } for i in infos]
    df = pd.DataFrame.from_records(records, columns=list(EPISODE_COLUMNS))
    df = df.astype({"checkpoint_step": "int64", "level_seed": "int64", "ret": "float64", "length": "int64"})
    df.index = pd.Index([i.id for i in infos], dtype=object)
    return df


LEFT_PX = 440   # the episode list
FRAME_PX = 384  # the player's frame: list and player side by side fit a 1366-wide screen


class RolloutsTab(PeriodicRefresh, pn.viewable.Viewer):
    """Pick, play, compare and record episodes of the rollout store at ``store_root``."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    episode_id = param.String(default=None, allow_None=True, doc="The episode shown.")
    compare_id = param.String(default=None, allow_None=True, doc="A second episode shown side by side.")
    status = param.String(default="", doc="""
        The status line: the last action's outcome (plain text, escaped when shown; "error: ..." in red).""")
    listing = param.String(default="", doc="""
        What the table lists ("N episode(s) match ..."), or why the filters could not be applied.""")
    recording = param.Boolean(default=False, doc="True while a recording runs in the background.")

    refresh_period_ms = param.Integer(default=5000, bounds=(100, None))

    def __init__(self, **params):
        super().__init__(**params)
        self.store = RolloutStore(self.store_root)
        self.infos: list[RolloutInfo] = []
        self.viewer: RolloutViewer | RolloutComparison | None = None
        self._record_thread: threading.Thread | None = None
        self._build()
        self.refresh()

    # ---- layout -------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.run_select = pn.widgets.Select(label="Run", options=[ALL], value=ALL, width=260,
                                            css_classes=["wb-ro-run"])
        self.checkpoint_select = pn.widgets.Select(label="Checkpoint", options=[ALL], value=ALL, width=200,
                                                   css_classes=["wb-ro-checkpoint"])
        self.seed_input = pn.widgets.TextInput(label="Level seed", placeholder="any", width=100,
                                               css_classes=["wb-ro-seed"])
        self.min_return = pn.widgets.TextInput(label="Return ≥", placeholder="any", width=90)
        self.max_return = pn.widgets.TextInput(label="Return ≤", placeholder="any", width=90)
        for widget in (self.run_select, self.checkpoint_select, self.seed_input, self.min_return, self.max_return):
            widget.param.watch(lambda _e: self.refresh(), "value")
        self.table = pn.widgets.Tabulator(
            episodes_frame([]), disabled=True, show_index=False, selectable=1, sortable=True,
            layout="fit_data_table", pagination="local", page_size=8, sizing_mode="stretch_width",
            titles=EPISODE_COLUMNS, css_classes=["wb-ro-table"],
            formatters={c: {"type": "plaintext"} for c in ("id", "env", "source", "levels", "created")},
        )
        self.table.param.watch(self._on_table_selection, "selection")
        self.compare_select = pn.widgets.Select(label="Compare with", options={NONE: NONE}, value=NONE, width=400,
                                                css_classes=["wb-ro-compare"])
        self.compare_select.param.watch(lambda e: self.compare_with(None if e.new == NONE else e.new), "value")

        # Recording.
        self.env_select = pn.widgets.Select(label="Env (random policy)", options=list(ENV_NAMES), value="coinrun",
                                            width=150, css_classes=["wb-ro-env"])
        self.episodes_input = pn.widgets.IntInput(label="Episodes", value=1, start=1, end=100, width=90,
                                                  css_classes=["wb-ro-episodes"])
        self.levels_select = pn.widgets.Select(label="Levels", options=["train", "test"], value="train", width=90)
        self.level_seeds_input = pn.widgets.TextInput(label="Level seeds (e.g. 1,2,3 or 0-4)", placeholder="none",
                                                      width=200, css_classes=["wb-ro-level-seeds"])
        self.max_steps_input = pn.widgets.TextInput(label="Max steps", placeholder="whole episode", width=110)
        self.hires_box = pn.widgets.Checkbox(label="Hi-res render", value=True, width=110)
        self.record_button = pn.widgets.Button(label="Record", color="primary", width=100,
                                               css_classes=["wb-ro-record"])
        self.record_button.on_click(lambda _e: self.record())
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90)
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.status_pane = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-ro-status"])
        self.listing_pane = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-ro-listing"])
        self.viewer_area = pn.Column(pn.pane.HTML('<span style="color:#888">Pick an episode in the table.</span>'),
                                     sizing_mode="stretch_width", css_classes=["wb-ro-viewer"])

    def __panel__(self):
        self._start_periodic_refresh()
        # Episodes on the left, the player on the right: on a 1366x768 screen the frame and its controls are
        # in view without scrolling; recording new episodes is folded away below.
        browser = pn.Column(
            pn.Row(self.run_select, self.checkpoint_select),
            pn.Row(self.seed_input, self.min_return, self.max_return, self.refresh_button),
            self.listing_pane,
            self.table,
            self.compare_select,
            width=LEFT_PX,
        )
        return pn.Column(
            pn.Row(browser, pn.Column(self.status_pane, self.viewer_area, sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            pn.Card(
                pn.Row(self.env_select, self.episodes_input, self.levels_select, self.level_seeds_input,
                       self.max_steps_input, self.hires_box),
                pn.Row(self.record_button),
                title="Record new episodes (of the selected run and checkpoint, or of a random policy)",
                collapsed=True, sizing_mode="stretch_width", css_classes=["wb-ro-record-card"],
            ),
            sizing_mode="stretch_width",
        )

    @staticmethod
    def _line(text: str) -> str:
        return _error(text[len("error: "):]) if text.startswith("error: ") else f"<span>{html.escape(text)}</span>"

    @param.depends("status", watch=True)
    def _show_status(self) -> None:
        self.status_pane.object = self._line(self.status)

    @param.depends("listing", watch=True)
    def _show_listing(self) -> None:
        self.listing_pane.object = self._line(self.listing)

    # ---- reading the store --------------------------------------------------------------------------

    def _run_options(self) -> dict[str, str]:
        options = {ALL: ALL, RANDOM: RANDOM}
        for run in self.store.runs.list_runs():
            options[f"{run.name} ({run.id})" if run.name != run.id else run.id] = run.id
        return options

    def _checkpoint_options(self, run: str) -> dict[str, object]:
        options: dict[str, object] = {ALL: ALL}
        if run in (ALL, RANDOM):
            return options
        saved = {step for step, _ in self.store.runs.list_checkpoints(run)}
        recorded = {i.checkpoint_step for i in self.store.list(run_id=run) if i.checkpoint_step is not None}
        for step in sorted(saved | recorded, reverse=True):
            options[f"{step:,}" + ("" if step in saved else " (no checkpoint file)")] = step
        return options

    def filters(self) -> dict:
        """The table's filters as RolloutStore.list keywords (ValueError for unreadable inputs)."""
        run = self.run_select.value
        kwargs: dict = {}
        if run == RANDOM:
            kwargs["policy"] = "random"
        elif run != ALL:
            kwargs["run_id"] = run
        if self.checkpoint_select.value not in (ALL, None):
            kwargs["checkpoint_step"] = int(self.checkpoint_select.value)
        seed = _optional_int(self.seed_input.value, "Level seed")
        if seed is not None:
            kwargs["level_seed"] = seed
        lo = _optional_float(self.min_return.value, "Return ≥")
        hi = _optional_float(self.max_return.value, "Return ≤")
        if lo is not None:
            kwargs["min_return"] = lo
        if hi is not None:
            kwargs["max_return"] = hi
        return kwargs

    def refresh(self) -> None:
        """Re-read runs, checkpoints and episodes (the table changes only if the list did)."""
        try:
            runs = self._run_options()
            if runs != self.run_select.options:
                value = self.run_select.value
                self.run_select.options = runs
                if value not in runs.values():
                    self.run_select.value = ALL
            checkpoints = self._checkpoint_options(self.run_select.value)
            if checkpoints != self.checkpoint_select.options:
                value = self.checkpoint_select.value
                self.checkpoint_select.options = checkpoints
                if value not in checkpoints.values():
                    self.checkpoint_select.value = ALL
            filters = self.filters()
            self.infos = self.store.list(**filters)
        except ValueError as e:
            self.listing = f"error: {e}"
            return
        except (sqlite3.Error, OSError) as e:
            self.listing = f"error: could not read the rollout store: {e}"
            return
        df = episodes_frame(self.infos)
        current = self.table.value
        if not (df.equals(current) and df.index.equals(current.index)):
            selected = self.episode_id
            self.table.value = df
            rows = [i for i, info in enumerate(self.infos) if info.id == selected]
            self.table.selection = rows
        every = {f"{i.id} ({i.env}, return {i.ret:.2f})": i.id for i in self.store.list(limit=500)}
        compare = {NONE: NONE, **every}
        if compare != self.compare_select.options:
            value = self.compare_select.value
            self.compare_select.options = compare
            self.compare_select.value = value if value in compare.values() else NONE
        where = self.store.root
        self.listing = (f"{len(self.infos)} episode(s) match in {where}" if self.infos else
                        f"No recorded episodes match in {where}: record some below "
                        "(or `workbench rollout RUN` / `workbench rollout --random ENV`).")

    # ---- showing episodes ---------------------------------------------------------------------------

    def _on_table_selection(self, event) -> None:
        index = self.table.value.index
        rows = [i for i in event.new if i < len(index)]
        # The selection is also restored by code when the list changes: the shown episode stays as it is.
        if rows and not (str(index[rows[0]]) == self.episode_id and self.viewer is not None):
            self.select_episode(str(index[rows[0]]))

    def select_episode(self, episode_id: str | None) -> None:
        """Show ``episode_id`` (alone, or side by side with the compare pick)."""
        self.episode_id = episode_id
        self._show()

    def compare_with(self, episode_id: str | None) -> None:
        """Show ``episode_id`` side by side with the selected episode (None: back to one episode)."""
        self.compare_id = episode_id
        if (self.compare_select.value if self.compare_select.value != NONE else None) != episode_id:
            self.compare_select.value = episode_id if episode_id is not None else NONE
        self._show()

    def _show(self) -> None:
        if self.episode_id is None:
            return
        try:
            if self.compare_id is not None:
                self.viewer = RolloutComparison(left_id=self.episode_id, right_id=self.compare_id,
                                                store_root=self.store.root, display_px=FRAME_PX)
            else:
                self.viewer = RolloutViewer(episode_id=self.episode_id, store_root=self.store.root,
                                            display_px=FRAME_PX)
        except (ValueError, OSError, RuntimeError) as e:  # unknown id, files deleted under us, a broken video
            self.status = f"error: could not open the episode: {e}"
            return
        self.viewer_area.objects = [self.viewer]
        self.status = f"Showing {self.episode_id}" + (f" and {self.compare_id}" if self.compare_id else "")

    # ---- recording ----------------------------------------------------------------------------------

    def record_request(self) -> tuple:
        """(function, positional args, keyword args) that the Record button would call (ValueError if the
        form is not valid)."""
        from workbench.episodes.rollouts import record_random, record_run

        seeds_text = self.level_seeds_input.value.strip()
        level_seeds = launch.parse_seeds(seeds_text) if seeds_text else None
        max_steps = _optional_int(self.max_steps_input.value, "Max steps")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"Max steps must be at least 1 (or empty for whole episodes), got {max_steps}")
        episodes = int(self.episodes_input.value or 1)
        if episodes < 1:
            raise ValueError(f"Episodes must be at least 1, got {episodes}")
        common = dict(episodes=episodes, level_seeds=level_seeds, hires=bool(self.hires_box.value),
                      store_root=self.store.root, max_steps=max_steps)
        run = self.run_select.value
        if run in (ALL, RANDOM):
            return record_random, (self.env_select.value,), common
        checkpoint = self.checkpoint_select.value
        if checkpoint not in (ALL, None):
            saved = [step for step, _ in self.store.runs.list_checkpoints(run)]
            if checkpoint not in saved:
                raise ValueError(f"run {run} has no checkpoint file at step {checkpoint:,} (saved: "
                                 f"{', '.join(f'{s:,}' for s in saved) or 'none'}); pick one of those or 'all' "
                                 "for the latest")
        return record_run, (run,), dict(common, levels=self.levels_select.value,
                                        checkpoint_step=None if checkpoint in (ALL, None) else int(checkpoint))

    def record(self, background: bool = True) -> threading.Thread | list[str] | None:
        """Record with the form's settings: in a background thread (returned) or, with
        ``background=False``, here (returns the new ids). None if the form is invalid or a recording runs."""
        if self.recording:
            self.status = "A recording is already running; wait for it to finish."
            return None
        try:
            fn, args, kwargs = self.record_request()
        except ValueError as e:
            self.status = f"error: not recorded: {e}"
            return None
        what = f"{kwargs['episodes'] if kwargs['level_seeds'] is None else len(kwargs['level_seeds'])} episode(s) of " + (
            f"a random policy on {args[0]}" if fn.__name__ == "record_random" else f"run {args[0]}")
        self.recording = True
        self.record_button.disabled = True
        self.status = f"Recording {what}…"
        doc = pn.state.curdoc  # the browser session (None in plain Python): where the results go

        def work():
            try:
                ids = fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001  (shown to the user: unknown run, missing checkpoint, bad env)
                self._record_done(doc, None, f"error: recording failed: {type(e).__name__}: {e}")
                return None
            self._record_done(doc, ids, f"Recorded {len(ids)} episode(s): {', '.join(ids)}")
            return ids

        if not background:
            return work()
        thread = threading.Thread(target=work, name="rollouts-record", daemon=True)
        self._record_thread = thread
        thread.start()
        return thread

    def _record_done(self, doc, ids: list[str] | None, message: str) -> None:
        def finish():
            self.recording = False
            self.record_button.disabled = False
            self.refresh()
            if ids:
                self.select_episode(ids[0])
                self.table.selection = [i for i, info in enumerate(self.infos) if info.id == ids[0]]
            self.status = message + ("; showing the first" if ids and self.episode_id == ids[0] else "")

        on_page(doc, finish)  # served: update the widgets on the session's event loop, not this thread
