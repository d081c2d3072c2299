"""Reward models: the Bradley-Terry loss, the noise floor, ties and K-choose-2 grouping against hand
computations; ensembles (normalization, disagreement); text encoder; save/load refusing tampered files;
training from campaigns (learning to > 90% held-out accuracy, bad-input errors); the CLI."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from workbench.preferences.reward import (
    ClipBank,
    ClipRewardModel,
    HashedBagOfWords,
    RewardConfig,
    bradley_terry_loss,
    build_ensemble,
    comparisons_to_data,
    fit_ensemble,
    grouped_mean,
    labeler_agreement,
    load_reward_model,
    pair_losses,
    preference_probability,
    save_reward_model,
    split_heldout,
    train_reward_model,
)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------------------------------ losses

def test_bradley_terry_loss_by_hand():
    r_a = torch.tensor([1.0, 0.0, -2.0])
    r_b = torch.tensor([0.0, 0.5, 1.0])
    mu = torch.tensor([1.0, 0.0, 0.5])
    expected = [-math.log(sig(1.0)), -math.log(1 - sig(-0.5)), -(0.5 * math.log(sig(-3.0)) + 0.5 * math.log(1 - sig(-3.0)))]
    np.testing.assert_allclose(pair_losses(r_a, r_b, mu).numpy(), expected, rtol=1e-6)
    assert bradley_terry_loss(r_a, r_b, mu).item() == pytest.approx(np.mean(expected), rel=1e-6)
    # P(A > B) = sigma(r_a - r_b)
    np.testing.assert_allclose(preference_probability(r_a, r_b).numpy(), [sig(1), sig(-0.5), sig(-3)], rtol=1e-6)


def test_noise_floor_by_hand():
    r_a = torch.tensor([1.0, 0.0, 100.0])
    r_b = torch.tensor([0.0, 0.5, 0.0])
    mu = torch.tensor([1.0, 0.5, 0.0])

    def floor(p):
        return 0.9 * p + 0.05

    expected = [-math.log(floor(sig(1.0))),
                -(0.5 * math.log(floor(sig(-0.5))) + 0.5 * math.log(1 - floor(sig(-0.5)))),
                -math.log(1 - floor(1.0))]  # a confident wrong answer costs at most -log 0.05
    np.testing.assert_allclose(pair_losses(r_a, r_b, mu, noise_floor=True).numpy(), expected, rtol=1e-5)
    assert expected[2] == pytest.approx(-math.log(0.05), rel=1e-6)
    assert pair_losses(r_a, r_b, mu)[2].item() == pytest.approx(100.0, rel=1e-4)  # without the floor
    p = preference_probability(torch.tensor([5.0]), torch.tensor([-5.0]), noise_floor=True)
    assert p.item() == pytest.approx(0.9 * sig(10.0) + 0.05)
    # Gradients stay finite at extreme logits.
    x = torch.tensor([80.0], requires_grad=True)
    pair_losses(x, torch.zeros(1), torch.zeros(1), noise_floor=True).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_k_choose_2_grouping_by_hand():
    # One ranking of K = 3 (pairs 0, 1, 2; group 7) and one plain pair (group 9).
    r_a = torch.tensor([2.0, 2.0, 1.0, 0.0])
    r_b = torch.tensor([1.0, 0.0, 0.0, 3.0])
    mu = torch.ones(4)
    l = [-math.log(sig(d)) for d in (1.0, 2.0, 1.0, -3.0)]
    grouped = bradley_terry_loss(r_a, r_b, mu, group=torch.tensor([7, 7, 7, 9])).item()
    # InstructGPT: the ranking's loss is 1/C(3,2) times the sum of its pairs' losses; then a mean over elements.
    assert grouped == pytest.approx(((l[0] + l[1] + l[2]) / math.comb(3, 2) + l[3]) / 2, rel=1e-6)
    assert bradley_terry_loss(r_a, r_b, mu).item() == pytest.approx(sum(l) / 4, rel=1e-6)
    assert grouped_mean(torch.tensor([1.0, 2.0, 3.0]), None).item() == pytest.approx(2.0)


def comparison(label_id, preferred, a="x", b="y", item_id=None, group=None, labeler="l1", prompt="p"):
    mu = {"a": 1.0, "b": 0.0, "equal": 0.5}.get(preferred)
    return SimpleNamespace(label_id=label_id, item_id=label_id if item_id is None else item_id, labeler=labeler,
                           preferred=preferred, mu_a=mu, a=a, b=b, group=group, prompt=prompt)


def test_ties_and_exclusions():
    comps = [comparison(1, "a", "x", "y"), comparison(2, "equal", "x", "z"), comparison(3, "cant_tell", "y", "z"),
             comparison(4, "skip", "x", "y"), comparison(5, "b", "z", "y")]
    soft = comparisons_to_data(comps, RewardConfig(equal="soft"))
    np.testing.assert_array_equal(soft.mu, [1.0, 0.5, 0.0])
    assert soft.counts == {"a": 1, "equal": 1, "cant_tell": 1, "skip": 1, "b": 1}
    drop = comparisons_to_data(comps, RewardConfig(equal="drop"))
    np.testing.assert_array_equal(drop.mu, [1.0, 0.0])
    # Items are deduplicated: x, y, z.
    assert len(soft.items) == 3 and soft.ia[0] == soft.ia[1]


def test_rankings_share_a_group_unless_disabled():
    comps = [comparison(10, "a", "r0", "r1", item_id=1, group=10), comparison(10, "a", "r0", "r2", item_id=1, group=10),
             comparison(10, "b", "r1", "r2", item_id=1, group=10), comparison(11, "a", "s0", "s1", item_id=2)]
    grouped = comparisons_to_data(comps, RewardConfig())
    assert len(set(grouped.group[:3].tolist())) == 1 and grouped.group[3] != grouped.group[0]
    ungrouped = comparisons_to_data(comps, RewardConfig(group_rankings=False))
    assert len(set(ungrouped.group.tolist())) == 4


def test_heldout_split_keeps_items_and_rankings_whole():
    comps = []
    for item in range(30):
        for labeler in ("l1", "l2"):  # overlap: two labels per item
            comps.append(comparison(len(comps), "a", f"x{item}", f"y{item}", item_id=item, labeler=labeler))
    data = comparisons_to_data(comps, RewardConfig())
    train, held = split_heldout(data, 1 / math.e, seed=0)
    assert not set(data.item_id[train]) & set(data.item_id[held])
    assert held.sum() == 2 * round(30 / math.e)
    with pytest.raises(ValueError, match="at least 2 items"):
        split_heldout(data.subset(data.item_id == 0), 0.3, 0)


def test_labeler_agreement_by_hand():
    comps = [comparison(1, "a", "x", "y", item_id=1, labeler="l1"), comparison(2, "a", "x", "y", item_id=1, labeler="l2"),
             comparison(3, "b", "x", "y", item_id=1, labeler="l3"),      # pairs: 1, 0, 0
             comparison(4, "equal", "u", "v", item_id=2, labeler="l1"), comparison(5, "a", "u", "v", item_id=2, labeler="l2"),
             comparison(6, "a", "s", "t", item_id=3, labeler="l1")]       # no overlap
    data = comparisons_to_data(comps, RewardConfig())
    agreement, overlap = labeler_agreement(data)
    assert agreement == pytest.approx((1 + 0 + 0 + 0.5) / 4)  # WebGPT: equal vs strict counts half
    np.testing.assert_array_equal(overlap, [True] * 5 + [False])


def test_no_usable_labels_and_wrong_kind_errors():
    with pytest.raises(ValueError, match="no usable labels: found 1 'cant_tell', 1 'skip'"):
        comparisons_to_data([comparison(1, "cant_tell"), comparison(2, "skip")], RewardConfig())
    with pytest.raises(ValueError, match="no labels at all"):
        comparisons_to_data([], RewardConfig())
    with pytest.raises(ValueError, match="equal='drop'"):
        comparisons_to_data([comparison(1, "equal")], RewardConfig(equal="drop"))
    with pytest.raises(ValueError, match="clip reward model needs clip pairs"):
        comparisons_to_data([comparison(1, "a")], RewardConfig(), expected_kind="clip")


def test_config_validation():
    with pytest.raises(ValueError, match="equal must be one of"):
        RewardConfig(equal="half")
    with pytest.raises(ValueError, match="members must be an integer >= 1"):
        RewardConfig(members=0)
    with pytest.raises(ValueError, match="heldout_fraction"):
        RewardConfig(heldout_fraction=1.5)
    with pytest.raises(ValueError, match="unknown RewardConfig setting"):
        RewardConfig.from_overrides({"member": 3})
    assert RewardConfig.from_overrides({"members": 5}).members == 5
    assert RewardConfig().heldout_fraction == pytest.approx(1 / math.e)
    assert RewardConfig().reward_std == 0.05


# ------------------------------------------------------------------------------------------------ models

def tiny_clip_ensemble(members=3, seed=0):
    torch.manual_seed(seed)
    return build_ensemble("clip", members, {"width": 0.125, "hidden": 8}, reward_std=0.05, noise_floor=True)


def test_clip_rewards_are_sums_of_step_rewards_and_disagreement_is_member_std():
    ens = tiny_clip_ensemble()
    rng = np.random.default_rng(0)
    clips_a = torch.from_numpy(rng.integers(0, 256, size=(4, 3, 64, 64, 3), dtype=np.uint8))
    clips_b = torch.from_numpy(rng.integers(0, 256, size=(4, 3, 64, 64, 3), dtype=np.uint8))
    steps = ens.step_rewards(clips_a.reshape(-1, 64, 64, 3)).reshape(4, 3)
    assert steps.dtype == torch.float32 and steps.shape == (4, 3)
    np.testing.assert_allclose(ens.clip_rewards(clips_a).numpy(), steps.sum(1).numpy(), rtol=1e-5, atol=1e-6)
    # Member probabilities by hand from each member's raw per-step rewards.
    with torch.no_grad():
        probs = []
        for m in ens.members:
            ra = m(clips_a.reshape(-1, 64, 64, 3)).reshape(4, 3).sum(1)
            rb = m(clips_b.reshape(-1, 64, 64, 3)).reshape(4, 3).sum(1)
            probs.append(0.9 * torch.sigmoid(ra - rb) + 0.05)
        probs = torch.stack(probs).double().numpy()
    np.testing.assert_allclose(ens.disagreement(clips_a, clips_b).numpy(), probs.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ens.prob_a_better(clips_a, clips_b).numpy(), probs.mean(0), rtol=1e-5)
    one = tiny_clip_ensemble(members=1)
    assert torch.all(one.disagreement(clips_a, clips_b) == 0)
    with pytest.raises(ValueError, match="uint8"):
        ens.step_rewards(clips_a.reshape(-1, 64, 64, 3).float())


def test_normalization_to_zero_mean_and_set_std():
    ens = tiny_clip_ensemble()
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, size=(50, 64, 64, 3), dtype=np.uint8))
    ens.set_normalization(ens._raw_chunked(frames))
    normalized = ens.normalize(ens._raw_chunked(frames))
    np.testing.assert_allclose(normalized.mean(1).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(normalized.std(1, correction=0).numpy(), 0.05, rtol=1e-4)
    np.testing.assert_allclose(ens.step_rewards(frames).numpy(), normalized.mean(0).numpy(), rtol=1e-5, atol=1e-7)


def test_clip_model_width_and_bank():
    small, big = ClipRewardModel(width=0.25, hidden=16), ClipRewardModel(width=1.0, hidden=16)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in big.parameters())
    frames = {"e1": np.arange(10)[:, None, None, None] * np.ones((1, 64, 64, 3), np.uint8),
              "e2": 100 + np.arange(5)[:, None, None, None] * np.ones((1, 64, 64, 3), np.uint8)}
    bank = ClipBank.from_refs([("e1", 2, 3), ("e2", 0, 2), ("e1", 6, 2)], lambda ep: frames[ep].astype(np.uint8))
    idx, owner = bank.frame_indices(np.array([0, 1, 2]))
    np.testing.assert_array_equal(bank.frames[idx][:, 0, 0, 0], [2, 3, 4, 100, 101, 6, 7])
    np.testing.assert_array_equal(owner, [0, 0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="past the episode"):
        ClipBank.from_refs([("e2", 4, 3)], lambda ep: frames[ep].astype(np.uint8))


def test_hashed_bag_of_words():
    enc = HashedBagOfWords(dim=2 ** 10)
    x = enc.encode(["a prompt", None], ["Good answer, good", "good answer good"]).to_dense()
    assert x.shape == (2, 2 ** 10)
    np.testing.assert_allclose(x.norm(dim=1).numpy(), 1.0, rtol=1e-6)
    # Lower-cased word tokens: the two responses share every n-gram; the prompt adds its own ("p:") n-grams.
    y = enc.encode([None], ["good answer good"]).to_dense()
    np.testing.assert_allclose(x[1].numpy(), y[0].numpy())
    assert (x[0] != 0).sum() > (x[1] != 0).sum()
    # Stable hashing (not Python's salted hash): a fixed index and sign for a fixed n-gram.
    assert enc._hash("good") == HashedBagOfWords(dim=2 ** 10)._hash("good")
    with pytest.raises(ValueError, match="ngrams"):
        HashedBagOfWords(ngrams=5)


def test_text_model_learns_a_word_preference():
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
    comps = []
    for i in range(160):
        a = " ".join(rng.choice(words, 5)) + (" excellent" if i % 2 else "")
        b = " ".join(rng.choice(words, 5)) + ("" if i % 2 else " excellent")
        comps.append(comparison(i, "a" if i % 2 else "b", a, b, prompt=f"question {i % 7}"))
    cfg = RewardConfig(members=2, epochs=15, lr=0.05, batch_size=16, text_encoder={"name": "hashed_bow", "dim": 4096, "ngrams": 2})
    # A second labeler on every item (overlap 2) who disagrees on every fifth.
    comps += [comparison(1000 + c.label_id, ("b" if c.preferred == "a" else "a") if c.label_id % 5 == 0 else c.preferred,
                         c.a, c.b, item_id=c.item_id, labeler="l2", prompt=c.prompt) for c in comps]
    data = comparisons_to_data(comps, cfg, expected_kind="text")
    history = []
    ens = fit_ensemble(data, cfg, on_epoch=lambda em: history.append(em.metrics))
    assert history[-1]["heldout_accuracy"] > 0.75  # about 0.9 at best: the labelers disagree on 1 item in 5
    train, held = split_heldout(data, cfg.heldout_fraction, cfg.seed)
    agreement = np.mean([data.mu[p] == data.mu[q] for p in np.flatnonzero(held) for q in np.flatnonzero(held)
                         if p < q and data.item_id[p] == data.item_id[q]])
    assert history[-1]["labeler_agreement"] == pytest.approx(agreement)
    # One prediction per item: where the two labels differ exactly one is right, so accuracy <= (1 + agreement) / 2.
    assert 0.75 < history[-1]["heldout_accuracy_overlap"] <= (1 + agreement) / 2 + 1e-9
    r = ens.text_rewards(["q", "q"], ["alpha beta excellent", "alpha beta"])
    assert r[0] > r[1]


# ------------------------------------------------------------------------------------------------ save / load

def test_save_load_roundtrip_and_tampering(tmp_path):
    ens = tiny_clip_ensemble()
    frames = torch.from_numpy(np.random.default_rng(2).integers(0, 256, size=(6, 64, 64, 3), dtype=np.uint8))
    ens.set_normalization(ens._raw_chunked(frames))
    path = save_reward_model(ens, tmp_path / "rm")
    loaded = load_reward_model(path)
    np.testing.assert_allclose(loaded.step_rewards(frames).numpy(), ens.step_rewards(frames).numpy(), rtol=1e-6)
    assert loaded.noise_floor and loaded.kind == "clip" and len(loaded) == 3
    save_reward_model(ens, path)  # overwriting an existing model works

    # Changed weights: the recorded SHA-256 no longer matches.
    weights = path / "weights.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="SHA-256"):
        load_reward_model(path)
    weights.write_bytes(original)

    # An extra tensor, with the checksum recomputed by whoever tampered: refused by name.
    from safetensors.torch import load_file, save_file
    state = load_file(str(weights))
    state["members.0.evil"] = torch.zeros(1)
    save_file(state, str(weights))
    config = json.loads((path / "config.json").read_text())
    import hashlib
    config["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown tensors.*members.0.evil"):
        load_reward_model(path)

    # Unknown keys in the JSON config.
    config["run_this"] = "import os"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown keys \\['run_this'\\]"):
        load_reward_model(path)

    # A pickle in place of the weights is not executed: it is not a safetensors file.
    import pickle
    bad = tmp_path / "bad"
    save_reward_model(ens, bad)
    (bad / "weights.safetensors").write_bytes(pickle.dumps({"x": 1}))
    config = json.loads((bad / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256((bad / "weights.safetensors").read_bytes()).hexdigest()
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_reward_model(bad)
    with pytest.raises(ValueError, match="not a reward model directory"):
        load_reward_model(tmp_path / "missing")


def test_text_model_save_load(tmp_path):
    ens = build_ensemble("text", 2, {"hidden": 4}, reward_std=1.0, noise_floor=False,
                         encoder_spec={"name": "hashed_bow", "dim": 256, "ngrams": 1})
    loaded = load_reward_model(save_reward_model(ens, tmp_path / "text"))
    np.testing.assert_allclose(loaded.text_rewards(["p"], ["some words"]).numpy(),
                               ens.text_rewards(["p"], ["some words"]).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="text reward model"):
        loaded.step_rewards(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------------ campaigns

def test_training_errors_from_campaigns(tmp_path):
    from workbench.preferences.labels import LabelStore

    labels = LabelStore(tmp_path)
    labels.create_campaign("empty", "clip_pair")
    with pytest.raises(ValueError, match="no usable labels: found no labels at all"):
        train_reward_model("empty", tmp_path)
    labels.create_campaign("unsure", "clip_pair")
    clip = {"episode_id": "e", "start": 0, "length": 2}
    ids = labels.add_items("unsure", [{"a": clip, "b": dict(clip, start=1)}] * 3)
    for i, choice in zip(ids, ("cant_tell", "skip", "cant_tell")):
        labels.label_direct("unsure", i, "ann", choice, source="human")
    with pytest.raises(ValueError, match="found 2 'cant_tell', 1 'skip'"):
        train_reward_model("unsure", tmp_path)
    labels.create_campaign("texts", "text_pair")
    [i] = labels.add_items("texts", [{"prompt": "p", "a": "x", "b": "y"}])
    labels.label_direct("texts", i, "ann", "left", source="human")
    with pytest.raises(ValueError, match="text_pair campaign.*clip reward model needs a clip_pair campaign"):
        train_reward_model("texts", tmp_path, RewardConfig(model="clip"))
    from workbench.storage.runs import RunStore
    assert RunStore(tmp_path).list_runs() == []  # nothing was created by the failed attempts


@pytest.mark.slow
def test_clip_reward_model_learns_a_known_reward(tmp_path):
    """Synthetic labels from a known per-step reward (a function of the pixels) -> > 90% held-out accuracy,
    with metrics in the run store, held-out P(A > B) in the prediction store and a loadable model."""
    from workbench.calibration.predictions import PredictionStore
    from workbench.episodes.clips import sample_clip_pairs
    from workbench.episodes.rollouts import RolloutStore
    from workbench.preferences.labels import LabelStore
    from workbench.preferences.synthetic import (
        SyntheticLabeler,
        colour_reward_episodes,
        label_campaign,
    )
    from workbench.storage.runs import RunStore

    ids, frames, true_step_rewards = colour_reward_episodes(tmp_path)
    labels = LabelStore(tmp_path)
    labels.create_campaign("colours", "clip_pair")
    labels.add_items("colours", sample_clip_pairs(RolloutStore(tmp_path).list(), 240, length=4, rng=0))
    assert label_campaign("colours", SyntheticLabeler("gold"), store_root=tmp_path) == 240
    config = RewardConfig(members=2, epochs=8, width=0.25, hidden=32, lr=1e-3, batch_size=32)
    result = train_reward_model("colours", tmp_path, config)
    assert result.metrics["heldout_accuracy"] > 0.9, result.metrics
    runs = RunStore(tmp_path)
    info = runs.get_run(result.run_id)
    assert info.algo == "reward" and info.status == "finished" and info.config["campaign"] == "colours"
    steps, acc = runs.metric_series(result.run_id, "heldout_accuracy")
    np.testing.assert_array_equal(steps, np.arange(1, 9))
    assert len(runs.metric_series(result.run_id, "train_loss")[0]) == 8
    conf, outcome, meta = PredictionStore(tmp_path).load(result.prediction_set)
    assert len(conf) == len(outcome) > 0 and meta["run_id"] == result.run_id
    assert np.all((conf >= 0.05) & (conf <= 0.95))  # the noise floor bounds the predictions
    loaded = load_reward_model(result.model_path)
    r = loaded.step_rewards(torch.from_numpy(frames.reshape(-1, 64, 64, 3))).numpy()
    # The learned per-step reward orders the colours as the true reward does (0 < 1 < 2 < 3).
    means = [r[true_step_rewards.reshape(-1) == v].mean() for v in (0.0, 1.0, 2.0, 3.0)]
    assert np.all(np.diff(means) > 0), means
    # Normalized on the training clips' steps: about zero mean and std 0.05 over all the frames.
    assert abs(r.mean()) < 0.02 and 0.02 < r.std() < 0.08


def test_ranking_campaign_trains_a_text_model_with_grouping(tmp_path):
    from workbench.preferences.labels import LabelStore
    from workbench.preferences.synthetic import SyntheticLabeler, label_campaign

    class WordGold:  # gold score: how many times "good" appears
        kinds = ("ranking",)

        def ranking_scores(self, payloads):
            return [[r.split().count("good") for r in p["responses"]] for p in payloads]

    rng = np.random.default_rng(0)
    filler = ["the", "a", "cat", "dog", "sat", "ran", "mat", "log"]
    labels = LabelStore(tmp_path)
    labels.create_campaign("ranks", "ranking")
    payloads = [{"prompt": f"q{i}", "responses": [" ".join(list(rng.choice(filler, 4)) + ["good"] * k) for k in rng.permutation(4)]}
                for i in range(60)]
    labels.add_items("ranks", payloads)
    assert label_campaign("ranks", SyntheticLabeler("words"), WordGold(), store_root=tmp_path) == 60
    config = RewardConfig(members=1, epochs=20, lr=0.05, batch_size=8, text_encoder={"name": "hashed_bow", "dim": 4096, "ngrams": 1})
    result = train_reward_model("ranks", tmp_path, config)
    assert result.ensemble.kind == "text"
    assert result.num_train_pairs % 6 == 0 and result.num_heldout_pairs % 6 == 0  # whole rankings: C(4, 2) = 6
    assert result.metrics["heldout_accuracy"] > 0.9, result.metrics


def test_cli_reward_train(tmp_path, capsys):
    from workbench.cli.main import main
    from workbench.preferences.labels import LabelStore

    labels = LabelStore(tmp_path)
    labels.create_campaign("tp", "text_pair")
    items = labels.add_items("tp", [{"prompt": "p", "a": f"good {i}", "b": f"bad {i}"} for i in range(12)])
    for i in items:
        labels.label_direct("tp", i, "ann", "left", source="human")
    assert main(["--store", str(tmp_path), "reward", "train", "--campaign", "tp", "--members", "2", "--epochs", "2",
                 "--set", "lr=0.1", "--set", 'text_encoder={"name": "hashed_bow", "dim": 512, "ngrams": 1}']) == 0
    out = capsys.readouterr().out
    assert "reward-tp-" in out and "held-out accuracy" in out
    assert main(["--store", str(tmp_path), "reward", "train", "--campaign", "tp", "--set", "bogus=1"]) == 2
    assert "unknown RewardConfig setting" in capsys.readouterr().err
    assert main(["--store", str(tmp_path), "reward", "train", "--campaign", "nope"]) == 2


def test_warm_start_begins_from_the_given_ensemble(tmp_path):
    from workbench.preferences.labels import LabelStore
    from workbench.preferences.synthetic import SyntheticLabeler, label_campaign

    class WordGold:
        kinds = ("text_pair",)

        def pair_scores(self, payloads):
            return [(p["a"].split().count("good"), p["b"].split().count("good")) for p in payloads]

    rng = np.random.default_rng(1)
    words = ["the", "a", "cat", "dog", "sat", "ran"]
    labels = LabelStore(tmp_path)
    labels.create_campaign("pairs", "text_pair")
    labels.add_items("pairs", [{"prompt": f"q{i}", "a": " ".join(list(rng.choice(words, 3)) + ["good"] * int(k)),
                                "b": " ".join(list(rng.choice(words, 3)) + ["good"] * int(3 - k))}
                               for i, k in enumerate(rng.integers(0, 4, 80))])
    label_campaign("pairs", SyntheticLabeler("words"), WordGold(), store_root=tmp_path)
    encoder = {"name": "hashed_bow", "dim": 4096, "ngrams": 1}
    first = train_reward_model("pairs", tmp_path, RewardConfig(members=1, epochs=20, lr=0.05, batch_size=8,
                                                                 text_encoder=encoder)).ensemble
    assert first.kind == "text"
    tiny_step = RewardConfig(members=1, epochs=1, lr=1e-7, batch_size=8, text_encoder=encoder, seed=5)
    warm = train_reward_model("pairs", tmp_path, tiny_step, init=first)
    cold = train_reward_model("pairs", tmp_path, tiny_step)
    for (name, p_first), p_warm in zip(first.members.named_parameters(), warm.ensemble.members.parameters()):
        torch.testing.assert_close(p_warm, p_first, atol=1e-4, rtol=0, msg=name)  # one tiny step from `first`
    assert warm.metrics["heldout_accuracy"] > cold.metrics["heldout_accuracy"]
    with pytest.raises(ValueError, match="cannot warm-start"):
        train_reward_model("pairs", tmp_path, RewardConfig(members=2, epochs=1, text_encoder=encoder), init=first)
