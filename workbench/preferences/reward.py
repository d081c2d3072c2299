"""Reward models learned from comparisons: losses, clip and text models, ensembles, training, save/load.

The model of a labeler (Bradley-Terry; Christiano et al. 2017, arXiv 1706.03741, section 2.2.3)
--------------------------------------------------------------------------------------------------
A reward model r scores each item; for a clip, r(clip) is the *sum of per-step rewards* over its frames
(Christiano et al., eq. 1), for a text response r(prompt, response) is one scalar. The probability that a
labeler prefers A is P(A > B) = sigma(r(A) - r(B)), and the loss of one label with soft target mu
(mu = 1 A preferred, 0 B preferred, 0.5 "equal") is

    loss = -[mu log P + (1 - mu) log(1 - P)].

Settings (all fields of :class:`RewardConfig`):

* ``noise_floor`` (default on, as Christiano et al. section 2.2.3): the labeler answers at random 10% of the
  time, so P_e = 0.9 P + 0.05 replaces P in the loss *and* in every probability this module reports
  (held-out P(A > B) for calibration, accuracy, disagreement), because P_e is the model's prediction of the
  label. Off: plain Bradley-Terry (Gao et al. 2022; InstructGPT).
* ``equal``: "soft" (a 0.5/0.5 label, Christiano et al.; WebGPT's neutral answers) or "drop" (InstructGPT
  drops ties). "can't tell" and "skip" are always excluded (Christiano's "incomparable" is dropped).
* Rankings (InstructGPT, Ouyang et al. 2022, arXiv 2203.02155, section 3.5): a ranking of K responses gives
  all C(K, 2) pairs, and they form *one batch element*: the loss of a ranking is the mean of its pairs'
  losses (the 1/C(K, 2) factor) and minibatches are drawn over rankings, not pairs ("shuffling pairs
  individually overfit within one epoch"). ``group_rankings=False`` turns this off for the ablation (every
  pair its own element). A plain pair is an element of its own.
* The ensemble (Christiano et al. section 2.2.3): ``members`` predictors, each trained on a bootstrap
  resample of the training elements (``bootstrap``); a held-out split (``heldout_fraction``, default 1/e as
  theirs) of whole *items* (all labels of one item, e.g. several labelers' answers on one pair, fall on the
  same side, so held-out accuracy is never measured on a pair seen in training); an L2 penalty
  (``l2``: (l2 / 2) * sum of squared weights of the kernels and matrices, biases excluded; coupled L2 as
  Adam's ``weight_decay``); optionally ``l2_adapt``, their rule of adjusting L2 so the held-out loss stays
  between 1.1x and 1.5x the training loss (our step: x/÷ ``l2_adapt_factor`` per epoch).
* Normalization (Christiano et al. section 2.2.3 and appendix A.1): after training each member's output is
  shifted and scaled to zero mean and standard deviation ``reward_std`` (default 0.05, their Atari value)
  over the steps of the training clips (text: the training responses); the ensemble reward is the mean of
  the normalized members (not renormalized). This is the reward RL sees (:meth:`RewardEnsemble.step_rewards`).
  Preference probabilities use each member's *trained* scale (the scale the loss calibrated), and the
  ensemble's P(A > B) is the mean of the members' probabilities; disagreement is their standard deviation
  (population std, so 0 for one member), Christiano's query-selection signal.

Models
------
* :class:`ClipRewardModel`: a per-step reward network on the uint8 64x64 observations: the IMPALA stacks of
  :mod:`workbench.rl.policy` (``ConvSequence``) with depths [16, 32, 32] x ``width``, then dense ``hidden`` ->
  scalar. Departure: Christiano et al.'s Atari predictor was a 4-layer conv net with dropout and batch norm;
  here it is the IMPALA CNN the policies use (no dropout, no batch norm).
* :class:`TextRewardModel`: a head (linear, or one hidden layer) over a pluggable :class:`TextEncoder`. Built
  in: :class:`HashedBagOfWords` (sign-hashed unigrams and bigrams, no external data). A sentence-embedding
  encoder can be registered with :func:`register_text_encoder` where one is installed locally; none is
  installed in this project, so none is built in.

Training from a labeling campaign: :func:`train_reward_model` (and ``workbench reward train``). Saving:
:func:`save_reward_model` / :func:`load_reward_model` write a directory with ``weights.safetensors`` and
``config.json``; loading executes no code (safetensors holds tensors only, the JSON is validated key by key,
and the weights' SHA-256 recorded in the config must match).

Bad input raises ``ValueError`` saying what was found and what is needed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.rl.policy import IMPALA_DEPTHS, ConvSequence, resolve_device
from workbench.storage.durable import fsync_dir as _fsync_dir

EQUAL_MODES = ("soft", "drop")
MODEL_KINDS = ("auto", "clip", "text")
USABLE_PREFERENCES = ("a", "b", "equal")
ALL_PREFERENCES = ("a", "b", "equal", "cant_tell", "skip")
FORMAT_NAME = "workbench.reward_model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
NOISE_FLOOR_SCALE, NOISE_FLOOR_OFFSET = 0.9, 0.05   # Christiano et al. 2017, section 2.2.3

__all__ = [
    "RewardConfig", "bradley_terry_loss", "pair_losses", "grouped_mean", "preference_probability",
    "ClipRewardModel", "TextRewardModel", "TextEncoder", "HashedBagOfWords", "register_text_encoder",
    "TEXT_ENCODERS", "RewardEnsemble", "PreferenceData", "ClipBank", "comparisons_to_data", "fit_ensemble",
    "train_reward_model", "RewardTrainingResult", "save_reward_model", "load_reward_model",
    "reward_model_dir", "labeler_agreement", "load_reward_run", "build_ensemble", "make_text_encoder",
    "split_heldout",
]


# ================================================================================================ config

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
        from workbench.rl.algos.config_check import check_values  # names and types: the engines' shared check

        return dataclasses.replace(base or cls(), **check_values(cls, overrides))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ================================================================================================ losses

def _log_probs(logit: torch.Tensor, noise_floor: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """log P and log(1 - P) of P = sigma(logit), or of P_e = 0.9 P + 0.05, computed stably."""
    if not noise_floor:
        return F.logsigmoid(logit), F.logsigmoid(-logit)
    log_scale, log_offset = math.log(NOISE_FLOOR_SCALE), math.log(NOISE_FLOOR_OFFSET)
    offset = torch.full_like(logit, log_offset)
    return (torch.logaddexp(log_scale + F.logsigmoid(logit), offset),
            torch.logaddexp(log_scale + F.logsigmoid(-logit), offset))


def preference_probability(r_a: torch.Tensor, r_b: torch.Tensor, *, noise_floor: bool = False) -> torch.Tensor:
    """P(A > B) = sigma(r_a - r_b), or 0.9 sigma(r_a - r_b) + 0.05 with the noise floor."""
    p = torch.sigmoid(r_a - r_b)
    return NOISE_FLOOR_SCALE * p + NOISE_FLOOR_OFFSET if noise_floor else p


def pair_losses(r_a: torch.Tensor, r_b: torch.Tensor, mu_a: torch.Tensor, *, noise_floor: bool = False) -> torch.Tensor:
    """Per-pair Bradley-Terry cross-entropy -[mu log P + (1 - mu) log(1 - P)], P = P(A > B)."""
    mu_a = torch.as_tensor(mu_a, dtype=r_a.dtype, device=r_a.device)
    log_p, log_q = _log_probs(r_a - r_b, noise_floor)
    return -(mu_a * log_p + (1.0 - mu_a) * log_q)


def grouped_mean(values: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
    """Mean over groups of each group's mean (InstructGPT's 1/C(K, 2) within a ranking); `group` holds any
    integer ids (one per value); None means every value is its own group (the plain mean)."""
    if group is None:
        return values.mean()
    group = torch.as_tensor(group, device=values.device)
    uniq, inverse = torch.unique(group, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
    counts = torch.zeros(len(uniq), dtype=values.dtype, device=values.device).index_add_(
        0, inverse, torch.ones_like(values))
    return (sums / counts).mean()


def bradley_terry_loss(r_a: torch.Tensor, r_b: torch.Tensor, mu_a, *, noise_floor: bool = False,
                       group=None) -> torch.Tensor:
    """The mean Bradley-Terry loss of a batch; with `group`, pairs of one group (one ranking) are averaged
    first, then groups (see :func:`grouped_mean`)."""
    return grouped_mean(pair_losses(r_a, r_b, mu_a, noise_floor=noise_floor), group)


def _prob_nll(p: np.ndarray, mu: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(mu * np.log(p) + (1 - mu) * np.log1p(-p))


def _accuracy(p: np.ndarray, mu: np.ndarray) -> float:
    """Accuracy on the strict preferences (mu 0 or 1); a prediction of exactly 0.5 counts half."""
    strict = mu != 0.5
    if not strict.any():
        return math.nan
    p, mu = p[strict], mu[strict]
    return float(np.mean(np.where(p == 0.5, 0.5, (p > 0.5) == (mu > 0.5))))


def _grouped_mean_np(values: np.ndarray, group: np.ndarray) -> float:
    if len(values) == 0:
        return math.nan
    uniq, inverse = np.unique(group, return_inverse=True)
    return float(np.mean(np.bincount(inverse, weights=values) / np.bincount(inverse)))


# ================================================================================================ models

def _uint8_to_input(obs_u8: torch.Tensor) -> torch.Tensor:
    if obs_u8.dtype != torch.uint8 or obs_u8.ndim != 4 or obs_u8.shape[-1] != 3:
        raise ValueError(f"observations must be uint8 (N, H, W, 3) frames; got dtype {obs_u8.dtype} and shape "
                         f"{tuple(obs_u8.shape)}")
    return obs_u8.permute(0, 3, 1, 2).float().div_(255.0)


class ClipRewardModel(nn.Module):
    """Per-step reward r(o_t) of a uint8 observation: IMPALA stacks (workbench.rl.policy.ConvSequence) of depths
    [16, 32, 32] x width -> ReLU -> dense `hidden` -> ReLU -> scalar. A clip's reward is the sum over steps."""

    kind = "clip"

    def __init__(self, width: float = 0.5, hidden: int = 64, obs_shape: tuple[int, int, int] = (64, 64, 3),
                 depths: tuple[int, ...] = IMPALA_DEPTHS):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0 (a multiplier of the IMPALA depths {depths}); got {width}")
        h, w, c = obs_shape
        stacks = []
        for d in depths:
            out = max(1, int(round(d * width)))
            stacks.append(ConvSequence(c, out))
            c, h, w = out, (h + 1) // 2, (w + 1) // 2
        self.stacks = nn.Sequential(*stacks)
        self.dense = nn.Linear(c * h * w, hidden)
        self.head = nn.Linear(hidden, 1)
        self.obs_shape = tuple(obs_shape)

    def forward(self, obs_u8: torch.Tensor) -> torch.Tensor:
        """(N, 64, 64, 3) uint8 -> (N,) float32 per-step rewards (un-normalized)."""
        x = self.stacks(_uint8_to_input(obs_u8))
        return self.head(F.relu(self.dense(F.relu(torch.flatten(x, 1))))).squeeze(-1)


