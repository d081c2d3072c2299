"""Recorded episodes: exact round trip through the store, the index and its filters, recording from a run
and during training, high-resolution frames, the CLI."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from workbench.episodes.rollouts import (
    ACTION_NAMES,
    Episode,
    RolloutStore,
    UnknownEpisodeError,
    record_episodes,
    record_random,
    record_run,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_action_names_follow_procgens_button_combos():
    import procgen

    env = procgen.ProcgenGym3Env(num=1, env_name="coinrun")
    combos = env.get_combos()
    env.close()
    assert ACTION_NAMES == ["+".join(c) or "NOOP" for c in combos]
    assert len(ACTION_NAMES) == 15 and ACTION_NAMES[4] == "NOOP" and ACTION_NAMES[0] == "LEFT+DOWN"


def test_round_trip_is_exact_and_hires_frames_match_the_render(tmp_path):
    recorded = record_episodes(None, "coinrun", level_seeds=[7], max_steps=40, seed=3)
    [(episode, hires)] = recorded
    assert hires.shape == (40, 512, 512, 3) and episode.frames.shape == (40, 64, 64, 3)
    store = RolloutStore(tmp_path)
    episode_id = store.save(episode, hires)
    back = store.load(episode_id)
    for name in ("frames", "actions", "probs", "values", "rewards", "dones"):
        a, b = getattr(episode, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    assert (back.env, back.level_seed, back.levels, back.policy, back.run_id) == ("coinrun", 7, "seed", "random", None)
    assert not back.dones[:-1].any()
    # The render is stored lossy (H.264): close to what the game drew, frame by frame, in any access order.
    for t in (0, 39, 12, 13, 5, 30):
        error = np.abs(back.hires.frame(t).astype(int) - hires[t]).mean()
        assert error < 4.0, (t, error)
    # A frame is matched to its own time step, not a neighbour's.
    if not np.array_equal(hires[10], hires[30]):
        assert np.abs(back.hires.frame(30).astype(int) - hires[30]).mean() < np.abs(
            back.hires.frame(30).astype(int) - hires[10]).mean()
    with pytest.raises(IndexError):
        back.hires.frame(40)


def test_recording_is_deterministic_and_a_level_seed_fixes_the_level():
    a = record_episodes(None, "coinrun", level_seeds=[5, 6], hires=False, max_steps=10, seed=0)
    b = record_episodes(None, "coinrun", level_seeds=[5], hires=False, max_steps=10, seed=0)
    assert np.array_equal(a[0][0].frames, b[0][0].frames) and np.array_equal(a[0][0].actions, b[0][0].actions)
    assert not np.array_equal(a[0][0].frames[0], a[1][0].frames[0])  # another level looks different
    assert a[1][0].level_seed == 6 and a[0][1] is None


def test_done_flags_are_the_envs_and_the_level_seed_is_known_without_asking():
    [(whole, _)] = record_episodes(None, "colour_cue", episodes=1, hires=False)
    assert whole.length == 8 and whole.dones[-1] and not whole.dones[:-1].any()
    [(cut, _)] = record_episodes(None, "coinrun", episodes=1, hires=False, max_steps=3, seed=2)
    assert cut.length == 3 and not cut.dones.any()  # cut short: the game did not end, no outcome
    # levels from the distribution: the level played is read from procgen, and replaying it gives the same frames
    assert isinstance(cut.level_seed, int)
    [(again, _)] = record_episodes(None, "coinrun", level_seeds=[cut.level_seed], hires=False, max_steps=1)
    assert np.array_equal(again.frames[0], cut.frames[0])


def test_episode_statistics_against_plain_loops():
    rng = np.random.default_rng(0)
    t = 12
    logits = rng.normal(size=(t, 15))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rewards = (rng.random(t) < 0.3).astype(np.float32)
    ep = Episode(frames=np.zeros((t, 64, 64, 3), np.uint8), actions=rng.integers(15, size=t), probs=probs,
                 values=rng.normal(size=t), rewards=rewards, dones=np.arange(t) == t - 1, env="coinrun",
                 level_seed=1, levels="train", distribution_mode="easy", policy="random")
    for i in range(t):
        assert ep.chosen_prob[i] == pytest.approx(probs[i, ep.actions[i]], rel=1e-6)
        assert ep.entropy[i] == pytest.approx(-sum(p * np.log(p) for p in probs[i]), rel=1e-5)
    gamma, lam = 0.9, 0.8
    expected, running = np.zeros(t), 0.0
    for i in reversed(range(t)):
        next_value = ep.values[i + 1] if i + 1 < t else 0.0
        delta = rewards[i] + gamma * next_value - ep.values[i]
        running = delta + gamma * lam * running
        expected[i] = running
    np.testing.assert_allclose(ep.advantages(gamma, lam), expected, rtol=1e-5, atol=1e-5)
    assert list(ep.reward_events()) == list(np.flatnonzero(rewards))
    assert ep.ret == pytest.approx(float(rewards.sum()))


def test_bad_episodes_and_ids_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="frames must be"):
        Episode(frames=np.zeros((3, 32, 32, 3)), actions=[0, 1, 2], probs=np.ones((3, 15)) / 15, values=[0] * 3,
                rewards=[0] * 3, dones=[0, 0, 1], env="coinrun", level_seed=None, levels="train",
                distribution_mode="easy", policy="random")
    with pytest.raises(ValueError, match="levels must be one of"):
        Episode(frames=np.zeros((1, 64, 64, 3)), actions=[0], probs=np.ones((1, 15)) / 15, values=[0], rewards=[0],
                dones=[1], env="coinrun", level_seed=None, levels="training", distribution_mode="easy", policy="random")
    store = RolloutStore(tmp_path)
    with pytest.raises(UnknownEpisodeError, match="unknown episode id"):
        store.load("ep-nope")
    with pytest.raises(ValueError, match="level_seeds"):
        record_episodes(None, "coinrun", level_seeds=[-1])
    with pytest.raises(ValueError, match="unknown env"):
        record_random("coinrunn", store_root=tmp_path)


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    [(episode, hires)] = record_episodes(None, "colour_cue", episodes=1)
    store = RolloutStore(tmp_path)
    with pytest.raises(ValueError, match="high-resolution frames"):
        store.save(episode, hires[:-2])
    assert store.list() == [] and os.listdir(store.dir) == []


def test_index_lists_and_filters(tmp_path):
    ids = record_random("colour_cue", episodes=3, store_root=tmp_path, seed=1)
    seeded = record_random("coinrun", level_seeds=[11, 12], hires=False, max_steps=5, store_root=tmp_path)
    store = RolloutStore(tmp_path)
    assert {i.id for i in store.list()} == set(ids + seeded)
    assert [i.id for i in store.list(level_seed=12)] == [seeded[1]]
    assert {i.id for i in store.list(env="colour_cue")} == set(ids)
    rets = {i.id: i.ret for i in store.list()}
    high = max(rets.values())
    assert {i.id for i in store.list(min_return=high)} == {k for k, v in rets.items() if v >= high}
    assert len(store.list(limit=2)) == 2
    info = store.info(seeded[0])
    assert not info.has_hires and info.length == 5 and info.policy == "random"
    store.delete(seeded[0])
    assert seeded[0] not in {i.id for i in store.list()} and not os.path.exists(info.path)


@pytest.mark.slow
def test_record_run_and_record_every_during_training(tmp_path):
    from workbench.registry import train
    from workbench.rl.algos.ppo import PPOConfig
    from workbench.storage.runs import RunStore

    store = RunStore(tmp_path)
    cfg = PPOConfig(env="colour_cue", num_envs=4, num_steps=8, num_minibatches=2, width=0.25, total_timesteps=96,
                    checkpoint_every=1, record_every=2, seed=0)
    run_id = train(cfg, store=store, progress=False)
    rollouts = RolloutStore(tmp_path)
    during = rollouts.list(run_id=run_id)
    # 3 iterations of 32 steps, recording every 2nd: one episode, after iteration 2 (env step 64).
    assert [i.checkpoint_step for i in during] == [64]
    _, seconds = store.metric_series(run_id, "record_seconds")
    assert len(seconds) == len(during) and np.all(seconds > 0)
    [episode_id] = record_run(run_id, episodes=1, store_root=tmp_path, hires=False)
    ep = rollouts.load(episode_id)
    assert ep.policy == "checkpoint" and ep.run_id == run_id and ep.checkpoint_step == 96
    assert np.all(np.isfinite(ep.values)) and np.allclose(ep.probs.sum(1), 1, atol=1e-4)
    # The recorded distribution is the checkpoint's own, step by step.
    from workbench.rl.checkpoints import policy_from_checkpoint

    core = policy_from_checkpoint("ppo", store.get_run(run_id).config, store.load_checkpoint(run_id), "cpu")
    with torch.no_grad():
        logits, _ = core.forward(core.to_device(ep.frames))
    np.testing.assert_allclose(torch.softmax(logits.float(), -1).numpy(), ep.probs, atol=2e-2)


@pytest.mark.slow
def test_cli_records_and_lists(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "workbench.cli", "--store", str(tmp_path)]
    out = subprocess.run(base + ["rollout", "--random", "coinrun", "--level-seeds", "2,3", "--max-steps", "6",
                                 "--no-hires"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 2 and all(i.startswith("ep-coinrun-") for i in ids)
    listing = subprocess.run(base + ["rollouts"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert all(i in listing.stdout for i in ids) and "random policy" in listing.stdout
    bad = subprocess.run(base + ["rollout", "--random", "coinrun", "--level-seeds", "a,b"], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "--level-seeds expects" in bad.stderr
    both = subprocess.run(base + ["rollout"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert both.returncode == 2 and "either a run id or --random" in both.stderr
