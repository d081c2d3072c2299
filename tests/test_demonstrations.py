"""Demonstration sets, the human recorder, behavioural cloning, RL on top of it and the MineRL tracks."""

import re

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.demonstrations.bc import split_episodes
from workbench.demonstrations.finetune import bc_best_of_n, finetune_from_bc
from workbench.demonstrations.scripted import (
    HumanRecorder,
    colour_cue_demonstrator,
    record_demonstrator,
)
from workbench.demonstrations.sets import DemonstrationStore
from workbench.demonstrations.tracks import env_steps_used, get_track, score_track
from workbench.episodes.rollouts import ACTION_NAMES, Episode, RolloutStore
from workbench.rl.checkpoints import policy_from_checkpoint
from workbench.rl.toy_env import ColourCueVecEnv
from workbench.storage.runs import RunStore


def test_human_recorder_saves_the_actions_pressed_with_level_and_login(tmp_path):
    pressed = [7, 7, 5, 1, 4, 9, 7, 8]  # RIGHT, RIGHT, UP, LEFT, NOOP, D, RIGHT, RIGHT+UP
    rec = HumanRecorder("coinrun", level_seed=42, store_root=tmp_path, login="ada", max_steps=len(pressed))
    assert rec.render().shape == (512, 512, 3)
    ids = [rec.step(a) for a in pressed]
    rec.close()
    assert ids[:-1] == [None] * (len(pressed) - 1) and ids[-1] is not None
    episode = RolloutStore(tmp_path).load(ids[-1])
    assert episode.actions.tolist() == pressed
    assert episode.policy == "human" and episode.level_seed == 42 and episode.levels == "seed"
    assert len(episode.hires) == len(pressed) and episode.hires.frame(0).shape == (512, 512, 3)
    assert DemonstrationStore(tmp_path).player(ids[-1]) == "ada"
    assert [ACTION_NAMES[a] for a in pressed[:3]] == ["RIGHT", "RIGHT", "UP"]


def test_sets_round_trip_through_the_export_format(tmp_path):
    ids = record_demonstrator(colour_cue_demonstrator(1.0), "colour_cue", episodes=3, store_root=tmp_path / "a")
    demos = DemonstrationStore(tmp_path / "a")
    demos.create("cue", ids[:2], "two episodes")
    demos.add("cue", ids[1:])
    assert demos.episode_ids("cue") == ids
    path = demos.export("cue", tmp_path / "cue.npz")
    with pytest.raises(ValueError, match="exists already"):
        demos.create("cue", ids)
    with pytest.raises(ValueError, match="invalid demonstration set name"):
        demos.create("../x", ids)
    with pytest.raises(ValueError, match="unknown demonstration set 'nope'; sets: cue"):
        demos.episode_ids("nope")

    other = DemonstrationStore(tmp_path / "b")
    info = other.import_file(path)
    assert (info.name, info.episodes, info.description) == ("cue", 3, "two episodes")
    for old, new in zip(demos.episodes("cue"), other.episodes("cue")):
        for name in ("frames", "actions", "rewards", "dones"):
            np.testing.assert_array_equal(getattr(old, name), getattr(new, name))
        assert new.policy == "human"
        assert other.player(new.id) == "scripted-demonstrator"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a workbench-demonstrations file"):
        other.import_file(tmp_path / "bad.npz", name="x")
    assert [s.name for s in other.list()] == ["cue"]  # nothing stored by the failed import


def test_split_holds_out_whole_episodes():
    train, held = split_episodes(10, 0.2, seed=0)
    assert len(held) == 2 and sorted(np.concatenate([train, held]).tolist()) == list(range(10))
    assert len(split_episodes(2, 0.01, 0)[1]) == 1 and len(split_episodes(5, 0.0, 0)[1]) == 0


def test_bc_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="demo_set is required"):
        registry.make_config("bc", env="colour_cue")
    with pytest.raises(ValueError, match="holdout_fraction must be in"):
        registry.make_config("bc", env="colour_cue", demo_set="x", holdout_fraction=1.5)


DEMONSTRATOR_ACCURACY = 0.7   # presses the right colour with this probability, otherwise a random action


