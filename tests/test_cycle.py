"""The whole cycle on the sandbox account: what a person running the demo would notice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ar_sync.cli import cli
from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.errors import AmbiguousError, ArSyncError, TransientError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.pipeline import Cycle
from ar_sync.runner import LockHeldError, run_cycle, state_lock
from ar_sync.store import State, Store
from ar_sync_outbox import OutboxConnector

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(write_demo_dir(tmp_path / "demo", AS_OF))


def units_by_state(settings: Settings) -> dict[str, dict[str, Any]]:
    store = Store.open(settings.state_path)
    try:
        return {r["key"]: dict(r) for r in store.rows("SELECT * FROM units")}
    finally:
        store.close()


def outbox_keys(settings: Settings) -> list[str]:
    files = sorted((settings.base / "outbox").glob("*/*.json"))
    return [json.loads(p.read_text())["key"] for p in files]


def sandbox_invoices(settings: Settings) -> list[str]:
    db = sqlite3.connect(settings.sandbox_path)
    try:
        return [r[0] for r in db.execute(
            "SELECT external_id FROM invoices WHERE external_id LIKE 'so:%'")]
    finally:
        db.close()


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(settings.path), *args])


def test_first_run_delivers_clean_orders_and_holds_each_planted_problem(
        settings: Settings) -> None:
    report = run_cycle(settings, as_of=AS_OF)
    units = units_by_state(settings)
    held = {u["order_number"]: u["hold_reason"] for u in units.values()
            if u["state"] == State.HELD}
    assert held == PLANTED_PROBLEMS
    delivered = sorted(k for k, u in units.items() if u["state"] == State.DELIVERED)
    assert len(delivered) == report.created == report.delivered == len(units) - len(held)
    assert sorted(outbox_keys(settings)) == delivered
    assert sorted(sandbox_invoices(settings)) == delivered
    assert report.reasons == {rule: list(PLANTED_PROBLEMS.values()).count(rule)
                              for rule in set(PLANTED_PROBLEMS.values())}


def test_a_second_run_creates_and_delivers_nothing_new(settings: Settings) -> None:
    run_cycle(settings, as_of=AS_OF)
    before = (sorted(outbox_keys(settings)), sorted(sandbox_invoices(settings)))
    again = run_cycle(settings, as_of=AS_OF)
    assert (again.created, again.delivered, again.held) == (0, 0, 0)
    assert again.still_held == len(PLANTED_PROBLEMS)
    assert (sorted(outbox_keys(settings)), sorted(sandbox_invoices(settings))) == before


def held_key(settings: Settings, order_number: str) -> str:
    return next(k for k, u in units_by_state(settings).items()
                if u["order_number"] == order_number)


def test_failures_show_fix_in_sandbox_and_rerun_delivers(settings: Settings) -> None:
    run_cycle(settings, as_of=AS_OF)
    order = next(o for o, rule in PLANTED_PROBLEMS.items() if rule == "po.required")
    key = held_key(settings, order)
    result = invoke(settings, "failures")
    assert result.exit_code == 0 and key in result.output
    assert "requires a PO number" in result.output
    assert max(map(len, result.output.splitlines())) <= 100
    shown = invoke(settings, "show", key)
    assert "po.required" in shown.output and "otherRefNum" in shown.output
    entity = units_by_state(settings)[key]["customer_entity"]
    hint = settings.requirements[entity].po_pattern_hint
    assert invoke(settings, "sandbox", "set-order", order, "otherRefNum", hint).exit_code == 0
    result = invoke(settings, "rerun", key, "--as-of", AS_OF.isoformat(), "--as", "alice")
    assert result.exit_code == 0, result.output
    assert f"{key}: delivered" in result.output
    assert key in outbox_keys(settings)
    story = json.loads(invoke(settings, "show", key, "--json").output)
    kinds = [e["kind"] for e in story["events"]]
    assert kinds[-4:] == ["rerun_requested", "source_changed", "invoice_created",
                          "invoice_delivered"]
    assert story["events"][-4]["actor"] == "alice"


def test_a_fix_in_netsuite_is_picked_up_by_the_next_cycle_without_rerun(
        settings: Settings) -> None:
    run_cycle(settings, as_of=AS_OF)
    order = next(o for o, rule in PLANTED_PROBLEMS.items() if rule == "lines.amount_matches")
    gw = SandboxGateway.open(settings.sandbox_path)
    doc = gw.get_order(order)
    line = next(ln for ln in doc["item"] if ln["amount"] != str(
        (Decimal(ln["quantity"]) * Decimal(ln["rate"])).quantize(Decimal("0.01"))))
    fixed = (Decimal(line["quantity"]) * Decimal(line["rate"])).quantize(Decimal("0.01"))
    gw.set_order_field(order, f"item[{line['line']}].amount", str(fixed))
    gw.close()
    report = run_cycle(settings, as_of=AS_OF)
    assert report.delivered == 1 and report.still_held == len(PLANTED_PROBLEMS) - 1
    assert held_key(settings, order) in outbox_keys(settings)


def plain_order(settings: Settings) -> str:
    """A clean sales order billed in full (no billing schedule)."""
    gw = SandboxGateway.open(settings.sandbox_path)
    try:
        units = [u for batch in gw.iter_billable(AS_OF, 500) for u in batch]
    finally:
        gw.close()
    return next(u.order_number for u in units if u.kind == "order"
                and u.order_number not in PLANTED_PROBLEMS)


class ClosesOrderFirst:
    """The sandbox, where someone closes one order in NetSuite just before we bill it."""

    def __init__(self, inner: SandboxGateway, order: str) -> None:
        self.inner, self.order, self.name = inner, order, "sandbox"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create_invoices(self, drafts: Sequence[Invoice]) -> list[Invoice | ArSyncError]:
        if any(d.order_number == self.order for d in drafts):
            self.inner.set_order_field(self.order, "status", "closed")
        return self.inner.create_invoices(drafts)


def test_netsuite_refusal_holds_the_unit_with_netsuites_message(settings: Settings) -> None:
    order = plain_order(settings)
    gw = ClosesOrderFirst(SandboxGateway.open(settings.sandbox_path), order)
    report = cycle(settings, gw).run()
    units = units_by_state(settings)
    refused = [u for u in units.values() if u["order_number"] == order]
    assert refused and all(u["state"] == State.HELD and u["hold_stage"] == "netsuite"
                           for u in refused)
    story = json.loads(invoke(settings, "show", refused[0]["key"], "--json").output)
    create = [a for a in story["attempts"] if a["operation"] == "create"][-1]
    assert create["outcome"] == "rejected" and "closed" in create["message"]
    assert create["code"] == "INVALID_INITIALIZE_REF"  # NetSuite's own code
    assert report.delivered == len(units) - len(PLANTED_PROBLEMS) - len(refused)


class Flaky:
    """The sandbox, with failures injected into chosen calls."""

    def __init__(self, inner: SandboxGateway, fail: dict[str, list[Exception]],
                 effect_first: bool = False) -> None:
        self.inner, self.fail, self.effect_first = inner, fail, effect_first
        self.name = "sandbox"
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        def call(*args: Any) -> Any:
            self.calls.append(name)
            queue = self.fail.get(name)
            if queue:
                exc = queue.pop(0)
                if self.effect_first:  # the request reached NetSuite, the answer was lost
                    target(*args)
                raise exc
            return target(*args)

        return call


def cycle(settings: Settings, gateway: Any, **kw: Any) -> Cycle:
    store = Store.open(settings.state_path)
    return Cycle(settings, store, gateway, as_of=AS_OF, **kw)


def fast_retries(settings: Settings) -> Settings:
    retry = settings.model.retry.model_copy(update={"in_call_wait_seconds": 0,
                                                    "base_seconds": 1})
    settings.model = settings.model.model_copy(update={"retry": retry})
    return settings


def test_transient_failures_are_retried_in_call_then_across_cycles(settings: Settings) -> None:
    settings = fast_retries(settings)
    inner = SandboxGateway.open(settings.sandbox_path)
    flaky = Flaky(inner, {"create_invoices": [TransientError("503 Service Unavailable")] * 3})
    first = cycle(settings, flaky).run()
    assert flaky.calls.count("create_invoices") >= 3  # bounded in-call retries happened
    assert first.retrying > 0
    store = Store.open(settings.state_path)
    store.conn.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
    second = cycle(settings, inner).run()
    units = units_by_state(settings)
    assert second.created == first.retrying
    assert [k for k, u in units.items() if u["state"] == State.RETRY] == []
    assert sorted(sandbox_invoices(settings)) == sorted(outbox_keys(settings))


def test_an_ambiguous_create_is_looked_up_and_adopted_never_created_twice(
        settings: Settings) -> None:
    settings = fast_retries(settings)
    inner = SandboxGateway.open(settings.sandbox_path)
    flaky = Flaky(inner, {"create_invoices": [AmbiguousError("read timed out")]},
                  effect_first=True)
    first = cycle(settings, flaky).run()
    assert first.created == 0 and first.retrying > 0
    store = Store.open(settings.state_path)
    store.conn.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
    second = cycle(settings, inner).run()
    assert second.adopted == first.retrying and second.created == 0
    invoices = sandbox_invoices(settings)
    assert len(invoices) == len(set(invoices)) == len(outbox_keys(settings))


class RejectingChannel(OutboxConnector):
    def submit(self, invoice: Invoice, document: Any) -> DeliveryOutcome:
        return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code="MISSING_PO",
                               remote_code="400", remote_text="PO number is required",
                               field="OrderReference")


def test_a_channel_rejection_holds_the_invoice_with_the_portals_answer(
        settings: Settings) -> None:
    gw = SandboxGateway.open(settings.sandbox_path)
    rejecting = RejectingChannel("coupa", {"directory": settings.base / "outbox" / "coupa"})
    report = cycle(settings, gw, connectors={"coupa": rejecting}).run()
    units = units_by_state(settings)
    coupa = [u for u in units.values() if u["channel"] == "coupa" and u["netsuite_id"]]
    assert coupa and all(u["state"] == State.HELD and u["hold_stage"] == "delivery"
                         and u["hold_reason"] == "channel.missing_po" for u in coupa)
    assert report.delivered == len([u for u in units.values() if u["state"] == "delivered"])
    # a business rejection is never resent blindly: only with --force, once the cause is fixed
    key = coupa[0]["key"]
    refused = invoke(settings, "rerun", key, "--as-of", AS_OF.isoformat())
    assert "--force" in refused.output and key not in outbox_keys(settings)
    forced = invoke(settings, "rerun", key, "--force", "--as-of", AS_OF.isoformat())
    assert f"{key}: delivered" in forced.output and key in outbox_keys(settings)


def test_only_one_process_works_a_state_file(settings: Settings) -> None:
    with state_lock(settings.state_path):
        with pytest.raises(LockHeldError, match=r"in use by pid \d+"):
            run_cycle(settings, as_of=AS_OF)
        result = invoke(settings, "run", "--once")
        assert result.exit_code == 1 and "in use by pid" in result.output


def test_an_unreadable_order_is_held_naming_the_field_and_the_rest_goes_on(
        settings: Settings) -> None:
    order = plain_order(settings)
    db = sqlite3.connect(settings.sandbox_path)
    where = "WHERE json_extract(doc, '$.tranId') = ?"
    doc = json.loads(db.execute(f"SELECT doc FROM sales_orders {where}", (order,)).fetchone()[0])
    good_rate = doc["item"][0]["rate"]
    doc["item"][0]["rate"] = "twelve"  # what a broken integration or import can leave behind
    db.execute(f"UPDATE sales_orders SET doc = ? {where}", (json.dumps(doc), order))
    db.commit()
    db.close()
    report = run_cycle(settings, as_of=AS_OF)
    units = units_by_state(settings)
    bad = units[next(k for k in units if k.endswith(":unreadable"))]
    assert bad["order_number"] == order and bad["state"] == State.HELD
    story = invoke(settings, "show", bad["key"]).output
    assert "line 1 rate" in story and "twelve" in story
    assert report.delivered == len(units) - len(PLANTED_PROBLEMS) - 1
    # fixed in NetSuite: the next cycle bills the order and the hold resolves itself
    gw = SandboxGateway.open(settings.sandbox_path)
    gw.set_order_field(order, "item[1].rate", good_rate)
    gw.close()
    again = run_cycle(settings, as_of=AS_OF)
    units = units_by_state(settings)
    assert again.delivered == 1 and units[bad["key"]]["state"] == State.RESOLVED


def test_cycle_exit_codes(settings: Settings, tmp_path: Path) -> None:
    assert invoke(settings, "run", "--once", "--as-of", AS_OF.isoformat()).exit_code == 0
    assert invoke(settings, "status", "--json").exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[netsuite]\napi = 'carrier-pigeon'\n")
    result = CliRunner().invoke(cli, ["--config", str(bad), "run", "--once"])
    assert result.exit_code == 2





def test_a_unit_netsuite_stops_listing_before_it_is_invoiced_is_held_not_lost(
        settings: Settings) -> None:
    settings = fast_retries(settings)
    inner = SandboxGateway.open(settings.sandbox_path)
    order = plain_order(settings)
    flaky = Flaky(inner, {"create_invoices": [TransientError("503")] * 3})
    cycle(settings, flaky).run()
    inner.set_order_field(order, "status", "closed")  # someone closed it in NetSuite meanwhile
    store = Store.open(settings.state_path)
    store.conn.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
    cycle(settings, inner).run()
    unit = next(u for u in units_by_state(settings).values() if u["order_number"] == order)
    assert (unit["state"], unit["hold_reason"]) == (State.HELD, "netsuite.not_billable")


class Capturing(OutboxConnector):
    sent: list[Invoice] = []

    def submit(self, invoice: Invoice, document: Any) -> DeliveryOutcome:
        Capturing.sent.append(invoice)
        return super().submit(invoice, document)


def test_channels_get_the_ap_mailbox_and_buyer_reference_from_the_library(
        settings: Settings) -> None:
    entity = next(e for e, r in settings.requirements.items() if r.channel == "email"
                  and r.ap_email)
    req = settings.requirements[entity]
    settings.requirements[entity] = dataclasses.replace(
        req, ap_email="invoices@library.example.com", buyer_reference="REF-7")
    Capturing.sent = []
    channel = Capturing("email", {"directory": settings.base / "outbox" / "email"})
    cycle(settings, SandboxGateway.open(settings.sandbox_path),
          connectors={"email": channel}).run()
    mine = [i for i in Capturing.sent if i.customer.entity_id == entity]
    assert mine and {(i.customer.email, i.buyer_reference) for i in mine} == {
        ("invoices@library.example.com", "REF-7")}
