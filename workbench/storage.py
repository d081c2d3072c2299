"""Durable file writes shared by every store (runs, rollouts, labels, prediction sets, reward models).

A file written with :func:`atomic_write` is either absent or complete, even if the process is killed
or the machine loses power mid-write: the bytes go to a temporary file in the same folder, are fsynced,
renamed over the final name (atomic on POSIX), and the folder is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, then atomically put it in place."""
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One SQLite write transaction on an autocommit connection (``isolation_level=None``).

    ``BEGIN IMMEDIATE`` takes the write lock before the first read, so ``busy_timeout`` applies to it and two
    writers never both act on what they read (a deferred transaction upgrading to a write can fail with
    SQLITE_BUSY at once). Any exception rolls the whole transaction back: readers see all of it or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
