"""Tests of workbench.preferences.agreement against hand-computed fixtures, published examples and sklearn."""

from __future__ import annotations

import math
import random
from itertools import combinations

import numpy as np
import pytest

from workbench.preferences.agreement import (
    agreement_report,
    campaign_agreement,
    campaign_records,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_records,
    half_credit,
    majority_agreement,
    pairwise_agreement,
)
from workbench.preferences.labels import LabelStore

# Hand-computed fixture (worked out on paper, see the comments):
#   u1: A a, B a, C equal   pairs AB 1, AC 0.5, BC 0.5
#   u2: A a, B b            pair  AB 0
#   u3: A equal, C equal    pair  AC 1
#   u4: B b, C a            pair  BC 0
#   u5: A b                 no pair
FIXTURE = [("u1", "A", "a"), ("u1", "B", "a"), ("u1", "C", "equal"), ("u2", "A", "a"), ("u2", "B", "b"),
           ("u3", "A", "equal"), ("u3", "C", "equal"), ("u4", "B", "b"), ("u4", "C", "a"), ("u5", "A", "b")]


def test_half_credit_rule():
    assert half_credit("a", "a") == 1 and half_credit("equal", "equal") == 1
    assert half_credit("a", "equal") == 0.5 and half_credit("equal", "b") == 0.5
    assert half_credit("a", "b") == 0


def test_pairwise_agreement_hand_computed():
    res = pairwise_agreement(FIXTURE)
    assert res.n_pairs == 6
    assert res.overall == pytest.approx(3 / 6)  # (1 + .5 + .5 + 0 + 1 + 0) / 6
    assert res.by_labeler == pytest.approx({"A": 2.5 / 4, "B": 1.5 / 4, "C": 2 / 4})
    assert res.pairs_by_labeler == {"A": 4, "B": 4, "C": 4}
    assert res.by_labeler_pair == {("A", "B"): (0.5, 2), ("A", "C"): (0.75, 2), ("B", "C"): (0.25, 2)}


def test_pairwise_agreement_is_not_exact_match():
    # the bug a labeling tool once shipped: treating equal-vs-a as disagreement (or as agreement)
    res = pairwise_agreement([("u", "A", "a"), ("u", "B", "equal")])
    assert res.overall == 0.5
    assert math.isnan(pairwise_agreement([("u", "A", "a")]).overall)


def test_majority_agreement_leave_one_out_hand_computed():
    res = majority_agreement(FIXTURE)
    # u1: A's others {a, equal} tie -> out; B likewise; C's others {a, a} -> a vs C's equal = 0.5
    # u2: A vs b = 0, B vs a = 0; u3: A vs equal = 1, C vs equal = 1; u4: B vs a = 0, C vs b = 0
    assert res == {"A": (0.5, 2), "B": (0.0, 2), "C": (pytest.approx(1.5 / 3), 3)}
    rep = agreement_report(FIXTURE)
    assert rep.majority_overall == pytest.approx(2.5 / 7)
    assert rep.labelers == ["A", "B", "C"] and rep.n_units == 5 and rep.n_labels == 10


def test_cohen_kappa_textbook_example():
    # Wikipedia "Cohen's kappa", worked example: 50 grant proposals, two readers, yes/no:
    # both yes 20, A yes B no 5, A no B yes 10, both no 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # the same page's two further examples (100 items): kappa = 0.06 / 0.46 and 0.14 / 0.54
    a = ["y"] * 45 + ["y"] * 15 + ["n"] * 25 + ["n"] * 15
    b = ["y"] * 45 + ["n"] * 15 + ["y"] * 25 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx((0.60 - 0.54) / 0.46)
    a = ["y"] * 25 + ["y"] * 35 + ["n"] * 5 + ["n"] * 35
    b = ["y"] * 25 + ["n"] * 35 + ["y"] * 5 + ["n"] * 35
    assert cohen_kappa(a, b) == pytest.approx((0.60 - 0.46) / 0.54)


