"""Clip-pair sampling (workbench.episodes.clips): valid segments, uniform over segments, no repeated pairs,
disagreement selection = the top-scored candidates, and clips read from a real RolloutStore."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from workbench.episodes.clips import (
    DEFAULT_CLIP_LENGTH,
    check_clip_ref,
    clip_frames,
    ensemble_disagreement_scorer,
    sample_clip_pairs,
)
from workbench.episodes.rollouts import Episode, RolloutStore


def fake_episodes(lengths: dict[str, int]) -> list[dict]:
    return [{"id": ident, "length": n} for ident, n in lengths.items()]


def segment_key(clip: dict) -> tuple[str, int]:
    return clip["episode_id"], clip["start"]


def test_uniform_pairs_are_valid_distinct_and_never_repeated():
    lengths = {"short": 10, "mid": 30, "long": 60}
    pairs = sample_clip_pairs(fake_episodes(lengths), 200, rng=0)
    assert len(pairs) == 200
    seen = set()
    for pair in pairs:
        assert set(pair) == {"a", "b", "meta"} and pair["meta"] == {"strategy": "uniform"}
        for side in ("a", "b"):
            clip = pair[side]
            assert clip["length"] == DEFAULT_CLIP_LENGTH
            assert clip["episode_id"] != "short"  # too short for a 25-step clip
            assert 0 <= clip["start"] <= lengths[clip["episode_id"]] - DEFAULT_CLIP_LENGTH
        a, b = segment_key(pair["a"]), segment_key(pair["b"])
        assert a != b
        key = frozenset((a, b))
        assert key not in seen
        seen.add(key)


def test_uniform_clips_are_uniform_over_all_segments():
    # 6 segments in "mid" (30 - 25 + 1) and 36 in "long": a chi-square test against the uniform
    # distribution over the 42 (episode, start) segments (per episode AND per start).
    pairs = sample_clip_pairs(fake_episodes({"mid": 30, "long": 60}), 600, rng=np.random.default_rng(1))
    counts = Counter(segment_key(p[side]) for p in pairs for side in ("a", "b"))
    segments = [("mid", s) for s in range(6)] + [("long", s) for s in range(36)]
    observed = np.array([counts[s] for s in segments])
    assert observed.sum() == 1200 and set(counts) <= set(segments)
    assert stats.chisquare(observed).pvalue > 1e-3
    # episode weights: 6/42 vs 36/42 (not 1/2 each)
    mid = observed[:6].sum() / 1200
    assert abs(mid - 6 / 42) < 0.04


def test_sampling_is_reproducible_with_a_seed():
    eps = fake_episodes({"x": 40, "y": 33})
    assert sample_clip_pairs(eps, 20, rng=7) == sample_clip_pairs(eps, 20, rng=7)
    assert sample_clip_pairs(eps, 20, rng=7) != sample_clip_pairs(eps, 20, rng=8)


def test_every_distinct_pair_can_be_drawn():
    # 2 episodes x 2 segments = 4 segments -> C(4, 2) = 6 distinct pairs: asking for all 6 gives each once.
    pairs = sample_clip_pairs(fake_episodes({"x": 4, "y": 4}), 6, length=3, rng=0)
    keys = {frozenset((segment_key(p["a"]), segment_key(p["b"]))) for p in pairs}
    assert len(keys) == 6
    with pytest.raises(ValueError, match="6 distinct pairs"):
        sample_clip_pairs(fake_episodes({"x": 4, "y": 4}), 7, length=3, rng=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_pairs": 0}, "n_pairs"),
    ({"length": 0}, "length"),
    ({"strategy": "best"}, "strategy"),
    ({"strategy": "disagreement"}, "scorer"),
    ({"scorer": lambda p: [0.0] * len(p)}, "disagreement"),
    ({"length": 100}, "longest has 60"),
])
def test_bad_arguments_are_refused(kwargs, match):
    args = {"n_pairs": 3, **kwargs}
    n = args.pop("n_pairs")
    with pytest.raises(ValueError, match=match):
        sample_clip_pairs(fake_episodes({"x": 60}), n, **args)


def test_no_episodes_and_unsaved_episodes_are_refused():
    with pytest.raises(ValueError, match="no episodes"):
        sample_clip_pairs([], 1)
    with pytest.raises(ValueError, match="id"):
        sample_clip_pairs([{"id": None, "length": 40}], 1)


def test_disagreement_keeps_the_top_scored_candidates():
    seen: list[list[dict]] = []

    def scorer(payloads):
        seen.append(payloads)
        # a deterministic score per pair: distance between the starts (brute-force reference below)
        return [abs(p["a"]["start"] - p["b"]["start"]) + 0.001 * i for i, p in enumerate(payloads)]

    pairs = sample_clip_pairs(fake_episodes({"x": 80, "y": 70}), 5, rng=3, strategy="disagreement",
                              scorer=scorer, candidates=40)
    [pool] = seen
    assert len(pool) == 40
    scores = scorer(pool)
    expected = sorted(range(40), key=lambda i: -scores[i])[:5]
    assert [(p["a"], p["b"]) for p in pairs] == [(pool[i]["a"], pool[i]["b"]) for i in expected]
    assert [p["meta"]["score"] for p in pairs] == [scores[i] for i in expected]
    assert all(p["meta"]["strategy"] == "disagreement" and p["meta"]["candidates"] == 40 for p in pairs)


def test_disagreement_checks_the_scores():
    eps = fake_episodes({"x": 80})
    with pytest.raises(ValueError, match="2 scores for 10"):
        sample_clip_pairs(eps, 2, rng=0, strategy="disagreement", scorer=lambda p: [1.0, 2.0], candidates=10)
    with pytest.raises(ValueError, match="NaN"):
        sample_clip_pairs(eps, 2, rng=0, strategy="disagreement", scorer=lambda p: [float("nan")] * len(p),
                          candidates=10)
    with pytest.raises(ValueError, match="candidates"):
        sample_clip_pairs(eps, 5, rng=0, strategy="disagreement", scorer=lambda p: [0.0] * len(p), candidates=2)


def make_episode(length: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        frames=rng.integers(0, 256, size=(length, 64, 64, 3), dtype=np.uint8),
        actions=np.zeros(length, np.int64), probs=np.full((length, 15), 1 / 15, np.float32),
        values=np.full(length, np.nan, np.float32), rewards=np.zeros(length, np.float32),
        dones=np.arange(length) == length - 1, env="colour_cue", level_seed=None, levels="train",
        distribution_mode="easy", policy="random")


def test_clips_come_from_a_real_rollout_store_and_the_ensemble_scorer_matches_a_loop(tmp_path):
    import torch

    store = RolloutStore(tmp_path)
    episodes = {}
    for seed, length in enumerate((30, 40)):
        ep = make_episode(length, seed)
        episodes[store.save(ep)] = ep
    pairs = sample_clip_pairs(store.list(), 8, length=10, rng=0)
    for pair in pairs:
        for side in ("a", "b"):
            ref = pair[side]
            frames = clip_frames(store.load(ref["episode_id"], hires=False), ref)
            expected = episodes[ref["episode_id"]].frames[ref["start"]:ref["start"] + 10]
            np.testing.assert_array_equal(frames, expected)

    class MeanBrightness:  # a stand-in ensemble: |mean(a) - mean(b)| per pair, computed in torch
        def disagreement(self, clips_a, clips_b):
            assert clips_a.dtype == torch.uint8 and clips_a.shape[1:] == (10, 64, 64, 3)
            return (clips_a.double().mean(dim=(1, 2, 3, 4)) - clips_b.double().mean(dim=(1, 2, 3, 4))).abs()

    scores = ensemble_disagreement_scorer(MeanBrightness(), store, batch_size=3)(pairs)
    reference = []
    for pair in pairs:  # plain loop in numpy
        means = [episodes[pair[s]["episode_id"]].frames[pair[s]["start"]:pair[s]["start"] + 10].astype(np.float64).mean()
                 for s in ("a", "b")]
        reference.append(abs(means[0] - means[1]))
    np.testing.assert_allclose(scores, reference, rtol=1e-5)


def test_clip_frames_uses_the_hires_render_when_there_is_one():
    class Hires:
        def __len__(self):
            return 12

        def frame(self, t):
            return np.full((512, 512, 3), t, np.uint8)

    ep = make_episode(12, 0)
    ep.hires = Hires()
    ref = {"episode_id": "e", "start": 2, "length": 5}
    assert clip_frames(ep, ref).shape == (5, 512, 512, 3)
    assert [int(f[0, 0, 0]) for f in clip_frames(ep, ref)] == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(clip_frames(ep, ref, hires=False), ep.frames[2:7])
    with pytest.raises(ValueError, match="past the end"):
        clip_frames(ep, {"episode_id": "e", "start": 10, "length": 5})
    with pytest.raises(ValueError, match="start"):
        check_clip_ref({"episode_id": "e", "start": -1, "length": 5})
