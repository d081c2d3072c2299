"""The Demonstrations tab (widgets/demonstrations_tab.py) without a browser: over a store with a few recorded
episodes, its widgets are driven as a person would (filters set, rows ticked, buttons clicked) and the store
must change accordingly; bad input shows an error on the page and changes nothing."""

from __future__ import annotations

import numpy as np

from widgets.demonstrations_tab import DemonstrationsTab
from workbench.demonstrations.scripted import HumanRecorder, colour_cue_demonstrator, record_demonstrator
from workbench.demonstrations.sets import DemonstrationStore
from workbench.episodes.rollouts import Episode, RolloutStore

LOGIN = "<img src=x onerror=alert(1)>"  # a login is whatever the login provider says


def make_store(root):
    """Two scripted colour-cue episodes, a coinrun episode played (6 steps, level 42) by LOGIN, an agent's."""
    ids = record_demonstrator(colour_cue_demonstrator(1.0), "colour_cue", episodes=2, store_root=root)
    rec = HumanRecorder("coinrun", level_seed=42, store_root=root, login=LOGIN, hires=False, max_steps=6)
    ids += [i for i in (rec.step(a) for a in [7, 7, 5, 8, 4, 7]) if i]
    rec.close()
    ids.append(RolloutStore(root).save(Episode(
        frames=np.zeros((3, 64, 64, 3), np.uint8), actions=[1, 2, 3], probs=np.full((3, 15), 1 / 15),
        values=[0] * 3, rewards=[0, 0, 1], dones=[False, False, True], env="coinrun", level_seed=7, levels="seed",
        distribution_mode="easy", policy="random")))
    return ids  # scripted, scripted, played, agent


def tick(table, ids):
    table.selection = [i for i, e in enumerate(table.value["episode"]) if e in ids]


def test_filters_build_a_set_remove_from_it_and_delete_it_only_when_confirmed(tmp_path):
    scripted_a, scripted_b, played, agent = make_store(tmp_path)
    tab = DemonstrationsTab(store_root=tmp_path)
    assert set(tab.episodes_table.value["episode"]) == {scripted_a, scripted_b, played, agent}
    assert tab.game_select.options == ["all", "coinrun", "colour_cue"] and tab.set_name is None
    assert "No demonstration sets yet" in tab.summary.object and tab.download.disabled

    tab.game_select.value = "coinrun"
    tab.who_select.value = "human"
    frame = tab.episodes_table.value
    assert frame["episode"].tolist() == [played]
    assert frame.iloc[0][["game", "policy", "login", "level_seed", "length"]].tolist() == ["coinrun", "human", LOGIN,
                                                                                           42, 6]
    assert tab.episodes_table.formatters["login"] == {"type": "plaintext"}  # shown as text, never as HTML
    tab.who_select.value = "agent"
    assert tab.episodes_table.value["episode"].tolist() == [agent]

    # A new set from two ticked rows, then more rows into the same (existing) set.
    tab.game_select.value, tab.who_select.value = "all", "all"
    tick(tab.episodes_table, [agent, played])
    tab.target_input.value, tab.description_input.value = "mixed", "<i>first</i> try"
    tab.add_button.clicks += 1
    demos = DemonstrationStore(tmp_path)
    assert demos.episode_ids("mixed") == [e for e in tab.episodes_table.value["episode"] if e in (agent, played)]
    assert tab.set_name == "mixed" and "mixed now holds 2 episodes" in tab.message.object
    tick(tab.episodes_table, [scripted_a, played])
    tab.add_button.clicks += 1
    assert set(demos.episode_ids("mixed")) == {agent, played, scripted_a} and len(demos.episode_ids("mixed")) == 3
    assert demos.info("mixed").description == "<i>first</i> try"
    assert "&lt;i&gt;first&lt;/i&gt; try" in tab.summary.object and "<i>first" not in tab.summary.object
    # 3 + 6 + 8 steps, of which 6 + 8 played by "people" (the scripted demonstrator records as a person)
    assert "3 episodes (2 human), 17 steps (82% of the steps played by people)" in tab.summary.object
    assert set(tab.set_table.value["episode"]) == {agent, played, scripted_a}
    assert not tab.download.disabled and tab.download.filename == "mixed.npz"

    tick(tab.set_table, [agent])
    tab.remove_button.clicks += 1
    assert set(demos.episode_ids("mixed")) == {played, scripted_a}
    assert RolloutStore(tmp_path).info(agent).id == agent  # removed from the set, still recorded
    assert "2 episodes (2 human), 14 steps (100%" in tab.summary.object

    tab.delete_button.clicks += 1  # not confirmed: nothing happens but a message
    assert "Type mixed into the confirmation field" in tab.message.object
    tab.confirm_input.value = "mixe"
    tab.delete_button.clicks += 1
    assert [s.name for s in demos.list()] == ["mixed"] and len(demos.episode_ids("mixed")) == 2
    tab.confirm_input.value = "mixed"
    tab.delete_button.clicks += 1
    assert demos.list() == [] and tab.set_name is None and tab.set_select.options == []
    assert len(RolloutStore(tmp_path).list()) == 4


