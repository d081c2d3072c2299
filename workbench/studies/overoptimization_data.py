"""Data of an overoptimization study (:mod:`workbench.studies.overoptimization`): responses of a policy to a
prompt scored by the gold and the proxies (frames deduplicated so each distinct frame is scored once), the
labeled comparisons the proxies learn from, proxy training (:func:`workbench.preferences.reward.fit_ensemble`)
and the ensemble variants (single member, mean, minimum over members).

`study` arguments are :class:`workbench.studies.overoptimization.OveroptimizationStudy` settings.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from workbench.preferences.reward import (
    ClipBank,
    PreferenceData,
    RewardConfig,
    fit_ensemble,
)
from workbench.storage.durable import atomic_write

VARIANTS = ("single", "mean", "min")


# ---- sampling responses of a policy ----------------------------------------------------------------------
def _dedupe(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the distinct frames, inverse): scorers and the policy then see each distinct frame once
    (the toy tasks show a few dozen distinct frames, Procgen's early steps repeat across samples of a level)."""
    keys = [hashlib.blake2b(frame.tobytes(), digest_size=16).digest() for frame in obs]
    first: dict[bytes, int] = {}
    inverse = np.array([first.setdefault(k, len(first)) for k in keys], np.int64)
    uniq = np.zeros(len(first), np.int64)
    uniq[inverse[::-1]] = np.arange(len(obs))[::-1]
    return uniq, inverse


@torch.no_grad()
def sample_responses(policy, study, n: int, *, seed: int, level_seed: int | None = None,
                     scorers: dict | None = None, keep_frames: bool = False) -> dict:
    """``n`` responses of ``policy`` (a PolicyCore; None = uniformly random actions) to one prompt, each
    ``study.response_length`` steps (cut at the episode's end). Returns ``env`` (n,) env-reward sums and, per
    scorer ``fn(frames uint8 (M, 64, 64, 3)) -> (k, M)`` per-step rewards, the (k, n) sums over the response's
    frames. ``keep_frames``: also ``frames`` (distinct frames) and ``index`` (n, L) into them (-1 after the end)."""
    from workbench.rl.env_registry import TEST_TASKS, make_vec_env

    levels = {} if study.env in TEST_TASKS or level_seed is None else {"num_levels": 1, "start_level": level_seed}
    env = make_vec_env(study.env, n, distribution_mode=study.distribution_mode, rand_seed=seed, **levels)
    gen = torch.Generator().manual_seed(seed)
    scorers = scorers or {}
    sums: dict[str, np.ndarray] = {}
    env_sum, alive = np.zeros(n), np.ones(n, bool)
    table: dict[bytes, int] = {}
    frames_kept, index = [], np.full((n, study.response_length), -1, np.int64)
    try:
        obs = env.reset()
        for t in range(study.response_length):
            uniq, inverse = _dedupe(obs)
            frames = torch.from_numpy(np.ascontiguousarray(obs[uniq]))
            for name, fn in scorers.items():
                r = np.asarray(fn(frames), np.float64)[:, inverse] * alive
                sums[name] = sums.get(name, 0.0) + r
            if keep_frames:
                for u, j in enumerate(uniq):
                    key = hashlib.blake2b(obs[j].tobytes(), digest_size=16).digest()
                    if key not in table:
                        table[key] = len(frames_kept)
                        frames_kept.append(obs[j].copy())
                    uniq_global = table[key]
                    index[(inverse == u) & alive, t] = uniq_global
            if policy is None:
                actions = torch.randint(env.num_actions, (n,), generator=gen)
            else:
                probs = torch.softmax(policy.forward(frames.to(policy.device))[0].float().cpu(), -1)
                actions = torch.multinomial(probs[torch.from_numpy(inverse)], 1, generator=gen)[:, 0]
            obs, reward, done, _ = env.step(actions.numpy())
            env_sum += np.asarray(reward, np.float64) * alive
            alive &= ~np.asarray(done, bool)
    finally:
        env.close()
    out = {"env": env_sum, **sums}
    if keep_frames:
        out["frames"] = np.stack(frames_kept)
        out["index"] = index
    return out


def prompt_seeds(study, count: int, offset: int) -> list[int | None]:
    """Level seeds as prompts (Procgen), or None per prompt for toy tasks (a prompt is then a group)."""
    from workbench.rl.env_registry import TEST_TASKS

    return [None] * count if study.env in TEST_TASKS else [offset + i for i in range(count)]


