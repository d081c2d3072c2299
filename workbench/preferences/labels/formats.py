"""Public preference datasets as published: one adapter per format turns a row into a canonical item payload
plus the published answer (docs/labels_schema.md, "Public formats", gives every mapping).

Formats (detected from a row's fields by :func:`detect_format`, or named):

* ``trl``: TRL's preference type (huggingface.co/docs/trl "Dataset formats"): ``prompt``/``chosen``/``rejected``,
  plain text or conversational (lists of ``{"role", "content"}`` messages), or the implicit-prompt form
  (``chosen``/``rejected`` only; the shared beginning is the prompt, as TRL's ``extract_prompt`` does).
* ``hh_rlhf``: Anthropic HH-RLHF (arXiv 2204.05862): ``chosen``/``rejected`` transcripts
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` sharing everything up to the last Assistant turn: that is the prompt.
* ``webgpt``: OpenAI WebGPT comparisons (arXiv 2112.09332): ``question.full_text``, ``answer_0``/``answer_1``
  and ``score_0``/``score_1`` in [-1, 1] (summing to 0; positive = preferred; 0 = equal): the graded scale.
* ``summarize_from_feedback``: OpenAI summarize-from-feedback comparisons (arXiv 2009.01325): ``info`` (the
  post or article), ``summaries`` (two ``{"text", "policy", "note"}``), ``choice`` (0/1), ``worker``.
* ``ranking``: K responses ranked by one labeler: ``prompt``, ``responses`` (K = 2..9), ``ranking`` (indices
  into ``responses``, best first; InstructGPT arXiv 2203.02155 ranks K = 4..9), optional ``labeler``.

An adapter returns a :class:`PublicRow`: the campaign kind, the canonical payload (``a`` = the first / chosen
response) and the answer in canonical terms (as ``label_direct`` takes it), or raises ValueError naming the
field. Reading the file (JSON Lines, ``.jsonl.gz`` or Parquet) is :func:`read_rows`.
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.storage.durable import input_file, parse_jsonl, read_jsonl

HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


@dataclass(frozen=True)
class PublicRow:
    """One published comparison: ``kind`` ("text_pair" / "ranking"), canonical ``payload`` and the answer
    (``choice`` "left" = a / "right" = b / "equal", or ``ranking`` canonical best first; ``scale`` canonical
    -3..3, negative = a better), with the labeler named in the row (None: the file names none)."""

    kind: str
    payload: dict
    choice: str | None = None
    scale: int | None = None
    ranking: list[int] | None = None
    labeler: str | None = None
    comment: str = ""
    meta: dict = field(default_factory=dict)


def _need(row: dict, name: str, types: type | tuple, what: str) -> Any:
    if name not in row:
        raise ValueError(f"field {name!r}: missing (required: {what})")
    value = row[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise ValueError(f"field {name!r}: must be {what}, got {type(value).__name__}: {str(value)[:60]!r}")
    return value


def _messages(name: str, value: Any) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                              and isinstance(m.get("content"), str) for m in value):
        raise ValueError(f"field {name!r}: a conversational column must be a list of {{'role': str, 'content': str}} "
                         f"messages, got {str(value)[:80]!r}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def render_messages(messages: list[dict]) -> str:
    """Messages as one text, a turn per paragraph: ``"role: content"`` (what a labeler reads)."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _text_prefix(chosen: str, rejected: str) -> str:
    """The implicit prompt of two plain texts: their common beginning, cut back to a whitespace so a word is
    never split (the completion keeps its leading space, as in TRL's examples)."""
    n = 0
    for x, y in zip(chosen, rejected):
        if x != y:
            break
        n += 1
    if n == len(chosen) == len(rejected):
        return ""  # identical texts: nothing tells prompt from response
    cut = max(chosen.rfind(c, 0, n + 1) for c in " \n\t")
    return chosen[:cut] if cut > 0 else ""


def trl_row(row: dict) -> PublicRow:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    conversational = isinstance(chosen, list) or isinstance(rejected, list) or isinstance(row.get("prompt"), list)
    if conversational:
        chosen, rejected = _messages("chosen", chosen), _messages("rejected", rejected)
        if "prompt" in row:
            prompt = _messages("prompt", row["prompt"])
        else:  # implicit prompt: the leading messages both share
            n = 0
            while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
                n += 1
            prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
        meta = {"format": "trl", "messages": {"prompt": prompt, "a": chosen, "b": rejected}}
        payload = {"prompt": render_messages(prompt), "a": render_messages(chosen), "b": render_messages(rejected),
                   "meta": meta}
    else:
        chosen = _need(row, "chosen", str, "a string or a list of messages")
        rejected = _need(row, "rejected", str, "a string or a list of messages")
        if "prompt" in row:
            prompt = _need(row, "prompt", str, "a string or a list of messages")
            meta = {"format": "trl"}
        else:
            prompt = _text_prefix(chosen, rejected)
            chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]
            meta = {"format": "trl", "implicit_prompt": True}
        payload = {"prompt": prompt, "a": chosen, "b": rejected, "meta": meta}
    return PublicRow("text_pair", payload, choice="left")


