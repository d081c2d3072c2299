"""Model suggestions for labeling (workbench.preferences.reward.suggest): a saved reward model's predicted
preference and confidence on a pair, and items ordered by the ensemble's disagreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.preferences.reward import build_ensemble, load_reward_model, save_reward_model
from workbench.preferences.reward.suggest import disagreement_scorer, order_by_disagreement, suggest

PAIRS = [{"prompt": "q", "a": "alpha beta", "b": "gamma"}, {"prompt": "q", "a": "delta", "b": "delta epsilon"},
         {"prompt": "r", "a": "zeta", "b": "eta theta iota"}]


@pytest.fixture
def saved_text_model(tmp_path):
    torch.manual_seed(0)
    ens = build_ensemble("text", 3, {"hidden": 0}, reward_std=1.0, noise_floor=True,
                         encoder_spec={"name": "hashed_bow", "dim": 256, "ngrams": 1})
    with torch.no_grad():  # random weights, so the members differ (a fresh model starts at zero)
        for p in ens.members.parameters():
            p.normal_()
    return load_reward_model(save_reward_model(ens, tmp_path / "rm"))


def test_suggestion_is_the_members_mean_bradley_terry_probability(saved_text_model):
    ens = saved_text_model
    out = suggest(ens, PAIRS)
    for pair, s in zip(PAIRS, out):
        with torch.no_grad():  # each member's raw reward difference, through P_e = 0.9 sigma(d) + 0.05
            feats_a, feats_b = ens.encode([pair["prompt"]], [pair["a"]]), ens.encode([pair["prompt"]], [pair["b"]])
            probs = [0.9 / (1 + math.exp(-(float(m(feats_a)[0]) - float(m(feats_b)[0])))) + 0.05 for m in ens.members]
        assert s.prob_a == pytest.approx(np.mean(probs), abs=1e-6)
        assert s.disagreement == pytest.approx(np.std(probs), abs=1e-6)
        assert s.confidence == pytest.approx(max(s.prob_a, 1 - s.prob_a))
        assert s.preferred == ("a" if s.prob_a > 0.5 else "b") and s.disagreement > 0
    with pytest.raises(ValueError, match="pairs"):
        suggest(ens, [{"prompt": "q", "responses": ["x", "y"]}])


def test_order_by_disagreement_puts_the_most_disputed_first(saved_text_model):
    scorer = disagreement_scorer(saved_text_model)
    scores = scorer(PAIRS)
    ordered = order_by_disagreement(PAIRS, scorer, n=2)
    expected = sorted(range(len(PAIRS)), key=lambda i: -scores[i])[:2]
    assert [(p["a"], p["b"]) for p in ordered] == [(PAIRS[i]["a"], PAIRS[i]["b"]) for i in expected]
    assert [p["meta"]["score"] for p in ordered] == pytest.approx([scores[i] for i in expected])
    assert all(p["meta"]["strategy"] == "disagreement" for p in ordered)
