"""Demonstrations tab: manage demonstration sets (docs/demonstrations.md) from the dashboard.

The recorded episodes (people's, played in the Play tab, and agents') are listed with their game, policy, the
player's login, level seed, length and return, filtered by game and by human/agent. Select rows (checkboxes)
and add them to a set: a new one (named in the field) or an existing one (the same name). The set shown has its
summary (episodes, steps, the share of steps people played) and its episodes, which can be removed from it;
the set itself is deleted only after its name is typed again. A set downloads as the documented ``.npz`` file,
and such a file uploads as a new set.

All of it goes through `workbench.demonstrations.sets.DemonstrationStore` (the page holds no logic of its own);
set names, logins and errors are shown as plain text (escaped HTML, Tabulator's plaintext formatter).

In a notebook::

    import panel as pn; pn.extension("tabulator")
    from widgets.demonstrations_tab import DemonstrationsTab
    DemonstrationsTab(store_root="runs")
"""

from __future__ import annotations

import html
import io
import os
import sqlite3

import pandas as pd
import panel as pn
import param

from workbench.demonstrations.sets import DemonstrationStore
from workbench.episodes.rollouts import UnknownEpisodeError

ALL = "all"
COLUMNS = ["episode", "game", "policy", "login", "level_seed", "length", "return"]
TEXT_COLUMNS = ("episode", "game", "policy", "login")
ERRORS = (ValueError, UnknownEpisodeError, sqlite3.Error, OSError)


def _error(text: str) -> str:
    return f'<span class="wb-demos-error" style="color:#b00020">{html.escape(text)}</span>'


def _ok(text: str) -> str:
    return f'<span class="wb-demos-ok">{html.escape(text)}</span>'


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["login"] = frame["login"].fillna("")
    frame["level_seed"] = frame["level_seed"].astype("Int64")
    return frame