def hh_rlhf_row(row: dict) -> PublicRow:
    chosen = _need(row, "chosen", str, "an HH-RLHF transcript string")
    rejected = _need(row, "rejected", str, "an HH-RLHF transcript string")
    n = 0
    for x, y in zip(chosen, rejected):
        if x != y:
            break
        n += 1
    cut = chosen.rfind(HH_ASSISTANT, 0, n)
    if cut < 0:
        raise ValueError(f"field 'chosen': an HH-RLHF transcript has '\\n\\nHuman: ...\\n\\nAssistant: ...' turns "
                         f"and shares everything up to its last Assistant turn with 'rejected'; got "
                         f"{chosen[:60]!r} and {rejected[:60]!r}")
    prompt = chosen[:cut + len(HH_ASSISTANT)]
    payload = {"prompt": prompt, "a": chosen[len(prompt):], "b": rejected[len(prompt):],
               "meta": {"format": "hh_rlhf"}}
    return PublicRow("text_pair", payload, choice="left")


def webgpt_row(row: dict) -> PublicRow:
    question = _need(row, "question", (dict, str), "an object with 'full_text' (or a string)")
    if isinstance(question, dict):
        text = question.get("full_text")
        if not isinstance(text, str):
            raise ValueError(f"field 'question': must have 'full_text' (a string), got keys {sorted(question)}")
        meta = {"format": "webgpt", **{k: question[k] for k in ("id", "dataset") if isinstance(question.get(k), str)}}
    else:
        text, meta = question, {"format": "webgpt"}
    a = _need(row, "answer_0", str, "a string")
    b = _need(row, "answer_1", str, "a string")
    s0 = _need(row, "score_0", (int, float), "a number in [-1, 1]")
    s1 = row.get("score_1", -s0)
    if not (math.isfinite(s0) and -1 <= s0 <= 1):
        raise ValueError(f"field 'score_0': must be a number in [-1, 1], got {s0!r}")
    if isinstance(s1, bool) or not isinstance(s1, (int, float)) or not math.isclose(s0 + s1, 0, abs_tol=1e-9):
        raise ValueError(f"field 'score_1': must be -score_0 (WebGPT scores sum to 0), got {s1!r} with score_0 {s0!r}")
    # score_0 > 0: answer_0 (= a) preferred. The 7-point scale released as score = scale / 3 (with negative
    # scale = a better, score_0 = -scale / 3); a score off that grid keeps only its sign, the number in the comment.
    grid = -3 * s0
    on_grid = math.isclose(grid, round(grid), abs_tol=1e-6)
    choice = "left" if s0 > 0 else "right" if s0 < 0 else "equal"
    return PublicRow("text_pair", {"prompt": text, "a": a, "b": b, "meta": meta}, choice=choice,
                     scale=int(round(grid)) if on_grid else None,
                     comment="" if on_grid else f"score_0 {s0!r}")


def summarize_row(row: dict) -> PublicRow:
    info = _need(row, "info", dict, "an object (the post or article)")
    summaries = _need(row, "summaries", list, "a list of two {'text', 'policy', 'note'}")
    if len(summaries) != 2 or not all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in summaries):
        raise ValueError(f"field 'summaries': must be two objects with a 'text' string, got {str(summaries)[:80]!r}")
    choice = row.get("choice")
    if choice not in (0, 1) or isinstance(choice, bool):
        raise ValueError(f"field 'choice': must be 0 or 1 (the index of the preferred summary), got {choice!r}")
    post = info.get("post") or info.get("article")
    if not isinstance(post, str):
        raise ValueError(f"field 'info': must have 'post' (Reddit TL;DR) or 'article' (CNN/DM) text, "
                         f"got keys {sorted(info)}")
    parts = [f"SUBREDDIT: r/{info['subreddit']}"] if isinstance(info.get("subreddit"), str) else []
    if isinstance(info.get("title"), str):
        parts.append(f"TITLE: {info['title']}")
    parts.append(f"POST: {post}" if info.get("post") else f"ARTICLE: {post}")
    meta = {"format": "summarize_from_feedback", "policies": [s.get("policy") for s in summaries],
            **{k: info[k] for k in ("id", "site") if isinstance(info.get(k), str)}}
    worker = row.get("worker")
    confidence = (row.get("extra") or {}).get("confidence") if isinstance(row.get("extra"), dict) else None
    return PublicRow("text_pair", {"prompt": "\n".join(parts), "a": summaries[0]["text"], "b": summaries[1]["text"],
                                   "meta": meta}, choice="left" if choice == 0 else "right",
                     labeler=worker if isinstance(worker, str) and worker else None,
                     comment="" if confidence is None else f"confidence {confidence}")


