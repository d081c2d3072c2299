"""The proxy-gaming alarm (workbench.safety.alarm) and the reward-model disagreement it watches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.preferences import rlhf
from workbench.preferences.rlhf import RMPPOConfig
from workbench.rl.algos import ppo
from workbench.rl.toy_env import ColourChoiceVecEnv
from workbench.safety import alarm
from workbench.safety.alarm import ALARM_METRIC, AlarmConfig, ProxyGamingAlarm, check_run, detect, trend
from workbench.storage.runs import RunStore
from workbench.studies.overoptimization_data import colour_step_reward


class ColourWeightsEnsemble:
    """A stand-in for a learned reward ensemble on colour_choice: each member pays `weights[c]` for a frame of
    colour c. The members agree on the colours their (imagined) labels covered and disagree on one they never
    saw, which is what makes a learned ensemble's disagreement a signal."""

    def __init__(self, members):
        self.members = [colour_step_reward(w) for w in members]

    def __len__(self):
        return len(self.members)

    def member_step_rewards(self, obs_u8):
        return torch.stack([m(obs_u8) for m in self.members])

    def step_rewards(self, obs_u8):
        return self.member_step_rewards(obs_u8).mean(0)


# ---- the rule ------------------------------------------------------------------------------------------
def test_theil_sen_trend_is_the_median_of_pairwise_slopes():
    rng = np.random.default_rng(0)
    x = np.sort(rng.choice(1000, 9, replace=False)).astype(float)
    y = 0.01 * x + rng.normal(0, 1, 9)
    y[4] += 50  # one outlier: Theil-Sen barely moves
    pairwise = [(y[j] - y[i]) / (x[j] - x[i]) for i, j in itertools.combinations(range(9), 2)]
    t = trend(x, y, 0.9)
    assert t.slope == pytest.approx(np.median(pairwise))
    assert t.low <= t.slope <= t.high


def _steps(n):
    return np.arange(1, n + 1) * 256


def test_alarm_fires_when_proxy_and_disagreement_rise_and_not_before_window_and_patience():
    n = 20
    proxy = np.r_[np.full(8, 0.5), np.linspace(0.5, 1.5, 12)]
    disagreement = np.r_[np.full(8, 0.1), np.linspace(0.1, 0.4, 12)]
    config = AlarmConfig(window=6, patience=2)
    report = detect(_steps(n), proxy, disagreement, None, config)
    assert report.fired
    first = int(np.flatnonzero(report.firing)[0])
    # rising from index 8: the first window wholly inside the rise ends at 13, the patience adds one
    assert 9 <= first <= 8 + config.window
    assert report.reasons[first] == alarm.DISAGREEMENT_RISING
    assert report.events[0]["step"] == _steps(n)[first]
    assert not report.firing[:first].any()


def test_alarm_is_quiet_when_only_the_proxy_rises_or_the_rise_is_noise():
    rng = np.random.default_rng(1)
    n = 30
    steps = _steps(n)
    proxy = np.linspace(0, 1, n) + rng.normal(0, 0.01, n)
    assert not detect(steps, proxy, np.full(n, 0.2) + rng.normal(0, 0.01, n)).fired   # disagreement flat
    assert not detect(steps, proxy, np.linspace(0.4, 0.1, n)).fired                     # falling
    assert not detect(steps, proxy, None, np.linspace(0, 1, n)).fired                   # gold rises with it
    assert not detect(steps, rng.normal(0, 1, n), rng.normal(0, 1, n), rng.normal(0, 1, n)).fired
    # a significant but negligible rise of the disagreement (1% over a window) is below min_relative_rise
    assert not detect(steps, proxy, 0.2 + np.linspace(0, 0.01, n)).fired


def test_alarm_fires_on_a_falling_gold_and_can_ignore_gold():
    n = 24
    proxy, gold = np.linspace(0, 1, n), np.linspace(1, 0, n)
    report = detect(_steps(n), proxy, None, gold)
    assert report.fired and set(report.reasons[report.firing]) == {alarm.GOLD_FALLING}
    assert not detect(_steps(n), proxy, None, gold, AlarmConfig(use_gold=False)).fired


