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

import base64
import html
import io
import queue
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import panel as pn
import param

from workbench.episodes.clips import CLIP_FPS, clip_frames
from workbench.preferences.labels import GRADED_SCALE, AssignmentExpiredError

SAFE_LINK_SCHEMES = ("http:", "https:", "mailto:")

# action -> (button text, keys). Keys are KeyboardEvent.key values; the first is shown on the button.
PAIR_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "left": ("Left better", ("1", "ArrowLeft")),
    "right": ("Right better", ("2", "ArrowRight")),
    "equal": ("Equal", ("3", "=")),
    "cant_tell": ("Can't tell", ("4", "c")),
    "skip": ("Skip", ("5", "s")),
}
GRADED_LABELS = GRADED_SCALE  # WebGPT's 7 points; "A" = the left item as shown
RANKING_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ranked": ("Submit ranking", ("Enter",)),
    "cant_tell": ("Can't tell", ("c",)),
    "skip": ("Skip", ("s",)),
}
UNDO_ACTION = ("undo", "Undo last", ("u",))
KEY_NAMES = {"ArrowLeft": "←", "ArrowRight": "→", "Enter": "Enter"}


# ---- safe text ----------------------------------------------------------------------------------

_MARKDOWN = None


def safe_link(url: str) -> bool:
    """Links allowed in rendered Markdown: http(s), mailto, and relative ones (no scheme at all)."""
    url = "".join(url.split()).lower()  # browsers ignore whitespace/control characters in schemes
    return url.startswith(SAFE_LINK_SCHEMES) or ":" not in url.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _markdown():
    global _MARKDOWN
    if _MARKDOWN is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False})  # raw HTML in the source is shown escaped
        md.disable("image")  # no remote images (they would load from arbitrary hosts)
        md.validateLink = safe_link

        def link_open(renderer, tokens, idx, options, env):
            tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
            tokens[idx].attrSet("target", "_blank")
            return renderer.renderToken(tokens, idx, options, env)

        md.add_render_rule("link_open", link_open)
        _MARKDOWN = md
    return _MARKDOWN


def render_markdown(text: str) -> str:
    """Markdown -> HTML with raw HTML escaped, no images, and only http(s)/mailto/relative links."""
    return _markdown().render(str(text))


def render_text(text: str, markdown: bool = False) -> str:
    """User text as HTML: escaped plain text (line breaks kept), or safe Markdown."""
    if markdown:
        return f'<div class="wb-md">{render_markdown(text)}</div>'
    return f'<div class="wb-plain">{html.escape(str(text))}</div>'


# ---- clips ----------------------------------------------------------------------------------------

def sprite_sheet(frames: np.ndarray, *, display_px: int) -> tuple[str, bool]:
    """(data URI, pixelated) of the frames stacked vertically in one image.

    Small frames (the 64x64 observations) are kept exact (PNG) and scaled up by the browser with crisp
    pixels; large renders are scaled to ``display_px`` here and sent as JPEG (a 25-frame 512x512 PNG
    would be megabytes)."""
    from PIL import Image

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 with T >= 1, got shape {frames.shape}")
    length, height, width, _ = frames.shape
    buffer = io.BytesIO()
    if max(height, width) <= 128:
        Image.fromarray(frames.reshape(length * height, width, 3)).save(buffer, format="PNG", compress_level=1)
        mime, pixelated = "image/png", True
    else:
        # Shrink by an integer factor (a fast box filter) to about display_px; the browser scales the rest.
        factor = max(1, round(width / display_px))
        h, w = height - height % factor, width - width % factor
        sheet = Image.fromarray(np.ascontiguousarray(frames[:, :h, :w]).reshape(length * h, w, 3))
        if factor > 1:
            sheet = sheet.reduce(factor)
        sheet.save(buffer, format="JPEG", quality=88)
        mime, pixelated = "image/jpeg", False
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}", pixelated


def clip_html(uri: str, length: int, *, fps: int, display_px: int, pixelated: bool, side: str) -> str:
    """A box showing one clip as a CSS sprite animation (see the module docstring)."""
    style = [f"width:{display_px}px", f"height:{display_px}px", f"background-image:url('{uri}')",
             f"background-size:{display_px}px {display_px * length}px", "background-repeat:no-repeat",
             "background-position:0 0"]
    if pixelated:
        style.append("image-rendering:pixelated")
    if length > 1:
        # steps(L, jump-none) from 0% to 100%: L positions 0, 1/(L-1), ..., 1 = frames 0..L-1, each 1/fps s.
        style.append(f"animation:wb-clip-play {length / fps:.6g}s steps({length}, jump-none) infinite")
    return f'<div class="wb-clip wb-clip-{side}" style="{";".join(style)}"></div>'


CLIP_CSS = ("<style>@keyframes wb-clip-play{from{background-position:0 0}to{background-position:0 100%}}"
            ".wb-clip{border:1px solid #ccc;border-radius:4px}</style>")
TEXT_CSS = ("<style>.wb-plain{white-space:pre-wrap;overflow-wrap:anywhere}"
            ".wb-box{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:4px;background:#fff}"
            ".wb-side{font-weight:600;color:#555;margin-bottom:4px}.wb-prompt{background:#f6f6f6}"
            ".wb-pair{display:flex;gap:12px;align-items:stretch}.wb-pair>.wb-box{flex:1 1 0;min-width:0}</style>")


