"""The outbox connector passes the connector conformance kit and writes what people read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ar_sync.connector import ConnectorLoadError, load_factory
from ar_sync.testing import ConnectorConformance, sample_invoice
from ar_sync_outbox import OutboxConnector


class TestOutboxConformance(ConnectorConformance):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> OutboxConnector:
        return OutboxConnector("email", {"directory": tmp_path / "out"})


def test_outbox_writes_json_and_a_readable_text(tmp_path: Path) -> None:
    conn = OutboxConnector("coupa", {"directory": tmp_path})
    inv = sample_invoice()
    outcome = conn.submit(inv, conn.render(inv))
    assert outcome.reference == "outbox:coupa/so_100_2026-11-01.json"
    data = json.loads((tmp_path / "so_100_2026-11-01.json").read_text())
    assert data["total"] == "1490.78" and data["po_number"] == "PO-445566"
    text = (tmp_path / "so_100_2026-11-01.txt").read_text()
    assert "INVOICE INV-9001" in text and "PO-445566" in text and "1,490.78" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_duplicate_submission_is_rejected_not_overwritten(tmp_path: Path) -> None:
    conn = OutboxConnector("email", {"directory": tmp_path})
    inv = sample_invoice()
    conn.submit(inv, conn.render(inv))
    before = (tmp_path / "so_100_2026-11-01.json").read_bytes()
    again = conn.submit(inv, conn.render(inv))
    assert again.reason_code == "DUPLICATE"
    assert (tmp_path / "so_100_2026-11-01.json").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_what_a_killed_write_left_behind_is_cleaned_up_on_the_next_start(
        tmp_path: Path) -> None:
    """A temp file older than the stale limit goes; a fresh one (a write in progress) and
    every published document stay."""
    import os
    import time

    from ar_sync_outbox import STALE_TEMP_SECONDS

    conn = OutboxConnector("email", {"directory": tmp_path})
    inv = sample_invoice()
    conn.submit(inv, conn.render(inv))
    stale, fresh = tmp_path / ".tmp-abc123", tmp_path / ".tmp-def456"
    stale.write_bytes(b'{"half')
    fresh.write_bytes(b'{"half')
    old = time.time() - STALE_TEMP_SECONDS - 5
    os.utime(stale, (old, old))
    OutboxConnector("email", {"directory": tmp_path})
    assert not stale.exists() and fresh.exists()
    assert (tmp_path / "so_100_2026-11-01.json").exists()


def test_outbox_is_found_through_its_entry_point() -> None:
    assert load_factory("outbox") is OutboxConnector
    with pytest.raises(ConnectorLoadError, match="unknown connector 'nope'.*outbox"):
        load_factory("nope")


def test_outbox_settings_are_validated() -> None:
    assert OutboxConnector.validate_settings({"directory": "x"}) == []
    problems = OutboxConnector.validate_settings({"dir": "x"})
    assert ("dir", "unknown key") in problems
    assert any(k == "directory" for k, _ in problems)
