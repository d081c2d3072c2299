"""CalibratedMath: the task table, deterministic generation, answer checking, the verbalized-confidence
parser and the evaluation harness."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from workbench.calibration import calibrated_math as cm

from workbench.calibration import metrics as calibration


@pytest.fixture(scope="module")
def questions():
    return cm.generate_questions(seed=7, n_per_subtask=3)


# ------------------------------------------------------------------------------------------------ the table

def test_task_table_has_21_types_in_three_groups():
    assert len(cm.TASK_TYPES) == 21
    per_group = Counter(t.group for t in cm.TASK_TYPES)
    assert per_group == {cm.ADD_SUBTRACT: 7, cm.MULTIPLY_DIVIDE: 8, cm.MULTI_ANSWER: 6}
    assert {t.operation for t in cm.TASK_TYPES if t.group == cm.MULTI_ANSWER} == \
        {"<", ">", "prime", "square", "2sum", "multiple"}
    assert len(cm.SUBTASKS) == 196
    assert Counter(cm.group_of(k) for k in cm.SUBTASKS) == {cm.ADD_SUBTRACT: 109, cm.MULTIPLY_DIVIDE: 71,
                                                            cm.MULTI_ANSWER: 16}
    assert cm.SUBTASKS["add-1-4-comma"] == ("+", 1, 4, ",")
    assert cm.subtask_key("//", 2, 3, ",") == "floordiv-2-3-comma"


# ---------------------------------------------------------------------------------------------- generation

def test_generation_is_deterministic(questions):
    again = cm.generate_questions(seed=7, n_per_subtask=3)
    assert again == questions
    other = cm.generate_questions(seed=8, n_per_subtask=3)
    assert [q.prompt for q in other] != [q.prompt for q in questions]
    assert len({q.id for q in questions}) == len(questions) == 196 * 3
    for q in questions[::17]:
        assert cm.question_from_id(q.id) == q
    # a question does not depend on how many others were generated alongside it
    assert cm.generate_questions(seed=7, n_per_subtask=1, subtasks=["mul-2-3"])[0] == \
        next(q for q in questions if q.id == "mul-2-3/s7/0")


def test_prompts_have_the_paper_form(questions):
    for q in questions:
        assert re.fullmatch(r"Q: (What|Name) .+\?\nA:", q.prompt), q.prompt
    q = next(q for q in questions if q.subtask == "add-2-2")
    a, b = q.operands
    assert q.prompt == f"Q: What is {a} + {b}?\nA:"
    q = next(q for q in questions if q.subtask == "add-4-5-comma")
    assert "," in q.prompt and q.prompt == f"Q: What is {q.operands[0]:,} + {q.operands[1]:,}?\nA:"


def _digits(x):
    return len(str(abs(x)))


def test_operands_and_canonical_answers(questions):
    for q in questions:
        op, (d1, d2), x = q.operation, q.digits, q.operands
        if op in ("+", "-", "v+", "v-", "*"):
            assert sorted(map(_digits, x)) == sorted([d1, d2])
            expect = {"+": x[0] + x[1], "v+": x[0] + x[1], "-": x[0] - x[1], "v-": x[0] - x[1], "*": x[0] * x[1]}
            assert q.answer == expect[op]
        elif op in ("/", "//", "mod", "remain"):
            assert _digits(x[1]) in (d1, d2)
            assert q.answer == {"/": x[0] // x[1], "//": x[0] // x[1], "mod": x[0] % x[1],
                                "remain": x[0] % x[1]}[op]
            if op == "/":
                assert x[0] % x[1] == 0
        elif op == "%":
            assert _digits(x[0]) == d1 and x[1] in (10, 20, 30, 40, 50, 60, 70, 80, 90, 25, 75)
            assert Fraction(x[0] * x[1], 100) == q.answer
        elif op == "round":
            assert _digits(x[0]) == d1 and x[1] in (5, 10, 100)
            assert abs(q.answer - x[0]) * 2 <= x[1] and q.answer % x[1] == 0
        elif op == "seq":
            assert q.answer == x[0] + 4 * x[1]
        elif op in ("3+", "3*"):
            assert all(1 <= v <= 9 for v in x)
            assert q.answer == (sum(x) if op == "3+" else x[0] * x[1] * x[2])
        elif op == "frac":
            f = Fraction(x[0], x[1])
            assert q.answer == (f.numerator, f.denominator) and x[0] <= x[1]
        elif op == "multiple":
            lo, hi, k = x
            assert _digits(k) == d1 and lo <= hi and any(v % k == 0 for v in range(lo, hi + 1))
        else:
            assert _digits(x[0]) == d1 and q.answer is None
        assert cm.check_answer(q, q.example_answer).correct, (q.id, q.example_answer)


# ------------------------------------------------------------------------------------------ answer checking

def _q(subtask, operands, answer=None):
    op, d1, d2, fmt = cm.SUBTASKS[subtask]
    return cm.Question(id=f"{subtask}/s0/0", subtask=subtask, operation=op, group=cm.group_of(subtask),
                       digits=(d1, d2), fmt=fmt, operands=operands, prompt="", answer=answer, example_answer="")


@pytest.mark.parametrize("text,correct,ok", [
    ("1234", True, True), (" 1,234 ", True, True), ("1234.", True, True), ("1234.0", True, True),
    ("The answer is 1234.", True, True), (1234, True, True), ("1243", False, True), ("12,34", False, True),
    ("one thousand", False, False), ("", False, False), (None, False, False),
])
def test_single_answer_normalization(text, correct, ok):
    q = _q("add-4-4-comma", (1000, 234), 1234)
    chk = cm.check_answer(q, text)
    assert (chk.correct, chk.ok) == (correct, ok)
    if not ok:
        assert chk.error


def test_negative_and_fraction_answers():
    q = _q("sub-1-2", (5, 12), -7)
    assert cm.check_answer(q, "-7").correct and cm.check_answer(q, "\u22127").correct
    assert not cm.check_answer(q, "7").correct
    f = _q("frac-1-1", (4, 8), (1, 2))
    assert cm.check_answer(f, "1/2").correct and cm.check_answer(f, " 1 / 2").correct
    assert cm.check_answer(f, (1, 2)).correct
    assert not cm.check_answer(f, "2/4").correct  # not reduced
    assert not cm.check_answer(f, "0.5").ok
    one = _q("frac-1-1", (3, 3), (1, 1))
    assert cm.check_answer(one, "1").correct and cm.check_answer(one, "1/1").correct


def test_round_ties_accept_either_neighbour():
    q = _q("round-2-2", (25, 10), 30)
    assert cm.check_answer(q, "30").correct and cm.check_answer(q, "20").correct
    assert not cm.check_answer(q, "25").correct
    q = _q("round-3-3", (149, 100), 100)
    assert cm.check_answer(q, "100").correct and not cm.check_answer(q, "200").correct


@pytest.mark.parametrize("subtask,operands,good,bad", [
    ("lt-2-2", (51,), ["50", "-3", "0", "50.5"], ["51", "60"]),
    ("gt-2-2", (51,), ["52", "1000", "51.5"], ["51", "7"]),
    ("prime-2-2", (38,), ["2", "37", "31"], ["38", "1", "35", "41", "2.5"]),
    ("square-3-3", (130,), ["0", "1", "121", "100"], ["144", "120", "-4"]),
    ("twosum-2-2", (24,), ["23 and 1", "12, 12", "30 + -6", "12 + 12 = 24"], ["12 and 13", "24"]),
    ("multiple-1-2", (22, 91, 7), ["28", "91", "63"], ["21", "98", "30"]),
])
def test_multi_answer_accepts_any_valid_answer(subtask, operands, good, bad):
    q = _q(subtask, operands)
    for text in good:
        assert cm.check_answer(q, text).correct, text
    for text in bad:
        assert not cm.check_answer(q, text).correct, text
    assert not cm.check_answer(q, "no idea").ok


# ------------------------------------------------------------------------------------------ confidence parser

@pytest.mark.parametrize("text,value,kind", [
    ("61%", 0.61, "number"), ("0.61", 0.61, "number"), ("61% confidence", 0.61, "number"),
    ("61 percent", 0.61, "number"), ("Confidence: 61 per cent", 0.61, "number"), (".61", 0.61, "number"),
    ("61", 0.61, "number"), ("1", 1.0, "number"), ("100%", 1.0, "number"), ("0%", 0.0, "number"),
    (0.25, 0.25, "number"), (80, 0.8, "number"),
    ("lowest", 0.1, "word"), ("Low confidence", 0.3, "word"), ("medium", 0.5, "word"),
    ("high confidence", 0.7, "word"), ("HIGHEST confidence", 0.9, "word"),
])
def test_parse_confidence(text, value, kind):
    r = cm.parse_confidence(text)
    assert r.ok and r.error is None
    assert r.value == pytest.approx(value) and r.kind == kind


@pytest.mark.parametrize("text,reason", [
    ("", "empty"), (None, "empty"), ("   ", "empty"), ("sixty percent", "unparseable"),
    ("very sure", "unparseable"), ("between 60 and 70%", "ambiguous"), ("medium-high", "ambiguous"),
    ("150%", "out of range"), ("-5%", "out of range"), ("250", "out of range"),
])
def test_parse_confidence_reports_unparseable(text, reason):
    r = cm.parse_confidence(text)
    assert not r.ok and r.value is None and reason in r.error


def test_word_scale_is_configurable_and_marked_unverified():
    assert cm.WORD_SCALE_VERIFIED is False
    assert cm.DEFAULT_WORD_SCALE == {"lowest": 0.1, "low": 0.3, "medium": 0.5, "high": 0.7, "highest": 0.9}
    scale = {"very low": 0.05, "low": 0.2, "very high": 0.95}
    assert cm.parse_confidence("very high", word_scale=scale).value == 0.95
    assert cm.parse_confidence("low", word_scale=scale).value == 0.2
    assert not cm.parse_confidence("medium", word_scale=scale).ok
    with pytest.raises(ValueError, match="word_scale"):
        cm.parse_confidence("low", word_scale={"low": 30})


# ------------------------------------------------------------------------------------------- the harness

def _fake_outputs(questions, seed=0):
    """A toy 'model': right with a group-dependent rate, verbalized confidence = its sub-task guess."""
    rng = np.random.default_rng(seed)
    rate = {cm.ADD_SUBTRACT: 0.8, cm.MULTIPLY_DIVIDE: 0.4, cm.MULTI_ANSWER: 0.6}
    out = []
    for q in questions:
        right = rng.random() < rate[q.group]
        answer = q.example_answer if right else ("0 and 1" if q.operation == "2sum" else "-999999")
        conf = f"{int(rng.integers(20, 95))}%"
        out.append({"id": q.id, "answer": answer, "confidence": conf})
    return out


def test_evaluate_outputs_matches_direct_computation(questions, tmp_path):
    records = _fake_outputs(questions)
    records[0]["confidence"] = "dunno"       # unparseable confidence: listed, left out of the metrics
    records[5]["answer"] = "forty-two"       # unparseable answer: listed, counted incorrect
    report = cm.evaluate_outputs(records)
    assert report.confidence_source == "verbalized"
    assert [u["id"] for u in report.unparseable_confidences] == [records[0]["id"]]
    assert [u["id"] for u in report.unparseable_answers] == [records[5]["id"]]
    by_id = {q.id: q for q in questions}
    train_correct = [cm.check_answer(by_id[r["id"]], r["answer"]).correct for r in records
                     if by_id[r["id"]].group == cm.ADD_SUBTRACT]
    c = float(np.mean(train_correct))
    for g in cm.GROUPS:
        rows = [(cm.check_answer(by_id[r["id"]], r["answer"]).correct, cm.parse_confidence(r["confidence"]))
                for r in records if by_id[r["id"]].group == g]
        y = np.array([ok for ok, p in rows if p.ok], dtype=float)
        p = np.array([p.value for ok, p in rows if p.ok])
        res = report.groups[g]
        assert res.n == len(rows) and res.n_scored == len(y)
        assert res.mse == pytest.approx(100 * np.mean((y - p) ** 2))
        assert res.mad == pytest.approx(calibration.calibratedmath_mad(p, y))
        assert res.accuracy == pytest.approx(y.mean())
        # the constant baseline: one constant (training-group accuracy) for every question
        a = y.mean()
        assert res.baseline_constant == pytest.approx(c)
        assert res.baseline_mse == pytest.approx(100 * (a * (1 - a) + (a - c) ** 2))
        assert res.baseline_mad == pytest.approx(100 * abs(a - c))
        assert res.group_constant_mse == pytest.approx(100 * a * (1 - a))
    assert "training-group" in report.baseline_note
    # the same through a JSONL file
    path = tmp_path / "outputs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert cm.evaluate_outputs(path).table() == report.table()
    given = cm.evaluate_outputs(records, questions=questions, constant_confidence=0.5)
    assert given.groups[cm.MULTI_ANSWER].baseline_constant == 0.5


def test_report_series_and_reliability_per_group(questions):
    records = _fake_outputs(questions)
    records[0]["confidence"] = "dunno"
    report = cm.evaluate_outputs(records)
    series = report.series()
    assert list(series) == list(report.groups)
    for g, (conf, correct) in series.items():
        res = report.groups[g]
        assert conf.size == correct.size == res.n_scored
        assert calibration.calibratedmath_mse(conf, correct) == pytest.approx(res.mse)
        assert calibration.calibratedmath_mad(conf, correct) == pytest.approx(res.mad)
        bins = report.reliability(g)
        nz = bins.count > 0
        # MAD is the unweighted mean gap over the non-empty quantile bins of this table
        assert 100 * np.mean(np.abs(bins.accuracy[nz] - bins.mean_confidence[nz])) == pytest.approx(res.mad)
    assert cm.ADD_SUBTRACT not in report.series(include_training=False)
    with pytest.raises(ValueError, match="no scored records"):
        report.reliability("nope")


def test_evaluate_outputs_with_answer_logprobs(questions):
    sub = [q for q in questions if q.group != cm.ADD_SUBTRACT][:40]
    records = [{"id": q.id, "answer": q.example_answer if i % 3 else "0", "logprob": math.log(0.2 + 0.015 * i)}
               for i, q in enumerate(sub)]
    report = cm.evaluate_outputs(records)
    assert report.confidence_source == "logprob"
    assert all(math.isnan(g.baseline_mse) for g in report.groups.values())  # no training records, no constant
    recs = [r for r in report.records]
    y = np.array([r["correct"] for r in recs if r["group"] == cm.MULTIPLY_DIVIDE], dtype=float)
    p = np.array([r["confidence"] for r in recs if r["group"] == cm.MULTIPLY_DIVIDE])
    assert report.groups[cm.MULTIPLY_DIVIDE].mse == pytest.approx(100 * np.mean((y - p) ** 2))
    bad = cm.evaluate_outputs([{"id": sub[0].id, "answer": "1", "logprob": 0.5}])
    assert bad.unparseable_confidences and bad.groups[sub[0].group].n_scored == 0


def test_evaluate_outputs_rejects_bad_records(questions):
    q = questions[0]
    with pytest.raises(ValueError, match="more than once"):
        cm.evaluate_outputs([{"id": q.id, "answer": "1", "confidence": "50%"}] * 2)
    with pytest.raises(ValueError, match="not a CalibratedMath question id"):
        cm.evaluate_outputs([{"id": "nope", "answer": "1", "confidence": "50%"}])
    with pytest.raises(ValueError, match="no 'id'"):
        cm.evaluate_outputs([{"answer": "1", "confidence": "50%"}])
    with pytest.raises(ValueError, match="mix or lack"):
        cm.evaluate_outputs([{"id": q.id, "answer": "1", "confidence": "50%"},
                             {"id": questions[1].id, "answer": "1", "logprob": -1.0}])
    with pytest.raises(ValueError, match="not among the given questions"):
        cm.evaluate_outputs([{"id": q.id, "answer": "1", "confidence": "5%"}], questions=questions[1:3])


def test_subtask_accuracy_targets():
    results = [{"id": "add-1-1/s0/0", "correct": True}, {"id": "add-1-1/s0/1", "correct": False},
               {"id": "add-1-1/s0/2", "correct": True}, {"subtask": "mul-2-3", "correct": False}]
    targets = cm.subtask_accuracy_targets(results)
    assert targets == {"add-1-1": pytest.approx(2 / 3), "mul-2-3": 0.0}
    assert cm.subtask_accuracy_targets(results, as_percent=True) == {"add-1-1": 66, "mul-2-3": 0}
    with pytest.raises(ValueError, match="unknown sub-task"):
        cm.subtask_accuracy_targets([{"subtask": "add-9-9", "correct": True}])
    report = cm.evaluate_outputs(_fake_outputs(cm.generate_questions(1, 4, groups=[cm.ADD_SUBTRACT])))
    assert set(cm.subtask_accuracy_targets(report.records)) == \
        {k for k in cm.SUBTASKS if cm.group_of(k) == cm.ADD_SUBTRACT}


def test_generation_argument_checks():
    with pytest.raises(ValueError, match="unknown groups"):
        cm.generate_questions(groups=["Add"])
    with pytest.raises(ValueError, match="seed"):
        cm.generate_questions(seed=-1)
    with pytest.raises(ValueError, match="n_per_subtask"):
        cm.generate_questions(n_per_subtask=0)
    q = cm.question_from_id("pct-4-4-comma/s3/12")
    assert replace(q) == cm.generate_questions(3, 13, subtasks=["pct-4-4-comma"])[12]
