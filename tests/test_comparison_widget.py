"""The comparison widget's logic without a browser, against the real LabelStore: buttons map to store
choices in the order SHOWN, stale clicks are dropped, undo, progress, graded scale, rankings, flags and
comments, clips as sprite sheets (bit-exact frames), and user text escaped."""

from __future__ import annotations

import base64
import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from widgets.comparison import ComparisonWidget
from widgets.safe_text import render_markdown, render_text, safe_link
from workbench.episodes.rollouts import Episode, RolloutStore
from workbench.preferences.labels import LabelStore

XSS = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=2">'


@pytest.fixture
def store(tmp_path) -> LabelStore:
    return LabelStore(tmp_path / "store")


def text_campaign(store: LabelStore, n: int = 6, **kwargs) -> str:
    store.create_campaign("texts", "text_pair", **kwargs)
    store.add_items("texts", [{"prompt": f"prompt {i}", "a": f"answer A{i}", "b": f"answer B{i}"}
                              for i in range(n)])
    return "texts"


def shown_side(widget: ComparisonWidget, side: str) -> str:
    """Text in the left/right box of the widget's HTML (as the browser would show it, escaped)."""
    m = re.search(rf'<div class="wb-box wb-{side}">.*?<div class="wb-plain">(.*?)</div>', widget.content.object)
    return m.group(1)


def test_buttons_map_to_store_choices_in_the_order_shown(store):
    text_campaign(store, n=10)
    widget = ComparisonWidget(store=store, campaign="texts", labeler="alice")
    actions = ["left", "right", "left", "right", "equal", "cant_tell", "skip", "left", "right", "left"]
    expected = []
    for action in actions:
        a = widget.assignment
        left, right = (a.payload["b"], a.payload["a"]) if a.swapped else (a.payload["a"], a.payload["b"])
        assert shown_side(widget, "left") == left and shown_side(widget, "right") == right
        # reference: what the labeler saw on the left, undone by hand
        canonical = {"left": "b" if a.swapped else "a", "right": "a" if a.swapped else "b"}.get(action, action)
        expected.append((a.item_id, action, canonical, a.swapped))
        widget.handle_action(action, a.id)
    labels = store.labels("texts", labeler="alice")
    assert [(lab.item_id, lab.choice, lab.preferred, lab.swapped) for lab in labels] == expected
    assert {lab.swapped for lab in labels} == {True, False}  # (random order: both occur in 10 with p = 1 - 2^-9)
    assert widget.assignment is None and "Nothing left" in widget.content.object
    assert "Labeled 10 / 10 assigned" in widget.header.object


def test_a_stale_click_is_dropped_and_each_label_is_committed_before_the_next_pair(store, monkeypatch):
    text_campaign(store, n=3)
    widget = ComparisonWidget(store=store, campaign="texts", labeler="bob")
    first = widget.assignment.id
    order = []
    real_submit, real_next = store.submit, store.next_item
    monkeypatch.setattr(store, "submit", lambda *a, **k: order.append("submit") or real_submit(*a, **k))
    monkeypatch.setattr(store, "next_item", lambda *a, **k: order.append("next") or real_next(*a, **k))
    widget.handle_action("left", first)
    widget.handle_action("left", first)  # the same key again before the page showed the next pair
    assert order == ["submit", "next"]
    assert len(store.labels("texts")) == 1 and widget.assignment.id != first


def test_undo_gives_back_the_last_item_with_the_same_order(store):
    text_campaign(store, n=4)
    widget = ComparisonWidget(store=store, campaign="texts", labeler="carol")
    seen = []
    for action in ("left", "right", "equal"):
        seen.append((widget.assignment.item_id, widget.assignment.swapped))
        widget.handle_action(action, widget.assignment.id)
    assert widget.progress["labeled"] == 3
    widget.handle_action("undo", widget.assignment.id)
    assert [lab.choice for lab in store.labels("texts")] == ["left", "right"]
    assert (widget.assignment.item_id, widget.assignment.swapped) == seen[2]  # shown again, same order
    assert "Undid" in widget.message.object and "Labeled 2 / 4 assigned" in widget.header.object
    widget.handle_action("skip", widget.assignment.id)
    assert [lab.choice for lab in store.labels("texts")] == ["left", "right", "skip"]
    assert widget.undo() and widget.undo() and widget.undo() and not widget.undo()
    assert store.labels("texts") == []


