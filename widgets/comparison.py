"""The comparison widget: one labeler answers one assignment of a labeling campaign at a time.

In a notebook::

    from workbench.preferences.labels import LabelStore
    from widgets.comparison import ComparisonWidget
    ComparisonWidget(store=LabelStore("runs"), campaign="coinrun-v1", labeler="alice")

What the labeler sees (:class:`workbench.preferences.labels.Assignment`, see :mod:`workbench.preferences.labels`):

* ``clip_pair``: the two clips side by side, looping in sync at ``fps`` (15, as Christiano et al. 2017,
  Sec. 3.1.2 / App. A.2). Each clip is sent ONCE as a sprite sheet (all frames stacked vertically in one
  image) and animated by the browser with a CSS ``steps()`` animation, so the server pushes no frames and
  both clips, started by the same style change, stay in lockstep. The 512x512 render is used when it was
  recorded (JPEG, scaled to ``display_px``); otherwise the 64x64 observations are scaled up with crisp pixels
  (``image-rendering: pixelated``, lossless PNG).
* ``text_pair``: the prompt and the two responses; ``ranking``: the prompt and K responses, each with a rank
  selector (the ranks must be a permutation of 1..K). User text is escaped; with Markdown on
  (``render_markdown``, or the campaign's ``meta["markdown"]``) it is rendered by markdown-it-py with raw
  HTML disabled, images dropped and links restricted to http(s)/mailto.

Left/right follow the assignment's ``swapped`` (True: canonical "b" on the left). The widget passes the
choice *as the labeler saw it* ("left", "right", ...; a graded-scale value negative = left better) and the
store undoes the order. Choices: left better, right better, equal, can't tell, skip (keys 1-5, or
arrow keys / = / c / s), undo (u). With ``campaign.graded_scale`` the first three become WebGPT's 7-point
scale (keys 1-7; Nakano et al. 2021, App. "Comparison interface"): "A" is the left response as shown.

Each answer is one ``LabelStore.submit`` call (one committed transaction); only after it returns is the
next assignment fetched and drawn. The buttons and keys are a small client-side component that tags every
answer with the id of the assignment on screen, so a key pressed twice before the next pair arrives is
dropped instead of labeling a pair the labeler never saw. Shortcuts are ignored while typing in the comment
box (Escape leaves it). In JupyterLab, click the widget first so the notebook does not take the keys.
"""

from __future__ import annotations

import html
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import panel as pn
import param

from widgets.choice_bar import (
    PAIR_ACTIONS,
    RANKING_ACTIONS,
    UNDO_ACTION,
    ChoiceBar,
    _buttons,
    _key_hint,
    choice_for_scale,
    graded_actions,
)
from widgets.clip_sprites import (
    _EPISODES,
    _PREFETCH,
    _SPRITES,
    CLIP_CSS,
    PREFETCH_ITEMS,
    clip_html,
    sprite_sheet,
)
from widgets.safe_text import TEXT_CSS, render_text
from workbench.episodes.clips import CLIP_FPS, clip_frames
from workbench.preferences.labels import AssignmentExpiredError