def test_cohen_kappa_matches_sklearn():
    from sklearn.metrics import cohen_kappa_score

    rng = random.Random(0)
    for trial in range(30):
        n = rng.randint(2, 60)
        cats = ["a", "b", "equal"][: rng.randint(2, 3)]
        r1 = [rng.choice(cats) for _ in range(n)]
        # correlated second rater: copies the first with some probability
        r2 = [x if rng.random() < rng.random() else rng.choice(cats) for x in r1]
        if len(set(r1) | set(r2)) < 2:
            continue
        ours, ref = cohen_kappa(r1, r2), cohen_kappa_score(r1, r2)
        if math.isnan(ref):
            assert math.isnan(ours)
        else:
            assert ours == pytest.approx(ref, abs=1e-12), (trial, r1, r2)
    assert cohen_kappa(["a"] * 5, ["a"] * 5) != cohen_kappa(["a"] * 5, ["a"] * 5)  # NaN: undefined
    with pytest.raises(ValueError, match="same units"):
        cohen_kappa(["a"], ["a", "b"])


# Fleiss (1971) / Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories.
WIKI_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_kappa_published_example():
    assert fleiss_kappa(WIKI_TABLE) == pytest.approx(0.210, abs=5e-4)
    # the page's intermediate values: p_j and P_2 = 0.253, P_bar = 0.378, P_e = 0.213
    n = 14
    p_j = WIKI_TABLE.sum(0) / WIKI_TABLE.sum()
    assert p_j == pytest.approx([0.143, 0.200, 0.279, 0.150, 0.229], abs=5e-4)
    assert ((WIKI_TABLE[1] ** 2).sum() - n) / (n * (n - 1)) == pytest.approx(0.253, abs=5e-4)
    # the same from records (one record per rating)
    records = [(s, f"r{k}", c) for s, row in enumerate(WIKI_TABLE) for c, count in enumerate(row)
               for k in range(sum(row[:c]), sum(row[:c]) + count)]
    res = fleiss_kappa_from_records(records)
    assert (res.n_raters, res.units_used, res.units_dropped) == (14, 10, 0)
    assert res.kappa == pytest.approx(fleiss_kappa(WIKI_TABLE), abs=1e-12)


def test_fleiss_kappa_against_brute_force_pair_counting():
    # P_i is the fraction of agreeing rater pairs on unit i: count them pair by pair.
    rng = np.random.default_rng(1)
    for _ in range(20):
        n, k, N = rng.integers(2, 7), rng.integers(2, 5), rng.integers(1, 15)
        ratings = rng.integers(0, k, size=(N, n))
        table = np.stack([np.bincount(r, minlength=k) for r in ratings])
        p_bar = np.mean([np.mean([r[x] == r[y] for x, y in combinations(range(n), 2)]) for r in ratings])
        p_e = sum((np.sum(ratings == j) / (N * n)) ** 2 for j in range(k))
        if p_e == 1:
            continue
        assert fleiss_kappa(table) == pytest.approx((p_bar - p_e) / (1 - p_e), abs=1e-12)


def test_fleiss_kappa_matches_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

    rng = np.random.default_rng(11)
    for n_units, n_raters, n_categories in ((5, 2, 2), (30, 3, 3), (200, 7, 5)):
        probs = rng.dirichlet(np.ones(n_categories), size=n_units)  # units differ, so kappa is not ~0
        table = np.array([rng.multinomial(n_raters, p) for p in probs])
        assert fleiss_kappa(table) == pytest.approx(statsmodels_fleiss_kappa(table, method="fleiss"), abs=1e-12)
    assert fleiss_kappa(WIKI_TABLE) == pytest.approx(statsmodels_fleiss_kappa(np.array(WIKI_TABLE)), abs=1e-12)


def test_fleiss_kappa_drops_units_with_another_number_of_ratings():
    records = []
    for u, answers in enumerate([["a", "a", "b"], ["b", "b", "b"], ["a", "b", "equal"], ["a", "a", "a"]]):
        records += [(u, f"L{i}", x) for i, x in enumerate(answers)]
    records += [("two", "L0", "a"), ("two", "L1", "b"), ("one", "L0", "a")]
    res = fleiss_kappa_from_records(records, categories=("a", "b", "equal"))
    assert (res.n_raters, res.units_used, res.units_dropped) == (3, 4, 2)
    table = [[2, 1, 0], [0, 3, 0], [1, 1, 1], [3, 0, 0]]
    assert res.kappa == pytest.approx(fleiss_kappa(table))
    # hand computation: P_i = [1/3, 1, 0, 1], P_bar = 7/12; p = [6/12, 5/12, 1/12], P_e = 62/144
    assert res.kappa == pytest.approx((7 / 12 - 62 / 144) / (1 - 62 / 144))
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[2, 1], [1, 1]])
    # as many units with 2 ratings as with 3: the larger count is used
    tie = [(u, f"L{i}", x) for u, answers in enumerate([["a", "b"], ["a", "a"], ["a", "a", "b"], ["b", "b", "b"]])
           for i, x in enumerate(answers)]
    res = fleiss_kappa_from_records(tie)
    assert (res.n_raters, res.units_used, res.units_dropped) == (3, 2, 2)
    assert res.kappa == pytest.approx(fleiss_kappa([[2, 1], [0, 3]]))


