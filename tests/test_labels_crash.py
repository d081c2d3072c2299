"""Crash safety and multi-process concurrency of workbench.preferences.labels (real processes, SIGKILL)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from workbench.preferences.labels import LabelStore

REPO_ROOT = Path(__file__).resolve().parents[1]

# Labels as fast as it can; prints a label id only AFTER submit() has returned (= acknowledged).
LABELER = """
import random, sys
from workbench.preferences.labels import LabelStore
store = LabelStore(sys.argv[1])
labelers = ["l0", "l1", "l2"]
rng = random.Random()
k = 0
while True:
    labeler = labelers[k % 3]
    k += 1
    a = store.next_item("c", labeler)
    if a is None:
        continue
    lid = store.submit(a.id, labeler, rng.choice(["left", "right", "equal", "cant_tell", "skip"]),
                       comment="x" * rng.randint(0, 300))
    print(lid, flush=True)
"""

IMPORTER = """
import sys
from workbench.preferences.labels import LabelStore
n = LabelStore(sys.argv[1]).import_jsonl(sys.argv[2])
print("IMPORTED", n, flush=True)
"""


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _check_database(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the queue's counter agrees with the labels, and no item exceeds its overlap
    bad = conn.execute("""
        SELECT i.id FROM items i JOIN campaigns c ON c.name = i.campaign
        WHERE i.queue_labels != (SELECT COUNT(*) FROM labels l WHERE l.item_id = i.id AND l.origin = 'queue'
                                 AND l.undone_at IS NULL) OR i.queue_labels > c.overlap
           OR i.full != (i.queue_labels >= c.overlap)""").fetchall()
    assert bad == []
    return conn


@pytest.mark.slow
def test_acknowledged_labels_survive_sigkill(tmp_path):
    store = LabelStore(tmp_path)
    store.create_campaign("c", "text_pair", overlap=3)
    store.add_items("c", [{"prompt": f"p{i}", "a": f"a{i}", "b": f"b{i}"} for i in range(20_000)])
    store.close()
    rng = random.Random(0)
    acknowledged: list[int] = []
    deadline = time.monotonic() + 45
    kills = 0
    while kills < 20 and time.monotonic() < deadline:
        proc = _python(LABELER, str(tmp_path))
        first = proc.stdout.readline()  # the child is labeling once it has acknowledged one label
        assert first.strip().isdigit(), proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        lines = (first + rest).split("\n")
        # the last line may be cut off mid-write: only whole lines were acknowledged
        acknowledged += [int(x) for x in lines[:-1] if x.strip()]
        kills += 1
        conn = _check_database(tmp_path / "labels.sqlite")
        present = {r[0] for r in conn.execute("SELECT id FROM labels WHERE undone_at IS NULL")}
        conn.close()
        missing = set(acknowledged) - present
        assert not missing, f"acknowledged labels lost after kill {kills}: {sorted(missing)[:10]}"
    assert kills >= 10, f"only {kills} kills in the time budget"
    assert len(acknowledged) == len(set(acknowledged)) > kills
    # the store still works after all that
    reopened = LabelStore(tmp_path)
    a = reopened.next_item("c", "after")
    assert reopened.submit(a.id, "after", "left") > max(acknowledged)


@pytest.mark.slow
def test_import_killed_midway_is_all_or_nothing(tmp_path):
    # A hand-written file in the export schema with only the required fields (the rest default).
    n_rows = 4000
    export = tmp_path / "c.jsonl"
    export.write_text("".join(
        json.dumps({"campaign": "c", "kind": "text_pair", "item": {"prompt": f"p{i}", "a": "x" * 300, "b": "y" * 300},
                    "labeler": "gold", "choice": "left" if i % 2 else "right", "source": "synthetic:gold",
                    "submitted_at": 1.7e9 + i}) + "\n" for i in range(n_rows)))
    t0 = time.monotonic()
    assert LabelStore(tmp_path / "timing").import_jsonl(export) == n_rows
    import_s = time.monotonic() - t0
    rng = random.Random(1)
    outcomes = Counter()
    for attempt in range(8):
        target = tmp_path / f"dst{attempt}"
        proc = _python(IMPORTER, str(target), str(export))
        while not (target / "labels.sqlite").exists() and proc.poll() is None:
            time.sleep(0.002)  # the child has imported Python and opened the store
        time.sleep(rng.uniform(0.0, 1.3 * import_s))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        conn = sqlite3.connect(target / "labels.sqlite")
        has_schema = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'labels'").fetchone()[0]
        conn.close()
        if not has_schema:  # killed while the store was being created
            outcomes["not started"] += 1
            continue
        conn = _check_database(target / "labels.sqlite")
        n = conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        n_items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        n_campaigns = conn.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0]
        conn.close()
        assert (n, n_items, n_campaigns) in ((0, 0, 0), (n_rows, n_rows, 1)), (n, n_items, n_campaigns)
        assert ("IMPORTED" in out) <= (n == n_rows)  # acknowledged => all there
        outcomes["all" if n else "nothing"] += 1
    assert outcomes["all"] + outcomes["nothing"] >= 4, outcomes


WORKER = """
import json, random, sys, time
from pathlib import Path
from workbench.preferences.labels import LabelStore
root, me, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = LabelStore(root)
labelers = [me + "a", me + "b"]
Path(root, "ready-" + me).touch()
while not go.exists():
    time.sleep(0.005)
rng = random.Random(me)
done = {l: False for l in labelers}
submitted, undone = 0, 0
while not all(done.values()):
    for labeler in labelers:
        if done[labeler]:
            continue
        a = store.next_item("c", labeler)
        if a is None:
            done[labeler] = True
            continue
        store.submit(a.id, labeler, rng.choice(["left", "right", "equal"]))
        submitted += 1
        if rng.random() < 0.1 and store.undo_last("c", labeler):
            undone += 1
        time.sleep(rng.uniform(0, 0.004))  # a (very fast) labeler's think time lets the others in
print(json.dumps({"submitted": submitted, "undone": undone}), flush=True)
"""


@pytest.mark.slow
def test_several_processes_label_one_campaign(tmp_path):
    n_items, overlap, n_procs = 60, 2, 4
    store = LabelStore(tmp_path)
    store.create_campaign("c", "text_pair", overlap=overlap)
    store.add_items("c", [{"prompt": f"p{i}", "a": f"a{i}", "b": f"b{i}"} for i in range(n_items)])
    go = tmp_path / "go"
    procs = [_python(WORKER, str(tmp_path), f"p{i}", str(go)) for i in range(n_procs)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < n_procs:  # start them all at once
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    conn = _check_database(tmp_path / "labels.sqlite")
    live = conn.execute("SELECT item_id, labeler FROM labels WHERE undone_at IS NULL").fetchall()
    per_item = Counter(item for item, _ in live)
    # every item got exactly `overlap` labels (8 labelers >= 2), none twice from one labeler
    assert sorted(per_item.values()) == [overlap] * n_items
    assert len(set(live)) == len(live)
    # the counts add up: submitted - undone = live labels = items x overlap
    submitted = sum(r["submitted"] for r in results)
    undone = sum(r["undone"] for r in results)
    assert submitted - undone == len(live) == n_items * overlap
    assert conn.execute("SELECT COUNT(*) FROM labels WHERE undone_at IS NOT NULL").fetchone()[0] == undone
    # work was actually shared between the processes
    by_proc = Counter(labeler[:2] for _, labeler in live)
    assert len(by_proc) >= 2, by_proc
    assert store.progress("c") == {"labeled": n_items * overlap, "assigned": 0, "items": n_items,
                                   "target": n_items * overlap}
    conn.close()
