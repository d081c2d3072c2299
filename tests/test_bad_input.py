"""Every class of bad input ends in a one-line error (exit code 2, the problem named, no traceback) and leaves
the store as it was; a damaged checkpoint is named and the newest intact one is used (issue 15).

The CLI runs in-process (`workbench.cli.main.main`); only a kill needs a subprocess (tests/test_ppo.py)."""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench.cli.main import main
from workbench.storage.runs import RunStore

TRAIN = ["train", "--env", "colour_cue", "--num-envs", "4", "--width", "0.25", "--no-progress",
         "--set", "num_steps=8", "--set", "num_minibatches=2", "--set", "update_epochs=1"]
BATCH = 4 * 8


def run_cli(capsys, store_root, *args) -> tuple[int, str, str]:
    code = main(["--store", str(store_root), *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> tuple:
    """Everything stored under `root`: every SQLite database's rows and every other file's bytes."""
    rows, files = [], []
    for path in sorted(root.rglob("*")):
        if path.name.endswith((".sqlite-wal", ".sqlite-shm")) or not path.is_file():
            continue
        if path.suffix == ".sqlite":
            with sqlite3.connect(path) as db:
                rows.append((path.name, list(db.iterdump())))
        else:
            files.append((str(path.relative_to(root)), hashlib.sha256(path.read_bytes()).hexdigest()))
    return rows, files


def assert_clean_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A tiny finished run with checkpoints at steps 64, 96, 128 (4 iterations, one checkpoint each, 3 kept)."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["--store", str(root), *TRAIN, "--timesteps", str(4 * BATCH), "--set", "checkpoint_every=1"]) == 0
    run_id = RunStore(root).list_runs()[0].id
    return root, run_id


@pytest.fixture
def store_copy(trained, tmp_path) -> tuple[Path, str]:
    root, run_id = trained
    shutil.copytree(root, tmp_path / "store")
    return tmp_path / "store", run_id


# ---- config values: every engine's config, one shared check ---------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["--set", "learning_rate=abc"], ["learning_rate", '"abc"', "a number in (0, 1]"]),
    (["--set", "learning_rate=null"], ["learning_rate=null", "a number"]),
    (["--set", "clip_coef=null"], ["clip_coef=null", "> 0"]),
    (["--set", "num_envs=1.5"], ["num_envs=1.5", "whole number"]),
    (["--set", "adam_betas=1"], ["adam_betas=1", "a list of 2 numbers"]),
    (["--set", 'staleness="x"'], ["staleness", '"x"', "whole number >= 0"]),
    (["--set", "checkpoint_every=0"], ["checkpoint_every=0", ">= 1"]),
    (["--set", "no_such_field=1"], ["no_such_field", "valid settings", "learning_rate"]),
    (["--set", "record_every=-1"], ["record_every=-1", ">= 0"]),
    (["--set", "total_timesteps=1e30"], ["total_timesteps", "1,000,000,000,000"]),
    (["--set", "gamma=NaN"], ["gamma", "finite"]),
    (["--set", "seed=true"], ["seed=true", "whole number"]),
    (["--set", "learning_rate"], ["KEY=VALUE"]),
    (["--algo", "ppg", "--set", "n_pi=0"], ["PPGConfig", "n_pi=0"]),
    (["--algo", "ppg-ewma", "--set", "beta_prox=1"], ["beta_prox=1", "[0, 1)"]),
    (["--algo", "ppo-rm", "--set", "kl_coef=-1"], ["kl_coef=-1"]),
    (["--algo", "ppo-rm", "--set", "reward_model=nowhere.pt"], ["reward model", "nowhere.pt", "does not exist"]),
    (["--batch-scale", "abc"], ["batch scale"]),
    (["--set", 'distribution_mode="medium"'], ["distribution_mode", "'medium'", "easy, hard"]),
    (["--device", "nonsense"], ["unknown device 'nonsense'", "valid: 'auto', 'cpu'"]),
    (["--device", "meta"], ["'meta' is not one the workbench runs on"]),
])
def test_bad_train_settings_are_one_line_errors(capsys, tmp_path, extra, words):
    RunStore(tmp_path).close()
    before = snapshot(tmp_path)
    assert_clean_error(*run_cli(capsys, tmp_path, *TRAIN, "--timesteps", BATCH, *extra), *words)
    assert snapshot(tmp_path) == before


