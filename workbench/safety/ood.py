"""Out-of-distribution detection for a trained policy: frames from its training levels against shifted frames.

    from workbench.safety.ood import evaluate_ood
    result = evaluate_ood(run_id, shifts=("test", "hard", "noise", "blur", "colour"), frames=1024)
    result.table()          # one row per (shift, detector): AUROC, AUPR-in, AUPR-out, FPR95

The in-distribution frames are the ones the policy sees when it plays its own training levels (its
``num_levels``/``start_level``, the run's distribution mode), acting by sampling as in training. Shifts:

* ``test``: the policy playing the whole level distribution (Procgen's test protocol; the chance that a test
  level is a training level is num_levels / 2^31);
* ``hard``: the whole distribution in hard mode (only for runs trained in easy mode);
* ``game:NAME``: the policy playing another game (e.g. ``game:starpilot``);
* ``colours``: the colour-cue tasks only: the policy playing with a palette it never saw (the next
  ``num_colours`` colours of :data:`workbench.rl.toy_env.PALETTE`);
* ``noise``, ``blur``, ``colour``: the in-distribution frames corrupted: Gaussian noise and Gaussian blur at
  the five severities of ImageNet-C (Hendrycks and Dietterich 2019; their constants were chosen for 224-pixel
  images, ours are 64 pixels, so a given severity is relatively stronger here), and a hue rotation about the
  grey axis by 36 degrees per severity (our choice: ImageNet-C has no colour shift).

Detectors (MSP, max logit, energy, value-ensemble disagreement, k-nearest-neighbour distance in the policy's
feature space) and metrics: :mod:`workbench.safety.ood_metrics`. Results are stored under ``<root>/safety/ood/``
(one JSON file of metrics and one .npz of scores per evaluation, written atomically) so the dashboard's
Safety tab can show them.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from workbench.safety.ood_metrics import KNN_K, detector_scores, ood_metrics
from workbench.storage.durable import atomic_write
from workbench.storage.runs import RunStore, default_root

CORRUPTIONS: tuple[str, ...] = ("noise", "blur", "colour")
ENV_SHIFTS: tuple[str, ...] = ("test", "hard", "colours")  # and game:NAME
SEVERITIES = (1, 2, 3, 4, 5)
# ImageNet-C (Hendrycks and Dietterich 2019): gaussian_noise sigma on [0, 1] pixels, gaussian_blur sigma in pixels.
_NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
_BLUR_SIGMA = (1, 2, 3, 4, 6)
_HUE_DEGREES = 36


class UnknownOODResultError(ValueError):
    pass


def check_shifts(shifts, env: str, distribution_mode: str) -> list[str]:
    """The shifts as a list, each checked against the run's env; ValueError naming the valid ones."""
    from workbench.rl.env_registry import TEST_TASKS, validate_env_name

    if isinstance(shifts, str):
        shifts = [s.strip() for s in shifts.split(",") if s.strip()]
    shifts = list(shifts)
    valid = f"valid: {', '.join(ENV_SHIFTS + CORRUPTIONS)}, game:NAME"
    if not shifts:
        raise ValueError(f"no shifts given; {valid}")
    procgen = env not in TEST_TASKS
    for shift in shifts:
        if shift.startswith("game:"):
            other = validate_env_name(shift[5:])
            if other == env:
                raise ValueError(f"shift {shift!r} is the run's own game; name another game")
        elif shift not in ENV_SHIFTS + CORRUPTIONS:
            raise ValueError(f"unknown shift {shift!r}; {valid}")
        elif shift in ("test", "hard") and not procgen:
            raise ValueError(f"shift {shift!r} needs a Procgen game (levels and modes); {env!r} has neither")
        elif shift == "hard" and distribution_mode == "hard":
            raise ValueError("shift 'hard' needs a run trained in easy mode (this one is hard)")
        elif shift == "colours" and env not in ("colour_cue", "colour_choice"):
            raise ValueError(f"shift 'colours' exists only for the colour-cue tasks, not {env!r}")
    if len(set(shifts)) != len(shifts):
        raise ValueError(f"a shift is named twice in {shifts}")
    return shifts


