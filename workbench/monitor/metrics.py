"""Reading and shaping a run's metrics for the live monitor (no UI imports: widgets/ draws them).

* :class:`MetricCache` -- reads a run store incrementally: each poll asks only for rows with
  ``id >`` the last id seen for that run, and appends them to per-(run, metric) numpy series.
* :func:`downsample_minmax` -- keeps the first and last point and, for each pixel bucket of the x range,
  the points holding the bucket's minimum and maximum (vectorized), so spikes survive drawing.
* :func:`ema_smooth` -- TensorBoard's debiased exponential moving average (same rules: non-finite values
  are passed through and not accumulated; a constant series is not smoothed).
* :func:`group_key`, :func:`group_runs`, :func:`aggregate_seeds` -- seeds of one configuration
  (configs equal except ``seed`` / ``name``) as mean with min-max and standard-error bands on a common
  step grid.
* :func:`config_diff` -- the settings that differ between two runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.storage.runs import RunInfo, RunStore

GROUP_IGNORED_KEYS = ("seed", "name")

# ---- incremental metric reading ---------------------------------------------------------------------


class Series:
    """One metric of one run: growing step / wall_time / value arrays (amortized O(1) appends)."""

    __slots__ = ("_step", "_wall", "_value", "n", "version")

    def __init__(self):
        self._step = np.empty(64, dtype=np.int64)
        self._wall = np.empty(64, dtype=np.float64)
        self._value = np.empty(64, dtype=np.float64)
        self.n = 0
        self.version = 0  # bumped when points are dropped (so derived caches know to start over)

    def extend(self, steps: np.ndarray, walls: np.ndarray, values: np.ndarray) -> None:
        k = len(steps)
        if self.n + k > len(self._step):
            cap = max(2 * len(self._step), self.n + k)
            for name in ("_step", "_wall", "_value"):
                old = getattr(self, name)
                new = np.empty(cap, dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        self._step[self.n : self.n + k] = steps
        self._wall[self.n : self.n + k] = walls
        self._value[self.n : self.n + k] = values
        self.n += k

    def sort_by_step(self) -> None:
        """Order the points by step (stable: ties keep their logging order)."""
        order = np.argsort(self.steps, kind="stable")
        for name in ("_step", "_wall", "_value"):
            arr = getattr(self, name)
            arr[: self.n] = arr[: self.n][order]
        self.version += 1

    @property
    def steps(self) -> np.ndarray:
        return self._step[: self.n]

    @property
    def wall_times(self) -> np.ndarray:
        return self._wall[: self.n]

    @property
    def values(self) -> np.ndarray:
        return self._value[: self.n]


@dataclass
class RunCache:
    last_id: int = 0
    names: set | None = None  # the metrics read (None: all)
    pid: int | None = None    # the run's process when last polled
    series: dict[str, Series] = field(default_factory=dict)
    rows_read: int = 0


def _read_columns(store: RunStore, run_id: str, names: Sequence[str] | None, after_id: int,
                  upto_id: int | None = None):
    return store.read_metric_columns(run_id, names, after_id=after_id, upto_id=upto_id)


def _append_columns(cache: RunCache, columns) -> int:
    if columns is None:
        return 0
    _, steps_a, walls_a, (distinct, codes), values_a = columns
    cache.rows_read += len(steps_a)
    for code, name in enumerate(distinct):
        if len(distinct) == 1:
            new_steps, new_walls, new_values = steps_a, walls_a, values_a
        else:
            mask = codes == code
            new_steps, new_walls, new_values = steps_a[mask], walls_a[mask], values_a[mask]
        s = cache.series.setdefault(name, Series())
        in_order = (s.n == 0 or new_steps[0] >= s.steps[-1]) and bool(np.all(new_steps[1:] >= new_steps[:-1]))
        s.extend(new_steps, new_walls, new_values)
        if not in_order:  # logged out of step order: keep the series sorted by step (ties in logging order)
            s.sort_by_step()
    return len(steps_a)


class MetricCache:
    """Per-run metric series, filled by :meth:`poll`, which reads only rows newer than those seen."""

    def __init__(self, store: RunStore):
        self.store = store
        self.runs: dict[str, RunCache] = {}

    def poll(self, run_ids: Iterable[str], names: Iterable[str] | None = None,
             pids: Mapping[str, int | None] | None = None) -> dict[str, int]:
        """Read the new rows of each run (only of ``names`` when given); returns run id -> rows read now.

        ``pids`` (run id -> the store's pid): a run whose process changed was resumed, and a resume deletes
        the rows after its checkpoint, so that run is read again from the start."""
        names = None if names is None else list(dict.fromkeys(names))
        counts = {}
        for run_id in run_ids:
            pid = (pids or {}).get(run_id)
            cache = self.runs.get(run_id)
            if cache is not None and pid is not None and cache.pid is not None and pid != cache.pid:
                cache = None
            if cache is None:
                cache = self.runs[run_id] = RunCache(names=None if names is None else set(names))
            cache.pid = pid if pid is not None else cache.pid
            counts[run_id] = 0
            if names is None:
                cache.names = None
            elif cache.names is not None:
                missing = [n for n in names if n not in cache.names]
                if missing and cache.last_id:  # a newly chosen metric: its rows up to where the others are
                    counts[run_id] += _append_columns(cache, _read_columns(self.store, run_id, missing, 0,
                                                                           upto_id=cache.last_id))
                cache.names.update(missing)
            columns = _read_columns(self.store, run_id, None if cache.names is None else sorted(cache.names),
                                    cache.last_id)
            if columns is not None:
                cache.last_id = int(columns[0][-1])
                counts[run_id] += _append_columns(cache, columns)
        return counts

    def forget(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def series(self, run_id: str, name: str) -> Series | None:
        cache = self.runs.get(run_id)
        return None if cache is None else cache.series.get(name)

    def metric_names(self, run_ids: Iterable[str] | None = None) -> list[str]:
        ids = self.runs.keys() if run_ids is None else run_ids
        return sorted({n for r in ids if r in self.runs for n in self.runs[r].series})


def _max_metric_id(store: RunStore, run_id: str) -> int:
    return store.max_metric_id(run_id)


class LatestMetrics:
    """``RunStore.latest_metrics`` kept up to date incrementally: computed once per run (and again after a
    resume, which changes the run's pid), then updated from the rows newer than the last one seen."""

    def __init__(self, store: RunStore):
        self.store = store
        self._runs: dict[str, list] = {}  # run id -> [last id, pid, {name: (step, value)}]

    def get(self, info: RunInfo) -> dict[str, tuple[int, float]]:
        entry = self._runs.get(info.id)
        if entry is None or entry[1] != info.pid:
            last_id = _max_metric_id(self.store, info.id)  # first: rows after it are read again below
            entry = self._runs[info.id] = [last_id, info.pid, self.store.latest_metrics(info.id)]
        rows = self.store.read_metrics(info.id, after_id=entry[0])
        latest = entry[2]
        for row in rows:
            current = latest.get(row.name)
            if current is None or row.step >= current[0]:
                latest[row.name] = (row.step, row.value)
        if rows:
            entry[0] = rows[-1].id
        return latest

    def forget_missing(self, run_ids: Iterable[str]) -> None:
        keep = set(run_ids)
        for run_id in list(self._runs):
            if run_id not in keep:
                del self._runs[run_id]


# ---- drawing helpers --------------------------------------------------------------------------------


def downsample_minmax(x: np.ndarray, y: np.ndarray, n_buckets: int = 1000) -> np.ndarray:
    """Indices of the points to draw: the first and the last, and in each of ``n_buckets`` equal-width
    buckets of the x range, the first point holding the bucket's minimum and the first holding its maximum
    (NaNs ignored). ``x`` must be non-decreasing. Returns sorted unique indices."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    if n <= max(2, 2 * n_buckets + 2):
        return np.arange(n)
    x0, x1 = float(x[0]), float(x[-1])
    span = x1 - x0
    if span <= 0:
        bucket = np.zeros(n, dtype=np.int64)
    else:
        bucket = ((x.astype(np.float64) - x0) * (n_buckets / span)).astype(np.int64)
        np.clip(bucket, 0, n_buckets - 1, out=bucket)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])  # first index of each non-empty bucket
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduceat(y, starts)
        hi = np.fmax.reduceat(y, starts)
    bucket_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    picked = [np.array([0, n - 1])]
    for target in (lo, hi):
        hits = np.flatnonzero(y == target[bucket_of])
        if len(hits):
            first = np.r_[True, bucket_of[hits][1:] != bucket_of[hits][:-1]]
            picked.append(hits[first])
    return np.unique(np.concatenate(picked))


def _ema_block_matrices(w: float, block: int):
    i = np.arange(block)
    expo = i[:, None] - i[None, :]
    lower = np.where(expo >= 0, w ** np.maximum(expo, 0), 0.0)  # L[i, j] = w^(i-j), j <= i
    return lower.T.copy(), w ** (i + 1), w**block


def ema_extend(v: np.ndarray, weight: float, last: float = 0.0, count: int = 0) -> tuple[np.ndarray, float, int]:
    """Debiased EMA of finite values ``v`` continuing from the state ``(last, count)`` (TensorBoard's
    ``last`` before debiasing, and the number of values accumulated); returns ``(smoothed, last, count)``.

    Vectorized in blocks: inside a block the recurrence is a small matrix product, and a short loop
    carries the state from block to block."""
    v = np.asarray(v, dtype=np.float64)
    n = len(v)
    w = float(weight)
    if n == 0:
        return v.copy(), last, count
    if w == 1.0:  # last stays 0 and the debias factor is 1
        return np.zeros(n), 0.0, count + n
    block = 64 if n >= 64 else n
    nb = -(-n // block)
    padded = np.zeros(nb * block)
    padded[:n] = v
    lower_t, decay, wb = _ema_block_matrices(w, block)
    within = (1.0 - w) * (padded.reshape(nb, block) @ lower_t)  # each block's EMA started from 0
    carry = np.empty(nb)
    c = float(last)
    last_col = within[:, -1].tolist()
    for b in range(nb):
        carry[b] = c
        c = wb * c + last_col[b]
    ema = (within + carry[:, None] * decay[None, :]).reshape(-1)[:n]
    new_last = float(ema[-1])
    debias = 1.0 - w ** np.arange(count + 1, count + n + 1, dtype=np.float64)
    return ema / debias, new_last, count + n


def ema_smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's scalar smoothing: ``last = last * w + (1 - w) * v`` from ``last = 0``, divided by the
    debias factor ``1 - w ** k`` (k = finite values so far); non-finite values are kept as they are and
    not accumulated; a constant series (and ``weight == 0``) is returned unchanged."""
    return IncrementalEma(weight).update(values)


class IncrementalEma:
    """:func:`ema_smooth` of a growing series, computing only the new values on each :meth:`update`
    (the whole series again when it shrank, changed ``version``, or was constant so far)."""

    def __init__(self, weight: float):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1], got {weight}")
        self.weight = float(weight)
        self.n, self.version, self.last, self.count = 0, None, 0.0, 0
        self.constant = True
        self.out = np.empty(0)
        self.generation = 0  # bumped whenever earlier outputs may have changed (a recompute from the start)

    def update(self, values: np.ndarray, version: Any = None) -> np.ndarray:
        y = np.asarray(values, dtype=np.float64)
        if len(y) < self.n or version != self.version or self.constant or self.weight == 0.0:
            self.n, self.last, self.count, self.version = 0, 0.0, 0, version
            self.out = np.empty(0)
            self.generation += 1
            if len(y) == 0 or self.weight == 0.0 or bool(np.all(y == y[0])):
                self.constant = True
                return y.copy()
            self.constant = False
        tail = y[self.n:]
        out_tail = tail.copy()
        finite = np.isfinite(tail)
        smoothed, self.last, self.count = ema_extend(tail[finite], self.weight, self.last, self.count)
        out_tail[finite] = smoothed
        self.out = np.concatenate([self.out, out_tail]) if self.n else out_tail
        self.n = len(y)
        return self.out


class BlockExtremes:
    """Per-block minimum and maximum positions of a growing array (blocks of ``block`` points), updated
    for new complete blocks only. :meth:`downsample` then runs :func:`downsample_minmax` on those
    candidates (plus the unfinished last block) instead of every point: the global minimum and maximum,
    the first and the last point are always kept; a bucket's extremes are exact except where a block
    straddles a bucket edge (then the block's extreme may be drawn in the neighbouring bucket).
    The array must only grow by appending (its earlier values never change)."""

    def __init__(self, block: int = 64):
        self.block = block
        self.done = 0  # complete blocks summarized
        self._cand = np.empty(0, dtype=np.int64)

    def update(self, y: np.ndarray) -> np.ndarray:
        """Candidate indices (sorted) for the current ``y``."""
        b = self.block
        complete = len(y) // b
        if complete < self.done:
            raise ValueError("the array shrank; make a new BlockExtremes")
        if complete > self.done:
            chunk = np.asarray(y[self.done * b: complete * b], dtype=np.float64).reshape(-1, b)
            nan = np.isnan(chunk)
            lo = np.argmin(np.where(nan, np.inf, chunk), axis=1)
            hi = np.argmax(np.where(nan, -np.inf, chunk), axis=1)
            base = (np.arange(self.done, complete) * b)
            new = np.stack([base + lo, base + hi], axis=1).reshape(-1)
            self._cand = np.concatenate([self._cand, new])
            self.done = complete
        tail = np.arange(complete * b, len(y), dtype=np.int64)
        return np.unique(np.concatenate([self._cand, tail, np.array([0, len(y) - 1], dtype=np.int64)])) \
            if len(y) else np.empty(0, dtype=np.int64)

    def downsample(self, x: np.ndarray, y: np.ndarray, n_buckets: int = 1000) -> np.ndarray:
        """Indices to draw, as :func:`downsample_minmax` (with the block approximation above)."""
        if len(y) <= 32 * n_buckets:
            return downsample_minmax(x, y, n_buckets)
        cand = self.update(y)
        return cand[downsample_minmax(x[cand], y[cand], n_buckets)]


def ema_smooth_loop(values: Sequence[float], weight: float) -> list[float]:
    """The plain-loop form of TensorBoard's smoothing (the reference that :func:`ema_smooth` matches)."""
    values = [float(v) for v in values]
    last = 0.0
    num_accum = 0
    is_constant = all(v == values[0] for v in values) if values else True
    out = []
    for v in values:
        if is_constant or not math.isfinite(v):
            out.append(v)
        else:
            last = last * weight + (1 - weight) * v
            num_accum += 1
            debias = 1.0 if weight == 1 else 1 - weight**num_accum
            out.append(last / debias)
    return out


# ---- seed groups and config diffs -------------------------------------------------------------------


def group_key(info: RunInfo, keys: Sequence[str] | None = None) -> str:
    """Runs with equal keys are drawn as one group. By default they are seeds of one configuration: same
    algorithm and config except seed/name. With ``keys`` (config fields, or "algo"/"env"), runs are grouped
    by those values alone, as W&B's and TensorBoard's group-by do."""
    if keys:
        values = {"algo": info.algo, "env": info.env, **info.config}
        return json.dumps({k: values.get(k) for k in keys}, sort_keys=True, default=str)
    config = {k: v for k, v in info.config.items() if k not in GROUP_IGNORED_KEYS}
    return json.dumps({"algo": info.algo, "config": config}, sort_keys=True, default=str)


def group_label(group: Sequence[RunInfo], keys: Sequence[str] | None = None) -> str:
    """A group's legend label: the run's name alone, the grouped values, or algorithm, env and seed count."""
    if len(group) == 1 and not keys:
        return group[0].name
    if keys:
        values = {"algo": group[0].algo, "env": group[0].env, **group[0].config}
        return ", ".join(f"{k}={values.get(k)}" for k in keys) + f" ({len(group)} runs)"
    return f"{group[0].algo} {group[0].env} ({len(group)} seeds)"


def group_runs(infos: Sequence[RunInfo], keys: Sequence[str] | None = None) -> list[list[RunInfo]]:
    """Runs grouped by :func:`group_key`, groups in order of their first run."""
    groups: dict[str, list[RunInfo]] = {}
    for info in infos:
        groups.setdefault(group_key(info, keys), []).append(info)
    return list(groups.values())


def config_keys(infos: Sequence[RunInfo]) -> list[str]:
    """The settings any of the runs has, for choosing what to group by: "algo", "env", then config fields."""
    keys = sorted({k for info in infos for k in info.config})
    return ["algo", "env"] + [k for k in keys if k not in ("algo", "env")]


@dataclass
class SeedAggregate:
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray   # min over seeds
    high: np.ndarray  # max over seeds
    stderr: np.ndarray  # std (ddof=1) / sqrt(k); 0 with one seed
    count: int


def aggregate_seeds(curves: Sequence[tuple[np.ndarray, np.ndarray]], max_points: int | None = None) -> SeedAggregate:
    """Mean, min, max and standard error of several ``(x, y)`` curves on a common grid: the union of their
    x values where all of them are defined (from the largest first x to the smallest last x), each curve
    linearly interpolated; with ``max_points``, an evenly spaced grid of at most that many points."""
    curves = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in curves if len(x)]
    if not curves:
        empty = np.empty(0)
        return SeedAggregate(empty, empty, empty, empty, empty, 0)
    start = max(x[0] for x, _ in curves)
    end = min(x[-1] for x, _ in curves)
    if end < start:
        grid = np.empty(0)
    elif max_points is not None and sum(len(x) for x, _ in curves) > max_points:
        grid = np.linspace(start, end, max_points)
    else:
        grid = np.unique(np.concatenate([x[(x >= start) & (x <= end)] for x, _ in curves]))
    stack = np.stack([np.interp(grid, x, y) for x, y in curves])
    k = len(curves)
    stderr = stack.std(axis=0, ddof=1) / math.sqrt(k) if k > 1 else np.zeros(len(grid))
    return SeedAggregate(grid, stack.mean(axis=0), stack.min(axis=0), stack.max(axis=0), stderr, k)


MISSING = "(not set)"


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, value in a, value in b)`` for each setting that differs (a key only one has shows MISSING)."""
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, MISSING), b.get(key, MISSING)
        if key not in a or key not in b or va != vb:
            rows.append((key, va, vb))
    return rows