@pytest.mark.slow
def test_bc_reaches_the_demonstrator_then_rl_beats_it_and_the_tracks_score_both(tmp_path):
    store = RunStore(tmp_path)
    ids = record_demonstrator(colour_cue_demonstrator(DEMONSTRATOR_ACCURACY, seed=0), "colour_cue", episodes=60,
                              store_root=tmp_path)
    DemonstrationStore(tmp_path).create("cue", ids)
    config = registry.make_config("bc", demo_set="cue", env="colour_cue", width=0.25, updates=150, batch_size=64,
                                  holdout_fraction=0.2, eval_every=50, eval_episodes=32, checkpoint_every=1000,
                                  device="cpu")
    bc_run = registry.train(config, store=store, progress=False)
    info = store.get_run(bc_run)
    assert info.algo == "bc" and info.status == "finished"
    latest = store.latest_metrics(bc_run)
    assert {"test/accuracy", "test/cross_entropy", "eval/train_return", "eval/test_return"} <= set(latest)

    # The demonstrator's rate of pressing the right colour, against the clone's greedy choice on fresh frames.
    demonstrator_rate = DEMONSTRATOR_ACCURACY + (1 - DEMONSTRATOR_ACCURACY) / 15
    core = policy_from_checkpoint("bc", info.config, store.load_checkpoint(bc_run), "cpu")
    env = ColourCueVecEnv(512, seed=123)
    with torch.no_grad():
        greedy = core.forward(core.to_device(env.reset()))[0].argmax(-1).numpy()
    assert (greedy == env._colours).mean() >= demonstrator_rate

    # Best-of-n of the clone against a proxy reward, scored by the gold reward: with a proxy that ties every
    # episode, best-of-n is a uniform pick, so every n has the base policy's mean gold return.
    curve, proxy, gold = bc_best_of_n(bc_run, lambda frames: torch.zeros(len(frames)), n=4, groups=3, store=store)
    assert proxy.shape == gold.shape == (3, 4)
    np.testing.assert_allclose(curve.gold_mean, gold.mean(), rtol=1e-9)

    # RL on top (PPO from the BC policy with a KL penalty towards it) beats BC alone.
    ft_run = finetune_from_bc(bc_run, kl_coef=0.01, store=store, num_envs=16, num_steps=32, num_minibatches=4,
                              total_timesteps=4096, gamma=0.99, checkpoint_every=1000)
    assert store.get_run(ft_run).config["init_run"] == bc_run
    assert env_steps_used(ft_run, store) == 4096 and env_steps_used(bc_run, store) == 0

    demos_only = score_track("minerl-demonstrations-only", bc_run, store=store, episodes=32, num_envs=16)
    limited = score_track(get_track("minerl-limited-budget", env_budget=5000), ft_run, store=store, episodes=32,
                          num_envs=16)
    assert demos_only["env_steps_used"] == 0 and limited["env_steps_used"] == 4096
    assert limited["test_return"] > demos_only["test_return"] + 2 * limited["test_return_se"]
    with pytest.raises(ValueError, match="used 4,096 environment steps.*allows 0"):
        score_track("minerl-demonstrations-only", ft_run, store=store, episodes=8)
    with pytest.raises(ValueError, match="allows 1,000"):
        score_track(get_track("minerl-limited-budget", 1000), ft_run, store=store, episodes=8)


