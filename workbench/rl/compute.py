"""Training compute: forward FLOPs per observation of a network, counted from its layers, and the cumulative
training compute of a run, logged every iteration so that any curve can be drawn against compute.

Counting convention (that of `torch.utils.flop_counter.FlopCounterMode`, which the tests check against): a
convolution or dense layer costs 2 FLOPs per multiply-accumulate; biases, activations, pooling, residual
additions and the softmax are not counted (together well under 1% of an IMPALA CNN's FLOPs).

Training compute of one iteration of PPO/PPG (B = num_envs x num_steps observations, n = num_envs; the
convention of Hilton, Tang, Schulman 2023, arXiv 2301.13442, and Kaplan et al. 2020: a backward pass costs
about twice its forward pass, so one training pass over an observation costs 3 forwards):

- acting: (B + n) policy forwards (the n: the value of the observation after the rollout); a separate value
  network (PPG "dual") adds (B + n) value forwards;
- each policy epoch: B training passes (3 forwards) of the policy network; PPO epochs that train only the
  value (value_epochs > update_epochs) also pass through the shared network; PPG's value network: value_epochs
  training passes of B;
- proximal policy "recent": one policy forward of B; "ewma": a forward of the EWMA network for every
  minibatch of every policy epoch (update_epochs x B);
- PPG's auxiliary phase, when it runs: n_pi x B policy forwards for pi_old, then aux_epochs x n_pi x B
  training passes of the policy network (with its auxiliary value head) and of the value network;
- RL against a reward model: B forwards of every reward-model member and B forwards of pi_init (the KL).

Not counted: optimizer arithmetic and the EWMA weight average (O(parameters) per step, about 1e-4 of a
minibatch's passes), the environment's simulation, and reward-model training in the online loop.
"""

from __future__ import annotations

import math

import torch
from torch import nn

COMPUTE_METRIC = "compute_flops"      # cumulative training FLOPs at each logged step
PARAMS_METRIC = "param_count"         # parameters of the trained networks (policy + a separate value network)
FLOPS_PER_OBS_METRIC = "forward_flops_per_obs"  # forward FLOPs of the policy network per observation


def layer_flops(layer: nn.Module, output: torch.Tensor) -> int:
    """FLOPs of one Conv2d or Linear call that produced `output`: 2 x multiply-accumulates."""
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return 2 * output.numel() * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, nn.Linear):
        return 2 * output.numel() * layer.in_features
    raise ValueError(f"no FLOP count for {type(layer).__name__}; counted layers: Conv2d, Linear")


