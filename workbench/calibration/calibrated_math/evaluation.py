"""The CalibratedMath evaluation harness: MSE and MAD per evaluation group next to constant baselines (Lin,
Hilton, Evans 2022, arXiv 2205.14334, section 3), and per-sub-task accuracy targets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from workbench.calibration import metrics as calibration
from workbench.calibration.calibrated_math.answers import (
    ConfidenceParse,
    check_answer,
    parse_confidence,
)
from workbench.calibration.calibrated_math.questions import (
    _ID_RE,
    GROUPS,
    SUBTASKS,
    TRAINING_GROUP,
    Question,
    question_from_id,
)

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

    def reliability(self, group: str, *, n_bins: int = 20, strategy: str = "quantile", closed: str = "left",
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
                     constant_confidence: float | None = None, n_bins: int = 20, closed: str = "left",
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
    of |accuracy - mean confidence| (:func:`workbench.calibration.metrics.calibratedmath_mad`), both x ``scale``;
    ``closed="left"`` (default) bins as the scikit-learn of the paper's time, ``"right"`` as scikit-learn >= 1.1.

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
