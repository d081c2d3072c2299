"""Saving and loading reward models: a directory with ``weights.safetensors`` and ``config.json`` written
atomically; loading executes no code (tensors only, the JSON validated key by key, the weights' SHA-256 checked)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from workbench.preferences.reward.models import (
    RewardEnsemble,
    build_ensemble,
)
from workbench.rl.policy import resolve_device
from workbench.storage.durable import fsync_dir as _fsync_dir

FORMAT_NAME = "workbench.reward_model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


_CONFIG_KEYS = {"format", "version", "kind", "members", "model", "encoder", "noise_floor", "reward_std",
                "weights_sha256", "meta"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_reward_model(ensemble: RewardEnsemble, path: str | os.PathLike) -> Path:
    """Write `path/weights.safetensors` and `path/config.json` (atomically: a temporary directory is written,
    fsynced and renamed into place; an existing model at `path` is replaced only once the new one is whole)."""
    from safetensors.torch import save_file

    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not (path / CONFIG_FILE).exists():
        raise ValueError(f"{path} exists and is not a reward model directory; choose another path")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in ensemble.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        config = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": ensemble.kind,
                  "members": len(ensemble), "model": ensemble.model_config,
                  "encoder": ({"name": ensemble.encoder.name, **ensemble.encoder.config()}
                              if ensemble.encoder is not None else None),
                  "noise_floor": ensemble.noise_floor, "reward_std": ensemble.reward_std,
                  "weights_sha256": _sha256(tmp / WEIGHTS_FILE), "meta": ensemble.meta}
        with open(tmp / CONFIG_FILE, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_reward_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> RewardEnsemble:
    """Load a model written by :func:`save_reward_model`. Nothing is executed: the JSON config is checked key
    by key, the weights file must match the SHA-256 recorded in it, and its tensor names and shapes must be
    exactly those of the model the config describes. Any mismatch is a ValueError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ValueError(f"{path} is not a reward model directory: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} must hold a JSON object")
    unknown, missing = sorted(set(config) - _CONFIG_KEYS), sorted(_CONFIG_KEYS - set(config))
    if unknown or missing:
        raise ValueError(f"{config_path} has unknown keys {unknown} and/or lacks keys {missing}; "
                         f"expected exactly {sorted(_CONFIG_KEYS)}")
    if config["format"] != FORMAT_NAME or config["version"] != FORMAT_VERSION:
        raise ValueError(f"{config_path} is format {config['format']!r} version {config['version']!r}; this "
                         f"workbench reads {FORMAT_NAME!r} version {FORMAT_VERSION}")
    if config["kind"] not in ("clip", "text"):
        raise ValueError(f"{config_path}: kind must be 'clip' or 'text', got {config['kind']!r}")
    members = config["members"]
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= 1024:
        raise ValueError(f"{config_path}: members must be an integer in [1, 1024], got {members!r}")
    model = config["model"]
    allowed_model = {"width", "hidden"} if config["kind"] == "clip" else {"hidden"}
    if not isinstance(model, dict) or set(model) != allowed_model:
        raise ValueError(f"{config_path}: model must be an object with exactly the keys {sorted(allowed_model)}, "
                         f"got {model!r}")
    if config["kind"] == "clip":
        if not isinstance(model["width"], (int, float)) or not 0 < model["width"] <= 16:
            raise ValueError(f"{config_path}: model width must be a number in (0, 16], got {model['width']!r}")
    hidden_min = 1 if config["kind"] == "clip" else 0
    if isinstance(model["hidden"], bool) or not isinstance(model["hidden"], int) or not hidden_min <= model["hidden"] <= 65536:
        raise ValueError(f"{config_path}: model hidden must be an integer in [{hidden_min}, 65536], got {model['hidden']!r}")
    if not isinstance(config["meta"], dict):
        raise ValueError(f"{config_path}: meta must be an object")
    actual = _sha256(weights_path)
    if actual != config["weights_sha256"]:
        raise ValueError(f"{weights_path} does not match the SHA-256 recorded in {config_path} (recorded "
                         f"{str(config['weights_sha256'])[:16]}..., file {actual[:16]}...): the weights were "
                         "changed or replaced after saving; refusing to load them")
    ensemble = build_ensemble(config["kind"], members, model, reward_std=float(config["reward_std"]),
                              noise_floor=bool(config["noise_floor"]), encoder_spec=config["encoder"],
                              meta=config["meta"])
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{weights_path} is not a readable safetensors file: {exc}") from None
    expected = ensemble.state_dict()
    unknown_t, missing_t = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
    if unknown_t or missing_t:
        raise ValueError(f"{weights_path} does not fit the model described in {config_path}: unknown tensors "
                         f"{unknown_t[:10]}, missing tensors {missing_t[:10]}")
    bad = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
           if tuple(state[k].shape) != tuple(v.shape) or state[k].dtype != v.dtype]
    if bad:
        raise ValueError(f"{weights_path}: tensor shapes/dtypes do not fit the model: {bad[:5]}")
    ensemble.load_state_dict(state, strict=True)
    ensemble.eval()
    return ensemble.to(resolve_device(device))


# ================================================================================================ campaigns

def reward_model_dir(run_id: str, store_root: str | os.PathLike | None = None) -> Path:
    """Where :func:`train_reward_model` saves the model of run `run_id`: <root>/reward_models/<run_id>."""
    from workbench.storage.runs import RunStore

    return RunStore(store_root).root / "reward_models" / run_id



def load_reward_run(run_id: str, store_root: str | os.PathLike | None = None, *, device="cpu") -> RewardEnsemble:
    """The reward model trained by run `run_id` (see :func:`reward_model_dir`)."""
    path = reward_model_dir(run_id, store_root)
    if not path.exists():
        raise ValueError(f"run {run_id!r} has no saved reward model at {path}")
    return load_reward_model(path, device=device)
