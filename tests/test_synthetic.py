"""Synthetic labelers: the decision rules against their definitions (deterministic with ties, Bradley-Terry
sampling frequencies, flip noise, Plackett-Luce), gold returns against a plain loop, and labels written
through the LabelStore with their source."""

import math

import numpy as np
import pytest
import torch

from workbench.preferences.synthetic import (
    EnvGold,
    ModelGold,
    SyntheticLabeler,
    clip_gold_return,
    label_campaign,
)


def test_deterministic_choice_and_ties():
    lab = SyntheticLabeler()
    rng = np.random.default_rng(0)
    assert lab.choose(2.0, 1.0, rng) == "left"
    assert lab.choose(1.0, 2.0, rng) == "right"
    assert lab.choose(1.0, 1.0, rng) == "equal"  # Gao et al.: ties are answered "equal"
    assert SyntheticLabeler(tie_tolerance=0.5).choose(1.0, 1.4, rng) == "equal"
    assert SyntheticLabeler(tie_tolerance=0.5).choose(1.0, 1.6, rng) == "right"


def test_bradley_terry_sampling_frequency():
    lab = SyntheticLabeler(mode="bradley_terry", temperature=2.0)
    rng = np.random.default_rng(1)
    n = 20_000
    left = sum(lab.choose(1.0, 0.0, rng) == "left" for _ in range(n)) / n
    p = 1 / (1 + math.exp(-0.5))  # sigma((1 - 0) / 2)
    assert abs(left - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert lab.choose(3.0, 3.0, rng) in ("left", "right")  # never "equal"


def test_flip_noise_frequency():
    lab = SyntheticLabeler(flip_prob=0.2)
    rng = np.random.default_rng(2)
    n = 20_000
    right = sum(lab.choose(1.0, 0.0, rng) == "right" for _ in range(n)) / n
    assert abs(right - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)
    assert all(lab.choose(1.0, 1.0, rng) == "equal" for _ in range(100))  # "equal" is never flipped


def test_rankings():
    rng = np.random.default_rng(3)
    assert SyntheticLabeler().rank([0.5, 2.0, -1.0, 2.0], rng) == [1, 3, 0, 2]  # ties by index
    pl = SyntheticLabeler(mode="bradley_terry", temperature=1.0)
    scores = np.array([0.0, 1.0, 2.0])
    n = 20_000
    first = np.bincount([pl.rank(scores, rng)[0] for _ in range(n)], minlength=3) / n
    softmax = np.exp(scores) / np.exp(scores).sum()  # Plackett-Luce: first place ~ softmax
    np.testing.assert_allclose(first, softmax, atol=0.015)
    with pytest.raises(ValueError, match="flip_prob is for pairwise"):
        SyntheticLabeler(flip_prob=0.1).rank([1.0, 2.0], rng)


def test_bad_settings():
    with pytest.raises(ValueError, match="mode must be one of"):
        SyntheticLabeler(mode="majority")
    with pytest.raises(ValueError, match="temperature"):
        SyntheticLabeler(temperature=0)
    with pytest.raises(ValueError, match="flip_prob"):
        SyntheticLabeler(flip_prob=1.5)
    with pytest.raises(ValueError, match="name"):
        SyntheticLabeler(name="two words")


def make_episodes(root, n=4, length=10):
    from workbench.episodes.rollouts import Episode, RolloutStore

    rng = np.random.default_rng(0)
    store, ids = RolloutStore(root), []
    for _ in range(n):
        rewards = rng.integers(0, 3, size=length).astype(np.float32)
        dones = np.zeros(length, bool)
        dones[-1] = True
        frames = np.broadcast_to((rewards * 80).astype(np.uint8)[:, None, None, None], (length, 64, 64, 3)).copy()
        ids.append(store.save(Episode(frames=frames, actions=np.zeros(length, np.int64),
                                      probs=np.full((length, 15), 1 / 15, np.float32),
                                      values=np.zeros(length, np.float32), rewards=rewards, dones=dones,
                                      env="colour_cue", level_seed=None, levels="test", distribution_mode="easy",
                                      policy="random")))
    return ids


def test_env_gold_is_the_sum_of_true_rewards(tmp_path):
    from workbench.episodes.rollouts import RolloutStore

    ids = make_episodes(tmp_path)
    ep = RolloutStore(tmp_path).load(ids[0], hires=False)
    ref = {"episode_id": ids[0], "start": 3, "length": 4}
    expected = 0.0
    for t in range(3, 7):
        expected += float(ep.rewards[t])
    assert clip_gold_return(ep, ref) == expected
    with pytest.raises(ValueError, match="past the end"):
        clip_gold_return(ep, {"episode_id": ids[0], "start": 8, "length": 4})
    gold = EnvGold(tmp_path)
    [(g_a, g_b)] = gold.pair_scores([{"a": ref, "b": {"episode_id": ids[1], "start": 0, "length": 4}}])
    assert g_a == expected


def test_label_campaign_writes_through_the_label_store(tmp_path):
    from workbench.episodes.clips import sample_clip_pairs
    from workbench.episodes.rollouts import RolloutStore
    from workbench.preferences.labels import LabelStore

    make_episodes(tmp_path)
    rollouts = RolloutStore(tmp_path)
    labels = LabelStore(tmp_path)
    labels.create_campaign("c", "clip_pair", overlap=2)
    labels.add_items("c", sample_clip_pairs(rollouts.list(), 30, length=3, rng=0))
    lab = SyntheticLabeler("gold", seed=5)
    assert label_campaign("c", lab, store_root=tmp_path, limit=10) == 10
    assert label_campaign("c", lab, store_root=tmp_path) == 20        # only the rest
    assert label_campaign("c", lab, store_root=tmp_path) == 0         # idempotent
    stored = labels.labels("c")
    assert len(stored) == 30 and {s.source for s in stored} == {"synthetic:gold"}
    gold = EnvGold(tmp_path)
    for s in stored:
        g_a, g_b = gold.pair_scores([s.payload])[0]
        assert s.preferred == ("a" if g_a > g_b else "b" if g_b > g_a else "equal")
    # A second synthetic labeler (overlap 2): noisy, with its own source, reproducible by seed.
    noisy = SyntheticLabeler("noisy", mode="bradley_terry", temperature=0.5, flip_prob=0.1, seed=1)
    assert label_campaign("c", noisy, store_root=tmp_path) == 30
    first = {s.item_id: s.preferred for s in labels.labels("c", labeler="noisy")}
    # Answers are fixed by (seed, item id): the same labeler under another id answers identically ...
    assert label_campaign("c", noisy, store_root=tmp_path, labeler_id="noisy-again") == 30
    assert {s.item_id: s.preferred for s in labels.labels("c", labeler="noisy-again")} == first
    # ... and at temperature 0.5 with 10% flips it disagrees with the deterministic gold on some strict pairs.
    gold_answers = {s.item_id: s.preferred for s in labels.labels("c", labeler="gold")}
    assert any(first[i] != gold_answers[i] for i in first if gold_answers[i] != "equal")


def test_model_gold_and_kind_errors(tmp_path):
    from workbench.episodes.clips import sample_clip_pairs
    from workbench.episodes.rollouts import RolloutStore
    from workbench.preferences.labels import LabelStore
    from workbench.preferences.reward import build_ensemble

    make_episodes(tmp_path)
    labels = LabelStore(tmp_path)
    labels.create_campaign("c", "clip_pair")
    payloads = sample_clip_pairs(RolloutStore(tmp_path).list(), 8, length=3, rng=1)
    labels.add_items("c", payloads)
    torch.manual_seed(0)
    ensemble = build_ensemble("clip", 2, {"width": 0.125, "hidden": 4}, reward_std=0.05, noise_floor=False)
    gold = ModelGold(ensemble, tmp_path)
    assert label_campaign("c", SyntheticLabeler("gold_rm"), gold, store_root=tmp_path) == 8
    episodes = {i: RolloutStore(tmp_path).load(i, hires=False) for i in {p["a"]["episode_id"] for p in payloads} |
                {p["b"]["episode_id"] for p in payloads}}
    for s in labels.labels("c"):
        clip = lambda ref: torch.from_numpy(episodes[ref["episode_id"]].frames[ref["start"]:ref["start"] + ref["length"]])[None]
        r_a, r_b = float(ensemble.clip_rewards(clip(s.payload["a"]))), float(ensemble.clip_rewards(clip(s.payload["b"])))
        assert s.preferred == ("a" if r_a > r_b else "b" if r_b > r_a else "equal")
        assert s.source == "synthetic:gold_rm"
    labels.create_campaign("t", "text_pair")
    with pytest.raises(ValueError, match="environment gold only scores clips"):
        label_campaign("t", SyntheticLabeler(), store_root=tmp_path)
    with pytest.raises(ValueError, match="this gold scores"):
        label_campaign("t", SyntheticLabeler(), gold, store_root=tmp_path)