# ---- rewards: gold and the proxy variants ----------------------------------------------------------------
def member_rewards(ensemble) -> callable:
    """(M frames) -> (k, M): each member's normalized per-step reward (what the ensemble mean averages)."""
    def fn(frames: torch.Tensor) -> np.ndarray:
        return ensemble.normalize(ensemble._raw_chunked(frames)).double().cpu().numpy()
    return fn


def variant_step_reward(ensemble, variant: str):
    """The per-step reward RL optimizes for a proxy variant: member 0, the mean, or the minimum over members."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")

    def fn(obs_u8: torch.Tensor) -> torch.Tensor:
        per_member = ensemble.normalize(ensemble._raw_chunked(obs_u8.cpu()))
        out = {"single": per_member[0], "mean": per_member.mean(0), "min": per_member.min(0).values}[variant]
        return out.float().to(obs_u8.device)
    return fn


def variant_scores(member_sums: np.ndarray) -> dict[str, np.ndarray]:
    """Response scores of each variant from the (k, n) per-member sums (best-of-n: min over members per
    response, Coste et al.'s worst-case optimization)."""
    return {"single": member_sums[0], "mean": member_sums.mean(0), "min": member_sums.min(0)}


def gold_scorer(study, gold_model):
    """None for the env gold (the env reward is summed by the sampler), else the gold model's step rewards."""
    return None if gold_model is None else member_rewards(gold_model)


def gold_of(sample: dict) -> np.ndarray:
    return sample["gold"].mean(0) if "gold" in sample else sample["env"]


# ---- labels and proxies --------------------------------------------------------------------------------
def label_pool(study, policy, gold_model, pairs: int, heldout: int, *, seed: int, cache=None) -> dict:
    """`pairs` + `heldout` labeled comparisons of pi_init's responses (two responses to the same prompt),
    answered by the synthetic gold labeler. Returns frames, per-response frame indices and labels. `cache`: a
    .npz path where the pool is kept, so that the points of a study sharing a seed label the same pairs once."""
    if cache is not None and Path(cache).exists():
        with np.load(cache) as saved:
            return {"frames": saved["frames"], "index": saved["index"], "mu": saved["mu"], "pairs": pairs,
                    "heldout": heldout}
    pool = _label_pool(study, policy, gold_model, pairs, heldout, seed=seed)
    if cache is not None:
        atomic_write(cache, lambda f: np.savez(f, frames=pool["frames"], index=pool["index"], mu=pool["mu"]))
    return pool


def _label_pool(study, policy, gold_model, pairs: int, heldout: int, *, seed: int) -> dict:
    from workbench.preferences.synthetic import SyntheticLabeler

    total = pairs + heldout
    per_prompt = 64 if study.env not in ("colour_choice", "colour_cue") else 2 * total
    prompts = prompt_seeds(study, math.ceil(2 * total / per_prompt), offset=20_000 + 1000 * seed)
    scorer = gold_scorer(study, gold_model)
    frames, index, gold, offset = [], [], [], 0
    for p, level in enumerate(prompts):
        s = sample_responses(policy, study, per_prompt, seed=seed * 7919 + p, level_seed=level,
                             scorers={"gold": scorer} if scorer else {}, keep_frames=True)
        frames.append(s["frames"])
        index.append(np.where(s["index"] >= 0, s["index"] + offset, -1))
        gold.append(gold_of(s))
        offset += len(s["frames"])
    index, gold = np.concatenate(index)[:2 * total], np.concatenate(gold)[:2 * total]
    labeler = SyntheticLabeler(flip_prob=study.label_flip_prob, seed=seed)
    answers = [labeler.choose(float(gold[2 * i]), float(gold[2 * i + 1]), labeler.rng(i)) for i in range(total)]
    mu = np.array([{"left": 1.0, "right": 0.0, "equal": 0.5}[a] for a in answers])
    return {"frames": np.concatenate(frames), "index": index, "mu": mu, "pairs": pairs, "heldout": heldout}


def train_proxy(study, pool: dict, labels: int, size, *, seed: int,
                members: int | None = None) -> dict:
    """A reward-model ensemble of `size` = (width, hidden) on the first `labels` pairs of `pool` (held-out
    accuracy on the pool's held-out pairs). Returns the ensemble, its parameter count (one member) and accuracy."""
    if labels > pool["pairs"]:
        raise ValueError(f"{labels} labels asked for but the pool has {pool['pairs']} pairs")
    held = pool["heldout"]
    chosen = np.r_[np.arange(labels), pool["pairs"] + np.arange(held)]
    index = pool["index"].reshape(-1, 2, pool["index"].shape[1])[chosen].reshape(-1, pool["index"].shape[1])
    bank = IndexedClipBank.from_index(pool["frames"], index)
    n = len(chosen)
    data = PreferenceData("clip", [("pool", i, 1) for i in range(2 * n)], np.arange(0, 2 * n, 2),
                          np.arange(1, 2 * n, 2), pool["mu"][chosen], np.arange(n), np.arange(n), ["gold"] * n)
    train_mask = np.arange(n) < labels
    epochs = max(1, math.ceil(study.rm_steps / math.ceil(labels / study.rm_batch_size)))  # ~rm_steps steps
    config = RewardConfig(members=members or study.members, epochs=epochs, batch_size=study.rm_batch_size,
                          lr=study.rm_lr, width=float(size[0]), hidden=int(size[1]), noise_floor=False,
                          heldout_fraction=0.0, seed=int(seed), device=study.device)
    last = {}
    # No held-out split inside training (it would be evaluated every epoch); accuracy is measured once below.
    ensemble = fit_ensemble(data, config, bank=bank, train_mask=train_mask, heldout_mask=np.zeros(n, bool),
                            on_epoch=lambda em: last.update(em.metrics)).eval()
    params = sum(p.numel() for p in ensemble.members[0].parameters())
    return {"ensemble": ensemble, "params": int(params), "heldout_accuracy": heldout_accuracy(ensemble, bank, data, ~train_mask),
            "train_accuracy": float(last.get("train_accuracy", math.nan)), "epochs": epochs}


@torch.no_grad()
def heldout_accuracy(ensemble, bank: ClipBank, data: PreferenceData, mask: np.ndarray) -> float:
    """Accuracy on the strict held-out labels of the ensemble's P(A > B) (the mean of its members' Bradley-Terry
    probabilities on their trained scale, as RewardEnsemble.prob_a_better); a prediction of exactly 0.5 counts half."""
    pairs = np.flatnonzero(mask & (data.mu != 0.5))
    if pairs.size == 0:
        return math.nan
    items = np.r_[data.ia[pairs], data.ib[pairs]]
    idx, owner = bank.frame_indices(items)
    uniq, inverse = np.unique(idx, return_inverse=True)
    step = ensemble._raw_chunked(torch.from_numpy(bank.frames[uniq]))[:, inverse].double()
    totals = torch.zeros(step.shape[0], len(items), dtype=torch.float64).index_add_(1, torch.from_numpy(owner), step)
    p = torch.sigmoid(totals[:, :pairs.size] - totals[:, pairs.size:]).mean(0).numpy()
    right = data.mu[pairs] > 0.5
    return float(np.mean(np.where(p == 0.5, 0.5, (p > 0.5) == right)))


@dataclass
class IndexedClipBank(ClipBank):
    """A ClipBank whose items index a table of distinct frames (an item's frames need not be contiguous)."""

    flat: np.ndarray = None

    @classmethod
    def from_index(cls, frames: np.ndarray, index: np.ndarray) -> IndexedClipBank:
        """`index` (items, L): rows of frame indices, -1 past the response's end."""
        rows = [r[r >= 0] for r in index]
        lengths = np.array([len(r) for r in rows], np.int64)
        starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        return cls(frames, starts, lengths, np.concatenate(rows))

    def frame_indices(self, items):
        idx, owner = super().frame_indices(items)
        return self.flat[idx], owner


def colour_step_reward(weights) -> callable:
    """A hand-made per-step reward for the colour tasks: ``weights[c]`` for a frame of palette colour c (the
    nearest palette colour of the frame's mean pixel). E.g. gold = [1, 0, 0, 0] (red, colour_choice's reward)
    and a deliberately flawed proxy [1, 1.5, 0, 0] that also pays for green: it agrees with the gold near
    pi_init (red above blue and yellow) and disagrees at the extreme (all green)."""
    from workbench.rl.toy_env import PALETTE

    w = torch.as_tensor(np.asarray(weights, np.float32))
    palette = torch.as_tensor(PALETTE[: len(w)], dtype=torch.float32)

    def fn(obs_u8: torch.Tensor) -> torch.Tensor:
        mean = obs_u8.float().mean(dim=(1, 2))
        colour = (mean[:, None, :] - palette[None]).abs().amax(-1).argmin(-1)
        return w.to(obs_u8.device)[colour.to(obs_u8.device)]
    return fn
