"""Training: fitting an ensemble on bootstrap resamples with held-out metrics per epoch and adaptive L2, and
training a reward model from a labeling campaign as a stored run (its model saved, its held-out predictions stored)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.preferences.reward.config import (
    ALL_PREFERENCES,
    RewardConfig,
)
from workbench.preferences.reward.data import (
    ClipBank,
    PreferenceData,
    comparisons_to_data,
    labeler_agreement,
    split_heldout,
)
from workbench.preferences.reward.losses import (
    _accuracy,
    _grouped_mean_np,
    _prob_nll,
    bradley_terry_loss,
    preference_probability,
)
from workbench.preferences.reward.models import (
    RewardEnsemble,
    build_ensemble,
)
from workbench.preferences.reward.persistence import (
    reward_model_dir,
    save_reward_model,
)
from workbench.rl.policy import resolve_device


@dataclass
class EpochMetrics:
    epoch: int
    metrics: dict


def _member_item_rewards(member: nn.Module, items: np.ndarray, data_kind: str, bank: ClipBank | None,
                         features: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Raw rewards of the given unique items for one member (differentiable)."""
    if data_kind == "clip":
        idx, owner = bank.frame_indices(items)
        uniq, inverse = np.unique(idx, return_inverse=True)
        frames = torch.from_numpy(bank.frames[uniq]).to(device)
        step = member(frames)[torch.from_numpy(inverse).to(device)]
        return torch.zeros(len(items), dtype=step.dtype, device=device).index_add_(
            0, torch.from_numpy(owner).to(device), step)
    rows = features.index_select(0, torch.from_numpy(items).to(features.device)) if features.is_sparse \
        else features[torch.from_numpy(items).to(features.device)]
    return member(rows.to(device))


@torch.no_grad()
def _all_item_rewards(ensemble: RewardEnsemble, items: np.ndarray, kind: str, bank, features, chunk: int) -> torch.Tensor:
    """(k, len(items)) raw rewards, in chunks."""
    out = [torch.stack([_member_item_rewards(m, items[i:i + chunk], kind, bank, features, ensemble.device)
                        for m in ensemble.members]) for i in range(0, len(items), chunk)]
    return torch.cat(out, dim=1) if out else torch.zeros(len(ensemble), 0)


def _pair_probs(ensemble: RewardEnsemble, data: PreferenceData, kind: str, bank, features, chunk: int) -> np.ndarray:
    """(k, P) member P(A > B) for every pair of `data`."""
    items = np.unique(np.concatenate([data.ia, data.ib]))
    rewards = _all_item_rewards(ensemble, items, kind, bank, features, chunk).cpu()
    pos = {int(it): j for j, it in enumerate(items)}
    ja = torch.tensor([pos[int(i)] for i in data.ia])
    jb = torch.tensor([pos[int(i)] for i in data.ib])
    return preference_probability(rewards[:, ja], rewards[:, jb], noise_floor=ensemble.noise_floor).double().numpy()


