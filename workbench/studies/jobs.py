"""The built-in study job kind, "train": one training run of the registry per point, resumable by name.

A job is ``job(settings, store_root, name) -> run_id`` (see workbench.studies.spec). A job function may carry
a ``validate(settings)`` attribute that raises ValueError for bad settings; the sweep checks every point with
it before starting anything.
"""

from __future__ import annotations

import dataclasses

from workbench.storage.runs import RunStore, process_alive


def train_config(settings: dict):
    """The validated training config of a point's settings: ``algo``, ``distribution_mode``, optional
    ``batch_scale`` (workbench.rl.algos.batch_size) and any config field (the launch form's aliases, such as
    ``timesteps``, work too)."""
    from workbench.monitor.launch import validate_launch
    from workbench.registry import ALGOS, RM_ALGOS, adjust_for_batch_size

    fields = dict(settings)
    algo = fields.pop("algo", None)
    if algo not in ALGOS + RM_ALGOS:
        raise ValueError(f"a train study needs an algorithm: algo must be one of {', '.join(ALGOS + RM_ALGOS)}, "
                         f"got {algo!r}")
    batch_scale = fields.pop("batch_scale", None)
    config = validate_launch(algo, fields)
    if batch_scale is not None:
        config = adjust_for_batch_size(config, batch_scale).validate()
    return algo, config


def train_job(settings: dict, store_root: str, name: str) -> str:
    """Train the point's config as run ``name``; a run of that name already in the store is returned when it
    has finished and resumed from its last checkpoint otherwise."""
    from workbench import registry

    store = RunStore(store_root)
    existing = store.runs_named(name)
    if existing:
        info = existing[0]
        if info.status == "finished":
            return info.id
        if info.status == "running" and process_alive(info.pid):
            raise RuntimeError(f"run {info.id} ({name}) is already running (pid {info.pid})")
        config = registry.config_from_run(info.algo, info.config)
        return registry.train(config, store=store, run_id=info.id, progress=False)
    _, config = train_config(settings)
    config = dataclasses.replace(config, name=name)
    return registry.train(config, store=store, progress=False)


train_job.validate = train_config
