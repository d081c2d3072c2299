"""The rollout viewer's logic (widgets.rollout_viewer, widgets.rollouts_tab), without a browser.

The frame index drives the image (decoded back and compared with the episode's frame), the cursor
(in the figure and in the Bokeh model the browser receives), the action bars and the readout; the
jumps land where an independent plain-loop GAE and np.flatnonzero say; two episodes stay in sync;
the Rollouts tab lists and filters a temp store like a list comprehension over all episodes does.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from bokeh.document import Document
from PIL import Image

from widgets.rollout_viewer import RolloutComparison, RolloutViewer, action_bars_html
from widgets.rollouts_tab import ALL, NONE, RANDOM, RolloutsTab
from workbench.episodes.rollouts import (
    ACTION_NAMES,
    NUM_ACTIONS,
    Episode,
    RolloutStore,
    record_random,
)
from workbench.storage.runs import RunStore


def make_episode(length: int = 30, seed: int = 0, *, policy: str = "checkpoint", run_id: str | None = "run-a",
                 checkpoint_step: int | None = 1000, level_seed: int | None = 7,
                 reward_steps=(4, 17, 25)) -> Episode:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(length, 64, 64, 3), dtype=np.uint8)
    logits = rng.normal(scale=2.0, size=(length, NUM_ACTIONS))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rewards = np.zeros(length, np.float32)
    for i, t in enumerate(t for t in reward_steps if t < length):
        rewards[t] = 1.0 + i
    dones = np.zeros(length, bool)
    dones[-1] = True
    values = np.full(length, np.nan) if policy == "random" else rng.normal(size=length) * 3
    return Episode(frames=frames, actions=rng.integers(0, NUM_ACTIONS, size=length), probs=probs, values=values,
                   rewards=rewards, dones=dones, env="coinrun", level_seed=level_seed,
                   levels="seed" if level_seed is not None else "test", distribution_mode="easy", policy=policy,
                   run_id=run_id if policy != "random" else None,
                   checkpoint_step=checkpoint_step if policy != "random" else None)


def gae_by_loop(rewards, values, gamma=0.999, lam=0.95) -> np.ndarray:
    """Reference GAE (Schulman et al. 2016, eq. 16) for one whole episode: V after the last step is 0."""
    T = len(rewards)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        next_value = values[t + 1] if t + 1 < T else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv


def shown_image(viewer: RolloutViewer) -> np.ndarray:
    """The frame the browser would show, decoded from the image pane's data URI."""
    match = re.search(r'src="data:image/(png|jpeg);base64,([^"]+)"', viewer.image.object)
    assert match, viewer.image.object[:200]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(2)))).convert("RGB"))


def shown_step(viewer: RolloutViewer) -> int:
    return int(re.search(r'data-step="(\d+)"', viewer.image.object).group(1))


def rendered(viewable) -> Document:
    """Build the Bokeh models (as a served page would) so model-level updates can be checked."""
    doc = Document()
    doc.add_root(viewable.__panel__().get_root(doc))
    return doc


def bar_widths(html_text: str) -> list[float]:
    return [float(w) for w in re.findall(r'class="bar" style="width:([\d.]+)%"', html_text)]


def test_frame_index_drives_image_cursor_bars_and_readout():
    episode = make_episode()
    viewer = RolloutViewer(episode=episode)
    rendered(viewer)
    [plot_model] = [m for m, _ in viewer.plot._models.values()]
    for t in (13, 29, 5, 0):
        viewer.frame = t
        assert shown_step(viewer) == t
        np.testing.assert_array_equal(shown_image(viewer), episode.frames[t])  # PNG: lossless
        assert viewer.cursor_x == t
        assert plot_model.relayout == {"shapes[0].x0": t, "shapes[0].x1": t}  # only the cursor is sent
        widths = bar_widths(viewer.step_pane.object)
        np.testing.assert_allclose(widths, np.round(100 * episode.probs[t], 1), atol=0.051)
        chosen = re.search(r'class="row chosen"><span class="name">([^<]+)<', viewer.step_pane.object).group(1)
        assert chosen == ACTION_NAMES[episode.actions[t]]
        assert f"step       {t + 1} / 30" in viewer.step_pane.object
        assert f"value      {episode.values[t]:.3f}" in viewer.step_pane.object
        assert viewer.player.value == t
    # The series themselves are not re-sent when the frame changes: same figure object, same data.
    assert viewer.plot.object is viewer.figure
    np.testing.assert_allclose(np.array(viewer.figure.data[0].y, dtype=float), episode.values, rtol=1e-6)


