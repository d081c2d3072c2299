"""Families of runs: studies (sweeps over config axes, run locally or on Ray), the Procgen benchmark grid as a
study, compute accounting, and the scaling-law fits over them.

The sweep machinery (stable interface):
  spec.StudySpec (name, algo, kind, distribution_mode, base, axes, mode, points; from_toml),
  spec.register_job_kind(name, job) with job(settings: dict, store_root: str, name: str) -> run_id (resumable),
  sweep.run_study(spec, store_root, executor) -> StudyReport,
  executors.LocalExecutor(store_root, parallel=K) / RayExecutor(store_root, address=...),
  workbench.storage.studies.StudyStore(root).list_studies() / .points(name).

May import: every workbench package except workbench.cli.
"""
