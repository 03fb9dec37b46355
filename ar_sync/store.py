"""The SQLite state store: units, attempts, findings, check runs, events, cycles.

One transaction per state transition. An attempt is written *before* its side effect
(outcome ``pending``) and finished *after* it, so a crash at any moment leaves a record
saying exactly which calls may have happened; :mod:`ar_sync.pipeline` reconciles those
on start. The event history is append-only (triggers refuse UPDATE and DELETE).

The file is created 0600 in a directory created 0700, in WAL mode with
``synchronous=NORMAL``: durable against a killed process (the WAL is in the OS cache);
after a power loss the last transactions may be lost, which the external-id and channel
status look-ups on start also reconcile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from ar_sync import failpoints
from ar_sync.log import mask
from ar_sync.models import Finding


class State:
    """Unit states; see docs/state-machine.md."""

    NEW = "new"  # seen, not yet through the checklist
    HELD = "held"  # waiting for a person: findings, a NetSuite refusal, a channel rejection
    CREATING = "creating"  # create sent (or about to be) to NetSuite
    CREATED = "created"  # NetSuite has it; not yet checked again / delivered
    DELIVERING = "delivering"  # submission sent (or about to be) to the channel
    DELIVERED = "delivered"  # the channel accepted it and gave a reference
    RETRY = "retry"  # a transient failure; next_attempt_at says when
    RESOLVED = "resolved"  # closed without an invoice (the problem went away, or a person)

    IN_FLIGHT = (CREATING, CREATED, DELIVERING, RETRY)


GENESIS = "0" * 64
NO_UPDATE = ("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
             "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END")


def event_hash(prev: str, at: str, key: str | None, kind: str, actor: str, detail: str) -> str:
    """The hash that chains an event to the one before it (over a canonical JSON form)."""
    canonical = json.dumps([prev, at, key, kind, actor, detail], separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _chain_events(conn: sqlite3.Connection) -> None:
    """Migration 4: hash-chain the event history, existing events included."""
    conn.execute("ALTER TABLE events ADD COLUMN prev_hash TEXT")
    conn.execute("ALTER TABLE events ADD COLUMN hash TEXT")
    conn.execute("DROP TRIGGER events_no_update")
    prev = GENESIS
    for row in conn.execute("SELECT id, at, key, kind, actor, detail FROM events ORDER BY id"
                            ).fetchall():
        digest = event_hash(prev, row[1], row[2], row[3], row[4], row[5])
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?",
                     (prev, digest, row[0]))
        prev = digest
    conn.execute(NO_UPDATE)


MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: initial schema
    """
    CREATE TABLE units (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        order_id TEXT NOT NULL,
        order_number TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        customer_entity TEXT NOT NULL,
        customer_name TEXT NOT NULL,
        channel TEXT NOT NULL,
        currency TEXT NOT NULL,
        total TEXT NOT NULL,
        bill_date TEXT NOT NULL,
        state TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        draft TEXT NOT NULL,
        netsuite_id TEXT,
        tran_id TEXT,
        delivery_ref TEXT,
        hold_stage TEXT,
        hold_reason TEXT,
        retry_stage TEXT,
        retries INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        rerun_requested INTEGER NOT NULL DEFAULT 0,
        first_seen_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX units_state ON units(state);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL REFERENCES units(key),
        target TEXT NOT NULL,
        operation TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL,
        error_class TEXT,
        code TEXT,
        message TEXT,
        reference TEXT,
        document BLOB,
        document_type TEXT
    );
    CREATE INDEX attempts_key ON attempts(key);
    CREATE INDEX attempts_pending ON attempts(outcome) WHERE outcome = 'pending';
    CREATE TABLE check_runs (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL REFERENCES units(key),
        stage TEXT NOT NULL,
        at TEXT NOT NULL,
        passed INTEGER NOT NULL,
        rules_version TEXT NOT NULL,
        library_version TEXT NOT NULL
    );
    CREATE INDEX check_runs_key ON check_runs(key);
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        check_run INTEGER NOT NULL REFERENCES check_runs(id),
        key TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        field TEXT NOT NULL,
        found TEXT NOT NULL,
        expected TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX findings_key ON findings(key);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        key TEXT,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX events_key ON events(key);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TABLE cycles (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: overrides with segregation of duties
    """
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL REFERENCES units(key),
        rule TEXT NOT NULL,
        found TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX approvals_key ON approvals(key);
    ALTER TABLE findings ADD COLUMN approval INTEGER REFERENCES approvals(id);
    """,
    # 3: find a unit's pending attempt without scanning every pending attempt
    """
    DROP INDEX attempts_pending;
    CREATE INDEX attempts_pending ON attempts(key, operation) WHERE outcome = 'pending';
    """,
    # 4: a tamper-evident event history (`ar-sync audit verify`)
    _chain_events,
    # 5: who on call owns a unit that needs a person, and since when
    """
    ALTER TABLE units ADD COLUMN owner TEXT;
    ALTER TABLE units ADD COLUMN owned_since TEXT
    """,
    # 6: alerts already sent, for deduplication
    """
    CREATE TABLE alerts_sent (
        fingerprint TEXT PRIMARY KEY,
        first_at TEXT NOT NULL,
        last_sent_at TEXT NOT NULL,
        times INTEGER NOT NULL
    );
    CREATE TABLE alerts_pending (
        fingerprint TEXT PRIMARY KEY,
        line TEXT NOT NULL,
        at TEXT NOT NULL
    )
    """,
    # 7: circuit breakers per NetSuite account and per channel
    """
    CREATE TABLE breakers (
        name TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        open_until TEXT,
        updated_at TEXT NOT NULL
    )
    """,
    # 8: retention: an attempt's payload pruned under [retention], its row and digest kept
    """
    ALTER TABLE attempts ADD COLUMN pruned_at TEXT;
    ALTER TABLE attempts ADD COLUMN pruned_policy TEXT;
    ALTER TABLE attempts ADD COLUMN document_sha256 TEXT;
    ALTER TABLE attempts ADD COLUMN document_bytes INTEGER;
    CREATE INDEX attempts_started ON attempts(started_at)
    """,
]

