"""The analysis of an overoptimization study's records (:mod:`workbench.studies.overoptimization`): per proxy
(size x label count x ensemble variant, pooled over seeds) the best-of-n form fitted to best-of-n and the RL
form fitted to each KL coefficient's RL runs, with bootstrap intervals and peaks
(:mod:`workbench.studies.overoptimization_fits`); coefficient trends against parameters and label counts;
the KL-penalty comparison; and the ensemble comparison. Everything lands in one JSON-able dict that the
Overoptimization view, the notebook and the benchmark read.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from workbench.storage.runs import RunStore
from workbench.studies.overoptimization_fits import (
    CurveFit,
    fit_curve,
    kl_penalty_effect,
    trend,
)

RESULTS_DIR = "overoptimization"

__all__ = ["analyse", "ensemble_table", "kl_table", "list_studies", "load_summary", "proxy_table", "results_dir", "summary_path", "trend_table"]


def results_dir(store_root=None) -> Path:
    return RunStore(store_root).root / RESULTS_DIR


def summary_path(study_name: str, store_root=None) -> Path:
    """Where :func:`run_study` saves a study's analysis."""
    return results_dir(store_root) / study_name / "summary.json"


def list_studies(store_root=None) -> list[str]:
    """Names of the studies with an analysis in this store."""
    base = results_dir(store_root)
    return sorted(p.parent.name for p in base.glob("*/summary.json")) if base.exists() else []


def load_summary(study_name: str, store_root=None) -> dict:
    path = summary_path(study_name, store_root)
    if not path.exists():
        raise ValueError(f"no analysed overoptimization study {study_name!r} in this store; studies: "
                         f"{list_studies(store_root) or 'none'}")
    return json.loads(path.read_text())


def _key(rec: dict) -> tuple:
    p = rec["point"]
    return float(p["proxy_width"]), int(p["proxy_hidden"]), int(p["labels"])


def _fit_or_none(form, d_units, r_units, n_resamples, seed) -> CurveFit | None:
    try:
        return fit_curve(form, d_units, r_units, n_resamples=n_resamples, seed=seed)
    except ValueError:
        return None


def analyse(records: list[dict], *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """See the module docstring. `records`: :func:`workbench.studies.overoptimization.load_records`."""
    if not records:
        raise ValueError("no finished points to analyse: run the study's points first")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        groups[_key(rec)].append(rec)
    proxies, fits = [], {}
    for (width, hidden, labels), recs in sorted(groups.items()):
        bon0 = recs[0]["bon"]
        d_grid = np.asarray(bon0["d"])
        for variant in bon0["variants"]:
            rows_gold = [row for r in recs for row in r["bon"]["variants"][variant]["gold"]]
            rows_proxy = [row for r in recs for row in r["bon"]["variants"][variant]["proxy"]]
            bon_fit = _fit_or_none("bon", [d_grid] * len(rows_gold), rows_gold, n_resamples, seed)
            entry = {"width": width, "hidden": hidden, "labels": labels, "variant": variant,
                     "params": recs[0]["params"], "seeds": len(recs),
                     "heldout_accuracy": float(np.mean([r["heldout_accuracy"] for r in recs])),
                     "bon": {"n": bon0["n"], "d": d_grid.tolist(), "gold": np.mean(rows_gold, 0).tolist(),
                             "gold_se": (np.std(rows_gold, 0, ddof=1) / math.sqrt(len(rows_gold))).tolist()
                             if len(rows_gold) > 1 else [math.nan] * len(d_grid),
                             "proxy": np.mean(rows_proxy, 0).tolist(),
                             "fit": bon_fit.as_dict() if bon_fit else None}, "rl": []}
            fits[(width, hidden, labels, variant, "bon")] = bon_fit
            rl_runs = [run for r in recs for run in r["rl"] if run["variant"] == variant]
            for coef in sorted({run["kl_coef"] for run in rl_runs}):
                runs = [run for run in rl_runs if run["kl_coef"] == coef]
                d = [x for run in runs for x in run["d"]]
                g = [x for run in runs for x in run["gold"]]
                rl_fit = _fit_or_none("rl", d, g, n_resamples, seed)
                fits[(width, hidden, labels, variant, f"rl{coef}")] = rl_fit
                entry["rl"].append({"kl_coef": coef, "runs": [{k: run[k] for k in ("run_id", "seed", "d", "gold",
                                                                                   "proxy")} for run in runs],
                                    "fit": rl_fit.as_dict() if rl_fit else None})
            if len({run["kl_coef"] for run in rl_runs}) > 1 and any(run["kl_coef"] == 0 for run in rl_runs):
                try:
                    entry["kl_penalty"] = kl_penalty_effect(rl_runs, n_resamples=n_resamples, seed=seed)
                except ValueError as exc:
                    entry["kl_penalty_error"] = str(exc)
            proxies.append(entry)
    return {"proxies": proxies, "trends": _trends(proxies, fits), "records": len(records)}


def _trends(proxies: list[dict], fits: dict) -> list[dict]:
    """alpha and beta against log10(parameters) at each label count, and against log10(labels) at each
    size, for every variant and method that has >= 2 distinct x values with a fit."""
    out = []
    methods = sorted({m for (*_, m) in fits})
    variants = sorted({p["variant"] for p in proxies})
    sizes = sorted({(p["width"], p["hidden"]) for p in proxies})
    label_counts = sorted({p["labels"] for p in proxies})
    params = {(p["width"], p["hidden"]): p["params"] for p in proxies}
    for variant in variants:
        for method in methods:
            series = [("params", f"labels={n}", [(params[s], fits.get((*s, n, variant, method))) for s in sizes])
                      for n in label_counts]
            series += [("labels", f"params={params[s]}", [(n, fits.get((*s, n, variant, method)))
                                                            for n in label_counts]) for s in sizes]
            for against, at, pairs in series:
                pairs = [(x, f) for x, f in pairs if f is not None]
                if len({x for x, _ in pairs}) < 2:
                    continue
                for coefficient in ("alpha", "beta"):
                    t = trend([x for x, _ in pairs], [f for _, f in pairs], coefficient, against)
                    out.append({"variant": variant, "method": method, "at": at, **t.as_dict()})
    return out


# ---- text tables (the benchmark prints them; the docs quote them) -----------------------------------------
def _ci(ci) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]"


