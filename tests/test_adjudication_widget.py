"""The Labeling tab with published data, the statistics it shows, the admins' adjudication view, and model
suggestions shown to a labeler only after they answer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.preferences.labels import LabelStore

DATA = Path(__file__).resolve().parent / "data" / "public"


def test_tab_imports_published_data_and_an_admin_adjudicates_beside_the_raw_labels(tmp_path):
    from widgets.labeling import LabelingTab

    tab = LabelingTab(store_root=tmp_path, user="root")
    data = (DATA / "summarize_from_feedback.jsonl").read_bytes()
    assert tab.create_from_jsonl("tldr", "text_pair", data, filename="comparisons.jsonl") == 2
    store = LabelStore(tmp_path)
    assert len(store.labels("tldr")) == 3 and store.get_campaign("tldr").meta["format"] == "summarize_from_feedback"
    stats = tab.statistics_html("tldr")
    assert "Krippendorff" in stats and "1 / 0" in stats  # one disputed item, none adjudicated yet
    view = tab.adjudication
    view.campaign.value = "tldr"
    [item_id] = view.item.options.values()
    assert "w1: a" in view.detail.object and "w2: b" in view.detail.object
    view.comment.value = "accurate"
    view.buttons["a"].clicks += 1
    assert store.adjudications("tldr")[item_id].preferred == "a"
    assert list(view.item.options.values()) == []  # resolved: off the unresolved list
    assert "1 / 1" in tab.statistics_html("tldr")
    rows = store.export_rows("tldr")
    assert [r["preferred"] for r in rows if r["item_id"] == item_id] == ["a", "b"]  # raw labels kept
    assert {r["adjudication"]["preferred"] for r in rows if r["item_id"] == item_id} == {"a"}
    items_only = tab.create_from_jsonl("relabel", "text_pair", (DATA / "hh_rlhf.jsonl").read_bytes(),
                                       filename="train.jsonl", items_only=True)
    assert items_only == 2 and store.labels("relabel") == []
    with pytest.raises(ValueError, match=r"hh\.jsonl: line 1: field 'chosen'"):
        tab.create_from_jsonl("bad", "text_pair", b'{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "c"}\n',
                              filename="hh.jsonl")


def test_a_labeler_sees_the_model_suggestion_only_after_answering(tmp_path):
    from widgets.labeling import LabelingTab
    from workbench.preferences.reward import build_ensemble

    torch.manual_seed(0)
    model = build_ensemble("text", 2, {"hidden": 0}, reward_std=1.0, noise_floor=True,
                           encoder_spec={"name": "hashed_bow", "dim": 64, "ngrams": 1})
    with torch.no_grad():
        for p in model.members.parameters():
            p.normal_()
    store = LabelStore(tmp_path)
    store.create_campaign("c", "text_pair")
    store.add_items("c", [{"prompt": "q", "a": "alpha", "b": "beta gamma"}])
    tab = LabelingTab(store_root=tmp_path, user="ann", role="labeler", suggestion_model=model)
    tab.campaign_select.value = "c"
    assert tab.comparison.assignment is not None and tab.suggestion.object == ""  # nothing before the answer
    tab.comparison.submit("left")
    assert "After your answer (left): reward model:" in tab.suggestion.object
    assert "probability" in tab.suggestion.object


def test_text_campaign_items_ordered_by_reward_model_disagreement(tmp_path):
    from widgets.labeling import LabelingTab

    tab = LabelingTab(store_root=tmp_path)
    data = b"".join(b'{"prompt": "p", "a": "%s", "b": "y"}\n' % (b"x" * n) for n in (2, 5, 1, 3))
    assert tab.create_from_jsonl("dis", "text_pair", data, strategy="disagreement",
                                 scorer=lambda payloads: [len(p["a"]) for p in payloads]) == 4
    items = LabelStore(tmp_path).items("dis")  # the queue hands items out in id order: most disputed first
    assert [len(p["a"]) for _, p in items] == [5, 3, 2, 1]
    assert [p["meta"]["score"] for _, p in items] == [5, 3, 2, 1]
