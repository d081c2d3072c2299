"""ReliabilityDiagram and CalibrationTab without a browser: the drawn numbers are workbench.calibration.metrics's (and
scikit-learn's), the controls change the binning, several series overlay, HTML export works, imports report
bad lines. The browser test is tests/test_calibration_browser.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from widgets.reliability_diagram import ReliabilityDiagram
from workbench.calibration import metrics as cal


def _data(seed=0, n=3000, power=1.5):
    rng = np.random.default_rng(seed)
    c = rng.random(n)
    y = (rng.random(n) < c ** power).astype(int)  # over-confident when power > 1
    return c, y


def _traces(fig, kind):
    return {t.meta["series"]: t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("kind") == kind}


def test_figure_numbers_are_the_calibration_modules():
    c, y = _data()
    d = ReliabilityDiagram(series={"A": (c, y)}, n_bins=12)
    fig = d.plot.object  # what the pane shows
    rel, counts = _traces(fig, "reliability")["A"], _traces(fig, "counts")["A"]
    b = cal.reliability_bins(c, y, n_bins=12, n_bootstrap=0)
    nz = b.count > 0
    np.testing.assert_allclose(rel.x, b.mean_confidence[nz])
    np.testing.assert_allclose(rel.y, b.accuracy[nz])
    np.testing.assert_allclose(rel.error_y.array, (b.cp_high - b.accuracy)[nz])
    np.testing.assert_allclose(rel.error_y.arrayminus, (b.accuracy - b.cp_low)[nz])
    np.testing.assert_array_equal(counts.y, b.count[nz])
    assert sum(counts.y) == c.size
    np.testing.assert_allclose(counts.x, ((b.lower + b.upper) / 2)[nz])
    # hover data carry n, mean confidence, accuracy and the interval of each bin
    np.testing.assert_allclose(np.asarray(rel.customdata)[:, :5],
                               np.column_stack([b.count, b.mean_confidence, b.accuracy, b.cp_low, b.cp_high])[nz])
    assert "n = %{customdata[0]:d}" in rel.hovertemplate and "95% interval" in rel.hovertemplate
    # independent reference: scikit-learn's calibration_curve on equal-width bins
    prob_true, prob_pred = calibration_curve(y, c, n_bins=12, strategy="uniform")
    np.testing.assert_allclose(rel.y, prob_true)
    np.testing.assert_allclose(rel.x, prob_pred)
    diag = [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("kind") == "diagonal"]
    assert len(diag) == 1 and list(diag[0].x) == [0, 1] and list(diag[0].y) == [0, 1]


def test_metrics_table_matches_references():
    c, y = _data(1)
    d = ReliabilityDiagram(series={"A": (c, y)}, n_bins=10, strategy="quantile")
    m = d.metrics_frame()["A"]
    assert m["n"] == c.size and m["accuracy"] == pytest.approx(y.mean())
    assert m["ece"] == pytest.approx(cal.ece(c, y, n_bins=10, strategy="uniform"))
    assert m["adaptive_ece"] == pytest.approx(cal.adaptive_ece(c, y, n_bins=10))
    assert m["mce"] == pytest.approx(cal.mce(c, y, n_bins=10))
    assert m["brier"] == pytest.approx(brier_score_loss(y, c))
    assert m["log_loss"] == pytest.approx(sk_log_loss(y, c))
    dec = cal.murphy_decomposition(c, y, n_bins=10, strategy="quantile")
    assert (m["reliability"], m["resolution"], m["uncertainty"]) == pytest.approx(
        (dec.reliability, dec.resolution, dec.uncertainty))
    # the ECE by a plain loop over 10 equal-width right-closed bins
    edges = np.linspace(0, 1, 11)
    ref = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (c > lo) & (c <= hi) if lo > 0 else (c >= lo) & (c <= hi)
        if inside.any():
            ref += inside.sum() / c.size * abs(y[inside].mean() - c[inside].mean())
    assert m["ece"] == pytest.approx(ref)
    table = d.metrics_pane.object
    assert "ECE (equal width)" in table and "Murphy reliability" in table and f"{m['ece']:.4f}" in table
    assert "10 equal mass (quantile) bins" in table


def test_controls_change_binning_and_intervals():
    c, y = _data(2)
    d = ReliabilityDiagram(series={"A": (c, y)}, n_bins=15)
    assert len(_traces(d.plot.object, "reliability")["A"].x) == 15
    d.n_bins = 5
    rel = _traces(d.plot.object, "reliability")["A"]
    assert len(rel.x) == 5
    d.strategy = "quantile"
    counts = _traces(d.plot.object, "counts")["A"]
    prob_true, _ = calibration_curve(y, c, n_bins=5, strategy="quantile")
    np.testing.assert_allclose(_traces(d.plot.object, "reliability")["A"].y, prob_true)
    assert max(counts.y) - min(counts.y) <= 2  # equal mass
    d.strategy = "equal_count"
    assert set(_traces(d.plot.object, "counts")["A"].y) <= {c.size // 5, c.size // 5 + 1}
    d.interval = "bootstrap"
    b = cal.reliability_bins(c, y, n_bins=5, strategy="equal_count", n_bootstrap=d.n_bootstrap, seed=0)
    rel = _traces(d.plot.object, "reliability")["A"]
    np.testing.assert_allclose(rel.error_y.array, b.boot_high - b.accuracy)
    d.interval = "none"
    assert _traces(d.plot.object, "reliability")["A"].error_y.visible is False
    d.alpha = 0.1
    d.interval = "clopper-pearson"
    rel = _traces(d.plot.object, "reliability")["A"]
    low, _ = cal.clopper_pearson(np.rint(np.array(rel.y) * np.array(rel.customdata)[:, 0]),
                                 np.array(rel.customdata)[:, 0], alpha=0.1)
    np.testing.assert_allclose(rel.error_y.arrayminus, np.array(rel.y) - low)
    assert "90% interval" in rel.hovertemplate
    d.image_format = "svg"
    assert d.plot.config["toImageButtonOptions"]["format"] == "svg"


def test_several_series_overlay_and_names_are_escaped():
    series = {f"m{i}": _data(i, n=500, power=1 + i) for i in range(3)}
    series["<script>alert(1)</script>"] = _data(9, n=200)
    d = ReliabilityDiagram(series=series)
    rel = _traces(d.plot.object, "reliability")
    assert set(rel) == set(series)
    assert len({t.marker.color for t in rel.values()}) == 4
    assert rel["<script>alert(1)</script>"].name == "&lt;script&gt;alert(1)&lt;/script&gt;"
    frame = d.metrics_frame()
    assert list(frame.columns) == list(series)
    for name, (c, y) in series.items():
        assert frame[name]["ece"] == pytest.approx(cal.ece(c, y, n_bins=15))
    assert "<script>" not in d.metrics_pane.object and "&lt;script&gt;" in d.metrics_pane.object
    d.series = {"m0": series["m0"]}
    assert set(_traces(d.plot.object, "reliability")) == {"m0"}
    d.series = {}
    assert not _traces(d.plot.object, "reliability") and "No predictions" in d.metrics_pane.object


def test_bad_series_are_refused_with_the_series_name():
    with pytest.raises(ValueError, match=r"series 'bad'.*\[0, 1\]"):
        ReliabilityDiagram(series={"bad": ([0.5, 2.0], [0, 1])})
    d = ReliabilityDiagram()
    with pytest.raises(ValueError, match="must be a pair"):
        d.series = {"x": [0.5]}


def test_html_export_and_image_export(tmp_path):
    c, y = _data(3, n=400)
    d = ReliabilityDiagram(series={"model <A>": (c, y)})
    page = d.to_html()
    assert page.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page
    assert "model &lt;A&gt;" in page and "ECE (equal width)" in page
    assert "toImageButtonOptions" in page
    small = d.to_html(include_plotlyjs="cdn", full_html=False)
    assert len(small) < len(page) / 10
    d.save(tmp_path / "diagram.html")
    assert (tmp_path / "diagram.html").read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="unsupported export format"):
        d.save(tmp_path / "diagram.pdf")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="kaleido"):
            d.save(tmp_path / "diagram.png")
        assert not (tmp_path / "diagram.png").exists()


# ----------------------------------------------------------------------------------------- the tab

def test_calibration_tab_picks_overlays_and_imports(tmp_path):
    from widgets.app import TABS
    from widgets.calibration_tab import CalibrationTab, set_label
    from workbench.calibration.predictions import PredictionStore

    assert ("Calibration", CalibrationTab) in TABS
    store = PredictionStore(tmp_path)
    c1, y1 = _data(4, n=300)
    c2, y2 = _data(5, n=200, power=3)
    a = store.save("reward model", c1, y1, source="reward_model")
    b = store.save("critic", c2, y2, source="value_function")
    tab = CalibrationTab(store_root=tmp_path)
    assert tab.selected_ids == [b]  # the newest set is shown at first
    assert set(tab.picker.options.values()) == {a, b}
    tab.picker.value = [a, b]
    assert tab.selected_ids == [a, b]
    series = tab.diagram.series
    assert list(series) == [set_label(store.info(a)), set_label(store.info(b))]
    np.testing.assert_array_equal(series[set_label(store.info(b))][0], c2)
    tab.source_select.value = "reward_model"
    assert set(tab.picker.options.values()) == {a, b}  # a selected set stays offered
    tab.picker.value = [a]
    tab.refresh()
    assert set(tab.picker.options.values()) == {a}

    bad = b'{"confidence": 0.4, "correct": 1}\n{"confidence": 1.4, "correct": 1}\n{"confidence": 0.2}\n'
    assert tab.import_bytes(bad, filename="<b>bad</b>.jsonl") is None
    msg = tab.message.object
    assert "line 2" in msg and "line 3" in msg and "Nothing imported" in msg and "&lt;b&gt;bad" in msg
    assert len(store.list()) == 2

    tab.source_select.value = "all sources"
    tab.file_input.param.update(value=b'{"confidence": 0.9, "correct": 1}\n{"confidence": 0.1, "correct": 0}\n',
                                filename="mine.jsonl")
    new = tab.import_uploaded()
    assert new is not None and store.info(new).name == "mine" and store.info(new).source == "jsonl"
    assert "Imported 2 predictions" in tab.message.object
    assert tab.selected_ids[-1] == new and len(tab.diagram.series) == 2


def test_calibration_tab_on_an_empty_store(tmp_path):
    from widgets.calibration_tab import CalibrationTab

    tab = CalibrationTab(store_root=tmp_path)
    assert tab.selected_ids == [] and "No prediction sets yet" in tab.status.object
    assert tab.import_uploaded() is None and "Choose a JSONL file" in tab.message.object


def test_calibration_tab_scores_a_runs_value_function(tmp_path):
    import numpy as np

    from widgets.calibration_tab import CalibrationTab
    from workbench.episodes.rollouts import Episode, RolloutStore
    from workbench.storage.runs import RunStore

    run_id = RunStore(tmp_path).create_run(algo="ppo", env="coinrun", config={})
    RunStore(tmp_path).create_run(algo="ppo", env="starpilot", config={})  # not offered: no binary outcome
    for k, (v0, success) in enumerate([(9.0, True), (2.0, False), (7.0, True)]):
        rewards = np.array([0.0, 10.0 * success], np.float32)
        RolloutStore(tmp_path).save(Episode(
            frames=np.zeros((2, 64, 64, 3), np.uint8), actions=[0, 0], probs=np.full((2, 15), 1 / 15),
            values=[v0, v0], rewards=rewards, dones=[False, True], env="coinrun", level_seed=k, levels="test",
            distribution_mode="easy", policy="checkpoint", run_id=run_id, checkpoint_step=100))
    tab = CalibrationTab(store_root=tmp_path)
    assert tab.value_run.options == [run_id]
    tab.value_run.value = run_id
    set_id = tab.score_value_function()
    assert set_id in tab.selected_ids and "Scored 3 episodes" in tab.message.object
    confidence, outcome, _ = tab.store.load(set_id)
    assert sorted(zip(confidence.round(6).tolist(), outcome.tolist())) == [(0.2, 0), (0.7, 1), (0.9, 1)]
    assert tab.score_value_function("no-such-run") is None and "no recorded episodes" in tab.message.object
