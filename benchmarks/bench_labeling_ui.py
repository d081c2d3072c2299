"""Labeling latency through the comparison widget: server-side time from a click to the next pair being ready.

    python benchmarks/bench_labeling_ui.py                       # all scenarios (about 2-3 minutes)
    python benchmarks/bench_labeling_ui.py --human-seconds 10 --stress-seconds 5

Extends benchmarks/bench_labeling.py (the store alone) with the widget logic: one click is
``ComparisonWidget.handle_action`` -- exactly what the page's key/button message runs in the server --
which does ``LabelStore.submit`` (durable, fsynced), ``LabelStore.next_item`` and builds the next view (the
HTML of the pair: escaped/Markdown text, or for clips the two sprite sheets encoded from the episode's
frames, plus the buttons' state). Ten labelers, each a widget driven from its own thread of one process
(as the served dashboard runs its sessions). Not included: the websocket transfer and the browser's drawing.

Scenarios: text pairs and 25-step clip pairs (64x64 observations, and the 512x512 render decoded from the
episode's H.264 file), each with think time 0.5-2 s ("humans") and without ("stress"). Goal (issue 6):
p95 under 100 ms with 10 labelers.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_labeling import GOAL_P95_S, drive_labelers, latency_summary

from widgets.comparison import ComparisonWidget
from workbench.episodes.clips import sample_clip_pairs
from workbench.episodes.rollouts import Episode, RolloutStore
from workbench.preferences.labels import LabelStore

ACTIONS = ["left", "right", "equal", "cant_tell", "skip"]


def synthetic_episode(length: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    # blocky frames (like a game) rather than noise, so PNG sizes are realistic
    small = rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)
    return Episode(frames=frames, actions=np.zeros(length, np.int64), probs=np.full((length, 15), 1 / 15, np.float32),
                   values=np.zeros(length, np.float32), rewards=np.zeros(length, np.float32),
                   dones=np.arange(length) == length - 1, env="bench", level_seed=None, levels="train",
                   distribution_mode="easy", policy="random")


def widget_labeler(store: LabelStore, campaign: str, labeler: str, seed: int, **widget_kwargs):
    """One labeler = one ComparisonWidget; a call = one click (random answer) timed to the next view."""
    rng = random.Random(seed)
    holder: dict = {}

    def warm_up() -> None:  # the page the labeler already has open (built in this thread)
        holder["w"] = ComparisonWidget(store=store, campaign=campaign, labeler=labeler, **widget_kwargs)

    def click() -> float | None:
        widget = holder["w"]
        if widget.assignment is None:
            return None
        before = widget.assignment.id
        t0 = time.perf_counter()
        widget.handle_action(rng.choice(ACTIONS), before)
        took = time.perf_counter() - t0
        if widget.assignment is not None and widget.assignment.id == before:
            raise RuntimeError(f"the click was not stored: {widget.message.object}")
        return took

    click.warm_up = warm_up
    return click


def setup(root: Path, n_items: int, hires_episodes: int) -> None:
    store = LabelStore(root)
    store.create_campaign("text", "text_pair", overlap=3, guidelines_md="# Compare\nPick the *better* answer.")
    store.add_items("text", [{"prompt": f"Question {i}: explain <b>why</b>?\n" + "context " * 40,
                              "a": f"Answer A{i} " + "lorem ipsum " * 60, "b": f"Answer B{i} " + "dolor sit " * 60}
                             for i in range(n_items)])
    rollouts = RolloutStore(root)
    infos = [rollouts.info(rollouts.save(synthetic_episode(200, s))) for s in range(20)]
    store.create_campaign("clips", "clip_pair", overlap=3)
    store.add_items("clips", sample_clip_pairs(infos, n_items, length=25, rng=0))
    hires = []
    for s in range(hires_episodes):
        ep = synthetic_episode(80, 100 + s)
        frames = np.repeat(np.repeat(ep.frames, 8, axis=1), 8, axis=2)
        hires.append(rollouts.info(rollouts.save(ep, hires_frames=frames)))
    store.create_campaign("hires", "clip_pair", overlap=3)
    store.add_items("hires", sample_clip_pairs(hires, min(n_items, 1000), length=25, rng=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelers", type=int, default=10)
    parser.add_argument("--human-seconds", type=float, default=30.0)
    parser.add_argument("--stress-seconds", type=float, default=10.0)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--json", type=str, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        setup(root, args.items, hires_episodes=4)
        print(f"setup {time.perf_counter() - t0:.1f} s", flush=True)
        store = LabelStore(root)
        scenarios = [
            ("text pairs, think 0.5-2 s", "text", args.human_seconds, (0.5, 2.0), {}),
            ("text pairs, stress", "text", args.stress_seconds, (0.0, 0.0), {}),
            ("clip pairs 64x64, think 0.5-2 s", "clips", args.human_seconds, (0.5, 2.0), {"hires": False}),
            ("clip pairs 64x64, stress", "clips", args.stress_seconds, (0.0, 0.0), {"hires": False}),
            ("clip pairs 512x512 render, think 0.5-2 s", "hires", args.human_seconds, (0.5, 2.0), {"hires": True}),
        ]
        for k, (title, campaign, seconds, think, kwargs) in enumerate(scenarios):
            labelers = [widget_labeler(store, campaign, f"{campaign}-{k}-{i}", seed=k * 100 + i, **kwargs)
                        for i in range(args.labelers)]
            result = drive_labelers(labelers, seconds=seconds, think_time_s=think, seed=k)
            result["goal_met"] = result.get("p95_ms", 1e9) < GOAL_P95_S * 1e3
            results[title] = result
            if not result.get("n"):
                print(f"{title:45s} no clicks completed", flush=True)
                continue
            print(f"{title:45s} n={result['n']:5d} {result['clicks_per_s']:7.1f}/s p50 {result['p50_ms']:6.1f} "
                  f"p95 {result['p95_ms']:6.1f} p99 {result['p99_ms']:6.1f} max {result['max_ms']:6.1f} ms",
                  flush=True)

        # One labeler alone: where the time of a click goes.
        for campaign, kwargs in (("text", {}), ("clips", {"hires": False}), ("hires", {"hires": True})):
            widget = ComparisonWidget(store=store, campaign=campaign, labeler=f"solo-{campaign}", **kwargs)
            total, view = [], []
            for _ in range(60):
                t0 = time.perf_counter()
                widget.handle_action("left", widget.assignment.id)
                total.append(time.perf_counter() - t0)
                view.append(widget.last_view_s)
            results[f"single labeler, {campaign}"] = {"click": latency_summary(total),
                                                      "next_item+view": latency_summary(view)}
            print(f"single {campaign}: click p50 {np.percentile(total, 50) * 1e3:.1f} ms, "
                  f"next_item+view p50 {np.percentile(view, 50) * 1e3:.1f} ms", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
