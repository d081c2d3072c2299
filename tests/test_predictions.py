"""PredictionStore (atomic npz + SQLite index, all-or-nothing JSONL import) and value-function predictions."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass

import numpy as np
import pytest

from workbench.calibration import predictions as preds
from workbench.calibration.predictions import (
    PredictionImportError,
    PredictionStore,
    UnknownPredictionSetError,
    parse_predictions_jsonl,
    predictions_from_episodes,
)


@pytest.fixture
def store(tmp_path):
    return PredictionStore(tmp_path / "store")


def _files(store):
    return sorted(p.name for p in store.directory.iterdir())


def test_save_load_roundtrip_and_index(store, tmp_path):
    rng = np.random.default_rng(0)
    c = rng.random(1000)
    y = (rng.random(1000) < c).astype(int)
    a = store.save("rm held-out", c, y, source="reward_model", meta={"run": "r1", "k": 3})
    b = store.save("coinrun V", [0.1, 0.9, 0.5], [False, True, True], source="value_function")
    conf, out, meta = store.load(a)
    np.testing.assert_array_equal(conf, c)  # float64 kept bit for bit
    np.testing.assert_array_equal(out, y)
    assert out.dtype == np.int8 and meta == {"run": "r1", "k": 3}
    assert [i.id for i in store.list()] == [b, a]  # newest first
    assert [i.id for i in store.list(source="reward_model")] == [a]
    assert store.list(source="jsonl") == []
    info = store.info(b)
    assert (info.name, info.source, info.n) == ("coinrun V", "value_function", 3)
    assert info.accuracy == pytest.approx(2 / 3) and info.mean_confidence == pytest.approx(0.5)
    assert info.path.endswith(f"{b}.npz")
    # another store object (another process, a restarted dashboard) sees the same sets
    again = PredictionStore(tmp_path / "store")
    assert [i.id for i in again.list()] == [b, a]
    np.testing.assert_array_equal(again.load(b)[1], [0, 1, 1])
    assert (tmp_path / "store" / "predictions.sqlite").exists()
    assert _files(store) == sorted([f"{a}.npz", f"{b}.npz"])  # no temporary files left behind
    # the npz is plain arrays: it loads without pickle and carries its own meta
    with np.load(info.path, allow_pickle=False) as data:
        assert json.loads(str(data["meta_json"])) == {}


def test_unknown_id_and_delete(store):
    with pytest.raises(UnknownPredictionSetError, match="unknown prediction set 'nope'"):
        store.load("nope")
    sid = store.save("x", [0.2], [0], source="jsonl")
    store.delete(sid)
    assert store.list() == [] and _files(store) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"confidence": [0.5, 1.2], "outcome": [0, 1]}, r"confidence must be finite probabilities in \[0, 1\]"),
    ({"confidence": [0.5, np.nan], "outcome": [0, 1]}, "confidence must be finite"),
    ({"confidence": [0.5, 0.2], "outcome": [0, 2]}, "outcome must be 0/1"),
    ({"confidence": [0.5, 0.2], "outcome": [0]}, "same length"),
    ({"confidence": [], "outcome": []}, "non-empty 1-D"),
    ({"confidence": [[0.5]], "outcome": [[1]]}, "non-empty 1-D"),
    ({"confidence": [0.5], "outcome": [1], "name": " "}, "name must be a non-empty string"),
    ({"confidence": [0.5], "outcome": [1], "source": ""}, "source must be a non-empty string"),
    ({"confidence": [0.5], "outcome": [1], "meta": {"x": float("nan")}}, "JSON-serializable"),
    ({"confidence": [0.5], "outcome": [1], "meta": {"x": object()}}, "JSON-serializable"),
    ({"confidence": [0.5], "outcome": [1], "meta": [1]}, "meta must be a dict"),
])
def test_bad_input_is_refused_and_nothing_is_written(store, kwargs, match):
    kept = store.save("kept", [0.3], [1], source="jsonl")
    args = {"name": "n", "source": "reward_model", "meta": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        store.save(args["name"], args["confidence"], args["outcome"], source=args["source"], meta=args["meta"])
    assert [i.id for i in store.list()] == [kept] and _files(store) == [f"{kept}.npz"]


def test_failed_write_leaves_no_file_and_no_row(store, monkeypatch):
    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(preds.np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        store.save("x", [0.5], [1], source="jsonl")
    assert store.list() == [] and _files(store) == []


def test_failed_index_commit_removes_the_file(store, monkeypatch):
    real = store._write

    def failing_write():
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "_write", failing_write)
    with pytest.raises(sqlite3.OperationalError):
        store.save("x", [0.5], [1], source="jsonl")
    monkeypatch.setattr(store, "_write", real)
    assert store.list() == [] and _files(store) == []


def test_newer_schema_is_refused(tmp_path):
    PredictionStore(tmp_path)
    with sqlite3.connect(tmp_path / "predictions.sqlite") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        PredictionStore(tmp_path)


# ----------------------------------------------------------------------------------------------- JSONL

def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_jsonl(store, tmp_path):
    path = _write(tmp_path / "model_a.jsonl", [
        '{"confidence": 0.9, "correct": 1, "id": "q1"}',
        '',  # blank lines are skipped
        '{"confidence": 0, "correct": false}',
        '{"confidence": 1, "correct": true}',
        '{"correct": 0, "confidence": 0.25}',
    ])
    sid = store.import_jsonl(path)
    info = store.info(sid)
    assert (info.name, info.source, info.n) == ("model_a", "jsonl", 4)
    conf, out, meta = store.load(sid)
    np.testing.assert_array_equal(conf, [0.9, 0.0, 1.0, 0.25])
    np.testing.assert_array_equal(out, [1, 0, 1, 0])
    assert meta["imported_from"] == "model_a.jsonl"
    # bytes (an uploaded file) and a named set
    sid2 = store.import_jsonl(path.read_bytes(), name="upload")
    assert store.info(sid2).name == "upload" and store.info(sid2).n == 4
    c, y = parse_predictions_jsonl(io.StringIO(path.read_text()))
    np.testing.assert_array_equal(c, conf)
    np.testing.assert_array_equal(y, out)


def test_import_reports_every_bad_line_and_stores_nothing(store, tmp_path):
    path = _write(tmp_path / "bad.jsonl", [
        '{"confidence": 0.9, "correct": 1}',
        '{"confidence": 61, "correct": 1}',
        'not json',
        '{"confidence": 0.5}',
        '[0.5, 1]',
        '{"confidence": "0.5", "correct": 2}',
        '{"confidence": NaN, "correct": 1}',
        '{"confidence": 0.3, "correct": 0}',
    ])
    with pytest.raises(PredictionImportError) as err:
        store.import_jsonl(path)
    lines = [ln for ln, _ in err.value.errors]
    assert lines == [2, 3, 4, 5, 6, 7]
    msgs = dict(err.value.errors)
    assert "divide percentages by 100" in msgs[2]
    assert "not valid JSON" in msgs[3]
    assert "missing 'correct'" in msgs[4]
    assert "expected a JSON object" in msgs[5]
    assert "'confidence' must be a number" in msgs[6] and "'correct' must be 0, 1" in msgs[6]
    assert "line 2:" in str(err.value) and "nothing imported" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert store.list() == [] and _files(store) == []


def test_import_edge_cases(store, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(PredictionImportError, match="empty"):
        store.import_jsonl(empty)
    with pytest.raises(PredictionImportError, match="not UTF-8") as err:
        store.import_jsonl(b'{"confidence": 0.5, "correct": 1}\n\xff\xfe\n')
    assert err.value.errors[0][0] == 2
    with pytest.raises(ValueError, match="cannot read"):
        store.import_jsonl(tmp_path / "missing.jsonl")
    many = _write(tmp_path / "many.jsonl", ['{"confidence": 2, "correct": 1}'] * 30)
    with pytest.raises(PredictionImportError, match=r"and 10 more") as err:
        store.import_jsonl(many)
    assert len(err.value.errors) == 30
    assert store.list() == []


# ------------------------------------------------------------------------------------- value functions

@dataclass
class FakeEpisode:  # the fields of workbench.episodes.rollouts.Episode that predictions_from_episodes reads
    values: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    env: str = "coinrun"
    id: str | None = None

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))


def _episode(v0, success, length=5, done=True, eid=None):
    rewards = np.zeros(length, np.float32)
    if success:
        rewards[-1] = 10.0
    dones = np.zeros(length, bool)
    dones[-1] = done
    values = np.full(length, np.nan, np.float32)
    values[0] = v0
    return FakeEpisode(values=values, rewards=rewards, dones=dones, id=eid)


def test_predictions_from_episodes_mapping():
    eps = [_episode(8.0, True, eid="e0"), _episode(3.0, False, eid="e1"), _episode(12.0, True),
           _episode(-1.0, False), _episode(5.0, False, done=False)]
    conf, out, meta = predictions_from_episodes(eps, success_reward=10.0)
    # plain-loop reference: clip(V(s0) / 10, 0, 1) over the terminal episodes; outcome = return reached 10
    ref_c = [min(max(e.values[0] / 10.0, 0.0), 1.0) for e in eps if e.dones[-1]]
    ref_y = [int(e.ret >= 10.0) for e in eps if e.dones[-1]]
    np.testing.assert_allclose(conf, ref_c)
    np.testing.assert_array_equal(out, ref_y)
    assert meta["n_clipped_low"] == 1 and meta["n_clipped_high"] == 1 and meta["n_truncated_skipped"] == 1
    assert meta["episode_ids"] == ["e0", "e1"] and meta["envs"] == ["coinrun"]
    conf, out, meta = predictions_from_episodes(eps, include_truncated=True, value_scale=0.5)
    np.testing.assert_allclose(conf, [0.4, 0.15, 0.6, 0.0, 0.25])
    np.testing.assert_array_equal(out, [1, 0, 1, 0, 0])  # a truncated episode without success: a failure
    assert preds.SUCCESS_REWARD["coinrun"] == 10.0


def test_predictions_from_episodes_errors():
    with pytest.raises(ValueError, match="random policy has NaN values"):
        predictions_from_episodes([_episode(np.nan, True)])
    with pytest.raises(ValueError, match="success_reward must be a positive"):
        predictions_from_episodes([_episode(1.0, True)], success_reward=0)
    with pytest.raises(ValueError, match="all 1 episodes were truncated"):
        predictions_from_episodes([_episode(1.0, True, done=False)])
    with pytest.raises(ValueError, match="no episodes"):
        predictions_from_episodes([])


def test_value_predictions_store_and_calibrate(store):
    """End to end: episodes -> predictions -> store -> metrics (a perfectly calibrated synthetic critic)."""
    from workbench.calibration import metrics as cal

    rng = np.random.default_rng(1)
    p = rng.random(400)
    eps = [_episode(10.0 * q, rng.random() < q) for q in p]
    conf, out, meta = predictions_from_episodes(eps)
    sid = store.save("critic", conf, out, source="value_function", meta=meta)
    c, y, m = store.load(sid)
    np.testing.assert_allclose(c, p, rtol=1e-6)  # float32 values
    assert m["mapping"].startswith("clip(")
    assert cal.ece(c, y, n_bins=10) < 0.1


def test_real_rollout_episodes_if_available(tmp_path):
    """With the lead's workbench.episodes.rollouts (when present): a recorded episode has the fields we read."""
    rollouts = pytest.importorskip("workbench.episodes.rollouts")
    ep = rollouts.Episode(
        frames=np.zeros((3, 64, 64, 3), np.uint8), actions=np.zeros(3, np.int64),
        probs=np.full((3, 15), 1 / 15, np.float32), values=np.array([7.0, 8.0, 9.0], np.float32),
        rewards=np.array([0, 0, 10], np.float32), dones=np.array([False, False, True]), env="coinrun",
        level_seed=3, levels="seed", distribution_mode="easy", policy="checkpoint")
    conf, out, _ = predictions_from_episodes([ep])
    np.testing.assert_allclose(conf, [0.7])
    np.testing.assert_array_equal(out, [1])
    # a stored random-policy episode has no value estimates: a clear error, not NaN confidences
    [eid] = rollouts.record_random("colour_cue", episodes=1, hires=False, store_root=tmp_path)
    with pytest.raises(ValueError, match="random policy has NaN values"):
        predictions_from_episodes([rollouts.RolloutStore(tmp_path).load(eid)])


