"""The state store's guarantees and the money rules."""

from __future__ import annotations

import sqlite3
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from ar_sync.money import Money, round_money, to_decimal
from ar_sync.store import MIGRATIONS, Store


def test_store_file_is_private_wal_and_versioned(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state" / "ar-sync.db")
    assert stat.S_IMODE((tmp_path / "state" / "ar-sync.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    again = Store.open(tmp_path / "state" / "ar-sync.db")  # reopening migrates nothing twice
    assert again.schema_version == len(MIGRATIONS)


def test_events_are_append_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    with store.transaction():
        store.event(None, "test_event", detail="x")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE events SET kind = 'edited'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM events")
    assert store.rows("SELECT kind FROM events")[0]["kind"] == "test_event"


def test_a_failed_transition_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.event(None, "half_done")
        raise RuntimeError("crash in the middle")
    assert store.rows("SELECT * FROM events") == []


def test_attempt_documents_are_stored_compressed_and_read_back(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    store.conn.execute("INSERT INTO units (key, kind, order_id, order_number, customer_id, "
                       "customer_entity, customer_name, channel, currency, total, bill_date, "
                       "state, fingerprint, draft, first_seen_at, updated_at) VALUES "
                       "('k','order','1','SO-1','1','C','C','email','USD','1','2026-01-01',"
                       "'new','f','{}','t','t')")
    body = b"<Invoice>" + b"x" * 5000 + b"</Invoice>"
    with store.transaction():
        attempt = store.begin_attempt("k", "channel:email", "deliver", body, "application/xml")
    assert store.document(attempt) == body
    raw = store.conn.execute("SELECT document FROM attempts").fetchone()[0]
    assert len(raw) < len(body) / 10


def test_money_rounds_half_up_to_the_minor_unit() -> None:
    assert round_money(Decimal("2.675"), "USD") == Decimal("2.68")
    assert round_money(Decimal("2.665"), "EUR") == Decimal("2.67")
    assert round_money(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert str(Money(Decimal("1234.5"), "USD")) == "1,234.50 USD"


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(ValueError, match="float"):
        to_decimal(0.1, what="item[1].rate")
    with pytest.raises(ValueError, match=r"item\[1\].rate: 'abc' is not a number"):
        to_decimal("abc", what="item[1].rate")
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="USD with EUR"):
        Money(Decimal(1), "USD") + Money(Decimal(1), "EUR")


def test_online_backup_is_a_private_consistent_copy(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    with store.transaction():
        store.event(None, "before_backup")
    store.backup(tmp_path / "copy.db")
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT kind FROM events").fetchall() == [("before_backup",)]
    with pytest.raises(FileExistsError):
        store.backup(tmp_path / "copy.db")
