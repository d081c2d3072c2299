"""Reward-model overoptimization (Gao, Schulman, Hilton 2022, arXiv 2210.10760): the fits and their intervals
against known curves, a deliberately flawed proxy whose best-of-n gold rises then falls, and a tiny study end
to end (proxies trained, best-of-n and RL, analysis, the view)."""

import math

import numpy as np
import pytest

from workbench.preferences.best_of_n import (
    best_of_n_estimates,
    kl_best_of_n,
    r_bon,
    r_rl,
)
from workbench.studies.overoptimization_fits import (
    bon_grid,
    fit_curve,
    kl_penalty_effect,
    peak_of,
    trend,
)


@pytest.mark.parametrize("form,alpha,beta", [("bon", 0.8, 0.3), ("rl", 0.5, 0.4)])
def test_fit_intervals_cover_the_true_curve_and_peak(form, alpha, beta):
    rng = np.random.default_rng(0)
    d = np.linspace(0.05, 3.0, 12)
    curve = (r_bon if form == "bon" else r_rl)(d, alpha, beta)
    units = [curve + rng.normal(0, 0.05, d.size) for _ in range(40)]
    fit = fit_curve(form, [d] * 40, units, n_resamples=400)
    assert fit.alpha_ci[0] <= alpha <= fit.alpha_ci[1] and fit.beta_ci[0] <= beta <= fit.beta_ci[1]
    # The peak formula against a dense-grid argmax of the true curve (an independent reference).
    dense = np.linspace(1e-4, 6, 200_001)
    true_peak = dense[np.argmax((r_bon if form == "bon" else r_rl)(dense, alpha, beta))]
    assert peak_of(form, alpha, beta)[0] == pytest.approx(true_peak, abs=1e-3)
    assert fit.d_star_ci[0] <= true_peak <= fit.d_star_ci[1]
    assert fit.peak_in_range


def test_no_peak_when_beta_is_not_positive_and_trend_slopes():
    assert peak_of("bon", 1.0, -0.1)[0] == math.inf and peak_of("rl", 1.0, 0.0)[0] == math.inf
    rng = np.random.default_rng(1)
    d = np.linspace(0.1, 2.5, 10)
    params = [1e3, 1e4, 1e5]
    fits = [fit_curve("bon", [d] * 20, [r_bon(d, 0.5 + 0.2 * k, 0.3) + rng.normal(0, 0.02, d.size)
                                        for _ in range(20)], n_resamples=300) for k in range(3)]
    t = trend(params, fits, "alpha", "params")
    assert t.slope == pytest.approx(0.2, abs=0.03) and t.slope_ci[0] <= 0.2 <= t.slope_ci[1]
    with pytest.raises(ValueError, match="2 distinct x"):
        trend([1e3, 1e3], fits[:2], "alpha", "params")


def test_kl_penalty_on_the_same_frontier_reads_as_early_stopping():
    d = np.linspace(0.1, 3, 15)
    runs = [{"kl_coef": 0.0, "d": d, "gold": r_rl(d, 1.0, 0.6), "proxy": d}]
    runs.append({"kl_coef": 0.1, "d": d[:6], "gold": r_rl(d[:6], 1.0, 0.6), "proxy": d[:6] + 0.3})
    rows = {r["kl_coef"]: r for r in kl_penalty_effect(runs, n_resamples=200)}
    assert rows[0.1]["max_d"] < rows[0.0]["max_d"]
    assert abs(rows[0.1]["gold_residual"]) < 1e-9 and rows[0.1]["proxy_residual"] == pytest.approx(0.3)


def test_flawed_proxy_gold_rises_then_falls_while_the_proxy_keeps_rising():
    """colour_choice under a uniformly random pi_init; gold = red frames (the env reward), proxy = red + 1.5 x
    green: near pi_init selecting for the proxy selects for red too, at the extreme only green. Best-of-n with
    the unbiased estimator over N = 1536 samples per prompt, n up to 1024."""
    from workbench.studies.overoptimization import OveroptimizationStudy
    from workbench.studies.overoptimization_data import (
        colour_step_reward,
        sample_responses,
    )

    study = OveroptimizationStudy(bon_samples=1536, bon_n_max=1024)
    proxy, gold = colour_step_reward([1, 1.5, 0, 0]), colour_step_reward([1, 0, 0, 0])
    grid = bon_grid(1024)
    d = np.sqrt(kl_best_of_n(grid))
    rows_gold, rows_proxy, base = [], [], []
    for p in range(3):
        s = sample_responses(None, study, 1536, seed=p, scorers={"proxy": lambda f: proxy(f)[None].numpy(),
                                                                 "gold": lambda f: gold(f)[None].numpy()})
        assert np.array_equal(s["gold"][0], s["env"])  # the env's reward is the red-frame count
        g = best_of_n_estimates(s["proxy"][0], s["env"])[0, grid - 1]
        r = best_of_n_estimates(s["proxy"][0])[0, grid - 1]
        rows_gold.append(g - g[0])
        rows_proxy.append(r - r[0])
        base.append(g[0])
    # pi_init's gold: a random first frame (red 1/4) and 7 chosen ones (4 of 15 actions show red).
    assert np.mean(base) == pytest.approx(0.25 + 7 * 4 / 15, abs=0.1)
    mean_gold, mean_proxy = np.mean(rows_gold, 0), np.mean(rows_proxy, 0)
    peak = int(np.argmax(mean_gold))
    assert 0 < peak < len(grid) - 1
    assert mean_gold[peak] > 0.2 and mean_gold[peak] - mean_gold[-1] > 0.2  # rises, then falls
    assert np.all(np.diff(mean_proxy) > 0)                                   # the proxy keeps rising
    fit = fit_curve("bon", [d] * 3, rows_gold, n_resamples=300)
    assert fit.beta > 0 and fit.peak_in_range and d[1] < fit.d_star < d[-2]
    assert abs(fit.d_star - d[peak]) < 0.5


