"""Stored sets of binary predictions (confidence, outcome) for calibration plots.

A *prediction set* is N pairs (confidence, outcome): ``confidence[i]`` in [0, 1] is a predicted probability
that ``outcome[i] == 1``. The Calibration tab of the dashboard (``widgets.calibration_tab``) plots any stored
set as a reliability diagram. Typical producers:

* ``source="reward_model"`` - a reward model's held-out P(A > B) against labelers' choices (outcome 1 = the
  labelers preferred A; "equal" excluded), saved by the reward-model trainer;
* ``source="value_function"`` - a policy's value estimate read as a predicted success probability on a game
  with binary outcomes (:func:`predictions_from_episodes`);
* ``source="jsonl"`` - an imported file of ``{"confidence": p, "correct": 0/1}`` lines
  (:meth:`PredictionStore.import_jsonl`);
* anything else (e.g. "calibrated_math", "verifier") - a free string.

What is stored where
--------------------
Under the store root (the ``root`` argument, else ``$WORKBENCH_HOME``, else ``./runs`` - the same root as
:class:`workbench.storage.runs.RunStore`):

* ``<root>/predictions/<id>.npz`` - ``confidence`` (float64), ``outcome`` (int8) and ``meta_json`` (the meta
  dict as a JSON string, so a file is self-describing even without the index); loaded with
  ``allow_pickle=False`` (a file cannot run code when read).
* ``<root>/predictions.sqlite`` - its own SQLite database (WAL) with one table ``prediction_sets``
  (id, name, source, n, created_at, meta as JSON, accuracy, mean confidence, file path relative to root).
  Its own file, so it never touches the run store's schema.

Durability: the npz is written to a temporary file in the same directory, flushed and fsynced, moved onto
its final name with ``os.replace`` (atomic), the directory fsynced, and only then the index row is
committed (``synchronous=FULL``). The index is the source of truth: a crash leaves at worst an unindexed
file, never an index row pointing at a half-written file. Imports are all or nothing: every line of a JSONL
file is checked before anything is written, and all problems are reported with their line numbers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.storage.durable import atomic_write, connect, immediate_transaction
from workbench.storage.runs import default_root

__all__ = [
    "SOURCES",
    "SUCCESS_REWARD",
    "PredictionImportError",
    "PredictionSetInfo",
    "PredictionStore",
    "UnknownPredictionSetError",
    "parse_predictions_jsonl",
    "predictions_from_episodes",
    "save_value_function_predictions",
]

DB_FILENAME = "predictions.sqlite"
SCHEMA_VERSION = 1
#: The sources the workbench itself writes; any other non-empty string is accepted too.
SOURCES = ("reward_model", "value_function", "jsonl")
MAX_REPORTED_ERRORS = 20

#: Reward a game pays exactly once, on success, and never otherwise: the games where "return >= reward" is
#: a binary outcome. From procgen's C++ sources (``GOAL_REWARD = 10.0f`` in coinrun.cpp, ninja.cpp,
#: jumper.cpp, which pay no other reward).
SUCCESS_REWARD = {"coinrun": 10.0, "ninja": 10.0, "jumper": 10.0}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prediction_sets (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    source          TEXT NOT NULL,
    n               INTEGER NOT NULL,
    created_at      REAL NOT NULL,
    meta            TEXT NOT NULL,
    accuracy        REAL NOT NULL,
    mean_confidence REAL NOT NULL,
    path            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS prediction_sets_source ON prediction_sets (source, created_at)
"""
_COLUMNS = "id, name, source, n, created_at, meta, accuracy, mean_confidence, path"


class UnknownPredictionSetError(ValueError):
    """A prediction-set id that is not in the store."""


class PredictionImportError(ValueError):
    """A JSONL import that was refused. ``errors``: every problem found, as (line number, message)."""

    def __init__(self, source: str, errors: list[tuple[int, str]], total_lines: int):
        self.source, self.errors, self.total_lines = source, list(errors), total_lines
        shown = "\n".join(f"  line {ln}: {msg}" for ln, msg in self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{source}: nothing imported, {len(self.errors)} problem{'s' if len(self.errors) != 1 else ''} "
            f"in {total_lines} lines (each line must be a JSON object like "
            f'{{"confidence": 0.8, "correct": 1}}):\n{shown}{tail}')