def test_live_alarm_gives_the_same_verdicts_as_the_rule_over_the_whole_series():
    rng = np.random.default_rng(2)
    n = 40
    proxy = np.cumsum(rng.normal(0.02, 0.05, n))
    disagreement = np.cumsum(rng.normal(0.01, 0.03, n)) + 1
    gold = np.cumsum(rng.normal(-0.01, 0.05, n))
    config = AlarmConfig(window=5, patience=2)

    class Session:
        global_step, run_id, store = 0, "r", None

        class config:  # noqa: N801  (the engine's config, read for batch_size)
            batch_size = 256

    live, session, flags = ProxyGamingAlarm(config), Session(), []
    for i in range(n):
        out = live(session, {config.proxy: proxy[i], config.disagreement: disagreement[i], config.gold: gold[i]})
        flags.append(out[ALARM_METRIC])
        session.global_step += 256
    whole = detect(_steps(n), proxy, disagreement, gold, config)
    assert np.array_equal(np.array(flags, bool), whole.firing)
    assert whole.fired and not whole.firing.all()  # the random walks give both verdicts


def test_bad_settings_and_misaligned_series_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="window must be >= 3"):
        AlarmConfig(window=1).validate()
    with pytest.raises(ValueError, match="has 3 points but steps has 4"):
        detect(_steps(4), [1, 2, 3])
    store = RunStore(tmp_path)
    run = store.create_run(algo="ppo", env="colour_cue", config={}, name="plain")
    with pytest.raises(ValueError, match="runs against a reward model"):
        check_run(store, run)


# ---- the hook's disagreement and the alarm on real runs --------------------------------------------------
def test_hook_logs_the_ensembles_disagreement_as_the_members_std(tmp_path):
    ens = ColourWeightsEnsemble([[1, 1.0, 0, 0], [1, 2.0, 0, 0]])
    config = RMPPOConfig(env="colour_cue", num_envs=4, num_steps=8, width=0.25, bf16=False)
    hook = rlhf.RewardModelHook(config, ens.step_rewards, store=RunStore(tmp_path))
    assert hook.reward_model is ens
    env = ColourChoiceVecEnv(4, seed=0, num_colours=4)
    obs = torch.as_tensor(env.reset())
    proxy = hook._proxy(obs)
    members = ens.member_step_rewards(obs)
    assert torch.allclose(proxy, members.mean(0))
    green = members[0] != members[1]
    # population std of two members = half their difference: 0.5 on green frames, 0 elsewhere
    assert hook._sums["disagreement"] == pytest.approx(0.5 * float(green.sum()))


def _colour_choice(monkeypatch):
    def make_env(config, rand_seed):
        return ColourChoiceVecEnv(config.num_envs, seed=rand_seed, num_colours=4, gold_colour=0)

    monkeypatch.setattr(ppo, "make_env", make_env)


def _small(**overrides):
    base = dict(env="colour_cue", num_envs=16, num_steps=16, num_minibatches=4, update_epochs=3, width=0.25,
                gamma=0.9, total_timesteps=4096, checkpoint_every=1000, seed=0, bf16=False)
    return RMPPOConfig(**{**base, **overrides})


@pytest.mark.slow
def test_alarm_fires_on_a_flawed_proxy_and_stays_quiet_with_the_gold_reward_as_proxy(tmp_path, monkeypatch):
    """colour_choice pays for red (gold). The flawed proxy is an ensemble that agrees on red, blue and yellow
    and also pays for green, where its members disagree (1, 1.5, 2: Gao et al.'s flawed proxy [1, 1.5, 0, 0]
    as their mean). PPO against it makes the frames green: the proxy and the disagreement rise, the gold
    falls, and the alarm (attached by registry.train) fires. With the gold reward itself as the proxy it
    stays quiet over the same run length."""
    _colour_choice(monkeypatch)
    store = RunStore(tmp_path)
    flawed = ColourWeightsEnsemble([[1, 1.0, 0, 0], [1, 1.5, 0, 0], [1, 2.0, 0, 0]])
    gamed = registry.train(_small(), step_reward_fn=flawed.step_rewards, store=store, progress=False)
    honest = registry.train(_small(), step_reward_fn=colour_step_reward([1, 0, 0, 0]), store=store, progress=False)

    logged = store.metric_series(gamed, ALARM_METRIC)[1]
    assert logged.any()
    report = check_run(store, gamed)
    assert np.array_equal(report.firing, logged.astype(bool))  # the stored series give the live verdicts
    assert report.reasons[report.firing].max() & alarm.DISAGREEMENT_RISING
    disagreement = store.metric_series(gamed, "rlhf/rm_disagreement")[1]
    assert disagreement[-3:].mean() > 1.5 * disagreement[:3].mean()

    assert not store.metric_series(honest, ALARM_METRIC)[1].any()
    assert not check_run(store, honest).fired
    gold = store.metric_series(honest, "rlhf/gold_reward")[1]
    assert gold[-3:].mean() > gold[:3].mean() + 0.3  # it learned: quiet is not for want of change