class _SharedLru:
    """A small thread-safe LRU cache shared by the widgets of one server process (sprites are immutable:
    an episode's frames never change once saved)."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)


_SPRITES = _SharedLru(256)  # about 10-300 KB each


class _SpritePrefetcher:
    """One background thread per process that encodes the sprite sheets of the clips labelers are about to
    see (the next items in the queue, which hands items out in id order), so a click finds them ready.
    Decoding 2 x 25 frames of the 512x512 render costs a few hundred ms; a 64x64 sheet costs ~1 ms and is
    never prefetched."""

    def __init__(self, max_episodes: int = 4):
        self._queue: queue.Queue = queue.Queue()
        self._pending: set = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._episodes: OrderedDict = OrderedDict()  # the worker's own readers (HiresFrames is not thread-safe)
        self._max_episodes = max_episodes

    def request(self, key: tuple, rollouts, ref: dict, hires: bool, display_px: int) -> None:
        with self._lock:
            if key in self._pending or _SPRITES.get(key) is not None:
                return
            self._pending.add(key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="clip-sprite-prefetch", daemon=True)
                self._thread.start()
        self._queue.put((key, rollouts, ref, hires, display_px))

    def _episode(self, rollouts, episode_id: str, hires: bool):
        key = (str(getattr(rollouts, "root", "")), episode_id, hires)
        episode = self._episodes.get(key)
        if episode is None:
            episode = self._episodes[key] = rollouts.load(episode_id, hires=hires)
            while len(self._episodes) > self._max_episodes:
                _, old = self._episodes.popitem(last=False)
                if getattr(old, "hires", None) is not None:
                    old.hires.close()
        self._episodes.move_to_end(key)
        return episode

    def _run(self) -> None:
        while True:
            key, rollouts, ref, hires, display_px = self._queue.get()
            try:
                if _SPRITES.get(key) is None:
                    frames = clip_frames(self._episode(rollouts, ref["episode_id"], hires), ref, hires=hires)
                    uri, pixelated = sprite_sheet(frames, display_px=display_px)
                    _SPRITES.put(key, (uri, pixelated, len(frames)))
            except Exception:  # a prefetch is only a hint: the click path renders (and reports) it anyway
                pass
            finally:
                with self._lock:
                    self._pending.discard(key)


_PREFETCH = _SpritePrefetcher()
PREFETCH_ITEMS = 12  # items ahead of the one on screen whose clips are encoded in the background
_EPISODES = _SharedLru(64)  # low-resolution episodes (12 KB per step)


# ---- the keyboard/button bar (client side) ---------------------------------------------------------

class ChoiceBar(pn.custom.JSComponent):
    """Buttons with their shortcuts; a click or a key sends ``{"action", "assignment_id"}`` to Python.

    The keydown listener is on the document, skips events from text fields, selects and editable elements
    (and repeats / modifier combinations), and is removed when the component is."""

    buttons = param.List(default=[], doc="[{'action': str, 'label': str, 'keys': [str, ...]}, ...]")
    assignment_id = param.Integer(default=-1, doc="The assignment on screen (-1: none).")
    disabled_actions = param.List(default=[], doc="Actions whose buttons are disabled.")

    _esm = """
function isTyping(e) {
  const t = (e.composedPath && e.composedPath()[0]) || e.target;
  if (!t || !t.tagName) return false;
  const tag = t.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select" || t.isContentEditable) return true;
  if (tag === "input") {
    const type = (t.type || "text").toLowerCase();
    return !["checkbox", "radio", "button", "submit", "reset", "range"].includes(type);
  }
  return false;
}

export function render({ model, el }) {
  const bar = document.createElement("div");
  bar.className = "wb-choice-bar";
  bar.style.display = "flex";
  bar.style.flexWrap = "wrap";
  bar.style.gap = "6px";
  el.setAttribute("data-lm-suppress-shortcuts", "true");

  function send(action) {
    model.send_msg({ action: action, assignment_id: model.assignment_id });
  }
  function draw() {
    bar.replaceChildren();
    for (const b of model.buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "wb-choice wb-choice-" + b.action;
      button.dataset.action = b.action;
      button.textContent = b.label;  // text, never HTML
      button.disabled = model.disabled_actions.includes(b.action);
      button.style.padding = "6px 12px";
      button.style.fontSize = "14px";
      button.style.cursor = "pointer";
      button.addEventListener("click", () => send(b.action));
      bar.appendChild(button);
    }
  }
  function onKey(e) {
    const path = (e.composedPath && e.composedPath()) || [];
    if (e.key === "Escape" && isTyping(e) && path[0] && path[0].blur) { path[0].blur(); return; }
    if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || isTyping(e)) return;
    for (const b of model.buttons) {
      if (b.keys.includes(e.key) && !model.disabled_actions.includes(b.action)) {
        e.preventDefault();
        e.stopPropagation();
        send(b.action);
        return;
      }
    }
  }
  document.addEventListener("keydown", onKey);
  model.on("remove", () => document.removeEventListener("keydown", onKey));
  model.on(["buttons", "disabled_actions"], draw);
  draw();
  return bar;
}
"""


def _key_hint(keys: tuple[str, ...]) -> str:
    return " / ".join(KEY_NAMES.get(k, k) for k in keys)


def _buttons(actions: dict[str, tuple[str, tuple[str, ...]]]) -> list[dict]:
    return [{"action": a, "label": f"{text} [{_key_hint(keys)}]", "keys": list(keys)}
            for a, (text, keys) in actions.items()]


def graded_actions() -> dict[str, tuple[str, tuple[str, ...]]]:
    actions = {f"scale:{value}": (label, (str(i + 1),))
               for i, (value, label) in enumerate(zip(range(-3, 4), GRADED_LABELS))}
    actions["cant_tell"] = PAIR_ACTIONS["cant_tell"][0], ("c",)
    actions["skip"] = PAIR_ACTIONS["skip"][0], ("s",)
    return actions


def choice_for_scale(scale: int) -> str:
    """The choice implied by a graded answer as shown (negative = left better)."""
    return "left" if scale < 0 else "right" if scale > 0 else "equal"


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
