"""The whole cycle with ``api = "soap"`` against the fake over NetSuite's real WSDL: every
due unit billed exactly once, the planted problems held, NetSuite's own code and message
on a per-record refusal, and injected faults ridden out."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netsuite_soap_fake import FakeSoap, Injected, use_soap

from ar_sync.config import load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle

AS_OF = dt.date(2026, 11, 30)


def units(config: Path) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(config.parent / "state" / "ar-sync.db")
    db.row_factory = sqlite3.Row
    try:
        return {r["key"]: dict(r) for r in db.execute("SELECT * FROM units")}
    finally:
        db.close()


def invoice_keys(config: Path) -> list[str]:
    db = sqlite3.connect(config.parent / "state" / "sandbox.db")
    try:
        return sorted(k for (k,) in db.execute(
            "SELECT external_id FROM invoices WHERE external_id LIKE 'so:%'"))
    finally:
        db.close()


def delivered(config: Path) -> list[str]:
    return sorted(k for k, u in units(config).items() if u["state"] == "delivered")


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """Where the sandbox gateway's uninterrupted run ends: the reference."""
    config = write_demo_dir(tmp_path_factory.mktemp("twin") / "demo", AS_OF)
    run_cycle(load_settings(config), as_of=AS_OF)
    return {k: (u["state"], u["hold_reason"]) for k, u in units(config).items()}


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return write_demo_dir(tmp_path / "demo", AS_OF)


@pytest.fixture
def fake(demo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSoap]:
    with FakeSoap(demo.parent / "state" / "sandbox.db") as server:
        for name, value in use_soap(demo, server).items():
            monkeypatch.setenv(name, value)
        yield server
        assert server.invalid == [] and server.invalid_responses == []


def test_a_cycle_over_soap_ends_where_the_sandbox_ends(
        demo: Path, fake: FakeSoap, twin: dict[str, tuple[str, str]]) -> None:
    fake.faults = [Injected("search", "concurrency"), Injected("addList", "concurrency"),
                   Injected("getList", "http503"), Injected("initializeList", "unexpected")]
    report = run_cycle(load_settings(demo), as_of=AS_OF)
    got = {k: (u["state"], u["hold_reason"]) for k, u in units(demo).items()}
    assert got == twin
    held = {u["order_number"]: u["hold_reason"] for u in units(demo).values()
            if u["state"] == "held"}
    assert held == PLANTED_PROBLEMS
    assert invoice_keys(demo) == delivered(demo)
    assert report.delivered == len(delivered(demo))
    assert all(f.times == 0 for f in fake.faults), "every injected fault was met"
    again = run_cycle(load_settings(demo), as_of=AS_OF)
    assert (again.created, again.adopted, again.delivered) == (0, 0, 0)
    assert invoice_keys(demo) == delivered(demo)
    nonces = [n for n, _ in fake.stats.passports]
    injected = 4  # answered with a fault before the passport is read
    assert len(nonces) == len(set(nonces)) == sum(fake.stats.requests.values()) - injected


def test_a_refused_record_is_held_with_netsuites_code_and_the_rest_goes_on(
        demo: Path, fake: FakeSoap, twin: dict[str, tuple[str, str]]) -> None:
    victim = next(k for k, (state, _) in sorted(twin.items()) if state == "delivered")
    fake.record_errors[victim] = ("VALID_PRD_REQD", "You must enter a valid period.")
    run_cycle(load_settings(demo), as_of=AS_OF)
    row = units(demo)[victim]
    assert row["state"] == "held"
    db = sqlite3.connect(demo.parent / "state" / "ar-sync.db")
    found = " ".join(str(r) for table in ("events", "attempts") for r in db.execute(
        f"SELECT * FROM {table} WHERE key = ?", (victim,)))
    db.close()
    assert "VALID_PRD_REQD" in found and "You must enter a valid period." in found
    assert victim not in invoice_keys(demo)
    assert len(delivered(demo)) == sum(1 for s, _ in twin.values() if s == "delivered") - 1
    assert json.dumps(sorted(invoice_keys(demo))) == json.dumps(delivered(demo))
