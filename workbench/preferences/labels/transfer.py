"""Export and import of a campaign's labels in the schema of docs/labels_schema.md: JSON Lines and Parquet
out (atomic writes), JSON Lines in (every line validated before one transaction writes them all)."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.preferences.labels.records import (
    _MU_A,
    CAMPAIGN_KINDS,
    EXPORT_SCHEMA_VERSION,
    Campaign,
    Label,
    UnknownCampaignError,
)
from workbench.preferences.labels.validation import (
    _AnswerError,
    _is_int,
    _name,
    _payload_json,
    _validate_answer,
    validate_payload,
)
from workbench.storage.durable import atomic_write, read_jsonl


class ExportImport:
    """Export and import methods of :class:`~workbench.preferences.labels.LabelStore`."""

    # ---- export / import (schema: docs/labels_schema.md) ------------------------------------------

    @staticmethod
    def _campaign_config(camp: Campaign) -> dict:
        return {"overlap": camp.overlap, "guidelines_md": camp.guidelines_md, "graded_scale": camp.graded_scale,
                "flags": list(camp.flags), "assignment_timeout_s": camp.assignment_timeout_s,
                "created_at": camp.created_at, "meta": camp.meta}

    def export_rows(self, campaign: str) -> list[dict]:
        """One dict per live label in the export schema (docs/labels_schema.md), oldest first."""
        camp = self.get_campaign(campaign)
        config = self._campaign_config(camp)
        rows = []
        for lab in self.labels(campaign):
            chosen, rejected = lab.chosen_rejected()
            rows.append({
                "schema_version": EXPORT_SCHEMA_VERSION, "label_id": lab.id, "campaign": lab.campaign,
                "kind": lab.kind, "item_id": lab.item_id, "item": lab.payload, "prompt": lab.payload.get("prompt"),
                "chosen": chosen, "rejected": rejected, "labeler": lab.labeler, "source": lab.source,
                "origin": lab.origin, "swapped": lab.swapped, "display_order": lab.display_order,
                "choice": lab.choice, "preferred": lab.preferred, "mu_a": lab.mu_a, "scale_shown": lab.scale_shown,
                "scale": lab.scale, "ranking_shown": lab.ranking_shown, "ranking": lab.ranking,
                "flags": list(lab.flags), "comment": lab.comment, "started_at": lab.started_at,
                "submitted_at": lab.submitted_at, "seconds": lab.seconds, "campaign_config": config,
            })
        return rows

    def export_jsonl(self, campaign: str, path: str | os.PathLike) -> int:
        """Write the campaign's labels as JSON Lines (atomically: temp file + fsync + rename); returns rows."""
        rows = self.export_rows(campaign)
        data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows).encode("utf-8")
        atomic_write(Path(path), lambda f: f.write(data))
        return len(rows)

    def export_parquet(self, campaign: str, path: str | os.PathLike) -> int:
        """Write the campaign's labels as a Parquet file (column types in docs/labels_schema.md); returns rows."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:  # e.g. a pyarrow built for NumPy 2 next to procgen's NumPy 1
            raise RuntimeError(f"Parquet export needs a working pyarrow ({e}); export_jsonl works without it") from e

        camp = self.get_campaign(campaign)
        rows = self.export_rows(campaign)
        if camp.kind == "clip_pair":
            ref = pa.struct([("episode_id", pa.string()), ("start", pa.int64()), ("length", pa.int64())])
        else:
            ref = pa.string()
        schema = pa.schema([
            ("schema_version", pa.int32()), ("label_id", pa.int64()), ("campaign", pa.string()),
            ("kind", pa.string()), ("item_id", pa.int64()), ("item", pa.string()), ("prompt", pa.string()),
            ("chosen", ref), ("rejected", ref), ("labeler", pa.string()), ("source", pa.string()),
            ("origin", pa.string()), ("swapped", pa.bool_()), ("display_order", pa.list_(pa.int64())),
            ("choice", pa.string()), ("preferred", pa.string()), ("mu_a", pa.float64()),
            ("scale_shown", pa.int64()), ("scale", pa.int64()), ("ranking_shown", pa.list_(pa.int64())),
            ("ranking", pa.list_(pa.int64())), ("flags", pa.list_(pa.string())), ("comment", pa.string()),
            ("started_at", pa.float64()), ("submitted_at", pa.float64()), ("seconds", pa.float64()),
            ("campaign_config", pa.string()),
        ])
        flat = [dict(r, item=json.dumps(r["item"], ensure_ascii=False, sort_keys=True),
                     campaign_config=json.dumps(r["campaign_config"], ensure_ascii=False, sort_keys=True))
                for r in rows]
        table = pa.Table.from_pylist(flat, schema=schema)
        atomic_write(Path(path), lambda f: pq.write_table(table, f))
        return len(rows)

    def import_jsonl(self, path: str | os.PathLike, campaign: str | None = None) -> int:
        """Import labels exported by :meth:`export_jsonl` (same schema); returns the number imported.

        Every line is validated before anything is written, and everything is written in one transaction:
        a malformed line raises ValueError naming the line number and the field, and nothing is imported.
        ``campaign`` imports every row into that campaign (else each row's ``campaign``); a missing
        campaign is created from the row's ``campaign_config``. Items are matched by identical payload
        (an existing item of the campaign, or an earlier row), so re-importing into the same store is
        refused (one label per labeler per item) rather than duplicated. Ids are new.
        """
        path = Path(path)
        parsed = read_jsonl(path)
        campaigns: dict[str, Campaign] = {}  # target campaigns (existing, or created in the transaction)
        new_campaigns: list[Campaign] = []
        prepared = []
        for n, row in parsed:
            try:
                prepared.append(self._prepare_import_row(row, campaign, campaigns, new_campaigns))
            except ValueError as e:
                raise ValueError(f"{path}: line {n}: {e}") from None
        with self._write(durable=True) as conn:
            for camp in new_campaigns:
                try:
                    self._insert_campaign(conn, camp)
                except sqlite3.IntegrityError:
                    raise ValueError(f"{path}: campaign {camp.name!r} was created while importing; retry") from None
            item_ids: dict[tuple[str, str], int] = {}
            loaded: set[str] = set()
            now = time.time()
            for (n, _), (camp, payload_text, answer, origin, swapped, order, started_at, submitted_at, labeler) in \
                    zip(parsed, prepared):
                key = (camp.name, payload_text)
                if camp.name not in loaded:  # existing items of the campaign, matched by payload in one pass
                    loaded.add(camp.name)
                    for item_id, text in conn.execute("SELECT id, payload FROM items WHERE campaign = ? "
                                                      "ORDER BY id DESC", (camp.name,)):
                        item_ids[(camp.name, text)] = item_id  # DESC: the lowest id wins
                if key not in item_ids:
                    item_ids[key] = conn.execute(
                        "INSERT INTO items (campaign, payload, created_at) VALUES (?, ?, ?) RETURNING id",
                        (camp.name, payload_text, now)).fetchone()[0]
                try:
                    self._insert_label(conn, camp.name, item_ids[key], labeler, answer, origin=origin,
                                       assignment_id=None, swapped=swapped, order=order, started_at=started_at,
                                       submitted_at=submitted_at)
                except ValueError as e:
                    raise ValueError(f"{path}: line {n}: field 'labeler': {e}") from None
        for camp in new_campaigns:
            self._campaign_cache.pop(camp.name, None)
        return len(prepared)

    def _prepare_import_row(self, row: dict, campaign: str | None, campaigns: dict[str, Campaign],
                            new_campaigns: list[Campaign]):
        def get(name, required=True, default=None):
            if name not in row:
                if required:
                    raise ValueError(f"field {name!r}: missing (required)")
                return default
            return row[name]

        def field_error(name, message):
            return ValueError(f"field {name!r}: {message}")

        version = get("schema_version", False, EXPORT_SCHEMA_VERSION)
        if not _is_int(version) or not 1 <= version <= EXPORT_SCHEMA_VERSION:
            raise field_error("schema_version", f"this workbench reads schema version {EXPORT_SCHEMA_VERSION}, "
                                                f"got {version!r}")
        name = campaign if campaign is not None else get("campaign")
        kind = get("kind")
        if kind not in CAMPAIGN_KINDS:
            raise field_error("kind", f"must be one of {', '.join(CAMPAIGN_KINDS)}, got {kind!r}")
        camp = campaigns.get(name) if isinstance(name, str) else None
        if camp is None:
            try:
                _name("campaign", name)
            except ValueError as e:
                raise field_error("campaign", str(e)) from None
            try:
                camp = self.get_campaign(name)
            except UnknownCampaignError:
                config = get("campaign_config", False, None) or {}
                if not isinstance(config, dict):
                    raise field_error("campaign_config", f"must be an object, got {type(config).__name__}") from None
                unknown = set(config) - {"overlap", "guidelines_md", "graded_scale", "flags",
                                         "assignment_timeout_s", "created_at", "meta"}
                if unknown:
                    raise field_error("campaign_config", f"unknown keys {sorted(unknown)}") from None
                try:
                    camp = self._campaign_from_args(name, kind, **config)
                except (ValueError, TypeError) as e:
                    raise field_error("campaign_config", str(e)) from None
                new_campaigns.append(camp)
            campaigns[name] = camp
        if camp.kind != kind:
            raise field_error("kind", f"{kind!r} does not match campaign {camp.name!r}, which is {camp.kind}")
        try:
            payload = validate_payload(kind, get("item"), "item")
        except ValueError as e:
            raise field_error("item", str(e)) from None
        n = len(payload["responses"]) if kind == "ranking" else 2
        try:
            labeler = _name("labeler", get("labeler"))
        except ValueError as e:
            raise field_error("labeler", str(e)) from None
        origin = get("origin", False, "direct")
        if origin not in ("queue", "direct"):
            raise field_error("origin", f"must be 'queue' or 'direct', got {origin!r}")
        swapped = get("swapped", False, False)
        if not isinstance(swapped, bool):
            raise field_error("swapped", f"must be true or false, got {swapped!r}")
        default_order = ([1, 0] if swapped else [0, 1]) if kind != "ranking" else list(range(n))
        order = get("display_order", False, None)
        if order is None:
            order = default_order
        if not isinstance(order, list) or not all(_is_int(p) for p in order) or sorted(order) != list(range(n)):
            raise field_error("display_order", f"must be a permutation of range({n}), got {order!r}")
        if kind != "ranking" and order != default_order:
            raise field_error("display_order", f"{order} does not match swapped={swapped}")
        choice = get("choice")
        scale = get("scale_shown", False, None)
        ranking = get("ranking_shown", False, None)
        try:
            answer = _validate_answer(camp, n, swapped, order, choice, scale, ranking, get("flags", False, []),
                                      get("comment", False, ""), get("source", False, "human"))
        except _AnswerError as e:
            raise field_error(e.field, str(e)) from None
        started_at = get("started_at", False, None)
        submitted_at = get("submitted_at", False, None)
        for fname, value, nullable in (("started_at", started_at, True), ("submitted_at", submitted_at, False)):
            if (value is None and not nullable) or (value is not None and (isinstance(value, bool) or
                                                                           not isinstance(value, (int, float))
                                                                           or not math.isfinite(value))):
                raise field_error(fname, f"must be a Unix time in seconds{' or null' if nullable else ''}, "
                                         f"got {value!r}")
        # Derived fields, when present, must agree with the raw ones (catches hand-edited or mixed-up files).
        ranking_canonical = None if answer.ranking_shown is None else [order[p] for p in answer.ranking_shown]
        scale_canonical = (None if answer.scale_shown is None
                           else -answer.scale_shown if swapped else answer.scale_shown)
        chosen, rejected = Label.chosen_rejected(_PreferredOnly(answer.preferred, payload))
        derived = {"preferred": answer.preferred, "mu_a": _MU_A.get(answer.preferred), "scale": scale_canonical,
                   "ranking": ranking_canonical, "chosen": chosen, "rejected": rejected,
                   "prompt": payload.get("prompt"),
                   "seconds": None if started_at is None else submitted_at - started_at}
        for fname, expected in derived.items():
            if fname in row:
                got = row[fname]
                same = (math.isclose(got, expected, rel_tol=0, abs_tol=1e-6)
                        if fname == "seconds" and isinstance(got, (int, float)) and expected is not None
                        else got == expected)
                if not same:
                    raise field_error(fname, f"{got!r} disagrees with the raw fields (choice {answer.choice!r}, "
                                             f"swapped {swapped}, order {order}), which give {expected!r}")
        return (camp, _payload_json(payload), answer, origin, swapped, order,
                None if started_at is None else float(started_at), float(submitted_at), labeler)


@dataclass(frozen=True)
class _PreferredOnly:  # enough of a Label for Label.chosen_rejected
    preferred: str
    payload: dict
