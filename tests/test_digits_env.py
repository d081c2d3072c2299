"""The digits task with a variable horizon (workbench.rl.digits_env): frames are sklearn's digits, a reader of
the digits (a classifier fitted on the pixels, independent of the env's bookkeeping) earns the horizon's full
return, random guessing earns 1/15 of it, and the reward of an episode arrives on its last step."""

import numpy as np
import pytest

from workbench.rl.digits_env import DigitsVecEnv, digit_frames
from workbench.rl.env_registry import make_vec_env, validate_env_name
from workbench.rl.envs import NUM_ACTIONS, OBS_SHAPE


@pytest.fixture(scope="module")
def reader():
    """A nearest-centroid classifier of the 8x8 pixels recovered from the 64x64 frames."""
    from sklearn.datasets import load_digits
    from sklearn.neighbors import KNeighborsClassifier

    data = load_digits()
    model = KNeighborsClassifier(n_neighbors=1).fit(data.data, data.target)
    return lambda obs: model.predict(obs[:, ::8, ::8, 0].reshape(len(obs), 64) * 16.0 / 255.0)


def play(env, policy, steps):
    obs = env.reset()
    rewards, dones, episodes = [], [], []
    for _ in range(steps):
        obs, reward, done, finished = env.step(policy(obs))
        rewards.append(reward)
        dones.append(done)
        episodes += finished
    return np.array(rewards), np.array(dones), episodes


def test_frames_are_the_sklearn_digits_scaled_up():
    from sklearn.datasets import load_digits

    frames, labels = digit_frames()
    data = load_digits()
    assert frames.shape == (1797, *OBS_SHAPE) and frames.dtype == np.uint8
    np.testing.assert_array_equal(labels, data.target)
    np.testing.assert_allclose(frames[:, ::8, ::8, 0] / 255.0 * 16.0, data.images, atol=0.04)
    assert (frames[5, 8:16, 16:24] == frames[5, 8, 16]).all()  # 8x8 blocks, the same in all channels


@pytest.mark.parametrize("horizon", [1, 4])
def test_a_reader_earns_everything_and_random_guessing_one_fifteenth(reader, horizon):
    env = DigitsVecEnv(64, horizon=horizon, seed=1)
    rewards, dones, episodes = play(env, reader, horizon * 20)
    assert all(e.ret == horizon and e.length == horizon for e in episodes) and len(episodes) == 64 * 20
    # the whole return arrives on the last step of each episode
    assert (rewards[~dones] == 0).all() and (rewards[dones] == horizon).all()
    rng = np.random.default_rng(0)
    _, _, episodes = play(DigitsVecEnv(64, horizon=horizon, seed=2), lambda o: rng.integers(NUM_ACTIONS, size=64),
                          400 // horizon * horizon)
    accuracy = np.mean([e.ret for e in episodes]) / horizon
    assert abs(accuracy - 1 / 15) < 0.02


def test_registry_names_seeding_and_bad_input():
    env = make_vec_env("digits_h8", 3, rand_seed=5)
    assert env.horizon == 8 and env.reset().shape == (3, *OBS_SHAPE)
    np.testing.assert_array_equal(env.reset(), make_vec_env("digits_h8", 3, rand_seed=5).reset())
    assert validate_env_name("digits") == "digits"
    with pytest.raises(ValueError, match="digits_h8"):
        validate_env_name("digits_h9")
    with pytest.raises(ValueError, match="horizon must be an integer"):
        DigitsVecEnv(2, horizon=0)
    with pytest.raises(ValueError, match="actions must"):
        DigitsVecEnv(2).step(np.array([0, 15]))
