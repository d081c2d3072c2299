"""Data-parallel training on 2 gloo processes (issue 18, docs/distributed.md): identical weights after an
update, the all-reduced gradient equal to the mean of each rank's own gradient (computed here, in one process),
pooled statistics equal to numpy's over the concatenated data, a 2-rank run that learns the colour-cue task,
and a SIGKILLed rank that ends the job with a clear message, then a resume with continuous metrics."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch

from workbench.distributed import group, launch
from workbench.storage.runs import RunStore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the 2 ranks of tests/distributed_worker.py saw and computed."""
    out = tmp_path_factory.mktemp("ranks")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           os.path.join(REPO, "tests", "distributed_worker.py"), str(out)]
    proc = subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_ranks_see_different_data_and_end_with_identical_weights(ranks):
    a, b = ranks
    assert not torch.equal(a["obs"], b["obs"])  # own envs, own seeds
    for name, initial in a["initial"].items():
        assert torch.equal(initial, b["initial"][name])
    changed = 0
    for name, value in a["updated"].items():
        assert torch.equal(value, b["updated"][name]), name
        changed += not torch.equal(value, a["initial"][name])
    assert changed > 0, "the update should move the weights"


def test_averaged_gradient_is_the_mean_of_each_ranks_own_gradient(ranks):
    from distributed_worker import JOB, behaviour_cloning_loss

    from workbench.rl.algos.ppo import make_policy

    core = make_policy(dataclasses.replace(JOB, num_envs=JOB.num_envs // 2))  # one process, one rank's share
    alone = []
    for rank in ranks:
        core.model.load_state_dict(rank["initial"])
        core.model.train()
        core.model.zero_grad()
        behaviour_cloning_loss(core, rank["obs"], rank["actions"]).backward()
        alone.append({n: p.grad.clone() for n, p in core.model.named_parameters()})
    for name in alone[0]:
        mean = (alone[0][name] + alone[1][name]) / 2
        assert not torch.allclose(alone[0][name], alone[1][name]) or alone[0][name].abs().max() == 0
        for rank in ranks:
            torch.testing.assert_close(rank["averaged_grads"][name], mean, rtol=1e-5, atol=1e-6)


def test_pooled_statistics_are_those_of_all_ranks_data(ranks):
    x = np.concatenate([r["x"] for r in ranks])
    for rank in ranks:
        mean, var, count = rank["pooled"]
        np.testing.assert_allclose(mean, x.mean(0), rtol=1e-10)
        np.testing.assert_allclose(var, x.var(0), rtol=1e-10)
        assert count == len(x)
    # The reward normalizer's running moments are pooled (identical on both ranks); the returns are per env.
    for key in ("mean", "var", "count"):
        assert np.allclose(np.asarray(ranks[0]["ret_rms"][key]), np.asarray(ranks[1]["ret_rms"][key]))
    assert ranks[0]["ret"].shape == (4,)


def test_num_envs_is_the_jobs_total():
    from workbench.rl.algos.ppo import PPOConfig

    assert group.rank_config(PPOConfig.paper("hard")).num_envs == 256  # one process: unchanged
    assert launch.without_flag(["train", "--nproc-per-node", "2", "--seed=1", "--nproc-per-node=3"],
                               "--nproc-per-node") == ["train", "--seed=1"]


def _cli(store, *args, nproc=2):
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", "--store", str(store), *args,
                             "--nproc-per-node", str(nproc)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=REPO)


@pytest.mark.slow
def test_two_ranks_learn_the_colour_cue_task(tmp_path):
    """Random play earns 8/15 = 0.53 per 8-step episode, reading the colour earns 8. 16 envs in all (8 per rank),
    30 iterations of 256 steps with a larger step size than the paper's (to keep the test short): the last three
    iterations must average at least 5 (rank 0's episodes)."""
    proc = _cli(tmp_path, "train", "--env", "colour_cue", "--num-envs", "16", "--width", "0.25", "--timesteps",
                "7680", "--no-progress", "--set", "num_steps=16", "--set", "num_minibatches=2", "--set",
                "learning_rate=0.002", "--set", "gamma=0.99", "--set", "checkpoint_every=1000",
                "--set", "cuda_graph=false")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    run_id = out.strip().splitlines()[-1]
    store = RunStore(tmp_path)
    steps, values = store.metric_series(run_id, "episode_return")
    assert values[0] < 1.5 and np.mean(values[-3:]) >= 5.0
    assert steps[-1] == 7680 and len(steps) == 30  # all ranks' steps; rank 0 logs once per iteration
    assert store.get_run(run_id).status == "finished" and store.get_run(run_id).config["num_envs"] == 16


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "workbench.cli" in " ".join(child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_killed_rank_ends_the_job_clearly_then_the_run_resumes(tmp_path):
    store = RunStore(tmp_path)
    args = ["train", "--algo", "ppg", "--env", "colour_cue", "--num-envs", "8", "--width", "0.25", "--timesteps",
            "768", "--no-progress", "--set", "num_steps=16", "--set", "n_pi=2", "--set", "aux_epochs=1",
            "--set", "aux_minibatch_rollouts=4", "--set", "checkpoint_every=2", "--set", "cuda_graph=false"]
    proc = _cli(tmp_path, *args)
    deadline = time.time() + 90
    while time.time() < deadline and not (store.list_runs() and store.list_checkpoints(store.list_runs()[0].id)):
        time.sleep(0.2)
    run_id = store.list_runs()[0].id
    assert store.list_checkpoints(run_id), "no checkpoint within 90 s"
    pid = _rank_pid(proc, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t_kill = time.time()
    _, err = proc.communicate(timeout=120)
    assert time.time() - t_kill < 60, "the surviving rank should be stopped promptly"
    assert proc.returncode == 2
    assert "a rank of the 2-process job failed" in err and f"resume {run_id} --nproc-per-node 2" in err
    killed_at = store.latest_checkpoint(run_id)[0]
    assert store.get_run(run_id).status in ("failed", "stopped") or store.get_run(run_id).died

    proc = _cli(tmp_path, "resume", run_id)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert out.strip().splitlines()[-1] == run_id
    steps, _ = store.metric_series(run_id, "iteration")
    assert list(steps) == list(range(128, 768 + 1, 128))  # every iteration once, none lost or repeated
    assert store.get_run(run_id).status == "finished" and store.latest_checkpoint(run_id)[0] > killed_at
