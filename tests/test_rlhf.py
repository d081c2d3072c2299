"""RL against a reward model (workbench.preferences.rlhf): the KL-penalized reward and the KL measurement against
hand computations and a plain loop, pi_init from a run, the registry/CLI wiring, and learning: RL against a
known step reward, and against a reward model trained on synthetic gold labels, raises that reward."""

import math

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.preferences import rlhf
from workbench.preferences.rlhf import (
    RewardModelHook,
    RMPPGConfig,
    RMPPOConfig,
    kl_penalized_reward,
    policy_kl,
)
from workbench.rl.algos import ppg, ppo
from workbench.rl.algos.rollout import Roller, RolloutBuffer
from workbench.rl.toy_env import ColourChoiceVecEnv
from workbench.storage.runs import RunStore


def colour_reward(colour: int):
    """A known step reward of the pixels: 1 when the frame's mean colour is near palette colour `colour`."""
    from workbench.rl.toy_env import PALETTE

    target = torch.tensor(PALETTE[colour], dtype=torch.float32)

    def step_reward_fn(obs_u8: torch.Tensor) -> torch.Tensor:
        mean = obs_u8.float().mean(dim=(1, 2))
        return ((mean - target.to(mean.device)).abs().max(-1).values < 30).float()

    return step_reward_fn


def use_colour_choice(monkeypatch, gold_colour=0):
    def make_env(config, rand_seed):
        return ColourChoiceVecEnv(config.num_envs, seed=rand_seed, gold_colour=gold_colour)

    monkeypatch.setattr(ppo, "make_env", make_env)
    monkeypatch.setattr(ppg, "make_env", make_env)


def small(cls=RMPPOConfig, **overrides):
    base = dict(env="colour_cue", num_envs=16, num_steps=32, num_minibatches=4, update_epochs=3, width=0.25,
                gamma=0.99, total_timesteps=512, checkpoint_every=1000, seed=0, bf16=False)
    return cls(**{**base, **overrides})


class FakeSession:
    iteration = 0


# ---- formulas ------------------------------------------------------------------------------------------
def test_kl_penalized_reward_against_hand_computation():
    proxy = torch.tensor([1.0, 0.5, -2.0])
    log_prob = torch.tensor([-1.0, -2.0, -0.1])
    init_log_prob = torch.tensor([-1.5, -1.0, -0.1])
    # r - beta * (log pi - log pi_init): 1 - 0.1 * 0.5, 0.5 - 0.1 * (-1), -2 - 0
    torch.testing.assert_close(kl_penalized_reward(proxy, log_prob, init_log_prob, 0.1),
                               torch.tensor([0.95, 0.6, -2.0]))
    torch.testing.assert_close(kl_penalized_reward(proxy, log_prob, init_log_prob, 0.0), proxy)


def test_policy_kl_against_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    logits, init_logits = torch.randn(5, 15, generator=g), torch.randn(5, 15, generator=g)
    actions = torch.randint(0, 15, (5,), generator=g)
    full, sampled = policy_kl(logits, init_logits, actions)
    for i in range(5):
        p = np.exp(logits[i].double().numpy()) / np.exp(logits[i].double().numpy()).sum()
        q = np.exp(init_logits[i].double().numpy()) / np.exp(init_logits[i].double().numpy()).sum()
        assert full[i].item() == pytest.approx(sum(p[a] * math.log(p[a] / q[a]) for a in range(15)), rel=1e-4)
        a = int(actions[i])
        assert sampled[i].item() == pytest.approx(math.log(p[a] / q[a]), rel=1e-4, abs=1e-6)
    assert (full >= 0).all()
    assert policy_kl(logits, logits, actions)[0].abs().max() < 1e-6


# ---- the hook on real rollouts -------------------------------------------------------------------------
def _hook_and_roller(beta, env_cls=ColourChoiceVecEnv, num_envs=4):
    config = small(num_envs=num_envs, kl_coef=beta)
    torch.manual_seed(0)
    core = ppo.make_policy(config)
    hook = RewardModelHook(config, colour_reward(0))
    state = {"model": core.model}
    assert hook.setup("ppo", core, state) == "ppo-rm" and state["init_policy"] is not core.model
    with torch.no_grad():  # move pi away from pi_init so that the KL is not 0
        for p in core.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    env = env_cls(num_envs, seed=1)
    return config, core, hook, Roller(env, core, None, reward_fn=hook)


