"""Phasic Policy Gradient (Cobbe, Hilton, Klimov, Schulman 2020, arXiv 2009.04416), and PPG-EWMA.

Training alternates two phases:
- Policy phase, `n_pi` iterations: collect a rollout, GAE, then PPO's minibatch update (`ppo.ppo_update`):
  E_pi epochs of the clipped objective + entropy for the policy network and E_V epochs of
  0.5 (V - V_targ)^2 for the value network. Every iteration's observations (uint8) and value targets go
  into the auxiliary buffer.
- Auxiliary phase: store the policy's logits for the whole buffer (frozen before the phase), then `aux_epochs`
  epochs over minibatches of whole rollouts of
      L_joint = 0.5 (V_aux(s) - V_targ)^2 + beta_clone KL[pi_old(.|s) || pi(.|s)]
  for the policy network (V_aux: a value head sharing all but its last layer with the policy) together with
  the value network's 0.5 (V(s) - V_targ)^2. Targets stay fixed during the phase.

Architectures: "dual" (the paper's: separate policy and value networks) and "detach" (a single network whose
value head sits on detached features plus an auxiliary value head; the popular PyTorch port's variant).
PPG-EWMA (Hilton et al. 2021): `proximal_policy="ewma"`; the EWMA is reset at the start of each policy phase.

Defaults follow openai/phasic-policy-gradient (the paper's code): Adam eps 1e-8, no gradient clipping, an
unclipped value loss, advantages normalized per batch. Resuming: the auxiliary buffer is not checkpointed
(at paper scale it is 6.4 GB of frames), so a resumed run starts a new policy phase.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workbench.rl.algos.ppo import (
    EWMA_PRESET,
    PPOConfig,
    ProximalPolicy,
    check_recorder,
    end_iteration,
    make_env,
    make_policy,
    ppo_update,
)
from workbench.rl.algos.returns import (
    AdvantageNormalizer,
    RewardNormalizer,
    gae_advantages,
)
from workbench.rl.algos.rollout import Roller, RolloutBuffer
from workbench.rl.algos.session import GeneratorState, TrainingSession
from workbench.rl.compute import TrainingCompute
from workbench.rl.policy import PolicyCore
from workbench.storage.runs import RunStore

ARCHITECTURES = ("dual", "detach")


@dataclass
class PPGConfig(PPOConfig):
    # --- PPG (paper Table 1 / openai/phasic-policy-gradient) ---
    update_epochs: int = 1          # E_pi
    value_epochs: int | None = 1    # E_V
    n_pi: int = 32                  # policy iterations per auxiliary phase
    aux_epochs: int = 6             # E_aux
    beta_clone: float = 1.0
    aux_minibatch_rollouts: int | None = None  # whole rollouts per aux minibatch; None = num_envs // 16, i.e.
                                               # 16 x n_pi minibatches per epoch (the code: 4 of 64 rollouts)
    arch: str = "dual"              # "dual" (paper) or "detach" (single network, detached value head)
    # --- where the PPG code differs from baselines' PPO ---
    adam_eps: float = 1e-8
    max_grad_norm: float | None = None
    clip_value_loss: bool = False
    advantage_norm: str = "batch"
    vf_coef: float = 1.0            # separate networks (dual): the value loss has its own parameters

    @property
    def aux_rollouts_per_minibatch(self) -> int:
        return self.aux_minibatch_rollouts or max(1, self.num_envs // 16)

    def validate(self) -> "PPGConfig":
        super().validate()
        problems = []
        if self.arch not in ARCHITECTURES:
            problems.append(f"arch {self.arch!r} is not one of {ARCHITECTURES}")
        if self.n_pi < 1:
            problems.append(f"n_pi must be >= 1 (got {self.n_pi})")
        if self.aux_minibatch_rollouts is not None and self.aux_minibatch_rollouts < 1:
            problems.append(f"aux_minibatch_rollouts must be >= 1 or None (got {self.aux_minibatch_rollouts})")
        if self.aux_epochs < 0:
            problems.append(f"aux_epochs must be >= 0 (got {self.aux_epochs})")
        if problems:
            raise ValueError("invalid PPG config: " + "; ".join(problems))
        return self


ALGO_PRESETS: dict[str, dict] = {"ppg": {}, "ppg-ewma": EWMA_PRESET}


class AuxBuffer:
    """The auxiliary phase's data: n_pi iterations of observations (uint8) and value targets, on the device."""

    def __init__(self, config: PPGConfig, obs_shape, device):
        shape = (config.n_pi, config.num_steps, config.num_envs)
        self.obs = torch.zeros((*shape, *obs_shape), dtype=torch.uint8, device=device)
        self.returns = torch.zeros(shape, dtype=torch.float32, device=device)
        self.size = 0

    def add(self, buf: RolloutBuffer, returns: torch.Tensor) -> None:
        self.obs[self.size].copy_(buf.obs)
        self.returns[self.size].copy_(returns)
        self.size += 1

    @property
    def full(self) -> bool:
        return self.size == self.obs.shape[0]

    def rollouts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, T, ...) views: every env's rollout of every stored iteration is one row."""
        obs = self.obs[:self.size].transpose(1, 2).flatten(0, 1)          # (n * N, T, H, W, C)
        returns = self.returns[:self.size].transpose(1, 2).flatten(0, 1)  # (n * N, T)
        return obs, returns


