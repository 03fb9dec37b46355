"""The playbook's PO source over REST (``current_po``, ``set_invoice_po``) against the loopback
fake: one SuiteQL query for the order's PO, a ``PATCH`` of the invoice with its ``otherRefNum``
only, the invoice read back through the bulk SuiteQL read; NetSuite's refusals with its own
code; the same session, authentication and retries as every other call."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from netsuite_rest_fake import FakeNetSuite, rest_gateway, use_rest
from test_gateway_contract import ANCHOR
from test_playbook import Scripted, accept

from ar_sync.connector import RejectionReason
from ar_sync.errors import RejectedError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus
from ar_sync.netsuite.gateway import PurchaseOrderSource
from ar_sync.netsuite.rest.gateway import RestGateway
from ar_sync.netsuite.seed import build_demo_account


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeNetSuite]:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db") as server:
        yield server


@pytest.fixture
def gateway(fake: FakeNetSuite) -> Iterator[RestGateway]:
    with rest_gateway(fake) as gw:
        yield gw


def an_invoice(fake: FakeNetSuite) -> tuple[str, str]:
    """(internal id, its order's internal id) of an invoice the account holds already."""
    [row] = fake.account.suiteql("SELECT id, createdfrom FROM transaction WHERE type = "
                                 "'CustInvc' AND createdfrom IS NOT NULL ORDER BY id LIMIT 1")
    return str(row["id"]), str(row["createdfrom"])


def po_queries(fake: FakeNetSuite) -> list[str]:
    return [q for _, _, q in fake.stats.suiteql if q.startswith("SELECT otherrefnum ")]


def test_the_rest_gateway_is_a_po_source(gateway: RestGateway) -> None:
    assert isinstance(gateway, PurchaseOrderSource)


def test_current_po_is_the_orders_po_and_follows_a_change_in_netsuite(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    _, order_id = an_invoice(fake)
    order = fake.account.sandbox.get_order(order_id)
    assert order["otherRefNum"]
    assert gateway.current_po(order_id) == order["otherRefNum"]
    fake.account.sandbox.set_order_field(order_id, "otherRefNum", "PO-778899")
    assert gateway.current_po(order_id) == "PO-778899"
    fake.account.sandbox.set_order_field(order_id, "otherRefNum", "")
    assert gateway.current_po(order_id) == ""
    assert po_queries(fake) == [
        f"SELECT otherrefnum FROM transaction WHERE id = {order_id} AND type = 'SalesOrd'"] * 3
    assert fake.stats.requests["suiteql"] == 3


def test_current_po_of_an_order_netsuite_does_not_have_is_empty_as_in_the_sandbox(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    invoice_id, _ = an_invoice(fake)
    assert gateway.current_po("999999") == fake.account.sandbox.current_po("999999") == ""
    assert gateway.current_po(invoice_id) == ""  # an invoice is not a sales order
    assert fake.stats.requests["suiteql"] == 2
    for not_an_id in ("SO-1", "1 OR 1=1", "1'", "", "١٢"):  # never reaches a query
        assert gateway.current_po(not_an_id) == ""
    assert fake.stats.requests["suiteql"] == 2


def test_set_invoice_po_updates_only_the_po_and_returns_the_invoice_as_netsuite_has_it(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    invoice_id, _ = an_invoice(fake)
    before = fake.account.sandbox.read_invoices([invoice_id])[invoice_id]
    assert gateway.read_invoices([invoice_id])[invoice_id].po_number == before.po_number
    updated = gateway.set_invoice_po(invoice_id, "PO-NEW-42")
    assert isinstance(updated, Invoice)
    assert (updated.netsuite_id, updated.po_number) == (invoice_id, "PO-NEW-42")
    assert (updated.key, updated.total, updated.tax_total, updated.subtotal, updated.lines) == (
        before.key, before.total, before.tax_total, before.subtotal, before.lines)
    assert fake.account.sandbox.read_invoices([invoice_id])[invoice_id].po_number == "PO-NEW-42"
    assert fake.patches == [(invoice_id, {"otherRefNum": "PO-NEW-42"})]
    assert fake.stats.requests["patch"] == 1 and fake.stats.statuses[204] == 1
    assert gateway.client.sent["update"] == 1
    # the read-back is the bulk invoice read, not a record GET
    assert any("t.id IN (" + invoice_id + ")" in q for _, _, q in fake.stats.suiteql[-1:])


def test_set_invoice_po_on_an_unknown_invoice_is_refused_with_netsuites_code(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    with pytest.raises(RejectedError) as caught:
        gateway.set_invoice_po("999999", "PO-1")
    assert caught.value.remote_code == "NONEXISTENT_ID"
    assert caught.value.code == "INVALID_REFERENCE" and caught.value.field == "id"
    assert "The record instance does not exist." in str(caught.value)
    assert fake.stats.requests["patch"] == 1 and fake.stats.statuses[404] == 1
    assert fake.patches == []


def test_a_refused_po_value_keeps_netsuites_code_and_path(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    invoice_id, _ = an_invoice(fake)
    fake.inject("status", route="patch", status=400, code="INVALID_FLD_VALUE",
                detail="Invalid value for field otherRefNum.", path="otherRefNum")
    with pytest.raises(RejectedError) as caught:
        gateway.set_invoice_po(invoice_id, "PO-X")
    assert (caught.value.remote_code, caught.value.code, caught.value.field) == (
        "INVALID_FLD_VALUE", "INVALID_DATA", "otherRefNum")
    assert fake.stats.requests["patch"] == 1  # a refusal is not retried


def test_set_invoice_po_refuses_what_is_not_an_id_without_sending(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    with pytest.raises(RejectedError) as caught:
        gateway.set_invoice_po("../salesOrder/1", "PO-1")
    assert caught.value.field == "id"
    with pytest.raises(ValueError):
        gateway.set_invoice_po(an_invoice(fake)[0], "")
    assert fake.stats.requests["patch"] == 0


@pytest.mark.parametrize("auth", ["oauth2", "tba"])
def test_po_calls_are_authenticated_and_retried_like_every_other_call(
        fake: FakeNetSuite, auth: str) -> None:
    invoice_id, order_id = an_invoice(fake)
    slept: list[float] = []
    with rest_gateway(fake, auth=auth, sleep=slept.append) as gateway:
        suiteql = fake.inject("status", route="suiteql", status=503, match="otherrefnum")
        patch = fake.inject("status", route="patch", status=503, times=2)
        assert gateway.current_po(order_id)
        assert gateway.set_invoice_po(invoice_id, "PO-RETRIED").po_number == "PO-RETRIED"
    assert suiteql.times == patch.times == 0
    assert fake.stats.requests["patch"] == 3 and fake.stats.statuses[503] == 3
    assert fake.patches == [(invoice_id, {"otherRefNum": "PO-RETRIED"})]
    assert len(slept) == 3  # the client's backoff, not a hand-rolled loop
    assert fake.stats.statuses[401] == 0


def test_a_patch_that_may_have_landed_without_an_answer_is_resent(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    """Setting the same PO twice changes nothing: unlike a transform, it is safe to resend."""
    invoice_id, _ = an_invoice(fake)
    fake.inject("drop_after", route="patch")
    assert gateway.set_invoice_po(invoice_id, "PO-AGAIN").po_number == "PO-AGAIN"
    assert fake.stats.requests["patch"] == 2 and fake.stats.dropped == 1
    assert fake.patches == [(invoice_id, {"otherRefNum": "PO-AGAIN"})] * 2


def test_the_playbook_refreshes_the_po_over_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A portal refuses an invoice's PO; the customer's AP puts a new PO on the sales order in
    NetSuite; the cycle re-reads it over REST, patches the invoice and resubmits once."""
    from ar_sync.config import load_settings
    from ar_sync.demo import write_demo_dir
    from ar_sync.pipeline import Cycle
    from ar_sync.store import State, Store

    as_of = dt.date(2026, 11, 30)
    config = write_demo_dir(tmp_path / "demo", as_of)
    with FakeNetSuite(config.parent / "state" / "sandbox.db") as server:
        for name, value in use_rest(config, server).items():
            monkeypatch.setenv(name, value)
        settings = load_settings(config)
        store = Store.open(settings.state_path)
        gateway = RestGateway.from_settings(settings)
        refused: dict[str, str] = {}

        def coupa(conn: Scripted, inv: Invoice) -> DeliveryOutcome:
            if not refused:
                refused[inv.key] = inv.po_number
                server.account.sandbox.set_order_field(inv.order_number, "otherRefNum",
                                                       inv.po_number[:-1] + "9")
            if inv.key in refused and inv.po_number == refused[inv.key]:
                return DeliveryOutcome(OutcomeStatus.REJECTED,
                                       reason_code=RejectionReason.INVALID_PO,
                                       remote_code="500", remote_text="Invalid Coupa PO number")
            return accept(conn, inv)

        channels = {"coupa": Scripted("coupa", coupa), "ariba": Scripted("ariba", accept),
                    "email": Scripted("email", accept), "peppol": Scripted("peppol", accept)}
        try:
            Cycle(settings, store, gateway, dict(channels), as_of=as_of).run()
            [(key, old_po)] = refused.items()
            new_po = old_po[:-1] + "9"
            row = store.unit(key)
            assert row is not None and row["state"] == State.DELIVERED
            assert row["delivery_ref"].endswith(new_po)
            kinds = [r["kind"] for r in store.rows("SELECT kind FROM events WHERE key = ?",
                                                   (key,))]
            assert kinds.count("po_resubmitted") == 1
            assert [i.po_number for i in channels["coupa"].sent if i.key == key] == [
                old_po, new_po]
            found = gateway.find_invoices([key])[key]
            assert found.po_number == new_po
            assert server.patches == [(found.netsuite_id, {"otherRefNum": new_po})]
        finally:
            gateway.close()
            store.close()