def test_hook_rewards_and_kl_match_a_plain_loop_over_the_rollout():
    beta = 0.3
    _, core, hook, roller = _hook_and_roller(beta)
    buf = RolloutBuffer.allocate(24, 4, (64, 64, 3), core.device, num_actions=15)
    episodes = roller.collect(buf)
    assert len(episodes) == 12  # 24 steps = 3 eight-step episodes in each of 4 envs
    metrics = hook.end_iteration(FakeSession())

    proxy_fn = colour_reward(0)
    kls, log_ratios, proxies, rewards, golds = [], [], [], [], []
    env_check = ColourChoiceVecEnv(4, seed=1)  # the same env stream: gold rewards replayed from the actions
    per_episode = {"proxy": [], "gold": [], "kl": []}
    acc = np.zeros((3, 4))
    for t in range(24):
        obs = buf.obs[t]
        with torch.no_grad():
            logits0 = hook.init_core.model(core.preprocess(obs))[0].double()
        gold = env_check.step(buf.actions[t].numpy())[1]
        for n in range(4):
            p = torch.softmax(buf.logits[t, n].double(), -1).numpy()
            q = torch.softmax(logits0[n], -1).numpy()
            a = int(buf.actions[t, n])
            kl = float(np.sum(p * np.log(p / q)))
            r = float(proxy_fn(obs[n:n + 1])[0])
            kls.append(kl), log_ratios.append(math.log(p[a] / q[a])), proxies.append(r), golds.append(gold[n])
            rewards.append(r - beta * math.log(p[a] / q[a]))
            acc[:, n] += (r, gold[n], kl)
            if buf.dones[t, n]:
                for k, name in enumerate(("proxy", "gold", "kl")):
                    per_episode[name].append(acc[k, n])
                acc[:, n] = 0
    np.testing.assert_allclose(buf.rewards.flatten().numpy(), rewards, rtol=1e-4, atol=1e-5)
    assert metrics["rlhf/kl"] == pytest.approx(np.mean(kls), rel=1e-4)
    assert metrics["rlhf/kl"] > 1e-4  # the perturbation made pi differ from pi_init
    assert metrics["rlhf/kl_sampled"] == pytest.approx(np.mean(log_ratios), rel=1e-3, abs=1e-6)
    assert metrics["rlhf/sqrt_kl"] == pytest.approx(math.sqrt(np.mean(kls)), rel=1e-4)
    assert metrics["rlhf/kl_penalty"] == pytest.approx(beta * np.mean(log_ratios), rel=1e-3, abs=1e-6)
    assert metrics["rlhf/proxy_reward"] == pytest.approx(np.mean(proxies))
    assert metrics["rlhf/gold_reward"] == pytest.approx(np.mean(golds))
    assert metrics["rlhf/proxy_return"] == pytest.approx(np.mean(per_episode["proxy"]))
    assert metrics["rlhf/gold_return"] == pytest.approx(np.mean(per_episode["gold"]))
    assert metrics["rlhf/gold_return"] == pytest.approx(np.mean([e.ret for e in episodes]))
    assert metrics["rlhf/kl_episode"] == pytest.approx(np.mean(per_episode["kl"]), rel=1e-4)
    # gold = the redness of frame t, proxy = the known redness function of the same frame
    assert metrics["rlhf/proxy_reward"] == pytest.approx(metrics["rlhf/gold_reward"])


def test_step_reward_fn_of_the_wrong_shape_is_a_clear_error():
    _, core, hook, roller = _hook_and_roller(0.0)
    hook.step_reward_fn = lambda obs: torch.zeros(obs.shape[0] + 1)
    with pytest.raises(ValueError, match="must map"):
        roller.collect(RolloutBuffer.allocate(2, 4, (64, 64, 3), core.device))


# ---- settings, pi_init, registry -----------------------------------------------------------------------
def test_settings_are_validated(tmp_path):
    with pytest.raises(ValueError) as err:
        small(kl_coef=-1.0, online_every=-2, online_labeler="crowd", init_checkpoint=5).validate()
    for word in ("kl_coef", "online_every", "online_labeler", "init_checkpoint needs init_run"):
        assert word in str(err.value)
    with pytest.raises(ValueError, match="num_minibatches"):  # the base engine's checks still run
        small(num_minibatches=5).validate()
    with pytest.raises(ValueError, match="no reward"):
        rlhf.train(small(), store=RunStore(tmp_path))


def test_registry_and_cli_know_the_rm_algorithms():
    from workbench.cli import main as cli

    assert registry.RM_ALGOS == cli.RM_ALGOS == ("ppo-rm", "ppg-rm")
    config = registry.make_config("ppg-rm", env="colour_cue", kl_coef=0.05, reward_model="x")
    assert isinstance(config, RMPPGConfig) and config.n_pi == 32 and config.num_envs == 64
    assert registry.algo_of(config) == "ppg-rm" and registry.algo_of(small()) == "ppo-rm"
    assert registry.config_from_run("ppo-rm", {"kl_coef": 0.1}).kl_coef == 0.1
    args = cli.build_parser().parse_args(["train", "--algo", "ppo-rm", "--set", "kl_coef=0.02"])
    assert args.algo == "ppo-rm"


