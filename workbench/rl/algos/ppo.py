"""PPO and PPO-EWMA on Procgen.

PPO as in the Procgen paper (Cobbe et al. 2019, arXiv 1912.01588) and its code, train-procgen; PPO-EWMA as in
"Batch size-invariance for policy optimization" (Hilton, Cobbe, Schulman 2021, arXiv 2110.00641): the
proximal policy of the clipped objective is decoupled from the behaviour policy that collected the data and
is an EWMA of the policy weights (`proximal_policy="ewma"`; `ALGO_PRESETS["ppo-ewma"]`).

Every hyperparameter is in `PPOConfig`; `train()` reads top to bottom: collect a rollout, compute GAE, run
`update_epochs` epochs of minibatch updates, log, checkpoint. Where the reference codes differ, the choice is
a setting (see `PPOConfig`'s comments and the README).

Batch semantics: the paper's easy mode runs 1 worker x 64 envs; hard mode 4 workers x 64 envs, i.e. 256
envs in total with each worker's minibatch being 1/8 of its own 64 x 256 batch. Here `num_envs` is the total
env count on one machine and minibatches are 1/`num_minibatches` of the whole batch, so
`PPOConfig.paper("hard")` (256 envs, 8 minibatches of 8,192) has the same samples per gradient step as the
4-worker reference (whose MPI-averaged gradients are also over 4 x 2,048 = 8,192 samples).
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import torch

from workbench.rl.algos.ewma import EWMAModel
from workbench.rl.algos.losses import (
    clipped_policy_loss,
    decoupled_policy_loss,
    normalize_advantages,
    value_loss,
)
from workbench.rl.algos.returns import (
    AdvantageNormalizer,
    RewardNormalizer,
    explained_variance,
    gae_advantages,
)
from workbench.rl.algos.rollout import Roller, RolloutBuffer
from workbench.rl.algos.session import GeneratorState, TrainingSession
from workbench.rl.compute import TrainingCompute, end_iteration_compute
from workbench.rl.env_registry import make_vec_env, normalized_return_or_nan
from workbench.rl.policy import ImpalaCNN, PolicyCore
from workbench.storage.runs import RunStore

ADVANTAGE_NORMS = ("minibatch", "batch", "ewma", "none")
PROXIMAL_POLICIES = ("behavior", "recent", "ewma")


@dataclass
class PPOConfig:
    # --- environment (generalization protocol, easy mode) ---
    env: str = "coinrun"
    distribution_mode: str = "easy"
    num_levels: int = 200           # 200 easy / 500 hard; 0 = unrestricted (sample-efficiency protocol)
    start_level: int = 0
    num_envs: int = 64              # total envs on this machine (paper hard mode: 4 workers x 64 = 256)
    total_timesteps: int = 25_000_000
    # --- PPO (Procgen paper, Table/Appendix) ---
    num_steps: int = 256            # rollout length per env
    num_minibatches: int = 8
    update_epochs: int = 3
    learning_rate: float = 5e-4     # constant, as the paper
    adam_eps: float = 1e-5          # baselines; the PPG code uses 1e-8
    adam_betas: tuple[float, float] = (0.9, 0.999)
    gamma: float = 0.999
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float | None = 0.5   # baselines; None = no clipping (the PPG code)
    clip_value_loss: bool = True        # baselines' clipped value loss (same clip as the policy)
    advantage_norm: str = "minibatch"   # baselines: per minibatch; the PPG code: "batch"; "ewma" (beta_adv)
    value_epochs: int | None = None     # epochs that train the value function (PPG's E_V); None = update_epochs
    reward_norm_gamma: float = 0.99     # OpenAI's VecNormalize gamma; the PyTorch port uses 0.999
    reward_clip: float = 10.0
    # --- decoupled proximal policy (PPO-EWMA, Hilton et al. 2021) and staleness ---
    proximal_policy: str = "behavior"   # "behavior" = PPO; "ewma" = PPO-EWMA; "recent" = policy at update start
    decoupled: bool = True              # importance-weight by pi_prox / pi_behav; False = clip against pi_prox only
    beta_prox: float = 0.889            # EWMA decay: centre of mass 1/(1-beta)-1 = 8 steps (minibatches/iteration)
    max_importance_weight: float = 100.0    # cap on pi / pi_behav, as openai/ppo-ewma
    beta_adv: float = 0.0               # advantage_norm="ewma": decay of the moment EWMA (0 = per batch)
    staleness: int = 0                  # train on data collected this many iterations ago (EWMA paper, Sec. 6)
    # --- model and runtime ---
    width: float = 1.0              # IMPALA depth multiplier
    device: str = "auto"            # "auto" = CUDA if available, else CPU
    bf16: bool | None = None        # None = the measured default for the device (workbench.rl.policy.default_bf16)
    channels_last: bool = True
    update_chunk_size: int | None = 512  # accumulate each minibatch's gradient over chunks of this many
                                         # samples (same gradient, lower memory peak); None = whole minibatch
    cuda_graph: bool = True
    seed: int = 0
    checkpoint_every: int = 10      # iterations between checkpoints (and always at the end or on stop)
    tensorboard: bool = False       # also write TensorBoard event files under <store>/tensorboard/<run_id>
    record_every: int = 0           # record one whole episode (workbench.episodes.rollouts) every this many iterations; 0 = off
    record_hires: bool = True       # ...with the game's 512x512 render
    name: str | None = None

    @classmethod
    def paper(cls, distribution_mode: str = "easy", **overrides) -> "PPOConfig":
        """The Procgen paper's settings for a mode: easy 64 envs, 200 levels, 25M steps; hard 256 envs,
        500 levels, 200M steps."""
        base = dict(easy=dict(num_envs=64, num_levels=200, total_timesteps=25_000_000),
                    hard=dict(num_envs=256, num_levels=500, total_timesteps=200_000_000))
        if distribution_mode not in base:
            raise ValueError(f"unknown distribution_mode {distribution_mode!r}; valid: easy, hard")
        return cls(distribution_mode=distribution_mode, **{**base[distribution_mode], **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> "PPOConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} settings {unknown}; valid: {sorted(known)}")
        values = dict(values)
        if "adam_betas" in values:  # JSON stores tuples as lists
            values["adam_betas"] = tuple(values["adam_betas"])
        return cls(**values)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def validate(self) -> "PPOConfig":
        problems = []
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "total_timesteps"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.num_minibatches >= 1 and self.batch_size % self.num_minibatches:
            problems.append(f"num_envs * num_steps = {self.batch_size} must be divisible by "
                            f"num_minibatches = {self.num_minibatches}")
        if self.advantage_norm not in ADVANTAGE_NORMS:
            problems.append(f"advantage_norm {self.advantage_norm!r} is not one of {ADVANTAGE_NORMS}")
        if self.proximal_policy not in PROXIMAL_POLICIES:
            problems.append(f"proximal_policy {self.proximal_policy!r} is not one of {PROXIMAL_POLICIES}")
        for name in ("beta_prox", "beta_adv"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1) (got {getattr(self, name)})")
        if self.staleness < 0:
            problems.append(f"staleness must be >= 0 iterations (got {self.staleness})")
        if self.update_chunk_size is not None and self.update_chunk_size < 1:
            problems.append(f"update_chunk_size must be >= 1 or None (got {self.update_chunk_size})")
        if self.value_epochs is not None and self.value_epochs < 0:
            problems.append(f"value_epochs must be >= 0 (got {self.value_epochs})")
        for name in ("gamma", "gae_lambda", "reward_norm_gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        for name in ("learning_rate", "clip_coef", "width"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0 (got {getattr(self, name)})")
        if problems:
            raise ValueError("invalid PPO config: " + "; ".join(problems))
        return self


# The EWMA paper's variants: decoupled objective, EWMA proximal policy, per-batch advantage normalization
# expressed as its EWMA form (beta_adv = 0) so that adjust_for_batch_size can scale it.
EWMA_PRESET = {"proximal_policy": "ewma", "advantage_norm": "ewma", "beta_adv": 0.0}
ALGO_PRESETS: dict[str, dict] = {"ppo": {}, "ppo-ewma": EWMA_PRESET}


def make_policy(config: PPOConfig, **model_kwargs) -> PolicyCore:
    return PolicyCore(ImpalaCNN(width=config.width, **model_kwargs), config.device, bf16=config.bf16,
                      channels_last=config.channels_last, cuda_graph=config.cuda_graph)


def make_env(config, rand_seed: int):
    return make_vec_env(config.env, config.num_envs, distribution_mode=config.distribution_mode,
                        num_levels=config.num_levels, start_level=config.start_level, rand_seed=rand_seed)


class ProximalPolicy:
    """Where the proximal log-probs of the clipped objective come from (EWMA paper, Sec. 3):
    "behavior": the policy that collected the data (PPO); "recent": the policy at the start of this update;
    "ewma": an EWMA of the policy weights, updated after every optimizer step that includes the policy loss.
    """

    def __init__(self, config: PPOConfig, core: PolicyCore):
        self.kind = config.proximal_policy
        self.ewma = None
        if self.kind == "ewma":
            self.ewma = EWMAModel(core.model, config.beta_prox)
            self.ewma_core = PolicyCore(self.ewma.model, core.device, bf16=core.bf16,
                                        channels_last=core.channels_last, cuda_graph=False)
        self.core = core
        self._recent = None

    def begin_update(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        if self.kind == "recent":
            self._recent = self.core.log_probs(obs, actions)

    def log_probs(self, idx: torch.Tensor, obs_mb: torch.Tensor, actions_mb: torch.Tensor,
                  behavior_log_probs_mb: torch.Tensor) -> torch.Tensor:
        if self.kind == "behavior":
            return behavior_log_probs_mb
        if self.kind == "recent":
            return self._recent[idx]
        return self.ewma_core.log_probs(obs_mb, actions_mb)

    def after_policy_step(self) -> None:
        if self.ewma is not None:
            self.ewma.update()


def ppo_update(core: PolicyCore, optimizer: torch.optim.Optimizer, buf: RolloutBuffer, advantages: torch.Tensor,
               returns: torch.Tensor, config: PPOConfig, generator: torch.Generator, *,
               proximal: ProximalPolicy | None = None, advantage_normalizer: AdvantageNormalizer | None = None,
               value_core: PolicyCore | None = None) -> dict[str, float]:
    """`update_epochs` passes of the clipped policy objective and `value_epochs` of the value loss over the
    batch, in `num_minibatches` shuffled minibatches per epoch. PPG passes its separate value network as
    `value_core` (otherwise the policy network's value head is trained).

    A minibatch's gradient may be accumulated over chunks of `update_chunk_size` samples: the same gradient
    (each chunk's mean loss is weighted by its share of the minibatch, and minibatch statistics such as the
    advantage normalization are taken over the whole minibatch first), with a smaller activation peak.
    """
    obs = buf.obs.flatten(0, 1)
    actions, behavior_log_probs = buf.actions.flatten(), buf.log_probs.flatten()
    old_values, advantages, returns = buf.values.flatten(), advantages.flatten(), returns.flatten()
    if config.advantage_norm == "batch":
        advantages = normalize_advantages(advantages)
    elif config.advantage_norm == "ewma":
        advantage_normalizer.update(advantages)
        advantages = advantage_normalizer(advantages)
    proximal = proximal or ProximalPolicy(dataclasses.replace(config, proximal_policy="behavior"), core)
    proximal.begin_update(obs, actions)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    value_epochs = config.update_epochs if config.value_epochs is None else config.value_epochs
    chunk_size = config.update_chunk_size or config.minibatch_size
    # Summed on the device and read once per update: a .item() per minibatch would sync a GPU each time.
    sums = {k: torch.zeros((), device=obs.device) for k in ("policy_loss", "value_loss", "entropy", "approx_kl",
                                                           "approx_kl_behavior", "clip_fraction")}
    policy_steps = value_steps = 0

    def chunk_loss(idx, adv, train_policy, train_value, weight):
        loss = torch.zeros((), device=obs.device)
        values = None
        if train_policy:
            logits, values = core.forward(obs[idx])
            log_probs = torch.log_softmax(logits, dim=-1)
            new_log_prob = log_probs.gather(1, actions[idx, None]).squeeze(1)
            entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
            prox_log_prob = proximal.log_probs(idx, obs[idx], actions[idx], behavior_log_probs[idx])
            if proximal.kind != "behavior" and config.decoupled:
                pg = decoupled_policy_loss(new_log_prob, behavior_log_probs[idx], prox_log_prob, adv,
                                           config.clip_coef, config.max_importance_weight)
            else:
                pg = clipped_policy_loss(new_log_prob, prox_log_prob, adv, config.clip_coef)
            loss = loss + pg.loss - config.ent_coef * entropy
            with torch.no_grad():
                log_ratio = new_log_prob - behavior_log_probs[idx]
                kl_behavior = (log_ratio.exp() - 1 - log_ratio).mean()
            for key, value in (("policy_loss", pg.loss), ("entropy", entropy), ("approx_kl", pg.approx_kl),
                               ("approx_kl_behavior", kl_behavior), ("clip_fraction", pg.clip_fraction)):
                sums[key] += weight * value.detach()
        if train_value:
            if value_core is not None:
                values = value_core.forward(obs[idx])[1]
            elif values is None:
                values = core.forward(obs[idx])[1]
            v_loss = value_loss(values, returns[idx], old_values[idx],
                                config.clip_coef if config.clip_value_loss else None)
            loss = loss + config.vf_coef * v_loss
            sums["value_loss"] += weight * v_loss.detach()
        return loss * weight

    for epoch in range(max(config.update_epochs, value_epochs)):
        train_policy, train_value = epoch < config.update_epochs, epoch < value_epochs
        order = torch.randperm(config.batch_size, generator=generator).to(obs.device)
        for start in range(0, config.batch_size, config.minibatch_size):
            idx = order[start:start + config.minibatch_size]
            adv = advantages[idx]
            if config.advantage_norm == "minibatch":
                adv = normalize_advantages(adv)  # over the whole minibatch, before any chunking
            optimizer.zero_grad(set_to_none=True)
            for c in range(0, len(idx), chunk_size):
                weight = min(chunk_size, len(idx) - c) / len(idx)
                chunk_loss(idx[c:c + chunk_size], adv[c:c + chunk_size], train_policy, train_value,
                           weight).backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            if train_policy:
                proximal.after_policy_step()
            policy_steps += train_policy
            value_steps += train_value
    metrics = {k: float(v) / max(policy_steps, 1) for k, v in sums.items() if k != "value_loss"}
    metrics["value_loss"] = float(sums["value_loss"]) / max(value_steps, 1)
    metrics["explained_variance"] = explained_variance(old_values, returns)
    return metrics


def train(config: PPOConfig, *, store: RunStore | None = None, run_id: str | None = None,
          progress: bool = True, extension=None, recorder=None) -> str:
    """Train PPO (or PPO-EWMA, by `proximal_policy`); returns the run id. With the id of an existing run,
    continues from its last checkpoint. `extension` (RL against a reward model, `rlhf.RewardModelHook`)
    names the algorithm, may set initial weights and add checkpointed state, and replaces the env reward.
    `recorder(session, roller, config)` records an episode every `config.record_every` iterations
    (`workbench.registry.train` passes the episode recorder; the engine does not import the episode store)."""
    config.validate()
    check_recorder(config, recorder)
    algo = "ppo-ewma" if config.proximal_policy == "ewma" else "ppo"
    torch.manual_seed(config.seed)
    core = make_policy(config)
    optimizer = torch.optim.Adam(core.model.parameters(), lr=config.learning_rate, eps=config.adam_eps,
                                 betas=tuple(config.adam_betas))
    reward_normalizer = RewardNormalizer(config.num_envs, gamma=config.reward_norm_gamma, clip=config.reward_clip)
    proximal = ProximalPolicy(config, core)
    advantage_normalizer = AdvantageNormalizer(config.beta_adv)
    shuffle = torch.Generator().manual_seed(config.seed)
    state = {"model": core.model, "optimizer": optimizer, "reward_normalizer": reward_normalizer,
             "advantage_normalizer": advantage_normalizer, "shuffle": GeneratorState(shuffle)}
    if proximal.ewma is not None:
        state["proximal_ewma"] = proximal.ewma
    if extension is not None:
        algo = extension.setup(algo, core, state)
    session = TrainingSession(algo, config, store=store, run_id=run_id, progress=progress, state=state)
    session.recorder = recorder
    session.restore(core.device)
    session.compute = TrainingCompute(config, core.model, extension=extension).resume(session)

    env = make_env(config, session.env_seed(config.seed))
    roller = Roller(env, core, reward_normalizer, reward_fn=extension)
    # With staleness k, a ring of k + 1 buffers: each iteration collects into one and trains on the oldest,
    # collected k iterations ago. (After a resume the ring refills first: k iterations without updates.)
    buffers = [RolloutBuffer.allocate(config.num_steps, config.num_envs, env.observation_shape, core.device)
               for _ in range(config.staleness + 1)]
    filled = 0
    with session, closing(env):
        while session.running:
            t0 = time.perf_counter()
            core.model.eval()
            slot = session.iteration % len(buffers)
            episodes = roller.collect(buffers[slot])
            filled += 1
            t1 = time.perf_counter()
            metrics = {}
            if filled > config.staleness:
                buf = buffers[(slot + 1) % len(buffers)]  # the oldest (the same buffer when staleness = 0)
                advantages, returns = gae_advantages(buf.rewards, buf.values, buf.dones, buf.last_value,
                                                     config.gamma, config.gae_lambda)
                core.model.train()
                metrics = ppo_update(core, optimizer, buf, advantages, returns, config, shuffle,
                                     proximal=proximal, advantage_normalizer=advantage_normalizer)
            metrics["staleness"] = config.staleness
            end_iteration(session, roller, config, episodes, metrics, t0, t1)
    return session.run_id


def end_iteration(session: TrainingSession, roller: Roller, config: PPOConfig, episodes, metrics: dict,
                  t_start: float, t_collected: float) -> None:
    """Adds episode statistics and timings to an iteration's metrics and hands them to the session."""
    if roller.reward_fn is not None:
        metrics.update(roller.reward_fn.end_iteration(session))
    metrics.update(end_iteration_compute(session, metrics))  # cumulative training FLOPs (workbench.rl.compute)
    t_end = time.perf_counter()
    metrics.update(episode_metrics(episodes, config), steps_per_second=config.batch_size / (t_end - t_start),
                   rollout_seconds=t_collected - t_start, update_seconds=t_end - t_collected)
    session.end_iteration(config.batch_size, metrics, postfix=dict(sps=f"{metrics['steps_per_second']:.0f}",
                                                                   ret=f"{roller.recent_mean_return():.2f}"))
    if config.record_every and session.iteration % config.record_every == 0:
        session.recorder(session, roller, config)


def check_recorder(config, recorder) -> None:
    if config.record_every and recorder is None:
        raise ValueError(f"record_every={config.record_every} needs an episode recorder: train with "
                         "workbench.registry.train, which passes workbench.episodes.rollouts.record_training_episode")


def episode_metrics(episodes, config: PPOConfig) -> dict[str, float]:
    if not episodes:
        return {}
    returns = np.array([e.ret for e in episodes], np.float64)
    out = {"episode_return": float(returns.mean()), "episode_length": float(np.mean([e.length for e in episodes])),
           "episodes": float(len(episodes))}
    norm = float(np.mean(normalized_return_or_nan(config.env, returns, config.distribution_mode)))
    if not math.isnan(norm):
        out["normalized_return"] = norm
    return out