def aux_losses(new_logits: torch.Tensor, old_logits: torch.Tensor, aux_values: torch.Tensor,
               values: torch.Tensor, targets: torch.Tensor, beta_clone: float) -> dict[str, torch.Tensor]:
    """PPG's auxiliary-phase losses: L_aux = 0.5 E[(V_aux - V_targ)^2], the behaviour-cloning term
    KL[pi_old || pi] averaged over states, and the value function's own 0.5 E[(V - V_targ)^2]."""
    old_log_p = F.log_softmax(old_logits, -1)
    kl = (old_log_p.exp() * (old_log_p - F.log_softmax(new_logits, -1))).sum(-1).mean()
    aux_value_loss = 0.5 * ((aux_values - targets) ** 2).mean()
    out = {"aux_value_loss": aux_value_loss, "bc_kl": kl, "joint_loss": aux_value_loss + beta_clone * kl}
    out["value_loss"] = 0.5 * ((values - targets) ** 2).mean()
    return out


def auxiliary_phase(policy: PolicyCore, value_net: PolicyCore | None, aux_optimizer: torch.optim.Optimizer,
                    aux: AuxBuffer, config: PPGConfig, generator: torch.Generator) -> dict[str, float]:
    obs, targets = aux.rollouts()
    num_rollouts, steps = targets.shape
    flat_obs = obs.flatten(0, 1)
    # pi_old: the policy's logits for the whole buffer, frozen before any auxiliary step.
    old_logits = torch.empty((num_rollouts * steps, policy.model.num_actions), device=targets.device)
    with torch.no_grad():
        for i in range(0, flat_obs.shape[0], 4096):
            old_logits[i:i + 4096] = policy.forward(flat_obs[i:i + 4096])[0]
    old_logits = old_logits.view(num_rollouts, steps, -1)
    per_minibatch = config.aux_rollouts_per_minibatch
    params = [p for group in aux_optimizer.param_groups for p in group["params"]]
    sums = {k: torch.zeros((), device=targets.device) for k in ("aux_value_loss", "bc_kl", "value_loss")}
    count = 0
    for _ in range(config.aux_epochs):
        order = torch.randperm(num_rollouts, generator=generator).to(targets.device)
        for start in range(0, num_rollouts, per_minibatch):
            rows = order[start:start + per_minibatch]
            mb_obs = obs[rows].flatten(0, 1)
            new_logits, aux_values, values = policy.forward_aux(mb_obs)
            if value_net is not None:
                values = value_net.forward(mb_obs)[1]
            # (detach architecture: `values` is the head on detached features, so its loss trains only the head)
            losses = aux_losses(new_logits, old_logits[rows].flatten(0, 1), aux_values, values,
                                targets[rows].flatten(), config.beta_clone)
            aux_optimizer.zero_grad(set_to_none=True)
            (losses["joint_loss"] + losses["value_loss"]).backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            aux_optimizer.step()
            for key in sums:
                sums[key] += losses[key].detach()
            count += 1
    return {f"aux/{k}": float(v) / max(count, 1) for k, v in sums.items()}