def test_initial_policy_from_a_run_and_zero_kl_before_any_update(tmp_path):
    store = RunStore(tmp_path)
    pre = ppo.train(ppo.PPOConfig(env="colour_cue", num_envs=4, num_steps=8, num_minibatches=2, width=0.25,
                                  total_timesteps=64, bf16=False), store=store, progress=False)
    config = small(num_envs=4, num_steps=8, num_minibatches=2, total_timesteps=128, kl_coef=0.5, init_run=pre)
    run = rlhf.train(config, step_reward_fn=colour_reward(0), store=store, progress=False)
    assert store.get_run(run).algo == "ppo-rm"
    saved_pre = store.load_checkpoint(pre)["state"]["model"]
    saved = store.load_checkpoint(run)["state"]
    for key, value in saved_pre.items():
        torch.testing.assert_close(saved["init_policy"][key], value)  # pi_init = the run's policy, frozen
    _, kl = store.metric_series(run, "rlhf/kl")
    assert len(kl) == 4 and abs(kl[0]) < 1e-6 and kl[-1] > 0  # pi = pi_init until the first update
    _, kl_sampled = store.metric_series(run, "rlhf/kl_sampled")
    assert abs(kl_sampled[0]) < 1e-6
    # evaluation and resume find the acting policy of an RM run like any other
    core = registry.policy_from_checkpoint("ppo-rm", store.get_run(run).config, store.load_checkpoint(run))
    assert core.model.width == 0.25
    with pytest.raises(ValueError, match="does not fit"):
        rlhf.train(small(num_envs=4, num_steps=8, num_minibatches=2, total_timesteps=32, width=0.5, init_run=pre),
                   step_reward_fn=colour_reward(0), store=store, progress=False)


# ---- learning ------------------------------------------------------------------------------------------
def _mean_last(store, run, name, last=3):
    return float(np.mean(store.metric_series(run, name)[1][-last:]))


@pytest.mark.slow
def test_rl_raises_a_known_step_reward_that_replaces_the_env_reward(tmp_path, monkeypatch):
    """The env pays for green frames (gold colour 1); the known step reward pays for red ones (colour 0).
    PPO trained on the step reward must make the frames red: its proxy reward rises from the random policy's
    4/15 per step towards 1 and the env's (green) reward falls, so the env reward was replaced, not added."""
    use_colour_choice(monkeypatch, gold_colour=1)
    store = RunStore(tmp_path)
    run = rlhf.train(small(total_timesteps=5_120), step_reward_fn=colour_reward(0), store=store, progress=False)
    proxy = store.metric_series(run, "rlhf/proxy_reward")[1]
    gold = store.metric_series(run, "rlhf/gold_reward")[1]
    assert proxy[0] < 0.45
    assert _mean_last(store, run, "rlhf/proxy_reward") > 0.65
    assert _mean_last(store, run, "rlhf/gold_reward") < gold[0]
    assert _mean_last(store, run, "rlhf/kl") > 0.5


@pytest.mark.slow
def test_kl_penalty_keeps_the_policy_closer_to_pi_init(tmp_path, monkeypatch):
    use_colour_choice(monkeypatch)
    store = RunStore(tmp_path)
    runs = {beta: rlhf.train(small(total_timesteps=3_072, kl_coef=beta), step_reward_fn=colour_reward(0),
                             store=store, progress=False) for beta in (0.0, 1.0)}
    kl = {beta: _mean_last(store, run, "rlhf/kl") for beta, run in runs.items()}
    assert kl[1.0] < 0.5 * kl[0.0]


@pytest.mark.slow
def test_ppg_against_a_step_reward_logs_the_same_metrics(tmp_path, monkeypatch):
    use_colour_choice(monkeypatch)
    store = RunStore(tmp_path)
    config = small(RMPPGConfig, total_timesteps=4 * 512, n_pi=2, aux_epochs=1, kl_coef=0.1)
    run = registry.train(config, step_reward_fn=colour_reward(0), store=store, progress=False)
    assert store.get_run(run).algo == "ppg-rm"
    latest = store.latest_metrics(run)
    for name in ("rlhf/proxy_reward", "rlhf/gold_reward", "rlhf/kl", "rlhf/kl_sampled", "rlhf/sqrt_kl",
                 "rlhf/kl_episode", "aux/bc_kl"):
        assert name in latest and np.isfinite(latest[name][1]), name


# ---- the online loop (Christiano et al. 2017) -----------------------------------------------------------
RM_SETTINGS = dict(members=1, epochs=5, width=0.25, hidden=32, device="cpu")


