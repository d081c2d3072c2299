"""Issue 14's fidelity corrections, each checked against the reference codes' rule or the papers' formulas:
staleness in PPG (openai/ppo-ewma), growing the batch (Hilton et al. 2021, arXiv 2110.00641), PPG's own
auxiliary step size, the papers' presets, minibatch layouts, and the KL-penalized policy loss."""

import dataclasses
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


def test_rollout_minibatches_hold_whole_env_rollouts_and_cover_the_batch():
    from workbench.rl.algos.ppo import PPOConfig, minibatch_indices

    config = PPOConfig(num_envs=8, num_steps=5, num_minibatches=4, minibatch_unit="rollouts").validate()
    batches = list(minibatch_indices(config, torch.Generator().manual_seed(0), "cpu"))
    assert len(batches) == 4 and sorted(torch.cat(batches).tolist()) == list(range(40))
    for idx in batches:  # flat index = step * num_envs + env: every step of 2 envs
        envs = {i % 8 for i in idx.tolist()}
        assert len(envs) == 2 and sorted(idx.tolist()) == sorted(t * 8 + e for t in range(5) for e in envs)
    timesteps = list(minibatch_indices(dataclasses.replace(config, minibatch_unit="timesteps"),
                                       torch.Generator().manual_seed(0), "cpu"))
    assert any(len({i % 8 for i in idx.tolist()}) > 2 for idx in timesteps)
    with pytest.raises(ValueError, match="rollouts"):
        PPOConfig(num_envs=6, num_steps=4, num_minibatches=4, minibatch_unit="rollouts").validate()


def test_separate_schedule_runs_value_only_epochs_with_their_own_optimizer_first(monkeypatch):
    """openai/phasic-policy-gradient ppo.py `learn`: E_V != E_pi -> E_V value-only epochs (own Adam), then
    E_pi policy-only epochs; E_V == E_pi -> joint epochs with one optimizer."""
    from workbench.rl.algos import ppo

    steps = []
    real_step = torch.optim.Adam.step

    def step_spy(self, *args, **kwargs):
        steps.append(self)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_spy)
    store_states = {}
    real_make = ppo.make_optimizers

    def make_spy(config, params, state):
        out = real_make(config, params, state)
        store_states.update(state)
        return out

    monkeypatch.setattr(ppo, "make_optimizers", make_spy)
    config = ppo.PPOConfig(env="colour_cue", num_envs=4, num_steps=8, num_minibatches=2, width=0.25, bf16=False,
                           update_epochs=1, value_epochs=2, epoch_schedule="separate", total_timesteps=32,
                           checkpoint_every=1000)
    ppo.train(config, progress=False)
    main, value = store_states["optimizer"], store_states["value_optimizer"]
    assert steps == [value] * 4 + [main] * 2  # 2 value epochs x 2 minibatches, then 1 policy epoch
    steps.clear()
    store_states.clear()
    ppo.train(dataclasses.replace(config, epoch_schedule="interleaved"), progress=False)
    assert steps == [store_states["optimizer"]] * 4 and "value_optimizer" not in store_states


def test_kl_penalty_loss_matches_its_formula_and_the_adaptive_rule():
    from workbench.rl.algos.losses import AdaptiveKLCoefficient, kl_penalty_policy_loss

    new = torch.tensor([-1.0, -0.5, -2.0], requires_grad=True)
    behavior, prox, adv = torch.tensor([-1.2, -0.4, -1.5]), torch.tensor([-1.1, -0.6, -1.9]), torch.tensor([1., -2., .5])
    out = kl_penalty_policy_loss(new, behavior, prox, adv, kl_coef=0.7)
    expected = -sum(math.exp(n - b) * a for n, b, a in zip(new.tolist(), behavior.tolist(), adv.tolist())) / 3
    expected += 0.7 * 0.5 * sum((n - p) ** 2 for n, p in zip(new.tolist(), prox.tolist())) / 3
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    # adaptive beta (PPO paper Sec. 4): halve below target / 1.5, double above 1.5 target, else keep
    coef, target = AdaptiveKLCoefficient(1.0, target=0.01), 0.01
    for kl in (0.001, 0.001, 0.012, 0.05, 0.0149, 0.016):
        before = coef.value
        rule = before / 2 if kl < target / 1.5 else before * 2 if kl > 1.5 * target else before
        assert coef.update(kl) == pytest.approx(rule)
    fixed = AdaptiveKLCoefficient(1.0)
    assert fixed.update(10.0) == 1.0 and fixed.update(0.0) == 1.0


def test_ppg_kl_trains_and_adapts_its_coefficient(tmp_path):
    store = RunStore(tmp_path)
    run = ppg.train(tiny_ppg(policy_loss="kl", kl_penalty=1.0, kl_target=1e-9, total_timesteps=64 * 2,
                             minibatch_unit="rollouts", epoch_schedule="separate", value_epochs=2),
                    store=store, progress=False)
    _, coefs = store.metric_series(run, "kl_coef")
    assert list(coefs) == [2.0, 4.0]  # any KL > 1.5e-9 doubles beta after each update


def test_paper_presets_reproduce_each_papers_protocol_and_code():
    from workbench.cli import main as cli
    from workbench.rl.algos.presets import PRESETS

    assert cli.PRESETS == PRESETS == registry.PRESETS
    procgen = registry.make_config("ppg", "hard")  # the default preset: the Procgen paper's protocol
    assert (procgen.num_levels, procgen.total_timesteps) == (500, 200_000_000)
    for algo in ("ppg", "ppg-ewma"):
        for preset in ("ppg-paper", "ewma-paper"):
            c = registry.make_config(algo, preset=preset)
            assert (c.distribution_mode, c.num_levels, c.total_timesteps, c.num_envs) == ("hard", 0, 100_000_000, 256)
            assert (c.minibatch_unit, c.epoch_schedule, c.n_pi, c.aux_epochs) == ("rollouts", "separate", 32, 6)
    assert registry.make_config("ppg-ewma", preset="ewma-paper").aux_lr == 5e-4
    # the PPG paper's PPO baseline: PPO run in the PPG code (its README's --n_epoch_pi 3 --n_epoch_vf 3 --arch shared)
    ppo = registry.make_config("ppo", preset="ppg-paper")
    assert type(ppo).__name__ == "PPOConfig" and (ppo.update_epochs, ppo.value_epochs) == (3, 3)
    assert (ppo.adam_eps, ppo.max_grad_norm, ppo.clip_value_loss, ppo.advantage_norm) == (1e-8, None, False, "batch")
    assert (ppo.num_levels, ppo.total_timesteps, ppo.minibatch_unit) == (0, 100_000_000, "rollouts")
    assert registry.make_config("ppo", preset="ppg-paper", num_envs=16).num_envs == 16  # overrides win
    with pytest.raises(ValueError, match="hard-mode"):
        registry.make_config("ppg", "easy", preset="ppg-paper")
    with pytest.raises(ValueError, match="unknown preset"):
        registry.make_config("ppg", preset="ppg")
