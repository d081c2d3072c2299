"""The reward models: a per-step clip model on the IMPALA stacks, text models over pluggable encoders (the
hashed bag of words built in), and the ensemble that normalizes and averages its members."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from workbench.preferences.reward.losses import (
    preference_probability,
)
from workbench.rl.policy import IMPALA_DEPTHS, ConvSequence


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
        return self.member_step_rewards(obs_u8).mean(0)

    def member_step_rewards(self, obs_u8: torch.Tensor) -> torch.Tensor:
        """(N, 64, 64, 3) uint8 -> (k, N) float32: each member's normalized per-step reward (their spread is
        the ensemble's disagreement, which the proxy-gaming alarm of workbench.safety watches)."""
        self._need("clip")
        if obs_u8.ndim != 4:
            raise ValueError(f"step_rewards takes (N, 64, 64, 3) uint8 frames; got shape {tuple(obs_u8.shape)}")
        return self.normalize(self._raw_chunked(obs_u8)).float().to(obs_u8.device)

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