def test_cli_demos_and_bc(tmp_path, capsys):
    from workbench.cli.main import main

    record_demonstrator(colour_cue_demonstrator(1.0), "colour_cue", episodes=2, store_root=tmp_path)
    store = ["--store", str(tmp_path)]
    assert main([*store, "demos", "create", "cue", "--human", "--env", "colour_cue"]) == 0
    assert "cue: 2 episodes" in capsys.readouterr().out
    assert main([*store, "bc", "--set-name", "nope", "--env", "colour_cue"]) == 2
    assert "unknown demonstration set 'nope'" in capsys.readouterr().err
    assert main([*store, "bc", "--set-name", "cue", "--env", "colour_cue", "--updates", "2", "--width", "0.25",
                 "--device", "cpu", "--no-progress", "--set", "batch_size=8", "--set", "eval_episodes=0"]) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert RunStore(tmp_path).get_run(run_id).algo == "bc"
    # Like any run: resumed (here: already finished, so nothing to do) and evaluated through the registry.
    assert main([*store, "resume", run_id, "--no-progress"]) == 0
    assert main([*store, "eval", run_id, "--episodes", "4", "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*store, "track", "score", "minerl-demonstrations-only", run_id, "--episodes", "4"]) == 0
    assert '"env_steps_used": 0' in capsys.readouterr().out


def test_bc_resumes_from_a_checkpoint_to_the_same_weights(tmp_path):
    from workbench.rl.algos.session import rewind

    store = RunStore(tmp_path)
    ids = record_demonstrator(colour_cue_demonstrator(0.8), "colour_cue", episodes=4, store_root=tmp_path)
    DemonstrationStore(tmp_path).create("cue", ids)
    config = registry.make_config("bc", demo_set="cue", env="colour_cue", width=0.25, updates=6, batch_size=8,
                                  checkpoint_every=3, eval_episodes=0, device="cpu")
    run_id = registry.train(config, store=store, progress=False)
    uninterrupted = store.load_checkpoint(run_id)["state"]["model"]
    rewind(store, run_id, 3 * 8)   # back to iteration 3, as if the run had been stopped there
    registry.train(registry.config_from_run("bc", store.get_run(run_id).config), store=store, run_id=run_id,
                   progress=False)
    resumed = store.load_checkpoint(run_id)["state"]["model"]
    assert store.get_run(run_id).status == "finished"
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)


def _mixed_set(tmp_path):
    """A tiny set: two scripted colour-cue episodes the game ended, and a coinrun episode a 'person' (login
    ada) cut short after 6 steps on level 42."""
    root = tmp_path / "store"
    ids = record_demonstrator(colour_cue_demonstrator(0.8, seed=1), "colour_cue", episodes=2, store_root=root)
    rec = HumanRecorder("coinrun", level_seed=42, store_root=root, login="ada", hires=False, max_steps=6)
    ids += [i for i in (rec.step(a) for a in [7, 7, 5, 8, 4, 7]) if i]
    rec.close()
    demos = DemonstrationStore(root)
    demos.create("mixed", ids, "scripted and played")
    return demos, ids


def test_minari_export_loads_back_with_minari_exactly(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    from workbench.demonstrations.minari_export import export_minari

    demos, _ = _mixed_set(tmp_path)
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    path = export_minari(demos, "mixed", "workbench/mixed/human-v0", tmp_path / "out")
    assert path == tmp_path / "out" / "workbench" / "mixed" / "human-v0"
    assert "MINARI_DATASETS_PATH" not in __import__("os").environ  # restored after the export
    assert not list((tmp_path / "out").glob(".minari-*"))  # the staging folder is gone

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "out"))
    dataset = minari.load_dataset("workbench/mixed/human-v0")  # stock Minari, no workbench code involved
    stored = demos.episodes("mixed")
    assert dataset.total_episodes == len(stored) == 3
    assert dataset.total_steps == sum(e.length for e in stored)
    assert dataset.observation_space.shape == (64, 64, 3) and dataset.action_space.n == 15
    meta = list(dataset.storage.get_episode_metadata(range(3)))
    for loaded, episode, info in zip(dataset.iterate_episodes(), stored, meta):
        np.testing.assert_array_equal(loaded.observations[:-1], episode.frames)  # PNG: bit for bit
        np.testing.assert_array_equal(loaded.observations[-1], episode.frames[-1])
        np.testing.assert_array_equal(loaded.actions, episode.actions)
        np.testing.assert_array_equal(loaded.rewards, episode.rewards)
        assert loaded.terminations.tolist() == [False] * (episode.length - 1) + [bool(episode.dones[-1])]
        assert loaded.truncations[-1] == (not episode.dones[-1]) and not loaded.truncations[:-1].any()
        assert info["options"]["episode_id"] == episode.id and info["options"]["policy"] == "human"
    assert meta[2]["seed"] == 42 and meta[2]["options"]["player"] == "ada" and meta[2]["options"]["env"] == "coinrun"
    assert meta[0]["options"]["player"] == "scripted-demonstrator" and "seed" not in meta[0]
    assert [e.dones[-1] for e in stored] == [True, True, False]  # both ends are covered: game over, cut short
    assert dataset.storage.metadata["final_observation"] == "repeat"

    # Refused before anything is written: the same id again, a bad id, an unknown set.
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*"))
    with pytest.raises(ValueError, match="exists already"):
        export_minari(demos, "mixed", "workbench/mixed/human-v0", tmp_path / "out")
    for bad in ("../x-v0", "b/x-v0", "workbench/x", "/abs/x-v0", "workbench//x-v0"):  # b/: Minari's own parser
        with pytest.raises(ValueError, match=f"invalid Minari dataset id '{re.escape(bad)}'"):
            export_minari(demos, "mixed", bad, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown demonstration set 'nope'"):
        export_minari(demos, "nope", "workbench/mixed/human-v1", tmp_path / "out")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("*")) == before

    # Minari's own JPEG encoding (lossless=False) does change coinrun's frames: the PNG swap is what makes it exact.
    export_minari(demos, "mixed", "workbench/mixed/human-v1", tmp_path / "out", lossless=False)
    jpeg = minari.load_dataset("workbench/mixed/human-v1")[2].observations[:-1]
    assert jpeg.shape == stored[2].frames.shape and not np.array_equal(jpeg, stored[2].frames)
    assert np.abs(jpeg.astype(int) - stored[2].frames).mean() < 10


