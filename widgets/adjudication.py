"""Adjudication view (admins): the items whose labelers disagree, each with every labeler's answer and,
optionally, the reward model's suggestion; the admin's decision is stored as a SEPARATE adjudicated label
(:meth:`workbench.preferences.labels.LabelStore.adjudicate`) that exports beside the raw labels.

In a notebook::

    from widgets.adjudication import AdjudicationView
    AdjudicationView(store_root="runs", admin="alice")
"""

from __future__ import annotations

import html
import os

import panel as pn
import param

from widgets.comparison import STORE_ERRORS
from workbench.preferences.labels import LabelStore


def _error(text: str) -> str:
    return f'<div style="color:#b00020;white-space:pre-wrap">{html.escape(text)}</div>'


def _answer_text(answer) -> str:
    return "ranking " + " > ".join(str(i) for i in answer) if isinstance(answer, tuple) else str(answer)


def suggestion_text(suggestion, left: str = "a", right: str = "b") -> str:
    """A model suggestion in words: which side, its probability and the members' spread."""
    side = {"a": left, "b": right}.get(suggestion.preferred, "neither")
    return (f"reward model: {side} preferred with probability {suggestion.confidence:.2f} "
            f"(members' spread ±{suggestion.disagreement:.2f})")


class AdjudicationView(pn.viewable.Viewer):
    """Disputed items of a campaign and the admin's resolution of each (see the module docstring)."""

    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True,
                                     doc="Root of the stores (labels.sqlite); None: $WORKBENCH_HOME, else ./runs.")
    admin = param.String(default="admin", doc="Who adjudicates (recorded with each decision).")
    reward_model = param.Parameter(default=None, doc="""
        A loaded reward model (workbench.preferences.reward.load_reward_model) whose suggestion the admin sees;
        None: no suggestion.""")
    rollout_store = param.Parameter(default=None, doc="The rollout store of clip items (clip reward models).")

    def __init__(self, store: LabelStore | None = None, **params):
        super().__init__(**params)
        self.store = store if store is not None else LabelStore(self.store_root)
        self.campaign = pn.widgets.Select(label="Campaign", options=[], width=260)
        self.unresolved_only = pn.widgets.Checkbox(label="Unresolved only", value=True)
        self.item = pn.widgets.Select(label="Disputed item", options={}, width=420, css_classes=["wb-adj-item"])
        self.detail = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-adj-detail"])
        self.ranking = pn.widgets.TextInput(label="Ranking (indices best first, e.g. 2,0,1)", visible=False)
        self.comment = pn.widgets.TextInput(label="Note (why)", width=420)
        self.buttons = {p: pn.widgets.Button(label=f"Resolve: {p}", width=130, css_classes=[f"wb-adj-{p}"])
                        for p in ("a", "b", "equal")}
        self.rank_button = pn.widgets.Button(label="Resolve: ranking", visible=False, width=150)
        self.message = pn.pane.HTML("", css_classes=["wb-adj-message"])
        for preferred, button in self.buttons.items():
            button.on_click(lambda _e, p=preferred: self._resolve(p))
        self.rank_button.on_click(lambda _e: self._resolve(None))
        self.campaign.param.watch(lambda _e: self.refresh_items(), "value")
        self.unresolved_only.param.watch(lambda _e: self.refresh_items(), "value")
        self.item.param.watch(lambda _e: self.show_item(), "value")
        self._disputes: dict[int, object] = {}
        self._layout = pn.Column(pn.Row(self.campaign, self.unresolved_only), self.item, self.detail,
                                 pn.Row(*self.buttons.values(), self.ranking, self.rank_button), self.comment,
                                 self.message, sizing_mode="stretch_width", css_classes=["wb-adjudication"])
        self.refresh_campaigns()

    def refresh_campaigns(self) -> None:
        try:
            names = [c.name for c in self.store.list_campaigns()]
        except STORE_ERRORS as e:
            self.message.object = _error(f"Could not read the label store ({e}).")
            return
        current = self.campaign.value
        self.campaign.options = names
        self.campaign.value = current if current in names else (names[0] if names else None)
        self.refresh_items()

    def refresh_items(self) -> None:
        name = self.campaign.value
        if not name:
            self.item.options, self._disputes = {}, {}
            self.detail.object = "<p>No campaign yet.</p>"
            return
        disputes = self.store.disagreements(name, include_resolved=not self.unresolved_only.value)
        self._disputes = {d.item_id: d for d in disputes}
        current = self.item.value
        self.item.options = {f"item {d.item_id}: {', '.join(f'{k}={_answer_text(v)}' for k, v in d.answers.items())}"
                             + (" (resolved)" if d.adjudication else ""): d.item_id for d in disputes}
        self.item.value = current if current in self._disputes else (disputes[0].item_id if disputes else None)
        ranking = self.store.get_campaign(name).kind == "ranking"
        for button in self.buttons.values():
            button.visible = not ranking
        self.ranking.visible = self.rank_button.visible = ranking
        self.show_item()

    def item_html(self, item_id: int) -> str:
        d = self._disputes[item_id]
        p = d.payload
        parts = [f"<p><b>Prompt</b></p><pre style='white-space:pre-wrap'>{html.escape(str(p.get('prompt', '')))}</pre>"]
        if "responses" in p:
            parts += [f"<p><b>{i}</b>: {html.escape(r)}</p>" for i, r in enumerate(p["responses"])]
        else:
            parts += [f"<p><b>{k}</b>: {html.escape(str(p[k]))}</p>" for k in ("a", "b")]
        rows = "".join(f"<li>{html.escape(k)}: {html.escape(_answer_text(v))}</li>" for k, v in d.answers.items())
        parts.append(f"<p><b>Labelers</b></p><ul>{rows}</ul>")
        if d.adjudication is not None:
            a = d.adjudication
            parts.append(f"<p><b>Adjudicated</b> by {html.escape(a.admin)}: {html.escape(a.preferred)}"
                         + (f" {a.ranking}" if a.ranking else "") + f" — {html.escape(a.comment)}</p>")
        if self.reward_model is not None and "responses" not in p:
            try:
                from workbench.preferences.reward.suggest import suggest

                [s] = suggest(self.reward_model, [p], rollout_store=self.rollout_store)
                parts.append(f"<p class='wb-adj-suggestion'>{html.escape(suggestion_text(s))}</p>")
            except (ValueError, RuntimeError) as e:
                parts.append(_error(f"No model suggestion: {e}"))
        return "".join(parts)

    def show_item(self) -> None:
        item_id = self.item.value
        self.detail.object = self.item_html(item_id) if item_id in self._disputes else "<p>No disputed items.</p>"

    def resolve(self, item_id: int, preferred: str | None, *, ranking: list[int] | None = None,
                comment: str = "") -> int:
        """Store the decision (a separate adjudicated label); returns its id."""
        return self.store.adjudicate(self.campaign.value, item_id, self.admin, preferred, ranking=ranking,
                                     comment=comment)

    def _resolve(self, preferred: str | None) -> None:
        item_id = self.item.value
        if item_id not in self._disputes:
            self.message.object = _error("Choose a disputed item first.")
            return
        try:
            ranking = None
            if preferred is None:
                ranking = [int(x) for x in self.ranking.value.replace(" ", "").split(",") if x]
            self.resolve(item_id, preferred, ranking=ranking, comment=self.comment.value or "")
        except ValueError as e:
            self.message.object = _error(f"Not stored: {e}")
            return
        except STORE_ERRORS as e:
            self.message.object = _error(f"Not stored, the label store is unavailable ({e}); try again.")
            return
        self.message.object = f"<p style='color:#2e7d32'>Item {item_id} adjudicated.</p>"
        self.comment.value = ""
        self.refresh_items()

    def __panel__(self):
        return self._layout