# ---- text encoders --------------------------------------------------------------------------------------

class TextEncoder(Protocol):
    """What a text reward model needs from an encoder. An encoder is fixed (not trained with the head) and
    rebuilt on load from its JSON `config()` through :data:`TEXT_ENCODERS`, so its own weights (if any) live
    outside the reward model's file."""

    name: str
    dim: int

    def encode(self, prompts: Sequence[str | None], responses: Sequence[str]) -> torch.Tensor:
        """(B, dim) float32 features, dense or sparse COO."""

    def config(self) -> dict:
        """JSON-serializable arguments: TEXT_ENCODERS[name](**config) rebuilds the encoder."""


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashedBagOfWords:
    """Sign-hashed bag of unigrams and bigrams (the "hashing trick", Weinberger et al. 2009): each n-gram is
    hashed (BLAKE2b, stable across processes, unlike Python's salted hash) to an index in [0, dim) and a sign;
    a text's vector is the signed count vector, L2-normalized. Prompt n-grams are hashed in their own
    namespace ("p:"), so a head can weigh a word differently in the prompt and in the response. Lower-cased
    word tokens (regex \\w+). No external data. Returns a sparse COO (B, dim) tensor."""

    name = "hashed_bow"

    def __init__(self, dim: int = 2 ** 16, ngrams: int = 2, lowercase: bool = True):
        if isinstance(dim, bool) or not isinstance(dim, int) or not 2 <= dim <= 2 ** 24:
            raise ValueError(f"dim must be an integer in [2, 2**24], got {dim!r}")
        if isinstance(ngrams, bool) or not isinstance(ngrams, int) or not 1 <= ngrams <= 3:
            raise ValueError(f"ngrams must be 1, 2 or 3 (longest n-gram), got {ngrams!r}")
        self.dim, self.ngrams, self.lowercase = dim, ngrams, bool(lowercase)
        self._cache: dict[str, tuple[int, float]] = {}

    def config(self) -> dict:
        return {"dim": self.dim, "ngrams": self.ngrams, "lowercase": self.lowercase}

    def _hash(self, gram: str) -> tuple[int, float]:
        hit = self._cache.get(gram)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")
            hit = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
            if len(self._cache) < 1_000_000:
                self._cache[gram] = hit
        return hit

    def _grams(self, text: str, prefix: str) -> Iterable[str]:
        tokens = _TOKEN.findall(text.lower() if self.lowercase else text)
        for n in range(1, self.ngrams + 1):
            for i in range(len(tokens) - n + 1):
                yield prefix + " ".join(tokens[i:i + n])

    def features(self, prompt: str | None, response: str) -> dict[int, float]:
        vec: dict[int, float] = {}
        for prefix, text in (("p:", prompt or ""), ("", response)):
            for gram in self._grams(text, prefix):
                index, sign = self._hash(gram)
                vec[index] = vec.get(index, 0.0) + sign
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {k: v / norm for k, v in vec.items() if v} if norm > 0 else {}

    def encode(self, prompts: Sequence[str | None], responses: Sequence[str]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"got {len(prompts)} prompts for {len(responses)} responses")
        rows, cols, vals = [], [], []
        for i, (p, r) in enumerate(zip(prompts, responses)):
            if not isinstance(r, str) or (p is not None and not isinstance(p, str)):
                raise ValueError(f"text item {i}: prompt and response must be strings, got {type(p).__name__} "
                                 f"and {type(r).__name__}")
            for k, v in self.features(p, r).items():
                rows.append(i)
                cols.append(k)
                vals.append(v)
        indices = torch.tensor([rows, cols], dtype=torch.int64).reshape(2, -1)
        return torch.sparse_coo_tensor(indices, torch.tensor(vals, dtype=torch.float32),
                                       (len(responses), self.dim), check_invariants=False).coalesce()