def test_cli_exports_a_set_for_minari(tmp_path, capsys, monkeypatch):
    minari = pytest.importorskip("minari")
    from workbench.cli.main import main

    demos, _ = _mixed_set(tmp_path)
    out = tmp_path / "minari"
    assert main(["--store", str(demos.root), "demos", "export", "mixed", "--format", "minari", "--out", str(out),
                 "--dataset-id", "workbench/coinrun/human-v0"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "workbench" / "coinrun" / "human-v0")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(out))
    assert minari.load_dataset("workbench/coinrun/human-v0").total_episodes == 3


def test_store_lists_episodes_summarises_sets_and_moves_them_as_bytes(tmp_path):
    demos, ids = _mixed_set(tmp_path)
    scripted, played = ids[:2], ids[2]
    agent = RolloutStore(demos.root).save(Episode(
        frames=np.zeros((3, 64, 64, 3), np.uint8), actions=[1, 2, 3], probs=np.full((3, 15), 1 / 15), values=[0] * 3,
        rewards=[0, 0, 2.5], dones=[False, False, True], env="coinrun", level_seed=7, levels="seed",
        distribution_mode="easy", policy="random"))
    rows = demos.recorded()
    assert {r["episode"] for r in rows} == {*ids, agent} and demos.games() == ["coinrun", "colour_cue"]
    assert [r["episode"] for r in demos.recorded(env="coinrun", who="human")] == [played]
    assert [r["episode"] for r in demos.recorded(who="agent")] == [agent]
    row = next(r for r in rows if r["episode"] == played)
    assert (row["game"], row["policy"], row["login"], row["level_seed"], row["length"]) == ("coinrun", "human",
                                                                                           "ada", 42, 6)
    assert next(r for r in rows if r["episode"] == agent)["return"] == 2.5
    with pytest.raises(ValueError, match="who must be one of"):
        demos.recorded(who="robot")

    # collect: creates the set the first time, appends (skipping what is in it) after.
    assert demos.collect("new", [agent, scripted[0]], "from the page").episodes == 2
    assert demos.collect("new", [scripted[0], played]).episodes == 3
    assert demos.episode_ids("new") == [agent, scripted[0], played] and demos.info("new").description == "from the page"
    with pytest.raises(ValueError, match="invalid demonstration set name"):
        demos.collect("<b>x</b>", [agent])
    with pytest.raises(ValueError, match="unknown episode id 'ep-nope'"):
        demos.collect("new", ["ep-nope"])
    assert demos.episode_ids("new") == [agent, scripted[0], played]

    summary = demos.summary("new")
    steps = 3 + 8 + 6
    assert (summary.episodes, summary.steps, summary.human_episodes, summary.human_steps) == (3, steps, 2, 14)
    assert summary.human_share == pytest.approx(14 / steps) and summary.missing == 0
    RolloutStore(demos.root).delete(agent)
    assert (demos.summary("new").episodes, demos.summary("new").missing) == (2, 1)

    other = DemonstrationStore(tmp_path / "other")
    info = other.import_bytes(demos.export_bytes("mixed"), name="copy")
    assert (info.name, info.episodes) == ("copy", 3)
    for old, new in zip(demos.episodes("mixed"), other.episodes("copy")):
        np.testing.assert_array_equal(old.frames, new.frames)
        np.testing.assert_array_equal(old.actions, new.actions)
    with pytest.raises(ValueError, match="up.npz is not a workbench-demonstrations file"):
        other.import_bytes(b"PK\x03\x04 broken zip", label="up.npz")
    with pytest.raises(ValueError, match="is empty"):
        other.import_bytes(b"")
    assert [s.name for s in other.list()] == ["copy"]


def test_minari_export_without_minari_is_a_one_line_error(tmp_path, monkeypatch):
    from workbench.demonstrations.minari_export import export_minari

    monkeypatch.setitem(__import__("sys").modules, "minari", None)  # import minari -> ImportError
    with pytest.raises(ValueError, match=re.escape("needs minari: pip install 'minari[hdf5]>=0.5.3,<0.5.4'")):
        export_minari(tmp_path, "any", "workbench/coinrun/human-v0", tmp_path / "out")
    assert not (tmp_path / "out").exists()
