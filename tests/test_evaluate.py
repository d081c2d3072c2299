"""The evaluation protocol: the score table against a hand computation, deterministic evaluation, protocols,
and a small benchmark grid end to end."""

import math

import numpy as np
import pytest

from workbench.rl.evaluate import (
    PROTOCOLS,
    RunScore,
    evaluate_run,
    get_protocol,
    run_episodes,
    score_table,
    table_to_csv,
    table_to_markdown,
)
from workbench.storage.runs import RunStore
from workbench.studies.benchmark import run_grid, write_tables


def S(algo, game, seed, tr, te, trn, ten):
    return RunScore(algo, game, seed, f"{algo}-{game}-{seed}", tr, te, trn, ten)


def test_score_table_matches_hand_computation():
    scores = [S("ppo", "coinrun", 0, 9.0, 7.0, 0.8, 0.4), S("ppo", "coinrun", 1, 8.0, 6.0, 0.6, 0.2),
              S("ppo", "starpilot", 0, 30.0, 20.0, 0.5, 0.3), S("ppo", "starpilot", 1, 40.0, 30.0, 0.7, 0.5),
              S("ppg", "coinrun", 0, 10.0, 9.0, 1.0, 0.8)]
    rows = {(r["game"], r["algo"]): r for r in score_table(scores)}
    r = rows[("coinrun", "ppo")]
    assert r["seeds"] == 2
    assert r["train_return"] == pytest.approx(8.5) and r["train_return_se"] == pytest.approx(0.5)
    # sample std of (0.4, 0.2) is 0.1414; / sqrt(2) = 0.1
    assert r["test_normalized"] == pytest.approx(0.3) and r["test_normalized_se"] == pytest.approx(0.1)
    assert r["gap"] == pytest.approx(0.4) and r["gap_se"] == pytest.approx(0.0)
    # aggregate: per seed mean over games -> seed 0: (0.4 + 0.3)/2 = 0.35, seed 1: (0.2 + 0.5)/2 = 0.35
    agg = rows[("ALL", "ppo")]
    assert agg["test_normalized"] == pytest.approx(0.35) and agg["test_normalized_se"] == pytest.approx(0.0)
    assert agg["train_normalized"] == pytest.approx((0.65 + 0.65) / 2)
    one = rows[("ALL", "ppg")]
    assert one["test_normalized"] == pytest.approx(0.8) and math.isnan(one["test_normalized_se"])
    md = table_to_markdown(score_table(scores))
    assert "| coinrun | ppo | 2 | 8.500 ± 0.500 |" in md and "| ALL | ppo |" in md


def test_table_csv_round_trip(tmp_path):
    import csv
    rows = score_table([S("ppo", "coinrun", 0, 9.0, 7.0, 0.8, 0.4), S("ppo", "coinrun", 1, 8.0, 6.0, 0.6, 0.2)])
    table_to_csv(rows, tmp_path / "t.csv")
    read = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert float(read[0]["test_normalized"]) == pytest.approx(0.3) and read[-1]["game"] == "ALL"


def test_protocols():
    gen = get_protocol("generalization")
    assert gen.num_levels("easy") == 200 and gen.num_levels("hard") == 500
    assert get_protocol("sample-efficiency").num_levels("hard") == 0
    comp = get_protocol("competition-generalization")
    assert comp.budget("easy") == 8_000_000 and comp.num_levels("easy") == 200
    with pytest.raises(ValueError, match="modes"):
        comp.num_levels("hard")
    with pytest.raises(ValueError, match="valid"):
        get_protocol("zero-shot")
    assert len(PROTOCOLS) == 4


@pytest.mark.slow
def test_grid_trains_evaluates_and_is_deterministic(tmp_path):
    store = RunStore(tmp_path / "runs")
    overrides = dict(num_envs=16, num_steps=16, num_minibatches=2, width=0.25)
    scores = run_grid("generalization", ["colour_cue", "coinrun"], ["ppo", "ppg"], 1, timesteps=512,
                      episodes=4, store=store, overrides=overrides, parallel=2, log=lambda m: None)
    assert {(s.game, s.algo) for s in scores} == {(g, a) for g in ("colour_cue", "coinrun") for a in ("ppo", "ppg")}
    assert all(store.get_run(s.run_id).status == "finished" for s in scores)
    coinrun = next(s for s in scores if s.game == "coinrun" and s.algo == "ppo")
    assert store.get_run(coinrun.run_id).config["num_levels"] == 200
    # Evaluation is deterministic given the seed.
    a = evaluate_run(coinrun.run_id, levels="test", episodes=4, store=store, seed=3)
    b = evaluate_run(coinrun.run_id, levels="test", episodes=4, store=store, seed=3)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    csv_path, md_path, markdown = write_tables(scores, tmp_path / "out")
    assert csv_path.exists() and md_path.exists() and "| ALL | ppg |" in markdown


def test_run_episodes_gives_each_env_its_quota():
    from workbench.rl.policy import ImpalaCNN, PolicyCore
    from workbench.rl.toy_env import ColourCueVecEnv

    core = PolicyCore(ImpalaCNN(width=0.25), "cpu")
    rets, lens = run_episodes(core, ColourCueVecEnv(4, episode_length=5), 10)
    assert len(rets) == 10 and set(lens) == {5}
    with pytest.raises(ValueError):
        run_episodes(core, ColourCueVecEnv(2), 0)
