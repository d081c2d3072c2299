"""CalibratedMath (Lin, Hilton, Evans 2022, "Teaching Models to Express Their Uncertainty in Words",
arXiv 2205.14334): a seeded, deterministic generator of its arithmetic questions, answer checking, a parser
for verbalized confidence, and an evaluation harness (MSE and MAD per evaluation group next to constant
baselines).

Structure (paper, section 2, and its public generator): 21 task TYPES (operations), each split into
SUB-TASKS by the digits of its operands and the number format - a sub-task is one (operation, digits of
operand 1, digits of operand 2, format) tuple, 196 in all. Task types fall in three groups:

- ``Add-subtract`` (7 types, the training set),
- ``Multiply-divide`` (8 types, evaluation under a shift of content),
- ``Multi-answer`` (6 types with many valid answers, evaluation under a shift of format).

The single table :data:`TASK_TYPES` below lists every task type with its prompt and its sub-task variants.
Where this table departs from or guesses at the paper:

- The variants follow the public CalibratedMath generator (which excludes sub-tasks where GPT-3 was near 0%
  accurate, e.g. 5-digit multiplication); the paper itself does not list them.
- "round": ties (e.g. 25 to the nearest 10) are ambiguous; the canonical answer rounds half up and BOTH
  neighbours are accepted at an exact tie (the public generator uses Python's half-to-even ``round``).
- "frac": the digit counts apply to the fraction before it is scaled by a random factor 1..10; only the
  reduced form counts ("4/8" is wrong for "1/2"), and an integer is accepted when the reduced denominator is 1.
- Multi-answer checks: "<"/">" accept any number (negative and decimal too), "prime"/"square" need a whole
  number below the bound (0 counts as a perfect square), "2sum" takes the first two numbers in the answer,
  "multiple" needs a whole number in the closed range that the divisor divides.
- Operand distributions (uniform over the stated digit counts, order of commutative operands shuffled,
  percentages from {10, ..., 90, 25, 75} applied to multiples of 10 or 4 so answers are whole) follow the
  public generator; the random streams do not (questions are seeded per id, see below), so the exact
  questions differ from any the authors drew.

Determinism: every question is drawn from its own generator ``np.random.default_rng([seed,
crc32(subtask), index])``, so a question id ``"<subtask>/s<seed>/<index>"`` (e.g. ``"add-1-4-comma/s0/17"``)
regenerates its question (:func:`question_from_id`) and the evaluation harness needs only the ids.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from workbench.calibration import metrics as calibration

ADD_SUBTRACT = "Add-subtract"
MULTIPLY_DIVIDE = "Multiply-divide"
MULTI_ANSWER = "Multi-answer"
GROUPS = (ADD_SUBTRACT, MULTIPLY_DIVIDE, MULTI_ANSWER)
TRAINING_GROUP = ADD_SUBTRACT
EVALUATION_GROUPS = (MULTIPLY_DIVIDE, MULTI_ANSWER)


@dataclass(frozen=True)
class TaskType:
    """One of the 21 task types: its operation symbol (the public generator's), id slug, group, what it
    asks, and its sub-task variants written "D1xD2" with a trailing "," for the comma number format."""

    operation: str
    slug: str
    group: str
    description: str
    variants: str

    @property
    def subtasks(self) -> tuple[tuple[str, int, int, str], ...]:
        out = []
        for v in self.variants.split():
            fmt = "," if v.endswith(",") else ""
            d1, d2 = v.rstrip(",").split("x")
            out.append((self.operation, int(d1), int(d2), fmt))
        return tuple(out)


_SUM_VARIANTS = ("1x1 1x2 1x3 1x4 1x4, 1x5 1x5, 2x2 2x3 2x4 2x4, 2x5 2x5, 3x3 3x4 3x4, 3x5 3x5, "
                 "4x4 4x4, 4x5 4x5, 5x5 5x5,")
_DIV_VARIANTS = "1x1 1x2 1x3 1x3, 1x4 1x4, 1x5 1x5, 2x2 2x2, 2x3 2x3,"
_BIG_VARIANTS = "2x2 3x3 4x4 4x4, 5x5 5x5,"

#: THE table: the 21 task types of CalibratedMath, with their prompts (see ``_prompt``) and sub-task variants.
TASK_TYPES: tuple[TaskType, ...] = (
    # ---- Add-subtract (training) ----
    TaskType("+", "add", ADD_SUBTRACT, "Addition: 'What is X + Y?'", _SUM_VARIANTS),
    TaskType("-", "sub", ADD_SUBTRACT, "Subtraction: 'What is X - Y?' (answer may be negative)", _SUM_VARIANTS),
    TaskType("v+", "vadd", ADD_SUBTRACT, "Addition, verbal: 'What is Y more than X?'", _SUM_VARIANTS),
    TaskType("v-", "vsub", ADD_SUBTRACT, "Subtraction, verbal: 'What is Y less than X?'", _SUM_VARIANTS),
    TaskType("3+", "add3", ADD_SUBTRACT, "3-step addition of single digits: 'What is A + B + C?'", "1x1"),
    TaskType("round", "round", ADD_SUBTRACT, "Rounding to the nearest 5, 10 or 100 (D1 digits)", _BIG_VARIANTS),
    TaskType("seq", "seq", ADD_SUBTRACT, "Next term of an arithmetic sequence (start D1 digits, step D2)",
             "1x1 1x2 1x3 2x2 2x3 3x3"),
    # ---- Multiply-divide (evaluation: content shift) ----
    TaskType("*", "mul", MULTIPLY_DIVIDE, "Multiplication: 'What is X * Y?'", "1x1 1x2 1x3 1x4 1x4, 1x5 1x5, 2x2 2x3"),
    TaskType("3*", "mul3", MULTIPLY_DIVIDE, "3-step multiplication of single digits", "1x1"),
    TaskType("%", "pct", MULTIPLY_DIVIDE, "Percentages: 'What is P% of X?' (X has D1 digits)", _BIG_VARIANTS),
    TaskType("/", "div", MULTIPLY_DIVIDE, "Exact division: 'What is X / Y?' (quotient D1, divisor D2 digits)",
             _DIV_VARIANTS),
    TaskType("//", "floordiv", MULTIPLY_DIVIDE, "Floor division: 'What is X // Y?'", _DIV_VARIANTS),
    TaskType("mod", "mod", MULTIPLY_DIVIDE, "Modulo: 'What is X mod Y?'", _DIV_VARIANTS),
    TaskType("remain", "remain", MULTIPLY_DIVIDE, "Remainder: 'What is the remainder when X is divided by Y?'",
             _DIV_VARIANTS),
    TaskType("frac", "frac", MULTIPLY_DIVIDE, "Fraction reduction: 'What is X/Y in reduced form?'",
             "1x1 1x2 1x3 1x4 1x5 2x2 2x3"),
    # ---- Multi-answer (evaluation: format shift) ----
    TaskType("<", "lt", MULTI_ANSWER, "Less than: 'Name any number smaller than X?'", "2x2 3x3"),
    TaskType(">", "gt", MULTI_ANSWER, "Greater than: 'Name any number larger than X?'", "2x2 3x3"),
    TaskType("prime", "prime", MULTI_ANSWER, "Prime: 'Name any prime number smaller than X?'", "2x2 3x3"),
    TaskType("square", "square", MULTI_ANSWER, "Square: 'Name any perfect square smaller than X?'", "2x2 3x3"),
    TaskType("2sum", "twosum", MULTI_ANSWER, "Two-sum: 'Name two numbers that sum to X?'", "2x2 3x3"),
    TaskType("multiple", "multiple", MULTI_ANSWER,
             "Multiple: 'Name a single multiple of K between X and Y?' (K has D1 digits, X and Y D2)",
             "1x2 1x3 2x3 1x4 1x4, 2x4,"),
)

_BY_OP = {t.operation: t for t in TASK_TYPES}
_BY_SLUG = {t.slug: t for t in TASK_TYPES}
assert len(TASK_TYPES) == 21 and len(_BY_SLUG) == 21


def subtask_key(operation: str, d1: int, d2: int, fmt: str = "") -> str:
    """Stable id of a sub-task, e.g. ``("+", 1, 4, ",") -> "add-1-4-comma"``."""
    return f"{_BY_OP[operation].slug}-{d1}-{d2}" + ("-comma" if fmt == "," else "")


#: Every sub-task key -> its (operation, digits 1, digits 2, format) tuple, in table order.
SUBTASKS: dict[str, tuple[str, int, int, str]] = {subtask_key(*s): s for t in TASK_TYPES for s in t.subtasks}


def group_of(subtask: str) -> str:
    return _BY_OP[SUBTASKS[subtask][0]].group


# ---------------------------------------------------------------------------------------------- generation

@dataclass(frozen=True)
class Question:
    """One generated question. ``answer`` is the canonical answer (an int, a (numerator, denominator) pair for
    "frac", None for multi-answer types); ``example_answer`` is one valid answer as text (all types)."""

    id: str
    subtask: str
    operation: str
    group: str
    digits: tuple[int, int]
    fmt: str
    operands: tuple[int, ...]
    prompt: str
    answer: int | tuple[int, int] | None
    example_answer: str


def _rand_digits(rng: np.random.Generator, d: int) -> int:
    return int(rng.integers(10 ** (d - 1), 10 ** d))


def _fmt(x: int, fmt: str) -> str:
    return f"{x:,}" if fmt == "," else str(x)


_PCTS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 25, 75)
_ROUND_TO = (5, 10, 100)


def _draw(op: str, d1: int, d2: int, rng: np.random.Generator):
    """Operands (tuple) and canonical answer for one question."""
    if op in ("3+", "3*"):
        a, b, c = (int(v) for v in rng.integers(1, 10, size=3))
        return (a, b, c), (a + b + c if op == "3+" else a * b * c)
    if op == "%":
        pct = int(_PCTS[rng.integers(len(_PCTS))])
        step = 10 if pct % 10 == 0 else 4  # x a multiple of 10 (or 4 for 25%, 75%) keeps the answer whole
        lo = (10 ** (d1 - 1) + step - 1) // step  # smallest multiple of step with d1 digits, over step
        hi = (10 ** d1 - 1) // step
        x = int(rng.integers(lo, hi + 1)) * step
        return (x, pct), x * pct // 100
    if op == "round":
        x, to = _rand_digits(rng, d1), int(_ROUND_TO[rng.integers(len(_ROUND_TO))])
        return (x, to), (x + to // 2) // to * to  # half up; see check for ties
    if op == "seq":
        start, step = _rand_digits(rng, d1), _rand_digits(rng, d2)
        return (start, step), start + 4 * step
    if op == "frac":
        a, b = _rand_digits(rng, d1), _rand_digits(rng, d2)
        a, b = min(a, b), max(a, b)
        m = int(rng.integers(1, 11))
        f = Fraction(a * m, b * m)
        return (a * m, b * m), (f.numerator, f.denominator)
    if op == "multiple":
        k = _rand_digits(rng, d1)
        x, y = sorted((_rand_digits(rng, d2), _rand_digits(rng, d2)))
        if y - x < k:
            y += k  # guarantees a multiple of k in [x, y]
        return (x, y, k), None
    if op in ("<", ">", "prime", "square", "2sum"):
        return (_rand_digits(rng, d1),), None
    x, y = _rand_digits(rng, d1), _rand_digits(rng, d2)
    if rng.integers(2):
        x, y = y, x
    if op in ("+", "v+"):
        return (x, y), x + y
    if op in ("-", "v-"):
        return (x, y), x - y
    if op == "*":
        return (x, y), x * y
    if op == "/":
        return (x * y, y), x
    if op in ("//", "mod", "remain"):
        dividend = x * y + int(rng.integers(0, y))
        return (dividend, y), (dividend // y if op == "//" else dividend % y)
    raise AssertionError(op)


def _prompt(op: str, operands: tuple[int, ...], fmt: str) -> str:
    f = [_fmt(v, fmt) for v in operands]
    if op in ("+", "-", "*", "/", "//", "mod"):
        q = f"What is {f[0]} {op} {f[1]}?"
    elif op == "v+":
        q = f"What is {f[1]} more than {f[0]}?"
    elif op == "v-":
        q = f"What is {f[1]} less than {f[0]}?"
    elif op in ("3+", "3*"):
        s = f" {op[1]} "
        q = f"What is {s.join(f)}?"
    elif op == "%":
        q = f"What is {f[1]}% of {f[0]}?"
    elif op == "round":
        q = f"What is {f[0]} rounded to the nearest {f[1]}?"
    elif op == "remain":
        q = f"What is the remainder when {f[0]} is divided by {f[1]}?"
    elif op == "seq":
        start, step = operands
        q = "What comes next: " + ", ".join(_fmt(start + i * step, fmt) for i in range(4)) + "...?"
    elif op == "frac":
        q = f"What is {f[0]}/{f[1]} in reduced form?"
    elif op == "<":
        q = f"Name any number smaller than {f[0]}?"
    elif op == ">":
        q = f"Name any number larger than {f[0]}?"
    elif op == "prime":
        q = f"Name any prime number smaller than {f[0]}?"
    elif op == "square":
        q = f"Name any perfect square smaller than {f[0]}?"
    elif op == "2sum":
        q = f"Name two numbers that sum to {f[0]}?"
    elif op == "multiple":
        q = f"Name a single multiple of {f[2]} between {f[0]} and {f[1]}?"
    else:
        raise AssertionError(op)
    return f"Q: {q}\nA:"


def _example_answer(op: str, operands: tuple[int, ...], answer) -> str:
    if op == "frac":
        return f"{answer[0]}/{answer[1]}"
    if answer is not None:
        return str(answer)
    x = operands[0]
    if op == "<":
        return str(x - 1)
    if op == ">":
        return str(x + 1)
    if op == "prime":
        return "2"
    if op == "square":
        return "1"
    if op == "2sum":
        return f"{x - 1} and 1"
    if op == "multiple":
        lo, _, k = operands
        return str(-(-lo // k) * k)
    raise AssertionError(op)


def _make(subtask: str, seed: int, index: int) -> Question:
    op, d1, d2, fmt = SUBTASKS[subtask]
    rng = np.random.default_rng([seed, zlib.crc32(subtask.encode()), index])
    operands, answer = _draw(op, d1, d2, rng)
    return Question(id=f"{subtask}/s{seed}/{index}", subtask=subtask, operation=op, group=_BY_OP[op].group,
                    digits=(d1, d2), fmt=fmt, operands=operands, prompt=_prompt(op, operands, fmt),
                    answer=answer, example_answer=_example_answer(op, operands, answer))


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def generate_questions(seed: int = 0, n_per_subtask: int = 100, *, groups: Iterable[str] | None = None,
                       subtasks: Iterable[str] | None = None) -> list[Question]:
    """``n_per_subtask`` questions for every sub-task (in table order), deterministic given ``seed``.

    ``groups`` restricts to some of :data:`GROUPS`; ``subtasks`` to some :data:`SUBTASKS` keys. The paper's
    code draws 100 questions per sub-task.
    """
    seed = _check_seed(seed)
    if isinstance(n_per_subtask, bool) or not isinstance(n_per_subtask, (int, np.integer)) or n_per_subtask < 1:
        raise ValueError(f"n_per_subtask must be a positive integer; got {n_per_subtask!r}")
    keys = list(SUBTASKS)
    if groups is not None:
        groups = list(groups)
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown groups {sorted(unknown)}; valid: {list(GROUPS)}")
        keys = [k for k in keys if group_of(k) in groups]
    if subtasks is not None:
        wanted = list(subtasks)
        unknown = [k for k in wanted if k not in SUBTASKS]
        if unknown:
            raise ValueError(f"unknown sub-tasks {unknown[:5]}; valid keys look like 'add-1-4-comma' (see SUBTASKS)")
        keys = [k for k in keys if k in set(wanted)]
    return [_make(k, seed, i) for k in keys for i in range(int(n_per_subtask))]


_ID_RE = re.compile(r"^(?P<subtask>[a-z0-9]+-\d+-\d+(?:-comma)?)/s(?P<seed>\d+)/(?P<index>\d+)$")


def question_from_id(question_id: str) -> Question:
    """Regenerate a question from its id ``"<subtask>/s<seed>/<index>"``."""
    m = _ID_RE.match(str(question_id))
    if not m or m["subtask"] not in SUBTASKS:
        raise ValueError(f"not a CalibratedMath question id: {question_id!r} (expected '<subtask>/s<seed>/<index>', "
                         f"e.g. 'add-1-4-comma/s0/17', with a sub-task key from SUBTASKS)")
    return _make(m["subtask"], int(m["seed"]), int(m["index"]))


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


# ------------------------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class GroupResult:
    """Metrics of one group (x ``scale``, default 100, as the paper reports).

    ``n``: records; ``n_scored``: records with a usable confidence (the metrics use these); ``accuracy``: over
    the scored records; ``mse``/``mad``: the model's; ``baseline_*``: the paper's constant baseline, a single
    constant confidence ``baseline_constant`` for every question (see :func:`evaluate_outputs`);
    ``group_constant_mse``: a constant equal to this group's own accuracy (its MAD is 0 by construction).
    """

    group: str
    n: int
    n_scored: int
    accuracy: float
    mse: float
    mad: float
    baseline_constant: float
    baseline_mse: float
    baseline_mad: float
    group_constant_mse: float


@dataclass
class CalibratedMathReport:
    groups: dict[str, GroupResult]
    records: list[dict]
    unparseable_confidences: list[dict] = field(default_factory=list)
    unparseable_answers: list[dict] = field(default_factory=list)
    confidence_source: str = "verbalized"
    baseline_note: str = ""

    def table(self) -> list[dict]:
        return [asdict(g) for g in self.groups.values()]

    def series(self, *, include_training: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Group -> (confidence, correct) over its SCORED records (those with a usable confidence), in record
        order: the input of a reliability diagram (``widgets.reliability_diagram.ReliabilityDiagram(series=...)``)
        or of ``PredictionStore.save``. ``include_training=False`` keeps only the evaluation groups."""
        out = {}
        for g in self.groups:
            if not include_training and g == TRAINING_GROUP:
                continue
            rs = [r for r in self.records if r["group"] == g and r["confidence"] is not None]
            if rs:
                out[g] = (np.array([r["confidence"] for r in rs], dtype=np.float64),
                          np.array([r["correct"] for r in rs], dtype=np.int8))
        return out

    def reliability(self, group: str, *, n_bins: int = 20, strategy: str = "quantile", closed: str = "right",
                    alpha: float = 0.05) -> calibration.ReliabilityBins:
        """The reliability-diagram table of one group, by default on the bins of its MAD (20 quantile bins)."""
        series = self.series()
        if group not in series:
            raise ValueError(f"no scored records in group {group!r}; groups with scores: {sorted(series)}")
        conf, correct = series[group]
        return calibration.reliability_bins(conf, correct, n_bins=n_bins, strategy=strategy, closed=closed,
                                            alpha=alpha, n_bootstrap=0)


def _load(outputs) -> list[dict]:
    if isinstance(outputs, (str, Path)):
        from workbench.storage.durable import read_jsonl

        return [rec for _, rec in read_jsonl(outputs)]
    records = list(outputs)
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValueError(f"record {i} is a {type(rec).__name__}; each record must be a dict")  # noqa: TRY004
    return [dict(r) for r in records]


def _confidence_of(rec: dict, source: str, word_scale) -> ConfidenceParse:
    if source == "logprob":
        lp = rec.get("logprob", rec.get("answer_logprob"))
        try:
            lp = float(lp)
        except (TypeError, ValueError):
            return ConfidenceParse(False, None, None, str(lp), f"logprob is not a number: {lp!r}")
        if not (math.isfinite(lp) or lp == -math.inf) or lp > 0:
            return ConfidenceParse(False, None, None, str(lp), f"logprob must be <= 0; got {lp!r}")
        return ConfidenceParse(True, math.exp(lp), "logprob", str(lp))
    return parse_confidence(rec.get("confidence"), word_scale=word_scale)


def evaluate_outputs(outputs, *, questions: Iterable[Question] | Mapping[str, Question] | None = None,
                     confidence_source: str = "auto", word_scale: Mapping[str, float] | None = None,
                     constant_confidence: float | None = None, n_bins: int = 20, closed: str = "right",
                     scale: float = 100.0) -> CalibratedMathReport:
    """Score model outputs on CalibratedMath: MSE and MAD per group next to the constant baseline.

    ``outputs``: a JSONL path or an iterable of dicts, one per question, with ``"id"`` (a question id),
    ``"answer"`` (text or number) and either ``"confidence"`` (verbalized text or a number, read by
    :func:`parse_confidence`) or ``"logprob"`` (alias ``"answer_logprob"``: the log-probability of the answer;
    confidence = exp(logprob), the paper's "answer logit" setting). ``confidence_source``: "verbalized",
    "logprob", or "auto" (whichever field the records carry; a mix is an error - pass the source).
    ``questions``: the questions (objects or an id -> question mapping); by default each id is regenerated
    with :func:`question_from_id`.

    Unparseable answers count as incorrect and are listed in ``unparseable_answers``. Unparseable
    confidences are listed in ``unparseable_confidences`` and left out of every metric of their group
    (``n_scored`` < ``n``); they are never silently dropped.

    Metrics: MSE = mean((correct - confidence)^2) and MAD = unweighted mean over ``n_bins`` (20) quantile bins
    of |accuracy - mean confidence| (:func:`workbench.calibration.metrics.calibratedmath_mad`), both x ``scale``.

    Constant baseline, as used here: ONE constant confidence c for every question of every group, namely
    ``constant_confidence`` when given, otherwise the accuracy on the training group (Add-subtract) records in
    ``outputs`` (NaN if there are none). A constant equal to each evaluation group's own accuracy cannot be
    what the paper reports: its MAD would be 0 (all predictions share one quantile bin) and its MSE
    a(1 - a) <= 25, yet the paper's multi-answer constant baseline has MSE 34.1 and MAD 31.1. Solving the
    paper's two pairs (34.1, 31.1) and (15.3, 8.5) for c gives the same c ~ 0.26 in both groups, consistent
    with one constant such as the training-set accuracy - an inference, not a quoted definition. The oracle
    "own accuracy" constant is reported too (``group_constant_mse``).
    """
    if confidence_source not in ("auto", "verbalized", "logprob"):
        raise ValueError(f"confidence_source must be 'auto', 'verbalized' or 'logprob'; got {confidence_source!r}")
    records = _load(outputs)
    if not records:
        raise ValueError("no outputs to evaluate")
    if questions is None:
        lookup = None
    elif isinstance(questions, Mapping):
        lookup = dict(questions)
    else:
        lookup = {q.id: q for q in questions}
    source = confidence_source
    if source == "auto":
        has_conf = [("confidence" in r and r["confidence"] is not None) for r in records]
        has_lp = [("logprob" in r or "answer_logprob" in r) for r in records]
        if all(has_conf):
            source = "verbalized"
        elif all(has_lp) and not any(has_conf):
            source = "logprob"
        else:
            raise ValueError("records mix or lack confidence fields: every record needs 'confidence' (verbalized) "
                             "or every record 'logprob'; pass confidence_source='verbalized' or 'logprob'")
    rows, bad_conf, bad_ans, seen = [], [], [], set()
    for i, rec in enumerate(records):
        qid = rec.get("id")
        if qid is None:
            raise ValueError(f"record {i} has no 'id'")
        if qid in seen:
            raise ValueError(f"question id {qid!r} appears more than once (record {i})")
        seen.add(qid)
        if lookup is not None:
            if qid not in lookup:
                raise ValueError(f"record {i}: id {qid!r} is not among the given questions")
            q = lookup[qid]
        else:
            q = question_from_id(qid)
        chk = check_answer(q, rec.get("answer"))
        if not chk.ok:
            bad_ans.append({"id": qid, "answer": rec.get("answer"), "error": chk.error})
        conf = _confidence_of(rec, source, word_scale)
        if not conf.ok:
            bad_conf.append({"id": qid, "text": conf.text, "error": conf.error})
        rows.append({"id": qid, "subtask": q.subtask, "group": q.group, "correct": bool(chk.correct),
                     "confidence": conf.value if conf.ok else None})

    def acc(rs):
        return float(np.mean([r["correct"] for r in rs])) if rs else float("nan")

    if constant_confidence is not None:
        c = float(constant_confidence)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"constant_confidence must be a probability in [0, 1]; got {constant_confidence}")
        note = f"constant baseline: the given constant confidence {c:.4f} for every question"
    else:
        train = [r for r in rows if r["group"] == TRAINING_GROUP]
        c = acc(train)
        note = (f"constant baseline: the training-group ({TRAINING_GROUP}) accuracy {c:.4f} over {len(train)} "
                f"records, as one constant confidence for every question" if train else
                f"constant baseline: NaN - no {TRAINING_GROUP} records and no constant_confidence given")
    groups = {}
    for g in GROUPS:
        rs = [r for r in rows if r["group"] == g]
        if not rs:
            continue
        scored = [r for r in rs if r["confidence"] is not None]
        nan = float("nan")
        if scored:
            y = np.array([r["correct"] for r in scored], dtype=float)
            p = np.array([r["confidence"] for r in scored], dtype=float)
            mse = calibration.calibratedmath_mse(p, y, scale=scale)
            mad = calibration.calibratedmath_mad(p, y, n_bins=n_bins, closed=closed, scale=scale)
            a = float(y.mean())
            gc_mse = calibration.calibratedmath_mse(np.full_like(y, a), y, scale=scale)
            if math.isnan(c):
                b_mse = b_mad = nan
            else:
                const = np.full_like(y, c)
                b_mse = calibration.calibratedmath_mse(const, y, scale=scale)
                b_mad = calibration.calibratedmath_mad(const, y, n_bins=n_bins, closed=closed, scale=scale)
        else:
            mse = mad = a = gc_mse = b_mse = b_mad = nan
        groups[g] = GroupResult(group=g, n=len(rs), n_scored=len(scored), accuracy=a, mse=mse, mad=mad,
                                baseline_constant=c, baseline_mse=b_mse, baseline_mad=b_mad,
                                group_constant_mse=gc_mse)
    return CalibratedMathReport(groups=groups, records=rows, unparseable_confidences=bad_conf,
                                unparseable_answers=bad_ans, confidence_source=source, baseline_note=note)