TEXT_ENCODERS: dict[str, Callable[..., Any]] = {"hashed_bow": HashedBagOfWords}


def register_text_encoder(name: str, factory: Callable[..., Any]) -> None:
    """Make an encoder available to training and loading, e.g. a local sentence-embedding model wrapped in a
    class with `name`, `dim`, `encode(prompts, responses)` and `config()` (see :class:`TextEncoder`)."""
    if not isinstance(name, str) or not name:
        raise ValueError("an encoder name must be a non-empty string")
    TEXT_ENCODERS[name] = factory


def make_text_encoder(spec: dict) -> Any:
    if not isinstance(spec, dict) or spec.get("name") not in TEXT_ENCODERS:
        raise ValueError(f"text encoder spec must be a dict with 'name' one of {sorted(TEXT_ENCODERS)}; got {spec!r}")
    args = {k: v for k, v in spec.items() if k != "name"}
    try:
        return TEXT_ENCODERS[spec["name"]](**args)
    except TypeError as exc:
        raise ValueError(f"bad arguments for text encoder {spec['name']!r}: {exc}") from None


class TextRewardModel(nn.Module):
    """r(prompt, response): a linear head (`hidden` = 0) or a one-hidden-layer ReLU MLP over an encoder's
    features. Sparse features go through torch.sparse.mm, so 2^16 hashed dimensions cost only their non-zeros."""

    kind = "text"

    def __init__(self, input_dim: int, hidden: int = 0):
        super().__init__()
        self.first = nn.Linear(input_dim, hidden if hidden > 0 else 1)
        self.second = nn.Linear(hidden, 1) if hidden > 0 else None
        if hidden == 0:
            nn.init.zeros_(self.first.weight)  # a linear model from zero: the logistic-regression start
            nn.init.zeros_(self.first.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.is_sparse:
            x = torch.sparse.mm(features, self.first.weight.t()) + self.first.bias
        else:
            x = self.first(features)
        if self.second is not None:
            x = self.second(F.relu(x))
        return x.squeeze(-1)


# ================================================================================================ ensemble

class RewardEnsemble(nn.Module):
    """k reward models; outputs normalized per member (shift, scale buffers) and averaged.

    Clip ensembles: :meth:`step_rewards`, :meth:`clip_rewards`, :meth:`prob_a_better`, :meth:`disagreement`.
    Text ensembles: :meth:`text_rewards`, :meth:`text_prob_a_better`, :meth:`text_disagreement`.
    Inference methods run without gradients, in chunks of `chunk` items, on the ensemble's device, and
    return tensors on the input's device."""

    def __init__(self, members: Sequence[nn.Module], *, kind: str, model_config: dict, reward_std: float = 0.05,
                 noise_floor: bool = True, encoder: Any = None, meta: dict | None = None, chunk: int = 1024):
        super().__init__()
        if kind not in ("clip", "text"):
            raise ValueError(f"kind must be 'clip' or 'text', got {kind!r}")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if kind == "text" and encoder is None:
            raise ValueError("a text ensemble needs its encoder")
        self.members = nn.ModuleList(members)
        self.kind, self.model_config, self.reward_std = kind, dict(model_config), float(reward_std)
        self.noise_floor, self.encoder, self.meta, self.chunk = bool(noise_floor), encoder, dict(meta or {}), chunk
        self.register_buffer("shift", torch.zeros(len(members)))
        self.register_buffer("scale", torch.ones(len(members)))

    @property
    def device(self) -> torch.device:
        return self.shift.device

    def __len__(self) -> int:
        return len(self.members)

    def _need(self, kind: str) -> None:
        if self.kind != kind:
            raise ValueError(f"this is a {self.kind} reward model; that method needs a {kind} reward model")

    # ---- per-member raw outputs ----------------------------------------------------------------
    def member_raw(self, inputs: torch.Tensor) -> torch.Tensor:
        """(k, N) un-normalized member outputs for N frames (clip) or N feature rows (text); differentiable."""
        return torch.stack([m(inputs) for m in self.members])

    @torch.no_grad()
    def _raw_chunked(self, inputs: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(0, inputs.shape[0], self.chunk):
            part = inputs[i:i + self.chunk]
            outs.append(self.member_raw(part.to(self.device)))
        if not outs:
            return torch.zeros(len(self.members), 0, device=self.device)
        return torch.cat(outs, dim=1)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """(k, N) raw member outputs -> (k, N) normalized (zero mean, std reward_std on the training data)."""
        return (raw - self.shift[:, None]) * self.scale[:, None]

    @torch.no_grad()
    def set_normalization(self, raw: torch.Tensor) -> None:
        """Set each member's shift and scale from its (k, N) raw outputs on the training data."""
        mean = raw.mean(dim=1)
        std = raw.std(dim=1, correction=0)
        self.shift.copy_(mean)
        self.scale.copy_(self.reward_std / torch.clamp(std, min=1e-8))

    # ---- clips ---------------------------------------------------------------------------------
    def step_rewards(self, obs_u8: torch.Tensor) -> torch.Tensor:
        """(N, 64, 64, 3) uint8 -> (N,) float32: the mean over members of the normalized per-step reward.
        The `step_reward_fn` RL against a reward model consumes."""
        self._need("clip")
        if obs_u8.ndim != 4:
            raise ValueError(f"step_rewards takes (N, 64, 64, 3) uint8 frames; got shape {tuple(obs_u8.shape)}")
        return self.normalize(self._raw_chunked(obs_u8)).mean(0).float().to(obs_u8.device)

    def _clip_raw(self, clips_u8: torch.Tensor) -> torch.Tensor:
        if clips_u8.ndim != 5:
            raise ValueError(f"clips must be (B, L, 64, 64, 3) uint8; got shape {tuple(clips_u8.shape)}")
        b, length = clips_u8.shape[:2]
        return self._raw_chunked(clips_u8.reshape(b * length, *clips_u8.shape[2:])).reshape(-1, b, length)

    def clip_rewards(self, clips_u8: torch.Tensor) -> torch.Tensor:
        """(B, L, 64, 64, 3) uint8 -> (B,): the sum over steps of :meth:`step_rewards`."""
        self._need("clip")
        raw = self._clip_raw(clips_u8)
        k, b, length = raw.shape
        return self.normalize(raw.reshape(k, -1)).reshape(k, b, length).sum(-1).mean(0).float().to(clips_u8.device)

    def member_probs(self, clips_a: torch.Tensor, clips_b: torch.Tensor) -> torch.Tensor:
        """(k, B): each member's P(A > B) on its trained scale (with the noise floor if trained with it)."""
        self._need("clip")
        if clips_a.shape != clips_b.shape:
            raise ValueError(f"clips_a and clips_b must have the same shape; got {tuple(clips_a.shape)} and "
                             f"{tuple(clips_b.shape)}")
        r_a, r_b = self._clip_raw(clips_a).sum(-1), self._clip_raw(clips_b).sum(-1)
        return preference_probability(r_a, r_b, noise_floor=self.noise_floor)

    def prob_a_better(self, clips_a: torch.Tensor, clips_b: torch.Tensor) -> torch.Tensor:
        """(B,): the ensemble's P(A > B), the mean of the members' probabilities."""
        return self.member_probs(clips_a, clips_b).mean(0).float().to(clips_a.device)

    def disagreement(self, clips_a: torch.Tensor, clips_b: torch.Tensor) -> torch.Tensor:
        """(B,): the standard deviation over members of P(A > B) (population std; Christiano et al.'s query
        selection uses the variance of the members' predictions)."""
        return self.member_probs(clips_a, clips_b).std(0, correction=0).float().to(clips_a.device)

    # ---- text ----------------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str | None], responses: Sequence[str]) -> torch.Tensor:
        self._need("text")
        return self.encoder.encode(list(prompts), list(responses))

    def _text_raw(self, prompts, responses) -> torch.Tensor:
        with torch.no_grad():
            return self.member_raw(self.encode(prompts, responses).to(self.device))

    def text_rewards(self, prompts: Sequence[str | None], responses: Sequence[str]) -> torch.Tensor:
        """(B,) normalized ensemble reward of each (prompt, response)."""
        return self.normalize(self._text_raw(prompts, responses)).mean(0).float().cpu()

    def text_member_probs(self, prompts, responses_a, responses_b) -> torch.Tensor:
        r_a, r_b = self._text_raw(prompts, responses_a), self._text_raw(prompts, responses_b)
        return preference_probability(r_a, r_b, noise_floor=self.noise_floor).cpu()

    def text_prob_a_better(self, prompts, responses_a, responses_b) -> torch.Tensor:
        return self.text_member_probs(prompts, responses_a, responses_b).mean(0)

    def text_disagreement(self, prompts, responses_a, responses_b) -> torch.Tensor:
        return self.text_member_probs(prompts, responses_a, responses_b).std(0, correction=0)


def build_ensemble(kind: str, members: int, model_config: dict, *, reward_std: float, noise_floor: bool,
                   encoder_spec: dict | None = None, meta: dict | None = None) -> RewardEnsemble:
    """A fresh (untrained) ensemble from its JSON description (also how :func:`load_reward_model` rebuilds)."""
    if kind == "clip":
        width, hidden = model_config.get("width"), model_config.get("hidden")
        return RewardEnsemble([ClipRewardModel(width=width, hidden=hidden) for _ in range(members)], kind="clip",
                              model_config={"width": width, "hidden": hidden}, reward_std=reward_std,
                              noise_floor=noise_floor, meta=meta)
    if kind == "text":
        encoder = make_text_encoder(encoder_spec)
        hidden = model_config.get("hidden")
        return RewardEnsemble([TextRewardModel(encoder.dim, hidden) for _ in range(members)], kind="text",
                              model_config={"hidden": hidden}, reward_std=reward_std, noise_floor=noise_floor,
                              encoder=encoder, meta=meta)
    raise ValueError(f"kind must be 'clip' or 'text', got {kind!r}")


# ================================================================================================ data

@dataclass
class ClipBank:
    """Frames of all clips, deduplicated: item i covers frames[starts[i] : starts[i] + lengths[i]]."""

    frames: np.ndarray   # (F, 64, 64, 3) uint8
    starts: np.ndarray   # (items,) int64
    lengths: np.ndarray  # (items,) int64

    @classmethod
    def from_refs(cls, refs: Sequence[tuple[str, int, int]], load_frames: Callable[[str], np.ndarray]) -> "ClipBank":
        """`refs`: (episode_id, start, length) per item; `load_frames(episode_id)` -> (T, 64, 64, 3) uint8,
        called once per episode. Keeps only each episode's span covered by clips."""
        spans: dict[str, list[int]] = {}
        for ep, start, length in refs:
            lo, hi = spans.get(ep, (start, start + length))
            spans[ep] = [min(lo, start), max(hi, start + length)]
        pieces, offsets, total = [], {}, 0
        for ep, (lo, hi) in spans.items():
            frames = np.asarray(load_frames(ep))
            if frames.dtype != np.uint8 or frames.ndim != 4:
                raise ValueError(f"episode {ep!r}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
            if hi > len(frames):
                raise ValueError(f"a clip of episode {ep!r} ends at step {hi}, past the episode's {len(frames)} steps")
            pieces.append(frames[lo:hi])
            offsets[ep] = total - lo
            total += hi - lo
        starts = np.array([offsets[ep] + start for ep, start, _ in refs], dtype=np.int64)
        lengths = np.array([length for _, _, length in refs], dtype=np.int64)
        return cls(np.concatenate(pieces) if pieces else np.zeros((0, 64, 64, 3), np.uint8), starts, lengths)

    def frame_indices(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frame index of every step of the given items, concatenated; which of `items` each step belongs to)."""
        idx = np.concatenate([np.arange(self.starts[i], self.starts[i] + self.lengths[i]) for i in items])
        owner = np.repeat(np.arange(len(items)), self.lengths[items])
        return idx, owner


@dataclass
class PreferenceData:
    """Comparisons as index arrays over unique items (clips or (prompt, response) texts)."""

    kind: str                      # "clip" | "text"
    items: list                    # clip: (episode_id, start, length); text: (prompt, response)
    ia: np.ndarray                 # (P,) item index of A
    ib: np.ndarray                 # (P,) item index of B
    mu: np.ndarray                 # (P,) label: 1 A preferred, 0 B preferred, 0.5 equal
    group: np.ndarray              # (P,) batch element of each pair (a ranking's pairs share one)
    item_id: np.ndarray            # (P,) the labeled item's id in the LabelStore (the split unit)
    labeler: list[str]             # (P,)
    counts: dict = field(default_factory=dict)   # what was found, by preference

    def subset(self, mask: np.ndarray) -> "PreferenceData":
        return PreferenceData(self.kind, self.items, self.ia[mask], self.ib[mask], self.mu[mask], self.group[mask],
                              self.item_id[mask], [lab for lab, keep in zip(self.labeler, mask) if keep],
                              dict(self.counts))

    def __len__(self) -> int:
        return len(self.mu)


def _comparison_kind(c: Any) -> str:
    a, b = getattr(c, "a", None), getattr(c, "b", None)
    if isinstance(a, dict) and isinstance(b, dict):
        return "clip"
    if isinstance(a, str) and isinstance(b, str):
        return "text"
    return "unknown"


def comparisons_to_data(comparisons: Sequence[Any], config: RewardConfig, *, expected_kind: str | None = None,
                        campaign: str = "?", found: dict[str, int] | None = None) -> PreferenceData:
    """Filter and index :class:`workbench.preferences.labels.Comparison` records (or anything with their fields).

    "cant_tell" and "skip" are excluded; "equal" is a 0.5 label or dropped (``config.equal``). Raises a
    ValueError when nothing usable is left or the comparisons are not of `expected_kind` ("clip" | "text").
    `found`: the campaign's label counts by answer, for that message (default: counted from `comparisons`)."""
    counts: dict[str, int] = dict(found) if found is not None else {}
    if found is None:
        for c in comparisons:
            counts[c.preferred] = counts.get(c.preferred, 0) + 1
    found = ", ".join(f"{n} {k!r}" for k, n in sorted(counts.items())) or "no labels at all"
    keep_prefs = ("a", "b", "equal") if config.equal == "soft" else ("a", "b")
    usable = [c for c in comparisons if c.preferred in keep_prefs and c.mu_a is not None]
    if not usable or not any(c.preferred in ("a", "b") for c in usable):
        dropped = " ('equal' is dropped with equal='drop')" if config.equal == "drop" else ""
        raise ValueError(
            f"campaign {campaign!r} has no usable labels: found {found}. Training needs comparisons answered "
            f"'a' or 'b' (left/right){dropped}; 'cant_tell' and 'skip' are always excluded. Label more items first.")
    kinds = {_comparison_kind(c) for c in usable}
    if len(kinds) != 1 or "unknown" in kinds:
        raise ValueError(f"campaign {campaign!r} mixes or has unrecognized item kinds {sorted(kinds)}: clip "
                         "comparisons need clip references (dicts), text comparisons need response strings")
    kind = kinds.pop()
    if expected_kind is not None and kind != expected_kind:
        what = {"clip": "clip pairs (clip_pair campaigns)", "text": "text comparisons (text_pair or ranking campaigns)"}
        raise ValueError(f"campaign {campaign!r} holds {len(usable)} {what[kind]}, but the {expected_kind} reward "
                         f"model needs {what[expected_kind]}; use model='{kind}' (or 'auto') or another campaign")
    index: dict[Any, int] = {}
    items: list = []

    def item_index(c, side) -> int:
        value = getattr(c, side)
        if kind == "clip":
            from workbench.episodes.clips import check_clip_ref
            key = check_clip_ref(value)
        else:
            key = (getattr(c, "prompt", None), value)
        if key not in index:
            index[key] = len(items)
            items.append(key)
        return index[key]

    ia, ib, mu, group, item_id, labeler = [], [], [], [], [], []
    group_ids: dict[Any, int] = {}
    for c in usable:
        ia.append(item_index(c, "a"))
        ib.append(item_index(c, "b"))
        mu.append(float(c.mu_a))
        ranking = getattr(c, "group", None)
        key = ("ranking", ranking) if (ranking is not None and config.group_rankings) else ("pair", len(mu))
        group.append(group_ids.setdefault(key, len(group_ids)))
        item_id.append(int(getattr(c, "item_id", len(mu))))
        labeler.append(str(getattr(c, "labeler", "")))
    mu_arr = np.array(mu, dtype=np.float64)
    if np.any((mu_arr < 0) | (mu_arr > 1)):
        raise ValueError("mu_a must lie in [0, 1]")
    return PreferenceData(kind, items, np.array(ia, np.int64), np.array(ib, np.int64), mu_arr,
                          np.array(group, np.int64), np.array(item_id, np.int64), labeler, counts)


def split_heldout(data: PreferenceData, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, held-out) over pairs, splitting whole labeled items (and whole rankings)."""
    if fraction == 0:
        return np.ones(len(data), bool), np.zeros(len(data), bool)
    # Union of item ids and groups: a ranking's pairs share a group; all labels of an item share an id.
    parent: dict[Any, Any] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, g in zip(data.item_id.tolist(), data.group.tolist()):
        parent[find(("item", i))] = find(("group", g))
    roots = sorted({find(("item", i)) for i in data.item_id.tolist()}, key=repr)
    if len(roots) < 2:
        raise ValueError(f"a held-out split needs labels on at least 2 items; found {len(roots)} (set "
                         "heldout_fraction=0 to train on everything without validation)")
    rng = np.random.default_rng(seed)
    n_held = min(max(1, int(round(fraction * len(roots)))), len(roots) - 1)
    held_roots = {roots[j] for j in rng.permutation(len(roots))[:n_held]}
    held = np.array([find(("item", i)) in held_roots for i in data.item_id.tolist()])
    return ~held, held


def labeler_agreement(data: PreferenceData) -> tuple[float, np.ndarray]:
    """Agreement of pairs of labels from different labelers on the same comparison (the ceiling a model can
    be compared with), WebGPT's convention: same answer 1, a neutral ("equal") against a strict answer 1/2,
    opposite answers 0. Returns (agreement or NaN without overlap, mask of pairs on overlapping comparisons)."""
    keys: dict[tuple, list[int]] = {}
    for p, (i, a, b) in enumerate(zip(data.item_id.tolist(), data.ia.tolist(), data.ib.tolist())):
        keys.setdefault((i, min(a, b), max(a, b)), []).append(p)
    scores, overlap = [], np.zeros(len(data), bool)
    for (_, lo, _hi), members in keys.items():
        # Orient every label as "P(lower-index item preferred)".
        labels = [(data.labeler[p], data.mu[p] if data.ia[p] == lo else 1 - data.mu[p]) for p in members]
        pair_scores = [1.0 - abs(m1 - m2) for x, (l1, m1) in enumerate(labels) for l2, m2 in labels[x + 1:] if l1 != l2]
        if pair_scores:
            scores.extend(pair_scores)
            overlap[members] = True
    return (float(np.mean(scores)) if scores else math.nan), overlap


# ================================================================================================ training

@dataclass
class EpochMetrics:
    epoch: int
    metrics: dict


def _member_item_rewards(member: nn.Module, items: np.ndarray, data_kind: str, bank: ClipBank | None,
                         features: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Raw rewards of the given unique items for one member (differentiable)."""
    if data_kind == "clip":
        idx, owner = bank.frame_indices(items)
        uniq, inverse = np.unique(idx, return_inverse=True)
        frames = torch.from_numpy(bank.frames[uniq]).to(device)
        step = member(frames)[torch.from_numpy(inverse).to(device)]
        return torch.zeros(len(items), dtype=step.dtype, device=device).index_add_(
            0, torch.from_numpy(owner).to(device), step)
    rows = features.index_select(0, torch.from_numpy(items).to(features.device)) if features.is_sparse \
        else features[torch.from_numpy(items).to(features.device)]
    return member(rows.to(device))


@torch.no_grad()
def _all_item_rewards(ensemble: RewardEnsemble, items: np.ndarray, kind: str, bank, features, chunk: int) -> torch.Tensor:
    """(k, len(items)) raw rewards, in chunks."""
    out = [torch.stack([_member_item_rewards(m, items[i:i + chunk], kind, bank, features, ensemble.device)
                        for m in ensemble.members]) for i in range(0, len(items), chunk)]
    return torch.cat(out, dim=1) if out else torch.zeros(len(ensemble), 0)


def _pair_probs(ensemble: RewardEnsemble, data: PreferenceData, kind: str, bank, features, chunk: int) -> np.ndarray:
    """(k, P) member P(A > B) for every pair of `data`."""
    items = np.unique(np.concatenate([data.ia, data.ib]))
    rewards = _all_item_rewards(ensemble, items, kind, bank, features, chunk).cpu()
    pos = {int(it): j for j, it in enumerate(items)}
    ja = torch.tensor([pos[int(i)] for i in data.ia])
    jb = torch.tensor([pos[int(i)] for i in data.ib])
    return preference_probability(rewards[:, ja], rewards[:, jb], noise_floor=ensemble.noise_floor).double().numpy()


def fit_ensemble(data: PreferenceData, config: RewardConfig, *, bank: ClipBank | None = None,
                 train_mask: np.ndarray | None = None, heldout_mask: np.ndarray | None = None,
                 on_epoch: Callable[[EpochMetrics], None] | None = None, meta: dict | None = None,
                 init: RewardEnsemble | None = None) -> RewardEnsemble:
    """Train an ensemble on `data` (clips need `bank`). Members train in lockstep, one epoch each in turn, so
    the ensemble's held-out metrics exist after every epoch; `on_epoch` receives them. `init`: an ensemble of
    the same shape to start from (a warm start, as Christiano et al. keep training one predictor while labels
    arrive); its members' weights are copied, the normalization is recomputed at the end as always."""
    kind = data.kind
    if kind == "clip" and bank is None:
        raise ValueError("clip preference data needs a ClipBank of the clips' frames")
    if config.model not in ("auto", kind):
        raise ValueError(f"config.model is {config.model!r} but the data are {kind} comparisons")
    if train_mask is None:
        train_mask, heldout_mask = split_heldout(data, config.heldout_fraction, config.seed)
    train, held = data.subset(train_mask), data.subset(heldout_mask)
    if len(train) == 0:
        raise ValueError("the training split is empty; lower heldout_fraction or label more items")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model_config = {"width": config.width, "hidden": config.hidden} if kind == "clip" else {"hidden": config.text_hidden}
    ensemble = build_ensemble(kind, config.members, model_config, reward_std=config.reward_std,
                              noise_floor=config.noise_floor, encoder_spec=config.text_encoder, meta=meta).to(device)
    if init is not None:
        shape = (init.kind, len(init), init.model_config)
        if shape != (kind, config.members, model_config):
            raise ValueError(f"cannot warm-start from a {init.kind} ensemble of {len(init)} members with "
                             f"{init.model_config}: this one is {kind}, {config.members} members, {model_config}")
        if kind == "text":
            spec = lambda e: {"name": e.encoder.name, **e.encoder.config()}  # noqa: E731
            if spec(init) != spec(ensemble):
                raise ValueError(f"cannot warm-start: the encoder differs ({spec(init)} vs {spec(ensemble)})")
        ensemble.members.load_state_dict(init.members.state_dict())
    features = None
    if kind == "text":
        prompts, responses = zip(*data.items)
        features = ensemble.encoder.encode(list(prompts), list(responses))
        if features.is_sparse:
            features = features.coalesce()
    rng = np.random.default_rng(config.seed)
    groups = np.unique(train.group)
    pairs_of_group = {g: np.flatnonzero(train.group == g) for g in groups.tolist()}
    samples = [rng.choice(groups, size=len(groups), replace=True) if config.bootstrap else groups.copy()
               for _ in range(config.members)]
    optimizers, l2 = [], [config.l2] * config.members
    for m in ensemble.members:
        decay = [p for p in m.parameters() if p.ndim > 1]
        plain = [p for p in m.parameters() if p.ndim <= 1]
        optimizers.append(torch.optim.Adam([{"params": decay, "weight_decay": config.l2},
                                            {"params": plain, "weight_decay": 0.0}], lr=config.lr, eps=config.adam_eps))
    overlap_agreement, overlap_mask = labeler_agreement(held) if len(held) else (math.nan, np.zeros(0, bool))

    for epoch in range(1, config.epochs + 1):
        ensemble.train()
        member_train_loss, member_train_acc = [], []
        for k, (member, opt) in enumerate(zip(ensemble.members, optimizers)):
            order = rng.permutation(samples[k])
            losses, correct, strict = [], 0.0, 0
            for lo in range(0, len(order), config.batch_size):
                batch_groups = order[lo:lo + config.batch_size]
                pair_idx = np.concatenate([pairs_of_group[g] for g in batch_groups.tolist()])
                # Elements drawn twice by the bootstrap count twice: give each draw its own group id.
                element = np.repeat(np.arange(len(batch_groups)), [len(pairs_of_group[g]) for g in batch_groups.tolist()])
                items, inverse = np.unique(np.concatenate([train.ia[pair_idx], train.ib[pair_idx]]), return_inverse=True)
                rewards = _member_item_rewards(member, items, kind, bank, features, device)
                n = len(pair_idx)
                ja, jb = torch.from_numpy(inverse[:n]).to(device), torch.from_numpy(inverse[n:]).to(device)
                mu = torch.from_numpy(train.mu[pair_idx]).float().to(device)
                loss = bradley_terry_loss(rewards[ja], rewards[jb], mu, noise_floor=config.noise_floor,
                                          group=torch.from_numpy(element).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append((loss.item(), len(batch_groups)))
                with torch.no_grad():
                    diff = (rewards[ja] - rewards[jb]).cpu().numpy()
                    mu_np = train.mu[pair_idx]
                    s = mu_np != 0.5
                    correct += float(np.sum(np.where(diff[s] == 0, 0.5, (diff[s] > 0) == (mu_np[s] > 0.5))))
                    strict += int(s.sum())
            member_train_loss.append(sum(v * w for v, w in losses) / sum(w for _, w in losses))
            member_train_acc.append(correct / strict if strict else math.nan)
        ensemble.eval()
        metrics = {"train_loss": float(np.mean(member_train_loss)), "train_accuracy": float(np.nanmean(member_train_acc))
                   if not all(math.isnan(a) for a in member_train_acc) else math.nan}
        if len(held):
            probs = _pair_probs(ensemble, held, kind, bank, features, config.eval_batch_size)
            mean_p = probs.mean(0)
            metrics["heldout_loss"] = _grouped_mean_np(_prob_nll(mean_p, held.mu), held.group)
            metrics["heldout_accuracy"] = _accuracy(mean_p, held.mu)
            member_held = [_grouped_mean_np(_prob_nll(p, held.mu), held.group) for p in probs]
            for k in range(config.members):
                metrics[f"member_{k}/train_loss"] = member_train_loss[k]
                metrics[f"member_{k}/heldout_loss"] = member_held[k]
                metrics[f"member_{k}/l2"] = l2[k]
            if overlap_mask.any():
                metrics["labeler_agreement"] = overlap_agreement
                metrics["heldout_accuracy_overlap"] = _accuracy(mean_p[overlap_mask], held.mu[overlap_mask])
            if config.l2_adapt:
                for k, opt in enumerate(optimizers):
                    ratio = member_held[k] / max(member_train_loss[k], 1e-12)
                    if ratio > 1.5:
                        l2[k] *= config.l2_adapt_factor
                    elif ratio < 1.1:
                        l2[k] /= config.l2_adapt_factor
                    opt.param_groups[0]["weight_decay"] = l2[k]
        if on_epoch is not None:
            on_epoch(EpochMetrics(epoch, metrics))

    # Normalize each member on the training items' steps (clip) or responses (text).
    train_items = np.unique(np.concatenate([train.ia, train.ib]))
    if kind == "clip":
        frame_idx = np.unique(bank.frame_indices(train_items)[0])
        raw = ensemble._raw_chunked(torch.from_numpy(bank.frames[frame_idx]))
    else:
        raw = _all_item_rewards(ensemble, train_items, kind, bank, features, config.eval_batch_size)
    ensemble.set_normalization(raw.to(ensemble.device))
    return ensemble


# ================================================================================================ save / load

_CONFIG_KEYS = {"format", "version", "kind", "members", "model", "encoder", "noise_floor", "reward_std",
                "weights_sha256", "meta"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_reward_model(ensemble: RewardEnsemble, path: str | os.PathLike) -> Path:
    """Write `path/weights.safetensors` and `path/config.json` (atomically: a temporary directory is written,
    fsynced and renamed into place; an existing model at `path` is replaced only once the new one is whole)."""
    from safetensors.torch import save_file

    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not (path / CONFIG_FILE).exists():
        raise ValueError(f"{path} exists and is not a reward model directory; choose another path")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in ensemble.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        config = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": ensemble.kind,
                  "members": len(ensemble), "model": ensemble.model_config,
                  "encoder": ({"name": ensemble.encoder.name, **ensemble.encoder.config()}
                              if ensemble.encoder is not None else None),
                  "noise_floor": ensemble.noise_floor, "reward_std": ensemble.reward_std,
                  "weights_sha256": _sha256(tmp / WEIGHTS_FILE), "meta": ensemble.meta}
        with open(tmp / CONFIG_FILE, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_reward_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> RewardEnsemble:
    """Load a model written by :func:`save_reward_model`. Nothing is executed: the JSON config is checked key
    by key, the weights file must match the SHA-256 recorded in it, and its tensor names and shapes must be
    exactly those of the model the config describes. Any mismatch is a ValueError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ValueError(f"{path} is not a reward model directory: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} must hold a JSON object")
    unknown, missing = sorted(set(config) - _CONFIG_KEYS), sorted(_CONFIG_KEYS - set(config))
    if unknown or missing:
        raise ValueError(f"{config_path} has unknown keys {unknown} and/or lacks keys {missing}; "
                         f"expected exactly {sorted(_CONFIG_KEYS)}")
    if config["format"] != FORMAT_NAME or config["version"] != FORMAT_VERSION:
        raise ValueError(f"{config_path} is format {config['format']!r} version {config['version']!r}; this "
                         f"workbench reads {FORMAT_NAME!r} version {FORMAT_VERSION}")
    if config["kind"] not in ("clip", "text"):
        raise ValueError(f"{config_path}: kind must be 'clip' or 'text', got {config['kind']!r}")
    members = config["members"]
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= 1024:
        raise ValueError(f"{config_path}: members must be an integer in [1, 1024], got {members!r}")
    model = config["model"]
    allowed_model = {"width", "hidden"} if config["kind"] == "clip" else {"hidden"}
    if not isinstance(model, dict) or set(model) != allowed_model:
        raise ValueError(f"{config_path}: model must be an object with exactly the keys {sorted(allowed_model)}, "
                         f"got {model!r}")
    if config["kind"] == "clip":
        if not isinstance(model["width"], (int, float)) or not 0 < model["width"] <= 16:
            raise ValueError(f"{config_path}: model width must be a number in (0, 16], got {model['width']!r}")
    hidden_min = 1 if config["kind"] == "clip" else 0
    if isinstance(model["hidden"], bool) or not isinstance(model["hidden"], int) or not hidden_min <= model["hidden"] <= 65536:
        raise ValueError(f"{config_path}: model hidden must be an integer in [{hidden_min}, 65536], got {model['hidden']!r}")
    if not isinstance(config["meta"], dict):
        raise ValueError(f"{config_path}: meta must be an object")
    actual = _sha256(weights_path)
    if actual != config["weights_sha256"]:
        raise ValueError(f"{weights_path} does not match the SHA-256 recorded in {config_path} (recorded "
                         f"{str(config['weights_sha256'])[:16]}..., file {actual[:16]}...): the weights were "
                         "changed or replaced after saving; refusing to load them")
    ensemble = build_ensemble(config["kind"], members, model, reward_std=float(config["reward_std"]),
                              noise_floor=bool(config["noise_floor"]), encoder_spec=config["encoder"],
                              meta=config["meta"])
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{weights_path} is not a readable safetensors file: {exc}") from None
    expected = ensemble.state_dict()
    unknown_t, missing_t = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
    if unknown_t or missing_t:
        raise ValueError(f"{weights_path} does not fit the model described in {config_path}: unknown tensors "
                         f"{unknown_t[:10]}, missing tensors {missing_t[:10]}")
    bad = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
           if tuple(state[k].shape) != tuple(v.shape) or state[k].dtype != v.dtype]
    if bad:
        raise ValueError(f"{weights_path}: tensor shapes/dtypes do not fit the model: {bad[:5]}")
    ensemble.load_state_dict(state, strict=True)
    ensemble.eval()
    return ensemble.to(resolve_device(device))


# ================================================================================================ campaigns

def reward_model_dir(run_id: str, store_root: str | os.PathLike | None = None) -> Path:
    """Where :func:`train_reward_model` saves the model of run `run_id`: <root>/reward_models/<run_id>."""
    from workbench.storage.runs import RunStore

    return RunStore(store_root).root / "reward_models" / run_id


@dataclass
class RewardTrainingResult:
    run_id: str
    model_path: Path
    ensemble: RewardEnsemble
    metrics: dict                   # the last epoch's metrics
    prediction_set: str | None      # PredictionStore id of the held-out P(A > B), None without held-out pairs
    num_train_pairs: int
    num_heldout_pairs: int


_KIND_OF_CAMPAIGN = {"clip_pair": "clip", "text_pair": "text", "ranking": "text"}


def train_reward_model(campaign: str, store_root: str | os.PathLike | None = None,
                       config: RewardConfig | None = None, *, name: str | None = None,
                       progress: Callable[[str], None] | None = None,
                       init: RewardEnsemble | None = None) -> RewardTrainingResult:
    """Train a reward-model ensemble on a labeling campaign's comparisons.

    Reads `LabelStore(store_root).comparisons(campaign)` (rankings arrive expanded into their C(K, 2) pairs,
    grouped), loads clip frames from the RolloutStore (each episode once), trains (:func:`fit_ensemble`), logs
    per-epoch metrics to a run (algo "reward") in the RunStore, saves the held-out P(A > B) to the
    PredictionStore (source "reward_model"; outcome 1 = the labeler preferred A, "equal" labels left out) and
    the model to :func:`reward_model_dir`. `init`: warm-start from an ensemble of the same shape
    (:func:`fit_ensemble`). Returns a :class:`RewardTrainingResult`."""
    from workbench.calibration.predictions import PredictionStore
    from workbench.preferences.labels import LabelStore
    from workbench.storage.runs import RunStore

    config = config or RewardConfig()
    labels = LabelStore(store_root)
    info = labels.get_campaign(campaign)
    if info.kind not in _KIND_OF_CAMPAIGN:
        raise ValueError(f"campaign {campaign!r} is of kind {info.kind!r}; reward models train on "
                         f"{sorted(_KIND_OF_CAMPAIGN)}")
    kind = _KIND_OF_CAMPAIGN[info.kind]
    if config.model not in ("auto", kind):
        raise ValueError(f"campaign {campaign!r} is a {info.kind} campaign ({kind} comparisons) but model="
                         f"{config.model!r} was asked for: the {config.model} reward model needs a "
                         f"{'clip_pair' if config.model == 'clip' else 'text_pair or ranking'} campaign")
    found: dict[str, int] = {}
    for lab in labels.labels(campaign):  # every live label, rankings included, for the error message
        found[lab.preferred] = found.get(lab.preferred, 0) + 1
    comparisons = labels.comparisons(campaign, include=ALL_PREFERENCES)
    data = comparisons_to_data(comparisons, config, expected_kind=kind, campaign=campaign, found=found)
    train_mask, held_mask = split_heldout(data, config.heldout_fraction, config.seed)

    bank = None
    if kind == "clip":
        from workbench.episodes.rollouts import RolloutStore

        rollouts = RolloutStore(store_root)
        bank = ClipBank.from_refs(data.items, lambda ep: rollouts.load(ep, hires=False).frames)

    runs = RunStore(store_root)
    run_config = {"campaign": campaign, "campaign_kind": info.kind, "model": kind, "reward_config": config.as_dict(),
                  "num_train_pairs": int(train_mask.sum()), "num_heldout_pairs": int(held_mask.sum()),
                  "label_counts": data.counts, "num_items": len(data.items)}
    run_id = runs.create_run(algo="reward", env=campaign, config=run_config, name=name)
    runs.set_status(run_id, "running", pid=os.getpid())
    last: dict = {}

    def on_epoch(em: EpochMetrics) -> None:
        last.clear()
        last.update(em.metrics)
        runs.log_metrics(run_id, em.epoch, em.metrics)
        if progress is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in em.metrics.items() if "/" not in k)
            progress(f"epoch {em.epoch}/{config.epochs}: {shown}")

    try:
        ensemble = fit_ensemble(data, config, bank=bank, train_mask=train_mask, heldout_mask=held_mask,
                                on_epoch=on_epoch, meta={"run_id": run_id, "campaign": campaign}, init=init)
        prediction_set = None
        held = data.subset(held_mask)
        strict = held.mu != 0.5
        if strict.any():
            probs = _pair_probs(ensemble, held.subset(strict), kind, bank, _text_features(ensemble, data),
                                config.eval_batch_size).mean(0)
            prediction_set = PredictionStore(store_root).save(
                f"{run_id} held-out P(A>B)", probs, (held.mu[strict] > 0.5).astype(np.int64), source="reward_model",
                meta={"run_id": run_id, "campaign": campaign, "split": "heldout", "noise_floor": config.noise_floor,
                      "members": config.members, "outcome": "1 = the labeler preferred A; 'equal' excluded"})
        model_path = save_reward_model(ensemble, reward_model_dir(run_id, runs.root))
    except BaseException:
        runs.set_status(run_id, "failed")
        raise
    runs.set_status(run_id, "finished")
    return RewardTrainingResult(run_id, model_path, ensemble, dict(last), prediction_set,
                                int(train_mask.sum()), int(held_mask.sum()))


def _text_features(ensemble: RewardEnsemble, data: PreferenceData) -> torch.Tensor | None:
    if data.kind != "text":
        return None
    prompts, responses = zip(*data.items)
    features = ensemble.encoder.encode(list(prompts), list(responses))
    return features.coalesce() if features.is_sparse else features


def load_reward_run(run_id: str, store_root: str | os.PathLike | None = None, *, device="cpu") -> RewardEnsemble:
    """The reward model trained by run `run_id` (see :func:`reward_model_dir`)."""
    path = reward_model_dir(run_id, store_root)
    if not path.exists():
        raise ValueError(f"run {run_id!r} has no saved reward model at {path}")
    return load_reward_model(path, device=device)
