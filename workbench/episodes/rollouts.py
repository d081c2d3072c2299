"""Recorded episodes: what the agent saw, what it did, and what it thought of it.

An :class:`Episode` holds, per step ``t`` of one whole episode:

* ``frames[t]`` -- the 64x64 observation the agent acted on (uint8), stored losslessly;
* ``actions[t]``, ``probs[t]`` (the full action distribution), ``values[t]`` (V of ``frames[t]``,
  in the game's reward units: PPO's value head predicts returns of *normalized* rewards, so
  :func:`record_run` multiplies it by the checkpoint's reward-normalizer scale sqrt(var + eps));
* ``rewards[t]`` -- the environment's reward for ``actions[t]`` (the true, "gold" reward);
* ``dones[t]`` -- the env's done flag: True on the last step only, or nowhere when the recording was
  cut short by ``max_steps`` (the episode then has no outcome);
* and, when recorded, the game's 512x512 render of the same state (:class:`HiresFrames`) for people.

Recording
---------
:func:`record_episodes` plays whole episodes with a policy (a :class:`~workbench.rl.policy.PolicyCore`, or
``None`` for a uniformly random policy, which needs no run: useful for labeling before any training).
:func:`record_run` records a run's checkpoint and :func:`record_random` a random policy, both saving
into a :class:`RolloutStore`. Actions are *sampled* from the policy (as in training), with a seeded
generator, so equal arguments record equal episodes. Explicit ``level_seeds`` play exactly those
Procgen levels (one env with ``num_levels=1, start_level=seed`` each); otherwise levels come from the
run's training set (``levels="train"``) or the whole distribution (``levels="test"``), as in
:func:`workbench.rl.evaluate.evaluate_run`.

Storage (per episode, under ``<root>/rollouts/<id>/``)
-------------------------------------------------------
* ``episode.npz`` -- ``np.savez_compressed`` of the per-step arrays (lossless; frames of simple
  games compress well) plus a JSON header. Read back bit for bit (a round-trip test checks it).
* ``hires.mp4`` -- the 512x512 render as H.264 (PyAV/FFmpeg, yuv444p so thin coloured edges stay
  sharp, CRF 18, a keyframe every :data:`HIRES_GOP` frames so any frame decodes after at most that
  many others). Lossy, but it is for people; the agent's own view is the lossless ``frames``. Raw
  512x512 frames would cost 786 KB each (about 0.8 GB per 1,000 steps).

The directory is written under a temporary name, fsynced and renamed, and only then indexed in the
``rollouts`` table of the run store's SQLite database (``workbench.sqlite``), so a crash mid-write
leaves no half episode in the index. ``RolloutStore.list`` filters that index by run, checkpoint,
env, level seed, policy and return.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.rl.envs import NUM_ACTIONS
from workbench.rl.policy import PolicyCore
from workbench.storage.durable import fsync_dir as _fsync_dir
from workbench.storage.runs import RunStore

# Procgen's 15 actions as button combinations, in action-index order (procgen's get_combos(); a test
# checks this against procgen itself). "NOOP" is the empty combination.
BUTTON_COMBOS: tuple[tuple[str, ...], ...] = (
    ("LEFT", "DOWN"), ("LEFT",), ("LEFT", "UP"), ("DOWN",), (), ("UP",), ("RIGHT", "DOWN"), ("RIGHT",),
    ("RIGHT", "UP"), ("D",), ("A",), ("W",), ("S",), ("Q",), ("E",),
)
ACTION_NAMES: list[str] = ["+".join(combo) or "NOOP" for combo in BUTTON_COMBOS]

HIRES_FPS = 15      # Procgen's own video rate; also the default playback rate of the viewers
HIRES_GOP = 10      # keyframe interval: a random frame costs at most this many decodes
HIRES_CRF = 18
LEVEL_SETS = ("train", "test", "seed")
POLICIES = ("checkpoint", "random", "human")  # human: played in the browser (workbench.demonstrations)
_FORMAT_VERSION = 1


# ---- the episode --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Episode:
    """One whole recorded episode (see the module docstring for the alignment of the arrays)."""

    frames: np.ndarray
    actions: np.ndarray
    probs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    env: str
    level_seed: int | None
    levels: str
    distribution_mode: str
    policy: str
    run_id: str | None = None
    checkpoint_step: int | None = None
    id: str | None = None
    hires: HiresFrames | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, np.uint8)
        self.actions = np.asarray(self.actions, np.int64)
        self.probs = np.asarray(self.probs, np.float32)
        self.values = np.asarray(self.values, np.float32)
        self.rewards = np.asarray(self.rewards, np.float32)
        self.dones = np.asarray(self.dones, bool)
        t = len(self.actions)
        problems = []
        if t < 1:
            problems.append("an episode needs at least one step")
        if self.frames.shape != (t, 64, 64, 3):
            problems.append(f"frames must be (T, 64, 64, 3) uint8 with T = {t} actions, got {self.frames.shape}")
        if self.probs.shape != (t, NUM_ACTIONS):
            problems.append(f"probs must be (T, {NUM_ACTIONS}), got {self.probs.shape}")
        for name in ("values", "rewards", "dones"):
            if getattr(self, name).shape != (t,):
                problems.append(f"{name} must be (T,) = ({t},), got {getattr(self, name).shape}")
        if self.levels not in LEVEL_SETS:
            problems.append(f"levels must be one of {LEVEL_SETS}, got {self.levels!r}")
        if self.policy not in POLICIES:
            problems.append(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if problems:
            raise ValueError("invalid Episode: " + "; ".join(problems))

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def ret(self) -> float:
        return float(self.rewards.astype(np.float64).sum())

    @property
    def chosen_prob(self) -> np.ndarray:
        """Probability the policy gave the action it took, per step."""
        return self.probs[np.arange(self.length), self.actions]

    @property
    def entropy(self) -> np.ndarray:
        """Entropy of the action distribution per step, in nats."""
        p = self.probs.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)

    def advantages(self, gamma: float = 0.999, lam: float = 0.95) -> np.ndarray:
        """GAE(gamma, lambda) advantages from the recorded values and rewards (the Procgen PPO
        defaults of Cobbe et al. 2020); the value after the last step is 0 (the episode ended).
        NaN throughout for a random policy, which has no value estimates."""
        from workbench.rl.algos.returns import gae_advantages

        column = lambda x: torch.as_tensor(np.asarray(x, np.float32))[:, None]  # noqa: E731  (T, 1)
        adv, _ = gae_advantages(column(self.rewards), column(self.values), column(self.dones),
                                torch.zeros(1), gamma, lam)
        return adv[:, 0].numpy().astype(np.float64)

    def reward_events(self) -> np.ndarray:
        """Step indices where the reward was not zero."""
        return np.flatnonzero(self.rewards != 0)


# ---- high-resolution frames -----------------------------------------------------------------------------------


def write_hires_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int = HIRES_FPS) -> int:
    """Encode (H, W, 3) uint8 frames as H.264 in MP4 (see the module docstring); returns the frame count."""
    import av

    count = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv444p"
                stream.options = {"crf": str(HIRES_CRF), "preset": "veryfast", "g": str(HIRES_GOP),
                                  "keyint_min": str(HIRES_GOP), "sc_threshold": "0", "bf": "0"}
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = count
            for packet in stream.encode(video_frame):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count


class HiresFrames:
    """Random access to an episode's high-resolution frames in ``hires.mp4``.

    ``frame(t)`` seeks to the keyframe at or before ``t`` and decodes forward (at most
    :data:`HIRES_GOP` frames), keeping the decoded group in a small cache, so playing forward costs one
    decode per frame and a random jump a few. Not thread-safe: give each viewer its own reader.
    """

    def __init__(self, path: str | os.PathLike, length: int, fps: int = HIRES_FPS, cache_frames: int = 3 * HIRES_GOP):
        self.path = Path(path)
        self._length = int(length)
        self._fps = fps
        self._cache: OrderedDict = OrderedDict()  # step -> RGB array, or a decoded av.VideoFrame
        self._cache_frames = cache_frames
        self._container = None
        self._decoder = None  # a running frame iterator, positioned after self._next_t - 1
        self._next_t = None

    def __len__(self) -> int:
        return self._length

    def _open(self):
        if self._container is None:
            import av

            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        return self._container

    def _index(self, frame) -> int:
        return int(round(float(frame.pts * self._stream.time_base) * self._fps))

    def _remember(self, t: int, image) -> None:
        self._cache[t] = image
        self._cache.move_to_end(t)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)

    def frame(self, t: int) -> np.ndarray:
        """The (512, 512, 3) uint8 frame at step ``t`` (negative counts from the end)."""
        t = int(t)
        if t < 0:
            t += self._length
        if not 0 <= t < self._length:
            raise IndexError(f"frame {t} out of range for an episode of {self._length} steps")
        if t in self._cache:
            return self._rgb(t)
        container = self._open()
        if self._decoder is None or self._next_t is None or not (self._next_t <= t < self._next_t + HIRES_GOP):
            # Seek (to the keyframe at or before t) unless t is just ahead of where decoding stands.
            offset = int(t / self._fps / self._stream.time_base)
            container.seek(offset, stream=self._stream, backward=True, any_frame=False)
            self._decoder = container.decode(self._stream)
            self._next_t = None
        for decoded in self._decoder:
            index = self._index(decoded)
            # Keep the decoded picture; convert to RGB only when it is asked for (2 ms a frame).
            self._remember(index, decoded)
            self._next_t = index + 1
            if index >= t:
                break
        if t not in self._cache:
            raise RuntimeError(f"{self.path} ended before frame {t} (is the file truncated?)")
        return self._rgb(t)

    def _rgb(self, t: int) -> np.ndarray:
        image = self._cache[t]
        if not isinstance(image, np.ndarray):
            image = self._cache[t] = image.to_ndarray(format="rgb24")
        self._cache.move_to_end(t)
        return image

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._decoder = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ---- the store ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutInfo:
    id: str
    run_id: str | None
    checkpoint_step: int | None
    env: str
    level_seed: int | None
    levels: str
    distribution_mode: str
    policy: str
    ret: float
    length: int
    has_hires: bool
    created_at: float
    path: str  # the episode's directory (absolute)


class UnknownEpisodeError(ValueError):
    """An episode id that is not in the store."""


_INFO_COLUMNS = ("id, run_id, checkpoint_step, env, level_seed, levels, distribution_mode, policy, ret, length, "
                 "has_hires, created_at, path")
_ARRAYS = ("frames", "actions", "probs", "values", "rewards", "dones")


class RolloutStore:
    """Recorded episodes under the run store's root (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.runs = RunStore(root)
        self.root = self.runs.root
        self.dir = self.root / "rollouts"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _info(self, row) -> RolloutInfo:
        values = list(row)
        values[10] = bool(values[10])
        values[12] = str(self.root / values[12])
        return RolloutInfo(*values)

    def save(self, episode: Episode, hires_frames: np.ndarray | Iterable[np.ndarray] | None = None) -> str:
        """Store an episode (and its high-resolution frames, if given); returns its new id."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        episode_id = f"ep-{episode.env}-{stamp}-{secrets.token_hex(3)}"
        tmp = self.dir / f".tmp-{episode_id}"
        final = self.dir / episode_id
        tmp.mkdir()
        try:
            header = {"format": _FORMAT_VERSION, "env": episode.env, "level_seed": episode.level_seed,
                      "levels": episode.levels, "distribution_mode": episode.distribution_mode,
                      "policy": episode.policy, "run_id": episode.run_id,
                      "checkpoint_step": episode.checkpoint_step}
            with open(tmp / "episode.npz", "wb") as f:
                np.savez_compressed(f, header=np.array(json.dumps(header)),
                                    **{name: getattr(episode, name) for name in _ARRAYS})
                f.flush()
                os.fsync(f.fileno())
            has_hires = False
            if hires_frames is not None:
                count = write_hires_video(hires_frames, tmp / "hires.mp4")
                if count != episode.length:
                    raise ValueError(f"got {count} high-resolution frames for an episode of {episode.length} steps")
                with open(tmp / "hires.mp4", "rb+") as f:
                    os.fsync(f.fileno())
                has_hires = True
            _fsync_dir(tmp)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with self.runs._write(durable=True) as conn:
            conn.execute(
                f"INSERT INTO rollouts ({_INFO_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (episode_id, episode.run_id, episode.checkpoint_step, episode.env, episode.level_seed,
                 episode.levels, episode.distribution_mode, episode.policy, episode.ret, episode.length,
                 int(has_hires), time.time(), str(final.relative_to(self.root))),
            )
        episode.id = episode_id
        return episode_id

    def info(self, episode_id: str) -> RolloutInfo:
        row = self.runs._conn().execute(f"SELECT {_INFO_COLUMNS} FROM rollouts WHERE id = ?",
                                        (episode_id,)).fetchone()
        if row is None:
            raise UnknownEpisodeError(f"unknown episode id {episode_id!r} in {self.runs.db_path}; "
                                      "list them with RolloutStore(root).list() or `workbench rollouts`")
        return self._info(row)

    def load(self, episode_id: str, *, hires: bool = True) -> Episode:
        """The episode exactly as recorded; ``hires=True`` attaches a lazy reader of its render."""
        info = self.info(episode_id)
        path = Path(info.path)
        with np.load(path / "episode.npz", allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in _ARRAYS}
        reader = HiresFrames(path / "hires.mp4", info.length) if hires and info.has_hires else None
        return Episode(**arrays, env=header["env"], level_seed=header["level_seed"], levels=header["levels"],
                       distribution_mode=header["distribution_mode"], policy=header["policy"],
                       run_id=header["run_id"], checkpoint_step=header["checkpoint_step"], id=episode_id,
                       hires=reader)

    def list(self, *, run_id: str | None = None, checkpoint_step: int | None = None, env: str | None = None,
             level_seed: int | None = None, min_return: float | None = None, max_return: float | None = None,
             policy: str | None = None, limit: int | None = None) -> list[RolloutInfo]:
        """Recorded episodes matching every given filter, newest first."""
        clauses, params = [], []
        for column, value in (("run_id", run_id), ("checkpoint_step", checkpoint_step), ("env", env),
                              ("level_seed", level_seed), ("policy", policy)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if min_return is not None:
            clauses.append("ret >= ?")
            params.append(float(min_return))
        if max_return is not None:
            clauses.append("ret <= ?")
            params.append(float(max_return))
        sql = f"SELECT {_INFO_COLUMNS} FROM rollouts"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._info(row) for row in self.runs._conn().execute(sql, params)]

    def delete(self, episode_id: str) -> None:
        """Remove an episode from the index, then its files."""
        info = self.info(episode_id)
        with self.runs._write(durable=True) as conn:
            conn.execute("DELETE FROM rollouts WHERE id = ?", (episode_id,))
        shutil.rmtree(info.path, ignore_errors=True)


# ---- recording ------------------------------------------------------------------------------------------------


@torch.no_grad()
def _play_one(core: PolicyCore | None, env, generator: torch.Generator, rng: np.random.Generator, hires: bool,
              max_steps: int | None, value_scale: float):
    """Play env 0 of ``env`` until its episode ends (or ``max_steps``); returns arrays, hires frames, level seed."""
    frames, actions, probs, values, rewards, hires_frames = [], [], [], [], [], []
    obs = env.reset()
    info = getattr(getattr(env, "_env", None), "get_info", None)  # procgen: the level being played
    level_seed = info()[0].get("level_seed") if info is not None else None
    level_seed = None if level_seed is None else int(level_seed)
    while True:
        if hires:
            hires_frames.append(env.render()[0])
        frames.append(obs[0])
        if core is None:
            p = np.full(NUM_ACTIONS, 1.0 / NUM_ACTIONS, np.float32)
            action = int(rng.integers(NUM_ACTIONS))
            value = math.nan
        else:
            out = core.act(obs[:1], generator)
            action = int(out.action[0])
            p = torch.softmax(out.logits[0].float(), -1).cpu().numpy()
            value = float(out.value[0]) * value_scale
        obs, reward, done, finished = env.step(np.array([action]))
        actions.append(action)
        probs.append(p)
        values.append(value)
        rewards.append(float(reward[0]))
        if done[0] or (max_steps is not None and len(actions) >= max_steps):
            if finished:
                level_seed = finished[0].level_seed
            break
    # The env's own done flags: an episode cut by max_steps ends without one (it has no outcome).
    dones = np.zeros(len(actions), bool)
    dones[-1] = bool(done[0])
    arrays = dict(frames=np.stack(frames), actions=np.array(actions), probs=np.stack(probs),
                  values=np.array(values, np.float32), rewards=np.array(rewards, np.float32), dones=dones)
    return arrays, (np.stack(hires_frames) if hires else None), level_seed


def record_episodes(core: PolicyCore | None, env_name: str, *, episodes: int = 1,
                    level_seeds: Iterable[int] | None = None, levels: str = "train",
                    distribution_mode: str = "easy", num_levels: int = 0, start_level: int = 0, hires: bool = True,
                    seed: int = 0, max_steps: int | None = None, run_id: str | None = None,
                    checkpoint_step: int | None = None, value_scale: float = 1.0,
                    progress: bool = False) -> list[tuple[Episode, np.ndarray | None]]:
    """Play whole episodes with ``core`` (None: uniformly random actions) and return them with their
    high-resolution frames (or None). With ``level_seeds``, one episode per seed on exactly that level
    (``episodes`` is ignored); otherwise ``episodes`` consecutive episodes on the levels given by
    ``num_levels``/``start_level`` (0 = the whole distribution). ``max_steps`` cuts an episode short
    (its ``dones`` are then all False: the game did not end). Values are multiplied by
    ``value_scale`` (the reward normalizer's scale, to express them in game reward units). ``progress``: a
    progress bar with the time left, one tick per episode."""
    from workbench.rl.env_registry import make_vec_env

    if levels not in ("train", "test"):
        raise ValueError(f"levels must be 'train' or 'test' (got {levels!r}); explicit levels go in level_seeds")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None (got {max_steps})")
    generator = torch.Generator(device=core.device if core is not None else "cpu").manual_seed(seed)
    rng = np.random.default_rng(seed)
    if core is not None:
        core.model.eval()
    render_mode = "rgb_array" if hires else None
    plans: list[tuple[int, int, int | None]]  # (num_levels, start_level, requested seed)
    if level_seeds is not None:
        seeds = [int(s) for s in level_seeds]
        if not seeds or any(s < 0 for s in seeds):
            raise ValueError(f"level_seeds must be a non-empty list of integers >= 0 (got {seeds})")
        plans = [(1, s, s) for s in seeds]
    else:
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1 (got {episodes})")
        plans = [(num_levels, start_level, None)] * episodes
    policy = "random" if core is None else "checkpoint"
    recorded = []
    env = None
    try:
        for i, (n_levels, start, requested) in enumerate(tqdm(plans, unit="episode", disable=not progress)):
            # One env per explicit seed; consecutive episodes share an env (it auto-resets).
            if env is None or requested is not None:
                if env is not None:
                    env.close()
                env = make_vec_env(env_name, 1, distribution_mode=distribution_mode, num_levels=n_levels,
                                   start_level=start, rand_seed=seed + i, render_mode=render_mode)
            arrays, hires_frames, level_seed = _play_one(core, env, generator, rng, hires, max_steps, value_scale)
            if requested is not None:
                level_seed = requested
            episode = Episode(**arrays, env=env_name, level_seed=level_seed,
                              levels="seed" if requested is not None else levels,
                              distribution_mode=distribution_mode, policy=policy, run_id=run_id,
                              checkpoint_step=checkpoint_step)
            recorded.append((episode, hires_frames))
            if max_steps is not None and requested is None:
                env.close()  # a cut episode leaves the env mid-episode: start the next one fresh
                env = None
    finally:
        if env is not None:
            env.close()
    return recorded


def value_scale_of(checkpoint: dict) -> float:
    """sqrt(var + eps) of a checkpoint's reward normalizer (1.0 without one): the factor that turns the
    value head's output (a return of normalized rewards) into game reward units."""
    from workbench.rl.algos.returns import RewardNormalizer

    saved = checkpoint.get("state", {}).get("reward_normalizer")
    if saved is None:
        return 1.0
    normalizer = RewardNormalizer(1)
    normalizer.load_state_dict(saved)
    return float(np.sqrt(normalizer.ret_rms.var + normalizer.epsilon))


def record_training_episode(session, roller, config) -> str:
    """Record one episode with the policy being trained (``config.record_every``), on the run's training
    levels, and save it with ``checkpoint_step`` = the current env step. Uses its own env, generator and
    seed, so training's RNG streams are untouched; logs ``record_seconds`` (the cost, for the overhead
    measurement in benchmarks/RESULTS.md)."""
    t0 = time.perf_counter()
    core = roller.core
    was_training = core.model.training
    normalizer = roller.reward_normalizer
    value_scale = 1.0 if normalizer is None else float(np.sqrt(normalizer.ret_rms.var + normalizer.epsilon))
    try:
        [(episode, hires_frames)] = record_episodes(
            core, config.env, episodes=1, distribution_mode=config.distribution_mode,
            num_levels=config.num_levels, start_level=config.start_level, levels="train",
            hires=config.record_hires, seed=config.seed * 100_003 + session.iteration,
            run_id=session.run_id, checkpoint_step=session.global_step, value_scale=value_scale)
    finally:
        core.model.train(was_training)
    episode_id = RolloutStore(session.store.root).save(episode, hires_frames)
    session.store.log_metrics(session.run_id, session.global_step,
                              {"record_seconds": time.perf_counter() - t0, "recorded_return": episode.ret})
    return episode_id


def _save_all(store: RolloutStore, recorded) -> list[str]:
    return [store.save(episode, hires_frames) for episode, hires_frames in recorded]


def record_run(run_id: str, *, checkpoint_step: int | None = None, episodes: int = 1, levels: str = "train",
               level_seeds: Iterable[int] | None = None, hires: bool = True, seed: int = 0,
               store_root: str | os.PathLike | None = None, device: str = "cpu",
               max_steps: int | None = None, progress: bool = False) -> list[str]:
    """Record a run's checkpoint (the latest by default) and save the episodes; returns their ids.
    ``levels="train"`` plays the run's training levels, ``"test"`` the whole level distribution."""
    from workbench.rl.checkpoints import (
        policy_checkpoint_problem,
        policy_from_checkpoint,
    )

    store = RolloutStore(store_root)
    info = store.runs.get_run(run_id)
    cfg = info.config
    state = store.runs.load_checkpoint(run_id, checkpoint_step, check=policy_checkpoint_problem)  # newest intact
    core = policy_from_checkpoint(info.algo, cfg, state, device)
    num_levels, start_level = (cfg["num_levels"], cfg["start_level"]) if levels == "train" else (0, 0)
    recorded = record_episodes(core, cfg["env"], episodes=episodes, level_seeds=level_seeds, levels=levels,
                               distribution_mode=cfg["distribution_mode"], num_levels=num_levels,
                               start_level=start_level, hires=hires, seed=seed, max_steps=max_steps,
                               run_id=run_id, checkpoint_step=int(state["global_step"]),
                               value_scale=value_scale_of(state), progress=progress)
    return _save_all(store, recorded)


def record_random(env_name: str, *, episodes: int = 1, level_seeds: Iterable[int] | None = None,
                  distribution_mode: str = "easy", num_levels: int = 0, start_level: int = 0, hires: bool = True,
                  seed: int = 0, store_root: str | os.PathLike | None = None,
                  max_steps: int | None = None, progress: bool = False) -> list[str]:
    """Record a uniformly random policy (no run needed) and save the episodes; returns their ids."""
    recorded = record_episodes(None, env_name, episodes=episodes, level_seeds=level_seeds,
                               levels="train" if num_levels else "test", distribution_mode=distribution_mode,
                               num_levels=num_levels, start_level=start_level, hires=hires, seed=seed,
                               max_steps=max_steps, progress=progress)
    return _save_all(RolloutStore(store_root), recorded)


__all__ = ["ACTION_NAMES", "BUTTON_COMBOS", "Episode", "HiresFrames", "RolloutInfo", "RolloutStore",
           "UnknownEpisodeError", "record_episodes", "record_random", "record_run", "write_hires_video",
           "NUM_ACTIONS"]
