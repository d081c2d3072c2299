"""Calibration under distribution shift: a value function's success probability on training levels against
held-out levels and hard mode, side by side.

    from workbench.safety.calibration_shift import calibration_under_shift
    rows = calibration_under_shift(run_id, episodes=200)   # one row per shift: ECE, Brier, accuracy, set id

The roadmap (Hendrycks et al. 2021, "Unsolved problems in ML safety", section on monitoring) asks that a
model's confidence stay calibrated when the inputs shift; Ovadia et al. (2019) measured how calibration degrades
under shift for classifiers. Here the confidence is the value function read as a success probability on the
games that pay a fixed reward once on success (CoinRun, Ninja, Jumper), with the mapping and caveats of
:func:`workbench.calibration.predictions.predictions_from_episodes` (discounting biases it low). Each shift's
predictions are stored as a prediction set (source ``"value_function"``, ``meta["shift"]``), so the Calibration
tab can plot any of them and the Safety tab plots them together.
"""

from __future__ import annotations

from workbench.calibration.metrics import calibration_summary
from workbench.calibration.predictions import SUCCESS_REWARD, PredictionStore, predictions_from_episodes
from workbench.storage.runs import RunStore

CALIBRATION_SHIFTS: tuple[str, ...] = ("train", "test", "hard")


def calibration_under_shift(run_id: str, *, episodes: int = 100, shifts=CALIBRATION_SHIFTS,
                            checkpoint_step: int | None = None, seed: int = 0, store_root=None,
                            device: str = "cpu", max_steps: int | None = None, n_bins: int = 10,
                            progress: bool = False) -> list[dict]:
    """Play ``episodes`` episodes on each shift (``train``: the run's training levels; ``test``: the whole level
    distribution; ``hard``: the whole distribution in hard mode), store each shift's (V(s0)/R, success)
    predictions and return a row per shift with its calibration summary (equal-width ``n_bins`` bins)."""
    from workbench.episodes.rollouts import record_episodes, value_scale_of
    from workbench.rl.checkpoints import policy_checkpoint_problem, policy_from_checkpoint

    if isinstance(shifts, str):
        shifts = [s.strip() for s in shifts.split(",") if s.strip()]
    bad = [s for s in shifts if s not in CALIBRATION_SHIFTS]
    if bad or not shifts:
        raise ValueError(f"unknown shift(s) {bad or shifts!r}; valid: {', '.join(CALIBRATION_SHIFTS)}")
    if not (isinstance(episodes, int) and episodes >= 2):
        raise ValueError(f"episodes must be a whole number >= 2, got {episodes!r}")
    runs = RunStore(store_root)
    info = runs.get_run(run_id)
    cfg = info.config
    game, mode = cfg["env"], cfg.get("distribution_mode", "easy")
    if game not in SUCCESS_REWARD:
        raise ValueError(f"{game!r} has no binary success outcome; calibration of the value function needs one of "
                         f"{', '.join(sorted(SUCCESS_REWARD))}")
    if "hard" in shifts and mode == "hard":
        raise ValueError("shift 'hard' needs a run trained in easy mode (this one is hard); use train,test")
    state = runs.load_checkpoint(run_id, checkpoint_step, check=policy_checkpoint_problem)
    core = policy_from_checkpoint(info.algo, cfg, state, device)
    step = int(state["global_step"])
    predictions = PredictionStore(store_root)
    rows = []
    for i, shift in enumerate(shifts):
        levels = dict(levels="train", num_levels=cfg["num_levels"], start_level=cfg["start_level"]) \
            if shift == "train" else dict(levels="test", num_levels=0, start_level=0)
        recorded = record_episodes(core, game, episodes=episodes, distribution_mode="hard" if shift == "hard" else mode,
                                   hires=False, seed=seed + i, max_steps=max_steps, run_id=run_id,
                                   checkpoint_step=step, value_scale=value_scale_of(state), progress=progress,
                                   **levels)
        confidence, outcome, meta = predictions_from_episodes([ep for ep, _ in recorded], SUCCESS_REWARD[game])
        meta.update(run_id=run_id, checkpoint_steps=[step], shift=shift, seed=seed + i)
        set_id = predictions.save(f"{run_id} V(s0)/{SUCCESS_REWARD[game]:g} @ step {step:,} on {shift}",
                                  confidence, outcome, source="value_function", meta=meta)
        summary = calibration_summary(confidence, outcome, n_bins=n_bins)
        rows.append({"shift": shift, "set_id": set_id, **{k: summary[k] for k in
                     ("n", "accuracy", "mean_confidence", "ece", "brier")},
                     "n_truncated_skipped": meta["n_truncated_skipped"]})
    return rows


def shift_sets(run_id: str, store_root=None) -> dict[str, str]:
    """The newest stored prediction set of each shift for a run: {shift: set id}."""
    found: dict[str, tuple[float, str]] = {}
    store = PredictionStore(store_root)
    for info in store.list():
        meta = info.meta or {}
        if meta.get("run_id") == run_id and meta.get("shift") in CALIBRATION_SHIFTS:
            if info.created_at >= found.get(meta["shift"], (-1.0, ""))[0]:
                found[meta["shift"]] = (info.created_at, info.id)
    return {shift: found[shift][1] for shift in CALIBRATION_SHIFTS if shift in found}


__all__ = ["CALIBRATION_SHIFTS", "calibration_under_shift", "shift_sets"]
