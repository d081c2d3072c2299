"""Aggregate scores over games and seeds as "Deep RL at the edge of the statistical precipice" recommends
(Agarwal et al. 2021, arXiv 2108.13264; their package is rliable): the interquartile mean (IQM) with stratified
bootstrap confidence intervals, performance profiles, and the probability of improvement.

Scores of one algorithm are a list of per-game arrays of per-seed scores (games may have different seed
counts). Stratified bootstrap, as rliable's `StratifiedBootstrap`: each replicate resamples the seeds of every
game independently, with replacement, so each game keeps its own number of runs; intervals are percentile
intervals. Everything here returns numbers; plots are drawn by widgets/ or notebooks from
`performance_profile` / `profile_data`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def interquartile_mean(scores) -> float:
    """The mean of the middle 50% of all runs x games (scipy's trim_mean with 25% cut, as rliable's IQM)."""
    flat = np.concatenate([np.ravel(s) for s in scores]).astype(np.float64)
    return float(stats.trim_mean(flat, 0.25))


def mean_score(scores) -> float:
    return float(np.concatenate([np.ravel(s) for s in scores]).mean())


def stratified_bootstrap_ci(scores, statistic=interquartile_mean, *, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0):
    """(point estimate, low, high): percentile interval of `statistic` over `reps` stratified resamples.
    Replicate r draws, for each game g in order, `rng.integers(0, n_g, n_g)` (a fixed order a plain loop can
    reproduce). A statistic may return an array (e.g. a whole performance profile): then each is an array."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    if reps < 1:
        raise ValueError(f"reps must be >= 1 (got {reps})")
    games = [np.ravel(np.asarray(s, np.float64)) for s in scores]
    if not games or any(len(g) == 0 for g in games):
        raise ValueError("every game needs at least one run's score")
    rng = np.random.default_rng(seed)
    replicates = np.array([statistic([g[rng.integers(0, len(g), len(g))] for g in games]) for _ in range(reps)])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha], axis=0)
    if replicates.ndim == 1:
        return statistic(games), float(low), float(high)
    return np.asarray(statistic(games)), low, high


def performance_profile(scores, taus) -> np.ndarray:
    """The run-score distribution: for each tau, the fraction of all (game, run) scores above tau."""
    flat = np.concatenate([np.ravel(s) for s in scores]).astype(np.float64)
    return (flat[None, :] > np.asarray(taus, np.float64)[:, None]).mean(axis=1)


def probability_of_improvement(x_scores, y_scores) -> float:
    """P(X > Y), averaged over games: per game, the Mann-Whitney U statistic of X's runs against Y's divided by
    n_x n_y (= P(X > Y) + P(X = Y) / 2 over all run pairs), as Agarwal et al. define it."""
    if len(x_scores) != len(y_scores):
        raise ValueError(f"both algorithms need the same games (got {len(x_scores)} and {len(y_scores)})")
    per_game = []
    for x, y in zip(x_scores, y_scores):
        x, y = np.ravel(x), np.ravel(y)
        per_game.append(stats.mannwhitneyu(x, y).statistic / (len(x) * len(y)))
    return float(np.mean(per_game))


def scores_by_algo(scores, field: str = "test_normalized") -> dict[str, dict[str, np.ndarray]]:
    """{algo: {game: per-seed array of `field`}} from `evaluate.RunScore`s."""
    out: dict[str, dict[str, list]] = {}
    for s in scores:
        out.setdefault(s.algo, {}).setdefault(s.game, []).append(getattr(s, field))
    return {a: {g: np.asarray(v, np.float64) for g, v in games.items()} for a, games in out.items()}


def common_games(by_algo: dict, algos) -> list[str]:
    return sorted(set.intersection(*(set(by_algo[a]) for a in algos)))


def aggregate_rows(scores, field: str = "test_normalized", *, reps: int = 2000, seed: int = 0) -> list[dict]:
    """Per algorithm: IQM and mean over all (game, seed) runs, each with a stratified bootstrap 95% interval."""
    rows = []
    for algo, games in sorted(scores_by_algo(scores, field).items()):
        per_game = [games[g] for g in sorted(games)]
        row = {"algo": algo, "games": len(per_game), "runs": int(sum(len(g) for g in per_game))}
        for name, statistic in (("iqm", interquartile_mean), ("mean", mean_score)):
            row[name], row[name + "_lo"], row[name + "_hi"] = stratified_bootstrap_ci(
                per_game, statistic, reps=reps, seed=seed)
        rows.append(row)
    return rows


def improvement_rows(scores, field: str = "test_normalized") -> list[dict]:
    """P(X > Y) for every ordered pair of algorithms, over the games both ran."""
    by_algo = scores_by_algo(scores, field)
    rows = []
    for x in sorted(by_algo):
        for y in sorted(by_algo):
            games = common_games(by_algo, (x, y)) if x != y else []
            if games:
                rows.append({"x": x, "y": y, "games": len(games), "p_improvement": probability_of_improvement(
                    [by_algo[x][g] for g in games], [by_algo[y][g] for g in games])})
    return rows


def profile_data(scores, field: str = "test_normalized", taus=None, *, reps: int = 500,
                 seed: int = 0) -> dict:
    """Data for a performance-profile plot: {"taus": [...], algo: {"fraction", "low", "high"}} with stratified
    bootstrap 95% bands (plot it in widgets/ or a notebook; workbench/ draws nothing)."""
    by_algo = scores_by_algo(scores, field)
    every = np.concatenate([v for games in by_algo.values() for v in games.values()]) if by_algo else np.zeros(1)
    taus = np.linspace(min(0.0, every.min()), max(1.0, every.max()), 51) if taus is None else np.asarray(taus)
    out: dict = {"taus": taus.tolist()}
    for algo, games in sorted(by_algo.items()):
        per_game = [games[g] for g in sorted(games)]
        bands = stratified_bootstrap_ci(per_game, lambda s: performance_profile(s, taus), reps=reps, seed=seed)
        out[algo] = {key: band.tolist() for key, band in zip(("fraction", "low", "high"), bands)}
    return out


def aggregate_markdown(scores, field: str = "test_normalized", *, reps: int = 2000) -> str:
    """The IQM / mean table with 95% stratified bootstrap intervals, then the probabilities of improvement."""
    lines = [f"Aggregate {field.replace('_', ' ')} (Agarwal et al. 2021; 95% stratified bootstrap CIs)", "",
             "| algo | games | runs | IQM | mean |", "|---|---|---|---|---|"]
    for r in aggregate_rows(scores, field, reps=reps):
        lines.append(f"| {r['algo']} | {r['games']} | {r['runs']} | {r['iqm']:.3f} [{r['iqm_lo']:.3f}, "
                     f"{r['iqm_hi']:.3f}] | {r['mean']:.3f} [{r['mean_lo']:.3f}, {r['mean_hi']:.3f}] |")
    pairs = improvement_rows(scores, field)
    if pairs:
        lines += ["", "| P(X > Y) | Y | games | probability |", "|---|---|---|---|"]
        lines += [f"| {p['x']} | {p['y']} | {p['games']} | {p['p_improvement']:.3f} |" for p in pairs]
    return "\n".join(lines) + "\n"
