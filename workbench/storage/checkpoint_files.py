"""Checkpoint files as the run store reads them: verified against the SHA-256 recorded at save time, loaded
with ``torch.load(weights_only=True)``, and checked for the structure their consumer needs. A file that fails
any of that is *damaged* (:class:`DamagedCheckpointError`, naming the file); the run store then falls back to
the newest intact checkpoint (:meth:`workbench.storage.runs.RunStore.load_intact_checkpoint`). Nothing here
changes or deletes a file.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path


class DamagedCheckpointError(ValueError):
    """A checkpoint file that is missing, empty, altered since it was saved, unreadable or of the wrong
    structure. ``path`` and ``step`` name it."""

    def __init__(self, message: str, path: Path, step: int):
        super().__init__(message)
        self.path, self.step = path, step


def warn_damaged(exc: DamagedCheckpointError) -> None:
    """The default report of a damaged checkpoint skipped in favour of an older one."""
    print(f"warning: {exc}; falling back to the newest intact checkpoint before it", file=sys.stderr)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_verified(run_id: str, step: int, path: Path, digest: str | None, map_location, check) -> dict:
    """The state in checkpoint ``path`` (run ``run_id`` at ``step``), or DamagedCheckpointError saying why not.
    ``digest``: the SHA-256 recorded at save time (None for checkpoints saved before checksums); ``check(state)``
    returns a problem with the structure (e.g. a missing key) or None."""
    import torch

    def damaged(reason: str) -> DamagedCheckpointError:
        return DamagedCheckpointError(f"checkpoint {path} (run {run_id!r}, step {step}) is damaged: {reason}",
                                      path, step)

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise damaged("the file is missing") from None
    except OSError as e:
        raise damaged(f"the file cannot be read ({e.strerror})") from None
    if size == 0:
        raise damaged("the file is empty (0 bytes)")
    if digest is not None and sha256_of(path) != digest:
        raise damaged(f"its SHA-256 differs from the one recorded when it was saved ({size:,} bytes now; "
                      "truncated or overwritten)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if digest is not None and "weights only" in str(e).lower():
            # Intact as saved but holding objects other than tensors and containers: refused, not damaged.
            e.add_note(f"while loading checkpoint {path} (run {run_id!r}, step {step})")
            raise
        raise damaged(f"torch cannot read it ({str(e).splitlines()[0][:200]})") from None
    except Exception as e:  # truncated zip, random bytes, an I/O error: torch raises several kinds
        raise damaged(f"torch cannot read it ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
                      ) from None
    problem = check(state) if check is not None else None
    if problem:
        raise damaged(problem)
    return state


def newest_intact(run_id: str, checkpoints: dict[int, tuple[Path, str | None]], map_location, check,
                  on_damaged) -> tuple[int, Path, dict]:
    """``(step, path, state)`` of the newest intact of ``checkpoints`` (step -> (path, recorded SHA-256)); each
    damaged newer one is passed to ``on_damaged`` first. DamagedCheckpointError listing them all if none is."""
    damaged = []
    for step in sorted(checkpoints, reverse=True):
        try:
            return step, checkpoints[step][0], load_verified(run_id, step, *checkpoints[step], map_location, check)
        except DamagedCheckpointError as exc:
            damaged.append(exc)
            if on_damaged is not None:
                on_damaged(exc)
    raise DamagedCheckpointError(f"every checkpoint of run {run_id!r} is damaged: " +
                                 "; ".join(str(e) for e in damaged), damaged[0].path, damaged[0].step)
