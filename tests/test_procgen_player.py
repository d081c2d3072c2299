"""The Procgen player: keys -> procgen actions, frames played, episodes saved as human demonstrations."""

import panel as pn

from widgets.procgen_player import ProcgenPlayer, action_for_keys, mapping_html
from workbench.demonstrations.sets import DemonstrationStore
from workbench.episodes.rollouts import ACTION_NAMES, BUTTON_COMBOS, RolloutStore


def test_keys_map_to_procgens_combos():
    from procgen.env import (
        ProcgenGym3Env,  # procgen's own combination list is the reference
    )

    combos = ProcgenGym3Env(num=1, env_name="coinrun").get_combos()
    assert [tuple(c) for c in combos] == list(BUTTON_COMBOS)
    assert ACTION_NAMES[action_for_keys(["ArrowLeft", "ArrowUp"])] == "LEFT+UP"
    assert ACTION_NAMES[action_for_keys(["ArrowRight"])] == "RIGHT"
    assert ACTION_NAMES[action_for_keys(["d"])] == "D"
    assert ACTION_NAMES[action_for_keys([])] == "NOOP"
    assert ACTION_NAMES[action_for_keys(["ArrowLeft", "ArrowRight"])] == "NOOP"  # no such combination
    assert ACTION_NAMES[action_for_keys(["ArrowRight", "q"])] == "RIGHT"         # the arrows alone
    assert mapping_html().count("<tr>") == 16


def test_player_records_the_keys_held_as_a_human_episode(tmp_path):
    pn.extension()
    player = ProcgenPlayer(store_root=tmp_path, env="coinrun", level_seed=7, max_steps=6, user="ada")
    held = [["ArrowRight"]] * 3 + [["ArrowUp"], [], ["w"]]
    for keys in held:
        player.press(keys)
        saved = player.tick()
    assert saved is not None and player.saved == [saved]
    episode = RolloutStore(tmp_path).load(saved)
    assert [ACTION_NAMES[a] for a in episode.actions] == ["RIGHT", "RIGHT", "RIGHT", "UP", "NOOP", "W"]
    assert (episode.policy, episode.level_seed) == ("human", 7)
    assert DemonstrationStore(tmp_path).player(saved) == "ada"
    player.paused = True
    assert player.tick() is None
    player.level_seed = 8  # a level choice restarts on it
    assert player._recorder.level_seed == 8 and player._recorder.steps == 0
    player.close()
