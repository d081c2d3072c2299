"""Selection estimators against brute-force enumeration of every N-subset, and the CPU demo."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from workbench.calibration import verifiers as V


def brute(answers, scores, correct, N, rule, k=None):
    """Average over ALL N-subsets of the credit of one selection rule (plain Python)."""
    M = len(scores)
    label = dict(zip(answers, correct))
    total = 0.0
    subsets = list(itertools.combinations(range(M), N))
    for sub in subsets:
        if rule == "random":
            credit = np.mean([correct[i] for i in sub])
        elif rule in ("top1_random", "top1_index"):
            best = max(scores[i] for i in sub)
            tied = [i for i in sub if scores[i] == best]
            credit = np.mean([correct[i] for i in tied]) if rule == "top1_random" else correct[min(tied)]
        else:
            chosen = sub if k is None else sorted(sub, key=lambda i: -scores[i])[:k]
            votes = defaultdict(float)
            for i in chosen:
                votes[answers[i]] += scores[i] if rule == "weighted" else 1.0
            top = max(votes.values())
            winners = [a for a, v in votes.items() if abs(v - top) <= 1e-12 * max(abs(top), 1.0)]
            credit = sum(label[a] for a in winners) / len(winners)
        total += credit
    return total / len(subsets)


def make_pool(seed, P=4, M=7, tied_scores=True):
    rng = np.random.default_rng(seed)
    A, S, Cc = [], [], []
    for _ in range(P):
        truth = 10
        ans = rng.choice([10, 11, 12, 13], size=M, p=[0.4, 0.3, 0.2, 0.1])
        if tied_scores:
            sc = rng.choice([0.2, 0.5, 0.8], size=M)
        else:
            sc = rng.permutation(np.linspace(0.05, 0.95, M)) + rng.random(M) * 1e-3
        A.append(ans.tolist())
        S.append(sc)
        Cc.append(ans == truth)
    return V.SamplePool.from_arrays(A, S, Cc)


def test_top1_weights():
    M = 9
    for N in range(1, M + 1):
        w = V.top1_weights(M, N)
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        expected = [math.comb(M - 1 - r, N - 1) / math.comb(M, N) for r in range(M)]
        np.testing.assert_allclose(w, expected, rtol=1e-15)
    np.testing.assert_allclose(V.top1_weights(5, 1), np.full(5, 0.2))
    np.testing.assert_array_equal(V.top1_weights(5, 5), [1, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        V.top1_weights(3, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_estimators_match_brute_force(seed):
    pool = make_pool(seed)
    ns = list(range(1, 8))
    rnd = V.random_sample_accuracy(pool, ns)
    top_r = V.top1_accuracy(pool, ns, ties="random")
    top_i = V.top1_accuracy(pool, ns, ties="index")
    maj = V.majority_vote_accuracy(pool, ns, method="enumerate")
    for p in range(pool.n_problems):
        a, s, c = pool.answers[p].tolist(), pool.scores[p].tolist(), pool.correct[p].tolist()
        for j, N in enumerate(ns):
            assert rnd.per_problem[p, j] == pytest.approx(brute(a, s, c, N, "random"), abs=1e-12)
            assert top_r.per_problem[p, j] == pytest.approx(brute(a, s, c, N, "top1_random"), abs=1e-12)
            assert top_i.per_problem[p, j] == pytest.approx(brute(a, s, c, N, "top1_index"), abs=1e-12)
            assert maj.per_problem[p, j] == pytest.approx(brute(a, s, c, N, "majority"), abs=1e-12)
    assert maj.methods == ("enumerate",) * 7


@pytest.mark.parametrize("weights", ["score", "uniform"])
def test_weighted_top_k_vote_matches_brute_force(weights):
    pool = make_pool(3, tied_scores=False)
    ns = list(range(1, 8))
    curve = V.weighted_vote_accuracy(pool, ns, k=3, weights=weights, method="enumerate")
    rule = "weighted" if weights == "score" else "majority"
    for p in range(pool.n_problems):
        a, s, c = pool.answers[p].tolist(), pool.scores[p].tolist(), pool.correct[p].tolist()
        for j, N in enumerate(ns):
            assert curve.per_problem[p, j] == pytest.approx(brute(a, s, c, N, rule, k=3), abs=1e-12)


def test_top_k_vote_is_the_papers_plain_majority_among_the_top_k():
    # GSM8K (arXiv 2110.14168, "Test Time Compute", Figure 7): the verifier's top k vote, one vote each.
    # Here the top 3 of the pool are answer 1 (score 0.9, correct) and answer 2 twice (0.3 each, wrong): the
    # majority picks 2, a score-weighted vote picks 1 (0.9 > 0.6), so the two rules give opposite credit.
    pool = V.SamplePool.from_arrays([[1, 2, 2, 3]], [[0.9, 0.3, 0.3, 0.1]], [[1, 0, 0, 0]])
    curves = V.selection_curves(pool, [4], k=3)
    assert curves["top_k_vote"].mean[0] == 0.0
    assert curves["weighted_top_k"].mean[0] == 1.0
    assert curves["top_k_vote"].params["weights"] == "uniform"
    pool = make_pool(7, tied_scores=False)
    ns = list(range(1, 8))
    paper = V.top_k_vote_accuracy(pool, ns, k=3, method="enumerate")
    for p in range(pool.n_problems):
        a, s, c = pool.answers[p].tolist(), pool.scores[p].tolist(), pool.correct[p].tolist()
        for j, N in enumerate(ns):
            assert paper.per_problem[p, j] == pytest.approx(brute(a, s, c, N, "majority", k=3), abs=1e-12)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        V.top_k_vote_accuracy(pool, ns, k=0)


def test_monte_carlo_agrees_with_enumeration_and_is_seeded():
    pool = make_pool(4, P=3, M=8, tied_scores=False)
    ns = [2, 3, 4, 5]
    exact = V.majority_vote_accuracy(pool, ns, method="enumerate")
    mc = V.majority_vote_accuracy(pool, ns, method="monte_carlo", n_subsets=3000, seed=1)
    assert mc.methods == ("monte_carlo",) * 4
    np.testing.assert_allclose(mc.per_problem, exact.per_problem, atol=0.04)
    again = V.majority_vote_accuracy(pool, ns, method="monte_carlo", n_subsets=3000, seed=1)
    np.testing.assert_array_equal(mc.per_problem, again.per_problem)
    w_exact = V.weighted_vote_accuracy(pool, ns, k=2, method="enumerate")
    w_mc = V.weighted_vote_accuracy(pool, ns, k=2, method="monte_carlo", n_subsets=3000, seed=2)
    np.testing.assert_allclose(w_mc.per_problem, w_exact.per_problem, atol=0.04)
    # auto: enumerate when C(M, N) <= n_subsets, Monte Carlo otherwise
    auto = V.majority_vote_accuracy(pool, [1, 4, 8], n_subsets=60)
    assert auto.methods == ("enumerate", "monte_carlo", "enumerate")


def test_curve_summary_and_standard_errors():
    pool = make_pool(5, P=6)
    curves = V.selection_curves(pool, [1, 3, 7], k=2, n_subsets=50)
    assert set(curves) == {"random", "top1", "majority", "top_k_vote", "weighted_top_k"}
    for c in curves.values():
        np.testing.assert_allclose(c.mean, c.per_problem.mean(axis=0))
        np.testing.assert_allclose(c.stderr, c.per_problem.std(axis=0, ddof=1) / math.sqrt(6))
        assert [r["n"] for r in c.rows()] == [1, 3, 7]
    # N = 1: every rule is one random sample
    for name in ("top1", "majority", "top_k_vote", "weighted_top_k"):
        assert curves[name].mean[0] == pytest.approx(curves["random"].mean[0])


def test_pool_validation():
    with pytest.raises(ValueError, match="labeled both correct and incorrect"):
        V.SamplePool.from_arrays([[1, 1]], [[0.1, 0.2]], [[True, False]])
    with pytest.raises(ValueError, match="equal length"):
        V.SamplePool.from_arrays([[1, 2]], [[0.1]], [[True, False]])
    with pytest.raises(ValueError, match="finite"):
        V.SamplePool.from_arrays([[1]], [[np.nan]], [[True]])
    pool = V.SamplePool.from_arrays([[1, 2, 3], [4, 5]], [[0.1, 0.2, 0.3], [-1.0, 2.0]], [[1, 0, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"in \[1, 2\]"):
        V.top1_accuracy(pool, [3])
    with pytest.raises(ValueError, match="non-negative"):
        V.weighted_vote_accuracy(pool, [2])
    assert V.weighted_vote_accuracy(pool, [2], weights="uniform").mean.shape == (1,)
    recs = [{"problem_id": "a", "answer": 3, "score": 0.9, "correct": True},
            {"problem_id": "b", "answer": 1, "score": 0.2, "correct": False},
            {"problem_id": "a", "answer": 4, "score": 0.1, "correct": False}]
    grouped = V.SamplePool.from_records(recs)
    assert grouped.problem_ids == ("a", "b") and grouped.sizes.tolist() == [2, 1]
    with pytest.raises(ValueError, match="lacks"):
        V.SamplePool.from_records([{"problem_id": "a", "answer": 1}])


def test_demo_end_to_end():
    r = V.demo(seed=0, n_train_problems=200, n_test_problems=150, samples_per_problem=16, ns=(1, 4, 16),
               n_subsets=100)
    c = r.curves
    assert 0.4 < r.generator_accuracy < 0.9 and r.verifier_test_auc > 0.8
    assert c["random"].mean[0] == pytest.approx(r.generator_accuracy)
    assert c["top1"].mean[-1] > c["random"].mean[-1] + 0.1
    assert c["majority"].mean[-1] > c["random"].mean[-1] + 0.1
    assert c["weighted_top_k"].mean[-1] >= c["top1"].mean[-1]
    again = V.demo(seed=0, n_train_problems=200, n_test_problems=150, samples_per_problem=16, ns=(1, 4, 16),
                   n_subsets=100)
    np.testing.assert_array_equal(again.curves["majority"].per_problem, c["majority"].per_problem)