def test_value_function_predictions_from_a_runs_recorded_episodes(tmp_path):
    from workbench.calibration.predictions import save_value_function_predictions
    from workbench.episodes.rollouts import Episode, RolloutStore

    rollouts = RolloutStore(tmp_path)
    cases = [(8.0, True, True), (3.0, False, True), (12.0, True, True), (6.0, False, False)]  # (V(s0), success, done)
    for k, (v0, success, done) in enumerate(cases):
        t = 4
        rewards = np.zeros(t, np.float32)
        rewards[-1] = 10.0 * success
        rollouts.save(Episode(frames=np.zeros((t, 64, 64, 3), np.uint8), actions=np.zeros(t, np.int64),
                              probs=np.full((t, 15), 1 / 15, np.float32), values=np.full(t, v0, np.float32),
                              rewards=rewards, dones=np.arange(t) == (t - 1 if done else t), env="coinrun",
                              level_seed=k, levels="test", distribution_mode="easy", policy="checkpoint",
                              run_id="run-a", checkpoint_step=4096))
    set_id = save_value_function_predictions("run-a", tmp_path)
    confidence, outcome, meta = PredictionStore(tmp_path).load(set_id)
    # newest first in the store; the cut-short episode (no outcome) is left out
    assert sorted(zip(confidence.tolist(), outcome.tolist())) == [(0.3, 0), (0.8, 1), (1.0, 1)]
    assert meta["run_id"] == "run-a" and meta["checkpoint_steps"] == [4096] and meta["n_truncated_skipped"] == 1
    assert PredictionStore(tmp_path).list()[0].source == "value_function"
    with pytest.raises(ValueError, match="no recorded episodes"):
        save_value_function_predictions("run-b", tmp_path)
    rollouts.save(Episode(frames=np.zeros((1, 64, 64, 3), np.uint8), actions=[0], probs=np.full((1, 15), 1 / 15),
                          values=[1.0], rewards=[0.0], dones=[True], env="starpilot", level_seed=0, levels="test",
                          distribution_mode="easy", policy="checkpoint", run_id="run-c", checkpoint_step=1))
    with pytest.raises(ValueError, match="no binary success outcome"):
        save_value_function_predictions("run-c", tmp_path)