def test_a_bad_set_name_is_an_error_on_the_page_and_changes_nothing(tmp_path):
    scripted_a, _, played, _ = make_store(tmp_path)
    demos = DemonstrationStore(tmp_path)
    demos.create("kept", [scripted_a])
    tab = DemonstrationsTab(store_root=tmp_path)
    before = (demos.list(), demos.episode_ids("kept"))
    for bad in ("<b>bold</b>", "", "../escape", "a" * 101):
        tick(tab.episodes_table, [played])
        tab.target_input.value = bad
        tab.add_button.clicks += 1
        assert "Not added: invalid demonstration set name" in tab.message.object
        assert "<b>bold</b>" not in tab.message.object  # escaped: &lt;b&gt;
        assert (demos.list(), demos.episode_ids("kept")) == before
    tab.episodes_table.selection = []
    tab.target_input.value = "kept"
    tab.add_button.clicks += 1
    assert "Not added: no episodes selected" in tab.message.object and demos.episode_ids("kept") == [scripted_a]
    tab.remove_button.clicks += 1
    assert "Tick episodes of the set shown first" in tab.message.object and demos.episode_ids("kept") == [scripted_a]


def test_a_set_downloads_and_uploads_as_the_documented_file(tmp_path):
    scripted_a, _, played, _ = make_store(tmp_path / "a")
    DemonstrationStore(tmp_path / "a").create("pair", [scripted_a, played])
    data = DemonstrationsTab(store_root=tmp_path / "a").download.callback().getvalue()

    tab = DemonstrationsTab(store_root=tmp_path / "b")
    tab.import_button.clicks += 1
    assert "Choose a .npz file first" in tab.message.object
    tab.upload.filename, tab.upload.value = "broken.npz", b"PK\x03\x04 not really"
    tab.import_button.clicks += 1
    assert "Not imported: broken.npz is not a workbench-demonstrations file" in tab.message.object
    assert DemonstrationStore(tmp_path / "b").list() == [] and RolloutStore(tmp_path / "b").list() == []

    tab.upload.filename, tab.upload.value = "pair.npz", data
    tab.import_name.value = "copy"
    tab.import_button.clicks += 1
    assert "Imported copy: 2 episodes" in tab.message.object and tab.set_name == "copy"
    demos = DemonstrationStore(tmp_path / "b")
    originals = DemonstrationStore(tmp_path / "a").episodes("pair")
    for old, new in zip(originals, demos.episodes("copy")):
        np.testing.assert_array_equal(old.frames, new.frames)
        np.testing.assert_array_equal(old.actions, new.actions)
    assert demos.player(demos.episode_ids("copy")[1]) == LOGIN
    assert LOGIN not in tab.summary.object + tab.message.object  # (never put raw into the page's HTML)
    tab.import_button.clicks += 1  # the same name again: refused, nothing stored twice
    assert "exists already" in tab.message.object and len(RolloutStore(tmp_path / "b").list()) == 2