def test_time_flags_and_comment_are_stored_and_reset(store):
    text_campaign(store, n=2, flags=("offensive", "off-topic"))
    widget = ComparisonWidget(store=store, campaign="texts", labeler="dan")
    assert widget.flags.visible and widget.flags.options == ["offensive", "off-topic"]
    time.sleep(0.2)
    widget.flags.value = ["off-topic"]
    widget.comment.value = "  both <b>weird</b>  "
    widget.handle_action("equal", widget.assignment.id)
    [label] = store.labels("texts")
    assert label.flags == ("off-topic",) and label.comment == "both <b>weird</b>"
    assert label.seconds >= 0.2 and label.started_at is not None
    assert widget.flags.value == [] and widget.comment.value == ""


def test_graded_scale_is_stored_as_shown_and_canonical(store):
    text_campaign(store, n=8, graded_scale=True)
    widget = ComparisonWidget(store=store, campaign="texts", labeler="erin")
    assert [b["action"] for b in widget.bar.buttons][:7] == [f"scale:{v}" for v in range(-3, 4)]
    assert widget.bar.buttons[0]["label"] == "A much better [1]"
    expected = []
    for scale in (-3, -1, 0, 2, 3, -2, 1, 0):
        a = widget.assignment
        expected.append((scale, -scale if a.swapped else scale,
                         "left" if scale < 0 else "right" if scale > 0 else "equal"))
        widget.handle_action(f"scale:{scale}", a.id)
    assert [(lab.scale_shown, lab.scale, lab.choice) for lab in store.labels("texts")] == expected
    with pytest.raises(ValueError, match="no assignment"):
        widget.submit("left", scale=-1)


def test_ranking_takes_ranks_in_the_order_shown(store):
    responses = ["r0", "r1", "r2", "r3"]
    store.create_campaign("rank", "ranking")
    store.add_items("rank", [{"prompt": "p", "responses": responses}] * 2)
    widget = ComparisonWidget(store=store, campaign="rank", labeler="fay")
    a = widget.assignment
    shown = widget.shown_responses()
    assert shown == [responses[i] for i in a.display_order]
    for i, text in enumerate(shown):
        assert f'Response {i + 1}</div><div class="wb-plain">{text}</div>' in widget.content.object
    # incomplete / repeated ranks: refused, nothing stored
    widget.rank_selects[0].value = 1
    widget.handle_action("ranked", a.id)
    assert "give every one" in widget.message.object and store.labels("rank") == []
    for select, rank in zip(widget.rank_selects, (2, 2, 1, 3)):
        select.value = rank
    widget.handle_action("ranked", a.id)
    assert "each used once" in widget.message.object and store.labels("rank") == []
    ranks = [3, 1, 4, 2]  # ranks given to the responses as shown
    for select, rank in zip(widget.rank_selects, ranks):
        select.value = rank
    widget.handle_action("ranked", a.id)
    [label] = store.labels("rank")
    best_first_shown = sorted(range(4), key=lambda p: ranks[p])
    assert label.ranking == [a.display_order[p] for p in best_first_shown]  # canonical, best first
    [ranking] = store.rankings("rank")
    assert [responses[i] for i in ranking.order] == [shown[p] for p in best_first_shown]
    widget.handle_action("skip", widget.assignment.id)
    assert [lab.choice for lab in store.labels("rank")] == ["ranked", "skip"]


def test_user_text_is_escaped(store):
    store.create_campaign("xss", "text_pair", guidelines_md=f"# Rules\n{XSS} [bad](javascript:alert(1)) "
                          "[good](https://example.org)", flags=("<b>flag</b>",))
    store.add_items("xss", [{"prompt": XSS, "a": IMG, "b": "fine"}])
    for markdown in (False, True):
        widget = ComparisonWidget(store=store, campaign="xss", labeler="<i>mallory</i>", render_markdown=markdown)
        page = widget.content.object + widget.header.object + widget.guidelines.object
        assert "<script" not in page and "<img" not in page and "<i>mallory" not in page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=" in page and "&lt;i&gt;mallory&lt;/i&gt;" in page
        assert "href=\"javascript" not in widget.guidelines.object.lower()
        assert 'href="https://example.org" rel="noopener noreferrer nofollow"' in widget.guidelines.object
        assert widget.bar.buttons[0]["label"] == "Left better [1 / ←]"  # the JS sets labels with textContent


