"""MP4/GIF export of recorded episodes (workbench.episodes.export), read back with PyAV.

References are independent of the exporter: the source frames enlarged with np.repeat, the cursor's
column from its formula, PyAV's own decoder for frame counts, sizes and rates.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from workbench.episodes import export as rollout_export
from workbench.episodes.export import (
    GAP_PX,
    export_bytes,
    export_episode,
    iter_export_frames,
)
from workbench.episodes.rollouts import NUM_ACTIONS, Episode, RolloutStore


def blocky_episode(length: int = 12, seed: int = 0, *, policy: str = "checkpoint") -> Episode:
    """64x64 frames made of 8x8-pixel blocks of few colours (like a game's), random policy outputs."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(24, 3), dtype=np.uint8)
    frames = palette[rng.integers(0, len(palette), size=(length, 8, 8))].repeat(8, 1).repeat(8, 2)
    logits = rng.normal(size=(length, NUM_ACTIONS))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rewards = np.zeros(length, np.float32)
    rewards[[2, length - 3]] = [1.0, 10.0]
    dones = np.zeros(length, bool)
    dones[-1] = True
    values = np.full(length, np.nan) if policy == "random" else rng.normal(size=length)
    return Episode(frames=frames, actions=rng.integers(0, NUM_ACTIONS, size=length), probs=probs, values=values,
                   rewards=rewards, dones=dones, env="coinrun", level_seed=3, levels="seed",
                   distribution_mode="easy", policy=policy, run_id=None if policy == "random" else "run-a",
                   checkpoint_step=None if policy == "random" else 1000)


def decode(path) -> tuple[list[np.ndarray], object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, (stream.codec_context.name, stream.average_rate)


def enlarged(frames: np.ndarray, scale: int) -> np.ndarray:
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


@pytest.fixture
def hires_episode(tmp_path) -> Episode:
    """An episode with a real hi-res reader: saved with 512x512 frames (64x64 blocks enlarged 8x) and loaded."""
    episode = blocky_episode(10, seed=1)
    store = RolloutStore(tmp_path / "store")
    episode_id = store.save(episode, enlarged(episode.frames, 8))
    return store.load(episode_id, hires=True)


def test_mp4_without_overlays_reads_back_close_to_the_source(tmp_path):
    episode = blocky_episode(12)
    path = export_episode(episode, tmp_path / "ep.mp4", overlays=False, hires=False, fps=15)
    frames, (codec, rate) = decode(path)
    assert codec == "h264" and rate == 15
    assert len(frames) == episode.length
    assert frames[0].shape == (256, 256, 3)  # 64 x the default scale 4
    reference = enlarged(episode.frames, 4).astype(np.int16)
    errors = [np.abs(f.astype(np.int16) - r).mean() for f, r in zip(frames, reference)]
    assert max(errors) < 4.0, errors  # H.264 at CRF 18 on 4x4-pixel blocks: a few levels at most
    # Each decoded frame is closest to its own source frame (nothing dropped, duplicated or reordered).
    for i, f in enumerate(frames):
        distances = [np.abs(f.astype(np.int16) - r).mean() for r in reference]
        assert int(np.argmin(distances)) == i


def test_mp4_is_yuv420p_with_even_dimensions_at_any_scale(tmp_path):
    episode = blocky_episode(4)
    for scale in (1, 3):
        path = export_episode(episode, tmp_path / f"s{scale}.mp4", overlays=True, hires=False, scale=scale)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert stream.width % 2 == 0 and stream.height % 2 == 0
            assert stream.width >= 64 * scale


def test_gif_without_overlays_is_exact_for_few_colours(tmp_path):
    episode = blocky_episode(9)
    path = export_episode(episode, tmp_path / "ep.gif", overlays=False, hires=False, scale=2, fps=10)
    frames, (codec, rate) = decode(path)
    assert codec == "gif" and len(frames) == episode.length
    np.testing.assert_array_equal(np.stack(frames), enlarged(episode.frames, 2))  # <= 256 colours: lossless
    assert abs(float(rate) - 10) < 0.5  # GIF delays are whole centiseconds


def test_hires_export_uses_the_render(tmp_path, hires_episode):
    path = export_episode(hires_episode, tmp_path / "hi.mp4", overlays=False, hires=True)
    frames, _ = decode(path)
    assert len(frames) == hires_episode.length and frames[0].shape == (512, 512, 3)
    for t in (0, 5, hires_episode.length - 1):
        source = hires_episode.hires.frame(t).astype(np.int16)
        assert np.abs(frames[t].astype(np.int16) - source).mean() < 4.0
    # hires=False on the same episode: the 64x64 view enlarged instead.
    frames_lo, _ = decode(export_episode(hires_episode, tmp_path / "lo.mp4", overlays=False, hires=False))
    assert frames_lo[0].shape == (256, 256, 3)


def test_overlays_add_a_strip_with_a_cursor_at_the_step_and_leave_the_picture_alone(tmp_path):
    episode = blocky_episode(12)
    plain = list(iter_export_frames(episode, overlays=False, hires=False, scale=4))
    drawn = list(iter_export_frames(episode, overlays=True, hires=False, scale=4))
    assert len(drawn) == episode.length
    width = 256
    strip_height = drawn[0].shape[0] - 256
    assert strip_height >= 24 and drawn[0].shape[1] == width
    for t, (p, d) in enumerate(zip(plain, drawn)):
        # Below the text box (top-left) the picture is untouched.
        np.testing.assert_array_equal(d[200:256], p[200:256])
        # The text box darkens the top-left corner.
        assert d[:20, :60].mean() < p[:20, :60].mean()
        # The cursor: the red column of the strip is at (t + 0.5) * width / T.
        strip = d[256:].astype(int)
        red = (strip[..., 0] > 200) & (strip[..., 1] < 100) & (strip[..., 2] < 100)
        columns = np.flatnonzero(red.sum(0) >= strip_height - 2)
        expected = round((t + 0.5) * width / episode.length)
        assert len(columns) and abs(int(np.median(columns)) - expected) <= 1, (t, columns, expected)


def test_overlay_text_names_the_action_and_handles_missing_values():
    episode = blocky_episode(6, policy="random")
    painter = rollout_export._OverlayPainter(episode, 256, "random policy")
    lines = painter.text_lines(2, done=False)
    from workbench.episodes.rollouts import ACTION_NAMES

    action = int(episode.actions[2])
    assert lines[0] == "random policy"
    assert f"{ACTION_NAMES[action]}  p={episode.probs[2, action]:.2f}" in lines
    assert "value n/a" in lines
    assert any("reward +1.00" in line for line in lines)  # rewards[2] == 1


def test_side_by_side_pairs_panels_and_holds_the_shorter_episode(tmp_path):
    long, short = blocky_episode(10, seed=1), blocky_episode(6, seed=2)
    path = export_episode((long, short), tmp_path / "pair.gif", overlays=False, hires=False, scale=2)
    frames, _ = decode(path)
    assert len(frames) == 10
    assert frames[0].shape == (128, 128 + GAP_PX + 128, 3)
    left = enlarged(long.frames, 2)
    right = enlarged(short.frames, 2)
    for t, frame in enumerate(frames):
        np.testing.assert_array_equal(frame[:, :128], left[t])
        np.testing.assert_array_equal(frame[:, 128 + GAP_PX:], right[min(t, 5)])  # held at its last frame


def test_export_bytes_matches_a_written_file(tmp_path):
    episode = blocky_episode(5)
    data = export_bytes(episode, fmt="gif", overlays=False, hires=False)
    path = export_episode(episode, tmp_path / "e.gif", overlays=False, hires=False)
    assert data[:6] == b"GIF89a" and data == path.read_bytes()
    assert export_bytes(episode, fmt="mp4")[4:8] == b"ftyp"


def test_bad_input_gives_clear_errors(tmp_path):
    episode = blocky_episode(4)
    with pytest.raises(ValueError, match="fmt must be one of"):
        export_episode(episode, tmp_path / "e.webm", fmt="webm")
    with pytest.raises(ValueError, match="says 'gif' but fmt is 'mp4'"):
        export_episode(episode, tmp_path / "e.gif", fmt="mp4")
    with pytest.raises(ValueError, match="fps must be"):
        export_episode(episode, tmp_path / "e.mp4", fps=0)
    with pytest.raises(ValueError, match="scale must be"):
        export_episode(episode, tmp_path / "e.mp4", scale=0)
    with pytest.raises(ValueError, match="one episode or a pair"):
        export_episode([episode] * 3, tmp_path / "e.mp4")
    with pytest.raises(ValueError, match="must be a workbench.episodes.rollouts.Episode"):
        export_episode(np.zeros((4, 64, 64, 3), np.uint8), tmp_path / "e.mp4")
    with pytest.raises(ValueError, match="one label per episode"):
        export_episode(episode, tmp_path / "e.mp4", labels=["a", "b"])
    assert not list(tmp_path.iterdir())  # nothing written by a refused export


def test_a_failed_export_leaves_no_file_behind(tmp_path):
    episode = blocky_episode(6)

    class BrokenReader:  # a hi-res reader whose file ends early (e.g. truncated on disk)
        def frame(self, t):
            if t >= 3:
                raise RuntimeError("hires.mp4 ended before frame 3")
            return np.zeros((512, 512, 3), np.uint8)

    episode.hires = BrokenReader()
    target = tmp_path / "out" / "ep.mp4"
    target.parent.mkdir()
    target.write_bytes(b"an older export")
    with pytest.raises(RuntimeError, match="ended before frame 3"):
        export_episode(episode, target)
    assert target.read_bytes() == b"an older export"  # the old file is kept, whole
    assert os.listdir(target.parent) == ["ep.mp4"]     # and no temporary file is left


def test_fps_fraction_is_kept_in_the_mp4(tmp_path):
    path = export_episode(blocky_episode(4), tmp_path / "e.mp4", overlays=False, hires=False, fps=7.5)
    _, (_, rate) = decode(path)
    assert rate == Fraction(15, 2)