class DemonstrationsTab(pn.viewable.Viewer):
    """Recorded episodes, demonstration sets built from them, and their files (module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    game = param.String(default=ALL, doc="Show the episodes of this game only ('all': every game).")
    who = param.Selector(default=ALL, objects=[ALL, "human", "agent"], doc="People's episodes, agents', or both.")
    set_name = param.String(default=None, allow_None=True, doc="The set shown (None: the first one).")

    def __init__(self, **params):
        super().__init__(**params)
        self.demos = DemonstrationStore(self.store_root)
        table = dict(disabled=True, show_index=False, selectable="checkbox", layout="fit_data_table",
                     pagination="local", page_size=20, sizing_mode="stretch_width",
                     formatters={c: {"type": "plaintext"} for c in TEXT_COLUMNS},
                     title_formatters={c: {"type": "plaintext"} for c in COLUMNS})
        # ---- recorded episodes
        self.game_select = pn.widgets.Select(label="Game", options=[ALL], value=ALL, width=160,
                                             css_classes=["wb-demos-game"])
        self.who_select = pn.widgets.Select.from_param(self.param.who, label="Played by", width=120)
        self.refresh_button = pn.widgets.Button(label="Refresh", width=90, css_classes=["wb-demos-refresh"])
        self.episodes_table = pn.widgets.Tabulator(_frame([]), css_classes=["wb-demos-episodes"], **table)
        self.target_input = pn.widgets.TextInput(label="Set", placeholder="a new or an existing set's name",
                                                 width=240, css_classes=["wb-demos-target"])
        self.description_input = pn.widgets.TextInput(label="Description (a new set)", width=320)
        self.add_button = pn.widgets.Button(label="Add selected to set", color="primary", width=170,
                                            css_classes=["wb-demos-add"])
        # ---- sets
        self.set_select = pn.widgets.Select(label="Set shown", options=[], width=240, css_classes=["wb-demos-set"])
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-demos-summary"])
        self.set_table = pn.widgets.Tabulator(_frame([]), css_classes=["wb-demos-set-episodes"], **table)
        self.remove_button = pn.widgets.Button(label="Remove selected from set", width=200,
                                               css_classes=["wb-demos-remove"])
        self.confirm_input = pn.widgets.TextInput(label="Type the set's name to delete it", width=240,
                                                  css_classes=["wb-demos-confirm"])
        self.delete_button = pn.widgets.Button(label="Delete set", color="danger", width=110,
                                               css_classes=["wb-demos-delete"])
        self.download = pn.widgets.FileDownload(callback=self._download, filename="set.npz", label="Export .npz",
                                                width=140, css_classes=["wb-demos-export"])
        self.upload = pn.widgets.FileInput(accept=".npz", multiple=False, css_classes=["wb-demos-upload"])
        self.import_name = pn.widgets.TextInput(label="Import as (empty: the file's name)", width=240)
        self.import_button = pn.widgets.Button(label="Import .npz", width=120, css_classes=["wb-demos-import"])
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-demos-message"])

        self.refresh_button.on_click(lambda _e: self.refresh())
        self.add_button.on_click(lambda _e: self.add_selected())
        self.remove_button.on_click(lambda _e: self.remove_selected())
        self.delete_button.on_click(lambda _e: self.delete_set())
        self.import_button.on_click(lambda _e: self.import_upload())
        self.game_select.param.watch(lambda e: setattr(self, "game", e.new), "value")
        self.set_select.param.watch(lambda e: setattr(self, "set_name", e.new), "value")
        self.param.watch(lambda _e: self.show_episodes(), ["game", "who"])
        self.param.watch(lambda _e: self.show_set(), "set_name")

        self._layout = pn.Column(
            pn.pane.HTML("<b>Recorded episodes</b>: tick episodes, name a set, add them."),
            pn.Row(self.game_select, self.who_select, self.refresh_button, sizing_mode="stretch_width"),
            self.episodes_table,
            pn.Row(self.target_input, self.description_input, self.add_button, sizing_mode="stretch_width"),
            self.message,
            pn.pane.HTML("<b>Demonstration sets</b>"),
            pn.Row(self.set_select, self.download, sizing_mode="stretch_width"),
            self.summary, self.set_table,
            pn.Row(self.remove_button, self.confirm_input, self.delete_button, sizing_mode="stretch_width"),
            pn.Card(self.upload, pn.Row(self.import_name, self.import_button), title="Import a set (.npz)",
                    collapsed=True, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    # ---- reading the store ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the games, episodes and sets (the choices are kept where they still exist)."""
        try:
            games = self.demos.games()
            names = [s.name for s in self.demos.list()]
        except ERRORS as exc:
            self.message.object = _error(f"Could not read the store: {exc}")
            return
        self.game_select.options = [ALL, *games]
        if self.game not in self.game_select.options:
            self.game = ALL
        self.game_select.value = self.game
        self.set_select.options = names
        shown = self.set_name if self.set_name in names else (names[0] if names else None)
        if shown == self.set_name:
            self.show_set()
        else:
            self.set_name = shown  # shows it
        if self.set_select.value != self.set_name:
            self.set_select.value = self.set_name
        self.show_episodes()

    def show_episodes(self) -> None:
        try:
            rows = self.demos.recorded(env=None if self.game == ALL else self.game,
                                       who=None if self.who == ALL else self.who)
        except ERRORS as exc:
            self.message.object = _error(str(exc))
            return
        self.episodes_table.selection = []
        self.episodes_table.value = _frame(rows)

    def show_set(self) -> None:
        """The set's summary and episodes (nothing when there is no set)."""
        self.set_table.selection = []
        self.confirm_input.value = ""
        if not self.set_name:
            self.summary.object = "No demonstration sets yet: tick episodes above and add them to a new set."
            self.set_table.value = _frame([])
            self.download.disabled = True
            return
        try:
            summary = self.demos.summary(self.set_name)
            ids = self.demos.episode_ids(self.set_name)
            recorded = {r["episode"]: r for r in self.demos.recorded()}
        except ERRORS as exc:
            self.summary.object = _error(str(exc))
            return
        share = "" if not summary.steps else f" ({summary.human_share:.0%} of the steps played by people)"
        text = (f"{summary.name}: {summary.episodes} episodes ({summary.human_episodes} human), {summary.steps} "
                f"steps{share}" + (f"; {summary.missing} episodes deleted since" if summary.missing else ""))
        description = f"<br><i>{html.escape(summary.description)}</i>" if summary.description else ""
        self.summary.object = f"<b>{html.escape(text)}</b>{description}"
        self.set_table.value = _frame([recorded[i] for i in ids if i in recorded])
        self.download.filename = f"{summary.name}.npz"
        self.download.disabled = summary.episodes == 0

    # ---- changing the store -----------------------------------------------------------------------------

    def _selected(self, table) -> list[str]:
        frame = table.value
        return [str(frame.iloc[i]["episode"]) for i in table.selection if 0 <= i < len(frame)]

    def add_selected(self) -> None:
        """Add the ticked episodes to the set named in the field (created when new)."""
        name = self.target_input.value.strip()
        try:
            info = self.demos.collect(name, self._selected(self.episodes_table), self.description_input.value)
        except ERRORS as exc:
            self.message.object = _error(f"Not added: {exc}")
            return
        self.message.object = _ok(f"{info.name} now holds {info.episodes} episodes.")
        self.episodes_table.selection = []
        self.refresh()
        self.set_name = info.name
        self.set_select.value = info.name

    def remove_selected(self) -> None:
        """Take the ticked episodes out of the set shown (they stay recorded)."""
        ids = self._selected(self.set_table)
        if not self.set_name or not ids:
            self.message.object = _error("Tick episodes of the set shown first.")
            return
        try:
            info = self.demos.remove(self.set_name, ids)
        except ERRORS as exc:
            self.message.object = _error(f"Not removed: {exc}")
            return
        self.message.object = _ok(f"Removed {len(ids)} episodes; {info.name} holds {info.episodes}.")
        self.show_set()

    def delete_set(self) -> None:
        """Delete the set shown, once its name has been typed into the confirmation field."""
        name = self.set_name
        if not name:
            self.message.object = _error("No set to delete.")
            return
        if self.confirm_input.value.strip() != name:
            self.message.object = _error(f"Type {name} into the confirmation field to delete it.")
            return
        try:
            self.demos.delete(name)
        except ERRORS as exc:
            self.message.object = _error(f"Not deleted: {exc}")
            return
        self.message.object = _ok(f"Deleted the set {name} (its episodes stay recorded).")
        self.refresh()

    def _download(self) -> io.BytesIO:
        try:
            return io.BytesIO(self.demos.export_bytes(self.set_name or ""))
        except ERRORS as exc:
            self.message.object = _error(f"Not exported: {exc}")
            raise

    def import_upload(self) -> None:
        """Store the uploaded file's episodes and make them a set (checked whole before anything is stored)."""
        if not self.upload.value:
            self.message.object = _error("Choose a .npz file first.")
            return
        try:
            info = self.demos.import_bytes(self.upload.value, self.import_name.value.strip() or None,
                                           label=self.upload.filename or "the uploaded file")
        except ERRORS as exc:
            self.message.object = _error(f"Not imported: {exc}")
            return
        self.message.object = _ok(f"Imported {info.name}: {info.episodes} episodes.")
        self.refresh()
        self.set_name = info.name
        self.set_select.value = info.name