def test_player_and_frame_stay_in_step_and_out_of_range_is_refused():
    viewer = RolloutViewer(episode=make_episode(12))
    assert (viewer.player.start, viewer.player.end) == (0, 11)
    viewer.player.value = 7  # what the browser sends when playing or scrubbing
    assert viewer.frame == 7 and shown_step(viewer) == 7 and viewer.cursor_x == 7
    viewer.frame = 100  # past the end: the last frame
    assert viewer.frame == 11 and shown_step(viewer) == 11
    with pytest.raises(ValueError):
        viewer.frame = -1
    viewer.fps = 30
    assert viewer.player.interval == 33
    viewer.loop = False
    assert viewer.player.loop_policy == "once"


def test_jumps_land_on_extreme_advantages_and_reward_events():
    episode = make_episode(40, seed=3, reward_steps=(4, 17, 25))
    viewer = RolloutViewer(episode=episode)
    reference = gae_by_loop(episode.rewards.astype(np.float64), episode.values.astype(np.float64))
    np.testing.assert_allclose(viewer.advantages, reference, rtol=1e-4, atol=1e-4)
    assert viewer.jump_to_max_advantage() == int(np.argmax(reference)) == viewer.frame
    assert viewer.cursor_x == viewer.frame and shown_step(viewer) == viewer.frame
    assert viewer.jump_to_min_advantage() == int(np.argmin(reference)) == viewer.frame

    events = np.flatnonzero(episode.rewards)
    assert list(events) == [4, 17, 25]
    viewer.frame = 10
    assert viewer.next_reward_event() == 17 and viewer.frame == 17
    assert viewer.next_reward_event() == 25
    assert viewer.next_reward_event() == 4  # wraps around
    assert viewer.previous_reward_event() == 25  # wraps backwards
    viewer.frame = 20
    assert viewer.previous_reward_event() == 17
    assert "step 18" in viewer.message


def test_random_policy_has_no_advantage_jumps_and_says_why():
    viewer = RolloutViewer(episode=make_episode(10, policy="random", reward_steps=()))
    assert viewer.max_adv_button.disabled and viewer.next_reward_button.disabled
    viewer.frame = 3
    assert viewer.jump_to_max_advantage() is None and viewer.frame == 3
    assert "no value estimates" in viewer.message
    assert viewer.next_reward_event() is None and "No reward events" in viewer.message
    assert "value      n/a" in viewer.step_pane.object
    assert "advantage" not in viewer.series_names  # no advantage curve without values


def test_hires_toggle_switches_between_render_and_agent_view(tmp_path):
    episode = make_episode(8)
    hires_frames = episode.frames.repeat(8, axis=1).repeat(8, axis=2)
    store = RolloutStore(tmp_path)
    episode_id = store.save(episode, hires_frames)
    viewer = RolloutViewer(episode_id=episode_id, store_root=tmp_path)
    assert viewer.showing_hires and not viewer.hires_toggle.disabled
    viewer.frame = 5
    image = shown_image(viewer)
    assert image.shape == (512, 512, 3)
    reference = viewer.episode.hires.frame(5).astype(np.int16)
    assert np.abs(image.astype(np.int16) - reference).mean() < 3.0  # JPEG q90 of the decoded render
    viewer.image_format = "png"
    np.testing.assert_array_equal(shown_image(viewer), viewer.episode.hires.frame(5))
    viewer.hires = False
    np.testing.assert_array_equal(shown_image(viewer), episode.frames[5])
    # An episode recorded without the render: the toggle is disabled, the 64x64 view is shown.
    viewer64 = RolloutViewer(episode=make_episode(8))
    assert viewer64.hires_toggle.disabled and shown_image(viewer64).shape == (64, 64, 3)


