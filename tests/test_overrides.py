"""Approving a finding, with segregation of duties; `check KEY` shows every rule."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ar_sync.cli import cli
from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle
from ar_sync.store import Store

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(write_demo_dir(tmp_path / "demo", AS_OF))
    run_cycle(s, as_of=AS_OF)
    return s


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(settings.path), *args])


def held(settings: Settings, rule: str) -> tuple[str, str]:
    order = next(o for o, r in PLANTED_PROBLEMS.items() if r == rule)
    store = Store.open(settings.state_path)
    try:
        row = store.rows("SELECT key FROM units WHERE order_number = ? ORDER BY key", (order,))[0]
    finally:
        store.close()
    return row["key"], order


def state_of(settings: Settings, key: str) -> dict[str, Any]:
    return json.loads(invoke(settings, "show", key, "--json").output)


def test_an_approved_finding_releases_the_invoice_on_the_next_cycle(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    key, _ = held(settings, "po.required")
    result = invoke(settings, "approve", key, "--rule", "po.required", "--as", "alice",
                    "--reason", "AP agreed by e-mail to pay without a PO this once")
    assert result.exit_code == 0, result.output
    assert "approved by alice" in result.output
    report = run_cycle(settings, as_of=AS_OF)
    assert report.delivered == 1
    story = state_of(settings, key)
    assert story["state"] == "delivered"
    assert story["approvals"][0]["actor"] == "alice"
    assert "this once" in story["approvals"][0]["reason"]
    event = next(e for e in story["events"] if e["kind"] == "finding_approved")
    assert event["actor"] == "alice" and event["detail"]["rule"] == "po.required"
    last_draft_check = [c for c in story["checks"] if c["stage"] == "draft"][-1]
    assert last_draft_check["passed"] == 1
    assert last_draft_check["findings"][0]["approval"] is not None


def test_approval_refusals(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    key, order = held(settings, "po.format")

    def approve(*extra: str) -> Any:
        return invoke(settings, "approve", key, "--reason", "the customer confirmed it",
                      *extra)

    assert "no open finding of rule 'po.required'" in approve("--rule", "po.required").output
    refused = approve("--rule", "po.format", "--as", "ar-sync")
    assert refused.exit_code == 2 and "service identity" in refused.output
    short = invoke(settings, "approve", key, "--rule", "po.format", "--reason", "ok")
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    # the person who changed the order through ar-sync may not approve it
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    assert invoke(settings, "sandbox", "set-order", order, "memo", "PO per e-mail").exit_code == 0
    mine = approve("--rule", "po.format")
    assert mine.exit_code == 2 and "'carol' last changed this invoice's data" in mine.output
    assert approve("--rule", "po.format", "--as", "dave").exit_code == 2  # still carol's login
    monkeypatch.setattr("getpass.getuser", lambda: "erin")
    assert approve("--rule", "po.format").exit_code == 0
    twice = invoke(settings, "approve", key, "--rule", "po.format", "--reason", "x" * 12)
    assert twice.exit_code == 2 and "no open finding" in twice.output


def test_an_approval_lapses_when_the_data_changes(settings: Settings) -> None:
    key, order = held(settings, "po.format")
    assert invoke(settings, "approve", key, "--rule", "po.format", "--as", "alice",
                  "--reason", "customer confirmed the odd PO").exit_code == 0
    assert invoke(settings, "sandbox", "set-order", order, "otherRefNum",
                  "ANOTHER BAD PO").exit_code == 0
    run_cycle(settings, as_of=AS_OF)
    story = state_of(settings, key)
    assert story["state"] == "held" and story["hold_reason"] == "po.format"


def test_check_prints_every_rule_passed_or_failed(settings: Settings) -> None:
    key, _ = held(settings, "lines.amount_matches")
    result = invoke(settings, "check", key, "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    assert "[FAIL] lines.amount_matches" in result.output
    assert "[ok  ] customer.bill_to_complete" in result.output
    data = json.loads(invoke(settings, "check", key, "--json", "--as-of",
                             AS_OF.isoformat()).output)
    statuses = {r["rule"]: r["status"] for r in data["results"]}
    assert statuses.pop("lines.amount_matches") == "failed"
    assert set(statuses.values()) == {"passed"} and len(statuses) >= 25
    assert data["stage"] == "draft" and data["rules_version"] and data["library_version"]
    delivered = json.loads(invoke(settings, "status", "--json").output)
    assert delivered["units"]["delivered"]["count"] > 0