@dataclass(frozen=True)
class PredictionSetInfo:
    """One stored prediction set (the index row). ``accuracy``: fraction of outcomes equal to 1;
    ``path``: the npz file (absolute)."""

    id: str
    name: str
    source: str
    n: int
    created_at: float
    meta: dict = field(default_factory=dict)
    accuracy: float = float("nan")
    mean_confidence: float = float("nan")
    path: str = ""


# ------------------------------------------------------------------------------------------- validation

def _check_text(label: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{label} must be a non-empty string, got {value!r}")
    return value.strip()


def _check_arrays(confidence, outcome) -> tuple[np.ndarray, np.ndarray]:
    try:
        c = np.asarray(confidence, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("confidence must be numbers in [0, 1] (predicted P(outcome = 1))") from None
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"confidence must be a non-empty 1-D array; got shape {c.shape}")
    if not np.all(np.isfinite(c)) or c.min() < 0.0 or c.max() > 1.0:
        bad = c[~(np.isfinite(c) & (c >= 0) & (c <= 1))][:3].tolist()
        raise ValueError(f"confidence must be finite probabilities in [0, 1]; found e.g. {bad} "
                         f"(divide percentages by 100; apply a sigmoid to logits)")
    o = np.asarray(outcome)
    if o.ndim != 1:
        raise ValueError(f"outcome must be a 1-D array of 0/1; got shape {o.shape}")
    if o.shape != c.shape:
        raise ValueError(f"confidence and outcome must have the same length; got {c.size} and {o.size}")
    try:
        of = o.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"outcome must be 0/1 (or bool); got dtype {o.dtype}") from None
    if not np.all((of == 0) | (of == 1)):
        raise ValueError(f"outcome must be 0/1 (or bool); found e.g. {np.unique(o[(of != 0) & (of != 1)])[:3].tolist()}")
    return c, of.astype(np.int8)


def _meta_json(meta) -> str:
    if meta is None:
        return "{}"
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict (JSON object), got {type(meta).__name__}")  # noqa: TRY004
    try:
        return json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serializable with finite numbers: {exc}") from None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-.")[:40] or "set"


# ------------------------------------------------------------------------------------------ JSONL parsing

