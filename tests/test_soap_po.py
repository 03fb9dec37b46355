"""The playbook's PO source over SOAP (``current_po``, ``set_invoice_po``) against the fake over
NetSuite's real 2023_2 WSDL: ``get`` of the sales order, ``update`` of the invoice with its
``otherRefNum`` only, the invoice read back; every request validated against the XSDs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from netsuite_soap_fake import FakeSoap, Injected, soap_gateway, use_soap
from test_gateway_contract import ANCHOR
from test_playbook import Scripted, accept
from test_soap_gateway import fresh_copy

from ar_sync.connector import RejectionReason
from ar_sync.errors import RejectedError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus
from ar_sync.netsuite.gateway import PurchaseOrderSource


@pytest.fixture(scope="module")
def demo_account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ar_sync.netsuite.seed import build_demo_account

    path = tmp_path_factory.mktemp("soap-po") / "netsuite.db"
    build_demo_account(path, anchor=ANCHOR)
    return path


@pytest.fixture
def fake(tmp_path: Path, demo_account: Path) -> Iterator[FakeSoap]:
    with FakeSoap(fresh_copy(demo_account, tmp_path)) as server:
        yield server
        assert server.invalid == [] and server.invalid_responses == []


@pytest.fixture
def gateway(fake: FakeSoap, tmp_path: Path) -> Iterator[object]:
    gw = soap_gateway(fake, cache_dir=tmp_path / "cache")
    yield gw
    gw.close()


def an_invoice(fake: FakeSoap) -> tuple[str, str]:
    """(internal id, its order's internal id) of an invoice the account holds already."""
    invoice_id = fake.account.invoice_ids(None, None, None)[0]
    doc = fake.account.doc("invoices", invoice_id)
    assert doc is not None
    return invoice_id, str(doc["createdFrom"]["internalId"])


def test_the_soap_gateway_is_a_po_source(gateway: object) -> None:
    assert isinstance(gateway, PurchaseOrderSource)


def test_current_po_is_the_orders_po_and_follows_a_change_in_netsuite(
        fake: FakeSoap, gateway: PurchaseOrderSource) -> None:
    _, order_id = an_invoice(fake)
    order = fake.account.doc("sales_orders", order_id)
    assert order is not None and order["otherRefNum"]
    assert gateway.current_po(order_id) == order["otherRefNum"]
    fake.account.sandbox.set_order_field(order_id, "otherRefNum", "PO-778899")
    assert gateway.current_po(order_id) == "PO-778899"
    fake.account.sandbox.set_order_field(order_id, "otherRefNum", "")
    assert gateway.current_po(order_id) == ""
    assert fake.stats.requests["get"] == 3


def test_current_po_of_an_order_netsuite_does_not_have_is_empty_as_in_the_sandbox(
        fake: FakeSoap, gateway: PurchaseOrderSource) -> None:
    assert gateway.current_po("999999") == fake.account.sandbox.current_po("999999") == ""
    assert gateway.current_po("SO-1") == ""  # not an internal id: nothing sent
    assert fake.stats.requests["get"] == 1


def test_set_invoice_po_updates_only_the_po_and_returns_the_invoice_as_netsuite_has_it(
        fake: FakeSoap, gateway: PurchaseOrderSource) -> None:
    invoice_id, _ = an_invoice(fake)
    before = fake.account.sandbox.read_invoices([invoice_id])[invoice_id]
    updated = gateway.set_invoice_po(invoice_id, "PO-NEW-42")
    assert isinstance(updated, Invoice)
    assert (updated.netsuite_id, updated.po_number) == (invoice_id, "PO-NEW-42")
    assert (updated.key, updated.total, updated.tax_total, updated.lines) == (
        before.key, before.total, before.tax_total, before.lines)
    assert fake.account.sandbox.read_invoices([invoice_id])[invoice_id].po_number == "PO-NEW-42"
    assert fake.updates == [("Invoice", invoice_id, ["internalId", "otherRefNum"])]
    assert fake.stats.requests["update"] == 1 and fake.stats.requests["getList"] >= 1


def test_set_invoice_po_on_an_unknown_invoice_is_refused_with_netsuites_code(
        fake: FakeSoap, gateway: PurchaseOrderSource) -> None:
    with pytest.raises(RejectedError) as caught:
        gateway.set_invoice_po("999999", "PO-1")
    assert caught.value.remote_code == "RCRD_DSNT_EXIST"
    assert caught.value.code == "NETSUITE_REFUSED" and caught.value.field == "id"
    assert "That record does not exist." in str(caught.value)


def test_po_calls_are_signed_and_retried_like_every_other_call(
        fake: FakeSoap, gateway: PurchaseOrderSource) -> None:
    invoice_id, order_id = an_invoice(fake)
    fake.faults = [Injected("get", "concurrency"), Injected("update", "http503")]
    gateway.current_po(order_id)
    assert gateway.set_invoice_po(invoice_id, "PO-RETRIED").po_number == "PO-RETRIED"
    assert all(f.times == 0 for f in fake.faults)
    nonces = [n for n, _ in fake.stats.passports]
    assert len(nonces) == len(set(nonces)) == sum(fake.stats.requests.values()) - 2


def test_the_playbook_refreshes_the_po_over_soap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A portal refuses an invoice's PO; the customer's AP puts a new PO on the sales order in
    NetSuite; the cycle re-reads it over SOAP, updates the invoice and resubmits once."""
    from ar_sync.config import load_settings
    from ar_sync.demo import write_demo_dir
    from ar_sync.netsuite.soap.gateway import SoapGateway
    from ar_sync.pipeline import Cycle
    from ar_sync.store import State, Store

    as_of = dt.date(2026, 11, 30)
    config = write_demo_dir(tmp_path / "demo", as_of)
    with FakeSoap(config.parent / "state" / "sandbox.db") as server:
        for name, value in use_soap(config, server).items():
            monkeypatch.setenv(name, value)
        settings = load_settings(config)
        store = Store.open(settings.state_path)
        gateway = SoapGateway.from_settings(settings)
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
            Cycle(settings, store, gateway, dict(channels),  # type: ignore[arg-type]
                  as_of=as_of).run()
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
            assert gateway.find_invoices([key])[key].po_number == new_po
            assert [(kind, fields) for kind, _, fields in server.updates] == [
                ("Invoice", ["internalId", "otherRefNum"])]
        finally:
            gateway.close()
            store.close()
        assert server.invalid == [] and server.invalid_responses == []
