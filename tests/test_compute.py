"""Compute accounting (workbench.rl.compute): forward FLOPs counted from the layers agree with torch's own
FlopCounterMode for every network the workbench trains, and a run's logged cumulative training compute agrees
with FlopCounterMode's count of everything the training loop actually executed."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from workbench.rl.algos import ppg, ppo
from workbench.rl.compute import (
    COMPUTE_METRIC,
    PARAMS_METRIC,
    count_parameters,
    forward_flops,
    frame_model_forward_flops,
    policy_forward_flops,
)
from workbench.rl.policy import ImpalaCNN
from workbench.storage.runs import RunStore


def counted_by_torch(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


@pytest.mark.parametrize("width", [0.25, 1.0, 3.0])
def test_impala_forward_flops_match_flop_counter_mode(width):
    model = ImpalaCNN(width=width)
    x = torch.rand(3, 3, 64, 64)
    assert policy_forward_flops(model) * 3 == counted_by_torch(model, x)
    aux = ImpalaCNN(width=width, detach_value=True, aux_value_head=True)  # PPG's single-network variant
    assert policy_forward_flops(aux, aux=True) * 3 == counted_by_torch(aux.forward_aux, x)
    assert policy_forward_flops(aux, aux=True) > policy_forward_flops(aux)
    # the count grows ~ width^2 (conv channels in x out); parameters are those torch lists
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_reward_model_and_generic_counts_match_flop_counter_mode():
    from workbench.preferences.reward import ClipRewardModel

    reward_model = ClipRewardModel(width=0.5, hidden=32)
    frames = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    assert frame_model_forward_flops(reward_model) * 2 == counted_by_torch(reward_model, frames)
    mlp = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    assert forward_flops(mlp, torch.zeros(4, 7)) == 2 * (7 * 5 + 5 * 3)
    with pytest.raises(ValueError, match="at least one"):
        forward_flops(mlp, torch.zeros(0, 7))


TINY = dict(env="colour_cue", num_envs=4, num_steps=16, num_minibatches=2, width=0.25, bf16=False,
            total_timesteps=128, checkpoint_every=1000, seed=0)


@pytest.mark.parametrize("engine, config", [
    (ppo, ppo.PPOConfig(**TINY, update_epochs=2)),
    (ppo, ppo.PPOConfig(**TINY, update_epochs=2, proximal_policy="ewma", advantage_norm="ewma")),
    (ppg, ppg.PPGConfig(**TINY, n_pi=2, aux_epochs=2)),
], ids=["ppo", "ppo-ewma", "ppg-dual"])
def test_logged_compute_matches_what_training_executed(tmp_path, engine, config):
    """FlopCounterMode counts the forward and backward FLOPs of every convolution and matmul the run really
    executed. The logged count uses the ~3x-forward convention for a training pass; the true backward skips
    the input gradient of the first convolution, so the log may exceed the measurement by a few percent."""
    store = RunStore(tmp_path)
    with FlopCounterMode(display=False) as counter:
        run_id = engine.train(config, store=store, progress=False)
    measured = counter.get_total_flops()
    _, logged = store.metric_series(run_id, COMPUTE_METRIC)
    assert len(logged) == 2 and logged[0] < logged[1]
    assert measured * 0.97 <= logged[-1] <= measured * 1.15, (logged[-1], measured)
    _, params = store.metric_series(run_id, PARAMS_METRIC)
    networks = 2 if config.__class__ is ppg.PPGConfig else 1
    assert params[-1] == networks * count_parameters(ImpalaCNN(width=config.width))


def test_rl_against_a_reward_model_counts_every_member_and_pi_init():
    """Per env step: the forward of each clip reward-model member plus pi_init's (for the KL penalty)."""
    from types import SimpleNamespace

    from workbench.preferences.reward import ClipRewardModel
    from workbench.rl.compute import TrainingCompute, reward_hook_flops_per_step

    members = [ClipRewardModel(width=0.25, hidden=16), ClipRewardModel(width=0.5, hidden=16)]
    policy = ImpalaCNN(width=0.25)
    hook = SimpleNamespace(init_core=SimpleNamespace(model=policy),
                           reward_model=SimpleNamespace(kind="clip", members=members))
    frames = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    expected = counted_by_torch(policy, torch.zeros(1, 3, 64, 64)) + sum(counted_by_torch(m, frames) for m in members)
    assert reward_hook_flops_per_step(hook) == expected
    config = ppo.PPOConfig(**TINY)
    with_hook = TrainingCompute(config, policy, extension=hook).acting_flops()
    assert with_hook - TrainingCompute(config, policy).acting_flops() == config.batch_size * expected


def test_a_resumed_run_continues_its_compute_count(tmp_path):
    store = RunStore(tmp_path)
    config = ppo.PPOConfig(**{**TINY, "checkpoint_every": 1})
    run_id = ppo.train(config, store=store, progress=False)                      # 2 iterations
    ppo.train(ppo.PPOConfig(**{**TINY, "checkpoint_every": 1, "total_timesteps": 192}), store=store,
              run_id=run_id, progress=False)                                      # a third one, resumed
    _, logged = store.metric_series(run_id, COMPUTE_METRIC)
    assert len(logged) == 3
    np.testing.assert_allclose(logged, logged[0] * np.arange(1, 4))             # every iteration costs the same