def test_comparison_plays_both_episodes_in_sync():
    left, right = make_episode(30, seed=1), make_episode(20, seed=2, run_id="run-b", checkpoint_step=5000)
    comparison = RolloutComparison(left=left, right=right)
    rendered(comparison)
    assert comparison.player.end == 29
    comparison.frame = 25
    assert comparison.left_viewer.frame == 25 and comparison.right_viewer.frame == 19  # the shorter one holds
    assert shown_step(comparison.left_viewer) == 25 and shown_step(comparison.right_viewer) == 19
    assert comparison.left_viewer.cursor_x == 25 and comparison.right_viewer.cursor_x == 19
    comparison.player.value = 6  # the shared player (browser)
    assert comparison.frame == 6 and comparison.left_viewer.frame == 6 and comparison.right_viewer.frame == 6
    np.testing.assert_array_equal(shown_image(comparison.right_viewer), right.frames[6])
    # A jump in one viewer moves both.
    t = comparison.right_viewer.next_reward_event()
    assert t == 17 and comparison.frame == 17 and comparison.left_viewer.frame == 17 and comparison.player.value == 17
    comparison.fps = 5
    assert comparison.player.interval == 200 and comparison.left_viewer.fps == 5
    assert "run-b @ 5,000" in comparison.right_viewer.title_pane.object
    # Another right episode (e.g. a later checkpoint): the player spans the longer one, both restart at 0.
    longer = make_episode(50, seed=4, run_id="run-b", checkpoint_step=9000)
    comparison.right = longer
    assert comparison.player.end == 49 and comparison.frame == 0 and comparison.right_viewer.episode is longer
    comparison.player.value = 45
    assert comparison.left_viewer.frame == 29 and comparison.right_viewer.frame == 45
    assert "run-b @ 9,000" in comparison.right_viewer.title_pane.object


def test_viewer_exports_what_it_shows():
    import av

    viewer = RolloutViewer(episode=make_episode(7))
    data = viewer.export_bytes("gif", overlays=False)
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 7 and frames[0].shape == (256, 256, 3)
    assert "Exported GIF" in viewer.message
    comparison = RolloutComparison(left=make_episode(7, seed=1), right=make_episode(5, seed=2))
    with av.open(io.BytesIO(comparison.export_bytes("mp4"))) as container:
        assert sum(1 for _ in container.decode(video=0)) == 7


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="needs an episode"):
        RolloutViewer()
    with pytest.raises(ValueError, match="unknown episode id 'nope'"):
        RolloutViewer(episode_id="nope", store_root=tmp_path)
    with pytest.raises(ValueError, match="needs two episodes"):
        RolloutComparison(left=make_episode(5))


def test_action_bars_escape_and_highlight():
    html_text = action_bars_html(np.full(NUM_ACTIONS, 1 / NUM_ACTIONS), chosen=7)
    assert html_text.count('class="row"') == NUM_ACTIONS - 1
    assert '<div class="row chosen"><span class="name">RIGHT<' in html_text


# ---- the Rollouts tab ---------------------------------------------------------------------------------


@pytest.fixture
def store_root(tmp_path):
    """A store with one run (two checkpoints' episodes) and two random-policy colour-cue episodes."""
    root = tmp_path / "store"
    runs = RunStore(root)
    run_id = runs.create_run(algo="ppo", env="coinrun", config={}, name="tab-run")
    store = RolloutStore(root)
    for i, (step, seed, rewards) in enumerate([(1000, 7, (3,)), (1000, 8, (3, 5)), (2000, 7, (1, 2, 3))]):
        store.save(make_episode(12, seed=i, run_id=run_id, checkpoint_step=step, level_seed=seed,
                                reward_steps=rewards))
    record_random("colour_cue", episodes=2, store_root=root)
    return root


