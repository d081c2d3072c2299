"""Labeling latency benchmark: server-side time from a labeler's click (submit) to the next item being ready.

    python benchmarks/bench_labeling.py                   # 10 labelers; 30 s with think time, 10 s per stress run
    python benchmarks/bench_labeling.py --seconds 5 --human-seconds 10 --labelers 10

Ten labelers label one campaign at once, each in its own thread of one process -- how the served dashboard
runs them (one Panel/Tornado server process, one thread per request). Each click is
``LabelStore.submit`` (one durable transaction, fsynced) followed by ``LabelStore.next_item`` (one
IMMEDIATE transaction); the time of the two together is the server-side latency. Goal (issue 6): p95 under
100 ms with 10 labelers.

Scenarios:
  * "stress": no think time -- every labeler clicks again as soon as the next item is ready (hundreds of
    clicks per second, far beyond 10 humans answering every 3-5 s);
  * "humans": think time uniform in [0.5, 2] s (a fast labeler; Christiano et al. report 3-5 s per answer);
  * both on a MATURE campaign: 20,000 items of which the first 10,000 are already complete (3 labels each,
    imported), so next_item has to skip past finished items.

Reusable: :func:`drive_labelers` takes one callable per labeler (each call = one click, returning the
latency it measured, or None when that labeler is done) -- the widget benchmark passes callables that click
the comparison widget instead of calling the store.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.preferences.labels import LabelStore  # noqa: E402

GOAL_P95_S = 0.100


def latency_summary(latencies_s: Sequence[float]) -> dict:
    """n, p50 / p95 / p99 / max in milliseconds."""
    x = np.asarray(latencies_s, dtype=np.float64) * 1e3
    if x.size == 0:
        return {"n": 0}
    return {"n": int(x.size), "p50_ms": float(np.percentile(x, 50)), "p95_ms": float(np.percentile(x, 95)),
            "p99_ms": float(np.percentile(x, 99)), "max_ms": float(x.max()), "mean_ms": float(x.mean())}


def drive_labelers(labelers: Sequence[Callable[[], float | None]], *, seconds: float,
                   think_time_s: tuple[float, float] = (0.0, 0.0), seed: int = 0) -> dict:
    """Run every labeler callable in its own thread, all at once, for ``seconds``.

    Each callable performs one click and returns the server-side latency it measured (seconds), or None
    when it has nothing left to label. Between clicks a thread sleeps a think time drawn uniformly from
    ``think_time_s`` (also before its first click: people do not click in unison). A callable's optional
    ``warm_up()`` attribute runs in its thread before the clock starts (e.g. the thread's database
    connection and first page, as a server thread that has served the page already has them).
    Returns :func:`latency_summary` of all clicks plus clicks per second.
    """
    latencies: list[list[float]] = [[] for _ in labelers]
    start = threading.Barrier(len(labelers) + 1)
    stop_at = [0.0]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        try:
            warm_up = getattr(labelers[k], "warm_up", None)
            if warm_up is not None:
                warm_up()
            start.wait()
            lo, hi = think_time_s
            if hi > 0:
                time.sleep(rng.uniform(0, hi))
            while time.perf_counter() < stop_at[0]:
                took = labelers[k]()
                if took is None:
                    return
                latencies[k].append(took)
                if hi > 0:
                    time.sleep(rng.uniform(lo, hi))
        except BaseException as e:  # reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(len(labelers))]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = [x for per in latencies for x in per]
    return {**latency_summary(flat), "clicks_per_s": len(flat) / elapsed, "labelers": len(labelers)}


def store_labeler(store: LabelStore, campaign: str, labeler: str, seed: int = 0, *,
                  combined: bool = False) -> Callable[[], float | None]:
    """A labeler that answers at random through the store: one call = submit the current item + fetch the
    next (``combined``: both in one transaction with ``LabelStore.submit_and_next``)."""
    rng = random.Random(seed)
    current = [None]

    def warm_up() -> None:  # the page the labeler is looking at, loaded in the labeler's thread
        current[0] = store.next_item(campaign, labeler)

    def click() -> float | None:
        if current[0] is None:
            return None
        choice = rng.choice(["left", "right", "equal", "cant_tell", "skip"])
        t0 = time.perf_counter()
        if combined:
            _, current[0] = store.submit_and_next(current[0].id, labeler, choice)
        else:
            store.submit(current[0].id, labeler, choice)
            current[0] = store.next_item(campaign, labeler)
        return time.perf_counter() - t0

    click.warm_up = warm_up
    return click


def mature_campaign(root: Path, *, items: int, complete: int, overlap: int = 3) -> LabelStore:
    """A campaign of ``items`` text pairs whose first ``complete`` items already have ``overlap`` labels."""
    store = LabelStore(root)
    store.create_campaign("bench", "text_pair", overlap=overlap)
    payloads = [{"prompt": f"prompt {i} " + "x" * 200, "a": "response a " * 30, "b": "response b " * 30}
                for i in range(items)]
    store.add_items("bench", payloads)
    path = root / "prefill.jsonl"
    with path.open("w") as f:
        for i in range(complete):
            for k in range(overlap):
                f.write(json.dumps({"campaign": "bench", "kind": "text_pair", "item": payloads[i],
                                    "labeler": f"old{k}", "choice": "left", "origin": "queue",
                                    "submitted_at": 1.7e9 + i}) + "\n")
    store.import_jsonl(path)
    return store


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="per stress scenario")
    parser.add_argument("--human-seconds", type=float, default=30.0, help="for the scenario with think time")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--complete", type=int, default=10_000)
    args = parser.parse_args(argv)
    results = {}
    scenarios = (("humans", (0.5, 2.0), False), ("stress", (0.0, 0.0), False),
                 ("stress, submit_and_next", (0.0, 0.0), True))
    for name, think, combined in scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            store = mature_campaign(Path(tmp), items=args.items, complete=args.complete)
            setup = time.perf_counter() - t0
            labelers = [store_labeler(store, "bench", f"labeler{k}", seed=k, combined=combined)
                        for k in range(args.labelers)]
            seconds = args.human_seconds if think[1] > 0 else args.seconds
            res = drive_labelers(labelers, seconds=seconds, think_time_s=think)
            res["setup_s"] = setup
            results[name] = res
            ok = "meets" if res["p95_ms"] < GOAL_P95_S * 1e3 else "MISSES"
            print(f"{name:24} {args.labelers} labelers, think {think[0]}-{think[1]} s: {res['n']} clicks "
                  f"({res['clicks_per_s']:.0f}/s)  p50 {res['p50_ms']:.1f} ms  p95 {res['p95_ms']:.1f} ms  "
                  f"p99 {res['p99_ms']:.1f} ms  max {res['max_ms']:.1f} ms  -> {ok} the 100 ms p95 goal", flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