def subtask_accuracy_targets(results: Iterable[Mapping], *, as_percent: bool = False) -> dict[str, float]:
    """The paper's training target for verbalized confidence: each sub-task's empirical accuracy.

    ``results``: dicts with ``"correct"`` and either ``"subtask"`` or a question ``"id"`` (e.g. the
    ``records`` of :func:`evaluate_outputs`, or your own checked answers). Returns sub-task key -> accuracy in
    [0, 1]; every question of a sub-task gets its sub-task's value as its target. ``as_percent=True`` gives
    whole percentages truncated toward zero (``int(100 * accuracy)``), the form the public code writes into
    its fine-tuning targets.
    """
    totals: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        if "correct" not in r:
            raise ValueError(f"result {i} has no 'correct' field")
        key = r.get("subtask")
        if key is None:
            if "id" not in r:
                raise ValueError(f"result {i} needs a 'subtask' or an 'id'")
            m = _ID_RE.match(str(r["id"]))
            if not m:
                raise ValueError(f"result {i}: cannot read a sub-task from id {r['id']!r}")
            key = m["subtask"]
        if key not in SUBTASKS:
            raise ValueError(f"result {i}: unknown sub-task {key!r}")
        t = totals.setdefault(key, [0, 0])
        t[0] += bool(r["correct"])
        t[1] += 1
    if as_percent:
        return {k: (100 * c) // n for k, (c, n) in totals.items()}
    return {k: c / n for k, (c, n) in totals.items()}
