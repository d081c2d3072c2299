"""OOD detection and calibration under shift (workbench.safety): metrics against scikit-learn, detectors
against their formulas, corruptions, and detection of a shifted colour set by a policy trained on the colour
cue task; the CLI and the Safety tab."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from workbench.cli.main import main
from workbench.rl.algos.ppo import PPOConfig, train
from workbench.rl.toy_env import PALETTE, ColourCueVecEnv
from workbench.safety.calibration_shift import calibration_under_shift, shift_sets
from workbench.safety.ood import OODStore, check_shifts, corrupt, evaluate_ood
from workbench.safety.ood_metrics import detector_scores, ood_metrics
from workbench.storage.runs import RunStore


def sklearn_metrics(id_scores, shifted_scores) -> dict:
    y = np.r_[np.ones(len(id_scores)), np.zeros(len(shifted_scores))]
    s = np.r_[id_scores, shifted_scores]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {"auroc": roc_auc_score(y, s), "aupr_in": average_precision_score(y, s),
            "aupr_out": average_precision_score(1 - y, -s), "fpr95": fpr[np.argmax(tpr >= 0.95)]}


def test_metrics_match_scikit_learn_with_and_without_ties():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n, m = rng.integers(1, 80, size=2)
        decimals = int(rng.integers(0, 3))  # 0 decimals: many ties
        a = np.round(rng.normal(rng.uniform(-1, 2), 1, n), decimals)
        b = np.round(rng.normal(0, rng.uniform(0.5, 2), m), decimals)
        ours = ood_metrics(a, b).as_dict()
        for name, reference in sklearn_metrics(a, b).items():
            assert ours[name] == pytest.approx(reference, abs=1e-12), (trial, name)
    perfect = ood_metrics([3.0, 4.0], [1.0, 2.0])
    assert (perfect.auroc, perfect.aupr_in, perfect.aupr_out, perfect.fpr95) == (1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="at least one score"):
        ood_metrics([], [1.0])


def test_detectors_follow_their_formulas():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    values = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    scores = detector_scores(logits, values)
    for i, row in enumerate(logits):
        exps = [math.exp(v) for v in row]
        assert scores["msp"][i] == pytest.approx(max(exps) / sum(exps))
        assert scores["max_logit"][i] == pytest.approx(max(row))
        assert scores["energy"][i] == pytest.approx(math.log(sum(exps)))
        column = values[:, i]
        mean = sum(column) / len(column)
        assert scores["ensemble_disagreement"][i] == pytest.approx(-math.sqrt(sum((v - mean) ** 2 for v in column)
                                                                              / len(column)))
    assert "ensemble_disagreement" not in detector_scores(logits) and "knn" not in detector_scores(logits)


def test_knn_detector_is_the_kth_nearest_normalized_reference():
    rng = np.random.default_rng(0)
    features, reference = rng.normal(size=(7, 5)), rng.normal(size=(30, 5))
    for k in (1, 4, 30):
        scores = detector_scores(np.zeros((7, 3)), features=features, reference_features=reference, knn_k=k)["knn"]
        for i, f in enumerate(features):
            unit = f / math.sqrt(sum(v * v for v in f))
            distances = sorted(math.dist(unit, r / math.sqrt(sum(v * v for v in r))) for r in reference)
            assert scores[i] == pytest.approx(-distances[k - 1])
    with pytest.raises(ValueError, match="k must be a whole number in \\[1, 30\\]"):
        detector_scores(np.zeros((7, 3)), features=features, reference_features=reference, knn_k=31)


def test_corruptions_and_shifted_colours():
    frames = ColourCueVecEnv(8, seed=0).reset()
    grey = np.full((1, 4, 4, 3), 128, np.uint8)
    assert np.array_equal(corrupt(grey, "colour", 5), grey)  # rotation about the grey axis keeps greys
    for kind in ("noise", "blur", "colour"):
        distances = [np.abs(corrupt(frames, kind, s).astype(int) - frames).mean() for s in (1, 3, 5)]
        assert distances[0] > 0 and distances == sorted(distances), (kind, distances)
    # a 180-degree rotation keeps each colour's distance from grey (Rodrigues' rotation is an isometry)
    pixel = np.array([[[[200, 60, 100]]]], np.uint8)
    rotated = corrupt(pixel, "colour", 5).astype(float)[0, 0, 0]
    centre = pixel[0, 0, 0].mean()
    assert np.linalg.norm(rotated - rotated.mean()) == pytest.approx(np.linalg.norm(pixel[0, 0, 0] - centre), abs=1.5)
    shifted = ColourCueVecEnv(16, seed=0, first_colour=4, num_colours=4).reset()
    means = np.rint(shifted.reshape(16, -1, 3).mean(axis=1))
    assert all(any(np.abs(m - c).max() <= 2 for c in PALETTE[4:8]) for m in means)
    with pytest.raises(ValueError, match="first_colour"):
        ColourCueVecEnv(4, first_colour=13, num_colours=4)
    with pytest.raises(ValueError, match="valid: test, hard, colours"):
        check_shifts("tset", "coinrun", "easy")
    with pytest.raises(ValueError, match="colour-cue tasks"):
        check_shifts("colours", "coinrun", "easy")
    with pytest.raises(ValueError, match="trained in easy mode"):
        check_shifts("hard", "coinrun", "hard")


@pytest.fixture(scope="module")
def colour_runs(tmp_path_factory):
    """Two PPO runs on the colour-cue task (seeds 0 and 1; ~25 s each): a policy and its value ensemble."""
    root = tmp_path_factory.mktemp("ood")
    store = RunStore(root)
    ids = [train(PPOConfig(env="colour_cue", num_envs=16, num_steps=32, num_minibatches=4, update_epochs=3,
                           width=0.25, gamma=0.99, total_timesteps=12_288, checkpoint_every=1000, seed=seed,
                           bf16=False), store=store, progress=False) for seed in (0, 1)]
    return root, ids


@pytest.mark.slow
def test_policy_detects_a_shifted_colour_set(colour_runs):
    root, (run, other) = colour_runs
    result = evaluate_ood(run, shifts=("colours", "noise"), frames=512, ensemble_runs=[other], store_root=root)
    colours = result.metrics["colours"]
    # The nearest-neighbour distance in the policy's feature space separates the unseen colours (AUROC 1.0 in
    # every one of benchmarks/bench_ood.py's runs); MSP, max logit, energy and the 2-run value ensemble range
    # from below chance to 1.0 over seeds on this task (docs/safety.md), so they are not asserted here.
    assert colours["knn"]["auroc"] >= 0.95 and colours["knn"]["fpr95"] <= 0.2
    assert set(colours) == {"msp", "max_logit", "energy", "ensemble_disagreement", "knn"}
    stored = OODStore(root).load(result.id)
    assert stored.metrics == result.metrics and OODStore(root).list(run)[0]["id"] == result.id
    for shift in ("colours", "noise"):
        for detector, metrics in stored.metrics[shift].items():
            reference = sklearn_metrics(stored.scores["train"][detector], stored.scores[shift][detector])
            for name, value in reference.items():
                assert metrics[name] == pytest.approx(value, abs=1e-12)


@pytest.mark.slow
def test_cli_and_safety_tab(colour_runs, capsys):
    root, (run, _) = colour_runs
    store = ["--store", str(root)]
    assert main([*store, "ood", run, "--shifts", "colours,blur", "--frames", "64"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split("\t")[:3] == ["shift", "detector", "auroc"] and out[-1].startswith("ood-")
    assert len(out) == 1 + 2 * 4 + 1  # header, 2 shifts x 4 detectors (no ensemble), id
    for argv, needle in ([[*store, "ood", run, "--shifts", "tset"], "unknown shift 'tset'"],
                         [[*store, "ood", "nope"], "nope"],
                         [[*store, "ood", run, "--severity", "9"], "severity must be one of"],
                         [[*store, "calibration-shift", run], "no binary success outcome"],
                         [[*store, "alarm", run], "reward model"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err

    from widgets.safety_tab import SafetyTab

    assert SafetyTab(store_root=root).run_id == run  # opens on the run with results, not the newest
    tab = SafetyTab(store_root=root, run_id=run)
    assert tab.shift_choice.value == ["colours", "noise", "blur", "colour"]  # what applies to colour_cue
    shown = tab.table.value
    assert len(shown) == 8 and set(shown["shift"]) == {"colours", "blur"}
    assert {t["name"] for t in tab.histogram.object["data"]} == {"train", "colours", "blur"}
    tab.shift_choice.value = ["colours"]
    tab.frames_input.value = 32
    before = len(OODStore(root).list(run))
    tab._on_evaluate(wait=True)
    assert len(OODStore(root).list(run)) == before + 1 and list(tab.table.value["shift"].unique()) == ["colours"]
    tab.shift_choice.value = ["hard"]  # colour_cue has no hard mode: a message, nothing stored
    tab._on_evaluate(wait=True)
    assert "Not evaluated" in tab.message.object and len(OODStore(root).list(run)) == before + 1
    assert "reward model" in tab.alarm_pane.object


@pytest.mark.slow
def test_calibration_under_shift_on_coinrun(tmp_path):
    store = RunStore(tmp_path)
    run = train(PPOConfig(env="coinrun", num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1, width=0.25,
                          total_timesteps=64, checkpoint_every=1000, num_levels=5, bf16=False), store=store,
                progress=False)
    rows = calibration_under_shift(run, episodes=4, store_root=tmp_path, max_steps=None)
    assert [r["shift"] for r in rows] == ["train", "test", "hard"]
    sets = shift_sets(run, tmp_path)
    from workbench.calibration.predictions import PredictionStore

    for row in rows:
        assert sets[row["shift"]] == row["set_id"]
        confidence, outcome, meta = PredictionStore(tmp_path).load(row["set_id"])
        assert meta["shift"] == row["shift"] and row["n"] == len(confidence) <= 4
        assert row["brier"] == pytest.approx(np.mean((confidence - outcome) ** 2))
        assert row["accuracy"] == pytest.approx(outcome.mean())
    from widgets.safety_tab import SafetyTab

    tab = SafetyTab(store_root=tmp_path, run_id=run)
    assert set(tab.calibration.series) == {"train", "test", "hard"}
    assert tab.shift_choice.value == ["test", "hard", "noise", "blur", "colour"]
