"""Evaluation protocols and scoring: the Procgen paper's and the NeurIPS 2020 Procgen competition's.

Procgen paper (Cobbe et al. 2019, arXiv 1912.01588):
- generalization: train on `num_levels` levels (200 easy, 500 hard) from `start_level` 0; test on the
  unrestricted level distribution (`num_levels=0`);
- sample efficiency: train and test on the unrestricted distribution.
NeurIPS 2020 Procgen competition (Mohanty et al. 2021, arXiv 2103.15332): 8M env steps per game in easy
mode, scored by the mean normalized return over games, in a sample-efficiency track (full distribution) and
a generalization track (200 training levels, tested on the full distribution). Reproduced here: the budget,
the level sets, the per-game normalization (the paper's easy constants) and the mean over games. Not
reproduced: the competition's 4 private games (never released), its hardware and 2-hour time limit, and its
evaluation servers; scores over the 16 public games are therefore not comparable to the final leaderboard.

Episode selection is unbiased: a naive "first N episodes to finish" over parallel envs over-samples short
episodes. Here every env is given a fixed quota of episodes up front and only its first `quota` episodes
count. Evaluation is deterministic given `seed` (env seed and the action-sampling generator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.rl.aggregate import (
    interquartile_mean,
    scores_by_algo,
    stratified_bootstrap_ci,
)
from workbench.rl.env_registry import make_vec_env, normalized_return_or_nan
from workbench.rl.policy import PolicyCore
from workbench.storage.runs import RunStore

LEVEL_SETS = ("train", "test")


@dataclass(frozen=True)
class Protocol:
    name: str
    train_levels: dict          # distribution mode -> num_levels for training (0 = unrestricted)
    timesteps: dict | None      # distribution mode -> env-step budget (None: the algorithm's paper default)
    modes: tuple = ("easy", "hard")
    description: str = ""

    def num_levels(self, mode: str) -> int:
        if mode not in self.modes:
            raise ValueError(f"protocol {self.name!r} is defined for modes {self.modes}, not {mode!r}")
        return self.train_levels[mode]

    def budget(self, mode: str) -> int | None:
        return None if self.timesteps is None else self.timesteps[mode]


PROTOCOLS = {p.name: p for p in (
    Protocol("generalization", {"easy": 200, "hard": 500}, None,
             description="Procgen paper: train on 200 (easy) / 500 (hard) levels, test on all levels"),
    Protocol("sample-efficiency", {"easy": 0, "hard": 0}, None,
             description="Procgen paper: train and test on the unrestricted level distribution"),
    Protocol("competition-generalization", {"easy": 200}, {"easy": 8_000_000}, ("easy",),
             description="NeurIPS 2020 competition: 8M steps, 200 training levels, tested on all levels"),
    Protocol("competition-sample-efficiency", {"easy": 0}, {"easy": 8_000_000}, ("easy",),
             description="NeurIPS 2020 competition: 8M steps on the unrestricted distribution"),
)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


@dataclass(frozen=True)
class EvalResult:
    run_id: str | None
    checkpoint_step: int | None
    levels: str
    returns: np.ndarray
    lengths: np.ndarray
    normalized_return: float

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def stderr_return(self) -> float:
        return float(self.returns.std(ddof=1) / np.sqrt(len(self.returns))) if len(self.returns) > 1 else float("nan")

    def summary(self) -> dict:
        return {"run_id": self.run_id, "checkpoint_step": self.checkpoint_step, "levels": self.levels,
                "episodes": int(len(self.returns)), "mean_return": self.mean_return,
                "stderr_return": self.stderr_return, "normalized_return": self.normalized_return,
                "mean_length": float(self.lengths.mean())}


@torch.no_grad()
def run_episodes(core: PolicyCore, env, num_episodes: int, seed: int = 0,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sample from the policy until every env has finished its quota; returns (returns, lengths).
    ``progress``: a progress bar with the time left, one tick per finished episode."""
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1 (got {num_episodes})")
    n = env.num_envs
    quota = np.full(n, num_episodes // n) + (np.arange(n) < num_episodes % n)
    done_count = np.zeros(n, int)
    returns, lengths = [], []
    generator = torch.Generator(device=core.device).manual_seed(seed)
    obs = env.reset()
    core.model.eval()
    bar = tqdm(total=num_episodes, unit="episode", disable=not progress)
    while (done_count < quota).any():
        out = core.act(obs, generator)
        obs, _, _, episodes = env.step(out.action.cpu().numpy())
        for ep in episodes:
            if done_count[ep.env_index] < quota[ep.env_index]:
                done_count[ep.env_index] += 1
                returns.append(ep.ret)
                lengths.append(ep.length)
                bar.update(1)
    bar.close()
    return np.asarray(returns, np.float64), np.asarray(lengths, np.int64)


def evaluate_run(run_id: str, *, levels: str = "test", episodes: int = 100, store: RunStore | None = None,
                 checkpoint_step: int | None = None, seed: int = 0, num_envs: int = 64,
                 device: str = "auto", progress: bool = False) -> EvalResult:
    """Evaluate a run's checkpoint (latest by default) on its training levels or on the test distribution."""
    if levels not in LEVEL_SETS:
        raise ValueError(f"levels must be one of {LEVEL_SETS} (got {levels!r})")
    store = store or RunStore()
    from workbench.rl.checkpoints import (
        policy_checkpoint_problem,
        policy_from_checkpoint,
    )

    info = store.get_run(run_id)
    cfg = info.config
    state = store.load_checkpoint(run_id, checkpoint_step, check=policy_checkpoint_problem)  # newest intact
    core = policy_from_checkpoint(info.algo, cfg, state, device)
    num_levels, start_level = (cfg["num_levels"], cfg["start_level"]) if levels == "train" else (0, 0)
    env = make_vec_env(cfg["env"], min(num_envs, episodes), distribution_mode=cfg["distribution_mode"],
                       num_levels=num_levels, start_level=start_level, rand_seed=seed)
    try:
        rets, lens = run_episodes(core, env, episodes, seed=seed, progress=progress)
    finally:
        env.close()
    return EvalResult(run_id, int(state["global_step"]), levels, rets, lens,
                      float(np.mean(normalized_return_or_nan(cfg["env"], rets, cfg["distribution_mode"]))))


# ---- scoring tables ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunScore:
    """One finished run's evaluation: the unit the tables aggregate."""
    algo: str
    game: str
    seed: int
    run_id: str
    train_return: float
    test_return: float
    train_normalized: float
    test_normalized: float


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def score_table(scores: list[RunScore], *, reps: int = 1000) -> list[dict]:
    """Per (game, algo): mean and standard error over seeds of raw and normalized return on train and test
    levels, and the generalization gap (train - test normalized return). Then one aggregate row per algo
    (game "ALL"): per seed, the mean normalized return over the games that seed ran; then mean and standard
    error of that over seeds, as the Procgen paper aggregates (and the competition scores, per track); next to
    it the interquartile mean of test normalized return over all (game, seed) runs with its 95% stratified
    bootstrap interval (Agarwal et al. 2021, arXiv 2108.13264; workbench.rl.aggregate, `reps` replicates)."""
    rows = []
    keys = sorted({(s.game, s.algo) for s in scores})
    for game, algo in keys:
        group = [s for s in scores if s.game == game and s.algo == algo]
        row = {"game": game, "algo": algo, "seeds": len(group)}
        for field in ("train_return", "test_return", "train_normalized", "test_normalized"):
            row[field], row[field + "_se"] = _mean_se([getattr(s, field) for s in group])
        row["gap"], row["gap_se"] = _mean_se([s.train_normalized - s.test_normalized for s in group])
        rows.append(row)
    for algo in sorted({s.algo for s in scores}):
        per_seed = {}
        for s in scores:
            if s.algo == algo:
                per_seed.setdefault(s.seed, []).append(s)
        row = {"game": "ALL", "algo": algo, "seeds": len(per_seed)}
        for field in ("train_normalized", "test_normalized"):
            row[field], row[field + "_se"] = _mean_se([np.mean([getattr(s, field) for s in v])
                                                       for v in per_seed.values()])
        row["gap"], row["gap_se"] = _mean_se([np.mean([s.train_normalized - s.test_normalized for s in v])
                                             for v in per_seed.values()])
        games = scores_by_algo([s for s in scores if s.algo == algo])[algo]
        row["test_iqm"], row["test_iqm_lo"], row["test_iqm_hi"] = stratified_bootstrap_ci(
            [games[g] for g in sorted(games)], interquartile_mean, reps=reps)
        rows.append(row)
    return rows


TABLE_COLUMNS = ("game", "algo", "seeds", "train_return", "train_return_se", "test_return", "test_return_se",
                 "train_normalized", "train_normalized_se", "test_normalized", "test_normalized_se", "gap", "gap_se",
                 "test_iqm", "test_iqm_lo", "test_iqm_hi")


def table_to_csv(rows: list[dict], path) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in TABLE_COLUMNS})


def table_to_markdown(rows: list[dict]) -> str:
    def fmt(row, key):
        if key not in row:
            return ""
        mean, se = row[key], row.get(key + "_se", float("nan"))
        return f"{mean:.3f}" if np.isnan(se) else f"{mean:.3f} ± {se:.3f}"

    def iqm(row):
        return f"{row['test_iqm']:.3f} [{row['test_iqm_lo']:.3f}, {row['test_iqm_hi']:.3f}]" if "test_iqm" in row else ""

    head = ["game", "algo", "seeds", "train return", "test return", "train norm.", "test norm.", "gap (norm.)",
            "test norm. IQM [95% CI]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["game"], r["algo"], str(r["seeds"]), fmt(r, "train_return"), fmt(r, "test_return"),
                 fmt(r, "train_normalized"), fmt(r, "test_normalized"), fmt(r, "gap"), iqm(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