def _read_text(source) -> tuple[str, str]:
    """(text, display name) from a path, bytes, or a file-like object (text or binary)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        label = str(path)
    elif isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), "<uploaded file>"
    elif hasattr(source, "read"):
        data, label = source.read(), getattr(source, "name", "<file>")
        if isinstance(data, str):
            return data, str(label)
    else:
        raise ValueError(f"expected a path, bytes or a file object; got {type(source).__name__}")
    try:
        return data.decode("utf-8-sig"), label
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PredictionImportError(label, [(line, f"not UTF-8 text (byte {exc.start})")],
                                    data.count(b"\n") + 1) from None


def _parse_lines(lines: Iterable[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    conf, corr, errors, total = [], [], [], 0
    for lineno, line in enumerate(lines, 1):
        total = lineno
        if not line.strip():
            continue  # blank lines (e.g. a trailing newline) are not records
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append((lineno, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(rec, dict):
            errors.append((lineno, f"expected a JSON object, got {type(rec).__name__}"))
            continue
        problems = []
        p = rec.get("confidence")
        if "confidence" not in rec:
            problems.append("missing 'confidence'")
        elif isinstance(p, bool) or not isinstance(p, (int, float)):
            problems.append(f"'confidence' must be a number in [0, 1], got {p!r}")
        elif not (math.isfinite(p) and 0.0 <= p <= 1.0):
            hint = " (divide percentages by 100)" if math.isfinite(p) and 1.0 < p <= 100.0 else ""
            problems.append(f"'confidence' must be in [0, 1], got {p!r}{hint}")
        y = rec.get("correct")
        if "correct" not in rec:
            problems.append("missing 'correct'")
        elif not (isinstance(y, bool) or (isinstance(y, (int, float)) and y in (0, 1))):
            problems.append(f"'correct' must be 0, 1, true or false, got {y!r}")
        if problems:
            errors.append((lineno, "; ".join(problems)))
            continue
        conf.append(float(p))
        corr.append(int(bool(y)))
    if errors:
        raise PredictionImportError(label, errors, total)
    if not conf:
        raise PredictionImportError(label, [(max(total, 1), "no records: the file is empty")], total)
    return np.asarray(conf, dtype=np.float64), np.asarray(corr, dtype=np.int8)


def parse_predictions_jsonl(source) -> tuple[np.ndarray, np.ndarray]:
    """Read ``{"confidence": p, "correct": 0/1}`` lines (extra keys ignored, blank lines skipped).

    ``source``: a path, bytes, or a file object. ``correct`` may be 0, 1, true or false; ``confidence`` a
    number in [0, 1]. Every line is checked; any problem raises :class:`PredictionImportError` listing ALL
    problems with their 1-based line numbers. Returns (confidence float64, correct int8).
    """
    text, label = _read_text(source)
    return _parse_lines(text.splitlines(), label)


# ------------------------------------------------------------------------------------------------ store

class PredictionStore:
    """Prediction sets under one root directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else default_root()).expanduser().absolute()
        self.directory = self.root / "predictions"
        self.db_path = self.root / DB_FILENAME
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.db_path} has schema version {version}, newer than this workbench "
                                   f"understands ({SCHEMA_VERSION}); upgrade the workbench to open it")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # A connection per operation: cheap, and safe across the threads of a served dashboard.
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # FULL: an index row survives an OS crash once committed (the store writes rarely).
        conn = connect(self.db_path, synchronous="FULL")
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn, immediate_transaction(conn):
            yield conn

    # ---- writing --------------------------------------------------------------------------------

    def save(self, name: str, confidence, outcome, *, source: str, meta: dict | None = None) -> str:
        """Store N predictions; returns the new set's id (e.g. ``rm-heldout-20261121-093501-a1b2c3``).

        ``confidence``: (N,) predicted P(outcome = 1) in [0, 1]; ``outcome``: (N,) 0/1 or bool; ``source``:
        "reward_model" | "value_function" | "jsonl" | any other non-empty string; ``meta``: a JSON object
        (how the predictions were made: model, split, conventions). Bad input raises ValueError before
        anything is written.
        """
        name = _check_text("name", name)
        source = _check_text("source", source)
        c, o = _check_arrays(confidence, outcome)
        meta_json = _meta_json(meta)
        set_id = f"{_slug(name)}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
        final = self.directory / f"{set_id}.npz"
        atomic_write(final, lambda f: np.savez_compressed(f, confidence=c, outcome=o,
                                                           meta_json=np.array(meta_json)))
        try:
            with self._write() as conn:
                conn.execute(f"INSERT INTO prediction_sets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (set_id, name, source, int(c.size), time.time(), meta_json, float(o.mean()),
                              float(c.mean()), final.relative_to(self.root).as_posix()))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                final.unlink()
            raise
        return set_id

    def import_jsonl(self, source, *, name: str | None = None, meta: dict | None = None) -> str:
        """Import a JSONL file of ``{"confidence": p, "correct": 0/1}`` lines as one set (source "jsonl").

        ``source``: a path, bytes (e.g. an uploaded file's content) or a file object. All or nothing: any bad
        line raises :class:`PredictionImportError` (a ValueError) listing every problem by line number, and
        nothing is stored. ``name`` defaults to the file's name without its extension.
        """
        conf, correct = parse_predictions_jsonl(source)
        if name is None:
            if isinstance(source, (str, os.PathLike)):
                name = Path(source).stem
            else:
                name = Path(str(getattr(source, "name", "") or "imported")).stem or "imported"
        info = {"imported_from": Path(str(source)).name if isinstance(source, (str, os.PathLike)) else name}
        return self.save(name, conf, correct, source="jsonl", meta={**info, **(meta or {})})

    def delete(self, set_id: str) -> None:
        """Remove a set (index row first, then its file)."""
        info = self.info(set_id)
        with self._write() as conn:
            conn.execute("DELETE FROM prediction_sets WHERE id = ?", (set_id,))
        with contextlib.suppress(FileNotFoundError):
            Path(info.path).unlink()

    # ---- reading --------------------------------------------------------------------------------

    def _info(self, row) -> PredictionSetInfo:
        set_id, name, source, n, created_at, meta, acc, mean_c, path = row
        return PredictionSetInfo(id=set_id, name=name, source=source, n=int(n), created_at=float(created_at),
                                 meta=json.loads(meta), accuracy=float(acc), mean_confidence=float(mean_c),
                                 path=str(self.root / path))

    def list(self, source: str | None = None) -> list[PredictionSetInfo]:
        """Every set (or those of one ``source``), newest first."""
        query, args = f"SELECT {_COLUMNS} FROM prediction_sets", ()
        if source is not None:
            query, args = query + " WHERE source = ?", (source,)
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
        return [self._info(r) for r in rows]

    def info(self, set_id: str) -> PredictionSetInfo:
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM prediction_sets WHERE id = ?", (set_id,)).fetchone()
        if row is None:
            raise UnknownPredictionSetError(
                f"unknown prediction set {set_id!r} in {self.db_path}; list them with "
                f"PredictionStore({str(self.root)!r}).list()")
        return self._info(row)

    def load(self, set_id: str) -> tuple[np.ndarray, np.ndarray, dict]:
        """(confidence float64 (N,), outcome int8 (N,), meta dict) of a stored set."""
        info = self.info(set_id)
        with np.load(info.path, allow_pickle=False) as data:
            return data["confidence"].copy(), data["outcome"].copy(), dict(info.meta)


