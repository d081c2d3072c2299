"""A study: a named family of runs, one job kind and base settings plus axes over any settings.

    spec = StudySpec(name="widths", algo="ppo", base={"env": "colour_cue", "total_timesteps": 4096},
                     axes={"width": [0.25, 0.5, 1.0], "seed": [0, 1, 2]})        # grid: 9 runs
    StudySpec(..., axes={"width": [0.25, 1.0], "seed": [0, 1]}, mode="list")     # zipped: 2 runs
    StudySpec(..., points=[{"width": 0.25, "seed": 0}, {"width": 1.0, "seed": 3}])  # an explicit list

or a TOML file (``StudySpec.from_toml``)::

    name = "widths"
    algo = "ppo"
    distribution_mode = "easy"
    [base]
    env = "colour_cue"
    total_timesteps = 4096
    [axes]
    width = [0.25, 0.5, 1.0]
    seed = [0, 1, 2]

Each point's *settings* are ``{"algo", "distribution_mode", **base, **axis values}``; the job kind turns them
into a run. Kind ``"train"`` trains with ``workbench.registry.make_config``/``train`` (``algo`` and
``distribution_mode`` may be axes too, as in the benchmark's grid). Other kinds are registered with
:func:`register_job_kind` (e.g. from the module that defines them) or named as ``"package.module:function"``;
a job is ``job(settings: dict, store_root: str, name: str) -> run_id`` and must be *resumable*: called again
with the same ``name`` after an interruption it continues (or returns) that run rather than starting over.
"""

from __future__ import annotations

import importlib
import itertools
import json
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

AXIS_MODES = ("grid", "list")

JobFunction = Callable[[dict, str, str], str]
# kind name -> "module:function"; the worker process imports it, so a kind registered in another module works
# in a separate process (or on a Ray node) as long as that module is importable there.
_JOB_KINDS: dict[str, str] = {"train": "workbench.studies.jobs:train_job"}


def register_job_kind(name: str, job: JobFunction | str) -> None:
    """Make ``name`` a study kind run by ``job`` (a module-level function, or its "module:function" path)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a job kind name must be a non-empty string without ':', got {name!r}")
    path = job if isinstance(job, str) else f"{job.__module__}:{job.__qualname__}"
    if "<" in path or ":" not in path:
        raise ValueError(f"job kind {name!r} must be a module-level function (importable by path), got {path!r}")
    _JOB_KINDS[name] = path


def job_kinds() -> dict[str, str]:
    return dict(_JOB_KINDS)


def job_path(kind: str) -> str:
    """The "module:function" that runs jobs of ``kind`` (a registered name, or a path itself)."""
    if kind in _JOB_KINDS:
        return _JOB_KINDS[kind]
    if ":" in kind:
        return kind
    raise ValueError(f"unknown study kind {kind!r}; valid: {', '.join(_JOB_KINDS)} or a 'package.module:function'")


def resolve_job(path: str) -> JobFunction:
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import the job function {path!r}: {e}") from None
    if not callable(obj):
        raise ValueError(f"{path!r} is not a function")
    return obj


def _format_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class StudySpec:
    name: str
    algo: str | None = "ppo"
    kind: str = "train"
    distribution_mode: str = "easy"
    base: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)      # field -> list of values
    mode: str = "grid"                           # grid: every combination; list: the axes zipped
    points: list | None = None                    # an explicit list of axis-value dicts (instead of axes)

    def validate(self) -> "StudySpec":
        if not isinstance(self.name, str) or not self.name.strip() or any(c in self.name for c in "\n\r"):
            raise ValueError(f"a study needs a name (one line of text), got {self.name!r}")
        job_path(self.kind)
        if self.mode not in AXIS_MODES:
            raise ValueError(f"unknown axis mode {self.mode!r}; valid: {', '.join(AXIS_MODES)}")
        if not isinstance(self.base, dict):
            raise ValueError(f"base must be a table of settings, got {self.base!r}")
        if self.points is not None:
            if self.axes:
                raise ValueError("give either axes or an explicit list of points, not both")
            if not isinstance(self.points, list) or not all(isinstance(p, dict) for p in self.points):
                raise ValueError("points must be a list of tables of axis values, e.g. [{width = 0.25, seed = 0}]")
        for key, values in self.axes.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"axis {key!r} needs a non-empty list of values, got {values!r}")
        if self.mode == "list" and len({len(v) for v in self.axes.values()}) > 1:
            lengths = {k: len(v) for k, v in self.axes.items()}
            raise ValueError(f"axes zipped as a list must have equal lengths, got {lengths}")
        points = self.axis_points()
        if not points:
            raise ValueError(f"study {self.name!r} has no runs: give at least one axis or point")
        keys = [json.dumps(p, sort_keys=True) for p in points]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"study {self.name!r} lists the point {dup} more than once")
        return self

    def axis_points(self) -> list[dict]:
        """The axis values of each run, in order."""
        if self.points is not None:
            return [dict(p) for p in self.points]
        keys = list(self.axes)
        if not keys:
            return []
        combos = itertools.product(*self.axes.values()) if self.mode == "grid" else zip(*self.axes.values())
        return [dict(zip(keys, values)) for values in combos]

    def axis_names(self) -> list[str]:
        return list(dict.fromkeys(k for p in self.axis_points() for k in p))

    def settings(self, point: dict) -> dict:
        """What the job gets: the algorithm, the mode, the base settings and this point's axis values."""
        head = {"distribution_mode": self.distribution_mode}
        if self.algo is not None:
            head["algo"] = self.algo
        return {**head, **self.base, **point}

    def run_name(self, point: dict) -> str:
        """A unique, readable run name: ``study/key=value,key=value``."""
        return f"{self.name}/" + ",".join(f"{k}={_format_value(v)}" for k, v in point.items())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "StudySpec":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown study settings {unknown}; valid: {sorted(known)}")
        return cls(**values).validate()

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "StudySpec":
        """Read a study from a TOML file (see the module docstring); ``overrides`` (e.g. name) win."""
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except FileNotFoundError:
            raise ValueError(f"no study file at {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path} is not valid TOML: {e}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)


def parse_axis(text: str) -> tuple[str, list]:
    """``"width=0.25,0.5,1"`` -> ("width", [0.25, 0.5, 1]) (each value JSON when it parses, else text)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ValueError(f"an axis is KEY=V1,V2,... (e.g. width=0.25,0.5), got {text!r}")
    values = []
    for part in raw.split(","):
        part = part.strip()
        try:
            values.append(json.loads(part))
        except json.JSONDecodeError:
            values.append(part)
    return key.strip(), values
