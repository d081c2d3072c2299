"""Benchmark of the rollout viewer (issue 5): time to the first frame, server time per scrubbed frame,
stored size per 1,000 steps. Writes benchmarks/RESULTS_viewer.md (or --out).

    .venv/bin/python benchmarks/bench_rollout_viewer.py [--steps 1000] [--game coinrun] [--scrubs 200]

The episode: ``--steps`` steps of a uniformly random policy in a Procgen game (consecutive levels when
one ends before ``--steps``: the viewer does not care), with the 512x512 render, saved through
``RolloutStore.save`` (episode.npz + hires.mp4). The policy outputs are synthetic (random softmax
distributions, a random-walk value estimate), so the advantage curve and jumps have something to show;
the frames, actions and rewards are the game's. Rendering 1,000 steps at 512x512 needs ~0.8 GB held at
once, so the game is played twice with the same seed and actions: once for the 64x64 frames, once more to
stream the renders into the encoder (the replay is checked frame for frame).

What is timed (``time.perf_counter``, in this process, i.e. server time; the browser's decode and paint
are not included, see tests/test_rollout_viewer_browser.py for a real browser):

* open: ``RolloutStore.load`` + ``RolloutViewer(episode=...)`` + building its Bokeh models into a
  document (what a served page does) -> the first frame's image is ready to send. "first" is the first
  viewer of the process (after the imports, which are reported separately: they are paid once per
  process, e.g. when the dashboard starts); "again" the median of later openings.
* scrub: setting ``viewer.frame`` to random steps, with the viewer's models in a Bokeh document, up to
  and including serializing the resulting PATCH-DOC message (what the server sends the browser); for
  the 64x64 view, the hi-res render (JPEG, the default) and the hi-res render as PNG. Also the bytes
  sent per frame, and HiresFrames.frame alone (random and sequential access).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def play(game: str, steps: int, seed: int, render: bool):
    """(obs list, actions, rewards) of ``steps`` random steps; with ``render`` also yields the renders."""
    from workbench.rl.env_registry import make_vec_env

    env = make_vec_env(game, 1, distribution_mode="easy", num_levels=0, start_level=0, rand_seed=seed,
                       render_mode="rgb_array" if render else None)
    rng = np.random.default_rng(seed)
    try:
        obs = env.reset()
        for _ in range(steps):
            hires = env.render()[0] if render else None
            action = int(rng.integers(15))
            next_obs, reward, _, _ = env.step(np.array([action]))
            yield obs[0].copy(), action, float(reward[0]), hires
            obs = next_obs
    finally:
        env.close()


def make_episode(store_root: Path, game: str, steps: int, seed: int) -> tuple[str, float]:
    """Record and save the benchmark episode; returns (id, seconds to record + save)."""
    from workbench.episodes.rollouts import Episode, RolloutStore

    t0 = time.perf_counter()
    frames, actions, rewards = [], [], []
    for obs, action, reward, _ in play(game, steps, seed, render=False):
        frames.append(obs)
        actions.append(action)
        rewards.append(reward)
    rng = np.random.default_rng(seed + 1)
    logits = rng.normal(scale=1.5, size=(steps, 15))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    values = np.cumsum(rng.normal(scale=0.1, size=steps)) + 5.0
    dones = np.zeros(steps, bool)
    dones[-1] = True
    episode = Episode(frames=np.stack(frames), actions=np.array(actions), probs=probs.astype(np.float32),
                      values=values.astype(np.float32), rewards=np.array(rewards, np.float32), dones=dones,
                      env=game, level_seed=None, levels="test", distribution_mode="easy", policy="checkpoint",
                      run_id="bench-synthetic-policy", checkpoint_step=0)

    def renders():
        for t, (obs, action, _, hires) in enumerate(play(game, steps, seed, render=True)):
            if action != actions[t] or not np.array_equal(obs, frames[t]):
                raise RuntimeError(f"the replay diverged at step {t}")
            yield hires

    episode_id = RolloutStore(store_root).save(episode, renders())
    return episode_id, time.perf_counter() - t0


class PatchRecorder:
    """Collects a document's change events; ``flush()`` serializes them as the server's PATCH-DOC message."""

    def __init__(self, doc):
        self.events = []
        doc.on_change(self.events.append)

    def flush(self) -> int:
        from bokeh.protocol.messages.patch_doc import patch_doc

        if not self.events:
            return 0
        message = patch_doc.create(list(self.events))
        self.events.clear()  # in place: the document holds this list's append
        return len(message.content_json) + sum(len(b.data) for b in message.buffers)


def open_viewer(store_root: Path, episode_id: str, hires: bool):
    """Load + construct + build the models (as a served page would); returns (viewer, doc, seconds)."""
    from bokeh.document import Document

    from widgets.rollout_viewer import RolloutViewer
    from workbench.episodes.rollouts import RolloutStore

    t0 = time.perf_counter()
    episode = RolloutStore(store_root).load(episode_id, hires=True)
    viewer = RolloutViewer(episode=episode, hires=hires)
    doc = Document()
    doc.add_root(viewer.__panel__().get_root(doc))
    assert 'data-step="0"' in viewer.image.object
    return viewer, doc, time.perf_counter() - t0


def scrub(viewer, doc, indices) -> tuple[list[float], list[int]]:
    recorder = PatchRecorder(doc)
    times, sizes = [], []
    for t in indices:
        viewer._image_cache.clear()  # every step a fresh encode: the worst case, not a replay
        t0 = time.perf_counter()
        viewer.frame = int(t)
        sizes.append(recorder.flush())
        times.append(time.perf_counter() - t0)
        assert f'data-step="{int(t)}"' in viewer.image.object and viewer.cursor_x == int(t)
    return times, sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--game", default="coinrun")
    parser.add_argument("--scrubs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS_viewer.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    t0 = time.perf_counter()
    import panel  # noqa: F401  (imports are a process cost, not an opening cost)
    import plotly.graph_objs

    import widgets.rollout_viewer  # noqa: F401
    import workbench.episodes.rollouts  # noqa: F401

    # Panel's plotly pane touches go.FigureWidget on its first render, which imports ipywidgets and
    # nbformat: seconds, once per process (a served dashboard pays it when its first plot is drawn).
    plotly.graph_objs.FigureWidget  # noqa: B018
    import_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        root = Path(tmp)
        episode_id, record_s = make_episode(root, args.game, args.steps, args.seed)
        from workbench.episodes.rollouts import RolloutStore

        info = RolloutStore(root).info(episode_id)
        files = {p.name: p.stat().st_size for p in Path(info.path).iterdir()}
        print(f"recorded {args.steps} steps of {args.game} in {record_s:.1f} s: {files}", flush=True)

        # Opening: cold (first viewer in the process), then warm.
        _, _, cold_s = open_viewer(root, episode_id, hires=True)
        warm = {True: [], False: []}
        for _ in range(3):
            for hires in (True, False):
                warm[hires].append(open_viewer(root, episode_id, hires)[2])

        rng = np.random.default_rng(args.seed)
        indices = rng.integers(0, args.steps, size=args.scrubs)
        results = {}
        for label, hires, fmt in (("64x64 view (PNG)", False, "auto"), ("hi-res 512x512 (JPEG, default)", True, "auto"),
                                  ("hi-res 512x512 (PNG)", True, "png")):
            viewer, doc, _ = open_viewer(root, episode_id, hires)
            viewer.image_format = fmt
            times, sizes = scrub(viewer, doc, indices)
            results[label] = (times, sizes)
            print(f"{label}: p50 {percentile(times, 50) * 1e3:.1f} ms, p95 {percentile(times, 95) * 1e3:.1f} ms, "
                  f"{statistics.median(sizes) / 1e3:.1f} KB/frame", flush=True)
            viewer.episode.hires and viewer.episode.hires.close()

        # HiresFrames alone: random access and sequential (playing forward).
        episode = RolloutStore(root).load(episode_id, hires=True)
        hires_random = []
        for t in indices:
            episode.hires._cache.clear()
            t0 = time.perf_counter()
            episode.hires.frame(int(t))
            hires_random.append(time.perf_counter() - t0)
        episode.hires.close()
        episode = RolloutStore(root).load(episode_id, hires=True)
        hires_seq = []
        for t in range(min(args.steps, 300)):
            t0 = time.perf_counter()
            episode.hires.frame(t)
            hires_seq.append(time.perf_counter() - t0)
        episode.hires.close()

        # Playing forward through the viewer (cache cold), hi-res.
        viewer, doc, _ = open_viewer(root, episode_id, True)
        recorder = PatchRecorder(doc)
        play_times = []
        for t in range(1, min(args.steps, 300)):
            t0 = time.perf_counter()
            viewer.frame = t
            recorder.flush()
            play_times.append(time.perf_counter() - t0)

    per_1000 = 1000 / args.steps
    total = sum(files.values())
    ms = lambda xs, q: percentile(xs, q) * 1e3  # noqa: E731
    lines = [
        "# Rollout viewer benchmark (issue 5)",
        "",
        f"`benchmarks/bench_rollout_viewer.py --steps {args.steps} --game {args.game} --scrubs {args.scrubs}`, "
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        "Python " + platform.python_version() + ". The machine was shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end), so absolute times are pessimistic; ratios within one run hold.",
        "",
        f"Episode: {args.steps} steps of a random policy in {args.game} (easy) with the 512x512 render; policy "
        "outputs synthetic (see the script's docstring). Recording + saving took "
        f"{record_s:.1f} s. Imports (panel, plotly incl. FigureWidget, the viewer, workbench.episodes.rollouts with torch): "
        f"{import_s:.1f} s, once per process.",
        "",
        "## Stored size",
        "",
        "| file | bytes | per 1,000 steps |",
        "|---|---:|---:|",
        *[f"| {name} | {size:,} | {size * per_1000 / 1e6:.2f} MB |" for name, size in sorted(files.items())],
        f"| total | {total:,} | {total * per_1000 / 1e6:.2f} MB |",
        "",
        "## Opening (load + construct + build models; first frame ready) — target < 1 s",
        "",
        "| case | seconds |",
        "|---|---:|",
        f"| first viewer of the process (hi-res shown) | {cold_s:.3f} |",
        f"| again, hi-res shown (median of 3) | {statistics.median(warm[True]):.3f} |",
        f"| again, 64x64 shown (median of 3) | {statistics.median(warm[False]):.3f} |",
        "",
        f"## Scrubbing: server time per frame, {args.scrubs} random steps — target < 50 ms",
        "",
        "Setting `viewer.frame` (read + encode the frame, move the cursor, redraw bars and readout) and "
        "serializing the PATCH-DOC message; the encoded-frame cache is cleared before each step.",
        "",
        "| shown | p50 ms | p95 ms | max ms | KB sent per frame (median) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {label} | {ms(t, 50):.1f} | {ms(t, 95):.1f} | {max(t) * 1e3:.1f} | {statistics.median(s) / 1e3:.1f} |"
          for label, (t, s) in results.items()],
        f"| hi-res, playing forward (steps 1..{len(play_times)}) | {ms(play_times, 50):.1f} | {ms(play_times, 95):.1f} "
        f"| {max(play_times) * 1e3:.1f} | |",
        "",
        "`HiresFrames.frame` alone (decode from hires.mp4):",
        "",
        "| access | p50 ms | p95 ms |",
        "|---|---:|---:|",
        f"| random ({args.scrubs} steps, cache cleared) | {ms(hires_random, 50):.1f} | {ms(hires_random, 95):.1f} |",
        f"| sequential (steps 0..{len(hires_seq) - 1}) | {ms(hires_seq, 50):.1f} | {ms(hires_seq, 95):.1f} |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
