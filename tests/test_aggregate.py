"""Aggregate scores (Agarwal et al. 2021, arXiv 2108.13264) against plain loops."""

import itertools

import numpy as np
import pytest

from workbench.rl.aggregate import (
    aggregate_markdown,
    interquartile_mean,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)
from workbench.rl.evaluate import RunScore


def test_interquartile_mean_is_the_mean_of_the_middle_half():
    rng = np.random.default_rng(1)
    games = [rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)]  # 12 runs: drop 3 lowest, 3 highest
    flat = sorted(np.concatenate(games))
    assert interquartile_mean(games) == pytest.approx(sum(flat[3:9]) / 6)


def test_stratified_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(2)
    games = [rng.normal(size=3), rng.normal(loc=1.0, size=5)]  # different seed counts per game
    point, low, high = stratified_bootstrap_ci(games, reps=300, seed=7)
    draws = np.random.default_rng(7)
    replicates = []
    for _ in range(300):
        runs = []
        for g in games:  # each game resampled on its own: the stratification
            runs += [g[draws.integers(0, len(g), len(g))]]
        pooled = sorted(np.concatenate(runs))
        k = len(pooled) // 4  # 8 runs: the middle half is exactly pooled[2:6]
        replicates.append(np.mean(pooled[k:len(pooled) - k]))
    replicates.sort()
    assert point == pytest.approx(interquartile_mean(games))
    assert low == pytest.approx(np.quantile(replicates, 0.025)) and high == pytest.approx(np.quantile(replicates, 0.975))
    assert low <= point <= high


def test_performance_profile_and_probability_of_improvement_match_plain_loops():
    rng = np.random.default_rng(3)
    x = [rng.integers(0, 4, size=5).astype(float), rng.normal(size=3)]  # integer scores: ties count one half
    y = [rng.integers(0, 4, size=4).astype(float), rng.normal(size=6)]
    taus = [-0.5, 0.0, 1.0, 2.5]
    runs = [v for g in x for v in g]
    assert performance_profile(x, taus) == pytest.approx([sum(v > t for v in runs) / len(runs) for t in taus])
    per_game = []
    for gx, gy in zip(x, y):
        wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(gx, gy)]
        per_game.append(sum(wins) / len(wins))
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(per_game))
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)


def test_aggregate_markdown_lists_iqm_and_pairs():
    scores = [RunScore(a, g, s, f"{a}{g}{s}", 0, 0, 0, v) for (a, g, s), v in zip(
        itertools.product(("ppg", "ppo"), ("coinrun", "miner"), range(3)), np.linspace(0, 1, 12))]
    md = aggregate_markdown(scores, reps=200)
    assert "| ppg | 2 | 6 |" in md and "| ppg | ppo | 2 | 0.000 |" in md and "| ppo | ppg | 2 | 1.000 |" in md


def test_write_tables_adds_the_aggregates_and_profile_data(tmp_path):
    import json

    from workbench.studies.benchmark import write_tables

    scores = [RunScore(a, g, s, f"{a}{g}{s}", 1.0, 1.0, 0.5, v) for (a, g, s), v in zip(
        itertools.product(("ppg", "ppo"), ("coinrun", "miner"), range(2)), np.linspace(0, 1, 8))]
    _, md_path, markdown = write_tables(scores, tmp_path, reps=200)
    assert "| ALL | ppg |" in markdown and "IQM" in markdown and "P(X > Y)" in markdown
    data = json.loads((tmp_path / "aggregate.json").read_text())
    assert len(data["profile"]["ppo"]["fraction"]) == len(data["profile"]["taus"])
    assert {r["algo"] for r in data["aggregate"]} == {"ppg", "ppo"}


def test_score_table_adds_the_iqm_with_its_interval_to_the_aggregate_rows():
    from workbench.rl.evaluate import score_table, table_to_markdown

    values = np.linspace(0, 1, 8)
    scores = [RunScore("ppo", g, s, f"{g}{s}", 0, 0, 0, v) for (g, s), v in zip(
        itertools.product(("coinrun", "miner"), range(4)), values)]
    row = next(r for r in score_table(scores, reps=200) if r["game"] == "ALL")
    assert row["test_iqm"] == pytest.approx(np.mean(sorted(values)[2:6]))
    assert row["test_iqm_lo"] <= row["test_iqm"] <= row["test_iqm_hi"]
    assert "IQM [95% CI]" in table_to_markdown([row])
