"""Clips as sprite sheets (every frame stacked in one image, animated by the browser with CSS ``steps()``), and
the process-wide caches and background encoder that keep the next items' sheets ready."""

from __future__ import annotations

import base64
import io
import queue
import threading
from collections import OrderedDict

import numpy as np

from workbench.episodes.clips import clip_frames

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
