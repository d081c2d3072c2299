"""Validation of what enters the label store: names, item payloads (:func:`validate_payload`), sources and
answers (a labeler's choice, graded scale, ranking, flags and comment, checked against the campaign)."""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench.preferences.labels.records import (
    CAMPAIGN_KINDS,
    CHOICES,
    GRADED_SCALE,
    MAX_COMMENT_CHARS,
    MAX_NAME_CHARS,
    MAX_RANKING_K,
    MIN_RANKING_K,
    RANKED,
    SOURCE_PATTERN,
    Campaign,
)
from workbench.storage.durable import read_jsonl


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _name(label: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{label} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_CHARS or any(ord(c) < 32 for c in value):
        raise ValueError(f"{label} must be at most {MAX_NAME_CHARS} characters without control characters, "
                         f"got {value[:60]!r}")
    return value


def _json_object(label: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{label} must be a JSON object (dict), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{label} must be JSON-serialisable (str, numbers, bools, None, lists, dicts): {e}") from None


def _clip_ref(label: str, ref: Any) -> dict:
    if not isinstance(ref, Mapping):
        raise ValueError(f"{label} must be a clip reference {{'episode_id': str, 'start': int >= 0, "
                         f"'length': int >= 1}}, got {type(ref).__name__}")
    extra = set(ref) - {"episode_id", "start", "length"}
    if extra:
        raise ValueError(f"{label} has unknown keys {sorted(extra)}; a clip reference has episode_id, start, length")
    episode_id, start, length = ref.get("episode_id"), ref.get("start"), ref.get("length")
    if not isinstance(episode_id, str) or not episode_id:
        raise ValueError(f"{label}.episode_id must be a non-empty string, got {episode_id!r}")
    if not _is_int(start) or start < 0:
        raise ValueError(f"{label}.start must be an integer >= 0, got {start!r}")
    if not _is_int(length) or length < 1:
        raise ValueError(f"{label}.length must be an integer >= 1, got {length!r}")
    return {"episode_id": episode_id, "start": int(start), "length": int(length)}


def _text(label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, got {type(value).__name__}: {str(value)[:60]!r}")
    return value


_PAYLOAD_KEYS = {
    "clip_pair": ("a", "b", "meta"),
    "text_pair": ("prompt", "a", "b", "meta"),
    "ranking": ("prompt", "responses", "meta"),
}


def validate_payload(kind: str, payload: Any, label: str = "payload") -> dict:
    """The canonical form of one item payload of a campaign of ``kind``, or a ValueError naming the field.

    * clip_pair: ``{"a": {"episode_id": str, "start": int >= 0, "length": int >= 1}, "b": {...}, "meta": {...}}``
    * text_pair: ``{"prompt": str, "a": str, "b": str, "meta": {...}}``
    * ranking:   ``{"prompt": str, "responses": [str, ...] (K = 2..9), "meta": {...}}``

    ``meta`` is optional (stored as ``{}``); other keys are refused (they are usually typos).
    """
    if kind not in CAMPAIGN_KINDS:
        raise ValueError(f"unknown campaign kind {kind!r}; valid kinds: {', '.join(CAMPAIGN_KINDS)}")
    if not isinstance(payload, Mapping):
        raise ValueError(f"{label} must be a JSON object (dict) with keys {list(_PAYLOAD_KEYS[kind])}, "
                         f"got {type(payload).__name__}")
    allowed = _PAYLOAD_KEYS[kind]
    extra = [k for k in payload if k not in allowed]
    if extra:
        raise ValueError(f"{label} has unknown keys {extra}; a {kind} item has keys {list(allowed)}")
    missing = [k for k in allowed if k != "meta" and k not in payload]
    if missing:
        raise ValueError(f"{label} is missing {missing}; a {kind} item has keys {list(allowed)}")
    out: dict[str, Any] = {}
    if kind == "clip_pair":
        out["a"] = _clip_ref(f"{label}.a", payload["a"])
        out["b"] = _clip_ref(f"{label}.b", payload["b"])
    elif kind == "text_pair":
        out["prompt"] = _text(f"{label}.prompt", payload["prompt"])
        out["a"] = _text(f"{label}.a", payload["a"])
        out["b"] = _text(f"{label}.b", payload["b"])
    else:
        out["prompt"] = _text(f"{label}.prompt", payload["prompt"])
        responses = payload["responses"]
        if not isinstance(responses, (list, tuple)) or not MIN_RANKING_K <= len(responses) <= MAX_RANKING_K:
            got = f"{len(responses)} responses" if isinstance(responses, (list, tuple)) else type(responses).__name__
            raise ValueError(f"{label}.responses must be a list of {MIN_RANKING_K} to {MAX_RANKING_K} strings "
                             f"(InstructGPT ranks 4 to 9), got {got}")
        out["responses"] = [_text(f"{label}.responses[{i}]", r) for i, r in enumerate(responses)]
    out["meta"] = _json_object(f"{label}.meta", payload.get("meta"))
    return out


def _payload_json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def check_source(source: Any) -> str:
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source) or len(source) > MAX_NAME_CHARS:
        raise ValueError(f"source must be 'human' or 'synthetic:<name>' (e.g. 'synthetic:gold_reward'), got {source!r}")
    return source


@dataclass(frozen=True)
class _Answer:
    choice: str
    preferred: str
    scale_shown: int | None
    ranking_shown: list[int] | None
    flags: list[str]
    comment: str
    source: str


class _AnswerError(ValueError):
    """A bad answer; ``field`` names the export-schema field at fault (for import error messages)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _validate_answer(camp: Campaign, n_shown: int, swapped: bool, display_order: list[int], choice: Any,
                     scale: Any, ranking: Any, flags: Any, comment: Any, source: Any) -> _Answer:
    """Check one answer against its campaign; returns the stored fields (``preferred`` canonical)."""
    try:
        source = check_source(source)
    except ValueError as e:
        raise _AnswerError("source", str(e)) from None
    if camp.kind == "ranking":
        if choice in (None, RANKED):
            if ranking is None:
                raise _AnswerError("ranking_shown", "a ranking campaign needs ranking=[positions shown, best first], "
                                                    "or "
                                 "choice='cant_tell' / 'skip'")
            if not isinstance(ranking, (list, tuple)) or not all(_is_int(p) for p in ranking) \
                    or sorted(int(p) for p in ranking) != list(range(n_shown)):
                raise _AnswerError("ranking_shown", f"ranking must list every displayed position 0..{n_shown - 1} "
                                                    f"once, best first "
                                 f"(a permutation of range({n_shown})), got {ranking!r}")
            choice, preferred, ranking_shown = RANKED, RANKED, [int(p) for p in ranking]
        elif choice in ("cant_tell", "skip"):
            if ranking is not None:
                raise _AnswerError("ranking_shown", f"choice {choice!r} takes no ranking (got {ranking!r})")
            preferred, ranking_shown = choice, None
        else:
            raise _AnswerError("choice", f"invalid choice {choice!r} for a ranking campaign; valid: None or 'ranked' "
                             f"(with ranking=...), 'cant_tell', 'skip'")
        if scale is not None:
            raise _AnswerError("scale_shown", "the graded scale applies to pairs, not to rankings")
        scale_shown = None
    else:
        if choice not in CHOICES:
            raise _AnswerError("choice", f"invalid choice {choice!r}; valid choices: {', '.join(CHOICES)}")
        if ranking is not None:
            raise _AnswerError("ranking_shown", f"ranking is only for ranking campaigns; campaign {camp.name!r} "
                                                f"is {camp.kind}")
        scale_shown = None
        if scale is not None:
            if not camp.graded_scale:
                raise _AnswerError("scale_shown", f"campaign {camp.name!r} has no graded scale (create it with "
                                                  f"graded_scale=True)")
            if not _is_int(scale) or not -3 <= scale <= 3:
                raise _AnswerError("scale_shown", f"scale must be an integer from -3 ({GRADED_SCALE[0]!r}, left as "
                                                  f"shown) to 3 "
                                 f"({GRADED_SCALE[-1]!r}, right as shown), got {scale!r}")
            scale_shown = int(scale)
            implied = "left" if scale_shown < 0 else "right" if scale_shown > 0 else "equal"
            if choice != implied:
                raise _AnswerError("choice", f"scale {scale_shown} ({GRADED_SCALE[scale_shown + 3]!r}) means choice "
                                 f"{implied!r}, but choice is {choice!r}")
        if choice == "left":
            preferred = "b" if swapped else "a"
        elif choice == "right":
            preferred = "a" if swapped else "b"
        else:
            preferred = choice
        ranking_shown = None
    if isinstance(flags, str) or not isinstance(flags, Iterable):
        raise _AnswerError("flags", f"flags must be a list of flag names, got {flags!r}")
    flags = list(flags)
    unknown = [f for f in flags if f not in camp.flags]
    if unknown:
        valid = ", ".join(map(repr, camp.flags)) or "none (the campaign defines no flags)"
        raise _AnswerError("flags", f"unknown flags {unknown} for campaign {camp.name!r}; valid flags: {valid}")
    if len(set(flags)) != len(flags):
        raise _AnswerError("flags", f"flags must not repeat, got {flags}")
    flags = [f for f in camp.flags if f in flags]  # campaign order: one spelling per set of flags
    if not isinstance(comment, str):
        raise _AnswerError("comment", f"comment must be a string, got {type(comment).__name__}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise _AnswerError("comment", f"comment must be at most {MAX_COMMENT_CHARS} characters, got {len(comment)}")
    return _Answer(choice, preferred, scale_shown, ranking_shown, flags, comment, source)



def read_items_jsonl(path: str | os.PathLike, kind: str) -> list[dict]:
    """Item payloads from a JSON Lines file (one item per line, e.g. ``{"prompt", "a", "b", "meta"}`` or
    ``{"prompt", "responses", "meta"}``), each validated; a bad line raises ValueError naming the line."""
    out = []
    for n, payload in read_jsonl(path):
        try:
            out.append(validate_payload(kind, payload, "item"))
        except ValueError as e:
            raise ValueError(f"{path}: line {n}: {e}") from None
    return out
