"""One check of every config field against its declared type and range, for every engine's config dataclass.

Used by `PPOConfig.validate()` / `from_dict` (and so by PPG, the EWMA variants, RL against a reward model and
any config that subclasses them), by `workbench.registry.make_config` (the CLI's `--set`, sweeps, the
dashboard's launch form) and by the Python API alike:

    values = check_values(PPOConfig, {"learning_rate": "abc"})   # ValueError naming field, value, what is valid
    check_config(config)                                          # the same for a built config (in validate())

Types come from the dataclass annotations and are checked with pydantic's `TypeAdapter` in its lax mode, so
JSON-ish input is accepted where it is unambiguous (25e6 for an int, a list for a tuple) and everything else
is refused; booleans are never taken as numbers. Ranges are the table `RANGES` keyed by field name (so a
field added to a config gets its type checked at once and its range by one line here). Choices among names
(`advantage_norm`, `arch`, ...) and checks across fields stay in each config's `validate()`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import PydanticUserError, TypeAdapter, ValidationError

MAX_SEED = 2**31 - 1            # procgen and numpy take 32-bit seeds
MAX_TIMESTEPS = 10**12          # 5000x the Procgen paper's hard-mode budget: anything above is a typo


@dataclass(frozen=True)
class Range:
    """Valid values of a number: [low, high], with `low_open`/`high_open` for strict bounds; None = no bound.
    For a tuple field, each element is checked."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {high}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def _number(x: float | None) -> str:
    return f"{int(x):,}" if x is not None and float(x).is_integer() else f"{x:g}" if x is not None else ""