@pytest.mark.parametrize("url, ok", [
    ("https://a.org/x", True), ("http://a", True), ("mailto:x@y.z", True), ("docs/page.md#top", True),
    ("javascript:alert(1)", False), ("JaVaScRiPt:alert(1)", False), (" java\tscript:alert(1)", False),
    ("data:text/html;base64,xx", False), ("vbscript:x", False), ("file:///etc/passwd", False),
])
def test_only_safe_links_are_rendered(url, ok):
    assert safe_link(url) is ok
    out = render_markdown(f"[x]({url})")
    assert ("<a href" in out) is ok
    assert render_markdown("![img](https://tracker.example/p.png)").count("<img") == 0
    assert render_text("a\n<b>b</b>") == '<div class="wb-plain">a\n&lt;b&gt;b&lt;/b&gt;</div>'


def test_without_a_labeler_nothing_is_handed_out(store):
    text_campaign(store, n=1)
    widget = ComparisonWidget(store=store, campaign="texts", labeler="  ")
    assert widget.assignment is None and "labeler name" in widget.content.object
    assert store.progress("texts")["assigned"] == 0
    with pytest.raises(ValueError, match="no assignment"):
        widget.submit("left")
    widget.labeler = "gus"  # choosing a name starts labeling
    assert widget.assignment is not None and "gus" in widget.header.object


def episode(length: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(frames=rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8),
                   actions=np.zeros(length, np.int64), probs=np.full((length, 15), 1 / 15, np.float32),
                   values=np.zeros(length, np.float32), rewards=np.zeros(length, np.float32),
                   dones=np.arange(length) == length - 1, env="colour_cue", level_seed=None, levels="train",
                   distribution_mode="easy", policy="random")


def decode_sprites(html_text: str) -> list[tuple[str, np.ndarray]]:
    out = []
    for mime, data in re.findall(r"url\('data:(image/\w+);base64,([A-Za-z0-9+/=]+)'\)", html_text):
        out.append((mime, np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))))
    return out


def test_clips_are_sent_once_as_exact_sprite_sheets_in_the_order_shown(store):
    rollouts = RolloutStore(store.root)
    episodes = {}
    for seed in range(2):
        ep = episode(30, seed)
        episodes[rollouts.save(ep)] = ep
    a_id, b_id = list(episodes)
    store.create_campaign("clips", "clip_pair")
    store.add_items("clips", [{"a": {"episode_id": a_id, "start": 3, "length": 25},
                               "b": {"episode_id": b_id, "start": 5, "length": 25}}] * 1)
    widget = ComparisonWidget(store=store, campaign="clips", labeler="hal", fps=15, display_px=256)
    a = widget.assignment
    html_text = widget.content.object
    sprites = decode_sprites(html_text)
    assert [mime for mime, _ in sprites] == ["image/png", "image/png"]
    refs = [a.payload["b"], a.payload["a"]] if a.swapped else [a.payload["a"], a.payload["b"]]
    for (_, sheet), ref in zip(sprites, refs):
        frames = episodes[ref["episode_id"]].frames[ref["start"]:ref["start"] + 25]
        np.testing.assert_array_equal(sheet, frames.reshape(25 * 64, 64, 3))  # lossless, frame order kept
    # both clips: one CSS animation of 25 steps at 15 fps, crisp pixels, looping
    assert html_text.count("animation:wb-clip-play 1.66667s steps(25, jump-none) infinite") == 2
    assert html_text.count("image-rendering:pixelated") == 2
    assert html_text.count("background-size:256px 6400px") == 2
    assert html_text.index("wb-clip-left") < html_text.index("wb-clip-right")
    widget.handle_action("right", a.id)
    [label] = store.labels("clips")
    assert label.preferred == ("a" if a.swapped else "b")