def corrupt(frames: np.ndarray, kind: str, severity: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 frames (N, H, W, 3) corrupted by ``kind`` in ``CORRUPTIONS`` at ``severity`` 1..5."""
    from scipy.ndimage import gaussian_filter

    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; valid: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    x = frames.astype(np.float64) / 255.0
    if kind == "noise":
        x = x + np.random.default_rng(seed).normal(0.0, _NOISE_SIGMA[severity - 1], size=x.shape)
    elif kind == "blur":
        s = _BLUR_SIGMA[severity - 1]
        x = gaussian_filter(x, sigma=(0, s, s, 0), mode="nearest")
    else:  # rotate every pixel's colour about the grey axis (1, 1, 1) by Rodrigues' formula
        theta = np.deg2rad(_HUE_DEGREES * severity)
        k = np.ones(3) / np.sqrt(3.0)
        cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rotation = np.eye(3) * np.cos(theta) + np.sin(theta) * cross + (1 - np.cos(theta)) * np.outer(k, k)
        x = x @ rotation.T
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def play_frames(core, env, frames: int, seed: int = 0) -> np.ndarray:
    """The observations ``core`` sees playing ``env`` (sampling its actions) until ``frames`` are gathered."""
    generator = torch.Generator(device=core.device).manual_seed(seed)
    core.model.eval()
    obs = env.reset()
    gathered, count = [], 0
    while count < frames:
        gathered.append(np.asarray(obs).copy())
        count += len(obs)
        out = core.act(obs, generator)
        obs, _, _, _ = env.step(out.action.cpu().numpy())
    return np.concatenate(gathered)[:frames]


@torch.no_grad()
def policy_outputs(core, frames: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits (N, A), values (N,), hidden features (N, D)) of a policy on uint8 frames, float32 on the CPU;
    one forward pass (the features are the shared layer both heads read)."""
    model = core.model
    logits, values, features = [], [], []
    model.eval()
    for start in range(0, len(frames), batch):
        with core.autocast():
            hidden = model.features(core.preprocess(core.to_device(frames[start:start + batch])))
            lg, v = model.policy_head(hidden), model.value_head(hidden)
        logits.append(lg.float().cpu().numpy())
        values.append(v.float().cpu().numpy().reshape(-1))
        features.append(hidden.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(values), np.concatenate(features)


@dataclass
class OODResult:
    """Scores and metrics of one evaluation: ``metrics[shift][detector]`` is an OODMetrics dict,
    ``scores[source][detector]`` the per-frame in-distribution scores (source "train" or a shift)."""
    run_id: str
    checkpoint_step: int
    env: str
    shifts: list[str]
    frames: int
    severity: int
    seed: int
    ensemble_runs: list[str]
    metrics: dict[str, dict[str, dict]]
    scores: dict[str, dict[str, np.ndarray]] = field(repr=False)
    knn_k: int = KNN_K
    id: str | None = None
    created_at: float | None = None

    def table(self) -> list[dict]:
        """One row per (shift, detector)."""
        return [{"shift": shift, "detector": detector, **m}
                for shift, by_detector in self.metrics.items() for detector, m in by_detector.items()]


def evaluate_ood(run_id: str, *, shifts=("test", "noise", "blur", "colour"), frames: int = 1024,
                 severity: int = 3, ensemble_runs=(), checkpoint_step: int | None = None, seed: int = 0,
                 num_envs: int = 32, knn_k: int = KNN_K, store_root=None, device: str = "cpu",
                 save: bool = True) -> OODResult:
    """Score a run's policy as an OOD detector on its training frames against each shift; stores the result
    (``save``) and returns it with its ``id``. ``ensemble_runs``: other runs of the same env whose value
    functions, with this run's, form the ensemble of the ``ensemble_disagreement`` detector. The ``knn``
    detector's references are another ``frames`` frames of the training levels (played with another seed)."""
    from workbench.episodes.rollouts import value_scale_of
    from workbench.rl.checkpoints import policy_checkpoint_problem, policy_from_checkpoint
    from workbench.rl.env_registry import TEST_TASKS, make_vec_env

    if not (isinstance(frames, int) and 16 <= frames <= 1_000_000):
        raise ValueError(f"frames must be a whole number in [16, 1000000], got {frames!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if not (isinstance(knn_k, int) and 1 <= knn_k <= frames):
        raise ValueError(f"knn_k must be a whole number in [1, frames={frames}], got {knn_k!r}")
    runs = RunStore(store_root)
    info = runs.get_run(run_id)
    cfg = info.config
    env_name, mode = cfg["env"], cfg.get("distribution_mode", "easy")
    shifts = check_shifts(shifts, env_name, mode)
    ensemble_runs = [r for r in ([ensemble_runs] if isinstance(ensemble_runs, str) else ensemble_runs) if r]
    members = []
    for other in [run_id, *ensemble_runs]:
        other_info = runs.get_run(other)
        if other_info.config.get("env") != env_name:
            raise ValueError(f"ensemble run {other!r} plays {other_info.config.get('env')!r}, not {env_name!r}")
        state = runs.load_checkpoint(other, checkpoint_step if other == run_id else None,
                                     check=policy_checkpoint_problem)
        members.append((policy_from_checkpoint(other_info.algo, other_info.config, state, device),
                        value_scale_of(state), int(state["global_step"])))
    core, step = members[0][0], members[0][2]
    n_envs = min(num_envs, frames)

    def env_frames(name, shift_seed, **kwargs):
        if name in TEST_TASKS:
            env = TEST_TASKS[name](n_envs, seed=shift_seed, **kwargs)
        else:
            env = make_vec_env(name, n_envs, rand_seed=shift_seed, **kwargs)
        try:
            return play_frames(core, env, frames, seed=shift_seed)
        finally:
            env.close()

    procgen_levels = dict(distribution_mode=mode, num_levels=cfg.get("num_levels", 0),
                          start_level=cfg.get("start_level", 0)) if env_name not in TEST_TASKS else {}
    reference = policy_outputs(core, env_frames(env_name, seed + 1000, **procgen_levels))[2]
    sources = {"train": env_frames(env_name, seed, **procgen_levels)}
    for i, shift in enumerate(shifts, start=1):
        if shift in CORRUPTIONS:
            sources[shift] = corrupt(sources["train"], shift, severity, seed=seed + i)
        elif shift == "test":
            sources[shift] = env_frames(env_name, seed + i, distribution_mode=mode)
        elif shift == "hard":
            sources[shift] = env_frames(env_name, seed + i, distribution_mode="hard")
        elif shift == "colours":
            sources[shift] = env_frames(env_name, seed + i, first_colour=4, num_colours=4)
        else:
            sources[shift] = env_frames(shift[5:], seed + i)

    scores = {}
    for source, x in sources.items():
        logits, values, features = policy_outputs(core, x)
        member_values = None
        if len(members) > 1:  # the policy's own values (computed above) are the first member's
            member_values = np.stack([values * members[0][1],
                                      *(policy_outputs(c, x)[1] * scale for c, scale, _ in members[1:])])
        scores[source] = detector_scores(logits, member_values, features, reference, knn_k)
    metrics = {shift: {d: ood_metrics(scores["train"][d], scores[shift][d]).as_dict() for d in scores["train"]}
               for shift in shifts}
    result = OODResult(run_id, step, env_name, shifts, frames, severity, seed, list(ensemble_runs), metrics,
                       scores, knn_k)
    if save:
        OODStore(store_root).save(result)
    return result


class OODStore:
    """Stored OOD evaluations under ``<root>/safety/ood/``: ``<id>.json`` (everything but the scores) and
    ``<id>.npz`` (the scores, loaded with ``allow_pickle=False``). The JSON file is written last, so a listed
    result always has its scores."""

    def __init__(self, root=None):
        self.folder = Path(root if root is not None else default_root()) / "safety" / "ood"

    def save(self, result: OODResult) -> str:
        result.id = result.id or f"ood-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        result.created_at = result.created_at or time.time()
        arrays = {f"{source}/{detector}": np.asarray(v, np.float64)
                  for source, by_detector in result.scores.items() for detector, v in by_detector.items()}
        atomic_write(self.folder / f"{result.id}.npz", lambda f: np.savez(f, **arrays))
        meta = {k: getattr(result, k) for k in ("id", "created_at", "run_id", "checkpoint_step", "env", "shifts",
                                                 "frames", "severity", "seed", "ensemble_runs", "metrics", "knn_k")}
        atomic_write(self.folder / f"{result.id}.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
        return result.id

    def list(self, run_id: str | None = None) -> list[dict]:
        """Every stored result's metadata and metrics (newest first), optionally of one run."""
        rows = []
        for path in self.folder.glob("ood-*.json"):
            try:
                row = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # an unreadable file is skipped, not fatal to the listing
            if run_id is None or row.get("run_id") == run_id:
                rows.append(row)
        return sorted(rows, key=lambda r: r.get("created_at", 0), reverse=True)

    def load(self, result_id: str) -> OODResult:
        path = self.folder / f"{result_id}.json"
        if "/" in str(result_id) or not path.is_file():
            known = [r["id"] for r in self.list()][:10]
            raise UnknownOODResultError(f"no OOD result {result_id!r}; stored: {', '.join(known) or 'none'}")
        meta = json.loads(path.read_text())
        scores: dict[str, dict[str, np.ndarray]] = {}
        with np.load(self.folder / f"{result_id}.npz", allow_pickle=False) as data:
            for key in data.files:
                source, detector = key.split("/", 1)
                scores.setdefault(source, {})[detector] = data[key]
        return OODResult(**{k: v for k, v in meta.items()}, scores=scores)


__all__ = [
    "CORRUPTIONS",
    "ENV_SHIFTS",
    "SEVERITIES",
    "OODResult",
    "OODStore",
    "UnknownOODResultError",
    "check_shifts",
    "corrupt",
    "evaluate_ood",
    "play_frames",
    "policy_outputs",
]