def test_the_python_api_and_stored_configs_get_the_same_check():
    from workbench.registry import config_from_run, make_config
    from workbench.rl.algos.ppg import PPGConfig
    from workbench.rl.algos.ppo import PPOConfig

    with pytest.raises(ValueError, match=r"learning_rate=\"abc\": expected a number in \(0, 1\]"):
        PPOConfig(learning_rate="abc").validate()
    with pytest.raises(ValueError, match="aux_epochs=-1"):
        PPGConfig(aux_epochs=-1).validate()
    with pytest.raises(ValueError, match="unknown PPOConfig settings"):
        make_config("ppo", learning_rat=1.0)
    with pytest.raises(ValueError, match="staleness"):
        config_from_run("ppo-ewma", {"staleness": [1]})
    # JSON-ish input that is unambiguous is converted to the declared type
    config = make_config("ppo", total_timesteps=25e6, adam_betas=[0.9, 0.99])
    assert config.total_timesteps == 25_000_000 and isinstance(config.total_timesteps, int)
    assert config.adam_betas == (0.9, 0.99)


def test_the_launch_form_and_sweeps_use_it_too(tmp_path):
    from workbench.monitor.launch import validate_launch
    from workbench.studies.benchmark import run_grid

    with pytest.raises(ValueError, match='num_levels="x": expected a whole number >= 0'):
        validate_launch("ppo", {"env": "colour_cue", "num_levels": "x"})
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        run_grid("generalization", ["coinrun"], ["ppo"], 1, store=RunStore(tmp_path),
                 overrides={"checkpoint_every": 0})
    assert RunStore(tmp_path).list_runs() == []


# ---- file arguments -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["labels", "import", "{missing}", "--campaign", "c", "--kind", "text_pair"], ["{missing}", "does not exist"]),
    (["labels", "import", "{folder}", "--campaign", "c", "--kind", "text_pair"], ["{folder}", "is a folder"]),
    (["labels", "import", "{missing}", "--labels"], ["does not exist"]),
    (["labels", "export", "c", "--out", "{folder}"], ["is a folder"]),
    (["labels", "export", "c", "--out", "{missing}/x/out.jsonl"], ["does not exist"]),
    (["resume", "no-such-run"], ["unknown run id 'no-such-run'"]),
    (["eval", "no-such-run"], ["unknown run id"]),
    (["reward", "train", "--campaign", "c", "--set", "members=abc"], ['members="abc"', "whole number"]),
    (["reward", "train", "--campaign", "c", "--set", "member=3"], ["unknown RewardConfig settings", "members"]),
])
def test_bad_file_and_name_arguments_are_one_line_errors(capsys, tmp_path, args, words):
    root, folder = tmp_path / "store", tmp_path / "a-folder"
    folder.mkdir()
    RunStore(root).close()
    before = snapshot(root)
    names = {"missing": str(tmp_path / "missing.jsonl"), "folder": str(folder)}
    code, out, err = run_cli(capsys, root, *[a.format(**names) for a in args])
    assert_clean_error(code, out, err, *[w.format(**names) for w in words])
    assert snapshot(root) == before


@pytest.mark.parametrize("args, words", [
    (["demos", "export", "nope", "--format", "minari", "--out", "{out}", "--dataset-id", "workbench/x/h-v0"],
     ["unknown demonstration set 'nope'", "sets: none yet"]),
    (["demos", "export", "nope", "--format", "minari", "--out", "{out}", "--dataset-id", "../h-v0"],
     ["invalid Minari dataset id '../h-v0'", "(namespace/)name-vN"]),
    (["demos", "export", "nope", "--format", "minari", "--out", "{out}", "--dataset-id", "workbench/x/h"],
     ["invalid Minari dataset id", "a version is required"]),
    (["demos", "export", "nope", "--format", "minari", "--out", "{out}"], ["needs --out DIR and --dataset-id"]),
    (["demos", "export", "nope", "{out}/x.npz", "--dataset-id", "workbench/x/h-v0"], ["--format npz writes one"]),
    (["demos", "export", "nope", "{out}/x.npz"], ["unknown demonstration set 'nope'"]),
])
def test_bad_demonstration_exports_are_one_line_errors(capsys, tmp_path, args, words):
    from workbench.demonstrations.sets import DemonstrationStore

    root, out = tmp_path / "store", tmp_path / "out"
    DemonstrationStore(root).close()
    before = snapshot(root)
    code, out_text, err = run_cli(capsys, root, *[a.format(out=out) for a in args])
    assert_clean_error(code, out_text, err, *words)
    assert snapshot(root) == before and not out.exists()


