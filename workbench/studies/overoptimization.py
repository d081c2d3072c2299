"""Reward-model overoptimization as a study (Gao, Schulman, Hilton 2022, arXiv 2210.10760, section 2).

The synthetic setup, end to end:

1. pi_init: a policy (a fresh IMPALA network, saved as a run checkpoint so RL and best-of-n share it exactly).
2. Gold: the game's reward (``gold="env"``: a response's gold score is the sum of its env rewards) or a large
   fixed reward model (``gold="model"``: a reward model trained once on ``gold_labels`` env-labeled comparisons,
   or the saved model at ``gold_model``, then frozen; the paper's gold is a 6B reward model).
3. Labels: pairs of responses of pi_init to the same prompt (Procgen: the first ``response_length`` steps of a
   level, the level seed is the prompt; toy tasks: whole episodes), answered by the synthetic labeler
   (:class:`workbench.preferences.synthetic.SyntheticLabeler`: the higher gold wins, as the paper) from the gold.
   Label sets are nested: ``labels = L`` uses the first L pairs of one pool (as the paper's data-size study).
4. Proxies: reward-model ensembles (:func:`workbench.preferences.reward.fit_ensemble`, plain Bradley-Terry as
   the paper: no noise floor) of several sizes (``proxy_sizes``: IMPALA width, dense hidden) on several label
   counts, each with ``members`` members so the ensemble mitigations can be compared on the same training:
   ``single`` (member 0), ``mean`` (the ensemble mean) and ``min`` (the conservative lower bound over members:
   worst-case optimization, Coste et al. 2023, arXiv 2310.02743; per response for best-of-n, per step for RL).
5. Best-of-n against each proxy: ``bon_samples`` = N responses per prompt, scored by proxy and gold, and the
   unbiased estimator over all C(N, n) subsets (:mod:`workbench.preferences.best_of_n`) for n = 1, 2, 4, ...,
   ``bon_n_max`` (< N), KL = log n - (n - 1)/n.
6. RL against each proxy: ``ppo-rm`` (:mod:`workbench.preferences.rlhf`) with the per-step KL penalty at each of
   ``rl_kl_coefs``, logging gold, proxy and KL per iteration (on the per-response scale: response_length x the
   per-step means; the KL of a trajectory is the sum of its steps' KLs).

Scores are shifted so that pi_init scores 0 (best-of-n: n = 1; RL: the first iteration, whose rollouts come
from pi_init). Every point of the grid (proxy size x label count x seed) is one job
(:func:`run_point`, the ``overoptimization`` job kind of the sweep machinery) that writes a run in the
RunStore (algo ``overoptimization``) and its record ``<store>/overoptimization/<run_id>.json``;
:func:`analyse` (in :mod:`workbench.studies.overoptimization_report`) fits and compares them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from workbench.preferences.best_of_n import best_of_n_estimates, kl_best_of_n
from workbench.preferences.rlhf import RewardModelHook
from workbench.storage.durable import atomic_write
from workbench.storage.runs import RunStore
from workbench.studies.overoptimization_data import (
    VARIANTS,
    gold_of,
    label_pool,
    member_rewards,
    prompt_seeds,
    sample_responses,
    train_proxy,
    variant_scores,
    variant_step_reward,
)
from workbench.studies.overoptimization_fits import bon_grid
from workbench.studies.overoptimization_report import (  # noqa: F401
    list_studies,
    load_summary,
    results_dir,
    summary_path,
)

GOLDS = ("env", "model")


@dataclass
class OveroptimizationStudy:
    """Every setting of the study (the paper's values in comments where they exist)."""

    name: str = "overoptimization"
    env: str = "colour_choice"          # a Procgen game or a toy task (colour_choice: the tests)
    distribution_mode: str = "easy"
    response_length: int = 8            # steps per response (a clip from a level's start; toy: the episode)
    policy_width: float = 0.25          # pi_init's IMPALA width
    gold: str = "env"                   # "env" (the game's reward) | "model" (a large fixed reward model)
    gold_model: str | None = None       # gold="model": a saved reward model; None = train one (below)
    gold_width: float = 0.5
    gold_hidden: int = 128
    gold_labels: int = 2000
    label_flip_prob: float = 0.0        # label noise (the paper: none; Coste et al. add 25%)
    proxy_sizes: list = field(default_factory=lambda: [[0.0625, 8], [0.125, 32], [0.25, 64]])  # (width, hidden)
    label_counts: list = field(default_factory=lambda: [64, 256, 1024])   # the paper: up to 90,000
    heldout_pairs: int = 256
    seeds: list = field(default_factory=lambda: [0])
    members: int = 3
    rm_steps: int = 150                 # about this many gradient steps per member, whatever the label count
    rm_batch_size: int = 32
    rm_lr: float = 1e-3
    prompts: int = 4                    # best-of-n prompts (Procgen: level seeds 10_000 + i; toy: groups)
    bon_samples: int = 2048             # N responses per prompt (the paper: 60,000 in total ... per prompt)
    bon_n_max: int = 1024               # largest n reported (< N: the unbiased estimator averages subsets)
    rl_kl_coefs: list = field(default_factory=lambda: [0.0, 0.02, 0.1])
    rl_variants: list = field(default_factory=lambda: ["single"])
    rl_label_counts: list | None = None  # RL only at these label counts (None: all)
    rl_iterations: int = 16
    rl_num_envs: int = 16
    rl_num_steps: int = 32
    rl_update_epochs: int = 3
    rl_num_minibatches: int = 4
    bootstrap: int = 1000
    device: str = "cpu"

    def validate(self) -> OveroptimizationStudy:
        from workbench.rl.env_registry import validate_env_name

        problems = []
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", self.name):
            problems.append(f"name must be 1-100 letters, digits, '.', '_' or '-' (it names a folder); got {self.name!r}")
        try:
            validate_env_name(self.env)
        except ValueError as exc:
            problems.append(str(exc))
        if self.gold not in GOLDS:
            problems.append(f"gold must be one of {GOLDS}, got {self.gold!r}")
        sizes = self.proxy_sizes
        if not sizes or not all(isinstance(s, (list, tuple)) and len(s) == 2 and s[0] > 0 and int(s[1]) >= 1
                                for s in sizes):
            problems.append(f"proxy_sizes must be a non-empty list of [width > 0, hidden >= 1]; got {sizes!r}")
        for name in ("label_counts", "seeds", "rl_kl_coefs"):
            values = getattr(self, name)
            if not values or any((not isinstance(v, (int, float))) or v < 0 for v in values):
                problems.append(f"{name} must be a non-empty list of numbers >= 0; got {values!r}")
        if any(int(v) < 2 for v in self.label_counts):
            problems.append(f"label_counts must each be >= 2 comparisons; got {self.label_counts}")
        for name in ("rl_variants",):
            bad = [v for v in getattr(self, name) if v not in VARIANTS]
            if bad:
                problems.append(f"{name} {bad} are not among {VARIANTS}")
        if self.rl_label_counts is not None and not set(self.rl_label_counts) <= set(self.label_counts):
            problems.append("rl_label_counts must be a subset of label_counts")
        for name in ("response_length", "members", "rm_steps", "rm_batch_size", "prompts", "bon_n_max",
                     "rl_iterations", "rl_num_envs", "rl_num_steps", "rl_update_epochs", "rl_num_minibatches", "gold_labels", "bootstrap", "gold_hidden"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.bon_samples <= self.bon_n_max:
            problems.append(f"bon_samples ({self.bon_samples}) must exceed bon_n_max ({self.bon_n_max}): the "
                            "unbiased estimator averages over subsets of a larger sample")
        if not 0 <= self.label_flip_prob <= 1:
            problems.append(f"label_flip_prob must be in [0, 1], got {self.label_flip_prob}")
        if problems:
            raise ValueError("invalid OveroptimizationStudy: " + "; ".join(problems))
        return self

    @classmethod
    def from_dict(cls, values: dict) -> OveroptimizationStudy:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown study setting(s) {unknown}; valid settings: {sorted(names)}")
        return cls(**values).validate()

    def points(self) -> list[dict]:
        """The grid: one job per (proxy size, label count, seed)."""
        return [{"proxy_width": float(w), "proxy_hidden": int(h), "labels": int(n), "seed": int(s)}
                for (w, h) in self.proxy_sizes for n in self.label_counts for s in self.seeds]


def write_json(path: Path, value) -> Path:
    return atomic_write(path, lambda f: f.write(json.dumps(value, indent=1, sort_keys=True).encode()))


# ---- setup shared by the points of a study --------------------------------------------------------------
def prepare(study: OveroptimizationStudy, store_root=None) -> dict:
    """pi_init (a run with one checkpoint) and the gold reward model, made once per study and reused."""
    base = results_dir(store_root) / study.name
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "setup.lock", "a") as lock:  # points running in parallel processes make it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare(study, store_root, base)


def _prepare(study: OveroptimizationStudy, store_root, base: Path) -> dict:
    from workbench.preferences.reward import load_reward_model, save_reward_model
    from workbench.rl.policy import ImpalaCNN

    store = RunStore(store_root)
    state_path = base / "setup.json"
    setup = json.loads(state_path.read_text()) if state_path.exists() else {}
    if "init_run" not in setup:
        torch.manual_seed(12345)
        model = ImpalaCNN(width=study.policy_width)
        run = store.create_run(algo="ppo", env=study.env, config={"width": study.policy_width, "study": study.name},
                               name=f"{study.name} pi_init")
        store.save_checkpoint(run, 0, {"state": {"model": model.state_dict()}, "global_step": 0})  # a policy checkpoint
        store.set_status(run, "finished")
        setup["init_run"] = run
        write_json(state_path, setup)
    if study.gold == "model" and "gold_model" not in setup:
        if study.gold_model:
            load_reward_model(study.gold_model)  # fails early with a clear message if it is not a reward model
            setup["gold_model"] = str(study.gold_model)
        else:
            policy = load_policy(study, setup["init_run"], store_root)
            gold = train_proxy(study, label_pool(study, policy, None, study.gold_labels, study.heldout_pairs, seed=999),
                               study.gold_labels, [study.gold_width, study.gold_hidden], seed=999, members=1)
            setup["gold_model"] = str(save_reward_model(gold["ensemble"], base / "gold_model"))
            setup["gold_heldout_accuracy"] = gold["heldout_accuracy"]
        write_json(state_path, setup)
    return setup


def load_policy(study: OveroptimizationStudy, init_run: str, store_root=None):
    from workbench.rl.policy import ImpalaCNN, PolicyCore

    core = PolicyCore(ImpalaCNN(width=study.policy_width), study.device, bf16=False, cuda_graph=False)
    core.model.load_state_dict(RunStore(store_root).load_checkpoint(init_run, 0)["state"]["model"])
    core.model.eval()
    return core


# ---- optimizing a proxy: best-of-n and RL ----------------------------------------------------------------
def best_of_n_record(study: OveroptimizationStudy, policy, gold_model, ensemble, *, seed: int) -> dict:
    """Per prompt, per variant: the unbiased best-of-n gold and proxy estimates on the n grid, shifted so n = 1
    scores 0 (the n = 1 values are kept as ``baseline``)."""
    grid = bon_grid(study.bon_n_max)
    out = {"n": grid.tolist(), "kl": np.atleast_1d(kl_best_of_n(grid)).tolist(),
           "variants": {v: {"gold": [], "proxy": [], "gold_baseline": []} for v in VARIANTS}}
    out["d"] = np.sqrt(out["kl"]).tolist()
    scorers = {"proxy": member_rewards(ensemble)}
    if gold_model is not None:
        scorers["gold"] = member_rewards(gold_model)
    for p, level in enumerate(prompt_seeds(study, study.prompts, offset=10_000)):
        sample = sample_responses(policy, study, study.bon_samples, seed=1_000_003 + 101 * seed + p,
                                  level_seed=level, scorers=scorers)
        gold = gold_of(sample)
        for variant, score in variant_scores(sample["proxy"]).items():
            g = best_of_n_estimates(score, gold)[0, grid - 1]
            r = best_of_n_estimates(score)[0, grid - 1]
            rec = out["variants"][variant]
            rec["gold"].append((g - g[0]).tolist())
            rec["proxy"].append((r - r[0]).tolist())
            rec["gold_baseline"].append(float(g[0]))
    return out


def rl_record(study: OveroptimizationStudy, setup: dict, step_reward_fn, gold_model, *, kl_coef: float, seed: int,
              store: RunStore, name: str) -> dict:
    """One ``ppo-rm`` run against `step_reward_fn` from pi_init; per iteration d = sqrt(L x mean per-step KL),
    L x the mean per-step gold and proxy reward (L = response_length), shifted by the first iteration (rolled
    out by pi_init itself)."""
    from workbench.preferences import rlhf
    from workbench.rl.algos import ppo

    steps = study.rl_iterations * study.rl_num_envs * study.rl_num_steps
    config = rlhf.RMPPOConfig(env=study.env, distribution_mode=study.distribution_mode, num_envs=study.rl_num_envs,
                              num_steps=study.rl_num_steps, num_minibatches=study.rl_num_minibatches,
                              update_epochs=study.rl_update_epochs,
                              width=study.policy_width, gamma=0.99, total_timesteps=steps, checkpoint_every=10_000,
                              seed=int(seed), bf16=False, device=study.device, cuda_graph=False,
                              kl_coef=float(kl_coef), init_run=setup["init_run"], name=name,
                              num_levels=0)  # Procgen: the whole level distribution, as the prompts
    if gold_model is None:
        hook = rlhf.RewardModelHook(config, step_reward_fn, store=store)
    else:
        hook = GoldModelHook(config, step_reward_fn, store=store, gold_fn=gold_model.step_rewards)
    run = ppo.train(config, store=store, progress=False, extension=hook)
    # Per-step means over each iteration's rollouts, times the response length: the KL of an L-step trajectory
    # is the sum of its steps' KLs (the dynamics cancel), so d is on best-of-n's per-response scale, and these
    # exist every iteration even when no Procgen episode ends in it.
    length = study.response_length
    kl, gold, proxy = (store.metric_series(run, f"rlhf/{k}")[1] for k in ("kl", "gold_reward", "proxy_reward"))
    d = np.sqrt(np.maximum(length * kl, 0.0))
    gold, proxy = length * gold, length * proxy
    return {"run_id": run, "kl_coef": float(kl_coef), "seed": int(seed), "d": d.tolist(),
            "gold": (gold - gold[0]).tolist(), "proxy": (proxy - proxy[0]).tolist(), "gold_baseline": float(gold[0])}


class GoldModelHook(RewardModelHook):
    """The RL hook with a gold reward model's per-step reward in place of the env reward as the logged gold."""

    def __init__(self, config, step_reward_fn, *, store, gold_fn):
        super().__init__(config, step_reward_fn, store=store)
        self.gold_fn = gold_fn

    def __call__(self, obs_t, out, env_reward, done):
        gold = self.gold_fn(obs_t.cpu()).double().numpy()
        return super().__call__(obs_t, out, gold, done)


# ---- one point of the grid, and the whole study ----------------------------------------------------------
def point_runs(store: RunStore, study_name: str) -> list:
    """The study's point runs (algo "overoptimization"), oldest first."""
    return [r for r in store.list_runs() if r.algo == "overoptimization" and r.config.get("study") == study_name]


def run_point(study: OveroptimizationStudy, point: dict, store_root=None, *, name: str | None = None) -> str:
    """Train one proxy ensemble and optimize it by best-of-n and RL; returns the point's run id. A point that
    already finished in this store is not run again (a re-run continues a study)."""
    import os

    from workbench.preferences.reward import load_reward_model

    study.validate()
    store = RunStore(store_root)
    settings = dataclasses.asdict(study)
    grid_only = ("proxy_sizes", "seeds", "bootstrap")  # the grid's extent and the analysis: not what a point does
    for info in point_runs(store, study.name):
        if info.status != "finished":
            continue
        changed = sorted(k for k in settings if k not in grid_only
                         and info.config.get("settings", {}).get(k) != settings[k])
        if changed:
            raise ValueError(f"study {study.name!r} already has finished points with other settings (changed: "
                             f"{', '.join(changed)}); give the study a new name to run it with these settings")
        if info.config.get("point") == point:
            return info.id
    setup = prepare(study, store_root)
    label = f"{study.name} w{point['proxy_width']}-h{point['proxy_hidden']} L{point['labels']} s{point['seed']}"
    run = store.create_run(algo="overoptimization", env=study.env, name=name or label,
                           config={"study": study.name, "point": point, "settings": settings})
    store.set_status(run, "running", pid=os.getpid())
    try:
        seed = int(point["seed"])
        torch.manual_seed(seed)
        policy = load_policy(study, setup["init_run"], store_root)
        gold_model = load_reward_model(setup["gold_model"]) if study.gold == "model" else None
        pool = label_pool(study, policy, gold_model, max(study.label_counts), study.heldout_pairs, seed=seed,
                          cache=results_dir(store_root) / study.name
                          / f"labels-seed{seed}-{max(study.label_counts)}+{study.heldout_pairs}.npz")
        proxy = train_proxy(study, pool, int(point["labels"]), (point["proxy_width"], point["proxy_hidden"]),
                            seed=seed)
        record = {"point": point, "params": proxy["params"], "heldout_accuracy": proxy["heldout_accuracy"],
                  "train_accuracy": proxy["train_accuracy"], "rm_epochs": proxy["epochs"],
                  "bon": best_of_n_record(study, policy, gold_model, proxy["ensemble"], seed=seed), "rl": []}
        store.log_metrics(run, 0, {"params": proxy["params"], "heldout_accuracy": proxy["heldout_accuracy"]})
        if study.rl_label_counts is None or int(point["labels"]) in study.rl_label_counts:
            for variant in study.rl_variants:
                for coef in study.rl_kl_coefs:
                    rl = rl_record(study, setup, variant_step_reward(proxy["ensemble"], variant), gold_model,
                                   kl_coef=coef, seed=seed, store=store, name=f"{label} rl {variant} kl{coef}")
                    record["rl"].append({"variant": variant, **rl})
        write_json(results_dir(store_root) / f"{run}.json", record)
    except BaseException:
        store.set_status(run, "failed")
        raise
    store.set_status(run, "finished")
    return run


POINT_KEYS = ("proxy_width", "proxy_hidden", "labels", "seed")


def job_settings(settings: dict) -> tuple[OveroptimizationStudy, dict]:
    """Split a sweep point's settings (``algo``, ``distribution_mode``, base and axis values) into the study
    settings and the grid point (``proxy_width``, ``proxy_hidden``, ``labels``, ``seed``)."""
    values = {k: v for k, v in settings.items() if k not in ("algo", "kind")}
    missing = [k for k in POINT_KEYS if k not in values]
    if missing:
        raise ValueError(f"an overoptimization point needs {POINT_KEYS} (as axes or base settings); missing {missing}")
    point = {"proxy_width": float(values.pop("proxy_width")), "proxy_hidden": int(values.pop("proxy_hidden")),
             "labels": int(values.pop("labels")), "seed": int(values.pop("seed"))}
    values.setdefault("proxy_sizes", [[point["proxy_width"], point["proxy_hidden"]]])
    values.setdefault("label_counts", [point["labels"]])  # with labels as an axis, give all counts in base
                                                          # settings: the points then share one nested pool
    values.setdefault("seeds", [point["seed"]])
    study = OveroptimizationStudy.from_dict(values)
    if point["labels"] > max(study.label_counts):
        raise ValueError(f"labels {point['labels']} exceeds the study's largest label count {max(study.label_counts)}")
    return study, point


def job(settings: dict, store_root: str, name: str) -> str:
    """The sweep machinery's ``overoptimization`` job kind (workbench.studies.spec): one grid point; a point
    that already finished in the store is returned, not rerun. Returns the point's run id."""
    study, point = job_settings(settings)
    return run_point(study, point, store_root, name=name)


job.validate = job_settings


def load_records(study_name: str, store_root=None) -> list[dict]:
    """The records of the study's finished points."""
    store = RunStore(store_root)
    out = []
    for info in point_runs(store, study_name):
        path = results_dir(store_root) / f"{info.id}.json"
        if info.status == "finished" and path.exists():
            out.append({"run_id": info.id, **json.loads(path.read_text())})
    return out


def run_study(study: OveroptimizationStudy, store_root=None, *, progress=print) -> dict:
    """Every point of the grid in turn (finished ones skipped), then the analysis, saved as
    ``<store>/overoptimization/<study name>/summary.json`` and returned."""
    from workbench.studies.overoptimization_report import analyse

    study.validate()
    prepare(study, store_root)
    for i, point in enumerate(study.points()):
        run_point(study, point, store_root)
        if progress:
            progress(f"point {i + 1}/{len(study.points())} done: {point}")
    summary = analyse(load_records(study.name, store_root), n_resamples=study.bootstrap)
    summary["settings"] = dataclasses.asdict(study)
    write_json(summary_path(study.name, store_root), summary)
    return summary


def _register() -> None:
    from workbench.studies.spec import register_job_kind

    register_job_kind("overoptimization", job)


_register()
