"""CalibratedMath (Lin, Hilton, Evans 2022, "Teaching Models to Express Their Uncertainty in Words",
arXiv 2205.14334): a seeded, deterministic generator of its arithmetic questions, answer checking, a parser
for verbalized confidence, and an evaluation harness (MSE and MAD per evaluation group next to constant
baselines). One module per job: the task table and the question generator (`questions`), answer checking and
confidence parsing (`answers`), the evaluation harness (`evaluation`); this package's namespace is the API.

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


from workbench.calibration.calibrated_math.answers import (
    DEFAULT_WORD_SCALE,
    WORD_SCALE_VERIFIED,
    AnswerCheck,
    ConfidenceParse,
    check_answer,
    parse_confidence,
)
from workbench.calibration.calibrated_math.evaluation import (
    CalibratedMathReport,
    GroupResult,
    evaluate_outputs,
    subtask_accuracy_targets,
)
from workbench.calibration.calibrated_math.questions import (
    ADD_SUBTRACT,
    EVALUATION_GROUPS,
    GROUPS,
    MULTI_ANSWER,
    MULTIPLY_DIVIDE,
    SUBTASKS,
    TASK_TYPES,
    TRAINING_GROUP,
    Question,
    TaskType,
    generate_questions,
    group_of,
    question_from_id,
    subtask_key,
)

__all__ = [
    "ADD_SUBTRACT", "DEFAULT_WORD_SCALE", "EVALUATION_GROUPS", "GROUPS", "MULTIPLY_DIVIDE", "MULTI_ANSWER",
    "SUBTASKS", "TASK_TYPES", "TRAINING_GROUP", "WORD_SCALE_VERIFIED", "AnswerCheck", "CalibratedMathReport",
    "ConfidenceParse", "GroupResult", "Question", "TaskType", "check_answer", "evaluate_outputs",
    "generate_questions", "group_of", "parse_confidence", "question_from_id", "subtask_accuracy_targets",
    "subtask_key",
]
