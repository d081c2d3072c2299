"""A run's checkpoints: saved atomically with their SHA-256 in the run store, listed, loaded with
``weights_only=True`` (no code runs from a checkpoint file), the newest intact one found when the latest is
damaged, and damaged or superseded files set aside (renamed), never deleted. Part of
:class:`workbench.storage.runs.RunStore`, which provides the connection (``_conn``, ``_write``) and run checks.
"""

from __future__ import annotations

import contextlib
import operator
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from workbench.storage.checkpoint_files import (
    DamagedCheckpointError,
    load_verified,
    newest_intact,
    sha256_of,
    warn_damaged,
)
from workbench.storage.durable import atomic_write

DEFAULT_KEEP_CHECKPOINTS = 3

def _check_int(label: str, value: Any, *, minimum: int | None = 0) -> int:
    """``value`` as an int (int, numpy integer or integer 0-d tensor), else a clear ValueError."""
    kind = "an integer" if minimum is None else f"an integer >= {minimum}"
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{label} must be {kind}, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{label} must be {kind}, got {value}")
    return value


class RunCheckpoints:
    """Checkpoint methods of the run store (a mixin: `RunStore` supplies `root`, `_conn`, `_write`,
    `_require_run`)."""

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / run_id

    def save_checkpoint(self, run_id: str, step: int, state: dict, *, keep: int = DEFAULT_KEEP_CHECKPOINTS) -> Path:
        """Atomically write ``state`` as ``checkpoints/<run_id>/step_<step>.pt``, register it, and
        delete all but the ``keep`` highest-step checkpoints of the run. Returns the file's path."""

        step = _check_int("step", step)
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict, got {type(state).__name__}")
        keep = _check_int("keep", keep, minimum=1)
        self._require_run(self._conn(), run_id)
        directory = self.checkpoint_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"step_{step}.pt"

        atomic_write(final, lambda f: torch.save(state, f))
        digest = sha256_of(final)  # read back from the page cache: verified on every load

        relative = final.relative_to(self.root).as_posix()
        with self._write(durable=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, step, path, created_at, sha256) VALUES (?, ?, ?, ?, ?)",
                (run_id, step, relative, time.time(), digest),
            )
            old = conn.execute(
                "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT -1 OFFSET ?",
                (run_id, keep),
            ).fetchall()
            conn.executemany("DELETE FROM checkpoints WHERE run_id = ? AND step = ?", [(run_id, s) for s, _ in old])
        # Rows go first, files after: a crash in between leaves an orphan file, never a dangling row.
        for _, path in old:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / path)
        return final

    def list_checkpoints(self, run_id: str) -> list[tuple[int, Path]]:
        """``(step, path)`` of the run's registered checkpoints, by increasing step."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute("SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step", (run_id,))
        return [(step, self.root / path) for step, path in rows]

    def latest_checkpoint(self, run_id: str) -> tuple[int, Path] | None:
        """``(step, path)`` of the highest-step checkpoint, or None if the run has none."""
        checkpoints = self.list_checkpoints(run_id)
        return checkpoints[-1] if checkpoints else None

    def load_checkpoint(self, run_id: str, step: int | None = None, map_location="cpu", *,
                        check: Callable[[Any], str | None] | None = None,
                        on_damaged: Callable[[DamagedCheckpointError], None] | None = warn_damaged) -> dict:
        """Load a checkpoint with ``torch.load(weights_only=True)``, which only un-pickles tensors, numbers,
        strings and containers of them. See :meth:`load_intact_checkpoint` (this returns only the state)."""
        return self.load_intact_checkpoint(run_id, step, map_location, check=check, on_damaged=on_damaged)[2]

    def load_intact_checkpoint(self, run_id: str, step: int | None = None, map_location="cpu", *,
                               check: Callable[[Any], str | None] | None = None,
                               on_damaged: Callable[[DamagedCheckpointError], None] | None = warn_damaged,
                               ) -> tuple[int, Path, dict]:
        """``(step, path, state)`` of the checkpoint at ``step``, or with ``step=None`` of the newest intact one.

        A checkpoint is damaged when its file is missing or empty, its SHA-256 differs from the one recorded
        at save time (truncated, overwritten), torch cannot read it, or ``check(state)`` returns a problem
        (e.g. keys a consumer needs). An explicit ``step`` that is damaged raises
        :class:`DamagedCheckpointError` naming the file; with ``step=None`` each damaged one is reported to
        ``on_damaged`` (default: a warning on stderr) and the next older one is tried. No file is changed."""
        checkpoints = self._checkpoint_rows(run_id)
        if not checkpoints:
            raise ValueError(f"run {run_id!r} has no checkpoints")
        if step is not None:
            if step not in checkpoints:
                raise ValueError(f"run {run_id!r} has no checkpoint at step {step}; it has steps {sorted(checkpoints)}")
            return step, checkpoints[step][0], load_verified(run_id, step, *checkpoints[step], map_location, check)
        return newest_intact(run_id, checkpoints, map_location, check, on_damaged)

    def _checkpoint_rows(self, run_id: str) -> dict[int, tuple[Path, str | None]]:
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute("SELECT step, path, sha256 FROM checkpoints WHERE run_id = ? ORDER BY step", (run_id,))
        return {step: (self.root / path, digest) for step, path, digest in rows}

    def set_aside_checkpoint(self, run_id: str, step: int, reason: str) -> Path | None:
        """Take a checkpoint out of the run (its row) without deleting its file: the file is renamed to
        ``step_<N>.pt.<reason>`` (kept for inspection; never picked up or pruned). Returns the new path, or
        None when the file was already missing. Used when a resume falls back past it."""
        rows = self._checkpoint_rows(run_id)
        if step not in rows:
            return None
        path = rows[step][0]
        target = None
        if path.exists():
            target = path.with_name(f"{path.name}.{reason}")
            if target.exists():
                target = path.with_name(f"{path.name}.{reason}-{int(time.time())}")
            os.replace(path, target)
        with self._write(durable=True) as conn:
            conn.execute("DELETE FROM checkpoints WHERE run_id = ? AND step = ?", (run_id, step))
        return target