def train(config: PPGConfig, *, store: RunStore | None = None, run_id: str | None = None,
          progress: bool = True, extension=None, recorder=None) -> str:
    """Train PPG (or PPG-EWMA, by `proximal_policy`); returns the run id. Resumable like PPO. `extension`
    and `recorder`: as `ppo.train` (RL against a reward model; it sees the policy network)."""
    config.validate()
    check_recorder(config, recorder)
    algo = "ppg-ewma" if config.proximal_policy == "ewma" else "ppg"
    torch.manual_seed(config.seed)
    if config.arch == "dual":
        policy, value_net = make_policy(config), make_policy(config)
        params = list(policy.model.parameters()) + list(value_net.model.parameters())
    else:
        policy, value_net = make_policy(config, detach_value=True, aux_value_head=True), None
        params = list(policy.model.parameters())
    optimizer = torch.optim.Adam(params, lr=config.learning_rate, eps=config.adam_eps, betas=config.adam_betas)
    aux_optimizer = torch.optim.Adam(params, lr=config.learning_rate, eps=config.adam_eps, betas=config.adam_betas)
    reward_normalizer = RewardNormalizer(config.num_envs, gamma=config.reward_norm_gamma, clip=config.reward_clip)
    proximal = ProximalPolicy(config, policy)
    advantage_normalizer = AdvantageNormalizer(config.beta_adv)
    shuffle = torch.Generator().manual_seed(config.seed)
    state = {"policy": policy.model, "optimizer": optimizer, "aux_optimizer": aux_optimizer,
             "reward_normalizer": reward_normalizer, "advantage_normalizer": advantage_normalizer,
             "shuffle": GeneratorState(shuffle)}
    if value_net is not None:
        state["value"] = value_net.model
    if proximal.ewma is not None:
        state["proximal_ewma"] = proximal.ewma
    if extension is not None:
        algo = extension.setup(algo, policy, state)
    session = TrainingSession(algo, config, store=store, run_id=run_id, progress=progress, state=state)
    session.recorder = recorder
    session.restore(policy.device)
    session.compute = TrainingCompute(config, policy.model, value=None if value_net is None else value_net.model,
                                      extension=extension).resume(session)

    env = make_env(config, session.env_seed(config.seed))
    roller = Roller(env, policy, reward_normalizer, value_core=value_net, reward_fn=extension)
    buf = RolloutBuffer.allocate(config.num_steps, config.num_envs, env.observation_shape, policy.device)
    aux = AuxBuffer(config, env.observation_shape, policy.device)
    with session, closing(env):
        while session.running:
            t0 = time.perf_counter()
            if aux.size == 0 and proximal.ewma is not None:
                proximal.ewma.reset()  # the EWMA restarts with each policy phase
            policy.model.eval()
            episodes = roller.collect(buf)
            t1 = time.perf_counter()
            advantages, returns = gae_advantages(buf.rewards, buf.values, buf.dones, buf.last_value,
                                                 config.gamma, config.gae_lambda)
            policy.model.train()
            metrics = ppo_update(policy, optimizer, buf, advantages, returns, config, shuffle, proximal=proximal,
                                 advantage_normalizer=advantage_normalizer, value_core=value_net)
            aux.add(buf, returns)
            if aux.full:
                metrics.update(auxiliary_phase(policy, value_net, aux_optimizer, aux, config, shuffle))
                aux.size = 0
            metrics["aux_buffer_iterations"] = aux.size
            end_iteration(session, roller, config, episodes, metrics, t0, t1)
    return session.run_id