def test_hires_clips_are_scaled_jpeg(store, tmp_path):
    rollouts = RolloutStore(store.root)
    ep = episode(10, 0)
    hires = np.repeat(np.repeat(ep.frames, 8, axis=1), 8, axis=2)  # 512x512
    ep_id = rollouts.save(ep, hires_frames=hires)
    store.create_campaign("clips", "clip_pair", overlap=2)
    store.add_items("clips", [{"a": {"episode_id": ep_id, "start": 0, "length": 4},
                               "b": {"episode_id": ep_id, "start": 6, "length": 4}}])
    widget = ComparisonWidget(store=store, campaign="clips", labeler="ida", display_px=128)
    sprites = decode_sprites(widget.content.object)
    assert [(mime, sheet.shape) for mime, sheet in sprites] == [("image/jpeg", (512, 128, 3))] * 2
    assert "pixelated" not in widget.content.object
    low = ComparisonWidget(store=store, campaign="clips", labeler="jon", hires=False)
    assert [mime for mime, _ in decode_sprites(low.content.object)] == ["image/png"] * 2


# ---- the labeling tab and the served roles ------------------------------------------------------------

def test_labeling_tab_creates_clip_campaigns_from_rollouts(store):
    from widgets.labeling import LabelingTab

    rollouts = RolloutStore(store.root)
    ids = [rollouts.save(episode(30, seed)) for seed in range(2)]
    tab = LabelingTab(store_root=store.root)
    assert set(tab.form_episodes.options.values()) == set(ids)
    n = tab.create_from_rollouts("clips", ids, n_pairs=5, length=25, seed=3, overlap=2, flags=("broken",))
    assert n == 5
    items = store.items("clips")
    assert len(items) == 5 and store.get_campaign("clips").overlap == 2
    for _, payload in items:
        for side in ("a", "b"):
            assert payload[side]["episode_id"] in ids and payload[side]["start"] + 25 <= 30
    assert tab.campaign_select.options == ["clips"]
    with pytest.raises(ValueError, match="already exists"):
        tab.create_from_rollouts("clips", ids, n_pairs=1)
    with pytest.raises(ValueError, match="longest has 30"):  # checked before anything is created
        tab.create_from_rollouts("too-long", ids, n_pairs=1, length=40)
    with pytest.raises(ValueError, match="reward-model"):
        tab.create_from_rollouts("dis", ids, n_pairs=1, strategy="disagreement")
    assert [c.name for c in store.list_campaigns()] == ["clips"]
    scored = LabelingTab(store_root=store.root, disagreement_scorer=lambda p: [q["a"]["start"] for q in p])
    scored.create_from_rollouts("dis", ids, n_pairs=2, strategy="disagreement")
    assert [p["meta"]["strategy"] for _, p in store.items("dis")] == ["disagreement"] * 2


def test_labeling_tab_imports_jsonl_and_names_the_bad_line(store):
    from widgets.labeling import LabelingTab

    tab = LabelingTab(store_root=store.root)
    good = b'{"prompt": "p", "a": "x", "b": "y"}\n\n{"prompt": "q", "a": "1", "b": "2", "meta": {"src": "t"}}\n'
    assert tab.create_from_jsonl("texts", "text_pair", good, filename="pairs.jsonl") == 2
    bad = b'{"prompt": "p", "a": "x", "b": "y"}\n{"prompt": "p", "a": "x"}\n'
    with pytest.raises(ValueError, match=r"pairs\.jsonl: line 2") as info:
        tab.create_from_jsonl("broken", "text_pair", bad, filename="pairs.jsonl")
    assert "/tmp" not in str(info.value)
    with pytest.raises(ValueError, match="line 1"):
        tab.create_from_jsonl("broken", "text_pair", b"{not json\n", filename="pairs.jsonl")
    with pytest.raises(ValueError, match="UTF-8"):
        tab.create_from_jsonl("broken", "text_pair", b"\xff\xfe", filename="pairs.jsonl")
    assert [c.name for c in store.list_campaigns()] == ["texts"]  # nothing half-created
    ranking = b'{"prompt": "p", "responses": ["a", "b", "c", "d"]}\n'
    assert tab.create_from_jsonl("ranks", "ranking", ranking) == 1
    # the form reports errors in the page instead of raising
    tab.form_name.value, tab.form_kind.value = "broken", "text_pair"
    tab.form_file.param.update(value=bad, filename="<b>pairs</b>.jsonl")
    tab._create_from_file()
    assert "line 2" in tab.message.object and "&lt;b&gt;pairs&lt;/b&gt;" in tab.message.object


