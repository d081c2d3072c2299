"""Run a protocol's grid of (game, algorithm, seed) trainings and score them: `workbench benchmark`.

The grid is a study (workbench.studies.sweep) over the axes env x algo x seed, so it runs on the studies'
executors (local processes, `parallel` at a time, or Ray), is stored with its runs, and re-running the same
command continues it (finished runs are skipped, interrupted ones resume). Each finished run is then evaluated
on its training levels and on the test levels (deterministically, `workbench.rl.evaluate.evaluate_run`), and
the scores are aggregated into the table of `workbench.rl.evaluate.score_table`.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from workbench.studies.spec import StudySpec


def grid_study(protocol: str, games: list[str], algos: list[str], seeds: int | list[int], *, mode: str = "easy",
               timesteps: int | None = None, overrides: dict | None = None, name: str | None = None) -> StudySpec:
    """The benchmark grid as a study; its default name is derived from its settings, so the same command
    names the same study (and continues it) and a different one starts another."""
    proto = get_protocol(protocol)
    base = {"num_levels": proto.num_levels(mode), **(overrides or {})}  # num_levels validates the mode
    budget = timesteps or proto.budget(mode)
    if budget:
        base["total_timesteps"] = int(budget)
    for game in games:
        validate_env_name(game)
    bad = [a for a in algos if a not in ALGOS]
    if bad:
        raise ValueError(f"unknown algorithms {bad}; valid: {', '.join(ALGOS)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    spec = StudySpec(name="pending", algo=None, distribution_mode=mode, base=base,
                     axes={"env": list(games), "algo": list(algos), "seed": seed_list})
    if name is None:
        digest = hashlib.sha1(json.dumps({**spec.to_dict(), "name": None}, sort_keys=True).encode()).hexdigest()
        name = f"benchmark-{proto.name}-{mode}-{digest[:8]}"
    spec.name = name
    return spec.validate()


def run_grid(protocol: str, games: list[str], algos: list[str], seeds: int | list[int], *,
             mode: str = "easy", timesteps: int | None = None, parallel: int = 2, episodes: int = 100,
             store: RunStore | None = None, overrides: dict | None = None, log=print, study: str | None = None,
             executor=None) -> list[RunScore]:
    """Train every (game, algo, seed) as a study (`parallel` local processes at a time unless an `executor`
    is given), then evaluate each finished run on train and test. Failed runs are logged with their error
    and left out of the scores."""
    from workbench.studies.executors import LocalExecutor
    from workbench.studies.sweep import run_study

    if parallel < 1:
        raise ValueError(f"parallel must be >= 1 (got {parallel})")
    for algo in algos:  # every override checked (type, range, name) before the first run starts
        checked = dict(overrides or {})
        make_config(algo, checked.pop("distribution_mode", mode), **checked)
    spec = grid_study(protocol, games, algos, seeds, mode=mode, timesteps=timesteps, overrides=overrides,
                      name=study)
    store = store or RunStore()
    report = run_study(spec, store.root, executor or LocalExecutor(store.root, parallel=parallel), log=log)
    finished = [p for p in report.points if p.status == "finished"]
    if not finished:
        raise RuntimeError(f"no run of the benchmark finished:\n{report.summary()}")
    scores = []
    for p in finished:
        game, algo, seed = p.point["env"], p.point["algo"], p.point["seed"]
        train = evaluate_run(p.run_id, levels="train", episodes=episodes, store=store, seed=seed)
        test = evaluate_run(p.run_id, levels="test", episodes=episodes, store=store, seed=seed)
        scores.append(RunScore(algo, game, seed, p.run_id, train.mean_return, test.mean_return,
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
