"""Rollout viewer: play, scrub and compare recorded episodes (:class:`workbench.episodes.rollouts.Episode`).

In a notebook::

    from widgets.rollout_viewer import RolloutViewer, RolloutComparison
    RolloutViewer(episode_id="ep-coinrun-...", store_root="runs")     # or RolloutViewer(episode=ep)
    RolloutComparison(left=ep_a, right=ep_b)                           # two episodes played in sync

What it shows: the frame, large and with crisp pixels (the agent's 64x64 view scaled up by the browser
with ``image-rendering: pixelated``, or the game's 512x512 render when it was recorded: the "Hi-res"
toggle); a player (play/pause, step, first/last, reverse), playback speed (fps), loop, and a scrub
slider; plotly time series of the value estimate, reward, the chosen action's probability, the policy's
entropy (and the GAE advantage when there are value estimates) with a red cursor at the shown step;
the action distribution at the shown step as bars named by procgen's button combinations; buttons that
jump to the largest and smallest advantage and to the previous/next reward event; downloads of the
episode as MP4 or GIF with or without overlays (:mod:`workbench.episodes.export`).

Why it is fast (the issue asks < 1 s to the first frame of a 1,000-step episode and < 50 ms of server
time per scrubbed frame; benchmarks/bench_rollout_viewer.py measures both):

* nothing is decoded up front: the shown frame alone is read (hi-res frames through the store's lazy
  :class:`~workbench.episodes.rollouts.HiresFrames`) and encoded as a PNG at low compression (a small cache
  keeps recently shown frames, so a loop replays without re-encoding);
* the 64x64 view is sent at 64x64 (a few KB) and enlarged by the browser, not on the server;
* the time-series figure is built once per episode; a frame change moves the cursor with a plotly
  ``relayout`` of the one shape (a message of a few bytes), never re-sending the series;
* the readout and the action bars are one pane of a few lines of HTML.

The science (advantages, entropy, reward events) comes from the Episode; this module only shows it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import OrderedDict

import numpy as np
import panel as pn
import param
from PIL import Image

from workbench.episodes import export as rollout_export
from workbench.episodes.rollouts import ACTION_NAMES, HIRES_FPS, Episode, RolloutStore

PNG_COMPRESS_LEVEL = 1   # zlib level 1: much faster than the default 6, files somewhat larger
JPEG_QUALITY = 90        # for the hi-res render only (already lossy H.264): ~1 ms and ~30 KB vs ~20 ms, ~200 KB as PNG
IMAGE_FORMATS = ("auto", "png", "jpeg")
FRAME_CACHE_FRAMES = 120  # encoded frames kept for replays (hi-res JPEGs ~30-60 KB, PNGs up to ~400 KB)
SERIES_COLOURS = {"value": "#1f77b4", "reward": "#ff7f0e", "chosen_prob": "#2ca02c", "entropy": "#9467bd",
                  "advantage": "#8c564b"}
CURSOR_COLOUR = "#d62728"

# Inside the step pane's own HTML (a <style> in its shadow root): a stylesheets= parameter would be
# re-sent as new CSS models on every update.
_STEP_CSS = """<style>
.wb-bars { font: 12px monospace; }
.wb-bars .row { display: flex; align-items: center; height: 16px; }
.wb-bars .name { width: 92px; text-align: right; padding-right: 6px; white-space: nowrap; }
.wb-bars .track { flex: 1; background: #eee; height: 11px; position: relative; }
.wb-bars .bar { background: #7aa6d6; height: 11px; }
.wb-bars .row.chosen .bar { background: #d62728; }
.wb-bars .row.chosen .name { font-weight: bold; }
.wb-bars .p { width: 44px; text-align: right; }
.wb-readout { font: 13px monospace; white-space: pre; margin-bottom: 8px; }
</style>"""


def png_bytes(frame: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """An (H, W, 3) uint8 frame as PNG bytes (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def jpeg_bytes(frame: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An (H, W, 3) uint8 frame as JPEG bytes (4:4:4, so thin coloured edges keep their colour)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def _finite(x) -> list:
    """A float array as a JSON-able list, NaN/inf -> None (gaps in plotly)."""
    x = np.asarray(x, dtype=np.float64)
    return [float(v) if np.isfinite(v) else None for v in x]


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def action_bars_html(probs: np.ndarray, chosen: int) -> str:
    """The action distribution as horizontal bars (procgen action names), the chosen action highlighted."""
    rows = []
    for k, p in enumerate(np.asarray(probs, dtype=np.float64)):
        name = ACTION_NAMES[k] if k < len(ACTION_NAMES) else f"#{k}"
        cls = "row chosen" if k == chosen else "row"
        rows.append(f'<div class="{cls}"><span class="name">{html.escape(name)}</span><div class="track">'
                    f'<div class="bar" style="width:{100 * min(max(p, 0.0), 1.0):.1f}%"></div></div>'
                    f'<span class="p">{p:.3f}</span></div>')
    return '<div class="wb-bars">' + "".join(rows) + "</div>"


def _add_playback_controls(view, filename: str) -> None:
    """The controls RolloutViewer and RolloutComparison share: hi-res toggle, speed, loop, overlays, and the
    MP4/GIF downloads of ``view.export_bytes`` (named ``<filename>.mp4`` / ``.gif``)."""
    view.hires_toggle = pn.widgets.Toggle.from_param(view.param.hires, label="Hi-res", width=80)
    view.fps_slider = pn.widgets.IntSlider.from_param(view.param.fps, label="Speed (fps)", width=160)
    view.loop_box = pn.widgets.Checkbox.from_param(view.param.loop, label="Loop", width=60)
    view.overlays_box = pn.widgets.Checkbox(label="Overlays", value=True, width=80)
    for fmt in ("mp4", "gif"):
        download = pn.widgets.FileDownload(callback=lambda fmt=fmt: io.BytesIO(view.export_bytes(fmt)),
                                           filename=f"{filename}.{fmt}", label=fmt.upper(), width=90,
                                           css_classes=[f"wb-export-{fmt}"])
        setattr(view, f"{fmt}_download", download)


class RolloutViewer(pn.viewable.Viewer):
    """One recorded episode: frame, player, time series with a cursor, action bars, jumps and export.

    Give ``episode`` (an :class:`~workbench.episodes.rollouts.Episode`) or ``episode_id`` (+ ``store_root``).
    ``frame`` is the shown step; set it from code to move everything (image, cursor, bars, readout).
    """

    episode = param.ClassSelector(class_=Episode, default=None, allow_None=True, doc="""
        The episode shown (loaded from episode_id when that is given instead).""")
    episode_id = param.String(default=None, allow_None=True, doc="""
        Id of an episode in the rollout store at store_root (loads it, with its hi-res reader).""")
    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    frame = param.Integer(default=0, bounds=(0, None), doc="The shown step (0 .. length - 1).")
    hires = param.Boolean(default=True, doc="""
        Show the 512x512 render when the episode has one (else the agent's 64x64 view).""")
    fps = param.Integer(default=HIRES_FPS, bounds=(1, 60), doc="Playback speed in frames per second.")
    loop = param.Boolean(default=True, doc="Start again from the first frame at the end.")
    display_px = param.Integer(default=512, bounds=(64, 2048), doc="""
        Side of the shown frame in screen pixels (multiples of 64 keep the 64x64 pixels square).""")
    image_format = param.Selector(default="auto", objects=list(IMAGE_FORMATS), doc="""
        How frames travel to the browser: "auto" = PNG for the 64x64 view (lossless, a few KB) and JPEG
        for the hi-res render (which is H.264 already; ~20x cheaper to encode than a 512x512 PNG).""")
    controls = param.Boolean(default=True, doc="""
        Show this viewer's own player (False when a RolloutComparison drives it).""")
    label = param.String(default="", doc="A title shown above the frame (e.g. the checkpoint).")
    message = param.String(default="", doc="The last note from a jump or export (read-only).")

    def __init__(self, **params):
        if params.get("episode") is None and params.get("episode_id"):
            params["episode"] = RolloutStore(params.get("store_root")).load(params["episode_id"], hires=True)
        super().__init__(**params)
        if self.episode is None:
            raise ValueError("RolloutViewer needs an episode: pass episode=Episode(...) or episode_id= (with "
                             "store_root=) of a recorded one (RolloutStore(root).list() lists them)")
        self._image_cache: OrderedDict[tuple[int, bool], str] = OrderedDict()
        self._syncing = False
        self._build_widgets()
        self._load_episode()

    # ---- layout -------------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        px = self.display_px
        self.title_pane = pn.pane.HTML("", width=px, margin=(0, 5))
        self.image = pn.pane.HTML("", width=px, height=px, margin=(5, 5), css_classes=["wb-frame"])
        self.player = pn.widgets.Player(start=0, end=1, value=0, interval=self._interval(), loop_policy="loop",
                                        show_loop_controls=False, width=px, css_classes=["wb-player"],
                                        visible_buttons=["first", "previous", "reverse", "pause", "play", "next",
                                                         "last"])
        self.player.param.watch(self._on_player, "value")
        # The readout (step, action, reward, value, advantage, entropy) above the action bars, in one pane.
        self.step_pane = pn.pane.HTML("", css_classes=["wb-step"], width=340, margin=(5, 5))
        self.note = pn.pane.HTML("", css_classes=["wb-note"], width=px, margin=(0, 5))
        self.plot = pn.pane.Plotly(None, height=430, sizing_mode="stretch_width", css_classes=["wb-series"],
                                   config={"displaylogo": False, "responsive": True})
        self.plot.param.watch(self._on_plot_click, "click_data")

        def button(label, action, css):
            b = pn.widgets.Button(label=label, width=120, css_classes=[css])
            b.on_click(lambda _e: action())
            return b

        self.max_adv_button = button("Max advantage", self.jump_to_max_advantage, "wb-max-adv")
        self.min_adv_button = button("Min advantage", self.jump_to_min_advantage, "wb-min-adv")
        self.prev_reward_button = button("◀ Reward", self.previous_reward_event, "wb-prev-reward")
        self.next_reward_button = button("Reward ▶", self.next_reward_event, "wb-next-reward")
        _add_playback_controls(self, "episode")

    def _interval(self) -> int:
        return max(1, int(round(1000 / self.fps)))

    # ---- the episode ------------------------------------------------------------------------------

    @param.depends("episode_id", "store_root", watch=True)
    def _reload_from_store(self) -> None:
        if self.episode_id:
            self.episode = RolloutStore(self.store_root).load(self.episode_id, hires=True)

    @param.depends("episode", watch=True)
    def _load_episode(self) -> None:
        ep = self.episode
        if ep is None:
            raise ValueError("RolloutViewer.episode cannot be None")
        self._image_cache.clear()
        self.length = ep.length
        self.advantages = np.asarray(ep.advantages(), dtype=np.float64)
        self.reward_steps = np.asarray(ep.reward_events(), dtype=np.int64)
        self.chosen_prob = np.asarray(ep.chosen_prob, dtype=np.float64)
        self.entropy = np.asarray(ep.entropy, dtype=np.float64)
        self.returns = np.cumsum(np.asarray(ep.rewards, dtype=np.float64))
        has_values = bool(np.isfinite(ep.values).any())
        self.max_adv_button.disabled = self.min_adv_button.disabled = not np.isfinite(self.advantages).any()
        self.prev_reward_button.disabled = self.next_reward_button.disabled = len(self.reward_steps) == 0
        self.hires_toggle.disabled = ep.hires is None
        self.figure = self._build_figure(has_values)
        self.plot.object = self.figure
        stem = ep.id or f"{ep.env}-episode"
        self.mp4_download.filename = f"{stem}.mp4"
        self.gif_download.filename = f"{stem}.gif"
        self.title_pane.object = self._title_html()
        self._syncing = True  # the player's own watcher must not echo this back as a frame change
        try:
            self.player.param.update(end=max(1, self.length - 1), value=0)
        finally:
            self._syncing = False
        self.player.disabled = self.length < 2
        if self.frame != 0:
            self.frame = 0  # triggers _render_frame
        else:
            self._render_frame()

    def _title_html(self) -> str:
        ep = self.episode
        parts = [self.label] if self.label else []
        parts.append(ep.env + (f" level {ep.level_seed}" if ep.level_seed is not None else f" ({ep.levels} levels)"))
        if ep.policy == "random":
            parts.append("random policy")
        else:
            parts.append(f"run {ep.run_id}" + (f" @ {ep.checkpoint_step:,} steps" if ep.checkpoint_step is not None
                                               else ""))
        parts.append(f"return {ep.ret:.2f} in {ep.length} steps")
        return "<b>" + html.escape(" · ".join(parts)) + "</b>"

    @property
    def showing_hires(self) -> bool:
        return self.hires and self.episode.hires is not None

    def _build_figure(self, has_values: bool):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        ep = self.episode
        series = [("value", "value", _finite(ep.values), "lines"),
                  ("reward", "reward", _finite(ep.rewards), "bar"),
                  ("chosen_prob", "p(action)", _finite(self.chosen_prob), "lines"),
                  ("entropy", "entropy (nats)", _finite(self.entropy), "lines")]
        if has_values:
            series.append(("advantage", "advantage", _finite(self.advantages), "lines"))
        rows = len(series)
        fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.025)
        x = list(range(self.length))
        for i, (key, title, y, kind) in enumerate(series, start=1):
            if kind == "bar":
                trace = go.Bar(x=x, y=y, name=title, marker={"color": SERIES_COLOURS[key]})
            else:
                trace = go.Scatter(x=x, y=y, name=title, mode="lines", line={"color": SERIES_COLOURS[key], "width": 1.5})
            fig.add_trace(trace, row=i, col=1)
            fig.update_yaxes(title_text=title, row=i, col=1, title_font={"size": 11})
        fig.update_xaxes(title_text="step", row=rows, col=1)
        # The cursor: one shape spanning every subplot (the x axes are shared); frame changes move only it.
        fig.add_shape(type="line", xref="x", yref="paper", x0=self.frame, x1=self.frame, y0=0, y1=1,
                      line={"color": CURSOR_COLOUR, "width": 1.5})
        fig.update_layout(height=90 + 85 * rows, showlegend=False, margin={"l": 60, "r": 10, "t": 10, "b": 40},
                          uirevision="rollout", hovermode="x unified", bargap=0)
        self.plot.height = 90 + 85 * rows
        self.series_names = [key for key, *_ in series]
        return fig

    # ---- the shown frame ----------------------------------------------------------------------------

    def frame_image(self, t: int, hires: bool | None = None) -> tuple[str, bytes]:
        """(MIME type, encoded bytes) of step ``t`` as shown (hi-res render or the 64x64 view)."""
        hires = self.showing_hires if hires is None else (hires and self.episode.hires is not None)
        if hires:
            image = self.episode.hires.frame(t)
            if self.image_format in ("auto", "jpeg"):
                return "image/jpeg", jpeg_bytes(image)
            return "image/png", png_bytes(image)
        image = self.episode.frames[t]
        if self.image_format == "jpeg":
            return "image/jpeg", jpeg_bytes(image)
        return "image/png", png_bytes(image)

    def _frame_uri(self, t: int) -> str:
        key = (t, self.showing_hires, self.image_format)
        uri = self._image_cache.get(key)
        if uri is None:
            mime, data = self.frame_image(t)
            uri = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
            self._image_cache[key] = uri
            while len(self._image_cache) > FRAME_CACHE_FRAMES:
                self._image_cache.popitem(last=False)
        else:
            self._image_cache.move_to_end(key)
        return uri

    def _readout_html(self, t: int) -> str:
        ep = self.episode
        action = int(ep.actions[t])
        name = ACTION_NAMES[action] if 0 <= action < len(ACTION_NAMES) else f"#{action}"
        lines = [
            f"step       {t + 1} / {self.length}{'  (done)' if ep.dones[t] else ''}",
            f"action     {name}  p={_fmt(self.chosen_prob[t])}",
            f"reward     {_fmt(float(ep.rewards[t]), True)}   return so far {self.returns[t]:.3f}",
            f"value      {_fmt(float(ep.values[t]))}",
            f"advantage  {_fmt(self.advantages[t], True)}",
            f"entropy    {_fmt(self.entropy[t])} nats",
        ]
        return html.escape("\n".join(lines))

    @param.depends("frame", "hires", "image_format", watch=True)
    def _render_frame(self) -> None:
        """Everything that follows the shown step: image, cursor, bars, readout, player (minimal work)."""
        if self.frame >= self.length:
            self.frame = self.length - 1  # re-enters with a valid frame
            return
        t = self.frame
        px = self.display_px
        self.image.object = (f'<img src="{self._frame_uri(t)}" width="{px}" height="{px}" style="display:block;'
                             f'image-rendering:pixelated" alt="step {t + 1}" data-step="{t}">')
        self.move_cursor(t)
        self.step_pane.object = (_STEP_CSS + f'<div class="wb-readout">{self._readout_html(t)}</div>'
                                 + action_bars_html(self.episode.probs[t], int(self.episode.actions[t])))
        if self.player.value != t:
            self._syncing = True
            try:
                self.player.value = t
            finally:
                self._syncing = False

    def move_cursor(self, t: int) -> None:
        """Move the time-series cursor to step ``t``: a relayout of the one shape (the series stay put)."""
        self.figure.plotly_relayout({"shapes[0].x0": t, "shapes[0].x1": t})

    @property
    def cursor_x(self) -> float:
        """Where the cursor is drawn (for tests)."""
        shape = self.figure.layout.shapes[0]
        return shape.x0

    def _on_player(self, event) -> None:
        if not self._syncing:
            self.frame = min(max(int(event.new), 0), self.length - 1)

    def _on_plot_click(self, event) -> None:
        points = (event.new or {}).get("points") or []
        if points and points[0].get("x") is not None:
            self.frame = min(max(int(round(float(points[0]["x"]))), 0), self.length - 1)

    @param.depends("fps", watch=True)
    def _update_speed(self) -> None:
        self.player.interval = self._interval()

    @param.depends("loop", watch=True)
    def _update_loop(self) -> None:
        self.player.loop_policy = "loop" if self.loop else "once"

    @param.depends("display_px", watch=True)
    def _resize(self) -> None:
        self.image.param.update(width=self.display_px, height=self.display_px)
        for pane in (self.player, self.title_pane, self.note):
            pane.width = self.display_px
        self._render_frame()

    @param.depends("label", watch=True)
    def _retitle(self) -> None:
        self.title_pane.object = self._title_html()

    @param.depends("message", watch=True)
    def _show_message(self) -> None:
        self.note.object = f'<span style="color:#555">{html.escape(self.message)}</span>'

    # ---- jumps --------------------------------------------------------------------------------------

    def _jump_advantage(self, largest: bool) -> int | None:
        adv = self.advantages
        if not np.isfinite(adv).any():
            self.message = "No advantages: this episode has no value estimates (random policy)."
            return None
        t = int(np.nanargmax(adv) if largest else np.nanargmin(adv))
        self.message = f"{'Largest' if largest else 'Smallest'} advantage {adv[t]:+.3f} at step {t + 1}."
        self.frame = t
        return t

    def jump_to_max_advantage(self) -> int | None:
        """Show the step with the largest GAE advantage (None if there are no value estimates)."""
        return self._jump_advantage(True)

    def jump_to_min_advantage(self) -> int | None:
        """Show the step with the smallest GAE advantage (None if there are no value estimates)."""
        return self._jump_advantage(False)

    def next_reward_event(self) -> int | None:
        """Show the first reward event after the shown step (wrapping to the first); None if none."""
        steps = self.reward_steps
        if len(steps) == 0:
            self.message = "No reward events in this episode."
            return None
        later = steps[steps > self.frame]
        t = int(later[0] if len(later) else steps[0])
        self.message = f"Reward {float(self.episode.rewards[t]):+g} at step {t + 1}."
        self.frame = t
        return t

    def previous_reward_event(self) -> int | None:
        """Show the last reward event before the shown step (wrapping to the last); None if none."""
        steps = self.reward_steps
        if len(steps) == 0:
            self.message = "No reward events in this episode."
            return None
        earlier = steps[steps < self.frame]
        t = int(earlier[-1] if len(earlier) else steps[-1])
        self.message = f"Reward {float(self.episode.rewards[t]):+g} at step {t + 1}."
        self.frame = t
        return t

    # ---- export -------------------------------------------------------------------------------------

    def export_bytes(self, fmt: str, overlays: bool | None = None) -> bytes:
        """The episode as an MP4 or GIF file (bytes), at the viewer's speed and resolution."""
        overlays = self.overlays_box.value if overlays is None else overlays
        data = rollout_export.export_bytes(self.episode, fmt=fmt, overlays=overlays, fps=self.fps,
                                           hires=self.hires, labels=[self.label or None])
        self.message = f"Exported {fmt.upper()} ({len(data) / 1e6:.1f} MB)."
        return data

    def export(self, path, *, fmt: str | None = None, overlays: bool = True):
        """Write the episode to ``path`` (MP4 or GIF, see :func:`workbench.episodes.export.export_episode`)."""
        return rollout_export.export_episode(self.episode, path, fmt=fmt, overlays=overlays, fps=self.fps,
                                             hires=self.hires, labels=[self.label or None])

    # ---- layout -------------------------------------------------------------------------------------

    def jump_row(self) -> pn.Row:
        return pn.Row(self.min_adv_button, self.max_adv_button, self.prev_reward_button, self.next_reward_button)

    def settings_row(self) -> pn.Row:
        return pn.Row(self.hires_toggle, self.fps_slider, self.loop_box)

    def export_row(self) -> pn.Row:
        return pn.Row(pn.pane.HTML("Export:", margin=(12, 5)), self.overlays_box, self.mp4_download,
                      self.gif_download)

    def frame_column(self) -> pn.Column:
        """Title, frame and (with ``controls``) the player: the part a comparison puts side by side."""
        items = [self.title_pane, self.image]
        if self.controls:
            items.append(self.player)
        return pn.Column(*items)

    def __panel__(self):
        left = self.frame_column()
        if self.controls:
            left.extend([self.settings_row(), self.jump_row(), self.export_row()])
        else:
            left.append(self.jump_row())
        left.append(self.note)
        return pn.Column(
            pn.Row(left, self.step_pane),
            self.plot,
            sizing_mode="stretch_width",
        )


class RolloutComparison(pn.viewable.Viewer):
    """Two episodes side by side, played in sync by one player (e.g. two checkpoints on one level seed).

    ``frame`` drives both; an episode shorter than the other holds its last frame. A jump in either
    viewer (advantage, reward event) moves both to that step.
    """

    left = param.ClassSelector(class_=Episode, default=None, allow_None=True, doc="The left episode.")
    right = param.ClassSelector(class_=Episode, default=None, allow_None=True, doc="The right episode.")
    left_id = param.String(default=None, allow_None=True, doc="Id of the left episode in the store.")
    right_id = param.String(default=None, allow_None=True, doc="Id of the right episode in the store.")
    store_root = param.ClassSelector(class_=(str, os.PathLike), default=None, allow_None=True, doc="""
        Root of the run store; None means $WORKBENCH_HOME, else ./runs.""")
    frame = param.Integer(default=0, bounds=(0, None), doc="The shown step (of the longer episode).")
    hires = param.Boolean(default=True, doc="Show the 512x512 renders when both were recorded.")
    fps = param.Integer(default=HIRES_FPS, bounds=(1, 60), doc="Playback speed in frames per second.")
    loop = param.Boolean(default=True, doc="Start again from the first frame at the end.")
    display_px = param.Integer(default=384, bounds=(64, 2048), doc="Side of each shown frame in screen pixels.")

    def __init__(self, **params):
        store = None
        for side in ("left", "right"):
            if params.get(side) is None and params.get(f"{side}_id"):
                store = store or RolloutStore(params.get("store_root"))
                params[side] = store.load(params[f"{side}_id"], hires=True)
        super().__init__(**params)
        if self.left is None or self.right is None:
            raise ValueError("RolloutComparison needs two episodes: left= and right= (Episodes) or left_id= and "
                             "right_id= (with store_root=)")
        common = dict(controls=False, hires=self.hires, fps=self.fps, loop=self.loop, display_px=self.display_px)
        self.left_viewer = RolloutViewer(episode=self.left, label=self._label(self.left), **common)
        self.right_viewer = RolloutViewer(episode=self.right, label=self._label(self.right), **common)
        self._syncing = False
        self.player = pn.widgets.Player(start=0, end=1, value=0, interval=self.left_viewer._interval(),
                                        loop_policy="loop" if self.loop else "once", show_loop_controls=False,
                                        width=2 * self.display_px, css_classes=["wb-player"],
                                        visible_buttons=["first", "previous", "reverse", "pause", "play", "next",
                                                         "last"])
        self.player.param.watch(self._on_child_frame, "value")
        for viewer in (self.left_viewer, self.right_viewer):
            viewer.param.watch(self._on_child_frame, "frame")
        _add_playback_controls(self, "comparison")
        self._sync_episodes()

    @staticmethod
    def _label(ep: Episode) -> str:
        if ep.policy == "random":
            return "random policy"
        return f"{ep.run_id}" + (f" @ {ep.checkpoint_step:,}" if ep.checkpoint_step is not None else "")

    @property
    def length(self) -> int:
        return max(self.left_viewer.length, self.right_viewer.length)

    @param.depends("left", "right", watch=True)
    def _sync_episodes(self) -> None:
        for viewer, ep in ((self.left_viewer, self.left), (self.right_viewer, self.right)):
            if viewer.episode is not ep:
                viewer.param.update(episode=ep, label=self._label(ep))
        syncing, self._syncing = self._syncing, True
        try:
            self.player.param.update(end=max(1, self.length - 1), value=0)
        finally:
            self._syncing = syncing
        self.frame = 0
        self._set_frame(0)

    @param.depends("frame", watch=True)
    def _on_frame(self) -> None:
        if not self._syncing:
            self._set_frame(self.frame)

    def _set_frame(self, t: int) -> None:
        """Show step ``t`` everywhere; the changes it makes echo back through the watchers and are ignored."""
        t = min(max(int(t), 0), self.length - 1)
        syncing, self._syncing = self._syncing, True
        try:
            self.frame = t
            self.left_viewer.frame = min(t, self.left_viewer.length - 1)
            self.right_viewer.frame = min(t, self.right_viewer.length - 1)
            if self.player.value != t:
                self.player.value = t
        finally:
            self._syncing = syncing

    def _on_child_frame(self, event) -> None:
        # The shared player moved, or a jump inside one viewer (its buttons, a click on its plot).
        if not self._syncing:
            self._set_frame(int(event.new))

    @param.depends("hires", "fps", "loop", "display_px", watch=True)
    def _forward_settings(self) -> None:
        for viewer in (self.left_viewer, self.right_viewer):
            viewer.param.update(hires=self.hires, fps=self.fps, loop=self.loop, display_px=self.display_px)
        self.player.param.update(interval=self.left_viewer._interval(), loop_policy="loop" if self.loop else "once",
                                 width=2 * self.display_px)

    def export_bytes(self, fmt: str, overlays: bool | None = None) -> bytes:
        """Both episodes side by side as one MP4 or GIF (bytes)."""
        overlays = self.overlays_box.value if overlays is None else overlays
        return rollout_export.export_bytes((self.left, self.right), fmt=fmt, overlays=overlays, fps=self.fps,
                                           hires=self.hires, labels=[self._label(self.left), self._label(self.right)])

    def __panel__(self):
        viewers = (self.left_viewer, self.right_viewer)
        return pn.Column(
            pn.Row(*(v.frame_column() for v in viewers)),
            self.player,
            pn.Row(self.hires_toggle, self.fps_slider, self.loop_box, pn.pane.HTML("Export:", margin=(12, 5)),
                   self.overlays_box, self.mp4_download, self.gif_download),
            pn.Row(*(pn.Column(v.jump_row(), v.note, v.step_pane, v.plot, sizing_mode="stretch_width")
                     for v in viewers), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