TINY = {"name": "tiny", "proxy_sizes": [[0.0625, 8], [0.125, 16]], "label_counts": [16, 48], "heldout_pairs": 24,
        "members": 2, "rm_steps": 8, "prompts": 2, "bon_samples": 48, "bon_n_max": 32, "rl_kl_coefs": [0.0, 0.1],
        "rl_label_counts": [48], "rl_iterations": 3, "rl_num_envs": 4, "rl_num_steps": 16,
        "rl_update_epochs": 1, "rl_num_minibatches": 1, "bootstrap": 100}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from workbench.studies.overoptimization import OveroptimizationStudy, run_study

    root = str(tmp_path_factory.mktemp("overopt"))
    return root, run_study(OveroptimizationStudy.from_dict(TINY), root, progress=None)


@pytest.mark.slow
def test_tiny_study_end_to_end_and_rerun_continues(tiny_study):
    from workbench.storage.runs import RunStore
    from workbench.studies.overoptimization import (
        OveroptimizationStudy,
        job,
        load_records,
        run_study,
    )

    root, summary = tiny_study
    records = load_records("tiny", root)
    assert len(records) == 4 and summary["records"] == 4
    params = sorted({r["params"] for r in records})
    assert len(params) == 2 and params[0] < params[1]
    for rec in records:
        for variant in ("single", "mean", "min"):
            v = rec["bon"]["variants"][variant]
            assert np.allclose(np.asarray(v["gold"])[:, 0], 0) and np.all(np.diff(np.mean(v["proxy"], 0)) >= -1e-9)
        for run in rec["rl"]:
            assert run["gold"][0] == 0 and len(run["d"]) == 3
    assert {(r["method"], r["against"]) for r in summary["trends"]} >= {("bon", "params"), ("bon", "labels")}
    assert any("kl_penalty" in p for p in summary["proxies"])
    n_runs = len(RunStore(root).list_runs())
    run_study(OveroptimizationStudy.from_dict(TINY), root, progress=None)  # finished points are not rerun
    assert len(RunStore(root).list_runs()) == n_runs
    # The sweep machinery's job kind: settings = study settings + the point's axes; a finished point is returned.
    point = {"proxy_width": 0.125, "proxy_hidden": 16, "labels": 16, "seed": 0}
    existing = next(r["run_id"] for r in records if r["point"] == point)
    assert job({"algo": None, **TINY, **point}, root, "tiny/any-name") == existing
    with pytest.raises(ValueError, match="other settings.*rm_steps"):
        job({"algo": None, **TINY, "rm_steps": 9, **point}, root, "tiny/changed")


def test_bad_settings_are_clear_errors():
    from workbench.studies.overoptimization import OveroptimizationStudy, job_settings

    with pytest.raises(ValueError, match="bon_samples"):
        OveroptimizationStudy(bon_samples=100, bon_n_max=100).validate()
    with pytest.raises(ValueError, match="unknown study setting"):
        OveroptimizationStudy.from_dict({"proxy_size": 3})
    with pytest.raises(ValueError, match="missing"):
        job_settings({"proxy_width": 0.25, "labels": 10})
    study, point = job_settings({"algo": None, "proxy_width": 0.25, "proxy_hidden": 16, "labels": 32, "seed": 1,
                                 "env": "colour_choice"})
    assert point == {"proxy_width": 0.25, "proxy_hidden": 16, "labels": 32, "seed": 1} and study.label_counts == [32]


