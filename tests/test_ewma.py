"""PPO-EWMA pieces: the weight EWMA, the decoupled objective, EWMA advantage normalization and the
batch-size rules, against plain references and the paper's table (Hilton et al. 2021, arXiv 2110.00641)."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from workbench import registry
from workbench.rl.algos.batch_size import adjust_for_batch_size, parse_factor
from workbench.rl.algos.ewma import EWMAModel, beta_for_centre_of_mass, centre_of_mass
from workbench.rl.algos.losses import (
    clipped_policy_loss,
    decoupled_policy_loss,
    normalize_advantages,
)
from workbench.rl.algos.ppo import PPOConfig
from workbench.rl.algos.returns import AdvantageNormalizer
from workbench.storage.runs import RunStore


def test_ewma_matches_plain_weighted_average_with_bias_correction_and_reset():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    beta = 0.7
    ewma = EWMAModel(net, beta)
    history = [net.weight.detach().clone()]  # theta_0, weight 1
    for step in range(6):
        with torch.no_grad():
            net.weight.add_(torch.randn_like(net.weight))
        history.append(net.weight.detach().clone())
        ewma.update()
        # plain loop: sum_i beta^(k - i) theta_i / sum_i beta^(k - i)
        k = len(history) - 1
        weights = [beta ** (k - i) for i in range(k + 1)]
        expected = sum(w * h for w, h in zip(weights, history)) / sum(weights)
        torch.testing.assert_close(ewma.model.weight, expected)
    ewma.reset()
    torch.testing.assert_close(ewma.model.weight, net.weight)
    assert ewma.total_weight == 1.0
    assert not any(p.requires_grad for p in ewma.model.parameters())


def test_ewma_beta_zero_tracks_current_weights():
    net = nn.Linear(2, 2)
    ewma = EWMAModel(net, 0.0)
    with torch.no_grad():
        net.weight.mul_(3)
    ewma.update()
    torch.testing.assert_close(ewma.model.weight, net.weight)


@pytest.mark.parametrize("com,beta", [("8", "0.889"), ("32", "0.9697"), ("128", "0.99225"), ("512", "0.99805"),
                                      ("2048", "0.99951")])
def test_centre_of_mass_matches_the_papers_table(com, beta):
    # The table rounds beta: compare at the number of decimals it prints.
    com, decimals = float(com), len(beta.split(".")[1])
    assert round(beta_for_centre_of_mass(com), decimals) == float(beta)
    assert centre_of_mass(beta_for_centre_of_mass(com)) == pytest.approx(com)


def test_decoupled_loss_equals_ppo_when_proximal_is_behavior():
    rng = np.random.default_rng(0)
    new = torch.tensor(rng.normal(size=32) * 0.3, requires_grad=True)
    old, adv = torch.tensor(rng.normal(size=32) * 0.3), torch.tensor(rng.normal(size=32))
    a = decoupled_policy_loss(new, old, old, adv, 0.2)
    (ga,) = torch.autograd.grad(a.loss, new)
    b = clipped_policy_loss(new, old, adv, 0.2)
    (gb,) = torch.autograd.grad(b.loss, new)
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-12)
    torch.testing.assert_close(ga, gb)
    assert a.clip_fraction.item() == b.clip_fraction.item()


def test_decoupled_loss_matches_hand_written_reference():
    rng = np.random.default_rng(1)
    new, behav, prox = rng.normal(size=40), rng.normal(size=40) - 1.0, rng.normal(size=40)
    behav[:3] = new[:3] - 10  # importance weights above 100 get capped
    adv, eps, cap = rng.normal(size=40), 0.2, 100.0
    terms = []
    for n, b, p, a in zip(new, behav, prox, adv):
        b = max(b, n - math.log(cap))
        r = math.exp(n - p)
        terms.append(math.exp(p - b) * min(r * a, min(max(r, 1 - eps), 1 + eps) * a))
    out = decoupled_policy_loss(torch.tensor(new), torch.tensor(behav), torch.tensor(prox), torch.tensor(adv), eps)
    assert out.loss.item() == pytest.approx(-np.mean(terms), rel=1e-9)


def test_advantage_normalizer_beta_zero_is_per_batch_and_ewma_matches_loop():
    x = torch.randn(100, dtype=torch.float64) * 3 + 1
    norm = AdvantageNormalizer(0.0)
    norm.update(x)
    torch.testing.assert_close(norm(x), normalize_advantages(x))
    beta = 0.6
    norm = AdvantageNormalizer(beta)
    batches = [torch.randn(50, dtype=torch.float64) * (i + 1) + i for i in range(4)]
    for b in batches:
        norm.update(b)
    w = [beta ** (3 - i) * (1 - beta) for i in range(4)]
    m1 = sum(wi * b.mean().item() for wi, b in zip(w, batches)) / sum(w)
    m2 = sum(wi * (b ** 2).mean().item() for wi, b in zip(w, batches)) / sum(w)
    expected = (batches[-1] - m1) / (math.sqrt(m2 - m1 ** 2) + 1e-8)
    torch.testing.assert_close(norm(batches[-1]), expected)


@pytest.mark.parametrize("c,lr,beta_prox,n_pi", [(4, 2.5e-4, 0.9697, 128), (16, 1.25e-4, 0.99225, 512),
                                                (64, 6.25e-5, 0.99805, 2048), (256, 3.125e-5, 0.99951, 8192)])
def test_adjust_for_batch_size_matches_the_papers_table(c, lr, beta_prox, n_pi):
    base = registry.make_config("ppg-ewma", "hard")  # 256 envs, the paper's largest batch
    adjusted = adjust_for_batch_size(base, f"1/{c}")
    assert adjusted.num_envs == 256 // c
    assert adjusted.learning_rate == pytest.approx(lr)
    assert adjusted.beta_prox == pytest.approx(beta_prox, abs=6e-5)
    assert adjusted.n_pi == n_pi
    assert adjusted.advantage_norm == "ewma" and adjusted.beta_adv == pytest.approx((c - 1) / (c + 1))
    # the auxiliary phase keeps its data and its minibatches: rollouts per minibatch unchanged
    assert adjusted.aux_rollouts_per_minibatch == base.aux_rollouts_per_minibatch
    assert adjusted.n_pi * adjusted.num_envs == base.n_pi * base.num_envs
    assert adjusted.adam_betas == base.adam_betas
    betas = adjust_for_batch_size(base, 1 / c, adjust_adam_betas=True).adam_betas
    assert betas == pytest.approx((0.9 ** (1 / c), 0.999 ** (1 / c)))


def test_adjust_for_batch_size_rejects_bad_factors():
    with pytest.raises(ValueError, match="whole number"):
        adjust_for_batch_size(PPOConfig(num_envs=64), "1/3")
    with pytest.raises(ValueError, match="positive"):
        parse_factor("a quarter")
    assert parse_factor("1/4") == 0.25 and parse_factor(2) == 2.0


def _final_weights(config, tmp_path, name):
    store = RunStore(tmp_path / name)
    run = registry.train(config, store=store, progress=False)
    state = store.load_checkpoint(run)
    return state["state"]["model"]


def test_ppo_ewma_with_beta_zero_and_one_step_per_iteration_is_ppo(tmp_path):
    """With beta_prox = 0 the proximal policy is the current weights; with one minibatch and one epoch those
    are the behaviour weights at every step, so PPO-EWMA must follow PPO exactly."""
    base = PPOConfig(env="colour_cue", num_envs=8, num_steps=8, num_minibatches=1, update_epochs=1, width=0.25,
                     total_timesteps=8 * 8 * 3, advantage_norm="batch", bf16=False)
    ppo_w = _final_weights(base, tmp_path, "ppo")
    ewma_w = _final_weights(dataclasses.replace(base, proximal_policy="ewma", beta_prox=0.0), tmp_path, "ewma")
    for key in ppo_w:
        torch.testing.assert_close(ewma_w[key], ppo_w[key], rtol=1e-5, atol=1e-6)
    # ...and a real EWMA (beta 0.889) with several steps per iteration does not.
    other = _final_weights(dataclasses.replace(base, proximal_policy="ewma", num_minibatches=4), tmp_path, "x")
    assert any(not torch.allclose(other[k], ppo_w[k]) for k in ppo_w)
