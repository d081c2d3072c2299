"""Demonstration sets: named, ordered selections of recorded episodes (human or agent), and a file format to
export and import them.

Episodes stay where `workbench.episodes.rollouts.RolloutStore` keeps them; a set only names their ids. Sets
live in a small SQLite database beside the run store, ``<root>/demonstrations.sqlite`` (tables ``sets``,
``set_episodes`` and ``players``: the login of the person who played a human episode, when logins are on).
Every change is one immediate transaction (`workbench.storage.durable`), so a crash leaves a set either as
it was or fully changed.

Export format (``*.npz``, ``np.savez_compressed``, no pickles; documented in docs/demonstrations.md):
``header`` (JSON: ``format`` = "workbench-demonstrations", ``version`` 1, ``name``, ``episodes``: one dict
per episode with env, level_seed, levels, distribution_mode, policy, player, run_id, checkpoint_step, length)
and the episodes' per-step arrays concatenated in set order: ``frames`` (T, 64, 64, 3) uint8, ``actions``
(T,) int64, ``probs`` (T, 15) float32, ``values``, ``rewards`` (T,) float32, ``dones`` (T,) bool, and
``lengths`` (E,) int64, whose cumulative sum splits them into episodes.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.episodes.rollouts import Episode, RolloutStore, UnknownEpisodeError
from workbench.storage.durable import (
    atomic_write,
    connect,
    immediate_transaction,
    input_file,
)

FORMAT = "workbench-demonstrations"
FORMAT_VERSION = 1
_ARRAYS = ("frames", "actions", "probs", "values", "rewards", "dones")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sets (name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS set_episodes (
    set_name TEXT NOT NULL REFERENCES sets(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    episode_id TEXT NOT NULL,
    PRIMARY KEY (set_name, episode_id));
CREATE TABLE IF NOT EXISTS players (episode_id TEXT PRIMARY KEY, login TEXT, played_at REAL NOT NULL);
"""


class UnknownSetError(ValueError):
    """A demonstration set name that is not in the store."""


@dataclass(frozen=True)
class SetInfo:
    name: str
    description: str
    created_at: float
    episodes: int


@dataclass(frozen=True)
class SetSummary:
    """A set's size: episodes and steps, and how many of each people played (`missing`: ids whose episode was
    deleted from the rollout store since; they count in nothing else)."""

    name: str
    description: str
    episodes: int
    steps: int
    human_episodes: int
    human_steps: int
    missing: int

    @property
    def human_share(self) -> float:
        """The fraction of the set's steps that people played (what behavioural cloning samples); NaN if empty."""
        return self.human_steps / self.steps if self.steps else float("nan")


WHO = ("human", "agent")  # filters of `recorded`: people's episodes, or every other policy's


def check_set_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid demonstration set name {name!r}: use 1-100 letters, digits, '_', '.', '-', "
                         "starting with a letter or digit")
    return name


