"""ProcgenVecEnv against raw procgen, the normalization table against the reference, validation."""

import numpy as np
import procgen
import pytest

from workbench.rl.envs import (
    DISTRIBUTION_MODES,
    GAMES,
    NORMALIZATION_CONSTANTS,
    NUM_ACTIONS,
    OBS_SHAPE,
    EpisodeStats,
    ProcgenVecEnv,
    normalized_return,
)

NUM_ENVS = 8
NUM_STEPS = 400


def random_actions(num_steps, num_envs, seed=0):
    return np.random.default_rng(seed).integers(0, NUM_ACTIONS, size=(num_steps, num_envs))


def run_raw(game, mode, num_levels, start_level, rand_seed, actions):
    """Drive procgen's gym3 env directly; episode stats by a plain per-env Python loop, with each
    episode's level seed read from info["level_seed"] when that episode started."""
    env = procgen.ProcgenGym3Env(
        num=actions.shape[1], env_name=game, distribution_mode=mode,
        num_levels=num_levels, start_level=start_level, rand_seed=rand_seed,
    )
    _, ob, _ = env.observe()
    first_obs = ob["rgb"].copy()
    level_at_start = [int(info["level_seed"]) for info in env.get_info()]
    ret = [0.0] * env.num
    length = [0] * env.num
    obs, rews, firsts, episodes = [], [], [], []
    for t, action in enumerate(actions):
        env.act(action)
        rew, ob, first = env.observe()
        obs.append(ob["rgb"].copy())
        rews.append(rew.copy())
        firsts.append(first.copy())
        infos = env.get_info()
        for i in range(env.num):
            ret[i] += float(rew[i])
            length[i] += 1
            if first[i]:
                episodes.append((t, i, ret[i], length[i], level_at_start[i]))
                ret[i], length[i] = 0.0, 0
                level_at_start[i] = int(infos[i]["level_seed"])
    env.close()
    return first_obs, np.array(obs), np.array(rews), np.array(firsts), episodes


@pytest.mark.parametrize(
    "game, mode, num_levels, start_level, rand_seed, num_steps",
    [
        # coinrun rarely ends under random actions: run past its 1000-step time limit.
        ("coinrun", "easy", 0, 0, 3, 1100),
        ("starpilot", "hard", 0, 0, 11, NUM_STEPS),
        ("dodgeball", "easy", 20, 500, 5, NUM_STEPS),
    ],
)
def test_adapter_matches_raw_procgen(game, mode, num_levels, start_level, rand_seed, num_steps):
    actions = random_actions(num_steps, NUM_ENVS, seed=rand_seed)
    raw_first_obs, raw_obs, raw_rews, raw_firsts, raw_episodes = run_raw(
        game, mode, num_levels, start_level, rand_seed, actions
    )

    env = ProcgenVecEnv(
        game, NUM_ENVS, distribution_mode=mode, num_levels=num_levels, start_level=start_level, rand_seed=rand_seed
    )
    first_obs = env.reset()
    assert first_obs.dtype == np.uint8 and first_obs.shape == (NUM_ENVS, *OBS_SHAPE)
    np.testing.assert_array_equal(first_obs, raw_first_obs)

    episodes = []
    for t, action in enumerate(actions):
        obs, reward, done, finished = env.step(action)
        assert obs.dtype == np.uint8 and obs.shape == (NUM_ENVS, *OBS_SHAPE)
        assert reward.dtype == np.float32 and reward.shape == (NUM_ENVS,)
        assert done.dtype == np.bool_ and done.shape == (NUM_ENVS,)
        np.testing.assert_array_equal(obs, raw_obs[t])
        np.testing.assert_array_equal(reward, raw_rews[t])
        np.testing.assert_array_equal(done, raw_firsts[t])
        assert sorted(s.env_index for s in finished) == list(np.flatnonzero(done))
        episodes += [(t, s.env_index, s.ret, s.length, s.level_seed) for s in finished]
    env.close()

    assert len(raw_episodes) >= 2, "the comparison needs finished episodes to mean anything"
    assert episodes == raw_episodes


def test_num_levels_and_start_level_are_respected():
    start_level, num_levels = 1000, 5
    env = ProcgenVecEnv("dodgeball", NUM_ENVS, num_levels=num_levels, start_level=start_level, rand_seed=1)
    assert (env.num_levels, env.start_level) == (num_levels, start_level)
    seeds = []
    for action in random_actions(600, NUM_ENVS, seed=1):
        seeds += [s.level_seed for s in env.step(action)[3]]
    env.close()
    assert len(seeds) >= 10
    assert all(start_level <= s < start_level + num_levels for s in seeds), seeds

    env = ProcgenVecEnv("dodgeball", NUM_ENVS, num_levels=1, start_level=77, rand_seed=1)
    seeds = []
    for action in random_actions(600, NUM_ENVS, seed=2):
        seeds += [s.level_seed for s in env.step(action)[3]]
    env.close()
    assert seeds and set(seeds) == {77}


def test_unrestricted_levels_vary():
    env = ProcgenVecEnv("dodgeball", NUM_ENVS, num_levels=0, rand_seed=1)
    seeds = []
    for action in random_actions(600, NUM_ENVS, seed=1):
        seeds += [s.level_seed for s in env.step(action)[3]]
    env.close()
    assert len(set(seeds)) > len(seeds) // 2


def test_render_mode_rgb_array():
    env = ProcgenVecEnv("coinrun", 2, render_mode="rgb_array", rand_seed=4)
    plain = ProcgenVecEnv("coinrun", 2, rand_seed=4)
    assert plain.render() is None
    for action in random_actions(20, 2, seed=4):
        obs, *_ = env.step(action)
        plain_obs, *_ = plain.step(action)
    np.testing.assert_array_equal(obs, plain_obs)  # rendering does not change what the agent sees
    frames = env.render()
    assert frames.dtype == np.uint8 and frames.shape == (2, 512, 512, 3)
    # The 512x512 frame is the same scene as the 64x64 observation: average 8x8 blocks and compare.
    downsampled = frames.reshape(2, 64, 8, 64, 8, 3).mean(axis=(2, 4))
    assert np.abs(downsampled - obs).mean() < 20
    env.close()
    plain.close()


def test_normalization_table_is_complete():
    assert GAMES == tuple(sorted(procgen.env.ENV_NAMES)) and len(GAMES) == 16
    assert DISTRIBUTION_MODES == ("easy", "hard")
    assert set(NORMALIZATION_CONSTANTS) == set(DISTRIBUTION_MODES)
    for mode in DISTRIBUTION_MODES:
        assert set(NORMALIZATION_CONSTANTS[mode]) == set(GAMES)
        for game, (r_min, r_max) in NORMALIZATION_CONSTANTS[mode].items():
            assert r_max > r_min, (mode, game)


# A few rows copied from train-procgen constants.py (Cobbe et al. 2019), independent of the module's table.
REFERENCE_ROWS = [
    ("coinrun", "easy", 5, 10),
    ("starpilot", "easy", 2.5, 64),
    ("starpilot", "hard", 1.5, 35),
    ("fruitbot", "easy", -1.5, 32.4),
    ("fruitbot", "hard", -0.5, 27.2),
    ("bigfish", "hard", 0, 40),
    ("maze", "hard", 4, 10),
]


@pytest.mark.parametrize("game, mode, r_min, r_max", REFERENCE_ROWS)
def test_normalized_return_formula(game, mode, r_min, r_max):
    assert NORMALIZATION_CONSTANTS[mode][game] == (r_min, r_max)
    assert normalized_return(game, r_min, mode) == pytest.approx(0.0)
    assert normalized_return(game, r_max, mode) == pytest.approx(1.0)
    value = normalized_return(game, 7.0, mode)
    assert isinstance(value, float)
    assert value == pytest.approx((7.0 - r_min) / (r_max - r_min))
    returns = np.array([[r_min, 3.0], [12.5, -2.0]])
    normalized = normalized_return(game, returns, distribution_mode=mode)
    assert isinstance(normalized, np.ndarray) and normalized.shape == (2, 2)
    np.testing.assert_allclose(normalized, (returns - r_min) / (r_max - r_min))
    np.testing.assert_allclose(normalized_return(game, [r_max, r_min], mode), [1.0, 0.0])


def test_normalized_return_default_mode_is_easy():
    assert normalized_return("starpilot", 33.25) == pytest.approx((33.25 - 2.5) / (64 - 2.5))


def test_normalized_return_rejects_unknown_game_and_mode():
    with pytest.raises(ValueError, match="unknown game 'coinrn'.*valid games: bigfish,.*starpilot"):
        normalized_return("coinrn", 1.0)
    with pytest.raises(ValueError, match="unknown distribution mode 'extreme'.*easy, hard"):
        normalized_return("coinrun", 1.0, "extreme")


@pytest.fixture
def no_procgen_env(monkeypatch):
    """Fail if a procgen env is created: arguments must be checked first."""

    def refuse(*args, **kwargs):
        raise AssertionError("procgen env created before the arguments were checked")

    monkeypatch.setattr(procgen, "ProcgenGym3Env", refuse)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(game="coinrn"), r"unknown game 'coinrn' \(did you mean 'coinrun'\?\); valid games: bigfish, bossfight"),
        (dict(game="coinrun", distribution_mode="extreme"), r"unknown distribution mode 'extreme'; valid distribution modes: easy, hard"),
        (dict(game="coinrun", num_envs=0), r"num_envs must be an integer in \[1, "),
        (dict(game="coinrun", num_envs=2.0), r"num_envs must be an integer in \[1, "),
        (dict(game="coinrun", num_levels=-1), r"num_levels must be an integer in \[0, "),
        (dict(game="coinrun", start_level=-5), r"start_level must be an integer in \[0, "),
        (dict(game="coinrun", rand_seed=-1), r"rand_seed must be an integer in \[0, "),
        (dict(game="coinrun", render_mode="human"), r"unknown render mode 'human'; valid render modes: None, rgb_array"),
    ],
)
def test_invalid_arguments_raise_value_error(no_procgen_env, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        ProcgenVecEnv(**kwargs)


def test_all_problems_reported_in_one_error(no_procgen_env):
    with pytest.raises(ValueError) as error:
        ProcgenVecEnv("nope", 0, distribution_mode="medium", num_levels=-1, start_level=-1)
    message = str(error.value)
    for part in ["unknown game 'nope'", "valid games: " + ", ".join(GAMES), "unknown distribution mode 'medium'",
                 "easy, hard", "num_envs", "num_levels", "start_level"]:
        assert part in message


def test_invalid_actions_raise_value_error():
    env = ProcgenVecEnv("coinrun", 2)
    for bad in [np.array([0, 15]), np.array([-1, 0]), np.array([0, 1, 2]), np.array([0.0, 1.0]), np.array([[0, 1]])]:
        with pytest.raises(ValueError, match="actions must"):
            env.step(bad)
    obs, reward, done, finished = env.step([3, 4])  # a list of ints is fine
    assert obs.shape == (2, *OBS_SHAPE)
    env.close()
    env.close()  # closing twice is harmless


def test_episode_stats_is_a_frozen_record():
    stats = EpisodeStats(env_index=1, ret=2.5, length=10, level_seed=None)
    with pytest.raises(AttributeError):
        stats.ret = 3.0


def test_making_an_env_prints_no_gym_deprecation_banner():
    import subprocess
    import sys

    code = "from workbench.rl.envs import ProcgenVecEnv; ProcgenVecEnv('coinrun', num_envs=1).close()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Gym has been unmaintained" not in out.stderr and "gymnasium" not in out.stderr.lower()