def test_tab_lists_and_filters_like_a_comprehension(store_root):
    tab = RolloutsTab(store_root=store_root)
    every = RolloutStore(store_root).list()
    assert len(every) == 5 and list(tab.table.value.index) == [i.id for i in every]
    [run_id] = [r.id for r in RunStore(store_root).list_runs()]
    assert set(tab.run_select.options.values()) == {ALL, RANDOM, run_id}

    def shown():
        return set(tab.table.value.index)

    tab.run_select.value = run_id
    assert shown() == {i.id for i in every if i.run_id == run_id}
    assert set(tab.checkpoint_select.options.values()) == {ALL, 1000, 2000}
    tab.checkpoint_select.value = 1000
    assert shown() == {i.id for i in every if i.run_id == run_id and i.checkpoint_step == 1000}
    tab.seed_input.value = "7"
    assert shown() == {i.id for i in every if i.run_id == run_id and i.checkpoint_step == 1000 and i.level_seed == 7}
    tab.checkpoint_select.value = ALL
    tab.seed_input.value = ""
    tab.min_return.value = "2.5"
    assert shown() == {i.id for i in every if i.run_id == run_id and i.ret >= 2.5}
    tab.max_return.value = "3.5"
    assert shown() == {i.id for i in every if i.run_id == run_id and 2.5 <= i.ret <= 3.5}
    assert tab.listing.startswith("1 episode(s) match")
    tab.max_return.value = "lots"
    assert tab.listing.startswith("error: ") and "Return ≤ must be a number" in tab.listing
    assert "color:#b00020" in tab.listing_pane.object
    tab.max_return.value = ""
    assert tab.listing.startswith("2 episode(s) match")
    tab.min_return.value = ""
    tab.run_select.value = RANDOM
    assert shown() == {i.id for i in every if i.policy == "random"}
    assert all(tab.table.value["env"] == "colour_cue")


def test_tab_shows_an_episode_and_a_comparison(store_root):
    tab = RolloutsTab(store_root=store_root)
    rendered(tab)
    first, second = tab.infos[0].id, tab.infos[2].id
    tab.table.selection = [2]  # a click on the third row
    assert isinstance(tab.viewer, RolloutViewer) and tab.viewer.episode.id == second
    assert len(tab.viewer_area.objects) == 1 and tab.status == f"Showing {second}"
    # A new episode arrives (e.g. training with --record-every): the list grows, the shown one stays as it is.
    viewer = tab.viewer
    viewer.frame = 5
    RolloutStore(store_root).save(make_episode(6, seed=9))
    tab.refresh()
    assert len(tab.table.value) == 6 and tab.viewer is viewer and viewer.frame == 5
    assert [tab.table.value.index[i] for i in tab.table.selection] == [second]
    tab.compare_select.value = first
    assert isinstance(tab.viewer, RolloutComparison)
    assert (tab.viewer.left.id, tab.viewer.right.id) == (second, first)
    tab.compare_select.value = NONE
    assert isinstance(tab.viewer, RolloutViewer)
    # Files deleted under the tab: a clear message, the last good view stays.
    import shutil

    shutil.rmtree(RolloutStore(store_root).info(first).path)
    tab.select_episode(first)
    assert tab.status.startswith("error: could not open the episode") and tab.viewer.episode.id == second


def test_tab_records_random_episodes_in_the_background(store_root):
    tab = RolloutsTab(store_root=store_root)
    tab.run_select.value = RANDOM
    tab.env_select.value = "colour_cue"
    tab.episodes_input.value = 2
    thread = tab.record()
    assert tab.recording and tab.record_button.disabled and "Recording 2 episode(s)" in tab.status
    assert tab.record() is None and "already running" in tab.status  # one at a time
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert not tab.recording and not tab.record_button.disabled
    assert tab.status.startswith("Recorded 2 episode(s)")
    assert len(RolloutStore(store_root).list(policy="random")) == 4
    new_id = tab.status.split(": ", 1)[1].split(", ")[0]
    assert tab.episode_id == new_id and isinstance(tab.viewer, RolloutViewer)
    assert tab.viewer.episode.env == "colour_cue"


def test_tab_record_form_errors_are_shown_and_nothing_is_recorded(store_root):
    tab = RolloutsTab(store_root=store_root)
    before = len(RolloutStore(store_root).list())
    tab.run_select.value = RANDOM
    tab.level_seeds_input.value = "1,two"
    assert tab.record() is None and "seeds must be integers" in tab.status
    tab.level_seeds_input.value = ""
    tab.max_steps_input.value = "0"
    assert tab.record() is None and "Max steps must be at least 1" in tab.status
    tab.max_steps_input.value = ""
    # A run with episodes but no checkpoint file: recording says so.
    [run_id] = [r.id for r in RunStore(store_root).list_runs()]
    tab.run_select.value = run_id
    tab.checkpoint_select.value = 1000
    assert tab.record() is None and "no checkpoint file at step 1,000" in tab.status
    tab.checkpoint_select.value = ALL
    assert tab.record(background=False) is None  # record_run fails: the run has no checkpoint at all
    assert tab.status.startswith("error: recording failed") and not tab.recording
    assert len(RolloutStore(store_root).list()) == before