def proxy_table(summary: dict, variant: str = "single") -> str:
    lines = [("| proxy params | labels | held-out acc | method | alpha [95% CI] | beta [95% CI] | d* [95% CI] | "
             "gold at d* | measured peak (d, gold) | d range |"), "|" + "---|" * 10]
    for p in summary["proxies"]:
        if p["variant"] != variant:
            continue
        rows = [("best-of-n", p["bon"]["fit"])] + [(f"RL kl={r['kl_coef']:g}", r["fit"]) for r in p["rl"]]
        for method, f in rows:
            if f is None:
                continue
            lines.append(f"| {p['params']} | {p['labels']} | {p['heldout_accuracy']:.3f} | {method} | "
                         f"{f['alpha']:.3g} {_ci(f['alpha_ci'])} | {f['beta']:.3g} {_ci(f['beta_ci'])} | "
                         f"{f['d_star']:.3g} {_ci(f['d_star_ci'])} | {f['gold_star']:.3g} | "
                         f"({f['empirical_peak_d']:.2f}, {f['empirical_peak_gold']:.3g}) | "
                         f"{f['d_range'][0]:.2f}-{f['d_range'][1]:.2f} |")
    return "\n".join(lines)


def trend_table(summary: dict, variant: str = "single") -> str:
    lines = ["| method | coefficient | against log10 of | at | slope [95% bootstrap CI] | slope s.e. (linregress) |",
             "|" + "---|" * 6]
    for t in summary["trends"]:
        if t["variant"] == variant:
            lines.append(f"| {t['method']} | {t['coefficient']} | {t['against']} | {t['at']} | "
                         f"{t['slope']:+.3g} {_ci(t['slope_ci'])} | {t['slope_se']:.3g} |")
    return "\n".join(lines)


def kl_table(summary: dict) -> str:
    lines = [("| proxy params | labels | variant | kl_coef | max d | peak gold | final gold | gold - frontier at same d "
             "[95% CI] | proxy - unpenalized at same d [95% CI] |"), "|" + "---|" * 9]
    for p in summary["proxies"]:
        for row in p.get("kl_penalty", []):
            lines.append(f"| {p['params']} | {p['labels']} | {p['variant']} | {row['kl_coef']:g} | {row['max_d']:.2f} | "
                         f"{row['peak_gold']:.3g} | {row['final_gold']:.3g} | {row['gold_residual']:+.3g} "
                         f"{_ci(row['gold_residual_ci'])} | {row['proxy_residual']:+.3g} {_ci(row['proxy_residual_ci'])} |")
    return "\n".join(lines)


def ensemble_table(summary: dict) -> str:
    lines = [("| proxy params | labels | variant | best-of-n measured peak gold | gold at largest n | "
             "fitted d* | RL (kl=0) final gold |"), "|" + "---|" * 7]
    for p in summary["proxies"]:
        f = p["bon"]["fit"]
        rl0 = [r for r in p["rl"] if r["kl_coef"] == 0]
        final = np.mean([run["gold"][-1] for run in rl0[0]["runs"]]) if rl0 else math.nan
        lines.append(f"| {p['params']} | {p['labels']} | {p['variant']} | "
                     f"{max(p['bon']['gold']):.3g} | {p['bon']['gold'][-1]:.3g} | "
                     f"{f['d_star'] if f else math.nan:.3g} | {final:.3g} |")
    return "\n".join(lines)
