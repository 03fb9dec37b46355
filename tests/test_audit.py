"""The event history is tamper-evident, and the evidence bundle holds what auditors ask for."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ar_sync.cli import cli
from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.runner import run_cycle
from ar_sync.store import MIGRATIONS, Store

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(write_demo_dir(tmp_path_factory.mktemp("audit") / "demo", AS_OF))
    run_cycle(settings, as_of=AS_OF)
    return settings


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(settings.path), *args])


def tampered(settings: Settings, tmp_path: Path, *sql: str) -> Any:
    """A copy of the state store with the append-only guard removed and ``sql`` applied."""
    copy = tmp_path / "copy"
    copy.mkdir()
    store = Store.open(settings.state_path)
    store.backup(copy / "ar-sync.db")
    store.close()
    db = sqlite3.connect(copy / "ar-sync.db")
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()
    config = copy / "ar-sync.toml"
    config.write_text(settings.path.read_text().replace(
        'path = "state/ar-sync.db"', f'path = "{copy / "ar-sync.db"}"').replace(
        '"customers.toml"', f'"{settings.base / "customers.toml"}"').replace(
        'sandbox_file = "state/sandbox.db"', f'sandbox_file = "{settings.sandbox_path}"'))
    return CliRunner().invoke(cli, ["--config", str(config), "audit", "verify"])


def test_an_untouched_history_verifies(billed: Settings) -> None:
    result = invoke(billed, "audit", "verify")
    assert result.exit_code == 0 and "chain intact" in result.output


def test_an_edited_event_is_named(billed: Settings, tmp_path: Path) -> None:
    result = tampered(billed, tmp_path,
                      "UPDATE events SET actor = 'mallory' WHERE id = 40")
    assert result.exit_code == 1
    assert "BROKEN at event 40" in result.output and "edited" in result.output


def test_a_deleted_event_is_named(billed: Settings, tmp_path: Path) -> None:
    result = tampered(billed, tmp_path, "DELETE FROM events WHERE id = 25")
    assert result.exit_code == 1
    assert "BROKEN at event 26" in result.output and "deleted, inserted or moved" in result.output


def test_swapped_events_are_named(billed: Settings, tmp_path: Path) -> None:
    swap = ("UPDATE events SET at = (SELECT at FROM events WHERE id = {b}), "
            "kind = (SELECT kind FROM events WHERE id = {b}), "
            "detail = (SELECT detail FROM events WHERE id = {b}), "
            "hash = (SELECT hash FROM events WHERE id = {b}), "
            "prev_hash = (SELECT prev_hash FROM events WHERE id = {b}) WHERE id = {a}")
    result = tampered(billed, tmp_path, "CREATE TABLE keep AS SELECT * FROM events WHERE id = 31",
                      swap.format(a=31, b=32),
                      "UPDATE events SET at = (SELECT at FROM keep), kind = (SELECT kind FROM "
                      "keep), detail = (SELECT detail FROM keep), hash = (SELECT hash FROM keep),"
                      " prev_hash = (SELECT prev_hash FROM keep) WHERE id = 32")
    assert result.exit_code == 1 and "BROKEN at event 31" in result.output


def test_an_older_store_gets_its_existing_events_chained(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        assert isinstance(script, str)
        db.executescript(script)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO events (at, key, kind, actor, detail) VALUES "
               "('2026-01-01T00:00:00+00:00', NULL, 'old_event', 'ar-sync', '{}')")
    db.commit()
    db.close()
    store = Store.open(path)
    from ar_sync.audit import verify

    with store.transaction():
        store.event(None, "new_event")
    assert verify(store) == (2, None)


def test_the_evidence_bundle(billed: Settings, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = invoke(billed, "audit", "export", "--from", "2000-01-01", "--to", "2100-01-01",
                    str(out))
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chain"]["verified"] is True
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    checks = [json.loads(line) for line in (out / "check_results.jsonl").open()]
    assert checks and all(c["rules_version"] and c["library_version"] for c in checks)
    held = [c for c in checks if not c["passed"]]
    assert held and all(c["findings"] for c in held)
    documents = list((out / "documents").iterdir())
    assert len(documents) == sum(1 for line in (out / "attempts.jsonl").open()
                                 if json.loads(line)["operation"] == "deliver")
    assert (out / "sod_conflicts.jsonl").read_text() == ""
