"""The hyperparameter view's table: one row per run, the settings that differ between the runs, and a final
metric, as W&B's sweep view and TensorBoard's HParams dashboard show them (the widget draws it as parallel
coordinates).

A run's final metric is the mean of its last ``tail`` logged values (the end of a noisy learning curve, not
its single last point); categorical settings are kept as text and numbered by the widget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.storage.runs import RunInfo, RunStore

IGNORED = ("name", "seed", "device", "progress")


@dataclass
class HparamTable:
    run_ids: list[str]
    names: list[str]                     # run names, for hover text
    settings: dict[str, list]            # setting -> one value per run (numbers, or text for categories)
    metric: str
    values: list[float]                  # the final metric per run (NaN when the run logged none)


def _plain(value):
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def final_metric(store: RunStore, run_id: str, metric: str, tail: int = 10) -> float:
    _, values = store.metric_series(run_id, metric)
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values[-tail:].mean()) if len(values) else math.nan


def hparam_table(store: RunStore, infos: Sequence[RunInfo], metric: str, *, tail: int = 10,
                 include_constant: bool = False) -> HparamTable:
    """The settings of ``infos`` that differ between them (all of them with ``include_constant``), plus the
    algorithm and env when those differ, against each run's final ``metric``."""
    if tail < 1:
        raise ValueError(f"tail must be at least 1 (got {tail})")
    rows = [{"algo": i.algo, "env": i.env, **{k: _plain(v) for k, v in i.config.items() if k not in IGNORED}}
            for i in infos]
    keys = sorted({k for row in rows for k in row}, key=lambda k: (k not in ("algo", "env"), k))
    settings = {}
    for key in keys:
        column = [row.get(key, "(not set)") for row in rows]
        if include_constant or len({json.dumps(v, default=str) for v in column}) > 1:
            settings[key] = column
    return HparamTable(run_ids=[i.id for i in infos], names=[i.name for i in infos], settings=settings,
                       metric=metric, values=[final_metric(store, i.id, metric, tail) for i in infos])


__all__ = ["HparamTable", "hparam_table", "final_metric"]
