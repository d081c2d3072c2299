"""Durable file writes shared by every store (runs, rollouts, labels, prediction sets, reward models).

A file written with :func:`atomic_write` is either absent or complete, even if the process is killed
or the machine loses power mid-write: the bytes go to a temporary file in the same folder, are fsynced,
renamed over the final name (atomic on POSIX), and the folder is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import json
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


BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another's lock before SQLITE_BUSY


def connect(db_path: str | os.PathLike, *, synchronous: str = "NORMAL", wal: bool = True) -> sqlite3.Connection:
    """An autocommit SQLite connection (writes go through :func:`immediate_transaction`) that waits up to
    :data:`BUSY_TIMEOUT_S` for other writers. ``wal``: switch the file to write-ahead logging (readers never
    block the writer); a store that set it once on the file can skip the lock this takes."""
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def input_file(path: str | os.PathLike, what: str = "file", *, folder: bool = False) -> Path:
    """``path`` when it is a readable file (``folder``: a folder); else a one-line ValueError saying what is
    wrong with it (missing, a folder / not a folder, unreadable), for every command's file arguments."""
    path = Path(path).expanduser()
    if not path.exists():
        where = path.parent if str(path.parent) not in ("", ".") else Path.cwd()
        raise ValueError(f"{what} {path} does not exist" + ("" if where.is_dir() else f" (no folder {where})"))
    if path.is_dir() != folder:
        raise ValueError(f"{what} {path} is a folder, not a file" if not folder else f"{what} {path} is not a folder")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} {path} is not readable (permissions)")
    return path


def output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """``path`` when a file can be written there (its folder exists and it is not a folder itself)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name such as {path / 'labels.jsonl'}")
    parent = path.parent if str(path.parent) not in ("", ".") else Path.cwd()
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{what} {path}: the folder {parent} is not writable")
    return path


def read_jsonl(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """The JSON objects of a JSON Lines file as (line number, object), blank lines skipped. A line that is not
    a JSON object raises ValueError naming the file and the line, so an import can refuse the whole file; so
    does a path that is missing, a folder or unreadable."""
    path = input_file(path, "JSONL file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    return parse_jsonl(text, path)


def parse_jsonl(text: str, path) -> list[tuple[int, dict]]:
    """JSON Lines text as (line number, object), blank lines skipped; errors name ``path`` and the line."""
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows
