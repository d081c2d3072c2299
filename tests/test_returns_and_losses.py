"""GAE, PPO's losses and the reward normalizer against plain, independent computations."""

import math

import numpy as np
import pytest
import torch

from workbench.rl.algos.losses import (
    clipped_policy_loss,
    normalize_advantages,
    value_loss,
)
from workbench.rl.algos.returns import (
    RewardNormalizer,
    RunningMeanStd,
    explained_variance,
    gae_advantages,
)


def gae_reference(rewards, values, dones, last_value, gamma, lam):
    """A plain per-env, per-step Python loop."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            next_v = last_value[n] if t == T - 1 else values[t + 1, n]
            nonterminal = 0.0 if dones[t, n] else 1.0
            delta = rewards[t, n] + gamma * next_v * nonterminal - values[t, n]
            running = delta + gamma * lam * nonterminal * running
            adv[t, n] = running
    return adv


@pytest.mark.parametrize("gamma,lam", [(0.999, 0.95), (0.9, 1.0), (0.99, 0.0)])
def test_gae_matches_plain_loop(gamma, lam):
    rng = np.random.default_rng(0)
    T, N = 37, 5
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    dones = rng.random((T, N)) < 0.1
    last = rng.normal(size=N)
    adv, ret = gae_advantages(torch.tensor(rewards, dtype=torch.float32), torch.tensor(values, dtype=torch.float32),
                              torch.tensor(dones), torch.tensor(last, dtype=torch.float32), gamma, lam)
    expected = gae_reference(rewards, values, dones, last, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ret.numpy(), expected + values, rtol=1e-4, atol=1e-4)


def test_gae_lambda_one_is_discounted_return_minus_value():
    # With lambda = 1 and no dones, A_t + V_t is the discounted return bootstrapped from last_value.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [0.1], [-0.2]])
    _, ret = gae_advantages(r, v, torch.zeros(3, 1, dtype=torch.bool), torch.tensor([10.0]), 0.5, 1.0)
    assert ret[0, 0].item() == pytest.approx(1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 10)


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must all be"):
        gae_advantages(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, 2), torch.zeros(2), 0.9, 0.9)


def test_clipped_policy_loss_matches_hand_written_reference():
    rng = np.random.default_rng(1)
    new, old, adv = rng.normal(size=64) * 0.3, rng.normal(size=64) * 0.3, rng.normal(size=64)
    eps = 0.2
    terms, clipped_count, kl = [], 0, []
    for n_lp, o_lp, a in zip(new, old, adv):
        r = math.exp(n_lp - o_lp)
        r_clip = min(max(r, 1 - eps), 1 + eps)
        terms.append(min(r * a, r_clip * a))
        clipped_count += abs(r - 1) > eps
        kl.append((r - 1) - (n_lp - o_lp))
    out = clipped_policy_loss(torch.tensor(new), torch.tensor(old), torch.tensor(adv), eps)
    assert out.loss.item() == pytest.approx(-np.mean(terms), rel=1e-9)
    assert out.clip_fraction.item() == pytest.approx(clipped_count / 64)
    assert out.approx_kl.item() == pytest.approx(np.mean(kl), rel=1e-9)


def test_clipped_policy_loss_gradient_is_zero_where_clipped():
    # Positive advantage and ratio above 1 + eps: the clipped term is the minimum and has no gradient.
    new = torch.tensor([0.5], requires_grad=True)
    out = clipped_policy_loss(new, torch.tensor([0.0]), torch.tensor([1.0]), 0.2)
    out.loss.backward()
    assert new.grad.item() == 0.0


def test_value_loss_clipped_matches_reference():
    rng = np.random.default_rng(2)
    v_new, v_old, ret = rng.normal(size=50), rng.normal(size=50), rng.normal(size=50)
    eps = 0.2
    ref = 0.5 * np.mean([max((vn - R) ** 2, (vo + np.clip(vn - vo, -eps, eps) - R) ** 2)
                         for vn, vo, R in zip(v_new, v_old, ret)])
    got = value_loss(torch.tensor(v_new), torch.tensor(ret), torch.tensor(v_old), eps)
    assert got.item() == pytest.approx(ref, rel=1e-9)
    assert value_loss(torch.tensor(v_new), torch.tensor(ret)).item() == pytest.approx(0.5 * np.mean((v_new - ret) ** 2))
    with pytest.raises(ValueError, match="old_value"):
        value_loss(torch.tensor(v_new), torch.tensor(ret), None, 0.2)


def test_normalize_advantages_population_std():
    x = torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    y = normalize_advantages(x)
    np.testing.assert_allclose(y.numpy(), (x.numpy() - x.numpy().mean()) / (x.numpy().std() + 1e-8))


def test_running_mean_std_equals_direct_moments():
    rng = np.random.default_rng(3)
    batches = [rng.normal(2.0, 3.0, size=rng.integers(1, 40)) for _ in range(30)]
    rms = RunningMeanStd(epsilon=0.0 + 1e-12)
    for b in batches:
        rms.update(b)
    everything = np.concatenate(batches)
    assert rms.mean == pytest.approx(everything.mean(), rel=1e-9)
    assert rms.var == pytest.approx(everything.var(), rel=1e-9)


def test_reward_normalizer_matches_direct_computation():
    """Direct: the discounted return of each env, reset after done; divide each reward by the std of every
    return seen so far (with baselines' 1e-4 prior count of a unit-variance zero-mean sample)."""
    rng = np.random.default_rng(4)
    T, N, gamma = 200, 6, 0.99
    rewards = rng.exponential(2.0, size=(T, N))
    dones = rng.random((T, N)) < 0.05
    norm = RewardNormalizer(N, gamma=gamma, clip=10.0)
    seen, ret = [], np.zeros(N)
    for t in range(T):
        got = norm(rewards[t], dones[t])
        ret = gamma * ret + rewards[t]
        seen.append(ret.copy())
        allr = np.concatenate(seen)
        prior = 1e-4
        mean = allr.sum() / (len(allr) + prior)
        var = (allr.var() * len(allr) + 1.0 * prior + (allr.mean() ** 2) * prior * len(allr) / (len(allr) + prior)) / (len(allr) + prior)
        expected = np.clip(rewards[t] / np.sqrt(var + 1e-8), -10, 10)
        np.testing.assert_allclose(got, expected, rtol=1e-4)
        ret[dones[t]] = 0.0
        assert mean == pytest.approx(norm.ret_rms.mean, rel=1e-6)


def test_reward_normalizer_clips_and_state_round_trip():
    norm = RewardNormalizer(2, gamma=0.99, clip=1.0)
    out = norm(np.array([1000.0, 0.0]), np.array([False, False]))
    assert out.max() <= 1.0
    fresh = RewardNormalizer(2)
    fresh.load_state_dict(norm.state_dict())
    assert fresh.ret_rms.var == pytest.approx(norm.ret_rms.var)


def test_explained_variance():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(y, y) == pytest.approx(1.0)
    assert explained_variance(torch.zeros(4), y) == pytest.approx(0.0)
    assert math.isnan(explained_variance(y, torch.ones(4)))
