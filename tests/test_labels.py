"""Tests of workbench.preferences.labels: campaigns, the assignment queue, labels, rankings, export/import, the CLI."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest

from workbench.preferences.labels import (
    GRADED_SCALE,
    SCHEMA_VERSION,
    Assignment,
    AssignmentExpiredError,
    Campaign,
    Comparison,
    LabelStore,
    Ranking,
    UnknownCampaignError,
    read_items_jsonl,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "store")
    yield s
    s.close()


def text_items(n, prefix=""):
    return [{"prompt": f"{prefix}p{i}", "a": f"{prefix}A{i}", "b": f"{prefix}B{i}", "meta": {"i": i}} for i in range(n)]


def clip(ep, start=0, length=25):
    return {"episode_id": ep, "start": start, "length": length}


def live_rows(store, sql, params=()):
    conn = sqlite3.connect(store.db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def assert_queue_counters_consistent(store):
    """items.queue_labels / items.full agree with the labels table (what next_item relies on)."""
    bad = live_rows(store, """
        SELECT i.id FROM items i JOIN campaigns c ON c.name = i.campaign
        WHERE i.queue_labels != (SELECT COUNT(*) FROM labels l WHERE l.item_id = i.id AND l.origin = 'queue'
                                 AND l.undone_at IS NULL) OR i.full != (i.queue_labels >= c.overlap)""")
    assert bad == []


# ---- campaigns and items -------------------------------------------------------------------------


def test_campaign_round_trip_and_schema(store, tmp_path):
    camp = store.create_campaign("c", "text_pair", overlap=3, guidelines_md="# Be *kind*", graded_scale=True,
                                 flags=("hallucination", "unsafe"), assignment_timeout_s=30, meta={"owner": "me"})
    assert isinstance(camp, Campaign)
    # A second store object (another process would do the same) reads what the first wrote.
    other = LabelStore(tmp_path / "store")
    assert other.get_campaign("c") == camp
    assert [c.name for c in other.list_campaigns()] == ["c"]
    assert (store.root / "labels.sqlite").exists()
    assert live_rows(store, "PRAGMA journal_mode")[0][0] == "wal"
    assert live_rows(store, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    with pytest.raises(ValueError, match="already exists"):
        store.create_campaign("c", "text_pair")
    with pytest.raises(UnknownCampaignError, match="unknown campaign 'nope'.*'c'"):
        store.get_campaign("nope")


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="pairs"), "unknown campaign kind 'pairs'; valid kinds: clip_pair, text_pair, ranking"),
    (dict(overlap=0), "overlap must be an integer >= 1"),
    (dict(overlap=1.5), "overlap must be an integer >= 1"),
    (dict(assignment_timeout_s=0), "assignment_timeout_s must be a positive"),
    (dict(flags="unsafe"), "flags must be a list"),
    (dict(flags=("x", "x")), "distinct"),
    (dict(kind="ranking", graded_scale=True), "graded scale applies to pair"),
    (dict(meta={"f": object()}), "JSON-serialisable"),
])
def test_campaign_validation(store, kwargs, match):
    kwargs = {"kind": "text_pair", **kwargs}
    with pytest.raises(ValueError, match=match):
        store.create_campaign("c", **kwargs)
    assert store.list_campaigns() == []


@pytest.mark.parametrize("kind, payload, match", [
    ("clip_pair", {"a": clip("e1"), "b": {"episode_id": 3, "start": 0, "length": 5}},
     r"item 1\.b\.episode_id must be a non-empty string"),
    ("clip_pair", {"a": clip("e1"), "b": clip("e2", start=-1)}, r"item 1\.b\.start must be an integer >= 0, got -1"),
    ("clip_pair", {"a": clip("e1"), "b": clip("e2", length=0)}, r"item 1\.b\.length must be an integer >= 1, got 0"),
    ("clip_pair", {"a": clip("e1"), "b": {**clip("e2"), "start": True}}, r"item 1\.b\.start must be an integer"),
    ("clip_pair", {"a": clip("e1"), "b": {**clip("e2"), "fps": 15}}, r"item 1\.b has unknown keys \['fps'\]"),
    ("text_pair", {"prompt": "p", "a": "x", "b": 3}, r"item 1\.b must be a string"),
    ("text_pair", {"prompt": "p", "a": "x"}, r"item 1 is missing \['b'\]"),
    ("text_pair", {"prompt": "p", "a": "x", "b": "y", "response_c": "z"}, r"unknown keys \['response_c'\]"),
    ("text_pair", {"prompt": "p", "a": "x", "b": "y", "meta": [1]}, r"item 1\.meta must be a JSON object"),
    ("ranking", {"prompt": "p", "responses": ["only one"]}, r"2 to 9 strings .* got 1 responses"),
    ("ranking", {"prompt": "p", "responses": [str(i) for i in range(10)]}, r"got 10 responses"),
    ("ranking", {"prompt": "p", "responses": ["x", None]}, r"item 1\.responses\[1\] must be a string"),
])
def test_add_items_validates_every_payload_all_or_nothing(store, kind, payload, match):
    store.create_campaign("c", kind)
    good = {"clip_pair": {"a": clip("e1"), "b": clip("e2")}, "text_pair": {"prompt": "p", "a": "x", "b": "y"},
            "ranking": {"prompt": "p", "responses": ["x", "y", "z", "w"]}}[kind]
    with pytest.raises(ValueError, match=match):
        store.add_items("c", [good, payload])
    assert store.items("c") == []  # the good first item was not added either
    assert store.add_items("c", [good]) == [1]
    assert store.items("c")[0][1] == {**good, "meta": {}}


def test_read_items_jsonl_names_the_line(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"prompt": "p", "a": "x", "b": "y"}\n\n{"prompt": "p", "a": "x", "b": 1}\n')
    with pytest.raises(ValueError, match=r"line 3: item\.b must be a string"):
        read_items_jsonl(path, "text_pair")
    path.write_text('{"prompt": "p", "a": "x", "b": "y"}\n{"prompt": \n')
    with pytest.raises(ValueError, match=r"line 2: not valid JSON"):
        read_items_jsonl(path, "text_pair")


# ---- the queue -------------------------------------------------------------------------------------


def test_overlap_and_never_twice_to_one_labeler(store):
    store.create_campaign("c", "text_pair", overlap=2)
    store.add_items("c", text_items(3))
    seen = {}
    for labeler in ("u1", "u2", "u3"):
        while (a := store.next_item("c", labeler)) is not None:
            assert isinstance(a, Assignment) and a.labeler == labeler
            store.submit(a.id, labeler, "left")
            seen.setdefault(a.item_id, []).append(labeler)
    # Items are handed out in order; u1 and u2 fill every item, u3 gets nothing.
    assert seen == {1: ["u1", "u2"], 2: ["u1", "u2"], 3: ["u1", "u2"]}
    assert store.progress("c") == {"labeled": 6, "assigned": 0, "items": 3, "target": 6}
    assert store.progress("c", "u3")["available"] == 0
    assert_queue_counters_consistent(store)
    assert live_rows(store, "SELECT COUNT(*) FROM items WHERE full = 1")[0][0] == 3


def test_open_assignment_holds_the_slot_and_is_resumed(store):
    store.create_campaign("c", "text_pair", overlap=1)
    store.add_items("c", text_items(2))
    a1 = store.next_item("c", "u1")
    again = store.next_item("c", "u1")  # a reloaded page gets the same assignment, same order
    assert (again.id, again.item_id, again.swapped, again.display_order) == \
           (a1.id, a1.item_id, a1.swapped, a1.display_order)
    b = store.next_item("c", "u2")
    assert b.item_id != a1.item_id  # the held item is not handed to u2
    assert store.next_item("c", "u3") is None
    assert store.progress("c") == {"labeled": 0, "assigned": 2, "items": 2, "target": 2}
    assert store.progress("c", "u1")["assigned"] == 1


def test_timed_out_assignment_returns_to_the_queue(store):
    store.create_campaign("c", "text_pair", overlap=1, assignment_timeout_s=0.2)
    store.add_items("c", text_items(1))
    slow = store.next_item("c", "slow")
    assert store.next_item("c", "fast") is None  # the slot is held
    time.sleep(0.3)
    fast = store.next_item("c", "fast")
    assert fast is not None and fast.item_id == slow.item_id  # reclaimed
    label = store.submit(fast.id, "fast", "right")
    # The slow labeler's late answer would exceed the overlap: refused, nothing stored.
    with pytest.raises(AssignmentExpiredError, match="went to another labeler"):
        store.submit(slow.id, "slow", "left")
    assert [lab.id for lab in store.labels("c")] == [label]
    with pytest.raises(AssignmentExpiredError):  # and it stays expired
        store.submit(slow.id, "slow", "left")
    assert store.next_item("c", "slow") is None


def test_late_submit_is_kept_while_the_slot_is_free(store):
    store.create_campaign("c", "text_pair", overlap=1, assignment_timeout_s=0.1)
    store.add_items("c", text_items(1))
    a = store.next_item("c", "slow")
    time.sleep(0.2)
    label_id = store.submit(a.id, "slow", "left")  # nobody took the slot: the answer is kept
    assert store.labels("c")[0].id == label_id
    assert store.labels("c")[0].seconds >= 0.2


def test_stale_own_assignment_is_resumed_when_free(store):
    store.create_campaign("c", "text_pair", overlap=1, assignment_timeout_s=0.1)
    store.add_items("c", text_items(2))
    a = store.next_item("c", "u1")
    time.sleep(0.2)
    b = store.next_item("c", "u1")
    assert b.id == a.id and b.started_at > a.started_at  # restarted clock, same item and order
    assert b.display_order == a.display_order


def test_display_order_is_random_and_undone_in_preferred(store):
    store.create_campaign("c", "text_pair", overlap=1, graded_scale=True)
    store.add_items("c", text_items(60))
    swapped = []
    for i in range(60):
        a = store.next_item("c", f"u{i}")
        swapped.append(a.swapped)
        assert a.display_order == ([1, 0] if a.swapped else [0, 1])
        left, right = a.shown()
        assert (left, right) == ((a.payload["b"], a.payload["a"]) if a.swapped else (a.payload["a"], a.payload["b"]))
        store.submit(a.id, f"u{i}", "left", scale=-2)  # "left better" as shown
    assert 10 < sum(swapped) < 50  # both orders occur (P(fail) < 1e-5 for a fair coin)
    for lab, was_swapped in zip(store.labels("c"), swapped):
        assert lab.choice == "left" and lab.swapped == was_swapped and lab.scale_shown == -2
        # canonical: the left item was "b" when swapped
        assert lab.preferred == ("b" if was_swapped else "a")
        assert lab.scale == (2 if was_swapped else -2)
        chosen, rejected = lab.chosen_rejected()
        assert chosen == (lab.payload["b"] if was_swapped else lab.payload["a"])
    comps = store.comparisons("c")
    assert all(isinstance(c, Comparison) for c in comps)
    assert [c.mu_a for c in comps] == [0.0 if s else 1.0 for s in swapped]


@pytest.mark.parametrize("choice, swapped, preferred, mu", [
    ("left", False, "a", 1.0), ("left", True, "b", 0.0), ("right", False, "b", 0.0), ("right", True, "a", 1.0),
    ("equal", True, "equal", 0.5), ("cant_tell", False, "cant_tell", None), ("skip", True, "skip", None),
])
def test_choices_kept_distinct(store, choice, swapped, preferred, mu):
    store.create_campaign("c", "clip_pair", overlap=100)
    store.add_items("c", [{"a": clip("ea"), "b": clip("eb", 5, 25)}])
    for k in range(100):  # new labelers until one is shown the display order under test
        a = store.next_item("c", f"u{k}")
        if a.swapped == swapped:
            break
    store.submit(a.id, a.labeler, choice)
    (lab,) = store.labels("c")
    assert (lab.choice, lab.preferred, lab.mu_a) == (choice, preferred, mu)
    comps = store.comparisons("c", include=("a", "b", "equal", "cant_tell", "skip"))
    assert [(c.preferred, c.mu_a, c.a, c.b, c.prompt) for c in comps] == \
           [(preferred, mu, clip("ea"), clip("eb", 5, 25), None)]
    default = store.comparisons("c")
    assert len(default) == (1 if preferred in ("a", "b", "equal") else 0)


def test_submit_validation_stores_nothing(store):
    store.create_campaign("c", "text_pair", graded_scale=True, flags=("unsafe", "hallucination"))
    store.create_campaign("plain", "text_pair")
    store.add_items("c", text_items(1))
    store.add_items("plain", text_items(1))
    a = store.next_item("c", "u")
    bad = [
        (dict(choice="better"), "invalid choice 'better'; valid choices: left, right, equal, cant_tell, skip"),
        (dict(choice="left", scale=4), "scale must be an integer from -3"),
        (dict(choice="left", scale=2), "scale 2 .*'B better'.* means choice 'right'"),
        (dict(choice="equal", scale=-1), "means choice 'left'"),
        (dict(choice="left", flags=["rude"]), r"unknown flags \['rude'\].*valid flags: 'unsafe', 'hallucination'"),
        (dict(choice="left", flags="unsafe"), "flags must be a list"),
        (dict(choice="left", comment=3), "comment must be a string"),
        (dict(choice="left", source="robot"), "source must be 'human' or 'synthetic:<name>'"),
        (dict(choice="left", source="synthetic:"), "source must be"),
        (dict(choice="left", ranking=[0, 1]), "ranking is only for ranking campaigns"),
    ]
    for kwargs, match in bad:
        kwargs = dict(kwargs)
        with pytest.raises(ValueError, match=match):
            store.submit(a.id, "u", kwargs.pop("choice"), **kwargs)
    with pytest.raises(ValueError, match="belongs to labeler 'u', not 'v'"):
        store.submit(a.id, "v", "left")
    with pytest.raises(ValueError, match="unknown assignment id 999"):
        store.submit(999, "u", "left")
    assert store.labels("c") == []
    b = store.next_item("plain", "u")
    with pytest.raises(ValueError, match="has no graded scale"):
        store.submit(b.id, "u", "left", scale=-1)
    # valid: flags stored in the campaign's order, scale and comment kept; a second submit is refused
    store.submit(a.id, "u", "right", scale=3, flags=["hallucination", "unsafe"], comment="<b>x</b>")
    (lab,) = store.labels("c")
    assert lab.flags == ("unsafe", "hallucination") and lab.comment == "<b>x</b>"
    assert GRADED_SCALE[lab.scale_shown + 3] == "B much better"
    with pytest.raises(ValueError, match="already submitted"):
        store.submit(a.id, "u", "left")


def test_undo_gives_the_item_back_to_the_same_labeler(store):
    store.create_campaign("c", "text_pair", overlap=1)
    store.add_items("c", text_items(3))
    a1 = store.next_item("c", "u")
    store.submit(a1.id, "u", "left")
    a2 = store.next_item("c", "u")
    store.submit(a2.id, "u", "right")
    assert store.progress("c", "u")["labeled"] == 2
    assert store.undo_last("c", "u") is True
    assert store.progress("c", "u")["labeled"] == 1
    again = store.next_item("c", "u")
    assert (again.item_id, again.display_order) == (a2.item_id, a2.display_order)  # same item, same order
    # while it is back with u, nobody else gets it (overlap 1)
    other = store.next_item("c", "v")
    assert other.item_id not in (a1.item_id, a2.item_id)
    store.submit(again.id, "u", "equal")
    assert [(lab.item_id, lab.choice) for lab in store.labels("c")] == [(a1.item_id, "left"), (a2.item_id, "equal")]
    # undo twice: the stack unwinds
    assert store.undo_last("c", "u") and store.undo_last("c", "u")
    assert store.undo_last("c", "u") is False
    assert store.next_item("c", "u").item_id == a1.item_id
    # the undone rows are kept for the audit trail, not counted anywhere
    assert len(live_rows(store, "SELECT id FROM labels WHERE undone_at IS NOT NULL")) == 3
    assert live_rows(store, "SELECT SUM(queue_labels) FROM items")[0][0] == 0
    assert_queue_counters_consistent(store)


def test_one_label_per_labeler_per_item_is_a_database_constraint(store):
    store.create_campaign("c", "text_pair")
    (item,) = store.add_items("c", text_items(1))
    store.label_direct("c", item, "bot", "left", source="synthetic:gold")
    with pytest.raises(ValueError, match="already labeled item"):
        store.label_direct("c", item, "bot", "right", source="synthetic:gold")
    conn = sqlite3.connect(store.db_path)  # even raw SQL cannot add a second live label
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO labels (campaign, item_id, labeler, source, origin, swapped, display_order, choice,"
                     " preferred, flags, comment, submitted_at) VALUES ('c', ?, 'bot', 'human', 'direct', 0, '[0,1]',"
                     " 'left', 'a', '[]', '', 0)", (item,))
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("INSERT INTO assignments (campaign, item_id, labeler, swapped, display_order, started_at, status)"
                     " VALUES ('c', ?, 'x', 0, '[0,1]', 0, 'open'), ('c', ?, 'x', 0, '[0,1]', 0, 'open')", (item, item))
    conn.close()


def test_label_direct_and_source_marking(store):
    store.create_campaign("c", "text_pair", overlap=1)
    ids = store.add_items("c", text_items(2))
    store.label_direct("c", ids[0], "gold", "left", source="synthetic:gold_rm")
    with pytest.raises(ValueError, match="is not an item of campaign"):
        store.label_direct("c", 999, "gold", "left", source="synthetic:gold_rm")
    with pytest.raises(ValueError, match="source must be"):
        store.label_direct("c", ids[1], "gold", "left", source="gold")
    # direct labels take no queue slot: a human still gets item 1
    a = store.next_item("c", "human1")
    assert a.item_id == ids[0]
    store.submit(a.id, "human1", "right")
    (syn,) = store.comparisons("c", source="synthetic:gold_rm")
    (hum,) = store.comparisons("c", source="human")
    assert (syn.source, syn.preferred, syn.labeler) == ("synthetic:gold_rm", "a", "gold")
    assert hum.source == "human"
    (lab,) = store.labels("c", labeler="gold")
    assert (lab.origin, lab.swapped, lab.started_at, lab.seconds) == ("direct", False, None, None)


def test_rankings_stored_as_ranking_and_expanded(store):
    store.create_campaign("r", "ranking", overlap=1)
    responses = ["r0", "r1", "r2", "r3", "r4"]
    store.add_items("r", [{"prompt": "q", "responses": responses}, {"prompt": "q2", "responses": ["x", "y"]}])
    a = store.next_item("r", "u")
    assert sorted(a.display_order) == list(range(5)) and a.swapped is False
    assert a.shown() == [responses[i] for i in a.display_order]
    # The labeler ranks the DISPLAYED positions; say they rank them as shown, reversed.
    shown_ranking = [4, 3, 2, 1, 0]
    lid = store.submit(a.id, "u", None, ranking=shown_ranking)
    (rk,) = store.rankings("r")
    assert isinstance(rk, Ranking)
    expected_order = [a.display_order[p] for p in shown_ranking]
    assert (rk.label_id, rk.order, rk.responses, rk.prompt) == (lid, expected_order, responses, "q")
    comps = store.comparisons("r")
    assert len(comps) == 10  # C(5, 2)
    rank_of = {idx: r for r, idx in enumerate(expected_order)}
    # brute force: every unordered pair once, the better-ranked one preferred
    assert sorted((c.a, c.b) for c in comps) == \
           sorted((responses[i], responses[j]) for i, j in combinations(range(5), 2))
    for c in comps:
        i, j = responses.index(c.a), responses.index(c.b)
        assert c.preferred == ("a" if rank_of[i] < rank_of[j] else "b") and c.group == lid and c.prompt == "q"
        assert c.mu_a == (1.0 if c.preferred == "a" else 0.0)
    # validation of rankings
    b = store.next_item("r", "u")
    for kwargs, match in [
        (dict(choice=None), "needs ranking="),
        (dict(choice=None, ranking=[0, 0]), "permutation of range\\(2\\)"),
        (dict(choice=None, ranking=[0, 1, 2]), "permutation of range\\(2\\)"),
        (dict(choice="left", ranking=[0, 1]), "invalid choice 'left' for a ranking campaign"),
        (dict(choice="skip", ranking=[0, 1]), "takes no ranking"),
        (dict(choice=None, ranking=[1, 0], scale=1), "graded scale applies to pairs"),
    ]:
        kwargs = dict(kwargs)
        with pytest.raises(ValueError, match=match):
            store.submit(b.id, "u", kwargs.pop("choice"), **kwargs)
    store.submit(b.id, "u", "skip")
    assert len(store.rankings("r")) == 1 and len(store.comparisons("r")) == 10
    assert [lab.preferred for lab in store.labels("r")] == ["ranked", "skip"]
    # synthetic rankings use canonical indices
    store.label_direct("r", rk.item_id, "gold", None, ranking=[2, 0, 1, 4, 3], source="synthetic:gold")
    assert store.rankings("r", source="synthetic:gold")[0].order == [2, 0, 1, 4, 3]
    with pytest.raises(ValueError, match="not a ranking campaign"):
        store.create_campaign("t", "text_pair") and store.rankings("t")


def test_comparisons_include_validation(store):
    store.create_campaign("c", "text_pair")
    with pytest.raises(ValueError, match="not a string"):
        store.comparisons("c", include="a")
    with pytest.raises(ValueError, match=r"invalid values \['left'\]"):
        store.comparisons("c", include=("left",))


def test_threads_share_one_store(store):
    import threading

    store.create_campaign("c", "text_pair", overlap=2)
    store.add_items("c", text_items(20))
    errors = []

    def work(labeler):
        try:
            while (a := store.next_item("c", labeler)) is not None:
                store.submit(a.id, labeler, "equal")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"u{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = live_rows(store, "SELECT item_id, COUNT(*) FROM labels GROUP BY item_id")
    assert len(counts) == 20 and all(n == 2 for _, n in counts)


# ---- export / import ---------------------------------------------------------------------------------


def _fill_mixed(store):
    store.create_campaign("t", "text_pair", overlap=2, graded_scale=True, flags=("unsafe",),
                          guidelines_md="Prefer *helpful*.", meta={"v": 1})
    store.add_items("t", text_items(4) + [{"prompt": "<script>alert(1)</script>", "a": "é ✓", "b": "\n"}])
    answers = iter(["left", "right", "equal", "cant_tell", "skip"] * 4)
    for labeler in ("ann", "bob"):
        while (a := store.next_item("t", labeler)) is not None:
            choice = next(answers)
            scale = {"left": -1, "right": 3, "equal": 0}.get(choice) if labeler == "ann" else None
            store.submit(a.id, labeler, choice, scale=scale, flags=["unsafe"] if choice == "skip" else [],
                         comment=f"{labeler} on {a.item_id}")
    store.label_direct("t", 1, "gold", "right", source="synthetic:gold")


def _without_ids(rows):
    return [{k: v for k, v in r.items() if k not in ("label_id", "item_id")} for r in rows]


def test_export_jsonl_schema_and_round_trip(store, tmp_path):
    _fill_mixed(store)
    store.create_campaign("r", "ranking", flags=("hallucination",))
    store.add_items("r", [{"prompt": "q", "responses": ["x", "y", "z", "w"], "meta": {"src": "demo"}}])
    a = store.next_item("r", "ann")
    store.submit(a.id, "ann", None, ranking=[2, 0, 3, 1], flags=["hallucination"])

    for campaign in ("t", "r"):
        out = tmp_path / f"{campaign}.jsonl"
        n = store.export_jsonl(campaign, out)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert n == len(rows) == len(store.labels(campaign))
        for row, lab in zip(rows, store.labels(campaign)):
            assert row["label_id"] == lab.id and row["labeler"] == lab.labeler and row["choice"] == lab.choice
            assert row["swapped"] == lab.swapped and row["display_order"] == lab.display_order
            assert row["started_at"] == lab.started_at and row["submitted_at"] == lab.submitted_at
            if row["preferred"] in ("a", "b"):
                winner, loser = ("a", "b") if row["preferred"] == "a" else ("b", "a")
                assert (row["chosen"], row["rejected"]) == (row["item"][winner], row["item"][loser])
            else:
                assert row["chosen"] is None and row["rejected"] is None
        fresh = LabelStore(tmp_path / f"fresh-{campaign}")
        assert fresh.import_jsonl(out) == n
        out2 = tmp_path / f"{campaign}-again.jsonl"
        fresh.export_jsonl(campaign, out2)
        again = [json.loads(line) for line in out2.read_text().splitlines()]
        assert _without_ids(again) == _without_ids(rows)  # identical modulo ids
        assert fresh.get_campaign(campaign) == store.get_campaign(campaign)
        # and the imported store behaves: same comparisons, agreement-ready
        assert [(c.a, c.b, c.preferred, c.scale) for c in fresh.comparisons(campaign)] == \
               [(c.a, c.b, c.preferred, c.scale) for c in store.comparisons(campaign)]
        # re-importing into the same store is refused (one label per labeler per item), nothing added
        with pytest.raises(ValueError, match="line 1: field 'labeler'.*already labeled"):
            fresh.import_jsonl(out)
        assert len(fresh.labels(campaign)) == n
    # imported queue labels count toward the overlap: the fresh "t" is complete
    fresh_t = LabelStore(tmp_path / "fresh-t")
    assert fresh_t.next_item("t", "carol") is None
    assert_queue_counters_consistent(fresh_t)


def test_import_into_a_named_campaign(store, tmp_path):
    _fill_mixed(store)
    out = tmp_path / "t.jsonl"
    store.export_jsonl("t", out)
    other = LabelStore(tmp_path / "other")
    other.import_jsonl(out, campaign="copy")
    assert other.get_campaign("copy").kind == "text_pair"
    assert len(other.labels("copy")) == len(store.labels("t"))
    assert len(other.items("copy")) == 5


def _good_line(store, tmp_path):
    _fill_mixed(store)
    out = tmp_path / "t.jsonl"
    store.export_jsonl("t", out)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("field, value, match", [
    ("choice", "better", "field 'choice': invalid choice 'better'"),
    ("labeler", "", "field 'labeler': labeler must be a non-empty string"),
    ("item", {"prompt": "p", "a": "x"}, r"field 'item': item is missing \['b'\]"),
    ("kind", "ranking", "field 'kind': 'ranking' does not match campaign 't'"),
    ("swapped", "yes", "field 'swapped': must be true or false"),
    ("display_order", [0, 0], r"field 'display_order': must be a permutation"),
    ("flags", ["rude"], r"field 'flags': unknown flags \['rude'\]"),
    ("source", "bot", "field 'source'"),
    ("scale_shown", 9, "field 'scale_shown'"),
    ("submitted_at", "yesterday", "field 'submitted_at': must be a Unix time"),
    ("preferred", "zzz", "field 'preferred': 'zzz' disagrees with the raw fields"),
    ("chosen", "not the text", "field 'chosen'"),
    ("schema_version", 99, "field 'schema_version'"),
    ("campaign", None, "field 'campaign'"),
])
def test_malformed_import_names_line_and_field_and_imports_nothing(store, tmp_path, field, value, match):
    rows = _good_line(store, tmp_path)
    rows[2][field] = value
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fresh = LabelStore(tmp_path / "fresh")
    with pytest.raises(ValueError, match=f"line 3: {match}"):
        fresh.import_jsonl(path)
    assert fresh.list_campaigns() == []  # nothing: not even the campaign or rows 1-2
    assert live_rows(fresh, "SELECT COUNT(*) FROM items")[0][0] == 0


def test_malformed_import_missing_field_and_bad_json(store, tmp_path):
    rows = _good_line(store, tmp_path)
    del rows[1]["choice"]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="line 2: field 'choice': missing"):
        store.import_jsonl(path)
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        store.import_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        store.import_jsonl(path)
    # a duplicate (item, labeler) inside one file fails at its line, after the first was inserted: rolled back
    fresh = LabelStore(tmp_path / "fresh")
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="line 2: field 'labeler'.*already labeled"):
        fresh.import_jsonl(path)
    assert fresh.list_campaigns() == [] and live_rows(fresh, "SELECT COUNT(*) FROM labels")[0][0] == 0


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pyarrow wheels built for NumPy 2 cannot load next to NumPy 1
        pytest.skip(f"pyarrow does not import here: {e}")
    return pq


def test_export_parquet_matches_jsonl(store, tmp_path):
    pq = _pyarrow()
    _fill_mixed(store)
    store.create_campaign("clips", "clip_pair")
    store.add_items("clips", [{"a": clip("e1", 0, 25), "b": clip("e2", 10, 25)}])
    a = store.next_item("clips", "u")
    store.submit(a.id, "u", "left")
    for campaign in ("t", "clips"):
        store.export_jsonl(campaign, tmp_path / "x.jsonl")
        rows = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
        store.export_parquet(campaign, tmp_path / "x.parquet")
        table = pq.read_table(tmp_path / "x.parquet").to_pylist()
        for row in table:
            row["item"] = json.loads(row["item"])
            row["campaign_config"] = json.loads(row["campaign_config"])
        assert table == rows


def test_export_parquet_error_is_clear_without_pyarrow(store, tmp_path, monkeypatch):
    store.create_campaign("c", "text_pair")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # simulates an unusable pyarrow
    with pytest.raises(RuntimeError, match="Parquet export needs a working pyarrow"):
        store.export_parquet("c", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


# ---- CLI -------------------------------------------------------------------------------------------------


def test_cli_import_export_stats(tmp_path, capsys):
    from workbench.cli.main import main

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(p) + "\n" for p in text_items(3)))
    root = str(tmp_path / "store")
    assert main(["--store", root, "labels", "import", str(items), "--campaign", "c", "--kind", "text_pair",
                 "--overlap", "2"]) == 0
    assert "added 3 items" in capsys.readouterr().out
    store = LabelStore(root)
    assert store.get_campaign("c").overlap == 2
    for labeler, choice in (("u1", "left"), ("u2", "left")):
        while (a := store.next_item("c", labeler)) is not None:
            store.submit(a.id, labeler, choice)
    assert main(["--store", root, "labels", "stats", "c"]) == 0
    out = capsys.readouterr().out
    assert "6 labels of a target 6" in out and "pairwise agreement" in out and "Fleiss" in out
    out_path = tmp_path / "out.jsonl"
    assert main(["--store", root, "labels", "export", "c", "--format", "jsonl", "--out", str(out_path)]) == 0
    assert len(out_path.read_text().splitlines()) == 6
    assert main(["--store", str(tmp_path / "s2"), "labels", "import", str(out_path), "--labels"]) == 0
    assert len(LabelStore(tmp_path / "s2").labels("c")) == 6
    # errors: a bad items line, an unknown campaign, a missing kind -> exit 2 with a clear message
    items.write_text('{"prompt": "p", "responses": ["x"]}\n')
    assert main(["--store", root, "labels", "import", str(items), "--campaign", "r", "--kind", "ranking"]) == 2
    assert "line 1: item.responses must be a list of 2 to 9" in capsys.readouterr().err
    assert "r" not in [c.name for c in store.list_campaigns()]
    assert main(["--store", root, "labels", "export", "nope", "--out", str(out_path)]) == 2
    assert "unknown campaign 'nope'" in capsys.readouterr().err
    assert main(["--store", root, "labels", "import", str(items), "--campaign", "new"]) == 2
    assert "give --kind" in capsys.readouterr().err


def test_submit_and_next_is_submit_then_next_item(store):
    store.create_campaign("c", "text_pair", overlap=1, assignment_timeout_s=0.2)
    store.add_items("c", text_items(3))
    a = store.next_item("c", "u")
    label_id, nxt = store.submit_and_next(a.id, "u", "left")
    assert store.labels("c")[0].id == label_id and store.labels("c")[0].choice == "left"
    assert nxt.item_id == a.item_id + 1 and nxt.labeler == "u"
    assert store.next_item("c", "u").id == nxt.id  # the same open assignment
    label_id, last = store.submit_and_next(nxt.id, "u", "skip")
    label_id, none = store.submit_and_next(last.id, "u", "equal")
    assert none is None
    assert [lab.preferred for lab in store.labels("c")] == ["b" if a.swapped else "a", "skip", "equal"]
    assert store.undo_last("c", "u")
    again = store.next_item("c", "u")
    assert again.item_id == last.item_id
    with pytest.raises(ValueError, match="invalid choice"):  # validated as submit; nothing stored
        store.submit_and_next(again.id, "u", "maybe")
    assert len(store.labels("c")) == 2
    # expiry as submit: the answer is refused once someone else took the slot
    time.sleep(0.3)
    other = store.next_item("c", "v")
    assert other.item_id == again.item_id
    with pytest.raises(AssignmentExpiredError):
        store.submit_and_next(again.id, "u", "left")


def test_label_direct_many_all_or_nothing(store):
    store.create_campaign("c", "text_pair", flags=("x",))
    ids = store.add_items("c", text_items(3))
    entries = [{"item_id": i, "labeler": "gold", "choice": "left", "source": "synthetic:gold"} for i in ids]
    bad = entries + [{"item_id": ids[0], "labeler": "gold", "choice": "right", "source": "synthetic:gold"}]
    with pytest.raises(ValueError, match=r"labels\[3\]: labeler 'gold' has already labeled item"):
        store.label_direct_many("c", bad)
    with pytest.raises(ValueError, match=r"labels\[1\]: .*missing keys \['source'\]"):
        store.label_direct_many("c", [entries[0], {"item_id": ids[1], "labeler": "g", "choice": "left"}])
    with pytest.raises(ValueError, match=r"labels\[0\]: invalid choice"):
        store.label_direct_many("c", [{**entries[0], "choice": "a"}])
    assert store.labels("c") == []
    out = store.label_direct_many("c", entries[:2] + [{**entries[2], "flags": ["x"], "comment": "c"}])
    assert [lab.id for lab in store.labels("c")] == out
    assert [(lab.source, lab.origin, lab.preferred, lab.flags) for lab in store.labels("c")] == \
           [("synthetic:gold", "direct", "a", ())] * 2 + [("synthetic:gold", "direct", "a", ("x",))]