@pytest.mark.slow
def test_online_loop_with_the_gold_labeler_learns_a_reward_model_and_raises_the_gold_reward(tmp_path, monkeypatch):
    """Start with no reward model. Every 3 iterations: save traced episodes, sample 48 clip pairs, label them
    with the synthetic gold labeler (env reward: red frames), retrain the reward ensemble
    (workbench.preferences.reward) on all labels so far and swap it in. The ensemble must predict the gold labels on
    held-out pairs, and PPO against it must raise the gold (env) reward above the random policy's."""
    from workbench.episodes.rollouts import RolloutStore
    from workbench.preferences.labels import LabelStore

    use_colour_choice(monkeypatch, gold_colour=0)
    store = RunStore(tmp_path)
    config = small(total_timesteps=12 * 512, online_every=3, online_pairs=96, online_clip_length=8,
                   online_trace_envs=8, online_reward_settings=RM_SETTINGS)
    run = rlhf.train(config, store=store, progress=False)
    labels = LabelStore(tmp_path)
    campaign = f"{run}-online"
    comparisons = labels.comparisons(campaign, include=("a", "b", "equal"))
    assert len(labels.items(campaign)) == 4 * 96
    assert len(comparisons) == 4 * 96 and {c.source for c in comparisons} == {"synthetic:gold"}
    assert len(RolloutStore(tmp_path).list(run_id=run)) > 0
    _, rounds = store.metric_series(run, "rlhf/rm_rounds")
    assert rounds[-1] == 4
    _, accuracy = store.metric_series(run, "rlhf/rm_heldout_accuracy")
    assert accuracy[-1] > 0.8
    gold = store.metric_series(run, "rlhf/gold_reward")[1]
    assert np.mean(gold[:3]) < 0.45  # no reward model yet: about the random policy's 0.28
    assert _mean_last(store, run, "rlhf/gold_reward") > 0.6
    # resume reloads the online loop's latest reward model from the checkpoint
    hook = RewardModelHook(config, store=store)
    core = ppo.make_policy(config)
    state = {"model": core.model}
    hook.setup("ppo", core, state)
    saved = store.load_checkpoint(run)["state"]
    state["online_reward_model"].load_state_dict(saved["online_reward_model"])
    assert hook.online.rounds == 4 and hook.step_reward_fn is not None


def test_online_loop_with_a_human_campaign_adds_items_and_waits_for_labels(tmp_path, monkeypatch):
    """online_labeler="campaign": pairs go to the campaign for people; without labels there is no reward model
    yet (the proxy reward stays 0), and the next round trains on whatever labels exist by then."""
    from workbench.preferences.labels import LabelStore

    store = RunStore(tmp_path)
    calls = []

    def retrain(campaign, root, previous, settings):
        calls.append(len(LabelStore(root).comparisons(campaign)))
        return type("Fixed", (), {"step_rewards": staticmethod(colour_reward(0))})(), {"heldout_accuracy": 1.0}, ""

    config = small(num_envs=4, num_steps=16, num_minibatches=2, total_timesteps=3 * 64, online_every=1,
                   online_pairs=3, online_clip_length=4, online_labeler="campaign", online_campaign="people")
    LabelStore(tmp_path).create_campaign("people", "clip_pair")
    labels = LabelStore(tmp_path)

    class LabelAfterFirstRound(RewardModelHook):
        def label_round(self, session):
            out = super().label_round(session)
            if session.iteration == 0:  # someone labels one pair in the dashboard meanwhile
                item_id = labels.items("people")[0][0]
                labels.label_direct("people", item_id, "alice", "left", source="human")
            return out

    hook = LabelAfterFirstRound(config, store=store, retrain=retrain)
    run = ppo.train(config, store=store, progress=False, extension=hook)
    assert len(labels.items("people")) == 3 * 3
    _, rounds = store.metric_series(run, "rlhf/rm_rounds")
    assert list(rounds) == [0, 1, 2] and calls == [1, 1]
    proxy = store.metric_series(run, "rlhf/proxy_reward")[1]
    assert proxy[0] == 0.0 and proxy[1] == 0.0  # the first reward model arrives at the end of iteration 2


def test_cli_trains_against_a_saved_reward_model(tmp_path, capsys):
    from workbench.cli import main as cli
    from workbench.preferences.reward import build_ensemble, save_reward_model

    path = save_reward_model(build_ensemble("clip", 1, {"width": 0.25, "hidden": 8}, reward_std=0.05,
                                            noise_floor=True), tmp_path / "rm")
    code = cli.main(["--store", str(tmp_path), "train", "--algo", "ppo-rm", "--env", "colour_cue", "--num-envs", "4",
                     "--timesteps", "32", "--width", "0.25", "--no-progress", "--set", "num_steps=8",
                     "--set", "num_minibatches=2", "--set", f"reward_model={path}", "--set", "kl_coef=0.02"])
    assert code == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    store = RunStore(tmp_path)
    assert store.get_run(run).algo == "ppo-rm" and store.get_run(run).config["kl_coef"] == 0.02
    assert "rlhf/proxy_reward" in store.latest_metrics(run)
