"""ColourCueVecEnv: seeded, the optimum and the random baseline it promises, episode bookkeeping."""

import numpy as np
import pytest

from workbench.rl.envs import NUM_ACTIONS, OBS_SHAPE, EpisodeStats
from workbench.rl.toy_env import PALETTE, ColourCueVecEnv


def colour_index_from_pixels(obs: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Nearest palette colour to each image's mean pixel: reads the cue the way an agent would."""
    mean_pixel = obs.reshape(len(obs), -1, 3).mean(axis=1)
    distances = np.linalg.norm(mean_pixel[:, None, :] - palette[None].astype(np.float64), axis=-1)
    return distances.argmin(axis=1)


def run(env, policy, num_steps):
    obs = env.reset()
    history = []
    for _ in range(num_steps):
        actions = policy(obs)
        next_obs, reward, done, finished = env.step(actions)
        history.append((obs, actions, reward, done, finished))
        obs = next_obs
    return history


def test_observations_and_spaces():
    env = ColourCueVecEnv(6)
    assert (env.num_envs, env.num_actions, env.observation_shape) == (6, NUM_ACTIONS, OBS_SHAPE)
    obs = env.reset()
    assert obs.dtype == np.uint8 and obs.shape == (6, *OBS_SHAPE)
    # Each image is one colour plus small noise, not a flat fill.
    colours = colour_index_from_pixels(obs, PALETTE[: env.num_colours])
    for image, colour in zip(obs, colours):
        noise = image.astype(int) - PALETTE[colour].astype(int)
        assert 0 < np.abs(noise).max() <= env.noise
    obs, reward, done, finished = env.step(np.zeros(6, dtype=np.int64))
    assert obs.dtype == np.uint8 and obs.shape == (6, *OBS_SHAPE)
    assert reward.dtype == np.float32 and reward.shape == (6,)
    assert done.dtype == np.bool_ and done.shape == (6,)
    assert env.render() is None
    env.close()


def test_deterministic_under_seed():
    policy_rng = np.random.default_rng(0)
    actions = policy_rng.integers(0, NUM_ACTIONS, size=(30, 5))

    def rollout(seed):
        env = ColourCueVecEnv(5, seed=seed)
        out = [env.reset()]
        for a in actions:
            obs, reward, done, finished = env.step(a)
            out += [obs, reward, done]
        return out

    first, again, other = rollout(3), rollout(3), rollout(4)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))


@pytest.mark.parametrize("num_colours, episode_length", [(4, 8), (15, 5), (1, 3)])
def test_optimal_policy_scores_episode_length(num_colours, episode_length):
    env = ColourCueVecEnv(16, num_colours=num_colours, episode_length=episode_length, noise=25, seed=1)
    palette = PALETTE[:num_colours]
    history = run(env, lambda obs: colour_index_from_pixels(obs, palette), 4 * episode_length)
    rewards = np.array([h[2] for h in history])
    assert (rewards == 1.0).all()
    returns = [s.ret for h in history for s in h[4]]
    assert len(returns) == 4 * 16 and all(r == episode_length for r in returns)


def test_pixels_decide_the_reward():
    """Acting on a different colour than the one shown earns nothing."""
    env = ColourCueVecEnv(16, num_colours=4, seed=2)
    history = run(env, lambda obs: (colour_index_from_pixels(obs, PALETTE[:4]) + 1) % 4, 40)
    assert all((h[2] == 0.0).all() for h in history)


def test_random_policy_averages_episode_length_over_15():
    episode_length, num_envs, num_episodes = 8, 64, 40
    env = ColourCueVecEnv(num_envs, episode_length=episode_length, seed=5)
    rng = np.random.default_rng(5)
    history = run(env, lambda obs: rng.integers(0, NUM_ACTIONS, size=num_envs), num_episodes * episode_length)
    returns = np.array([s.ret for h in history for s in h[4]])
    assert len(returns) == num_envs * num_episodes
    # Return ~ Binomial(8, 1/15): sd of the mean over 2560 episodes is about 0.013.
    assert returns.mean() == pytest.approx(episode_length / 15, abs=0.06)


def test_done_every_episode_length_steps_and_stats():
    episode_length, num_envs = 5, 3
    env = ColourCueVecEnv(num_envs, episode_length=episode_length, seed=7)
    rng = np.random.default_rng(7)
    history = run(env, lambda obs: rng.integers(0, 4, size=num_envs), 4 * episode_length)
    ret = np.zeros(num_envs)
    for t, (_, actions, reward, done, finished) in enumerate(history):
        ret += reward
        expect_done = (t + 1) % episode_length == 0
        assert done.tolist() == [expect_done] * num_envs
        if expect_done:
            expected = [EpisodeStats(env_index=i, ret=float(ret[i]), length=episode_length, level_seed=None)
                        for i in range(num_envs)]
            assert finished == expected
            ret[:] = 0
        else:
            assert finished == []


def test_render_rgb_array():
    env = ColourCueVecEnv(2, render_mode="rgb_array")
    obs = env.reset()
    frames = env.render()
    assert frames.dtype == np.uint8 and frames.shape == (2, 512, 512, 3)
    np.testing.assert_array_equal(frames[:, ::8, ::8], obs)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(num_envs=0), r"num_envs must be an integer in \[1, "),
        (dict(num_colours=16), r"num_colours must be an integer in \[1, 15\]"),
        (dict(num_colours=0), r"num_colours must be an integer in \[1, 15\]"),
        (dict(episode_length=0), r"episode_length must be an integer in \[1, "),
        (dict(noise=-1), r"noise must be an integer in \[0, 25\]"),
        (dict(seed=-1), r"seed must be an integer in \[0, "),
        (dict(render_mode="human"), r"unknown render mode 'human'; valid render modes: None, rgb_array"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        ColourCueVecEnv(**kwargs)


def test_invalid_actions_raise_value_error():
    env = ColourCueVecEnv(2)
    for bad in [np.array([0, 15]), np.array([-1, 0]), np.array([0, 1, 2]), np.array([0.5, 1.0])]:
        with pytest.raises(ValueError, match="actions must"):
            env.step(bad)


def test_colour_choice_shows_the_chosen_colour_and_rewards_the_gold_one():
    from workbench.rl.env_registry import make_vec_env
    from workbench.rl.toy_env import PALETTE, ColourChoiceVecEnv

    env = make_vec_env("colour_choice", 3, rand_seed=0)
    assert isinstance(env, ColourChoiceVecEnv) and env.gold_colour == 0
    obs = env.reset()
    for step in range(env.episode_length):
        shown = [int(np.argmin(np.abs(PALETTE[:4].astype(int) - o.mean((0, 1))).sum(1))) for o in obs]
        actions = np.array([5, 6, 4]) + step  # colours (5 + step) % 4, ...
        obs, reward, done, finished = env.step(actions)
        # the reward is for the frame acted on; the next frame shows action % 4 (unless a new episode starts)
        assert list(reward) == [float(c == 0) for c in shown]
        if not done[0]:
            nxt = [int(np.argmin(np.abs(PALETTE[:4].astype(int) - o.mean((0, 1))).sum(1))) for o in obs]
            assert nxt == list(actions % 4)
    assert done.all() and len(finished) == 3
    with pytest.raises(ValueError, match="gold_colour"):
        ColourChoiceVecEnv(2, gold_colour=7)