def fit_ensemble(data: PreferenceData, config: RewardConfig, *, bank: ClipBank | None = None,
                 train_mask: np.ndarray | None = None, heldout_mask: np.ndarray | None = None,
                 on_epoch: Callable[[EpochMetrics], None] | None = None, meta: dict | None = None,
                 init: RewardEnsemble | None = None) -> RewardEnsemble:
    """Train an ensemble on `data` (clips need `bank`). Members train in lockstep, one epoch each in turn, so
    the ensemble's held-out metrics exist after every epoch; `on_epoch` receives them. `init`: an ensemble of
    the same shape to start from (a warm start, as Christiano et al. keep training one predictor while labels
    arrive); its members' weights are copied, the normalization is recomputed at the end as always."""
    kind = data.kind
    if kind == "clip" and bank is None:
        raise ValueError("clip preference data needs a ClipBank of the clips' frames")
    if config.model not in ("auto", kind):
        raise ValueError(f"config.model is {config.model!r} but the data are {kind} comparisons")
    if train_mask is None:
        train_mask, heldout_mask = split_heldout(data, config.heldout_fraction, config.seed)
    train, held = data.subset(train_mask), data.subset(heldout_mask)
    if len(train) == 0:
        raise ValueError("the training split is empty; lower heldout_fraction or label more items")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model_config = {"width": config.width, "hidden": config.hidden} if kind == "clip" else {"hidden": config.text_hidden}
    ensemble = build_ensemble(kind, config.members, model_config, reward_std=config.reward_std,
                              noise_floor=config.noise_floor, encoder_spec=config.text_encoder, meta=meta).to(device)
    if init is not None:
        shape = (init.kind, len(init), init.model_config)
        if shape != (kind, config.members, model_config):
            raise ValueError(f"cannot warm-start from a {init.kind} ensemble of {len(init)} members with "
                             f"{init.model_config}: this one is {kind}, {config.members} members, {model_config}")
        if kind == "text":
            spec = lambda e: {"name": e.encoder.name, **e.encoder.config()}  # noqa: E731
            if spec(init) != spec(ensemble):
                raise ValueError(f"cannot warm-start: the encoder differs ({spec(init)} vs {spec(ensemble)})")
        ensemble.members.load_state_dict(init.members.state_dict())
    features = None
    if kind == "text":
        prompts, responses = zip(*data.items)
        features = ensemble.encoder.encode(list(prompts), list(responses))
        if features.is_sparse:
            features = features.coalesce()
    rng = np.random.default_rng(config.seed)
    groups = np.unique(train.group)
    pairs_of_group = {g: np.flatnonzero(train.group == g) for g in groups.tolist()}
    samples = [rng.choice(groups, size=len(groups), replace=True) if config.bootstrap else groups.copy()
               for _ in range(config.members)]
    optimizers, l2 = [], [config.l2] * config.members
    for m in ensemble.members:
        decay = [p for p in m.parameters() if p.ndim > 1]
        plain = [p for p in m.parameters() if p.ndim <= 1]
        optimizers.append(torch.optim.Adam([{"params": decay, "weight_decay": config.l2},
                                            {"params": plain, "weight_decay": 0.0}], lr=config.lr, eps=config.adam_eps))
    overlap_agreement, overlap_mask = labeler_agreement(held) if len(held) else (math.nan, np.zeros(0, bool))

    for epoch in range(1, config.epochs + 1):
        ensemble.train()
        member_train_loss, member_train_acc = [], []
        for k, (member, opt) in enumerate(zip(ensemble.members, optimizers)):
            order = rng.permutation(samples[k])
            losses, correct, strict = [], 0.0, 0
            for lo in range(0, len(order), config.batch_size):
                batch_groups = order[lo:lo + config.batch_size]
                pair_idx = np.concatenate([pairs_of_group[g] for g in batch_groups.tolist()])
                # Elements drawn twice by the bootstrap count twice: give each draw its own group id.
                element = np.repeat(np.arange(len(batch_groups)), [len(pairs_of_group[g]) for g in batch_groups.tolist()])
                items, inverse = np.unique(np.concatenate([train.ia[pair_idx], train.ib[pair_idx]]), return_inverse=True)
                rewards = _member_item_rewards(member, items, kind, bank, features, device)
                n = len(pair_idx)
                ja, jb = torch.from_numpy(inverse[:n]).to(device), torch.from_numpy(inverse[n:]).to(device)
                mu = torch.from_numpy(train.mu[pair_idx]).float().to(device)
                loss = bradley_terry_loss(rewards[ja], rewards[jb], mu, noise_floor=config.noise_floor,
                                          group=torch.from_numpy(element).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append((loss.item(), len(batch_groups)))
                with torch.no_grad():
                    diff = (rewards[ja] - rewards[jb]).cpu().numpy()
                    mu_np = train.mu[pair_idx]
                    s = mu_np != 0.5
                    correct += float(np.sum(np.where(diff[s] == 0, 0.5, (diff[s] > 0) == (mu_np[s] > 0.5))))
                    strict += int(s.sum())
            member_train_loss.append(sum(v * w for v, w in losses) / sum(w for _, w in losses))
            member_train_acc.append(correct / strict if strict else math.nan)
        ensemble.eval()
        metrics = {"train_loss": float(np.mean(member_train_loss)), "train_accuracy": float(np.nanmean(member_train_acc))
                   if not all(math.isnan(a) for a in member_train_acc) else math.nan}
        if len(held):
            probs = _pair_probs(ensemble, held, kind, bank, features, config.eval_batch_size)
            mean_p = probs.mean(0)
            metrics["heldout_loss"] = _grouped_mean_np(_prob_nll(mean_p, held.mu), held.group)
            metrics["heldout_accuracy"] = _accuracy(mean_p, held.mu)
            member_held = [_grouped_mean_np(_prob_nll(p, held.mu), held.group) for p in probs]
            for k in range(config.members):
                metrics[f"member_{k}/train_loss"] = member_train_loss[k]
                metrics[f"member_{k}/heldout_loss"] = member_held[k]
                metrics[f"member_{k}/l2"] = l2[k]
            if overlap_mask.any():
                metrics["labeler_agreement"] = overlap_agreement
                metrics["heldout_accuracy_overlap"] = _accuracy(mean_p[overlap_mask], held.mu[overlap_mask])
            if config.l2_adapt:
                for k, opt in enumerate(optimizers):
                    ratio = member_held[k] / max(member_train_loss[k], 1e-12)
                    if ratio > 1.5:
                        l2[k] *= config.l2_adapt_factor
                    elif ratio < 1.1:
                        l2[k] /= config.l2_adapt_factor
                    opt.param_groups[0]["weight_decay"] = l2[k]
        if on_epoch is not None:
            on_epoch(EpochMetrics(epoch, metrics))

    # Normalize each member on the training items' steps (clip) or responses (text).
    train_items = np.unique(np.concatenate([train.ia, train.ib]))
    if kind == "clip":
        frame_idx = np.unique(bank.frame_indices(train_items)[0])
        raw = ensemble._raw_chunked(torch.from_numpy(bank.frames[frame_idx]))
    else:
        raw = _all_item_rewards(ensemble, train_items, kind, bank, features, config.eval_batch_size)
    ensemble.set_normalization(raw.to(ensemble.device))
    return ensemble


# ================================================================================================ save / load



@dataclass
class RewardTrainingResult:
    run_id: str
    model_path: Path
    ensemble: RewardEnsemble
    metrics: dict                   # the last epoch's metrics
    prediction_set: str | None      # PredictionStore id of the held-out P(A > B), None without held-out pairs
    num_train_pairs: int
    num_heldout_pairs: int


_KIND_OF_CAMPAIGN = {"clip_pair": "clip", "text_pair": "text", "ranking": "text"}


def train_reward_model(campaign: str, store_root: str | os.PathLike | None = None,
                       config: RewardConfig | None = None, *, name: str | None = None,
                       progress: Callable[[str], None] | None = None,
                       init: RewardEnsemble | None = None) -> RewardTrainingResult:
    """Train a reward-model ensemble on a labeling campaign's comparisons.

    Reads `LabelStore(store_root).comparisons(campaign)` (rankings arrive expanded into their C(K, 2) pairs,
    grouped), loads clip frames from the RolloutStore (each episode once), trains (:func:`fit_ensemble`), logs
    per-epoch metrics to a run (algo "reward") in the RunStore, saves the held-out P(A > B) to the
    PredictionStore (source "reward_model"; outcome 1 = the labeler preferred A, "equal" labels left out) and
    the model to :func:`reward_model_dir`. `init`: warm-start from an ensemble of the same shape
    (:func:`fit_ensemble`). Returns a :class:`RewardTrainingResult`."""
    from workbench.calibration.predictions import PredictionStore
    from workbench.preferences.labels import LabelStore
    from workbench.storage.runs import RunStore

    config = config or RewardConfig()
    labels = LabelStore(store_root)
    info = labels.get_campaign(campaign)
    if info.kind not in _KIND_OF_CAMPAIGN:
        raise ValueError(f"campaign {campaign!r} is of kind {info.kind!r}; reward models train on "
                         f"{sorted(_KIND_OF_CAMPAIGN)}")
    kind = _KIND_OF_CAMPAIGN[info.kind]
    if config.model not in ("auto", kind):
        raise ValueError(f"campaign {campaign!r} is a {info.kind} campaign ({kind} comparisons) but model="
                         f"{config.model!r} was asked for: the {config.model} reward model needs a "
                         f"{'clip_pair' if config.model == 'clip' else 'text_pair or ranking'} campaign")
    found: dict[str, int] = {}
    for lab in labels.labels(campaign):  # every live label, rankings included, for the error message
        found[lab.preferred] = found.get(lab.preferred, 0) + 1
    comparisons = labels.comparisons(campaign, include=ALL_PREFERENCES)
    data = comparisons_to_data(comparisons, config, expected_kind=kind, campaign=campaign, found=found)
    train_mask, held_mask = split_heldout(data, config.heldout_fraction, config.seed)

    bank = None
    if kind == "clip":
        from workbench.episodes.rollouts import RolloutStore

        rollouts = RolloutStore(store_root)
        bank = ClipBank.from_refs(data.items, lambda ep: rollouts.load(ep, hires=False).frames)

    runs = RunStore(store_root)
    run_config = {"campaign": campaign, "campaign_kind": info.kind, "model": kind, "reward_config": config.as_dict(),
                  "num_train_pairs": int(train_mask.sum()), "num_heldout_pairs": int(held_mask.sum()),
                  "label_counts": data.counts, "num_items": len(data.items)}
    run_id = runs.create_run(algo="reward", env=campaign, config=run_config, name=name)
    runs.set_status(run_id, "running", pid=os.getpid())
    last: dict = {}

    def on_epoch(em: EpochMetrics) -> None:
        last.clear()
        last.update(em.metrics)
        runs.log_metrics(run_id, em.epoch, em.metrics)
        if progress is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in em.metrics.items() if "/" not in k)
            progress(f"epoch {em.epoch}/{config.epochs}: {shown}")

    try:
        ensemble = fit_ensemble(data, config, bank=bank, train_mask=train_mask, heldout_mask=held_mask,
                                on_epoch=on_epoch, meta={"run_id": run_id, "campaign": campaign}, init=init)
        prediction_set = None
        held = data.subset(held_mask)
        strict = held.mu != 0.5
        if strict.any():
            probs = _pair_probs(ensemble, held.subset(strict), kind, bank, _text_features(ensemble, data),
                                config.eval_batch_size).mean(0)
            prediction_set = PredictionStore(store_root).save(
                f"{run_id} held-out P(A>B)", probs, (held.mu[strict] > 0.5).astype(np.int64), source="reward_model",
                meta={"run_id": run_id, "campaign": campaign, "split": "heldout", "noise_floor": config.noise_floor,
                      "members": config.members, "outcome": "1 = the labeler preferred A; 'equal' excluded"})
        model_path = save_reward_model(ensemble, reward_model_dir(run_id, runs.root))
    except BaseException:
        runs.set_status(run_id, "failed")
        raise
    runs.set_status(run_id, "finished")
    return RewardTrainingResult(run_id, model_path, ensemble, dict(last), prediction_set,
                                int(train_mask.sum()), int(held_mask.sum()))


def _text_features(ensemble: RewardEnsemble, data: PreferenceData) -> torch.Tensor | None:
    if data.kind != "text":
        return None
    prompts, responses = zip(*data.items)
    features = ensemble.encoder.encode(list(prompts), list(responses))
    return features.coalesce() if features.is_sparse else features