@torch.no_grad()
def forward_flops(model: nn.Module, example: torch.Tensor, method: str = "forward") -> int:
    """Forward FLOPs per input of `model` (its Conv2d and Linear layers), measured by running `method` on
    `example` (a batch of one or more inputs) with a hook on every counted layer."""
    if example.shape[0] < 1:
        raise ValueError("forward_flops needs an example batch of at least one input")
    total = 0

    def hook(layer, inputs, output):
        nonlocal total
        total += layer_flops(layer, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        getattr(model, method)(example)
    finally:
        for handle in handles:
            handle.remove()
    return total // example.shape[0]


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def policy_forward_flops(model: nn.Module, *, aux: bool = False) -> int:
    """Forward FLOPs per observation of an IMPALA policy (`workbench.rl.policy.ImpalaCNN`, any width): its
    trunk, policy head and value head; with `aux`, `forward_aux` (adds the auxiliary value head, if any)."""
    h, w, c = model.obs_shape
    example = torch.zeros((1, c, h, w), device=_device_of(model))
    return forward_flops(model, example, "forward_aux" if aux else "forward")


def frame_model_forward_flops(model: nn.Module) -> int:
    """Forward FLOPs per frame of a model of uint8 (N, H, W, C) frames (a clip reward model)."""
    shape = tuple(getattr(model, "obs_shape", (64, 64, 3)))
    return forward_flops(model, torch.zeros((1, *shape), dtype=torch.uint8, device=_device_of(model)))


def count_parameters(*models: nn.Module | None) -> int:
    """Trainable parameters of the given networks (None entries are skipped)."""
    return sum(p.numel() for m in models if m is not None for p in m.parameters() if p.requires_grad)


def reward_hook_flops_per_step(extension) -> int:
    """Forward FLOPs per env step of RL against a reward model (`workbench.preferences.rlhf.RewardModelHook`):
    every member of its clip reward model plus pi_init. Read by duck typing (this layer sits below
    preferences); a bare `step_reward_fn` without a reward model counts only pi_init."""
    if extension is None:
        return 0
    flops = 0
    init_core = getattr(extension, "init_core", None)
    if init_core is not None:
        flops += policy_forward_flops(init_core.model)
    reward_model = getattr(extension, "reward_model", None)
    if reward_model is not None and getattr(reward_model, "kind", None) == "clip":
        flops += sum(frame_model_forward_flops(member) for member in reward_model.members)
    return flops


class TrainingCompute:
    """Cumulative training FLOPs of one PPO/PPG run (module docstring: what each term counts).

    `end_iteration(updated, aux_phase)` adds one iteration and returns the metrics to log:
    `compute_flops` (cumulative), `param_count` and `forward_flops_per_obs`."""

    def __init__(self, config, policy: nn.Module, *, value: nn.Module | None = None, extension=None,
                 total: float = 0.0):
        self.config = config
        self.policy_flops = policy_forward_flops(policy)
        self.policy_aux_flops = policy_forward_flops(policy, aux=True)
        self.value_flops = policy_forward_flops(value) if value is not None else 0
        self.reward_flops = reward_hook_flops_per_step(extension)
        self.param_count = count_parameters(policy, value)
        self.total = float(total)

    def acting_flops(self) -> float:
        c = self.config
        return (c.batch_size + c.num_envs) * (self.policy_flops + self.value_flops) + c.batch_size * self.reward_flops

    def update_flops(self) -> float:
        c = self.config
        b, epochs = c.batch_size, c.update_epochs
        value_epochs = epochs if c.value_epochs is None else c.value_epochs
        if self.value_flops:  # separate value network
            training = epochs * self.policy_flops + value_epochs * self.value_flops
        else:
            training = max(epochs, value_epochs) * self.policy_flops
        proximal = {"behavior": 0, "recent": 1, "ewma": epochs}[c.proximal_policy] * self.policy_flops
        return b * (3 * training + proximal)

    def aux_phase_flops(self) -> float:
        c = self.config
        samples = c.n_pi * c.batch_size
        return samples * (self.policy_flops + 3 * c.aux_epochs * (self.policy_aux_flops + self.value_flops))

    def iteration_flops(self, *, updated: bool, aux_phase: bool = False) -> float:
        return (self.acting_flops() + (self.update_flops() if updated else 0.0)
                + (self.aux_phase_flops() if aux_phase else 0.0))

    def end_iteration(self, *, updated: bool, aux_phase: bool = False) -> dict[str, float]:
        self.total += self.iteration_flops(updated=updated, aux_phase=aux_phase)
        return {COMPUTE_METRIC: self.total, PARAMS_METRIC: float(self.param_count),
                FLOPS_PER_OBS_METRIC: float(self.policy_flops)}

    def resume(self, session) -> TrainingCompute:
        """Continue the count of a resumed run from its last logged value (metrics after the checkpoint
        were truncated on restore)."""
        if session.global_step > 0:
            last = session.store.latest_metrics(session.run_id).get(COMPUTE_METRIC)
            if last is not None and math.isfinite(last[1]):
                self.total = float(last[1])
        return self


def end_iteration_compute(session, metrics: dict) -> dict[str, float]:
    """The compute metrics of the iteration whose `metrics` the engine reports (`ppo.end_iteration`): an
    update ran when it reports a policy loss, PPG's auxiliary phase when it reports `aux/` losses. Empty when
    the engine attached no `TrainingCompute` to the session."""
    compute = getattr(session, "compute", None)
    if compute is None:
        return {}
    return compute.end_iteration(updated="policy_loss" in metrics,
                                 aux_phase=any(k.startswith("aux/") for k in metrics))
