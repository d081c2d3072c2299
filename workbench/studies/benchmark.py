"""Run a protocol's grid of (game, algorithm, seed) trainings and score them: `workbench benchmark`.

Each training run is its own OS process (`workbench train ...` as an argument list, never a shell string),
at most `parallel` at a time; each finished run is then evaluated on its training levels and on the test
levels (deterministically, `workbench.rl.evaluate.evaluate_run`), and the scores are aggregated into the table
of `workbench.rl.evaluate.score_table`. Runs land in the store like any other, so the dashboard shows them.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.registry import ALGOS, make_config
from workbench.rl.aggregate import (
    aggregate_markdown,
    aggregate_rows,
    improvement_rows,
    profile_data,
)
from workbench.rl.env_registry import validate_env_name
from workbench.rl.evaluate import (
    RunScore,
    evaluate_run,
    get_protocol,
    score_table,
    table_to_csv,
    table_to_markdown,
)
from workbench.storage.runs import RunStore


@dataclass(frozen=True)
class GridJob:
    algo: str
    game: str
    seed: int

    def argv(self, store_root: Path, protocol, mode: str, timesteps: int | None, overrides: dict) -> list[str]:
        args = [sys.executable, "-m", "workbench.cli", "--store", str(store_root), "train", "--algo", self.algo,
                "--env", self.game, "--distribution-mode", mode, "--num-levels", str(protocol.num_levels(mode)),
                "--seed", str(self.seed), "--no-progress",
                "--name", f"{protocol.name}/{self.game}/{self.algo}/seed{self.seed}"]
        budget = timesteps or protocol.budget(mode)
        if budget:
            args += ["--timesteps", str(int(budget))]
        for key, value in overrides.items():
            args += ["--set", f"{key}={json.dumps(value)}"]
        return args


def run_grid(protocol: str, games: list[str], algos: list[str], seeds: int | list[int], *,
             mode: str = "easy", timesteps: int | None = None, parallel: int = 2, episodes: int = 100,
             store: RunStore | None = None, overrides: dict | None = None, log=print) -> list[RunScore]:
    """Train every (game, algo, seed), `parallel` processes at a time, then evaluate each on train and test."""
    proto = get_protocol(protocol)
    proto.num_levels(mode)  # validates the mode for this protocol
    for game in games:
        validate_env_name(game)
    bad = [a for a in algos if a not in ALGOS]
    if bad:
        raise ValueError(f"unknown algorithms {bad}; valid: {', '.join(ALGOS)}")
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1 (got {parallel})")
    for algo in algos:  # every override checked (type, range, name) before the first run starts
        checked = dict(overrides or {})
        make_config(algo, checked.pop("distribution_mode", mode), **checked)
    store = store or RunStore()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    jobs = [GridJob(a, g, s) for g, a, s in itertools.product(games, algos, seed_list)]
    pending, running, finished = list(jobs), {}, {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    # Each run gets an equal share of the CPU threads, so parallel runs do not oversubscribe the cores.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            argv = job.argv(store.root, proto, mode, timesteps, overrides or {})
            running[job] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            env=env)
            log(f"started {job.game} {job.algo} seed {job.seed}")
        for job, proc in list(running.items()):
            if proc.poll() is None:
                continue
            out, err = proc.communicate()
            del running[job]
            if proc.returncode != 0:
                raise RuntimeError(f"training {job} failed (exit {proc.returncode}):\n{err[-2000:]}")
            finished[job] = out.strip().splitlines()[-1]
            log(f"finished {job.game} {job.algo} seed {job.seed}: run {finished[job]}")
        time.sleep(0.2)

    scores = []
    for job in jobs:
        run_id = finished[job]
        train = evaluate_run(run_id, levels="train", episodes=episodes, store=store, seed=job.seed)
        test = evaluate_run(run_id, levels="test", episodes=episodes, store=store, seed=job.seed)
        scores.append(RunScore(job.algo, job.game, job.seed, run_id, train.mean_return, test.mean_return,
                               train.normalized_return, test.normalized_return))
    return scores


def write_tables(scores: list[RunScore], out_dir: str | os.PathLike, *, reps: int = 2000) -> tuple[Path, Path, str]:
    """Writes scores.json, table.csv and table.md under `out_dir`; returns their paths and the Markdown.
    table.md holds the per-game mean +- standard error table, then the aggregate test scores of Agarwal et al.
    2021 (IQM and mean with stratified bootstrap intervals, probability of improvement; workbench.rl.aggregate);
    aggregate.json holds those and the performance-profile data for a plot. `reps`: bootstrap replicates."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = score_table(scores)
    (out / "scores.json").write_text(json.dumps([s.__dict__ for s in scores], indent=1))
    table_to_csv(rows, out / "table.csv")
    markdown = table_to_markdown(rows) + "\n" + aggregate_markdown(scores, reps=reps)
    (out / "aggregate.json").write_text(json.dumps({"aggregate": aggregate_rows(scores, reps=reps),
                                                    "improvement": improvement_rows(scores),
                                                    "profile": profile_data(scores, reps=reps)}, indent=1))
    (out / "table.md").write_text(markdown)
    return out / "table.csv", out / "table.md", markdown
