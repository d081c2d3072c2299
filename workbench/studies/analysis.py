"""A study's runs as curves, and the scaling analysis over them, for the Studies tab and the notebooks.

    table = study_table(store_root, "widths")          # one row per point: axis values, status, run, size, ...
    curves = study_curves(store_root, "widths")         # each finished/partial run's curve against steps and compute
    result = scaling_analysis(curves, n_boot=1000)      # frontier, intrinsic performance, the joint law, ...

Curves come from each run's logged metrics: ``episode_return`` (or another score), ``compute_flops`` (its
cumulative training compute) and ``param_count`` (workbench.rl.compute). The analysis is the scaling fits'
(workbench.studies.frontier and .fits: Hilton, Tang, Schulman 2023, arXiv 2301.13442); anything they cannot do
with these runs (too few sizes or points) comes back as a message in ``result.errors``, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.storage.runs import RunStore, process_alive
from workbench.storage.studies import StudyStore

SCORE = "episode_return"
COMPUTE = "compute_flops"
PARAMS = "param_count"


@dataclass
class Curve:
    run_id: str
    point: dict
    size: float              # parameters (NaN when the run logged none)
    seed: int
    steps: np.ndarray
    compute: np.ndarray
    score: np.ndarray


def point_status(studies: StudyStore, name: str) -> dict[int, str]:
    """Each point's status as the page shows it: a point marked running whose driver is gone reads
    "interrupted" (re-running the sweep resumes it)."""
    info = studies.get(name)
    alive = info.status == "running" and process_alive(info.pid)
    out = {}
    for p in studies.points(name):
        out[p.idx] = "interrupted" if p.status == "running" and not alive else p.status
    return out


def study_table(store_root, name: str) -> list[dict]:
    """One row per point: index, axis values, status, run id, env steps, latest score, error."""
    studies = StudyStore(store_root)
    store = studies.runs
    status = point_status(studies, name)
    rows = []
    for p in studies.points(name):
        runs = store.runs_named(p.run_name)
        run = runs[0] if runs else None
        latest = store.latest_metrics(run.id) if run else {}
        rows.append({"idx": p.idx, **p.point, "status": status[p.idx], "run": run.id if run else "",
                     "env_steps": run.env_steps if run else 0,
                     SCORE: latest.get(SCORE, (0, float("nan")))[1], "error": (p.error or "")[-300:]})
    return rows


def _series(store: RunStore, run_id: str, name: str) -> dict[int, float]:
    steps, values = store.metric_series(run_id, name)
    return dict(zip(steps.tolist(), values.tolist()))


def study_curves(store_root, name: str, *, score: str = SCORE) -> list[Curve]:
    """Every run of the study that logged metrics, with its score and compute at each logged step (steps
    where either is missing are dropped)."""
    studies = StudyStore(store_root)
    store = studies.runs
    curves = []
    for p in studies.points(name):
        runs = store.runs_named(p.run_name)
        if not runs:
            continue
        run = runs[0]
        scores, compute = _series(store, run.id, score), _series(store, run.id, COMPUTE)
        params = _series(store, run.id, PARAMS)
        steps = np.array(sorted(s for s in scores if s in compute and np.isfinite(scores[s]) and compute[s] > 0),
                         dtype=np.int64)
        size = float(next(iter(params.values()))) if params else float("nan")
        curves.append(Curve(run.id, p.point, size, int(run.config.get("seed", p.point.get("seed", 0))), steps,
                            np.array([compute[s] for s in steps.tolist()], float),
                            np.array([scores[s] for s in steps.tolist()], float)))
    return curves


@dataclass
class ScalingResult:
    frontier: object = None          # workbench.studies.frontier.Frontier
    points: object = None            # StudyPoints (each kept iteration with its intrinsic performance)
    law: object = None               # IntrinsicLawFit (Hilton et al.'s joint law)
    law_curves: dict = field(default_factory=dict)   # size -> (compute, fitted I, low, high)
    optimal: tuple | None = None     # (compute, N_opt, low, high)
    residuals: tuple | None = None   # (compute of each fitted point, log residual)
    errors: list[str] = field(default_factory=list)


def _flops_per_interaction(curves: list[Curve]):
    """Training FLOPs per env interaction as a function of parameters: the family's measured values,
    interpolated (and extrapolated linearly) in log-log."""
    pairs = sorted({(c.size, float(c.compute[-1] / c.steps[-1])) for c in curves if len(c.steps)})
    sizes, cost = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    slope = np.polyfit(sizes, cost, 1)[0] if len(pairs) > 1 else 1.0

    def per_interaction(n):
        ln = np.log(np.asarray(n, float))
        inside = np.interp(ln, sizes, cost)
        below, above = cost[0] + slope * (ln - sizes[0]), cost[-1] + slope * (ln - sizes[-1])
        return np.exp(np.where(ln < sizes[0], below, np.where(ln > sizes[-1], above, inside)))
    return per_interaction


def scaling_analysis(curves: list[Curve], *, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> ScalingResult:
    """The frontier, intrinsic performance, the joint law with its bootstrap band per model size, the
    compute-optimal model size and the residuals (each part that cannot be computed is an entry of errors)."""
    result = ScalingResult()
    usable = [c for c in curves if len(c.steps) >= 2 and np.isfinite(c.size)]
    if len(usable) < len(curves):
        result.errors.append(f"{len(curves) - len(usable)} run(s) have fewer than 2 logged scores with compute "
                             f"or no parameter count yet")
    try:
        from workbench.studies.frontier import RunCurve, fit_family
    except ImportError as e:  # the fits are not installed in this checkout
        result.errors.append(f"the scaling fits are not available: {e}")
        return result
    runs = [RunCurve(c.size, c.seed, c.steps.astype(float), c.compute, c.score) for c in usable]
    try:
        result.frontier, result.points, result.law = fit_family(runs, n_boot=n_boot, seed=seed)
    except ValueError as e:
        result.errors.append(str(e))
        if result.frontier is None:
            try:
                from workbench.studies.frontier import compute_frontier

                result.frontier = compute_frontier(runs)
            except ValueError:
                pass
        return result
    law, pts = result.law, result.points
    samples = law.samples
    q = [50 * (1 - level), 50 * (1 + level)]
    for size in sorted({c.size for c in usable}):
        mine = [c for c in usable if c.size == size]
        per_step = float(np.median([c.compute[-1] / c.steps[-1] for c in mine]))
        steps = np.geomspace(max(1.0, min(c.steps[0] for c in mine)), max(c.steps[-1] for c in mine), 48)
        fitted = law.predict(size, steps)
        if samples:
            beta = samples["alpha_n"] * samples["alpha_e"] / (samples["alpha_n"] + samples["alpha_e"])
            boot = ((samples["n_c"][:, None] / size) ** samples["alpha_n"][:, None]
                    + (samples["e_c"][:, None] / steps[None]) ** samples["alpha_e"][:, None]) ** (-1 / beta[:, None])
            low, high = np.nanpercentile(boot, q, axis=0)
        else:
            low = high = fitted
        result.law_curves[size] = (steps * per_step, fitted, low, high)
    compute = np.geomspace(np.nanmin(pts.compute), np.nanmax(pts.compute) * 10, 40)
    cost = _flops_per_interaction(usable)
    n_opt = law.optimal_size(compute, cost)
    band = (n_opt, n_opt)
    if samples:
        from workbench.studies.fits import IntrinsicLawFit

        draws = []
        for b in range(min(len(samples["n_c"]), 200)):
            fit_b = IntrinsicLawFit(samples["n_c"][b], samples["e_c"][b], samples["alpha_n"][b],
                                    samples["alpha_e"][b], {}, np.array([]), 0, 0)
            draws.append(fit_b.optimal_size(compute, cost))
        band = tuple(np.nanpercentile(np.array(draws), q, axis=0))
    result.optimal = (compute, n_opt, band[0], band[1])
    ok = np.isfinite(pts.intrinsic) & (pts.intrinsic > 0)
    res = np.asarray(law.residuals, float)
    x = pts.compute[ok] if ok.sum() == len(res) else np.arange(1, len(res) + 1, dtype=float)
    result.residuals = (x, res)
    return result