def test_a_store_that_cannot_be_written_is_a_clear_error(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_clean_error(*run_cli(capsys, blocker / "runs", *TRAIN), "cannot open the run store", "a-file")
    # A read-only home (root ignores permissions, so the file system's refusal is simulated)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home" / "runs"))

    def read_only(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    for command in (TRAIN, ["resume", "some-run"]):
        code = main(command)
        assert_clean_error(code, *capsys.readouterr(), "Permission denied", str(tmp_path / "home"), "writable")


def test_a_store_locked_or_full_while_training_is_a_clear_error(capsys, tmp_path, monkeypatch):
    RunStore(tmp_path).close()
    before = snapshot(tmp_path)

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "create_run", full)
    assert_clean_error(*run_cli(capsys, tmp_path, *TRAIN, "--timesteps", BATCH), "disk is full")
    assert snapshot(tmp_path) == before


# ---- damaged checkpoints --------------------------------------------------------------------------------------
def _damage(store: RunStore, run_id: str, how: str) -> Path:
    step, path = store.latest_checkpoint(run_id)
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(os.urandom(len(data)))
    elif how == "deleted":
        path.unlink()
    elif how == "wrong structure":  # a readable checkpoint of another shape, checksum and all
        torch.save({"weights": torch.zeros(3)}, path)
        with sqlite3.connect(store.db_path) as db:
            db.execute("UPDATE checkpoints SET sha256 = ? WHERE run_id = ? AND step = ?",
                       (hashlib.sha256(path.read_bytes()).hexdigest(), run_id, step))
    return path


DAMAGES = ["truncated", "empty", "random", "deleted", "wrong structure"]


@pytest.mark.parametrize("how", DAMAGES)
def test_eval_names_a_damaged_checkpoint_and_uses_the_one_before(capsys, store_copy, how):
    root, run_id = store_copy
    store = RunStore(root)
    path = _damage(store, run_id, how)
    before = snapshot(root)
    code, out, err = run_cli(capsys, root, "eval", run_id, "--episodes", 1, "--device", "cpu")
    assert code == 0 and "Traceback" not in err, err
    assert f"checkpoint {path}" in err and "damaged" in err and "falling back" in err
    assert f"@ step {3 * BATCH:,}" in out  # the newest intact one
    assert snapshot(root) == before  # nothing repaired, moved or deleted by a reader
    # asked for explicitly, the damaged one is an error naming the file
    assert_clean_error(*run_cli(capsys, root, "eval", run_id, "--step", 4 * BATCH), str(path), "damaged")
    assert_clean_error(*run_cli(capsys, root, "rollout", run_id, "--step", 4 * BATCH), str(path), "damaged")
    assert snapshot(root) == before


def test_rollout_records_from_the_newest_intact_checkpoint(capsys, store_copy):
    root, run_id = store_copy
    path = _damage(RunStore(root), run_id, "truncated")
    code, out, err = run_cli(capsys, root, "rollout", run_id, "--no-hires", "--max-steps", 5)
    assert code == 0 and str(path) in err, err
    from workbench.episodes.rollouts import RolloutStore

    (info,) = RolloutStore(root).list(run_id=run_id)
    assert info.checkpoint_step == 3 * BATCH


def test_resume_after_a_truncated_checkpoint_continues_from_the_one_before(capsys, store_copy):
    root, run_id = store_copy
    store = RunStore(root)
    path = _damage(store, run_id, "truncated")
    damaged_bytes = path.read_bytes()
    store.set_status(run_id, "running", pid=2**22 + 12345)  # as after a SIGKILL: no such process
    code, out, err = run_cli(capsys, root, "resume", run_id)
    assert code == 0, err
    assert str(path) in err and "damaged" in err
    assert store.get_run(run_id).status == "finished"
    steps, iterations = store.metric_series(run_id, "iteration")
    assert list(steps) == [BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH] and list(iterations) == [1, 2, 3, 4]
    # the damaged file is kept beside the new checkpoint, never deleted
    assert path.with_name(path.name + ".damaged").read_bytes() == damaged_bytes
    assert store.latest_checkpoint(run_id) == (4 * BATCH, path) and store.load_checkpoint(run_id)["iteration"] == 4


def test_resume_step_picks_a_checkpoint_and_keeps_the_later_ones_aside(capsys, store_copy):
    root, run_id = store_copy
    store = RunStore(root)
    later = store.latest_checkpoint(run_id)[1]
    assert run_cli(capsys, root, "resume", run_id, "--step", 2 * BATCH)[0] == 0
    assert later.with_name(later.name + ".superseded").is_file()
    assert list(store.metric_series(run_id, "iteration")[1]) == [1, 2, 3, 4]
    assert_clean_error(*run_cli(capsys, root, "resume", run_id, "--step", 5), "no checkpoint at step 5")


def test_every_checkpoint_damaged_is_an_error_naming_them(capsys, store_copy):
    root, run_id = store_copy
    store = RunStore(root)
    paths = [path for _, path in store.list_checkpoints(run_id)]
    for path in paths:
        path.write_bytes(b"")
    before = snapshot(root)
    code, out, err = run_cli(capsys, root, "resume", run_id)
    assert_clean_error(code, out, err, "every checkpoint", *map(str, paths))
    assert snapshot(root) == before


# ---- liveness ---------------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_whose_process_is_gone_shows_died_and_offers_resume(capsys, tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run = store.create_run(algo="ppo", env="colour_cue", config={})
    store.log_metrics(run, 96, {"episode_return": 1.0})
    store.set_status(run, "running", pid=_dead_pid())
    assert store.get_run(run).died and store.get_run(run).display_status == "died"
    code, out, _ = run_cli(capsys, tmp_path, "runs")
    assert code == 0 and " died " in out and f"died at env step 96" in out and f"workbench resume {run}" in out

    from widgets.runs_table import RunsTable

    table = RunsTable(store_root=tmp_path)
    assert table.tabulator.value.loc[run, "status"] == "died" and "1 died" in table._status.object
    from workbench.monitor import launch

    resumed = []
    monkeypatch.setattr(launch, "resume_run", lambda root, run_id: resumed.append((Path(root), run_id)) or 1)
    table.selected_run_ids = [run]
    assert table.resume_selected() == [run] and resumed == [(tmp_path.absolute(), run)]


def test_a_live_process_with_a_stale_heartbeat_has_died(tmp_path):
    from workbench.storage.liveness import HEARTBEAT_STALE_S

    store = RunStore(tmp_path)
    run = store.create_run(algo="ppo", env="colour_cue", config={})
    store.set_status(run, "running", pid=os.getpid())  # a live python process: this one
    assert not store.get_run(run).died
    with sqlite3.connect(store.db_path) as db:
        db.execute("UPDATE runs SET heartbeat_at = ?", (time.time() - HEARTBEAT_STALE_S - 1,))
    assert store.get_run(run).died  # e.g. the pid was reused after a reboot
    store.heartbeat(run)
    assert not store.get_run(run).died


# ---- the dashboard server ---------------------------------------------------------------------------------------
def test_the_dashboard_serves_component_resources_of_its_own_modules_only(tmp_path, monkeypatch):
    import socket
    import urllib.error
    import urllib.request

    import panel as pn

    from widgets import app

    served = []
    monkeypatch.setattr(app.pn, "serve", lambda *args, **kwargs: served.append(kwargs))
    assert app.main(["--store", str(tmp_path)]) == 0
    assert [p[1].__name__ for p in served[0]["extra_patterns"]] == ["OwnComponentResourceHandler"]
    monkeypatch.undo()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = pn.serve({"/": lambda: app.build_app(tmp_path)}, port=port, address="127.0.0.1", threaded=True,
                      show=False, extra_patterns=app.guarded_component_routes())
    try:
        def status(path: str) -> int:
            for _ in range(100):  # the server thread may still be starting
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/components/{path}", timeout=5) as r:
                        return r.status
                except urllib.error.HTTPError as e:
                    return e.code
                except urllib.error.URLError:
                    time.sleep(0.1)
            raise AssertionError("the server did not start")

        assert "this" not in sys.modules
        assert status("this/X/__css__/x.css") == 403  # would import (and run) the module `this`
        assert "this" not in sys.modules
        assert status("json/JSONDecoder/__css__/x.css") == 403  # an installed module, not the dashboard's
        assert status("panel.template.bootstrap/BootstrapTemplate/_css/bootstrap.css") == 200  # its own
    finally:
        server.stop()


@pytest.mark.slow
def test_a_killed_run_with_a_truncated_checkpoint_shows_died_and_resumes_from_the_one_before(capsys, tmp_path):
    total = 40 * BATCH
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--store", str(tmp_path), *TRAIN,
                             "--timesteps", str(total), "--set", "checkpoint_every=2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = RunStore(tmp_path)
    deadline = time.time() + 120
    while True:  # until two checkpoints exist and the run is past the second
        runs = store.list_runs()
        if runs and len(store.list_checkpoints(runs[0].id)) >= 2 and runs[0].env_steps > store.latest_checkpoint(
                runs[0].id)[0]:
            break
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    run_id = runs[0].id
    (before, _), (last, path) = store.list_checkpoints(run_id)[-2:]
    path.write_bytes(path.read_bytes()[:1000])  # the latest checkpoint truncated

    code, out, _ = run_cli(capsys, tmp_path, "runs")
    assert code == 0 and f"run {run_id} died at env step" in out and f"workbench resume {run_id}" in out
    code, out, err = run_cli(capsys, tmp_path, "resume", run_id)
    assert code == 0 and str(path) in err and "damaged" in err
    assert store.get_run(run_id).display_status == "finished"
    steps, iterations = store.metric_series(run_id, "iteration")
    assert list(steps) == list(range(BATCH, total + 1, BATCH)) and list(iterations) == list(range(1, 41))
    assert path.with_name(path.name + ".damaged").stat().st_size == 1000


def test_a_store_from_before_checksums_and_heartbeats_opens_and_still_falls_back(store_copy):
    root, run_id = store_copy
    with sqlite3.connect(root / "workbench.sqlite") as db:  # as an older workbench wrote it
        db.execute("ALTER TABLE checkpoints DROP COLUMN sha256")
        db.execute("ALTER TABLE runs DROP COLUMN heartbeat_at")
    store = RunStore(root)
    assert store.get_run(run_id).heartbeat_at is None and not store.get_run(run_id).died
    steps = [step for step, _ in store.list_checkpoints(run_id)]
    path = store.latest_checkpoint(run_id)[1]
    assert store.load_checkpoint(run_id)["global_step"] == steps[-1]  # no checksum: torch's own reading
    path.write_bytes(path.read_bytes()[:5000])
    damaged = []
    assert store.load_checkpoint(run_id, on_damaged=damaged.append)["global_step"] == steps[-2]
    assert [(d.step, d.path) for d in damaged] == [(steps[-1], path)] and "torch cannot read it" in str(damaged[0])


# ---- the labeling page when the store cannot be written ----------------------------------------------------------
def test_a_failed_save_keeps_the_answer_on_screen_and_loses_nothing_acknowledged(tmp_path, monkeypatch):
    from widgets.comparison import ComparisonWidget
    from widgets.labeling import LabelingTab
    from workbench.preferences.labels import LabelStore

    store = LabelStore(tmp_path)
    store.create_campaign("texts", "text_pair", flags=("offensive",))
    store.add_items("texts", [{"prompt": f"p{i}", "a": f"A{i}", "b": f"B{i}"} for i in range(4)])
    widget = ComparisonWidget(store=store, campaign="texts", labeler="alice")
    widget.handle_action("left", widget.assignment.id)  # acknowledged: "Saved"
    assert "Saved" in widget.message.object
    acknowledged = store.export_rows("texts")
    assert len(acknowledged) == 1

    shown = widget.assignment
    widget.comment.value_input = "the second answer is rude"
    widget.flags.value = ["offensive"]
    real_submit = store.submit

    def disk_full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "submit", disk_full)
    widget.handle_action("right", shown.id)
    assert "Not saved (database or disk is full)" in widget.message.object and "Retry" in widget.message.object
    assert widget.retry_button.visible
    assert widget.assignment is shown and widget.bar.assignment_id == shown.id  # the same item, still answerable
    assert widget.comment.value_input == "the second answer is rude" and widget.flags.value == ["offensive"]
    assert store.export_rows("texts") == acknowledged

    monkeypatch.setattr(store, "submit", real_submit)
    widget.retry()
    rows = store.export_rows("texts")
    assert rows[0] == acknowledged[0] and len(rows) == 2
    assert rows[1]["comment"] == "the second answer is rude" and not widget.retry_button.visible
    assert widget.assignment is not None and widget.assignment.id != shown.id

    # saved, then the next item cannot be fetched (store locked): the label stays saved, Retry fetches
    real_next = store.next_item
    monkeypatch.setattr(store, "next_item", lambda *a, **k: (_ for _ in ()).throw(
        sqlite3.OperationalError("database is locked")))
    widget.handle_action("left", widget.assignment.id)
    assert "Saved, but the next item could not be loaded (database is locked)" in widget.message.object
    assert len(store.export_rows("texts")) == 3
    monkeypatch.setattr(store, "next_item", real_next)
    widget.retry()
    assert widget.assignment is not None and not widget.retry_button.visible

    # the page around it: a locked store while listing campaigns is a message, not an exception
    tab = LabelingTab(store_root=tmp_path, user="bob", role="labeler")
    monkeypatch.setattr(tab.store, "list_campaigns", disk_full)
    tab.refresh_campaigns()
    assert "Could not read the label store" in tab.message.object
