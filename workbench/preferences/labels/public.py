"""Public preference data in and out: :meth:`PublicData.import_public` reads the published formats of
:mod:`workbench.preferences.labels.formats` into items plus labels (``source = "imported:<format>"``), and
:meth:`PublicData.export_trl` writes the ``prompt``/``chosen``/``rejected`` dataset TRL's RewardTrainer reads."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

from workbench.preferences.labels.formats import adapt_rows, read_rows
from workbench.preferences.labels.records import UnknownCampaignError
from workbench.preferences.labels.validation import (
    _name,
    _payload_json,
    _validate_answer,
    validate_payload,
)
from workbench.storage.durable import atomic_write

TRL_LABELS = ("raw", "adjudicated")


class PublicData:
    """Public-format import and TRL-form export methods of :class:`~workbench.preferences.labels.LabelStore`."""

    def import_public(self, path: str | os.PathLike, campaign: str, *, fmt: str | None = None,
                      items_only: bool = False, labeler: str | None = None, overlap: int = 1,
                      **campaign_args) -> dict:
        """Import a published preference file (``fmt`` or detected) into ``campaign`` (created if needed).

        Items are matched by payload (an existing item of the campaign is reused). Each row's answer becomes
        a direct label with ``source = "imported:<format>"`` and labeler = the row's own (``worker`` /
        ``labeler``) else ``labeler`` else the format name; the same item answered again by the same labeler
        in the file is labeler ``"NAME#2"``, ``"NAME#3"``, ... (a repeated comparison is another anonymous
        labeler). ``items_only``: the items, no labels (to relabel them). All or nothing: every row is checked
        first, a bad one raises ValueError naming its line and field. ``campaign_args`` (``guidelines_md``,
        ``flags``, ``meta``, ...) configure a new campaign. Returns counts and the format.
        """
        path = Path(path)
        fmt, rows = adapt_rows(read_rows(path), fmt, path)
        kind = rows[0][1].kind
        graded = any(r.scale is not None for _, r in rows) and not items_only
        try:
            camp, new = self.get_campaign(campaign), False
        except UnknownCampaignError:
            meta = {"imported_from": path.name, "format": fmt, **(campaign_args.pop("meta", None) or {})}
            graded = (graded or campaign_args.pop("graded_scale", False)) and kind != "ranking"
            camp = self._campaign_from_args(campaign, kind, overlap=overlap, graded_scale=graded, meta=meta,
                                            **campaign_args)
            new = True
        if camp.kind != kind:
            raise ValueError(f"campaign {camp.name!r} is a {camp.kind} campaign; {path.name} ({fmt}) holds "
                             f"{kind} items")
        source = f"imported:{fmt}"
        base = None if labeler is None else _name("labeler", labeler)
        prepared, seen = [], Counter()
        for line, r in rows:
            where = f"{path}: line {line}"
            try:
                payload = validate_payload(kind, r.payload, "item")
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
            text = _payload_json(payload)
            answer, who = None, None
            if not items_only:
                who = r.labeler or base or fmt
                seen[(text, who)] += 1
                if seen[(text, who)] > 1:
                    who = f"{who}#{seen[(text, who)]}"
                n = len(payload["responses"]) if kind == "ranking" else 2
                try:
                    answer = _validate_answer(camp, n, False, list(range(n)), r.choice, r.scale, r.ranking, [],
                                              r.comment, source)
                except ValueError as e:
                    raise ValueError(f"{where}: field {getattr(e, 'field', 'choice')!r}: {e}") from None
            prepared.append((where, text, answer, who))
        now = time.time()
        n_items = n_labels = 0
        with self._write(durable=True) as conn:
            if new:
                try:
                    self._insert_campaign(conn, camp)
                except sqlite3.IntegrityError:
                    raise ValueError(f"campaign {camp.name!r} was created while importing; retry") from None
            item_ids = {text: item_id for item_id, text in conn.execute(
                "SELECT id, payload FROM items WHERE campaign = ? ORDER BY id DESC", (camp.name,))}
            for where, text, answer, who in prepared:
                if text not in item_ids:
                    item_ids[text] = conn.execute(
                        "INSERT INTO items (campaign, payload, created_at) VALUES (?, ?, ?) RETURNING id",
                        (camp.name, text, now)).fetchone()[0]
                    n_items += 1
                if answer is not None:
                    n = len(json.loads(text)["responses"]) if kind == "ranking" else 2
                    try:
                        self._insert_label(conn, camp.name, item_ids[text], who, answer, origin="direct",
                                           assignment_id=None, swapped=False, order=list(range(n)), started_at=None,
                                           submitted_at=now)
                    except ValueError as e:
                        raise ValueError(f"{where}: field 'labeler': {e} (was this file imported already?)") from None
                    n_labels += 1
        self._campaign_cache.pop(camp.name, None)
        return {"format": fmt, "kind": kind, "rows": len(rows), "items": n_items, "labels": n_labels,
                "campaign": camp.name}

    def trl_rows(self, campaign: str, *, labels: str = "raw") -> list[dict]:
        """``{"prompt", "chosen", "rejected"}`` rows: one per raw label preferring ``a`` or ``b`` (a ranking
        gives its C(K, 2) pairs), or with ``labels="adjudicated"`` one per adjudicated item. Equal, can't-tell
        and skipped answers have no chosen side and are left out. Items imported from conversational TRL data
        give their message lists back (when every item has them); otherwise plain text."""
        camp = self.get_campaign(campaign)
        if camp.kind not in ("text_pair", "ranking"):
            raise ValueError(f"the TRL form holds text; campaign {campaign!r} is a {camp.kind} campaign")
        if labels not in TRL_LABELS:
            raise ValueError(f"labels must be one of {TRL_LABELS}, got {labels!r}")
        if labels == "adjudicated":
            answers = [(self._item_payload(a.item_id), a.preferred, a.ranking)
                       for a in self.adjudications(campaign).values()]
        else:
            answers = [(lab.payload, lab.preferred, lab.ranking) for lab in self.labels(campaign)]
        conversational = bool(answers) and all("messages" in p.get("meta", {}) for p, _, _ in answers)
        rows = []
        for payload, preferred, ranking in answers:
            if ranking is not None:
                rank_of = {idx: r for r, idx in enumerate(ranking)}
                for i, j in combinations(range(len(ranking)), 2):
                    win, lose = (i, j) if rank_of[i] < rank_of[j] else (j, i)
                    rows.append({"prompt": payload["prompt"], "chosen": payload["responses"][win],
                                 "rejected": payload["responses"][lose]})
            elif preferred in ("a", "b"):
                win, lose = ("a", "b") if preferred == "a" else ("b", "a")
                if conversational:
                    m = payload["meta"]["messages"]
                    rows.append({"prompt": m["prompt"], "chosen": m[win], "rejected": m[lose]})
                else:
                    rows.append({"prompt": payload["prompt"], "chosen": payload[win], "rejected": payload[lose]})
        return rows

    def _item_payload(self, item_id: int) -> dict:
        row = self._conn().execute("SELECT payload FROM items WHERE id = ?", (item_id,)).fetchone()
        return json.loads(row[0])

    def export_trl(self, campaign: str, path: str | os.PathLike, *, fmt: str | None = None,
                   labels: str = "raw") -> int:
        """Write :meth:`trl_rows` as JSON Lines or Parquet (``fmt``, else from the suffix), atomically; what
        ``datasets.load_dataset("json" | "parquet", data_files=PATH)`` loads for TRL's RewardTrainer."""
        path = Path(path)
        fmt = fmt or ("parquet" if path.suffix == ".parquet" else "jsonl")
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"format must be 'jsonl' or 'parquet', got {fmt!r}")
        rows = self.trl_rows(campaign, labels=labels)
        if fmt == "jsonl":
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
            atomic_write(path, lambda f: f.write(data))
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as e:
                raise RuntimeError(f"Parquet export needs a working pyarrow ({e}); JSON Lines works without it") from e
            text = pa.string()
            column = (pa.list_(pa.struct([("content", text), ("role", text)]))
                      if rows and isinstance(rows[0]["prompt"], list) else text)
            schema = pa.schema([("prompt", column), ("chosen", column), ("rejected", column)])
            table = pa.Table.from_pylist(rows, schema=schema)
            atomic_write(path, lambda f: pq.write_table(table, f))
        return len(rows)
