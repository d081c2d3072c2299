"""CalibratedMath's task types, groups and sub-tasks (the table :data:`TASK_TYPES`) and the seeded generator of
its questions: each question id regenerates its question (see the package docstring)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

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