class ComparisonWidget(pn.viewable.Viewer):
    """One labeler labeling one campaign (see the module docstring)."""

    store = param.Parameter(default=None, doc="The workbench.preferences.labels.LabelStore holding the campaign.")
    campaign = param.String(default="", doc="Name of the campaign to label.")
    labeler = param.String(default="", doc="Who is labeling (the logged-in user when served with logins).")
    rollout_store = param.Parameter(default=None, doc="""
        RolloutStore the clips come from; None: the one under the label store's root.""")
    fps = param.Integer(default=CLIP_FPS, bounds=(1, 60), doc="Clip frame rate (15 as Christiano et al.).")
    display_px = param.Integer(default=320, bounds=(64, 1024), doc="Shown size of each clip, in pixels.")
    hires = param.Boolean(default=True, doc="Show the high-resolution render when it was recorded.")
    render_markdown = param.Boolean(default=None, allow_None=True, doc="""
        Render text as Markdown (raw HTML disabled); None: the campaign's meta["markdown"], else plain text.""")

    def __init__(self, **params):
        super().__init__(**params)
        self.assignment = None              # the Assignment on screen
        self.campaign_info = None
        self.last_label_id: int | None = None
        self.last_view_s = 0.0              # time to build the last view (benchmarks)
        self.progress: dict = {}            # the labeler's own LabelStore.progress
        self._episodes: OrderedDict[tuple[str, bool], Any] = OrderedDict()
        self._rollouts = None

        self.header = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-label-header"])
        self.guidelines = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-guidelines"])
        self.guidelines_card = pn.Card(self.guidelines, title="Guidelines", collapsed=True,
                                       sizing_mode="stretch_width", visible=False)
        self.content = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-label-content"])
        self.rank_selects: list[pn.widgets.Select] = []
        self.ranking_box = pn.Column(sizing_mode="stretch_width", visible=False)
        self.flags = pn.widgets.CheckButtonGroup(label="Flags", options=[], value=[], visible=False,
                                                 css_classes=["wb-flags"])
        self.comment = pn.widgets.TextAreaInput(placeholder="Comment (optional; Esc leaves the box)",
                                                max_length=4000, rows=2, sizing_mode="stretch_width",
                                                css_classes=["wb-comment"])
        self.bar = ChoiceBar(css_classes=["wb-choices"], sizing_mode="stretch_width")
        self.bar.on_msg(self._on_bar_msg)
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["wb-label-message"])
        self._layout = pn.Column(self.header, self.guidelines_card, self.content, self.ranking_box, self.flags,
                                 self.comment, self.bar, self.message, sizing_mode="stretch_width")
        self.load()

    # ---- store access --------------------------------------------------------------------------------

    @property
    def rollouts(self):
        if self.rollout_store is not None:
            return self.rollout_store
        if self._rollouts is None:
            from workbench.episodes.rollouts import RolloutStore

            self._rollouts = RolloutStore(getattr(self.store, "root", None))
        return self._rollouts

    @param.depends("store", "campaign", "labeler", watch=True)
    def load(self) -> None:
        """(Re)read the campaign and show this labeler's current (or next) assignment."""
        self.assignment, self.campaign_info, self.last_label_id = None, None, None
        if self.store is None or not self.campaign:
            self._show_idle("Choose a campaign.")
            return
        if not self.labeler.strip():
            self._show_idle("Enter your labeler name to start.")
            return
        try:
            self.campaign_info = self.store.get_campaign(self.campaign)
        except (ValueError, KeyError) as e:
            self._show_idle(f"Cannot open campaign: {e}")
            return
        flags = list(self.campaign_info.flags)
        self.flags.param.update(options=flags, value=[], visible=bool(flags))
        guidelines = self.campaign_info.guidelines_md or ""
        self.guidelines.object = render_text(guidelines, markdown=True) if guidelines.strip() else ""
        self.guidelines_card.visible = bool(guidelines.strip())
        self._next()

    def _markdown_on(self) -> bool:
        if self.render_markdown is not None:
            return self.render_markdown
        meta = getattr(self.campaign_info, "meta", None) or {}
        return bool(meta.get("markdown", False))

    # ---- answering ------------------------------------------------------------------------------------

    def submit(self, choice: str, *, scale: int | None = None, ranking: list[int] | None = None) -> int:
        """Store the answer to the assignment on screen (as shown: "left" = the left item), then show the
        next one. ``scale``: -3..3 as shown (graded campaigns). ``ranking`` (with ``choice="ranked"`` in a
        ranking campaign): the rank (1 = best) given to each response in the order SHOWN; default: the rank
        selectors on screen. Returns the label id. A store error (e.g. the assignment timed out and went to
        someone else) is raised as ValueError and nothing is stored."""
        if self.assignment is None:
            raise ValueError("there is no assignment on screen to answer")
        kind = self.campaign_info.kind
        assignment = self.assignment
        store_ranking = None
        if kind == "ranking" and choice == "ranked":
            store_ranking = self._ranking_for_store(ranking if ranking is not None else self.shown_ranks())
        elif ranking is not None:
            raise ValueError('ranking= goes with choice="ranked" in a ranking campaign')
        if scale is not None:
            if not self.campaign_info.graded_scale:
                raise ValueError(f"campaign {self.campaign!r} has no graded scale")
            if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or not -3 <= scale <= 3:
                raise ValueError(f"scale must be an integer in -3..3, got {scale!r}")
            scale = int(scale)
            implied = choice_for_scale(scale)
            if choice != implied:
                raise ValueError(f"scale {scale} means {implied!r}, not {choice!r}")
        label_id = self.store.submit(assignment.id, self.labeler, choice, scale=scale,
                                     ranking=store_ranking, flags=tuple(self.flags.value),
                                     comment=(self.comment.value_input or self.comment.value or "").strip())
        # Committed: only now move on.
        self.last_label_id = label_id
        took = time.time() - assignment.started_at
        self.comment.param.update(value="", value_input="")
        self.flags.value = []
        self._next(message=f"Saved ({took:.1f} s). ")
        return label_id

    def _ranking_for_store(self, shown_ranks: list[int]) -> list[int]:
        """Ranks given to the responses in the order shown -> the store's ranking argument: the shown
        positions, best first (the store maps them through the assignment's display_order)."""
        k = len(self.assignment.payload["responses"])
        if len(shown_ranks) != k or any(r is None for r in shown_ranks):
            raise ValueError(f"give every one of the {k} responses a rank (1 = best) before submitting")
        ranks = [int(r) for r in shown_ranks]
        if sorted(ranks) != list(range(1, k + 1)):
            raise ValueError(f"the ranks must be 1..{k}, each used once; got {ranks}")
        return sorted(range(k), key=lambda i: ranks[i])

    def shown_ranks(self) -> list[int]:
        """The ranks currently chosen in the selectors (None where not chosen yet)."""
        return [s.value for s in self.rank_selects]

    def undo(self) -> bool:
        """Delete this labeler's last label in the campaign (it comes back to be labeled again)."""
        if self.campaign_info is None:
            return False
        undone = self.store.undo_last(self.campaign, self.labeler)
        self._next(message="Undid your last label. " if undone else "Nothing to undo. ")
        return undone

    def _on_bar_msg(self, event) -> None:
        data = event.data if hasattr(event, "data") else event
        self.handle_action(data.get("action"), data.get("assignment_id"))

    def handle_action(self, action: str, assignment_id: int | None) -> None:
        """A click or key from the page. Answers meant for an assignment that is no longer on screen (a key
        pressed twice before the next pair arrived) are dropped."""
        current = self.assignment.id if self.assignment is not None else -1
        if assignment_id != current:
            return
        try:
            if action == "undo":
                self.undo()
            elif action.startswith("scale:"):
                scale = int(action.split(":", 1)[1])
                self.submit(choice_for_scale(scale), scale=scale)
            elif action in ("left", "right", "equal", "cant_tell", "skip", "ranked"):
                self.submit(action)
            else:
                raise ValueError(f"unknown action {action!r}")
        except AssignmentExpiredError as e:  # nothing stored; show what there is to do now
            self._next()
            self.message.object = f'<span style="color:#b00020">{html.escape(str(e))}</span>'
        except ValueError as e:
            self.message.object = f'<span style="color:#b00020">{html.escape(str(e))}</span>'

    # ---- drawing ---------------------------------------------------------------------------------------

    def _show_idle(self, text: str) -> None:
        self.assignment = None
        with pn.io.hold():
            self.header.object = self._header_html()
            self.content.object = f'<div class="wb-idle">{html.escape(text)}</div>'
            self.ranking_box.visible = False
            self.bar.param.update(buttons=[], assignment_id=-1, disabled_actions=[])
            self.message.object = ""

    def _next(self, message: str = "") -> None:
        t0 = time.perf_counter()
        # One websocket message for the whole view: the page never shows a new pair while its buttons still
        # carry the previous assignment's id (a key pressed then would be dropped as stale).
        with pn.io.hold():
            self.assignment = self.store.next_item(self.campaign, self.labeler)
            self.render()
            self.message.object = f'<span style="color:#2e7d32">{html.escape(message)}</span>' if message else ""
        self.last_view_s = time.perf_counter() - t0
        self.prefetch_upcoming()

    def _header_html(self) -> str:
        who = html.escape(self.labeler or "(no labeler)")
        parts = [f'Labeler: <b class="wb-labeler">{who}</b>']
        if self.campaign_info is not None:
            parts.append(f"Campaign: <b>{html.escape(self.campaign)}</b>")
            progress = self.store.progress(self.campaign, self.labeler)
            self.progress = progress
            # assigned = what this labeler labeled plus what can still be handed to them
            total = progress["labeled"] + progress.get("available", progress["assigned"])
            parts.append(f'<span class="wb-progress">Labeled {progress["labeled"]} / {total} assigned</span>')
        return " &nbsp;·&nbsp; ".join(parts)

    def render(self) -> None:
        """Draw the assignment on screen (or say there is none left)."""
        self.header.object = self._header_html()
        a = self.assignment
        undo = {"action": UNDO_ACTION[0], "label": f"{UNDO_ACTION[1]} [{_key_hint(UNDO_ACTION[2])}]",
                "keys": list(UNDO_ACTION[2])}
        if a is None:
            self.content.object = ('<div class="wb-done">Nothing left for you to label in this campaign. '
                                   'Thank you!</div>')
            self.ranking_box.visible = False
            self.bar.param.update(buttons=[undo], assignment_id=-1, disabled_actions=[])
            return
        kind = self.campaign_info.kind
        if kind == "clip_pair":
            self.content.object = self.clip_pair_html(a)
            actions = graded_actions() if self.campaign_info.graded_scale else PAIR_ACTIONS
        elif kind == "text_pair":
            self.content.object = self.text_pair_html(a)
            actions = graded_actions() if self.campaign_info.graded_scale else PAIR_ACTIONS
        elif kind == "ranking":
            self.content.object = self.ranking_html(a)
            actions = RANKING_ACTIONS
        else:
            raise ValueError(f"unknown campaign kind {kind!r}")
        self._build_rank_selects(a if kind == "ranking" else None)
        self.bar.param.update(buttons=_buttons(actions) + [undo], assignment_id=int(a.id), disabled_actions=[])

    def shown_pair(self, assignment=None) -> tuple[Any, Any]:
        """(left, right) payload entries as shown."""
        a = assignment or self.assignment
        left, right = a.payload["a"], a.payload["b"]
        return (right, left) if a.swapped else (left, right)

    def clip_pair_html(self, assignment) -> str:
        left, right = self.shown_pair(assignment)
        boxes = []
        for side, ref, number in (("left", left, "1"), ("right", right, "2")):
            uri, pixelated, length = self._clip_sprite(ref)
            title = f"{side.capitalize()} [{number}]"
            boxes.append(f'<div class="wb-clip-box"><div class="wb-side">{title}</div>'
                         + clip_html(uri, length, fps=self.fps, display_px=self.display_px,
                                     pixelated=pixelated, side=side) + "</div>")
        return CLIP_CSS + TEXT_CSS + f'<div class="wb-pair" style="justify-content:center">{"".join(boxes)}</div>'

    def text_pair_html(self, assignment) -> str:
        markdown = self._markdown_on()
        left, right = self.shown_pair(assignment)
        prompt = assignment.payload.get("prompt", "")
        out = [TEXT_CSS]
        if prompt:
            out.append(f'<div class="wb-box wb-prompt"><div class="wb-side">Prompt</div>'
                       f'{render_text(prompt, markdown)}</div>')
        out.append('<div class="wb-pair">')
        for side, text, number in (("left", left, "1"), ("right", right, "2")):
            out.append(f'<div class="wb-box wb-{side}"><div class="wb-side">{side.capitalize()} [{number}]</div>'
                       f'{render_text(text, markdown)}</div>')
        out.append("</div>")
        return "".join(out)

    def shown_responses(self, assignment=None) -> list[str]:
        a = assignment or self.assignment
        responses = a.payload["responses"]
        order = a.display_order or list(range(len(responses)))
        return [responses[i] for i in order]

    def ranking_html(self, assignment) -> str:
        markdown = self._markdown_on()
        out = [TEXT_CSS]
        prompt = assignment.payload.get("prompt", "")
        if prompt:
            out.append(f'<div class="wb-box wb-prompt"><div class="wb-side">Prompt</div>'
                       f'{render_text(prompt, markdown)}</div>')
        for i, text in enumerate(self.shown_responses(assignment)):
            out.append(f'<div class="wb-box wb-response"><div class="wb-side">Response {i + 1}</div>'
                       f'{render_text(text, markdown)}</div>')
        return "".join(out)

    def _build_rank_selects(self, assignment) -> None:
        if assignment is None:
            self.rank_selects = []
            self.ranking_box.param.update(objects=[], visible=False)
            return
        k = len(assignment.payload["responses"])
        options = {"–": None, **{str(r): r for r in range(1, k + 1)}}
        self.rank_selects = [pn.widgets.Select(label=f"Rank of response {i + 1}", options=options, value=None,
                                               width=140, css_classes=[f"wb-rank-{i + 1}"]) for i in range(k)]
        note = pn.pane.HTML("Give each response a rank (1 = best), each rank once; then Submit ranking.")
        self.ranking_box.param.update(objects=[note, pn.Row(*self.rank_selects)], visible=True)

    def _sprite_key(self, ref: dict) -> tuple:
        root = str(getattr(self.rollouts, "root", ""))
        return (root, ref["episode_id"], int(ref["start"]), int(ref["length"]), self.hires, self.display_px)

    def prefetch_upcoming(self) -> None:
        """Queue the clips of the next items (after the one on screen) for background encoding: only for
        the high-resolution render, whose decoding is what a click would otherwise wait for."""
        if not self.hires or self.assignment is None or self.campaign_info is None:
            return
        if self.campaign_info.kind != "clip_pair":
            return
        for _, payload in self.store.items(self.campaign, after_id=self.assignment.item_id, limit=PREFETCH_ITEMS):
            for side in ("a", "b"):
                ref = payload[side]
                _PREFETCH.request(self._sprite_key(ref), self.rollouts, ref, self.hires, self.display_px)

    def _clip_sprite(self, ref: dict) -> tuple[str, bool, int]:
        key = self._sprite_key(ref)
        cached = _SPRITES.get(key)  # shared by every widget of the process: with overlap k, k labelers see it
        if cached is None:
            episode = self._episode(ref["episode_id"])
            frames = clip_frames(episode, ref, hires=self.hires)
            uri, pixelated = sprite_sheet(frames, display_px=self.display_px)
            cached = (uri, pixelated, len(frames))
            _SPRITES.put(key, cached)
        return cached

    def _episode(self, episode_id: str):
        if not self.hires:  # the 64x64 frames: shared by the process's widgets (loading one costs ~10 ms)
            key = (str(getattr(self.rollouts, "root", "")), episode_id)
            episode = _EPISODES.get(key)
            if episode is None:
                episode = self.rollouts.load(episode_id, hires=False)
                _EPISODES.put(key, episode)
            return episode
        key = (episode_id, self.hires)
        episode = self._episodes.get(key)
        if episode is None:
            episode = self.rollouts.load(episode_id, hires=self.hires)
            self._episodes[key] = episode
            while len(self._episodes) > 8:  # a hi-res reader holds an open video file: keep few
                _, old = self._episodes.popitem(last=False)
                if getattr(old, "hires", None) is not None:
                    old.hires.close()
        self._episodes.move_to_end(key)
        return episode

    def __panel__(self):
        return self._layout
