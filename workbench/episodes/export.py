"""Export recorded episodes (:class:`workbench.episodes.rollouts.Episode`) as MP4 or GIF, with or without overlays.

Why a module of its own: the viewer (``widgets/rollout_viewer.py``) offers these files as downloads, and
notebooks and reports want the same files without a browser, so the drawing and encoding live here,
headless (PyAV + Pillow; no UI library).

What a frame looks like:

* The picture: the 512x512 high-resolution render when the episode has one and ``hires=True``, else the
  agent's 64x64 view scaled up ``scale`` times with nearest-neighbour (crisp pixels; the default 4 gives
  256x256, and whole-pixel blocks of even size also keep yuv420p's 2x2 colour subsampling from smearing
  colours across game pixels).
* With ``overlays=True``, drawn with Pillow: a translucent box in the top-left corner with the step,
  reward, return so far, value estimate and the chosen action's name and probability; below the picture
  a strip of the whole episode's value estimate (blue line), reward events (orange ticks) and a red
  cursor at the current step.
* Two episodes (a pair) are drawn side by side on one canvas and played in sync; the shorter one holds
  its last frame (labelled "done") while the longer one finishes.

Formats:

* ``mp4``: H.264 (libx264, bundled with PyAV's wheels), yuv420p, CRF 18, so any browser or player opens
  it. yuv420p needs even dimensions; the canvas is padded by one black row/column when needed.
* ``gif``: PyAV's GIF encoder fed 8-bit palette frames, each quantized by Pillow (median cut; exact when
  a frame has at most 256 colours, as the agent's view usually has). GIF delays are whole centiseconds,
  so 15 fps plays at 100/7 = 14.3 fps (or 16.7: the muxer rounds 6.67 cs).

Files are written atomically (a temporary file in the same directory, fsynced, then renamed), so an
interrupted export never leaves a half-written file under the requested name.

Example::

    from workbench.episodes.rollouts import RolloutStore
    from workbench.episodes.export import export_episode

    store = RolloutStore()
    ep = store.load(store.list(run_id="ppo-coinrun-1")[0].id)
    export_episode(ep, "episode.mp4")                                  # overlays, hi-res when recorded
    export_episode(ep, "episode.gif", fmt="gif", overlays=False, fps=10)
    export_episode((ep, store.load(other_id)), "compare.mp4")          # side by side
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:  # only for annotations: the export works on any object with Episode's fields
    from workbench.episodes.rollouts import Episode

FORMATS = ("mp4", "gif")
MAX_FPS = 120
GAP_PX = 8                   # grey gap between the two panels of a side-by-side export
STRIP_FRACTION = 0.125       # height of the value/reward strip relative to the picture's width
BACKGROUND = (24, 24, 24)
VALUE_COLOUR = (80, 160, 255)
REWARD_COLOUR = (255, 170, 40)
CURSOR_COLOUR = (255, 60, 60)
H264_CRF = 18                # visually lossless for game frames; 0 would be lossless but unplayable in browsers


def _action_names() -> list[str]:
    from workbench.episodes.rollouts import ACTION_NAMES

    return list(ACTION_NAMES)


def action_name(action: int) -> str:
    """The procgen button combination of an action index (e.g. 7 -> "RIGHT"), or "#k" if out of range."""
    names = _action_names()
    return names[action] if 0 <= action < len(names) else f"#{action}"


def _check_episode(episode: Any, what: str = "episode") -> None:
    for field in ("frames", "actions", "probs", "values", "rewards"):
        if not hasattr(episode, field):
            raise ValueError(f"{what} must be a workbench.episodes.rollouts.Episode (it has no {field!r}); got "
                             f"{type(episode).__name__}")
    frames = np.asarray(episode.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{what}.frames must be uint8 of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError(f"{what} has no frames: nothing to export")
    for field in ("actions", "values", "rewards"):
        if len(getattr(episode, field)) != len(frames):
            raise ValueError(f"{what}.{field} has {len(getattr(episode, field))} entries but there are "
                             f"{len(frames)} frames")


def _as_pair(episode: Any) -> list[Any]:
    """One episode or a pair of episodes -> a list of 1 or 2 episodes (validated)."""
    if isinstance(episode, (list, tuple)):
        if len(episode) not in (1, 2):
            raise ValueError(f"export one episode or a pair side by side, got {len(episode)} episodes")
        episodes = list(episode)
    else:
        episodes = [episode]
    for i, ep in enumerate(episodes):
        _check_episode(ep, "episode" if len(episodes) == 1 else f"episode {i}")
    return episodes


def uses_hires(episodes: Sequence[Any], hires: bool) -> bool:
    """Whether the export draws the high-resolution render: asked for and recorded for every episode
    (side by side, both panels must be at the same resolution)."""
    return bool(hires) and all(getattr(ep, "hires", None) is not None for ep in episodes)


def picture(episode: Any, t: int, *, hires: bool, scale: int) -> np.ndarray:
    """The picture of step ``t``: the hi-res render (if ``hires``) or the agent's frame scaled ``scale``x."""
    if hires:
        frame = np.asarray(episode.hires.frame(t))
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"hi-res frame {t} has shape {frame.shape}, expected (H, W, 3)")
        return frame
    frame = np.asarray(episode.frames[t])
    return frame if scale == 1 else frame.repeat(scale, axis=0).repeat(scale, axis=1)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fmt(value: float, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


class _OverlayPainter:
    """Draws the overlays of one episode; the strip's curves are drawn once and pasted on every frame."""

    def __init__(self, episode: Any, width: int, label: str | None):
        self.episode = episode
        self.width = width
        self.label = label
        self.length = len(episode.actions)
        self.strip_height = max(24, int(round(width * STRIP_FRACTION)))
        self.font = _font(max(10, width // 36))
        self.actions = np.asarray(episode.actions)
        self.values = np.asarray(episode.values, dtype=np.float64)
        self.rewards = np.asarray(episode.rewards, dtype=np.float64)
        self.returns = np.cumsum(self.rewards)
        probs = np.asarray(episode.probs, dtype=np.float64)
        steps = np.arange(self.length)
        in_range = (self.actions >= 0) & (self.actions < probs.shape[1])
        self.chosen = np.where(in_range, probs[steps, np.clip(self.actions, 0, probs.shape[1] - 1)], np.nan)
        self.strip = self._draw_strip()

    def x_of(self, t: int) -> int:
        return int(round((t + 0.5) * self.width / self.length))

    def _draw_strip(self) -> Image.Image:
        w, h = self.width, self.strip_height
        strip = Image.new("RGB", (w, h), (12, 12, 12))
        draw = ImageDraw.Draw(strip)
        for t in np.flatnonzero(self.rewards != 0):  # reward events: ticks along the bottom
            x = self.x_of(int(t))
            draw.line([(x, h - 1), (x, h - max(4, h // 3))], fill=REWARD_COLOUR, width=max(1, w // 256))
        finite = np.isfinite(self.values)
        if finite.any():
            lo, hi = float(self.values[finite].min()), float(self.values[finite].max())
            span = hi - lo if hi > lo else 1.0
            top, bottom = 3, h - max(6, h // 3) - 2
            points = []
            for t in range(self.length):
                if not finite[t]:
                    if len(points) > 1:
                        draw.line(points, fill=VALUE_COLOUR, width=max(1, w // 256))
                    points = []
                    continue
                y = bottom - (self.values[t] - lo) / span * (bottom - top)
                points.append((self.x_of(t), int(round(y))))
            if len(points) > 1:
                draw.line(points, fill=VALUE_COLOUR, width=max(1, w // 256))
            elif len(points) == 1:
                draw.point(points, fill=VALUE_COLOUR)
        return strip

    def text_lines(self, t: int, done: bool) -> list[str]:
        lines = [self.label] if self.label else []
        lines.append(f"step {t + 1}/{self.length}{'  done' if done else ''}")
        lines.append(f"reward {_fmt(self.rewards[t], True)}  return {_fmt(self.returns[t])}")
        lines.append(f"value {_fmt(self.values[t])}")
        lines.append(f"{action_name(int(self.actions[t]))}  p={_fmt(self.chosen[t])}")
        return lines

    def paint(self, image: Image.Image, t: int, done: bool = False) -> Image.Image:
        """``image`` (the picture, width ``self.width``) with the text box drawn on it and the strip below."""
        out = Image.new("RGB", (image.width, image.height + self.strip_height), BACKGROUND)
        out.paste(image, (0, 0))
        overlay = Image.new("RGBA", out.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        lines = self.text_lines(t, done)
        pad = max(2, self.font.size // 4) if hasattr(self.font, "size") else 2
        boxes = [draw.textbbox((0, 0), line, font=self.font) for line in lines]
        line_h = max(b[3] for b in boxes) + pad
        box_w = max(b[2] for b in boxes) + 2 * pad
        draw.rectangle([0, 0, min(box_w, image.width - 1), line_h * len(lines) + pad], fill=(0, 0, 0, 150))
        for i, line in enumerate(lines):
            draw.text((pad, pad + i * line_h), line, font=self.font, fill=(255, 255, 255, 255))
        out = Image.alpha_composite(out.convert("RGBA"), overlay).convert("RGB")
        out.paste(self.strip, (0, image.height))
        x = self.x_of(t)
        ImageDraw.Draw(out).line([(x, image.height), (x, out.height - 1)], fill=CURSOR_COLOUR,
                                 width=max(1, self.width // 200))
        return out


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or not 1 <= scale <= 16:
        raise ValueError(f"scale must be a whole number from 1 to 16 (how many times the 64x64 frames are "
                         f"enlarged), got {scale!r}")
    return int(scale)


def iter_export_frames(episode: Any, *, overlays: bool = True, hires: bool = True, scale: int = 4,
                       labels: Sequence[str | None] | None = None) -> Iterator[np.ndarray]:
    """The frames an export writes, one (H, W, 3) uint8 array per step (of the longer episode of a pair),
    with even H and W. Hi-res frames are read one at a time, so memory stays at one frame."""
    episodes = _as_pair(episode)
    scale = _check_scale(scale)
    use_hires = uses_hires(episodes, hires)
    if labels is None:
        labels = [None] * len(episodes)
    if len(labels) != len(episodes):
        raise ValueError(f"labels must give one label per episode ({len(episodes)}), got {len(labels)}")
    lengths = [len(ep.actions) for ep in episodes]
    painters: list[_OverlayPainter | None] = [None] * len(episodes)
    canvas_size: tuple[int, int] | None = None
    for t in range(max(lengths)):
        panels = []
        for i, ep in enumerate(episodes):
            ti = min(t, lengths[i] - 1)
            image = Image.fromarray(picture(ep, ti, hires=use_hires, scale=scale))
            if overlays:
                if painters[i] is None:
                    painters[i] = _OverlayPainter(ep, image.width, labels[i])
                image = painters[i].paint(image, ti, done=t >= lengths[i])
            panels.append(image)
        if len(panels) == 1:
            canvas = panels[0]
        else:
            height = max(p.height for p in panels)
            canvas = Image.new("RGB", (panels[0].width + GAP_PX + panels[1].width, height), (90, 90, 90))
            canvas.paste(panels[0], (0, 0))
            canvas.paste(panels[1], (panels[0].width + GAP_PX, 0))
        frame = np.asarray(canvas)
        if canvas_size is None:
            h, w = frame.shape[:2]
            canvas_size = (h + h % 2, w + w % 2)  # yuv420p: even dimensions
        if frame.shape[:2] != canvas_size:
            padded = np.zeros((*canvas_size, 3), np.uint8)
            h, w = min(frame.shape[0], canvas_size[0]), min(frame.shape[1], canvas_size[1])
            padded[:h, :w] = frame[:h, :w]
            frame = padded
        yield frame


def _check_fps(fps: float) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.integer, np.floating)) \
            or not math.isfinite(float(fps)) or not 0 < float(fps) <= MAX_FPS:
        raise ValueError(f"fps must be a number in (0, {MAX_FPS}], got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _resolve_format(path: Path, fmt: str | None) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None:
        fmt = suffix if suffix in FORMATS else "mp4"
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if suffix in FORMATS and suffix != fmt:
        raise ValueError(f"the file name {path.name!r} says {suffix!r} but fmt is {fmt!r}")
    return fmt


def _gif_frame(frame: np.ndarray):
    """An RGB frame as a PyAV pal8 frame with its own palette (Pillow's median-cut quantization)."""
    import av

    image = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = np.asarray(image.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
    argb = np.zeros((256, 4), np.uint8)
    argb[:, 0] = 255
    argb[: len(palette), 1:] = palette
    return av.VideoFrame.from_ndarray((np.asarray(image), argb), format="pal8")


def write_video(frames: Iterator[np.ndarray], path: str | os.PathLike, *, fmt: str = "mp4", fps: float = 15) -> int:
    """Encode RGB frames (all the same even size) to ``path`` (atomically); returns the number written."""
    import av

    path = Path(path)
    fmt = _resolve_format(path, fmt)
    rate = _check_fps(fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{fmt}.tmp", dir=path.parent)
    os.close(fd)
    count = 0
    try:
        with av.open(tmp_name, mode="w", format=fmt) as container:
            stream = None
            for frame in frames:
                if stream is None:
                    height, width = frame.shape[:2]
                    if fmt == "mp4":
                        stream = container.add_stream("libx264", rate=rate)
                        stream.pix_fmt = "yuv420p"
                        stream.options = {"crf": str(H264_CRF), "preset": "veryfast"}
                    else:
                        stream = container.add_stream("gif", rate=rate)
                        stream.pix_fmt = "pal8"
                    stream.width, stream.height = width, height
                    size = (height, width)
                if frame.shape[:2] != size:
                    raise ValueError(f"frame {count} is {frame.shape[:2]}, the first was {size}: frames must "
                                     "all have one size")
                if fmt == "mp4":
                    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                else:
                    video_frame = _gif_frame(frame)
                video_frame.pts = count
                video_frame.time_base = 1 / rate
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError("no frames to write")
            for packet in stream.encode():
                container.mux(packet)
        with open(tmp_name, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return count


def export_episode(episode: Episode | Sequence[Episode], path: str | os.PathLike, *, fmt: str | None = None,
                   overlays: bool = True, fps: float = 15, hires: bool = True, scale: int = 4,
                   labels: Sequence[str | None] | None = None) -> Path:
    """Write ``episode`` (or a pair of episodes, side by side) to ``path`` as MP4 or GIF; returns the path.

    ``fmt``: "mp4" or "gif" (default: from the file's suffix, else "mp4"). ``overlays``: draw the step,
    reward, value, chosen action and the value/reward strip. ``hires``: use the 512x512 render when every
    episode has one; otherwise the 64x64 frames are enlarged ``scale`` times. ``labels``: a title per
    episode drawn in its overlay (e.g. the checkpoint). One frame per step, played at ``fps``.
    """
    path = Path(path)
    fmt = _resolve_format(path, fmt)
    _check_fps(fps)
    episodes = _as_pair(episode)
    write_video(iter_export_frames(episodes, overlays=overlays, hires=hires, scale=scale, labels=labels),
                path, fmt=fmt, fps=fps)
    return path


def export_bytes(episode: Episode | Sequence[Episode], *, fmt: str = "mp4", **kwargs) -> bytes:
    """The file :func:`export_episode` would write, as bytes (for a download button)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="rollout-export-") as tmp:
        path = export_episode(episode, Path(tmp) / f"episode.{fmt}", fmt=fmt, **kwargs)
        return path.read_bytes()
