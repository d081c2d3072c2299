"""A demonstration set as a Minari dataset (https://minari.farama.org), written with Minari's own API.

    export_minari(store, "cue", "workbench/coinrun/human-v0", "out")
    # then:  MINARI_DATASETS_PATH=out python -c "import minari; minari.load_dataset('workbench/coinrun/human-v0')"

One Minari episode per episode of the set, in set order (`minari.create_dataset_from_buffers` over
`EpisodeBuffer`s): observation space ``Box(0, 255, (64, 64, 3), uint8)``, action space ``Discrete(15)``,
rewards, ``terminations`` (True on the last step when the game ended the episode) and ``truncations`` (True on
the last step of an episode cut short, e.g. by the player's ``max_steps``). Each episode's ``seed`` is the level
seed and its ``options`` hold the store's episode id, game, level set, distribution mode, who acted
(``policy``: "human" or the agent's policy kind), the player's login, run and checkpoint step where known.

Two departures from an online Minari recording, both forced by what is stored:

* Minari keeps T + 1 observations per episode (the one after the last step too). Procgen resets itself when an
  episode ends, so the final observation is never seen; observation T is a copy of observation T - 1
  (``final_observation: "repeat"`` in the dataset metadata).
* Minari 0.5.3 stores image observations as JPEG (lossy). This export swaps in PNG for its frame encoder while
  it writes (``lossless=True``, the default); Minari decodes frames with PIL, which reads either, so a stock
  ``minari.load_dataset`` returns the stored frames bit for bit. ``lossless=False`` keeps Minari's JPEG.

The dataset goes to ``<out_dir>/<dataset_id>`` (``MINARI_DATASETS_PATH`` is pointed at a temporary folder in
``out_dir`` while Minari writes, never at the user's home) and is moved into place by one rename: it is either
absent or complete. minari is optional: ``pip install 'minari[hdf5]>=0.5.3,<0.5.4'``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from workbench.demonstrations.sets import DemonstrationStore
from workbench.rl.envs import NUM_ACTIONS
from workbench.storage.durable import fsync_dir

INSTALL_HINT = "pip install 'minari[hdf5]>=0.5.3,<0.5.4'"
# Minari's id grammar ((namespace/)name(-vN)), made stricter: a version is required and no part starts with '.'.
_DATASET_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_-]*/){0,4}[A-Za-z0-9][A-Za-z0-9_-]*-v[0-9]+$")
_LOCK = threading.Lock()  # MINARI_DATASETS_PATH and the frame encoder are process-wide


def _minari():
    try:
        import minari
    except ImportError:
        raise ValueError(f"Minari export needs minari: {INSTALL_HINT}") from None
    return minari


def check_dataset_id(dataset_id) -> str:
    """`dataset_id` if both this module's grammar and Minari's parser accept it, else a one-line ValueError."""
    ok = isinstance(dataset_id, str) and len(dataset_id) <= 200 and _DATASET_ID.match(dataset_id)
    if ok:
        from minari.dataset.minari_dataset import parse_dataset_id

        try:
            parse_dataset_id(dataset_id)
        except ValueError:  # e.g. a one-letter namespace
            ok = False
    if not ok:
        raise ValueError(f"invalid Minari dataset id {dataset_id!r}: use (namespace/)name-vN, e.g. "
                         "workbench/coinrun/human-v0 (letters, digits, '_', '-'; a namespace of 2 characters or "
                         "more; a version is required)")
    return dataset_id


def _png(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8).flatten()


@contextlib.contextmanager
def _minari_writing_to(path: Path, lossless: bool):
    """MINARI_DATASETS_PATH = path (and Minari's HDF5 frame encoder = PNG when lossless) for the block."""
    from minari.dataset._storages import hdf5_storage

    with _LOCK:
        before_path, before_encoder = os.environ.get("MINARI_DATASETS_PATH"), hdf5_storage.encode_frame
        os.environ["MINARI_DATASETS_PATH"] = str(path)
        if lossless:
            hdf5_storage.encode_frame = _png
        try:
            yield
        finally:
            hdf5_storage.encode_frame = before_encoder
            if before_path is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = before_path


def episode_buffers(demos: DemonstrationStore, set_name: str) -> list:
    """The set's episodes as Minari `EpisodeBuffer`s (module docstring), in set order."""
    from minari.data_collector import EpisodeBuffer

    buffers = []
    for index, e in enumerate(demos.episodes(set_name)):
        last = np.zeros(e.length, bool)
        last[-1] = True
        options = dict(episode_id=e.id, env=e.env, levels=e.levels, distribution_mode=e.distribution_mode,
                       policy=e.policy, player=demos.player(e.id), run_id=e.run_id,
                       checkpoint_step=e.checkpoint_step, level_seed=e.level_seed)
        buffers.append(EpisodeBuffer(
            id=index, seed=e.level_seed, options={k: v for k, v in options.items() if v is not None},
            observations=np.concatenate([e.frames, e.frames[-1:]]), actions=e.actions.astype(np.int64),
            rewards=e.rewards.astype(np.float32), terminations=e.dones & last, truncations=~e.dones & last))
    return buffers


def _move_into_place(staging: Path, out_dir: Path, dataset_id: str) -> Path:
    """Rename the staged dataset (with the namespace folders out_dir lacks) into out_dir: one rename."""
    parts = dataset_id.split("/")
    for depth in range(1, len(parts) + 1):
        rel = Path(*parts[:depth])
        if not (out_dir / rel).exists():
            os.replace(staging / rel, out_dir / rel)
            fsync_dir((out_dir / rel).parent)
            return out_dir / dataset_id
        meta = rel / "namespace_metadata.json"
        if depth < len(parts) and (staging / meta).exists() and not (out_dir / meta).exists():
            os.replace(staging / meta, out_dir / meta)  # a namespace folder made by hand: give it Minari's file
    raise ValueError(f"a Minari dataset {dataset_id!r} exists already in {out_dir}; pick another id or version")


def export_minari(store: DemonstrationStore | str | os.PathLike | None, set_name: str, dataset_id: str,
                  out_dir: str | os.PathLike, *, lossless: bool = True, author: str | None = None) -> Path:
    """Write demonstration set `set_name` as Minari dataset `dataset_id` under `out_dir`; returns its folder.

    `store`: a `DemonstrationStore` or its root. Everything is checked (set, id, out_dir, an existing dataset)
    before anything is written."""
    minari = _minari()
    demos = store if isinstance(store, DemonstrationStore) else DemonstrationStore(store)
    check_dataset_id(dataset_id)
    info = demos.info(set_name)  # UnknownSetError naming the known sets
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"Minari output folder {out_dir} is a file")
    if (out_dir / dataset_id).exists():
        raise ValueError(f"a Minari dataset {dataset_id!r} exists already in {out_dir}; pick another id or version")
    from gymnasium import spaces

    buffers = episode_buffers(demos, set_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".minari-", suffix=".tmp", dir=out_dir))
    try:
        with _minari_writing_to(staging, lossless), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(is set to None|env_spec is None)", category=UserWarning)
            dataset = minari.create_dataset_from_buffers(
                dataset_id, buffers,
                observation_space=spaces.Box(0, 255, (64, 64, 3), np.uint8),
                action_space=spaces.Discrete(NUM_ACTIONS),
                algorithm_name="human" if {b.options.get("policy") for b in buffers} == {"human"}
                else "workbench demonstration set",
                author=author, description=info.description or f"workbench demonstration set {set_name}")
            dataset.storage.update_metadata({
                "workbench_set": set_name, "final_observation": "repeat",
                "frame_encoding": "png" if lossless else "jpeg", "exported_at": time.time(),
                "human_episodes": sum(b.options.get("policy") == "human" for b in buffers)})
        return _move_into_place(staging, out_dir, dataset_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["INSTALL_HINT", "check_dataset_id", "episode_buffers", "export_minari"]
