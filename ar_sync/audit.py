"""Audit evidence: verify the event chain, and export a bundle for auditors.

Every event stores the hash of the one before it over a canonical form (see
:func:`ar_sync.store.event_hash`), so an edited, deleted, inserted or reordered event breaks
the chain where it happened. ``verify`` walks the chain and names the first break.

``export`` writes what an auditor asks for, for a period: the events, every check run with
its findings and the rules and library versions, the overrides with who and why, the documents
sent with the answers received, and the segregation-of-duties conflicts. A manifest lists each
file's SHA-256 and the chain's head, so the bundle itself can be checked later. A payload
pruned under ``[retention]`` is never silently missing: its attempt row says when and under
which policy, the manifest lists it under ``pruned_payloads``, and ``documents/`` holds an
``attempt-N.<ext>.pruned.json`` note (with the document's SHA-256) in its place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ar_sync.store import GENESIS, SERVICE, Store, event_hash


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str


def verify(store: Store) -> tuple[int, ChainBreak | None]:
    """(events checked, the first break or None)."""
    prev, count = GENESIS, 0
    for row in store.conn.execute(
            "SELECT id, at, key, kind, actor, detail, prev_hash, hash FROM events ORDER BY id"):
        count += 1
        if row["prev_hash"] != prev:
            return count, ChainBreak(row["id"], "does not follow the event before it: an event "
                                     "was deleted, inserted or moved just before this one")
        expected = event_hash(prev, row["at"], row["key"], row["kind"], row["actor"],
                              row["detail"])
        if row["hash"] != expected:
            return count, ChainBreak(row["id"], "was edited after it was written (its content "
                                     "no longer matches its hash)")
        prev = row["hash"]
    return count, None


def export(store: Store, start: dt.date, end: dt.date, target: Path) -> dict[str, Any]:
    """Write the evidence bundle for [start, end] (UTC dates, inclusive) into ``target``."""
    target.mkdir(parents=True, exist_ok=False)
    lo, hi = start.isoformat(), (end + dt.timedelta(days=1)).isoformat()
    files = {
        "events.jsonl": _rows(store, "SELECT id, at, key, kind, actor, detail, prev_hash, hash "
                              "FROM events WHERE at >= ? AND at < ? ORDER BY id", lo, hi),
        "check_results.jsonl": _checks(store, lo, hi),
        "overrides.jsonl": _rows(store, "SELECT id, key, rule, found, actor, reason, at FROM "
                                 "approvals WHERE at >= ? AND at < ? ORDER BY id", lo, hi),
        "attempts.jsonl": _rows(store, "SELECT id, key, target, operation, started_at, "
                                "finished_at, outcome, error_class, code, message, reference, "
                                "document_type, pruned_at, pruned_policy, document_sha256, "
                                "document_bytes FROM attempts WHERE started_at >= ? AND "
                                "started_at < ? ORDER BY id", lo, hi),
        "sod_conflicts.jsonl": _conflicts(store, lo, hi),
    }
    manifest: dict[str, Any] = {"period": [start.isoformat(), end.isoformat()], "files": {}}
    for name, lines in files.items():
        text = "".join(json.dumps(line, sort_keys=True, default=str) + "\n" for line in lines)
        (target / name).write_text(text, encoding="utf-8")
        manifest["files"][name] = _digest(text.encode())
    documents = target / "documents"
    documents.mkdir()
    for row in store.conn.execute(
            "SELECT id, key, document, document_type FROM attempts WHERE document IS NOT NULL "
            "AND started_at >= ? AND started_at < ? ORDER BY id", (lo, hi)):
        body = store.document(row["id"]) or b""
        name = f"attempt-{row['id']}{_suffix(row['document_type'])}"
        (documents / name).write_bytes(body)
        manifest["files"][f"documents/{name}"] = _digest(body)
    manifest["pruned_payloads"] = []
    for row in store.conn.execute(
            "SELECT id, key, pruned_at, pruned_policy, document_sha256, document_bytes, "
            "document_type FROM attempts WHERE pruned_at IS NOT NULL AND started_at >= ? AND "
            "started_at < ? ORDER BY id", (lo, hi)):
        note = {"attempt": row["id"], "key": row["key"], "pruned_at": row["pruned_at"],
                "policy": row["pruned_policy"], "document_sha256": row["document_sha256"],
                "document_bytes": row["document_bytes"],
                "note": "payload pruned under the retention policy ([retention] "
                        f"{row['pruned_policy']}); the attempt's metadata is kept and the "
                        "payloads_pruned event in the history records the prune"}
        manifest["pruned_payloads"].append(note)
        if row["document_sha256"] is not None:  # where the document was: say why it is not
            name = f"attempt-{row['id']}{_suffix(row['document_type'])}.pruned.json"
            placeholder = json.dumps(note, indent=2, sort_keys=True).encode()
            (documents / name).write_bytes(placeholder)
            manifest["files"][f"documents/{name}"] = _digest(placeholder)
    count, broken = verify(store)
    head = store.conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    manifest["chain"] = {"events": count, "head": head[0] if head else GENESIS,
                         "verified": broken is None,
                         "break": None if broken is None else broken.__dict__}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _rows(store: Store, sql: str, *params: Any) -> Iterator[dict[str, Any]]:
    for row in store.conn.execute(sql, params):
        data = dict(row)
        if "detail" in data:
            data["detail"] = json.loads(data["detail"])
        yield data


def _checks(store: Store, lo: str, hi: str) -> Iterator[dict[str, Any]]:
    for run in store.conn.execute("SELECT * FROM check_runs WHERE at >= ? AND at < ? "
                                  "ORDER BY id", (lo, hi)):
        findings = [dict(f) for f in store.conn.execute(
            "SELECT rule, severity, field, found, expected, message, approval FROM findings "
            "WHERE check_run = ? ORDER BY id", (run["id"],))]
        yield dict(run) | {"findings": findings}


def _conflicts(store: Store, lo: str, hi: str) -> Iterator[dict[str, Any]]:
    """Approvals by the service identity, or by someone who changed that invoice's data."""
    for a in store.conn.execute("SELECT * FROM approvals WHERE at >= ? AND at < ? ORDER BY id",
                                (lo, hi)):
        if a["actor"] == SERVICE:
            yield {"approval": a["id"], "key": a["key"], "actor": a["actor"],
                   "conflict": "approved by the service identity"}
        changed = _changers(store.conn, a["key"], a["at"])
        if a["actor"] in changed:
            yield {"approval": a["id"], "key": a["key"], "actor": a["actor"],
                   "conflict": "approver changed this invoice's data through ar-sync"}


def _changers(conn: sqlite3.Connection, key: str, before: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT actor FROM events WHERE key = ? AND kind = "
                                       "'data_changed' AND at <= ?", (key, before))}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _suffix(media_type: str | None) -> str:
    return {"application/json": ".json", "application/xml": ".xml", "text/xml": ".xml",
            "application/pdf": ".pdf"}.get(media_type or "", ".bin")
