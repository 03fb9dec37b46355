"""Retention: attempt payloads go once ``[retention]`` has kept them long enough; the rows,
their digests and the hash-chained history stay, and the audit bundle says what was pruned.

The demo account is billed once; each test works on a copy and backdates some attempts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner
from conftest import minimal_config

from ar_sync.cli import cli
from ar_sync.config import Settings, load_settings
from ar_sync.daemon import add_retention_job
from ar_sync.demo import write_demo_dir
from ar_sync.errors import ConfigError
from ar_sync.runner import run_cycle
from ar_sync.store import Store

AS_OF = dt.date(2026, 11, 30)
SEVEN_YEARS_AGO = 2600  # days: past the default evidence_days (2557)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = write_demo_dir(tmp_path_factory.mktemp("retention") / "demo", AS_OF)
    run_cycle(load_settings(config), as_of=AS_OF)
    return config.parent


@pytest.fixture
def settings(template: Path, tmp_path: Path) -> Settings:
    shutil.copytree(template, tmp_path / "demo")
    return load_settings(tmp_path / "demo" / "ar-sync.toml")


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(settings.path), *args])


def db(settings: Settings) -> sqlite3.Connection:
    conn = sqlite3.connect(settings.state_path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def ago(days: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(
        timespec="milliseconds")


def backdate(settings: Settings, ids: list[int], days: int) -> None:
    with db(settings) as conn:
        conn.executemany("UPDATE attempts SET started_at = ?, finished_at = ? WHERE id = ?",
                         [(ago(days), ago(days), i) for i in ids])


def attempts(settings: Settings, where: str = "1", params: tuple[Any, ...] = ()
             ) -> list[dict[str, Any]]:
    with db(settings) as conn:
        return [dict(r) for r in conn.execute(f"SELECT * FROM attempts WHERE {where} "
                                              "ORDER BY id", params)]


def delivered_keys(settings: Settings, n: int, skip: int = 0) -> list[str]:
    with db(settings) as conn:
        return [r[0] for r in conn.execute("SELECT key FROM units WHERE state = 'delivered' "
                                           "ORDER BY key LIMIT ? OFFSET ?", (n, skip))]


def deliver_attempts(settings: Settings, keys: list[str]) -> list[int]:
    marks = ",".join("?" * len(keys))
    return [a["id"] for a in attempts(settings, f"operation = 'deliver' AND outcome = 'ok' "
                                                f"AND key IN ({marks})", tuple(keys))]


def add_attempt(settings: Settings, key: str, outcome: str, *, operation: str = "deliver",
                document: bytes | None = None, message: str = "") -> int:
    store = Store.open(settings.state_path)
    try:
        with store.transaction():
            attempt = store.begin_attempt(key, "channel:email", operation, document,
                                          "application/json" if document else None)
            if outcome != "pending":
                store.finish_attempt(attempt, outcome, error_class="TransientError",
                                     message=message)
        return attempt
    finally:
        store.close()


def prune_events(settings: Settings) -> list[dict[str, Any]]:
    with db(settings) as conn:
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in conn.execute(
            "SELECT actor, detail FROM events WHERE kind = 'payloads_pruned' ORDER BY id")]


# -- pruning ---------------------------------------------------------------------------------

def test_old_payloads_of_delivered_invoices_go_and_recent_ones_stay(settings: Settings) -> None:
    old_keys = delivered_keys(settings, 3)
    old = deliver_attempts(settings, old_keys)
    backdate(settings, old, SEVEN_YEARS_AGO)
    before = {a["id"]: a for a in attempts(settings)}
    digests = {i: hashlib.sha256(zlib.decompress(before[i]["document"])).hexdigest()
               for i in old}

    result = invoke(settings, "state", "prune", "--as", "alice")
    assert result.exit_code == 0, result.output
    assert "pruned the payloads of 3 attempt(s) of 3 finished invoice(s)" in result.output

    after = {a["id"]: a for a in attempts(settings)}
    assert set(after) == set(before), "every attempt row is kept"
    for i in old:
        row = after[i]
        assert row["document"] is None and row["message"] is None
        assert row["pruned_at"] and row["pruned_policy"] == "evidence_days=2557"
        assert row["document_sha256"] == digests[i]
        assert row["document_bytes"] == len(zlib.decompress(before[i]["document"]))
        for kept in ("key", "target", "operation", "outcome", "reference", "started_at",
                     "document_type"):
            assert row[kept] == before[i][kept]
    recent = [i for i in after if i not in old and before[i]["document"] is not None]
    assert recent and all(after[i]["document"] == before[i]["document"] and
                          after[i]["pruned_at"] is None for i in recent)
    with db(settings) as conn:  # the invoices themselves are untouched
        states = {r[0] for r in conn.execute(
            f"SELECT state FROM units WHERE key IN ({','.join('?' * 3)})", old_keys)}
    assert states == {"delivered"}

    [event] = prune_events(settings)
    assert event["actor"] == "alice"
    assert event["detail"]["policy"] == {"evidence_days": 2557, "transport_days": 90}
    assert (event["detail"]["evidence"], event["detail"]["transport"]) == (3, 0)
    assert sorted(event["detail"]["attempts"]) == sorted(old)

    verify = invoke(settings, "audit", "verify")
    assert verify.exit_code == 0 and "chain intact" in verify.output
    story = invoke(settings, "show", old_keys[0]).output
    assert "(payload pruned " in story and "under evidence_days=2557)" in story
    gone = invoke(settings, "show", old_keys[0], "--document", str(old[0]))
    assert gone.exit_code == 1 and "was pruned on" in gone.output

    again = invoke(settings, "state", "prune")  # nothing is pruned twice
    assert "pruned the payloads of 0 attempt(s)" in again.output


def test_the_transport_log_goes_after_transport_days_and_evidence_stays(
        settings: Settings) -> None:
    [key] = delivered_keys(settings, 1)
    failed = add_attempt(settings, key, "transient", document=b'{"invoice": 1}',
                         message="peppol: access point HTTP 503")
    lost = add_attempt(settings, key, "lost", document=b'{"invoice": 1}',
                       message="the channel has no record of it")
    [delivered] = deliver_attempts(settings, [key])
    backdate(settings, [failed, lost, delivered], 100)

    result = invoke(settings, "state", "prune", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["attempts"], summary["transport"], summary["evidence"]) == (2, 2, 0)
    rows = {a["id"]: a for a in attempts(settings, "key = ?", (key,))}
    for i in (failed, lost):
        assert rows[i]["document"] is None and rows[i]["message"] is None
        assert rows[i]["pruned_policy"] == "transport_days=90"
    assert rows[delivered]["document"] is not None and rows[delivered]["pruned_at"] is None


def test_unfinished_invoices_keep_everything_reconciliation_needs(settings: Settings) -> None:
    with db(settings) as conn:
        held = conn.execute("SELECT key FROM units WHERE state = 'held' LIMIT 1").fetchone()[0]
    refused = add_attempt(settings, held, "rejected", operation="create",
                          message="NetSuite refused: the period is closed")
    in_flight, retrying = delivered_keys(settings, 2)
    pending = add_attempt(settings, in_flight, "pending", document=b'{"invoice": 2}')
    transient = add_attempt(settings, retrying, "transient", document=b'{"invoice": 3}',
                            message="connection reset")
    with db(settings) as conn:  # a crash left one mid-delivery; the other waits to retry
        conn.execute("UPDATE units SET state = 'delivering' WHERE key = ?", (in_flight,))
        conn.execute("UPDATE units SET state = 'retry' WHERE key = ?", (retrying,))
    untouchable = [refused, pending, transient,
                   *[a["id"] for a in attempts(settings, "key IN (?, ?)",
                                               (in_flight, retrying))]]
    backdate(settings, untouchable, 4000)
    before = attempts(settings, f"id IN ({','.join('?' * len(untouchable))})",
                      tuple(untouchable))

    result = invoke(settings, "state", "prune")
    assert result.exit_code == 0, result.output
    assert attempts(settings, f"id IN ({','.join('?' * len(untouchable))})",
                    tuple(untouchable)) == before


def test_a_dry_run_changes_nothing(settings: Settings) -> None:
    old = deliver_attempts(settings, delivered_keys(settings, 4))
    backdate(settings, old, SEVEN_YEARS_AGO)
    with db(settings) as conn:
        snapshot = [tuple(r) for r in conn.execute("SELECT * FROM attempts ORDER BY id")]
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    result = invoke(settings, "state", "prune", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would prune the payloads of 4 attempt(s)" in result.output
    assert "dry run: nothing changed" in result.output
    as_json = json.loads(invoke(settings, "state", "prune", "--dry-run", "--json").output)
    assert as_json["dry_run"] and (as_json["attempts"], as_json["evidence"]) == (4, 4)
    assert as_json["bytes"] > 0

    with db(settings) as conn:
        assert [tuple(r) for r in conn.execute("SELECT * FROM attempts ORDER BY id")] == snapshot
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == events


# -- audit evidence --------------------------------------------------------------------------

def test_the_audit_export_says_which_payloads_were_pruned_and_why(settings: Settings,
                                                                  tmp_path: Path) -> None:
    old = deliver_attempts(settings, delivered_keys(settings, 2))
    backdate(settings, old, SEVEN_YEARS_AGO)
    assert invoke(settings, "state", "prune").exit_code == 0
    day = ago(SEVEN_YEARS_AGO)[:10]

    result = invoke(settings, "audit", "export", "--from", day, "--to", day,
                    str(tmp_path / "bundle"))
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["chain"]["verified"]
    pruned = {p["attempt"]: p for p in manifest["pruned_payloads"]}
    assert set(pruned) == set(old)
    rows = {a["id"]: a for a in attempts(settings, f"id IN ({','.join('?' * len(old))})",
                                         tuple(old))}
    for i in old:
        assert pruned[i]["policy"] == "evidence_days=2557"
        assert "pruned under the retention policy" in pruned[i]["note"]
        placeholder = bundle / "documents" / f"attempt-{i}.json.pruned.json"
        assert json.loads(placeholder.read_text())["document_sha256"] == \
            rows[i]["document_sha256"]
        assert f"documents/attempt-{i}.json.pruned.json" in manifest["files"]
        assert not (bundle / "documents" / f"attempt-{i}.json").exists()
    exported = [json.loads(line) for line in (bundle / "attempts.jsonl").read_text().splitlines()]
    assert {a["id"]: a["pruned_policy"] for a in exported} == {i: "evidence_days=2557"
                                                                for i in old}


def test_a_period_with_nothing_pruned_exports_documents_as_before(settings: Settings,
                                                                  tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    result = invoke(settings, "audit", "export", "--from", today, "--to", today,
                    str(tmp_path / "bundle"))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["pruned_payloads"] == []
    assert any(name.startswith("documents/attempt-") and not name.endswith(".pruned.json")
               for name in manifest["files"])


# -- the daemon, space, configuration --------------------------------------------------------

def test_the_daemon_prunes_once_a_day_as_the_service(settings: Settings) -> None:
    old = deliver_attempts(settings, delivered_keys(settings, 2))
    backdate(settings, old, SEVEN_YEARS_AGO)
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    job = add_retention_job(scheduler, settings, threading.Event())
    assert job.id == "retention" and job.trigger.interval == dt.timedelta(days=1)
    job.func()  # what the scheduler runs, in its own thread, off the cycle's path
    assert all(a["pruned_at"] for a in attempts(
        settings, f"id IN ({','.join('?' * len(old))})", tuple(old)))
    [event] = prune_events(settings)
    assert event["actor"] == "ar-sync"


def test_a_stopping_daemon_prunes_nothing_more(settings: Settings) -> None:
    backdate(settings, deliver_attempts(settings, delivered_keys(settings, 2)), SEVEN_YEARS_AGO)
    stop = threading.Event()
    stop.set()
    add_retention_job(BackgroundScheduler(timezone=dt.UTC), settings, stop).func()
    assert prune_events(settings) == []


def test_vacuum_gives_the_space_back_and_is_never_a_dry_run(settings: Settings) -> None:
    backdate(settings, [a["id"] for a in attempts(settings)], SEVEN_YEARS_AGO)
    result = invoke(settings, "state", "prune", "--vacuum")
    assert result.exit_code == 0, result.output
    assert "vacuumed: the file is" in result.output
    assert invoke(settings, "audit", "verify").exit_code == 0
    refused = invoke(settings, "state", "prune", "--vacuum", "--dry-run")
    assert refused.exit_code == 2 and "cannot be a dry run" in refused.output


def _config(tmp_path: Path, extra: str) -> Path:
    return minimal_config(tmp_path, extra)


def test_the_defaults_are_seven_years_and_ninety_days(tmp_path: Path) -> None:
    retention = load_settings(_config(tmp_path, "")).model.retention
    assert (retention.evidence_days, retention.transport_days) == (2557, 90)


@pytest.mark.parametrize(("text", "key", "says"), [
    ("evidence_days = 0", "retention.evidence_days", "greater than or equal to 1"),
    ('evidence_days = "seven years"', "retention.evidence_days", "valid integer"),
    ("transport_days = -5", "retention.transport_days", "greater than or equal to 1"),
    ("evidence_days = 30\ntransport_days = 90", "retention.transport_days",
     "90 is longer than retention.evidence_days (30)"),
    ("keep_forever = true", "retention.keep_forever", "unknown key"),
])
def test_retention_errors_name_the_file_and_the_key(tmp_path: Path, text: str, key: str,
                                                    says: str) -> None:
    path = _config(tmp_path, f"[retention]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    [(file, where, message)] = info.value.problems
    assert (file, where) == (str(path), key) and says in message
