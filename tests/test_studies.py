"""Studies: specs, their storage, moving runs between stores, and sweeps on the local and Ray executors
(workbench.studies, workbench.storage.studies, workbench.storage.transfer)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.storage.runs import RunStore
from workbench.storage.studies import StudyStore
from workbench.storage.transfer import export_bundle, import_bundle
from workbench.studies.executors import LocalExecutor
from workbench.studies.spec import StudySpec, job_path, parse_axis, register_job_kind
from workbench.studies.sweep import run_study

REPO = Path(__file__).resolve().parents[1]
TINY = {"env": "colour_cue", "num_envs": 4, "num_steps": 16, "num_minibatches": 2}


# ---- specs -----------------------------------------------------------------------------------------------------

def test_grid_list_and_explicit_points():
    axes = {"width": [0.25, 0.5, 1.0], "seed": [0, 1]}
    grid = StudySpec(name="g", axes=axes).validate()
    assert grid.axis_points() == [dict(zip(axes, v)) for v in itertools.product(*axes.values())]
    zipped = StudySpec(name="z", axes={"width": [0.25, 1.0], "seed": [3, 4]}, mode="list").validate()
    assert zipped.axis_points() == [{"width": 0.25, "seed": 3}, {"width": 1.0, "seed": 4}]
    explicit = StudySpec(name="e", points=[{"width": 0.5}, {"width": 1.0, "seed": 2}]).validate()
    assert explicit.axis_names() == ["width", "seed"]
    assert explicit.settings({"width": 0.5}) == {"distribution_mode": "easy", "algo": "ppo", "width": 0.5}
    names = [grid.run_name(p) for p in grid.axis_points()]
    assert len(set(names)) == 6 and names[0] == "g/width=0.25,seed=0"


@pytest.mark.parametrize("kwargs, message", [
    (dict(axes={"width": [1, 2], "seed": [0]}, mode="list"), "equal lengths"),
    (dict(axes={"width": []}), "non-empty list"),
    (dict(points=[{"width": 1}, {"width": 1}]), "more than once"),
    (dict(kind="nope", axes={"width": [1]}), "unknown study kind"),
    (dict(axes={}), "no runs"),
    (dict(axes={"width": [1]}, mode="diagonal"), "axis mode"),
])
def test_bad_specs_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudySpec(name="bad", **kwargs).validate()


def test_toml_study_and_axis_flags(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent("""
        name = "widths"
        algo = "ppg"
        [base]
        env = "colour_cue"
        total_timesteps = 512
        [axes]
        width = [0.25, 0.5]
        seed = [0, 1, 2]
    """))
    spec = StudySpec.from_toml(path)
    assert (spec.algo, spec.base["total_timesteps"], len(spec.axis_points())) == ("ppg", 512, 6)
    assert StudySpec.from_toml(path, name="other").name == "other"
    path.write_text("name = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        StudySpec.from_toml(path)
    assert parse_axis("width=0.25,1") == ("width", [0.25, 1])
    assert parse_axis("env=coinrun,starpilot") == ("env", ["coinrun", "starpilot"])
    with pytest.raises(ValueError, match="KEY=V1"):
        parse_axis("width")


def test_job_kinds_register_by_import_path():
    register_job_kind("fake-kind", "some.module:job")
    assert job_path("fake-kind") == "some.module:job"
    assert job_path("pkg.mod:fn") == "pkg.mod:fn"
    with pytest.raises(ValueError, match="module-level"):
        register_job_kind("bad", lambda s, r, n: "x")


# ---- storage ----------------------------------------------------------------------------------------------------

def test_schema_upgrade_from_version_2_keeps_runs(tmp_path):
    store = RunStore(tmp_path)
    run = store.create_run(algo="ppo", env="coinrun", config={"a": 1})
    store.log_metrics(run, 8, {"loss": 0.5})
    store.close()
    conn = sqlite3.connect(tmp_path / "workbench.sqlite")
    conn.executescript("DROP TABLE study_runs; DROP TABLE studies; DROP INDEX runs_name; PRAGMA user_version = 2;")
    conn.close()
    studies = StudyStore(tmp_path)  # opening upgrades
    assert studies.list_studies() == [] and studies.runs.metric_series(run, "loss")[1].tolist() == [0.5]
    version = sqlite3.connect(tmp_path / "workbench.sqlite").execute("PRAGMA user_version").fetchone()[0]
    assert version == 3


def test_study_registration_is_idempotent_and_refuses_a_changed_spec(tmp_path):
    studies = StudyStore(tmp_path)
    spec = {"axes": {"x": [1, 2]}}
    assert studies.register("s", kind="train", spec=spec, points=[{"x": 1}, {"x": 2}], run_names=["s/1", "s/2"])
    assert not studies.register("s", kind="train", spec=spec, points=[{"x": 1}, {"x": 2}], run_names=["s/1", "s/2"])
    with pytest.raises(ValueError, match="different spec"):
        studies.register("s", kind="train", spec={"axes": {"x": [3]}}, points=[{"x": 3}], run_names=["s/3"])
    studies.set_point("s", 1, "failed", error="boom")
    assert [(p.point, p.status, p.error) for p in studies.points("s")] == [({"x": 1}, "queued", None),
                                                                          ({"x": 2}, "failed", "boom")]
    with pytest.raises(ValueError, match="unknown study 'nope'.*studies: s"):
        studies.get("nope")


def test_bundle_moves_runs_between_stores_and_replaces_only_later_metrics(tmp_path):
    a, b = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    run = a.create_run(algo="ppo", env="coinrun", config={"width": 0.25}, name="s/x=1")
    for step in (10, 20, 30):
        a.log_metrics(run, step, {"loss": step / 10, "nan": float("nan")})
    weights = torch.arange(6.0).reshape(2, 3)
    a.save_checkpoint(run, 20, {"w": weights})
    a.set_status(run, "stopped")
    ids = import_bundle(b, export_bundle(a, [run]))
    assert ids == [run] and b.get_run(run).name == "s/x=1" and b.get_run(run).status == "stopped"
    for name in ("loss", "nan"):
        np.testing.assert_array_equal(b.metric_series(run, name)[1], a.metric_series(run, name)[1])
    assert torch.equal(b.load_checkpoint(run)["w"], weights)
    # A resumed copy trained on from step 20 elsewhere: rows up to 20 are kept as they were, later ones replaced.
    first_ids = [m.id for m in b.read_metrics(run) if m.step <= 20]
    a.truncate_metrics(run, 20)
    a.log_metrics(run, 40, {"loss": 4.0})
    a.save_checkpoint(run, 40, {"w": weights + 1})
    a.set_status(run, "finished")
    import_bundle(b, export_bundle(a, [run]), after_step={run: 20})
    assert b.metric_series(run, "loss")[0].tolist() == [10, 20, 40]
    assert [m.id for m in b.read_metrics(run) if m.step <= 20] == first_ids
    assert torch.equal(b.load_checkpoint(run)["w"], weights + 1) and b.get_run(run).status == "finished"
    with pytest.raises(ValueError, match="outside the store"):
        import_bundle(b, {"runs": [], "files": {"../evil": b"x"}})


# ---- sweeps -----------------------------------------------------------------------------------------------------

FAKE_JOBS = '''
from workbench.storage.runs import RunStore

def job(settings, store_root, name):
    """Logs x * y; x == 3 fails."""
    if settings["x"] == 3:
        raise ValueError("x = 3 is not allowed")
    store = RunStore(store_root)
    runs = store.runs_named(name)
    run = runs[0].id if runs else store.create_run(algo="fake", env="none", config=settings, name=name)
    store.log_metrics(run, 1, {"product": settings["x"] * settings["y"]})
    store.set_status(run, "finished")
    return run
'''


def test_local_sweep_records_results_reports_failures_and_skips_finished_runs(tmp_path, monkeypatch):
    (tmp_path / "fake_jobs.py").write_text(FAKE_JOBS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO)]))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = StudySpec(name="fake", kind="fake_jobs:job", algo=None, axes={"x": [1, 2, 3], "y": [10, 20]})
    report = run_study(spec, tmp_path / "runs", LocalExecutor(tmp_path / "runs", parallel=2), log=lambda m: None)
    store = RunStore(tmp_path / "runs")
    assert report.status == "failed" and len(report.failed) == 2
    assert all("x = 3 is not allowed" in p.error for p in report.failed)
    for p in report.points:
        if p.point["x"] != 3:
            assert p.status == "finished"
            assert store.metric_series(p.run_id, "product")[1].tolist() == [p.point["x"] * p.point["y"]]
    stored = StudyStore(tmp_path / "runs").points("fake")
    assert [(s.point, s.status, s.run_id) for s in stored] == [(p.point, p.status, p.run_id) for p in report.points]
    # Re-running: finished runs are skipped (not re-run: one metric row each), the failed ones are tried again.
    again = run_study(spec, tmp_path / "runs", LocalExecutor(tmp_path / "runs", parallel=2), log=lambda m: None)
    assert [p.run_id for p in again.points] == [p.run_id for p in report.points]
    assert all(len(store.read_metrics(p.run_id)) == 1 for p in again.points if p.run_id)
    assert len(again.failed) == 2


def _sweep(store, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "workbench.cli", "--store", str(store), "sweep", "--name", "two-axis",
            "--algo", "ppo", *[f"--set={k}={json.dumps(v)}" for k, v in TINY.items()],
            "--set", "checkpoint_every=1", "--axis", "total_timesteps=768,1024", "--axis", "seed=0,1", "--zip", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow
def test_two_axis_sweep_survives_a_sigkill_of_its_driver(tmp_path):
    store_root = tmp_path / "runs"
    driver = _sweep(store_root, "--parallel", "2")
    store = RunStore(store_root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once a run has checkpointed and is training on
        training = next((r for r in store.list_runs() if r.status == "running" and store.latest_checkpoint(r.id)),
                        None)
        if training is not None:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no run checkpointed in time:\n{driver.communicate()[0]}")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    interrupted = {r.id: r.env_steps for r in store.list_runs()}
    # Its jobs get SIGTERM from the kernel: they checkpoint and stop rather than train on as orphans.
    deadline = time.monotonic() + 60
    while any(r.status == "running" and _alive(r.pid) for r in store.list_runs()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(r.status != "running" or not _alive(r.pid) for r in store.list_runs())
    assert store.get_run(training.id).status == "stopped"  # it checkpointed and recorded why it ended

    out, _ = _sweep(store_root, "--parallel", "2").communicate(timeout=300)
    points = StudyStore(store_root).points("two-axis")
    assert [p.status for p in points] == ["finished"] * 2, out
    for p in points:
        assert len(store.runs_named(p.run_name)) == 1  # resumed, not started again
        info = store.get_run(p.run_id)
        steps, _ = store.metric_series(p.run_id, "iteration")
        assert info.env_steps == p.point["total_timesteps"] and len(steps) == len(set(steps.tolist()))
        assert info.config["seed"] == p.point["seed"]
    assert set(interrupted) <= {p.run_id for p in points}


def _alive(pid) -> bool:
    from workbench.storage.runs import process_alive

    return process_alive(pid)


@pytest.mark.slow
def test_two_axis_sweep_on_a_local_ray_runtime(tmp_path):
    ray = pytest.importorskip("ray")
    from workbench.studies.executors import RayExecutor

    store_root = tmp_path / "runs"
    spec = StudySpec(name="ray", algo="ppo", base={**TINY, "total_timesteps": 512},
                     axes={"width": [0.25], "seed": [0, 1]})
    # One run was interrupted at step 384 on this machine: the Ray task must resume it from the shipped checkpoint.
    from workbench import registry

    store = RunStore(store_root)
    seed0 = spec.run_name(spec.axis_points()[0])
    config = registry.make_config("ppo", **spec.base, width=0.25, seed=0, checkpoint_every=1, name=seed0)
    partial = registry.train(config, store=store, progress=False)
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("DELETE FROM checkpoints WHERE run_id = ? AND step > 384", (partial,))
    store.truncate_metrics(partial, 384)
    store.set_status(partial, "stopped")
    kept_ids = [m.id for m in store.read_metrics(partial)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_study(spec, store_root, RayExecutor(store_root, cpus_per_run=1), log=lambda m: None)
    finally:
        ray.shutdown()
    assert report.status == "finished", report.summary()
    assert report.points[0].run_id == partial and [m.id for m in store.read_metrics(partial)][:len(kept_ids)] == kept_ids
    for p in report.points:
        info = store.get_run(p.run_id)
        assert info.status == "finished" and info.env_steps == 512 and info.name == p.run_name
        step, path = store.latest_checkpoint(p.run_id)
        assert step == 512 and path.is_file() and str(path).startswith(str(store_root))
        assert "model" in store.load_checkpoint(p.run_id)["state"]