def test_statistics_match_the_agreement_module(store):
    from widgets.labeling import LabelingTab
    from workbench.preferences.agreement import campaign_agreement

    text_campaign(store, n=3, overlap=2)
    for labeler, answers in (("ann", ["a", "a", "equal"]), ("ben", ["a", "b", "equal"])):  # canonical
        for answer in answers:
            a = store.next_item("texts", labeler)
            shown = {"a": "right" if a.swapped else "left", "b": "left" if a.swapped else "right"}
            store.submit(a.id, labeler, shown.get(answer, answer))
    tab = LabelingTab(store_root=store.root)
    report = campaign_agreement(store, "texts")
    out = tab.statistics_html("texts")
    assert f"{100 * report.pairwise.overall:.1f}%" in out and "ann" in out and "ben" in out
    # ann and ben agree on 2 of 3 items: pairwise agreement 2/3 (no neutral-vs-other half credit here)
    assert report.pairwise.overall == pytest.approx(2 / 3)
    data = tab._export("jsonl").getvalue().decode().splitlines()
    assert len(data) == 6


def test_labeler_role_and_login_requirement(store):
    from widgets.labeling import LabelingTab

    text_campaign(store, n=2)
    labeler_tab = LabelingTab(store_root=store.root, user="lab1", role="labeler", require_login=True)
    assert not hasattr(labeler_tab, "stats_view") and not hasattr(labeler_tab, "create_view")
    assert labeler_tab.comparison.labeler == "lab1" and labeler_tab.comparison.assignment is not None
    refused = LabelingTab(store_root=store.root, role="labeler", require_login=True)  # nobody logged in
    assert refused.comparison is None and "Log in" in refused._layout[0].object
    assert store.progress("texts")["assigned"] == 1  # only lab1's


def test_build_app_gives_labelers_only_the_labeling_view(store, monkeypatch):
    import panel as pn

    from widgets import app
    from widgets.labeling import LabelingTab

    text_campaign(store, n=1)
    monkeypatch.setattr(pn.state.__class__, "user", property(lambda self: "lab1"))
    made = []
    monkeypatch.setattr(app, "LabelingTab", lambda **kw: made.append(LabelingTab(**kw)) or made[-1])
    [view] = app.build_app(store.root, require_login=True, admins=frozenset({"boss"})).main
    # A labeler gets the labeling view and, since issue 20 ("labeler accounts may play"), the Procgen player;
    # no other tab (no runs, no other labelers' statistics).
    assert isinstance(view, pn.Tabs) and view._names == ["Labeling", "Play"]
    assert "wb-labeler-view" in view[0].css_classes
    assert made[-1].role == "labeler" and made[-1].user == "lab1" and made[-1].require_login
    assert made[-1].comparison.labeler == "lab1"
    [tabs] = app.build_app(store.root, require_login=True, admins=frozenset({"lab1"})).main
    assert isinstance(tabs, pn.Tabs) and "Labeling" in tabs._names and "Runs" in tabs._names
    labeling = tabs[tabs._names.index("Labeling")]
    assert "wb-admin-view" in labeling.css_classes
    monkeypatch.setattr(pn.state.__class__, "user", property(lambda self: None))
    [refusal] = app.build_app(store.root, require_login=True, admins=None).main
    assert "log in" in refusal.object.lower()


def test_main_checks_admins(tmp_path, monkeypatch, capsys):
    from widgets import app

    calls = []
    monkeypatch.setattr(app.pn, "serve", lambda *a, **k: calls.append((a, k)))
    creds = tmp_path / "creds.json"
    creds.write_text('{"boss": "pw", "lab": "pw2"}')
    for argv, message in ((["--admins", "boss"], "needs logins"),
                          (["--basic-auth", "shared-password", "--admins", "boss"], "credentials file"),
                          (["--basic-auth", str(creds), "--admins", " , "], "at least one")):
        with pytest.raises(SystemExit):
            app.main(["--store", str(tmp_path / "s"), *argv])
        assert message in capsys.readouterr().err
    assert calls == []
    assert app.main(["--store", str(tmp_path / "s"), "--basic-auth", str(creds), "--admins", "boss"]) == 0
    [(_, kwargs)] = calls
    assert kwargs["basic_auth"] == str(creds)