@pytest.mark.slow
def test_view_draws_curves_fits_and_coefficients(tiny_study):
    from widgets.overoptimization_view import OveroptimizationView
    from workbench.studies.overoptimization_report import list_studies

    root, _summary = tiny_study
    assert list_studies(root) == ["tiny"]
    view = OveroptimizationView(store_root=root)
    assert view.study == "tiny" and view.labels == 48
    names = [t.name or "" for t in view._curves.object.data]
    assert sum(n.endswith("params") for n in names) == 2 and any(n.endswith("fit") for n in names)
    assert any("kl 0.1" in n for n in names)  # RL runs per KL coefficient
    view._variant.value = "min"
    assert view.variant == "min"
    coefficient_traces = view._coefficients.object.data
    assert {t.xaxis for t in coefficient_traces} == {"x", "x2"} and len(coefficient_traces) >= 4
    view.__panel__()
    empty = OveroptimizationView(store_root=str(root) + "-empty")
    assert "No analysed" in empty._message.object


def test_gold_reward_model_labels_the_pairs(tmp_path):
    """gold="model": a reward model is trained once on env-labeled pairs, saved, and then answers the proxies'
    comparisons: every label agrees with the order of its clip_rewards (the higher gold score wins)."""
    import torch

    from workbench.preferences.reward import load_reward_model
    from workbench.studies.overoptimization import (
        OveroptimizationStudy,
        load_policy,
        prepare,
    )
    from workbench.studies.overoptimization_data import label_pool

    study = OveroptimizationStudy.from_dict({"name": "gold-model", "gold": "model", "gold_labels": 24,
                                             "gold_width": 0.0625, "gold_hidden": 8, "rm_steps": 4})
    setup = prepare(study, tmp_path)
    gold = load_reward_model(setup["gold_model"])
    assert prepare(study, tmp_path) == setup and 0.5 < setup["gold_heldout_accuracy"] <= 1  # made once
    pool = label_pool(study, load_policy(study, setup["init_run"], tmp_path), gold, 12, 0, seed=3)
    clips = torch.from_numpy(pool["frames"][pool["index"]])  # toy responses have no early end: no -1 index
    scores = gold.clip_rewards(clips).double().numpy().reshape(-1, 2)
    expected = np.where(scores[:, 0] > scores[:, 1], 1.0, np.where(scores[:, 0] < scores[:, 1], 0.0, 0.5))
    assert np.array_equal(pool["mu"], expected)


@pytest.mark.slow
def test_procgen_clips_prompt_is_a_level(tmp_path):
    """On a Procgen game a prompt is a level seed and a response the first steps of that level: all samples of
    one prompt start from the same frame, and the point runs end to end (no RL here, to stay short)."""
    from workbench.studies.overoptimization import (
        OveroptimizationStudy,
        load_records,
        run_point,
    )
    from workbench.studies.overoptimization_data import sample_responses

    study = OveroptimizationStudy.from_dict({
        "name": "coinrun-clips", "env": "coinrun", "response_length": 6, "proxy_sizes": [[0.0625, 8]],
        "label_counts": [6], "heldout_pairs": 4, "members": 2, "rm_steps": 2, "prompts": 2, "bon_samples": 12,
        "bon_n_max": 8, "rl_variants": [], "bootstrap": 50})
    first = sample_responses(None, study, 3, seed=0, level_seed=5, keep_frames=True)
    assert np.all(first["index"][:, 0] == first["index"][0, 0])  # one level: one first frame
    run_point(study, study.points()[0], tmp_path)
    (record,) = load_records("coinrun-clips", tmp_path)
    assert record["bon"]["n"] == [1, 2, 4, 8] and len(record["bon"]["variants"]["mean"]["gold"]) == 2


@pytest.mark.slow
def test_sweep_machinery_runs_the_overoptimization_kind(tmp_path):
    """A study spec of kind "overoptimization" runs its points as worker processes (two at once, sharing one
    pi_init) and the records come back in the store."""
    from workbench.storage.runs import RunStore
    from workbench.studies import overoptimization  # noqa: F401  (registers the job kind)
    from workbench.studies.executors import LocalExecutor
    from workbench.studies.overoptimization import load_records
    from workbench.studies.spec import StudySpec
    from workbench.studies.sweep import run_study

    base = {"name": "swept", "proxy_sizes": [[0.0625, 8], [0.125, 8]], "label_counts": [8], "heldout_pairs": 4,
            "members": 2, "rm_steps": 2, "prompts": 2, "bon_samples": 12, "bon_n_max": 8, "rl_variants": [],
            "bootstrap": 50, "proxy_hidden": 8, "labels": 8}
    spec = StudySpec(name="overopt-sweep", algo=None, kind="overoptimization", base=base,
                     axes={"proxy_width": [0.0625, 0.125], "seed": [0]})
    report = run_study(spec, str(tmp_path), LocalExecutor(str(tmp_path), parallel=2), log=lambda *_: None)
    assert report.status == "finished", [p.error for p in report.points]
    records = load_records("swept", tmp_path)
    assert sorted(r["point"]["proxy_width"] for r in records) == [0.0625, 0.125]
    assert [r.name for r in RunStore(tmp_path).list_runs()].count("swept pi_init") == 1