def _show(value) -> str:
    """A value as the user typed it (JSON: null, true, "abc", [0.9, 1.5]) where it has a JSON form."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


AT_LEAST_1, AT_LEAST_0, POSITIVE = Range(1), Range(0), Range(0, low_open=True)
UNIT, UNIT_OPEN = Range(0, 1), Range(0, 1, high_open=True)

# Field name -> valid range, for every engine's config (PPO, PPG, RL against a reward model, ...).
RANGES: dict[str, Range] = {
    # environment and budget
    "num_levels": AT_LEAST_0, "start_level": Range(0, MAX_SEED), "num_envs": Range(1, 65536),
    "total_timesteps": Range(1, MAX_TIMESTEPS), "seed": Range(0, MAX_SEED),
    # PPO
    "num_steps": AT_LEAST_1, "num_minibatches": AT_LEAST_1, "update_epochs": AT_LEAST_1, "value_epochs": AT_LEAST_0,
    "learning_rate": Range(0, 1, low_open=True), "adam_eps": Range(0, 1, low_open=True), "adam_betas": UNIT_OPEN,
    "gamma": UNIT, "gae_lambda": UNIT, "clip_coef": POSITIVE, "ent_coef": AT_LEAST_0, "vf_coef": AT_LEAST_0,
    "max_grad_norm": POSITIVE, "reward_norm_gamma": UNIT, "reward_clip": POSITIVE,
    # PPO-EWMA, staleness
    "beta_prox": UNIT_OPEN, "beta_adv": UNIT_OPEN, "max_importance_weight": Range(1), "staleness": AT_LEAST_0,
    # model and runtime
    "width": Range(0, 64, low_open=True), "update_chunk_size": AT_LEAST_1, "checkpoint_every": AT_LEAST_1,
    "record_every": AT_LEAST_0,
    # PPG
    "n_pi": AT_LEAST_1, "aux_epochs": AT_LEAST_0, "beta_clone": AT_LEAST_0, "aux_minibatch_rollouts": AT_LEAST_1,
    # RL against a reward model
    "kl_coef": AT_LEAST_0, "init_checkpoint": AT_LEAST_0, "online_every": AT_LEAST_0, "online_pairs": AT_LEAST_1,
    "online_clip_length": AT_LEAST_1, "online_trace_envs": AT_LEAST_1, "online_keep_episodes": AT_LEAST_1,
}


class ConfigError(ValueError):
    """A config value of the wrong type or outside its range, or an unknown setting. `problems`: one sentence
    each; `wrong_type`: whether any is a wrong type or an unknown name (then no other check can run)."""

    def __init__(self, message: str, problems: list[str] | None = None, wrong_type: bool = True):
        super().__init__(message)
        self.problems = problems or [message]
        self.wrong_type = wrong_type


def _plain(annotation) -> str:
    """A type as a user reads it: 'a whole number', 'a number or null', 'a list of 2 numbers'."""
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string",
             type(None): "null", dict: "a JSON object", list: "a list"}
    if annotation in names:
        return names[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_plain(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        inner = {_plain(a) for a in args}
        item = inner.pop().removeprefix("a ") + "s" if len(inner) == 1 else "values"
        return f"a list of {len(args)} {item}"
    if origin in (tuple, list):
        return "a list"
    if origin is dict:
        return "a JSON object"
    return getattr(annotation, "__name__", str(annotation))


def _admits_bool(annotation) -> bool:
    if annotation is bool or annotation is typing.Any:
        return True
    return any(_admits_bool(a) for a in typing.get_args(annotation))


def _adapter(annotation) -> TypeAdapter | None:
    try:
        return TypeAdapter(annotation)
    except PydanticUserError:  # a type pydantic cannot check (an arbitrary class): its range check still runs
        return None


@functools.cache
def _field_types(cls) -> dict[str, tuple[Any, TypeAdapter | None]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], _adapter(hints[f.name])) for f in dataclasses.fields(cls) if f.init}


def valid_settings(cls) -> list[str]:
    return sorted(_field_types(cls))


def _numbers(value) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, tuple):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def _check_field(name: str, annotation, adapter: TypeAdapter | None, value) -> tuple[Any, str | None, bool]:
    """(the value as the field's type, None, False), or (value, a sentence naming the field, the value and what
    is valid, whether the type is wrong)."""
    given, bounds = value, RANGES.get(name)  # given: as the user wrote it, for messages
    valid = _plain(annotation) + (f" {bounds.describe()}" if bounds is not None else "")
    if isinstance(value, bool) and not _admits_bool(annotation):
        return value, f"{name}={_show(given)}: expected {valid}", True
    try:
        value = value if adapter is None else adapter.validate_python(value)
    except ValidationError:
        return value, f"{name}={_show(given)}: expected {valid}", True
    for number in _numbers(value):
        if isinstance(number, float) and not math.isfinite(number):
            finite = "a finite number" + (f" {bounds.describe()}" if bounds else "")
            return value, f"{name}={_show(given)}: expected {finite}", False
        if bounds is not None and not bounds.contains(number):
            return value, f"{name}={_show(given)}: expected {valid}", False
    return value, None, False


def check_values(cls, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` (setting name -> value) checked against `cls`'s fields and converted to their types (25e6 ->
    25000000, [0.9, 0.999] -> a tuple). ConfigError naming every unknown setting (with the valid ones) or
    every wrong value (with its field, the value and what is valid)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{cls.__name__} settings must be a mapping of name -> value, got {type(values).__name__}")
    fields = _field_types(cls)
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} settings {unknown}; valid settings: {', '.join(sorted(fields))}")
    out, problems, wrong_type = {}, [], False
    for name, value in values.items():
        out[name], problem, bad_type = _check_field(name, *fields[name], value)
        if problem:
            problems.append(problem)
            wrong_type |= bad_type
    if problems:
        raise ConfigError(f"invalid {cls.__name__}: " + "; ".join(problems), problems, wrong_type)
    return out


def check_config(config) -> None:
    """Every field of a built config checked (ConfigError as `check_values`); whole floats of integer fields
    and lists of tuple fields are converted in place, so the engine sees its declared types."""
    values = check_values(type(config), {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                                         if f.init})
    for name, value in values.items():
        if value is not getattr(config, name):
            object.__setattr__(config, name, value)


def config_from_dict(cls, values: Mapping[str, Any]):
    """A `cls` from stored or user settings (unknown names and wrong values refused before construction)."""
    return cls(**check_values(cls, values))


__all__ = ["ConfigError", "RANGES", "Range", "check_config", "check_values", "config_from_dict", "valid_settings"]