class DemonstrationStore:
    """Named demonstration sets over the recorded episodes under a store root."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.rollouts = RolloutStore(root)
        self.root = self.rollouts.root
        self.db_path = self.root / "demonstrations.sqlite"
        self._db = connect(self.db_path)
        with immediate_transaction(self._db) as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    # ---- human players ---------------------------------------------------------------------------------
    def mark_human(self, episode_id: str, login: str | None) -> None:
        """Record who played a human episode (`login` None when logins are off)."""
        with immediate_transaction(self._db) as conn:
            conn.execute("INSERT OR REPLACE INTO players VALUES (?, ?, ?)", (episode_id, login, time.time()))

    def player(self, episode_id: str) -> str | None:
        row = self._db.execute("SELECT login FROM players WHERE episode_id = ?", (episode_id,)).fetchone()
        return None if row is None else row[0]

    # ---- sets --------------------------------------------------------------------------------------------
    def create(self, name: str, episode_ids=(), description: str = "", *, replace: bool = False) -> SetInfo:
        """A new set of these episodes, in this order (`replace`: overwrite a set of the same name)."""
        check_set_name(name)
        ids = self._known_ids(episode_ids)
        with immediate_transaction(self._db) as conn:
            if conn.execute("SELECT 1 FROM sets WHERE name = ?", (name,)).fetchone():
                if not replace:
                    raise ValueError(f"demonstration set {name!r} exists already; pick another name or replace it")
                conn.execute("DELETE FROM set_episodes WHERE set_name = ?", (name,))
                conn.execute("DELETE FROM sets WHERE name = ?", (name,))
            conn.execute("INSERT INTO sets VALUES (?, ?, ?)", (name, str(description), time.time()))
            conn.executemany("INSERT INTO set_episodes VALUES (?, ?, ?)",
                             [(name, i, episode_id) for i, episode_id in enumerate(ids)])
        return self.info(name)

    def add(self, name: str, episode_ids) -> SetInfo:
        """Append episodes to a set (ones already in it are skipped)."""
        ids = self._known_ids(episode_ids)
        with immediate_transaction(self._db) as conn:
            self._require(conn, name)
            self._append(conn, name, ids)
        return self.info(name)

    def collect(self, name: str, episode_ids, description: str = "") -> SetInfo:
        """Append episodes to set `name`, creating it (with `description`) when there is none of that name."""
        check_set_name(name)
        ids = self._known_ids(episode_ids)
        if not ids:
            raise ValueError("no episodes selected")
        with immediate_transaction(self._db) as conn:
            if conn.execute("SELECT 1 FROM sets WHERE name = ?", (name,)).fetchone() is None:
                conn.execute("INSERT INTO sets VALUES (?, ?, ?)", (name, str(description), time.time()))
            self._append(conn, name, ids)
        return self.info(name)

    def _known_ids(self, episode_ids) -> list[str]:
        """The ids, without repeats, each checked to be a recorded episode (UnknownEpisodeError naming it)."""
        ids = list(dict.fromkeys(str(e) for e in episode_ids))
        for episode_id in ids:
            self.rollouts.info(episode_id)
        return ids

    @staticmethod
    def _append(conn, name: str, ids: list[str]) -> None:
        start = conn.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM set_episodes WHERE set_name = ?",
                             (name,)).fetchone()[0]
        conn.executemany("INSERT OR IGNORE INTO set_episodes VALUES (?, ?, ?)",
                         [(name, start + offset, episode_id) for offset, episode_id in enumerate(ids)])

    def remove(self, name: str, episode_ids) -> SetInfo:
        with immediate_transaction(self._db) as conn:
            self._require(conn, name)
            conn.executemany("DELETE FROM set_episodes WHERE set_name = ? AND episode_id = ?",
                             [(name, str(e)) for e in episode_ids])
        return self.info(name)

    def delete(self, name: str) -> None:
        """Forget a set (its episodes stay recorded)."""
        with immediate_transaction(self._db) as conn:
            self._require(conn, name)
            conn.execute("DELETE FROM set_episodes WHERE set_name = ?", (name,))
            conn.execute("DELETE FROM sets WHERE name = ?", (name,))

    def _require(self, conn, name: str) -> None:
        if conn.execute("SELECT 1 FROM sets WHERE name = ?", (name,)).fetchone() is None:
            known = ", ".join(s.name for s in self.list()) or "none yet"
            raise UnknownSetError(f"unknown demonstration set {name!r}; sets: {known}")

    def info(self, name: str) -> SetInfo:
        row = self._db.execute("SELECT s.name, s.description, s.created_at, COUNT(e.episode_id) FROM sets s "
                               "LEFT JOIN set_episodes e ON e.set_name = s.name WHERE s.name = ? GROUP BY s.name",
                               (name,)).fetchone()
        if row is None:
            self._require(self._db, name)
        return SetInfo(*row)

    def list(self) -> list[SetInfo]:
        rows = self._db.execute("SELECT s.name, s.description, s.created_at, COUNT(e.episode_id) FROM sets s "
                                "LEFT JOIN set_episodes e ON e.set_name = s.name GROUP BY s.name ORDER BY s.name")
        return [SetInfo(*row) for row in rows]

    def episode_ids(self, name: str) -> list[str]:
        self._require(self._db, name)
        return [r[0] for r in self._db.execute(
            "SELECT episode_id FROM set_episodes WHERE set_name = ? ORDER BY position", (name,))]

    def episodes(self, name: str) -> list[Episode]:
        """The set's episodes, loaded (without their renders), in set order."""
        ids = self.episode_ids(name)
        if not ids:
            raise ValueError(f"demonstration set {name!r} holds no episodes")
        try:
            return [self.rollouts.load(e, hires=False) for e in ids]
        except UnknownEpisodeError as exc:
            raise ValueError(f"demonstration set {name!r} names an episode that was deleted: {exc}") from None

    # ---- what is recorded -----------------------------------------------------------------------------
    def recorded(self, env: str | None = None, who: str | None = None) -> list[dict]:
        """Recorded episodes (newest first) of game `env` and, with `who`, only people's ("human") or only the
        agents' ("agent"): one dict per episode with id, game, policy, login, level_seed, length, return."""
        if who is not None and who not in WHO:
            raise ValueError(f"who must be one of {WHO} or None (got {who!r})")
        logins = dict(self._db.execute("SELECT episode_id, login FROM players"))
        rows = []
        for info in self.rollouts.list(env=env or None, policy="human" if who == "human" else None):
            if who == "agent" and info.policy == "human":
                continue
            rows.append({"episode": info.id, "game": info.env, "policy": info.policy,
                         "login": logins.get(info.id), "level_seed": info.level_seed, "length": info.length,
                         "return": info.ret})
        return rows

    def games(self) -> list[str]:
        """The games that have recorded episodes."""
        return sorted({info.env for info in self.rollouts.list()})

    def summary(self, name: str) -> SetSummary:
        """How big the set is and how much of it people played (from the index: no episode is loaded)."""
        info = self.info(name)
        episodes = steps = human_episodes = human_steps = missing = 0
        for episode_id in self.episode_ids(name):
            try:
                recorded = self.rollouts.info(episode_id)
            except UnknownEpisodeError:
                missing += 1
                continue
            episodes += 1
            steps += recorded.length
            if recorded.policy == "human":
                human_episodes += 1
                human_steps += recorded.length
        return SetSummary(name, info.description, episodes, steps, human_episodes, human_steps, missing)

    # ---- files -------------------------------------------------------------------------------------------
    def export(self, name: str, path: str | os.PathLike) -> Path:
        """Write the set to `path` in the format of the module docstring (atomically; nothing is written when the
        set cannot be read)."""
        arrays = self._npz_arrays(name)
        return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))

    def export_bytes(self, name: str) -> bytes:
        """The set in the format of the module docstring, as bytes (a download)."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self._npz_arrays(name))
        return buffer.getvalue()

    def _npz_arrays(self, name: str) -> dict[str, np.ndarray]:
        episodes = self.episodes(name)
        meta = [dict(id=e.id, env=e.env, level_seed=e.level_seed, levels=e.levels,
                     distribution_mode=e.distribution_mode, policy=e.policy, player=self.player(e.id),
                     run_id=e.run_id, checkpoint_step=e.checkpoint_step, length=e.length) for e in episodes]
        header = dict(format=FORMAT, version=FORMAT_VERSION, name=name, description=self.info(name).description,
                      episodes=meta)
        arrays = {a: np.concatenate([getattr(e, a) for e in episodes]) for a in _ARRAYS}
        return dict(header=np.array(json.dumps(header)), lengths=np.array([e.length for e in episodes], np.int64),
                    **arrays)

    def import_file(self, path: str | os.PathLike, name: str | None = None) -> SetInfo:
        """Record the file's episodes into the rollout store and make them a set (named as in the file, or
        `name`). The whole file is checked before anything is stored."""
        path = input_file(path, "demonstration file")
        return self._import(path, path, name)

    def import_bytes(self, data: bytes, name: str | None = None, label: str = "the uploaded file") -> SetInfo:
        """`import_file` of a file's bytes (an upload); `label` names it in errors."""
        if not data:
            raise ValueError(f"{label} is empty")
        return self._import(io.BytesIO(data), label, name)

    def _import(self, source, path, name: str | None) -> SetInfo:
        try:
            with np.load(source, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {a: data[a] for a in (*_ARRAYS, "lengths")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} is not a {FORMAT} file ({type(exc).__name__}: {exc})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is not a {FORMAT} file of version {FORMAT_VERSION}")
        name = check_set_name(name or header.get("name"))
        lengths = arrays.pop("lengths")
        meta = header.get("episodes", [])
        if len(meta) != len(lengths) or lengths.sum() != len(arrays["actions"]) or (lengths < 1).any():
            raise ValueError(f"{path}: the episode lengths do not add up to the {len(arrays['actions'])} steps")
        bounds = np.cumsum(lengths)[:-1]
        pieces = {a: np.split(v, bounds) for a, v in arrays.items()}
        try:  # Episode checks shapes: a bad file fails here, before saving
            episodes = [Episode(**{a: pieces[a][i] for a in _ARRAYS}, env=m["env"], level_seed=m["level_seed"],
                                levels=m["levels"], distribution_mode=m["distribution_mode"], policy=m["policy"],
                                run_id=m.get("run_id"), checkpoint_step=m.get("checkpoint_step"))
                        for i, m in enumerate(meta)]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: an episode's header lacks {exc}") from None
        if name in {s.name for s in self.list()}:
            raise ValueError(f"demonstration set {name!r} exists already; import under another name")
        ids = []
        for episode, m in zip(episodes, meta):
            ids.append(self.rollouts.save(episode))
            if m.get("policy") == "human":
                self.mark_human(ids[-1], m.get("player"))
        return self.create(name, ids, header.get("description", ""))

    def close(self) -> None:
        self._db.close()


def demonstration_arrays(episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, actions, episode index per step) of episodes, concatenated: what behavioural cloning fits."""
    frames = np.concatenate([e.frames for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    index = np.concatenate([np.full(e.length, i) for i, e in enumerate(episodes)])
    return frames, actions, index


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "WHO",
    "DemonstrationStore",
    "SetInfo",
    "SetSummary",
    "UnknownSetError",
    "check_set_name",
    "demonstration_arrays",
]