# -------------------------------------------------------------------------------- value functions (RL)

def predictions_from_episodes(episodes, success_reward: float = 10.0, *, value_scale: float = 1.0,
                              include_truncated: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """A value function's predicted success probability on a binary-outcome game, from rollout episodes.

    For each :class:`workbench.episodes.rollouts.Episode` (only ``values``, ``rewards``, ``dones``, ``ret`` are used):

    * confidence = clip(value_scale * V(s_0) / success_reward, 0, 1), V(s_0) = ``ep.values[0]``;
    * outcome = 1 if the episode's return reached ``success_reward`` (``ep.ret >= success_reward``), else 0.

    Why this mapping: on a game that pays ``success_reward`` exactly once on success and nothing otherwise
    (CoinRun, Ninja, Jumper: 10, see :data:`SUCCESS_REWARD`), the undiscounted expected return is
    ``success_reward * P(success)``, so V / success_reward estimates P(success). Caveats, stated so the plot
    is read correctly:

    * Discounting. The value head is trained on the DISCOUNTED return, so V(s_0) estimates
      ``success_reward * E[gamma^(T-1) 1{success}]`` with T the steps to success: the mapping is biased LOW by
      about gamma^(T-1) (gamma = 0.999 and a 100-step success: x0.90; 500 steps: x0.61). An under-confident
      curve is partly this, not miscalibration. We do not divide by gamma^(T-1) using the realized length,
      since the length is only known after the outcome (it would leak the outcome into the prediction).
    * Reward normalization. PPO/PPG here train the value head on rewards divided by a running std of the
      discounted return (:class:`workbench.rl.algos.returns.RewardNormalizer`). Episodes recorded by
      :func:`workbench.episodes.rollouts.record_run` already hold values in reward units (the recorder multiplies by
      the checkpoint's normalizer scale), so the default ``value_scale=1.0`` is right for them; for raw
      value-head outputs pass ``value_scale = sqrt(ret_rms.var + 1e-8)`` from the checkpoint's
      ``reward_normalizer`` state.
    * Clipping to [0, 1] hides values outside the range; how many were clipped is in the returned meta.

    Episodes whose last step is not terminal (cut by ``max_steps``) have no outcome and are skipped unless
    ``include_truncated`` (then they are scored by the return so far: no success yet counts as a failure).
    Episodes with NaN values (a random policy) are an error. Returns (confidence, outcome, meta) ready for
    ``PredictionStore.save(..., source="value_function", meta=meta)``.
    """
    if not (isinstance(success_reward, (int, float)) and math.isfinite(success_reward) and success_reward > 0):
        raise ValueError(f"success_reward must be a positive number (10 for CoinRun); got {success_reward!r}")
    if not (isinstance(value_scale, (int, float)) and math.isfinite(value_scale) and value_scale > 0):
        raise ValueError(f"value_scale must be a positive number; got {value_scale!r}")
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes given")
    raw, outcome, ids, skipped = [], [], [], 0
    for i, ep in enumerate(episodes):
        values = np.asarray(ep.values, dtype=np.float64)
        if values.size == 0:
            raise ValueError(f"episode {i} is empty")
        if not np.isfinite(values[0]):
            raise ValueError(f"episode {i} has no value estimate (values[0] is {values[0]}): record it with a "
                             f"trained policy (a random policy has NaN values)")
        dones = np.asarray(ep.dones, dtype=bool)
        if not (dones.size and dones[-1]) and not include_truncated:
            skipped += 1
            continue
        raw.append(values[0] * value_scale / success_reward)
        outcome.append(int(float(ep.ret) >= success_reward - 1e-6))
        ids.append(getattr(ep, "id", None))
    if not raw:
        raise ValueError(f"all {len(episodes)} episodes were truncated (not terminal); pass include_truncated=True "
                         f"to score them by the return so far")
    raw = np.asarray(raw)
    conf = np.clip(raw, 0.0, 1.0)
    envs = sorted({str(getattr(ep, "env", "")) for ep in episodes} - {""})
    meta = {"mapping": "clip(value_scale * V(s0) / success_reward, 0, 1)", "success_reward": float(success_reward),
            "value_scale": float(value_scale), "n_clipped_low": int((raw < 0).sum()),
            "n_clipped_high": int((raw > 1).sum()), "n_truncated_skipped": int(skipped),
            "include_truncated": bool(include_truncated), "envs": envs,
            "episode_ids": [x for x in ids if x is not None]}
    return conf, np.asarray(outcome, dtype=np.int8), meta


def save_value_function_predictions(run_id: str, store_root=None, *, checkpoint_step: int | None = None,
                                    include_truncated: bool = False) -> str:
    """Score a run's value function as a success predictor on its recorded episodes and store the set.

    Reads the run's episodes from the rollout store (``workbench rollout RUN`` records them; all checkpoints,
    or one ``checkpoint_step``), maps them with :func:`predictions_from_episodes` (the game's
    :data:`SUCCESS_REWARD`; values are already in reward units, as :func:`workbench.episodes.rollouts.record_run`
    stores them) and saves the set with source ``"value_function"``; returns its id."""
    from workbench.episodes.rollouts import RolloutStore

    rollouts = RolloutStore(store_root)
    infos = [i for i in rollouts.list(run_id=run_id, checkpoint_step=checkpoint_step) if i.policy == "checkpoint"]
    if not infos:
        at = "" if checkpoint_step is None else f" at checkpoint step {checkpoint_step}"
        raise ValueError(f"run {run_id!r} has no recorded episodes{at}: record some first, e.g. "
                         f"`workbench rollout {run_id} --episodes 100 --levels test --no-hires`")
    games = sorted({i.env for i in infos})
    unknown = [g for g in games if g not in SUCCESS_REWARD]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} has no binary success outcome; a value function reads as a success "
                         f"probability only on {', '.join(sorted(SUCCESS_REWARD))}")
    [game] = games  # a run plays one game
    episodes = [rollouts.load(i.id, hires=False) for i in infos]
    confidence, outcome, meta = predictions_from_episodes(episodes, SUCCESS_REWARD[game],
                                                          include_truncated=include_truncated)
    steps = sorted({i.checkpoint_step for i in infos})
    meta.update(run_id=run_id, checkpoint_steps=steps)
    at = f"step {steps[0]:,}" if len(steps) == 1 else f"{len(steps)} checkpoints"
    return PredictionStore(store_root).save(f"{run_id} V(s0)/{SUCCESS_REWARD[game]:g} @ {at}", confidence, outcome,
                                            source="value_function", meta=meta)