def test_report_cohen_by_labeler_is_weighted_mean():
    recs = []
    rng = random.Random(3)
    for u in range(40):
        truth = rng.choice("ab")
        for lab, noise in (("A", 0.1), ("B", 0.3), ("C", 0.5)):
            if lab == "C" and u % 2:
                continue  # C labels half the units
            recs.append((u, lab, truth if rng.random() > noise else rng.choice(["a", "b", "equal"])))
    rep = agreement_report(recs)
    for (l1, l2), (kappa, n) in rep.cohen_by_pair.items():
        a1 = {u: x for u, lab, x in recs if lab == l1}
        a2 = {u: x for u, lab, x in recs if lab == l2}
        shared = sorted(set(a1) & set(a2))
        assert n == len(shared)
        assert kappa == pytest.approx(cohen_kappa([a1[u] for u in shared], [a2[u] for u in shared]))
    (kab, nab), (kac, nac) = rep.cohen_by_pair[("A", "B")], rep.cohen_by_pair[("A", "C")]
    assert rep.cohen_by_labeler["A"] == pytest.approx((kab * nab + kac * nac) / (nab + nac))
    assert "pairwise agreement" in rep.summary()


def test_campaign_agreement_uses_canonical_answers(tmp_path):
    store = LabelStore(tmp_path)
    store.create_campaign("c", "text_pair", overlap=3)
    units = ["u1", "u2", "u3", "u4", "u5"]
    store.add_items("c", [{"prompt": u, "a": f"a-{u}", "b": f"b-{u}"} for u in units])  # item ids 1..5
    wanted = {(unit, labeler): answer for unit, labeler, answer in FIXTURE}
    n_swapped = 0
    for labeler in ("A", "B", "C"):
        # each labeler walks the queue and answers the FIXTURE's canonical preference, translated into the
        # order they were shown; items the FIXTURE has no answer for are skipped (left out of agreement)
        while (a := store.next_item("c", labeler)) is not None:
            answer = wanted.get((a.payload["prompt"], labeler))
            n_swapped += a.swapped
            shown = {"a": "right" if a.swapped else "left", "b": "left" if a.swapped else "right",
                     "equal": "equal", None: "skip"}
            store.submit(a.id, labeler, shown[answer])
    assert n_swapped > 0  # (15 fair coins: all unswapped has probability 3e-5)
    store.label_direct("c", 1, "D", "cant_tell", source="human")
    records, excluded = campaign_records(store, "c")
    assert sorted(records) == sorted((units.index(u) + 1, lab, x) for u, lab, x in FIXTURE)
    assert excluded == {"cant_tell": 1, "skip": 5}
    rep = campaign_agreement(store, "c")
    assert rep.pairwise.overall == pytest.approx(0.5)
    assert rep.majority_by_labeler["C"] == (pytest.approx(0.5), 3)
    assert rep.excluded == {"cant_tell": 1, "skip": 5}


def test_campaign_agreement_on_rankings_expands_pairs(tmp_path):
    store = LabelStore(tmp_path)
    store.create_campaign("r", "ranking", overlap=2)
    (item,) = store.add_items("r", [{"prompt": "q", "responses": ["w", "x", "y", "z"]}])
    store.label_direct("r", item, "A", None, ranking=[0, 1, 2, 3], source="human")
    store.label_direct("r", item, "B", None, ranking=[1, 0, 2, 3], source="human")  # one of 6 pairs flipped
    rep = campaign_agreement(store, "r")
    assert rep.n_units == 6 and rep.pairwise.n_pairs == 6
    assert rep.pairwise.overall == pytest.approx(5 / 6)
