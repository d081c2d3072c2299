"""The settings of reward-model training (:class:`RewardConfig`, every field documented in the package docstring)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from workbench.preferences.reward.models import (
    TEXT_ENCODERS,
)

EQUAL_MODES = ("soft", "drop")
MODEL_KINDS = ("auto", "clip", "text")
USABLE_PREFERENCES = ("a", "b", "equal")
ALL_PREFERENCES = ("a", "b", "equal", "cant_tell", "skip")


@dataclass
class RewardConfig:
    """Every setting of reward-model training (see the module docstring for the sources)."""

    model: str = "auto"              # "auto" (from the campaign kind) | "clip" | "text"
    members: int = 3                 # ensemble size (Christiano et al. used an ensemble; 3 is ours)
    bootstrap: bool = True           # each member on a bootstrap resample of the training elements
    heldout_fraction: float = 1 / math.e   # of the items, held out for validation (Christiano: 1/e)
    epochs: int = 10
    batch_size: int = 32             # batch elements (pairs, or whole rankings) per minibatch
    lr: float = 3e-4                 # Adam step size
    adam_eps: float = 1e-8
    l2: float = 1e-4                 # (l2 / 2) * sum of squared weights (kernels and matrices, not biases)
    l2_adapt: bool = False           # Christiano's rule: keep held-out loss within [1.1, 1.5] x training loss
    l2_adapt_factor: float = 1.5     # multiply / divide l2 by this after an epoch outside that band
    equal: str = "soft"              # "soft" (0.5/0.5 label) | "drop"
    noise_floor: bool = True         # P_e = 0.9 P + 0.05 (Christiano et al. 2017)
    group_rankings: bool = True      # InstructGPT's K-choose-2 grouping of a ranking's pairs
    reward_std: float = 0.05         # per-step (clip) / per-response (text) std after normalization
    # clip model
    width: float = 0.5               # IMPALA width multiplier (depths 16, 32, 32 x width)
    hidden: int = 64                 # dense layer after the conv stacks
    # text model
    text_encoder: dict = field(default_factory=lambda: {"name": "hashed_bow", "dim": 2 ** 16, "ngrams": 2})
    text_hidden: int = 0             # 0: a linear head on the features; > 0: one hidden ReLU layer
    eval_batch_size: int = 256       # items per forward pass outside training
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = []

        def check_int(name, low):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                problems.append(f"{name} must be an integer >= {low}, got {v!r}")

        def check_float(name, low, high, low_open=False):
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < low or v > high or (low_open and v == low):
                problems.append(f"{name} must be a number in {'(' if low_open else '['}{low}, {high}], got {v!r}")

        if self.model not in MODEL_KINDS:
            problems.append(f"model must be one of {MODEL_KINDS}, got {self.model!r}")
        if self.equal not in EQUAL_MODES:
            problems.append(f"equal must be one of {EQUAL_MODES}, got {self.equal!r}")
        for name in ("members", "epochs", "batch_size", "hidden", "eval_batch_size"):
            check_int(name, 1)
        check_int("text_hidden", 0)
        check_int("seed", 0)
        check_float("heldout_fraction", 0.0, 0.9)
        check_float("lr", 0.0, 1.0, low_open=True)
        check_float("adam_eps", 0.0, 1.0, low_open=True)
        check_float("l2", 0.0, 1e6)
        check_float("l2_adapt_factor", 1.0, 100.0, low_open=True)
        check_float("reward_std", 0.0, 1e6, low_open=True)
        check_float("width", 0.0, 16.0, low_open=True)
        for name in ("bootstrap", "l2_adapt", "noise_floor", "group_rankings"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.text_encoder, dict) or self.text_encoder.get("name") not in TEXT_ENCODERS:
            problems.append(f"text_encoder must be a dict with 'name' one of {sorted(TEXT_ENCODERS)}, "
                            f"got {self.text_encoder!r}")
        if not isinstance(self.device, str):
            problems.append(f"device must be a string ('auto', 'cpu', 'cuda'), got {self.device!r}")
        if problems:
            raise ValueError("invalid RewardConfig: " + "; ".join(problems))

    @classmethod
    def from_overrides(cls, overrides: dict, base: "RewardConfig | None" = None) -> "RewardConfig":
        """A config with `overrides` (name -> value) applied; unknown names are a ValueError."""
        from workbench.rl.algos.config_check import (
            check_values,  # names and types: the engines' shared check
        )

        return dataclasses.replace(base or cls(), **check_values(cls, overrides))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ================================================================================================ losses