FINAL_STATES = (State.DELIVERED, State.RESOLVED)  # nothing left to reconcile
# Outcomes of tries that certainly delivered nothing: their payload is the transport log.
TRANSPORT_OUTCOMES = ("transient", "lost")
_PRUNABLE = f"""
    FROM attempts a JOIN units u ON u.key = a.key
    WHERE a.pruned_at IS NULL AND a.outcome != 'pending'
      AND u.state IN ({", ".join(f"'{s}'" for s in FINAL_STATES)})
      AND (a.document IS NOT NULL OR COALESCE(a.message, '') != '')
      AND a.started_at < CASE WHEN a.outcome IN
          ({", ".join(f"'{o}'" for o in TRANSPORT_OUTCOMES)}) THEN ? ELSE ? END"""

SERVICE = "ar-sync"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Store:
    """The state store of one ar-sync installation."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)
        self._depth = 0
        self._tip: str | None = None  # hash of the last event, while we hold the write lock

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating 0700/0600 if needed) and migrate the store at ``path``."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store.migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    def backup(self, target: Path) -> int:
        """Copy the store to ``target`` (created 0600) with SQLite's online backup API."""
        if target.exists():
            raise FileExistsError(f"{target} exists; choose a new file name")
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        dest = sqlite3.connect(target)
        try:
            self.conn.backup(dest)
            return int(dest.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dest.close()

    def migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                if callable(script):
                    script(self.conn)
                else:
                    for statement in script.split(";\n"):
                        if statement.strip():
                            self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An atomic set of state transitions (BEGIN IMMEDIATE … COMMIT, rolled back on error).

        Re-entrant: a transition written inside a batch's transaction commits with the batch,
        so the batch's intents are all durable before the call they announce, or none is.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        self._tip = None  # another process may have appended events since we last wrote
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
        self.conn.execute("COMMIT")
        failpoints.hit("commit")

    # -- writes, each one transition ---------------------------------------------------

    def event(self, key: str | None, kind: str, actor: str = SERVICE, **detail: Any) -> None:
        """Append an event, chained to the one before it (call inside a transaction: the
        write lock keeps the chain's tip from moving under us)."""
        if self._tip is None:
            row = self.conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
            self._tip = row[0] if row and row[0] else GENESIS
        at, text = now(), mask(json.dumps(detail, sort_keys=True, default=str))
        digest = event_hash(self._tip, at, key, kind, actor, text)
        self.conn.execute(
            "INSERT INTO events (at, key, kind, actor, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (at, key, kind, actor, text, self._tip, digest))
        self._tip = digest

    def set_state(self, key: str, state: str, **columns: Any) -> None:
        """Update a unit's state and columns (call inside a transaction)."""
        columns |= {"state": state, "updated_at": now()}
        assignments = ", ".join(f"{c} = ?" for c in columns)
        self.conn.execute(f"UPDATE units SET {assignments} WHERE key = ?",
                          (*columns.values(), key))

    def upsert_unit(self, row: dict[str, Any]) -> None:
        """Insert a newly seen unit, or refresh the source data of a known one."""
        stamp = now()
        row = {**row, "updated_at": stamp}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c not in ("key", "state"))
        self.conn.execute(
            f"INSERT INTO units ({cols}, first_seen_at) VALUES ({marks}, ?) "
            f"ON CONFLICT(key) DO UPDATE SET {updates}",
            (*row.values(), stamp),
        )

    def record_check(self, key: str, stage: str, findings: Sequence[Finding],
                     rules_version: str, library_version: str,
                     approvals: Mapping[str, Mapping[str, int]] | None = None) -> None:
        """Store one checklist run and its findings (call inside a transaction).

        ``approvals`` maps rule -> found value -> approval id: the findings a person
        accepted; the run passes when every other error finding is absent.
        """
        approvals = approvals or {}

        def approval(f: Finding) -> int | None:
            return approvals.get(f.rule, {}).get(f.found) if f.holds else None

        passed = all(not f.holds or approval(f) is not None for f in findings)
        cur = self.conn.execute(
            "INSERT INTO check_runs (key, stage, at, passed, rules_version, library_version) "
            "VALUES (?, ?, ?, ?, ?, ?)", (key, stage, now(), passed, rules_version,
                                          library_version))
        if not findings:
            return
        self.conn.executemany(
            "INSERT INTO findings (check_run, key, rule, severity, field, found, expected, "
            "message, approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(cur.lastrowid, key, f.rule, f.severity.value, f.field, mask(f.found), f.expected,
              mask(f.message), approval(f)) for f in findings],
        )

    def approvals(self, keys: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
        """Approved findings per key: rule -> found value -> approval id."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT id, key, rule, found FROM approvals WHERE key IN ({marks})", chunk):
                out.setdefault(row["key"], {}).setdefault(row["rule"], {})[row["found"]] = row["id"]
        return out

    def begin_attempt(self, key: str, target: str, operation: str,
                      document: bytes | None = None, document_type: str | None = None) -> int:
        """Write an attempt as ``pending`` before its side effect (inside a transaction)."""
        # level 1: several times faster than the default, and documents still shrink ~6x
        blob = zlib.compress(document, 1) if document is not None else None
        cur = self.conn.execute(
            "INSERT INTO attempts (key, target, operation, started_at, outcome, document, "
            "document_type) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (key, target, operation, now(), blob, document_type),
        )
        return int(cur.lastrowid or 0)

    def finish_attempt(self, attempt_id: int, outcome: str, *, error_class: str = "",
                       code: str = "", message: str = "", reference: str = "") -> None:
        """Record what came of an attempt (inside a transaction)."""
        self.conn.execute(
            "UPDATE attempts SET finished_at = ?, outcome = ?, error_class = ?, code = ?, "
            "message = ?, reference = ? WHERE id = ?",
            (now(), outcome, error_class, code, mask(message), reference, attempt_id),
        )

    def request_rerun(self, keys: Iterable[str], actor: str, reason: str) -> list[str]:
        """Flag units for a fresh pass on the next cycle; return the keys that exist."""
        found = []
        with self.transaction():
            for key in keys:
                if self.conn.execute("UPDATE units SET rerun_requested = 1 WHERE key = ?",
                                     (key,)).rowcount:
                    self.event(key, "rerun_requested", actor, reason=reason)
                    found.append(key)
        return found

    def begin_cycle(self) -> int:
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO cycles (started_at, outcome) VALUES (?, 'running')", (now(),))
        return int(cur.lastrowid or 0)

    def end_cycle(self, cycle_id: int, outcome: str, summary: dict[str, Any]) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE cycles SET finished_at = ?, outcome = ?, summary = ? WHERE id = ?",
                (now(), outcome, json.dumps(summary, default=str), cycle_id))

    # -- reads ---------------------------------------------------------------------------

    def units(self, keys: Sequence[str]) -> dict[str, sqlite3.Row]:
        """The stored rows of these keys (absent keys are left out)."""
        out: dict[str, sqlite3.Row] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT * FROM units WHERE key IN ({marks})", chunk):
                out[row["key"]] = row
        return out

    def unit(self, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute("SELECT * FROM units WHERE key = ?",
                                                    (key,)).fetchone()
        return row

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params))

    def pending_attempt(self, key: str, operation: str) -> sqlite3.Row | None:
        """The last attempt of ``operation`` for ``key`` that never got an outcome."""
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM attempts WHERE key = ? AND operation = ? AND outcome = 'pending' "
            "ORDER BY id DESC LIMIT 1", (key, operation)).fetchone()
        return row

    def latest_findings(self, key: str) -> list[sqlite3.Row]:
        run = self.conn.execute("SELECT id FROM check_runs WHERE key = ? ORDER BY id DESC "
                                "LIMIT 1", (key,)).fetchone()
        if run is None:
            return []
        return self.rows("SELECT * FROM findings WHERE check_run = ? ORDER BY id", (run["id"],))

    def prune_payloads(self, *, evidence_before: str, transport_before: str, actor: str,
                       policy: Mapping[str, int], dry_run: bool = False, batch: int = 500,
                       stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Drop the payloads (document, message) of attempts past their retention.

        Only attempts of units in a final state are touched, never a pending one. Evidence
        (every outcome but ``transient``/``lost``) older than ``evidence_before``, transport
        log older than ``transport_before`` (ISO timestamps, compared with ``started_at``).
        Each row keeps its metadata and gets ``pruned_at``, ``pruned_policy`` and the
        document's SHA-256 and size; each batch is one transaction with one
        ``payloads_pruned`` event naming who, the policy, the counts and the attempt ids.
        Returns the counts (what would be pruned, with ``dry_run``).
        """
        cutoffs = (transport_before, evidence_before)
        if dry_run:
            row = self.conn.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(a.outcome IN ('transient', 'lost')), 0) "
                "AS transport, COALESCE(SUM(length(a.document)), 0) + "
                "COALESCE(SUM(length(a.message)), 0) AS bytes, COUNT(DISTINCT a.key) AS units "
                + _PRUNABLE, cutoffs).fetchone()
            return {"attempts": row["n"], "evidence": row["n"] - row["transport"],
                    "transport": row["transport"], "units": row["units"],
                    "bytes": row["bytes"], "batches": 0}
        total = {"attempts": 0, "evidence": 0, "transport": 0, "units": 0, "bytes": 0,
                 "batches": 0}
        units: set[str] = set()
        last = 0
        while not stop():
            # found without the write lock (a WAL reader never blocks the cycle), then
            # checked again and pruned in one short transaction
            found = [r[0] for r in self.conn.execute(
                "SELECT a.id " + _PRUNABLE + " AND a.id > ? ORDER BY a.id LIMIT ?",
                (*cutoffs, last, batch))]
            if not found:
                break
            last = found[-1]
            with self.transaction():
                rows = self.conn.execute(
                    "SELECT a.id, a.key, a.outcome, a.document, a.message " + _PRUNABLE
                    + f" AND a.id IN ({','.join('?' * len(found))}) ORDER BY a.id",
                    (*cutoffs, *found)).fetchall()
                if not rows:
                    continue
                at, counts = now(), {"evidence": 0, "transport": 0, "bytes": 0}
                for r in rows:
                    kind = "transport" if r["outcome"] in TRANSPORT_OUTCOMES else "evidence"
                    body = zlib.decompress(r["document"]) if r["document"] else None
                    self.conn.execute(
                        "UPDATE attempts SET document = NULL, message = NULL, pruned_at = ?, "
                        "pruned_policy = ?, document_sha256 = ?, document_bytes = ? "
                        "WHERE id = ?",
                        (at, f"{kind}_days={policy[kind + '_days']}",
                         hashlib.sha256(body).hexdigest() if body is not None else None,
                         len(body) if body is not None else None, r["id"]))
                    counts[kind] += 1
                    counts["bytes"] += len(r["document"] or b"") + len(r["message"] or "")
                self.event(None, "payloads_pruned", actor, policy=dict(policy),
                           evidence_before=evidence_before, transport_before=transport_before,
                           attempts=[r["id"] for r in rows], units=len({r["key"] for r in rows}),
                           **counts)
            total["batches"] += 1
            total["attempts"] += len(rows)
            units.update(r["key"] for r in rows)
            total["units"] = len(units)
            for name in ("evidence", "transport", "bytes"):
                total[name] += counts[name]
            if len(found) < batch:
                break
        return total

    def space(self) -> dict[str, int]:
        """The file's size and its free pages (reused by new rows; VACUUM returns them)."""
        page = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
        return {"bytes": page * pages, "free_bytes": page * free}

    def vacuum(self) -> None:
        """Rewrite the file without its free pages (needs the disk space of a copy and holds
        the write lock throughout: run it with the daemon stopped)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def document(self, attempt_id: int) -> bytes | None:
        row = self.conn.execute("SELECT document FROM attempts WHERE id = ?",
                                (attempt_id,)).fetchone()
        return zlib.decompress(row["document"]) if row and row["document"] else None
