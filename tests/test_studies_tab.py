"""The Studies tab (widgets/studies_tab.py) on a small finished study whose curves come from a known law, in
Python and in a real browser; the study controls' guard rails (workbench.studies.control)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from workbench.storage.runs import RunStore
from workbench.storage.studies import StudyStore
from workbench.studies.analysis import scaling_analysis, study_curves, study_table
from workbench.studies.spec import StudySpec

# Hilton et al.'s joint law, I^(-beta) = (N_c / N)^alpha_N + (E_c / E)^alpha_E, with compute C = 6 N E.
ALPHA_N, ALPHA_E, N_C, E_C = 0.6, 0.9, 3e4, 2e3
SIZES, SEEDS = (4e4, 1.6e5, 6.4e5), (0, 1)
# The fits come from the scaling work (workbench.studies.frontier / fits); without them the tab says so.
needs_fits = pytest.mark.skipif(importlib.util.find_spec("workbench.studies.frontier") is None,
                                reason="workbench.studies.frontier (the scaling fits) is not in this checkout")


def true_intrinsic(n, e):
    beta = ALPHA_N * ALPHA_E / (ALPHA_N + ALPHA_E)
    return ((N_C / n) ** ALPHA_N + (E_C / e) ** ALPHA_E) ** (-1 / beta)


def make_scaling_study(root: Path, name: str = "synthetic") -> StudySpec:
    """A finished study of 3 sizes x 2 seeds whose score is log(intrinsic performance) plus small noise."""
    spec = StudySpec(name=name, algo="ppo", base={"env": "colour_cue"},
                     axes={"width": [0.25, 0.5, 1.0], "seed": list(SEEDS)}).validate()
    studies = StudyStore(root)
    points = spec.axis_points()
    studies.register(name, kind="train", spec=spec.to_dict(), points=points,
                     run_names=[spec.run_name(p) for p in points])
    rng = np.random.default_rng(0)
    for p in studies.points(name):
        size = SIZES[[0.25, 0.5, 1.0].index(p.point["width"])]
        run = studies.runs.create_run(algo="ppo", env="colour_cue", config={"seed": p.point["seed"]}, name=p.run_name)
        for e in np.geomspace(256, 2.6e5, 30).astype(int):
            score = np.log(true_intrinsic(size, e)) + 0.01 * rng.standard_normal()
            studies.runs.log_metrics(run, int(e), {"episode_return": score, "compute_flops": 6 * size * e,
                                                   "param_count": size})
        studies.runs.set_status(run, "finished")
        studies.set_point(name, p.idx, "finished", run_id=run)
    studies.set_study_status(name, "finished")
    return spec


@needs_fits
def test_analysis_reads_the_study_and_recovers_the_law(tmp_path):
    make_scaling_study(tmp_path)
    rows = study_table(tmp_path, "synthetic")
    assert [(r["width"], r["seed"], r["status"]) for r in rows] == [(w, s, "finished") for w in (0.25, 0.5, 1.0)
                                                                    for s in SEEDS]
    curves = study_curves(tmp_path, "synthetic")
    assert sorted({c.size for c in curves}) == list(SIZES) and all(len(c.steps) == 30 for c in curves)
    result = scaling_analysis(curves, n_boot=100)
    assert not result.errors, result.errors
    assert result.law is not None and result.frontier is not None
    # The fitted exponents' intervals hold the law the curves came from (it is a monotone map of the score).
    # (Loosely: the fits' own accuracy is tested with the fits.)
    low, high = result.law.intervals["optimal_size_exponent"]
    assert low - 0.1 <= ALPHA_E / (ALPHA_N + ALPHA_E) <= high + 0.1
    compute, n_opt, band_low, band_high = result.optimal
    assert np.all(np.diff(n_opt) >= 0) and np.all(band_low <= band_high)


@needs_fits
def test_tab_draws_the_study_and_guards_its_controls(tmp_path):
    from widgets.studies_tab import StudiesTab

    make_scaling_study(tmp_path)
    tab = StudiesTab(store_root=str(tmp_path), n_boot=50)
    assert tab.study == "synthetic" and len(tab.table.value) == 6
    names = {key: [t.name for t in pane.object.data] for key, pane in tab.plots.items()}
    assert "frontier" in names["frontier"]
    assert any(n.startswith("fit ") for n in names["intrinsic"]) and "fit N_opt(C)" in names["optimal"]
    assert len(names["curves-steps"]) == 6  # 3 sizes: a seed band and a mean each
    assert "alpha_n" in tab.fit_notes.object
    tab.start()  # finished: nothing to resume, nothing started
    assert "nothing to resume" in tab.message.object and StudyStore(tmp_path).get("synthetic").pid is None
    tab.stop()
    assert "no running sweep" in tab.message.object
    tab.toml_input.value = 'name = "bad"\nalgo = "ppo"\n[axes]\nwidthx = [1]\n'
    tab.create_and_start()
    assert "widthx" in tab.message.object and [s.name for s in StudyStore(tmp_path).list_studies()] == ["synthetic"]
    tab.toml_input.value = 'name = "<b>x</b>"\n[axes]\n'
    tab.create_and_start()
    assert "<b>x</b>" not in tab.message.object  # escaped


def test_tab_on_an_empty_store_says_how_to_start(tmp_path):
    from widgets.studies_tab import StudiesTab

    RunStore(tmp_path).close()
    tab = StudiesTab(store_root=str(tmp_path))
    assert tab.study is None and "workbench sweep" in tab.status.object


def _trace_names(page, css: str) -> list[str]:
    plot = page.locator(f".{css} .js-plotly-plot")
    if plot.count() == 0:
        return []
    return plot.first.evaluate("el => (el.data || []).map(t => t.name || '')")


@pytest.mark.slow
@needs_fits
def test_studies_tab_in_the_browser(tmp_path):
    from test_dashboard_browser import CHROMIUM, dashboard_page, wait_until

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent")
    make_scaling_study(tmp_path / "store")
    with dashboard_page(tmp_path / "store", "studies_tab.png") as page:
        page.get_by_text("Studies", exact=True).first.click()
        wait_until(lambda: "frontier" in _trace_names(page, "wb-frontier"), 90, "the frontier drawn",
                   lambda: _trace_names(page, "wb-frontier"))
        wait_until(lambda: any(n.startswith("fit ") for n in _trace_names(page, "wb-intrinsic")), 30,
                   "the fitted law drawn", lambda: _trace_names(page, "wb-intrinsic"))
        assert page.locator(".wb-study-runs").get_by_text("finished").count() >= 6
