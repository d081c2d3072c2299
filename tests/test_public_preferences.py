"""Published preference data in (TRL, HH-RLHF, WebGPT, summarize-from-feedback, rankings), the TRL-form export
read back the way a TRL user loads it (the `datasets` library), and admin adjudication beside the raw labels."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest

from workbench.preferences.labels import LabelStore
from workbench.preferences.labels.formats import detect_format

DATA = Path(__file__).resolve().parent / "data" / "public"
FILES = {  # example file -> the format its fields name
    "trl_standard.jsonl": "trl", "trl_implicit.jsonl": "trl", "trl_conversational.jsonl": "trl",
    "trl_conversational_implicit.jsonl": "trl", "hh_rlhf.jsonl": "hh_rlhf",
    "webgpt_comparisons.jsonl": "webgpt", "summarize_from_feedback.jsonl": "summarize_from_feedback",
    "ranking.jsonl": "ranking",
}


def source_rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def messages_text(m):
    return m if isinstance(m, str) else [(x["role"], x["content"]) for x in m]


def expected_trl(name: str) -> list[tuple]:
    """What the TRL form of each published row must be, computed from the row itself (independently of the
    adapters): (prompt + chosen, prompt + rejected) for the text forms, or the message lists."""
    out = []
    for r in source_rows(name):
        if name.startswith("trl_conversational"):
            prompt = r.get("prompt", [])
            out.append((messages_text(prompt + r["chosen"]), messages_text(prompt + r["rejected"])))
        elif name.startswith(("trl", "hh")):
            out.append((r.get("prompt", "") + r["chosen"], r.get("prompt", "") + r["rejected"]))
        elif name.startswith("webgpt"):
            if r["score_0"] != 0:
                win, lose = ("answer_0", "answer_1") if r["score_0"] > 0 else ("answer_1", "answer_0")
                out.append((r["question"]["full_text"] + r[win], r["question"]["full_text"] + r[lose]))
        elif name.startswith("summarize"):
            texts = [s["text"] for s in r["summaries"]]
            out.append((texts[r["choice"]], texts[1 - r["choice"]]))
        else:
            rank_of = {idx: k for k, idx in enumerate(r["ranking"])}
            for i, j in combinations(range(len(r["responses"])), 2):
                w, lo = (i, j) if rank_of[i] < rank_of[j] else (j, i)
                out.append((r["prompt"] + r["responses"][w], r["prompt"] + r["responses"][lo]))
    return out


def as_pairs(name: str, rows: list[dict]) -> list[tuple]:
    if name.startswith("trl_conversational"):
        return [(messages_text(r["prompt"] + r["chosen"]), messages_text(r["prompt"] + r["rejected"])) for r in rows]
    if name.startswith("summarize"):
        return [(r["chosen"], r["rejected"]) for r in rows]
    return [(r["prompt"] + r["chosen"], r["prompt"] + r["rejected"]) for r in rows]


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "store")
    yield s
    s.close()


@pytest.mark.parametrize("name", sorted(FILES))
def test_public_file_detected_imported_and_exported_in_trl_form(store, tmp_path, name):
    assert detect_format(source_rows(name)[0]) == FILES[name]
    report = store.import_public(DATA / name, "c")
    assert report["format"] == FILES[name] and report["labels"] == len(source_rows(name))
    assert {lab.source for lab in store.labels("c")} == {f"imported:{FILES[name]}"}
    for fmt in ("jsonl", "parquet"):
        out = tmp_path / f"trl.{fmt}"
        store.export_trl("c", out)
        datasets = pytest.importorskip("datasets")  # how a TRL user loads a preference dataset
        loaded = datasets.load_dataset("json" if fmt == "jsonl" else "parquet", data_files=str(out), split="train",
                                       cache_dir=str(tmp_path / "hf_cache"))
        assert loaded.column_names == ["prompt", "chosen", "rejected"]
        assert as_pairs(name, list(loaded)) == expected_trl(name)
    # Round trip: the TRL export imports back (as TRL data) and exports the same rows.
    store.import_public(tmp_path / "trl.jsonl", "again")
    assert store.trl_rows("again") == store.trl_rows("c")
    store.import_public(tmp_path / "trl.parquet", "again_parquet")  # TRL datasets are published as Parquet
    assert store.trl_rows("again_parquet") == store.trl_rows("c")


def test_gzipped_json_lines_as_hh_rlhf_publishes_them(store, tmp_path):
    import gzip

    packed = tmp_path / "train.jsonl.gz"
    packed.write_bytes(gzip.compress((DATA / "hh_rlhf.jsonl").read_bytes()))
    assert store.import_public(packed, "hh")["format"] == "hh_rlhf"
    assert [lab.payload["a"] for lab in store.labels("hh")] == [" Put it in boiling water for nine minutes.", " 4."]
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not gzip"):
        store.import_public(broken, "x")


def test_items_only_imports_no_labels(store):
    report = store.import_public(DATA / "hh_rlhf.jsonl", "relabel", items_only=True)
    assert report["items"] == 2 and report["labels"] == 0 and store.labels("relabel") == []
    assert store.progress("relabel")["items"] == 2


def test_webgpt_scores_become_the_graded_scale(store):
    store.import_public(DATA / "webgpt_comparisons.jsonl", "w")
    assert store.get_campaign("w").graded_scale
    for lab, row in zip(store.labels("w"), source_rows("webgpt_comparisons.jsonl")):
        assert lab.scale / 3 == pytest.approx(-row["score_0"])  # canonical: negative = a (answer_0) better
        assert lab.preferred == ("a" if row["score_0"] > 0 else "b" if row["score_0"] < 0 else "equal")


def test_summarize_workers_are_labelers_and_repeats_get_their_own_name(store, tmp_path):
    store.import_public(DATA / "summarize_from_feedback.jsonl", "s")
    assert store.labelers("s") == ["w1", "w2"]
    twice = tmp_path / "twice.jsonl"
    row = source_rows("trl_standard.jsonl")[0]
    twice.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    store.import_public(twice, "t", labeler="crowd")
    assert [lab.labeler for lab in store.labels("t")] == ["crowd", "crowd#2"]
    with pytest.raises(ValueError, match="imported already"):  # the same file again is refused, nothing added
        store.import_public(twice, "t", labeler="crowd")
    assert len(store.labels("t")) == 2


@pytest.mark.parametrize("lines, fmt, message", [
    (['{"prompt": "p", "chosen": " a", "rejected": " b"}', '{"prompt": "p", "chosen": 3, "rejected": "b"}'],
     None, "line 2: field 'chosen'"),
    (['{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: x", "rejected": "totally different"}'], None,
     "line 1: field 'chosen'.*Assistant"),
    (['{"question": {"full_text": "q"}, "answer_0": "x", "answer_1": "y", "score_0": 0.5, "score_1": 0.5}'], None,
     "line 1: field 'score_1'"),
    (['{"info": {"post": "p"}, "summaries": [{"text": "x"}, {"text": "y"}], "choice": 2}'], None,
     "line 1: field 'choice'"),
    (['{"prompt": "p", "responses": ["x", "y", "z"], "ranking": [0, 0, 1]}'], None, "line 1: field 'ranking'"),
    (['{"foo": 1}'], None, "match no known format"),
    (['{"prompt": "p", "chosen": " a", "rejected": " b"}'], "webgpt", "line 1: field 'question'"),
])
def test_bad_rows_name_line_and_field_and_import_nothing(store, tmp_path, lines, fmt, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        store.import_public(path, "bad", fmt=fmt)
    assert store.list_campaigns() == []


def test_adjudicated_label_exports_beside_the_raw_ones(store, tmp_path):
    store.import_public(DATA / "summarize_from_feedback.jsonl", "s")
    disputed = store.disagreements("s")
    assert [d.answers for d in disputed] == [{"w1": "a", "w2": "b"}]
    item = disputed[0].item_id
    raw_before = store.export_rows("s")
    with pytest.raises(ValueError, match="preferred 'a', 'b' or 'equal'"):
        store.adjudicate("s", item, "admin", "left")
    store.adjudicate("s", item, "admin", "b", comment="first try")
    store.adjudicate("s", item, "admin", "a", comment="the longer summary is accurate")  # supersedes, kept
    rows = store.export_rows("s")
    assert [{k: v for k, v in r.items() if k != "adjudication"} for r in rows] == \
        [{k: v for k, v in r.items() if k != "adjudication"} for r in raw_before]  # raw labels untouched
    on_item = [r for r in rows if r["item_id"] == item]
    assert [r["preferred"] for r in on_item] == ["a", "b"]
    assert all(r["adjudication"]["preferred"] == "a" and r["adjudication"]["admin"] == "admin" for r in on_item)
    assert all(r["adjudication"] is None for r in rows if r["item_id"] != item)
    assert store.disagreements("s", include_resolved=False) == []
    store.export_parquet("s", tmp_path / "labels.parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "labels.parquet").to_pylist()
    assert [json.loads(r["adjudication"])["preferred"] if r["adjudication"] else None for r in table] == \
        [r["adjudication"]["preferred"] if r["adjudication"] else None for r in rows]
    assert store.trl_rows("s", labels="adjudicated") == [
        {"prompt": on_item[0]["prompt"], "chosen": on_item[0]["item"]["a"], "rejected": on_item[0]["item"]["b"]}]
    # The export with its adjudication column still imports (the raw labels; adjudications are not imported).
    store.export_jsonl("s", tmp_path / "labels.jsonl")
    assert LabelStore(tmp_path / "other").import_jsonl(tmp_path / "labels.jsonl") == 3


def test_cli_imports_public_file_and_exports_trl(tmp_path, capsys):
    from workbench.cli.main import main

    root = str(tmp_path / "s")
    assert main(["--store", root, "labels", "import", str(DATA / "summarize_from_feedback.jsonl")]) == 0
    assert "3 summarize_from_feedback rows" in capsys.readouterr().out
    assert main(["--store", root, "labels", "stats", "summarize_from_feedback"]) == 0
    out = capsys.readouterr().out
    assert "Krippendorff's alpha" in out and "disagree on: 1" in out
    assert main(["--store", root, "labels", "export", "summarize_from_feedback", "--format", "trl-jsonl",
                 "--out", str(tmp_path / "t.jsonl")]) == 0
    assert [json.loads(x)["chosen"] for x in (tmp_path / "t.jsonl").read_text().splitlines()] == \
        [e[0] for e in expected_trl("summarize_from_feedback.jsonl")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"info": {"post": "p"}, "summaries": [], "choice": 0}\n')
    assert main(["--store", root, "labels", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 1: field 'summaries'" in err and "Traceback" not in err


def test_a_version_1_store_is_upgraded_in_place_keeping_its_labels(tmp_path):
    import sqlite3

    from workbench.preferences.labels import SCHEMA_VERSION

    old = LabelStore(tmp_path)
    old.import_public(DATA / "summarize_from_feedback.jsonl", "s")
    old.close()
    conn = sqlite3.connect(tmp_path / "labels.sqlite")  # make it what version 1 wrote: no adjudications table
    conn.execute("DROP TABLE adjudications")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    upgraded = LabelStore(tmp_path)
    assert len(upgraded.labels("s")) == 3 and upgraded.adjudications("s") == {}
    [dispute] = upgraded.disagreements("s")
    upgraded.adjudicate("s", dispute.item_id, "admin", "equal")
    conn = sqlite3.connect(tmp_path / "labels.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()
