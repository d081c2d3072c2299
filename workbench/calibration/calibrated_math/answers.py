"""Checking a model's answer to a CalibratedMath question (numbers as written, fractions reduced, the
multi-answer rules of the package docstring) and parsing its verbalized confidence (numbers, percentages, words)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from workbench.calibration.calibrated_math.questions import (
    Question,
)

# --------------------------------------------------------------------------------------------- answers

_NUM = r"[-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-\u2212]?\.\d+"
_NUM_RE = re.compile(rf"(?<![\w.])(?:{_NUM})")
_FRAC_RE = re.compile(rf"(?<![\w.])({_NUM})\s*/\s*({_NUM})")


def _to_number(tok: str) -> Fraction:
    return Fraction(tok.replace(",", "").replace("\u2212", "-"))


def _numbers(text: str) -> list[Fraction]:
    return [_to_number(t) for t in _NUM_RE.findall(text)]


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % i for i in range(3, math.isqrt(n) + 1, 2))


@dataclass(frozen=True)
class AnswerCheck:
    """Result of checking a model answer. ``ok`` is False when no answer of the right form could be read
    (``error`` says why); such an answer is incorrect. ``parsed`` holds what was read."""

    ok: bool
    correct: bool
    parsed: object = None
    error: str | None = None


def _whole(x: Fraction) -> bool:
    return x.denominator == 1


def check_answer(question: Question, answer) -> AnswerCheck:
    """Is ``answer`` (model text, a number, or for "frac"/"2sum" a pair) a correct answer to ``question``?

    Numeric normalization: the first number in the text is read, thousands separators ("1,234") and a
    Unicode minus are allowed, and values compare exactly as rationals ("42.0" == 42). "frac" needs the
    reduced fraction "a/b" (or a whole number when the reduced denominator is 1); "2sum" reads the first two
    numbers; multi-answer types accept any valid answer (see module docstring). Words ("forty-two") are not
    read: the check reports ``ok=False`` with the reason.
    """
    op = question.operation
    if answer is None:
        return AnswerCheck(False, False, None, "no answer")
    if isinstance(answer, (tuple, list)):
        text = " and ".join(str(a) for a in answer) if op == "2sum" else "/".join(str(a) for a in answer)
    else:
        text = str(answer)
    if op == "frac":
        m = _FRAC_RE.search(text)
        if m:
            num, den = _to_number(m.group(1)), _to_number(m.group(2))
            if not (_whole(num) and _whole(den)) or den == 0:
                return AnswerCheck(False, False, None, f"not a fraction of whole numbers: {text!r}")
            parsed = (int(num), int(den))
        else:
            nums = _numbers(text)
            if not nums:
                return AnswerCheck(False, False, None, f"no fraction 'a/b' found in {text!r}")
            parsed = (nums[0], 1) if _whole(nums[0]) else None
            if parsed is None:
                return AnswerCheck(False, False, None, f"not a reduced fraction: {text!r}")
            parsed = (int(parsed[0]), 1)
        return AnswerCheck(True, parsed == tuple(question.answer), parsed)
    nums = _numbers(text)
    if op == "2sum":
        if len(nums) < 2:
            return AnswerCheck(False, False, None, f"need two numbers, found {len(nums)} in {text!r}")
        a, b = nums[0], nums[1]
        return AnswerCheck(True, a + b == question.operands[0], (a, b))
    if not nums:
        return AnswerCheck(False, False, None, f"no number found in {text!r}")
    v = nums[0]
    parsed = int(v) if _whole(v) else float(v)
    if op == "<":
        return AnswerCheck(True, v < question.operands[0], parsed)
    if op == ">":
        return AnswerCheck(True, v > question.operands[0], parsed)
    if op == "prime":
        return AnswerCheck(True, _whole(v) and _is_prime(int(v)) and v < question.operands[0], parsed)
    if op == "square":
        ok = _whole(v) and v >= 0 and math.isqrt(int(v)) ** 2 == int(v) and v < question.operands[0]
        return AnswerCheck(True, bool(ok), parsed)
    if op == "multiple":
        lo, hi, k = question.operands
        return AnswerCheck(True, bool(_whole(v) and lo <= v <= hi and int(v) % k == 0), parsed)
    if op == "round":
        x, to = question.operands
        if (x % to) * 2 == to:  # an exact tie: either neighbour is "nearest"
            return AnswerCheck(True, v in (x - x % to, x - x % to + to), parsed)
    return AnswerCheck(True, v == question.answer, parsed)


# ------------------------------------------------------------------------------------ verbalized confidence

#: Word scale -> probability. UNVERIFIED: the paper's exact mapping for its "verbalized words" setting is not
#: confirmed here; this is the evenly spaced guess lowest/low/medium/high/highest -> 10/30/50/70/90%.
#: Pass your own ``word_scale`` to :func:`parse_confidence` / :func:`evaluate_outputs` to change it.
DEFAULT_WORD_SCALE: dict[str, float] = {"lowest": 0.1, "low": 0.3, "medium": 0.5, "high": 0.7, "highest": 0.9}
WORD_SCALE_VERIFIED = False


@dataclass(frozen=True)
class ConfidenceParse:
    """A parsed verbalized confidence: ``ok`` with ``value`` in [0, 1] and ``kind`` ("number" | "word"), or
    ``ok`` False with ``error`` saying why. ``text`` is the input as given."""

    ok: bool
    value: float | None
    kind: str | None
    text: str
    error: str | None = None


_CONF_NUM_RE = re.compile(rf"(?<![\w.])({_NUM})\s*(%|percent\b|per\s+cent\b|pct\b)?", re.IGNORECASE)


def parse_confidence(text, *, word_scale: Mapping[str, float] | None = None) -> ConfidenceParse:
    """Read a verbalized confidence ("61%", "0.61", "61% confidence", "61 percent", "high confidence").

    Rules, in order:
    1. Numbers. Exactly one number must appear (two or more is ambiguous -> error). With "%", "percent",
       "per cent" or "pct" it is a percentage; a bare number in [0, 1] is a probability ("0.61"; so a bare
       "1" is 100%), a bare number in (1, 100] a percentage ("61" -> 0.61). Anything outside [0, 100]% is an
       error.
    2. Otherwise words from ``word_scale`` (default :data:`DEFAULT_WORD_SCALE`, unverified), matched as whole
       words, case-insensitively, longest first ("highest" is not read as "high"). Exactly one distinct scale
       word must appear.
    3. Anything else is unparseable: ``ok=False`` with the reason; never silently dropped.
    """
    raw = "" if text is None else str(text)
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        raw = repr(float(text)) if isinstance(text, float) else str(text)
    s = raw.strip()
    if not s:
        return ConfidenceParse(False, None, None, raw, "empty confidence")
    found = _CONF_NUM_RE.findall(s)
    if len(found) > 1:
        return ConfidenceParse(False, None, None, raw, f"ambiguous: {len(found)} numbers in {raw!r}")
    if len(found) == 1:
        tok, unit = found[0]
        v = float(_to_number(tok))
        if unit:
            value = v / 100.0
        elif 0.0 <= v <= 1.0:
            value = v
        elif 1.0 < v <= 100.0:
            value = v / 100.0
        else:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            return ConfidenceParse(False, None, None, raw, f"confidence out of range [0, 100%]: {raw!r}")
        return ConfidenceParse(True, value, "number", raw)
    scale = DEFAULT_WORD_SCALE if word_scale is None else dict(word_scale)
    for w, v in scale.items():
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"word_scale values must be probabilities in [0, 1]; {w!r} -> {v!r}")
    if scale:
        words = sorted(scale, key=len, reverse=True)
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
        hits = {h.lower() for h in pattern.findall(s)}
        lower = {w.lower(): w for w in scale}
        if len(hits) == 1:
            return ConfidenceParse(True, float(scale[lower[hits.pop()]]), "word", raw)
        if len(hits) > 1:
            return ConfidenceParse(False, None, None, raw, f"ambiguous: several scale words {sorted(hits)} in {raw!r}")
    return ConfidenceParse(False, None, None, raw,
                           f"unparseable confidence {raw!r}: expected a number ('61%', '0.61', '61 percent') "
                           f"or one of the words {sorted(scale)}")
