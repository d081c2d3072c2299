"""The aggregate-score plot draws what workbench.rl.aggregate computed (intervals and profile bands)."""

import numpy as np

from widgets.aggregate_plot import aggregate_figure
from workbench.rl.aggregate import aggregate_rows, profile_data
from workbench.rl.evaluate import RunScore


def test_the_plot_draws_each_algorithms_interval_and_profile():
    rng = np.random.default_rng(0)
    scores = [RunScore(algo, game, seed, f"{algo}-{game}-{seed}", 0, 0, 0, float(rng.uniform() + (algo == "ppg")))
              for algo in ("ppo", "ppg") for game in ("coinrun", "starpilot") for seed in range(3)]
    aggregate = {"aggregate": aggregate_rows(scores, reps=100), "profile": profile_data(scores, reps=50)}
    fig = aggregate_figure(aggregate)
    points = {t["y"][0]: t for t in fig["data"] if t.get("mode") == "markers"}
    for row in aggregate["aggregate"]:
        iqm = points[f"{row['algo']} · IQM"]
        assert iqm["x"] == [row["iqm"]]
        assert iqm["error_x"]["array"][0] == row["iqm_hi"] - row["iqm"]
    lines = {t["name"]: t for t in fig["data"] if t.get("name")}
    assert set(lines) == {"ppo", "ppg"} and lines["ppg"]["y"] == aggregate["profile"]["ppg"]["fraction"]