def ranking_row(row: dict) -> PublicRow:
    prompt = _need(row, "prompt", str, "a string")
    responses = _need(row, "responses", list, "a list of 2 to 9 strings")
    ranking = _need(row, "ranking", list, "indices into 'responses', best first")
    if sorted(ranking) != list(range(len(responses))) or any(isinstance(r, bool) for r in ranking):
        raise ValueError(f"field 'ranking': must list every index 0..{len(responses) - 1} of 'responses' once, "
                         f"best first, got {ranking!r}")
    labeler = row.get("labeler")
    return PublicRow("ranking", {"prompt": prompt, "responses": responses, "meta": {"format": "ranking"}},
                     ranking=[int(r) for r in ranking], labeler=labeler if isinstance(labeler, str) else None)


ADAPTERS: dict[str, Callable[[dict], PublicRow]] = {
    "trl": trl_row, "hh_rlhf": hh_rlhf_row, "webgpt": webgpt_row, "summarize_from_feedback": summarize_row,
    "ranking": ranking_row,
}
FORMAT_FIELDS = {
    "trl": "prompt/chosen/rejected (text or messages), or chosen/rejected with an implicit prompt",
    "hh_rlhf": "chosen/rejected '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts",
    "webgpt": "question, answer_0/answer_1, score_0/score_1",
    "summarize_from_feedback": "info, summaries, choice (worker)",
    "ranking": "prompt, responses, ranking (labeler)",
}


def detect_format(row: dict) -> str:
    """The public format a row's fields name, or ValueError listing the formats and their fields."""
    keys = set(row)
    if {"info", "summaries", "choice"} <= keys:
        return "summarize_from_feedback"
    if {"question", "answer_0", "answer_1"} <= keys:
        return "webgpt"
    if {"prompt", "responses", "ranking"} <= keys:
        return "ranking"
    if {"chosen", "rejected"} <= keys:
        chosen = row["chosen"]
        if "prompt" not in keys and isinstance(chosen, str) and chosen.startswith(HH_HUMAN) and HH_ASSISTANT in chosen:
            return "hh_rlhf"
        return "trl"
    raise ValueError(f"fields {sorted(keys)[:12]} match no known format; known: "
                     + "; ".join(f"{k} ({v})" for k, v in FORMAT_FIELDS.items()))


def read_rows(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """``(line or row number, object)`` of a JSON Lines file (``.gz`` too) or a Parquet file."""
    path = input_file(path, "preference data file")
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except ImportError as e:
            raise RuntimeError(f"reading Parquet needs a working pyarrow ({e}); convert to JSON Lines") from e
        except Exception as e:  # pyarrow's own errors: not a Parquet file, truncated, ...
            raise ValueError(f"{path}: not a readable Parquet file ({e})") from None
        return list(enumerate(rows, start=1))
    if name.endswith(".gz"):
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError) as e:
            raise ValueError(f"{path}: not gzip-compressed UTF-8 JSON Lines ({e})") from None
        return parse_jsonl(text, path)
    return read_jsonl(path)


def adapt_rows(rows: list[tuple[int, dict]], fmt: str | None,
               where: str | Path) -> tuple[str, list[tuple[int, PublicRow]]]:
    """Every row through one adapter (``fmt``, else the one the first row's fields name); a bad row raises
    ValueError ``"WHERE: line N: field 'X': ..."`` and nothing is returned."""
    if not rows:
        raise ValueError(f"{where}: no rows")
    if fmt is None:
        n, first = rows[0]
        try:
            fmt = detect_format(first)
        except ValueError as e:
            raise ValueError(f"{where}: line {n}: {e}; name the format with --format") from None
    if fmt not in ADAPTERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(ADAPTERS)}")
    out = []
    for n, row in rows:
        try:
            out.append((n, ADAPTERS[fmt](row)))
        except ValueError as e:
            raise ValueError(f"{where}: line {n}: {e}") from None
    kinds = {r.kind for _, r in out}
    if len(kinds) > 1:
        raise ValueError(f"{where}: rows of several kinds {sorted(kinds)}")
    return fmt, out
