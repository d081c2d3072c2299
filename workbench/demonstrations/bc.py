"""Behavioural cloning: the IMPALA policy trained by cross-entropy on a demonstration set.

WebGPT (Nakano et al. 2021, arXiv 2112.09332, Sec. 3.3) starts from behaviour cloning on human demonstrations
("supervised fine-tuning on the demonstrations"), then improves with rejection sampling against a reward
model or RL; the MineRL competition (Guss et al. 2021, arXiv 2101.11071) asks for sample-efficient learning from
human demonstrations, with a track that allows no environment interaction at all (`workbench.demonstrations.
tracks`). Here `train()` reads top to bottom like `workbench.rl.algos.ppo`: load the set, hold out whole
episodes (steps of one episode are correlated, so a per-step split would leak), then each iteration one
minibatch step of cross-entropy on the demonstrators' actions, the held-out loss and accuracy every
`eval_every` iterations, checkpoints through `TrainingSession`, and at the end the policy's return on the
training and test levels (`workbench.rl.evaluate.evaluate_run`).

The run's step axis counts demonstration samples consumed (the run uses no environment step while training;
metric `env_steps` says so). The network is saved under "model", like PPO's, so evaluation, recording and
`init_run` of PPO/PPG/RL against a reward model rebuild it from the checkpoint (workbench.rl.checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from workbench.demonstrations.sets import DemonstrationStore, demonstration_arrays
from workbench.rl.algos.config_check import check_config, config_from_dict
from workbench.rl.algos.session import GeneratorState, TrainingSession
from workbench.rl.env_registry import validate_env_name
from workbench.rl.policy import ImpalaCNN, PolicyCore
from workbench.storage.runs import RunStore


@dataclass
class BCConfig:
    # --- data: a demonstration set and the levels it was played on (for evaluation on "train" levels) ---
    demo_set: str = ""
    env: str = "coinrun"
    distribution_mode: str = "easy"
    num_levels: int = 200           # the demonstrations' training levels (0 = the whole distribution)
    start_level: int = 0
    holdout_fraction: float = 0.1   # share of the set's episodes held out (at least one when there are >= 2)
    # --- optimization ---
    updates: int = 2000             # gradient steps
    batch_size: int = 256           # demonstration samples per step
    learning_rate: float = 5e-4     # Adam, as PPO on Procgen
    adam_eps: float = 1e-5
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = 0.5
    ent_coef: float = 0.0           # optional entropy bonus (0 = plain cross-entropy)
    eval_every: int = 50            # iterations between held-out loss/accuracy measurements
    eval_episodes: int = 32         # episodes per level set at the end (0 = no environment evaluation)
    eval_num_envs: int = 16
    # --- model and runtime ---
    width: float = 1.0
    device: str = "auto"
    bf16: bool | None = None
    channels_last: bool = True
    seed: int = 0
    checkpoint_every: int = 500
    tensorboard: bool = False
    record_every: int = 0           # registry convention; BC plays no episodes while training
    name: str | None = None

    @classmethod
    def paper(cls, distribution_mode: str = "easy", **overrides) -> BCConfig:
        """The Procgen generalization protocol's training levels for a mode (200 easy / 500 hard)."""
        levels = {"easy": 200, "hard": 500}
        if distribution_mode not in levels:
            raise ValueError(f"unknown distribution_mode {distribution_mode!r}; valid: easy, hard")
        return cls(distribution_mode=distribution_mode, **{"num_levels": levels[distribution_mode], **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> BCConfig:
        return config_from_dict(cls, values)

    @property
    def total_timesteps(self) -> int:  # TrainingSession's budget: samples consumed
        return self.updates * self.batch_size

    def validate(self) -> BCConfig:
        check_config(self)
        problems = []
        if not self.demo_set:
            problems.append("demo_set is required: the name of a demonstration set (workbench demos list)")
        try:
            validate_env_name(self.env)
        except ValueError as exc:
            problems.append(str(exc))
        for name in ("updates", "batch_size", "eval_every", "eval_num_envs"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.eval_episodes < 0:
            problems.append(f"eval_episodes must be >= 0 (got {self.eval_episodes})")
        if not 0.0 <= self.holdout_fraction < 1.0:
            problems.append(f"holdout_fraction must be in [0, 1) (got {self.holdout_fraction})")
        if self.record_every:
            problems.append("record_every must be 0: behavioural cloning plays no episodes while training")
        if problems:
            raise ValueError("invalid BC config: " + "; ".join(problems))
        return self


def split_episodes(num_episodes: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) episode indices: a seeded shuffle, round(fraction * E) held out (>= 1 when E >= 2 and
    the fraction is > 0; never all)."""
    order = np.random.default_rng(seed).permutation(num_episodes)
    held = int(round(holdout_fraction * num_episodes))
    if holdout_fraction > 0 and num_episodes >= 2:
        held = min(max(held, 1), num_episodes - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def cloning_loss(logits: torch.Tensor, actions: torch.Tensor, ent_coef: float = 0.0):
    """Cross-entropy of the demonstrators' actions, minus an optional entropy bonus; (loss, accuracy)."""
    log_probs = torch.log_softmax(logits, -1)
    ce = F.nll_loss(log_probs, actions)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    accuracy = (logits.argmax(-1) == actions).float().mean()
    return ce - ent_coef * entropy, ce, entropy, accuracy


@torch.no_grad()
def held_out_metrics(core: PolicyCore, frames: np.ndarray, actions: np.ndarray, chunk: int = 1024) -> dict:
    """Mean cross-entropy and accuracy of the greedy action over held-out steps."""
    core.model.eval()
    ce_sum = correct = 0.0
    for start in range(0, len(actions), chunk):
        logits = core.forward(core.to_device(frames[start:start + chunk]))[0]
        target = torch.as_tensor(actions[start:start + chunk], device=logits.device)
        ce_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += float((logits.argmax(-1) == target).sum())
    return {"test/cross_entropy": ce_sum / len(actions), "test/accuracy": correct / len(actions)}


def train(config: BCConfig, *, store: RunStore | None = None, run_id: str | None = None,
          progress: bool = True, recorder=None) -> str:
    """Behavioural cloning on `config.demo_set`; returns the run id (an existing id resumes it)."""
    config.validate()
    store = store or RunStore()
    demos = DemonstrationStore(store.root)
    episodes = demos.episodes(config.demo_set)
    demos.close()
    wrong_env = sorted({e.env for e in episodes} - {config.env})
    if wrong_env:
        raise ValueError(f"demonstration set {config.demo_set!r} holds episodes of {wrong_env}, not {config.env!r}")
    frames, actions, episode_index = demonstration_arrays(episodes)
    train_eps, held_eps = split_episodes(len(episodes), config.holdout_fraction, config.seed)
    train_idx = np.flatnonzero(np.isin(episode_index, train_eps))
    held_idx = np.flatnonzero(np.isin(episode_index, held_eps))

    torch.manual_seed(config.seed)
    core = PolicyCore(ImpalaCNN(width=config.width), config.device, bf16=config.bf16,
                      channels_last=config.channels_last, cuda_graph=False)
    optimizer = torch.optim.Adam(core.model.parameters(), lr=config.learning_rate, eps=config.adam_eps,
                                 betas=tuple(config.adam_betas))
    shuffle = torch.Generator().manual_seed(config.seed)
    session = TrainingSession("bc", config, store=store, run_id=run_id, progress=progress,
                              state={"model": core.model, "optimizer": optimizer, "shuffle": GeneratorState(shuffle)})
    session.restore(core.device)
    train_frames, train_actions = frames[train_idx], actions[train_idx]
    with session:
        while session.running:
            core.model.train()
            batch = torch.randint(len(train_actions), (config.batch_size,), generator=shuffle).numpy()
            logits = core.forward(core.to_device(train_frames[batch]))[0]
            target = torch.as_tensor(train_actions[batch], device=logits.device)
            loss, ce, entropy, accuracy = cloning_loss(logits, target, config.ent_coef)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(core.model.parameters(), config.max_grad_norm)
            optimizer.step()
            metrics = {"train/cross_entropy": ce.item(), "train/accuracy": accuracy.item(),
                       "entropy": entropy.item(), "env_steps": 0.0,
                       "demo_episodes": float(len(train_eps)), "held_out_episodes": float(len(held_eps))}
            last = session.iteration + 1 >= session.num_iterations
            if len(held_idx) and ((session.iteration + 1) % config.eval_every == 0 or last):
                metrics.update(held_out_metrics(core, frames[held_idx], actions[held_idx]))
            session.end_iteration(config.batch_size, metrics, postfix={"ce": f"{ce.item():.3f}"})
    if config.eval_episodes and session.iteration >= session.num_iterations:
        evaluate_levels(session.run_id, store, config)
    return session.run_id


def evaluate_levels(run_id: str, store: RunStore, config) -> dict[str, float]:
    """The finished policy's mean return on its training levels and on the test distribution, logged at the
    run's last step as eval/train_return and eval/test_return."""
    from workbench.rl.evaluate import evaluate_run

    out = {}
    for levels in ("train", "test"):
        result = evaluate_run(run_id, levels=levels, episodes=config.eval_episodes, store=store,
                              num_envs=config.eval_num_envs, device=config.device, seed=config.seed + 1)
        out[f"eval/{levels}_return"] = result.mean_return
        if not np.isnan(result.normalized_return):
            out[f"eval/{levels}_normalized"] = result.normalized_return
    store.log_metrics(run_id, result.checkpoint_step, out)
    return out


__all__ = ["BCConfig", "cloning_loss", "evaluate_levels", "held_out_metrics", "split_episodes", "train"]
