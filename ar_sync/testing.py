"""Test kit for connector authors: a sample invoice and a conformance class to subclass.

::

    from ar_sync.testing import ConnectorConformance

    class TestMyPortal(ConnectorConformance):
        @pytest.fixture
        def connector(self, tmp_path):
            return MyPortalConnector("myportal", {...})

The class checks the contract every connector owes the cycle: a deterministic rendering,
an accepted submission carries a reference, ``status`` finds what was submitted and
nothing else, and a second submission of the same invoice is never silently accepted as a
new document.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ar_sync.connector import Connector
from ar_sync.models import (
    Address,
    Customer,
    Invoice,
    InvoiceLine,
    OutcomeStatus,
    Terms,
)


def sample_invoice(key: str = "so:100:2026-11-01", **changes: Any) -> Invoice:
    """A small, valid invoice as NetSuite created it."""
    customer = Customer(
        id="501", entity_id="CUST-1001", name="Northwind Traders Inc.",
        bill_to=Address("Northwind Traders Inc.", "100 Market St", "Suite 300",
                        "San Francisco", "CA", "94105", "US"),
        terms=Terms("Net 30", 30), currency="USD", email="ap@northwind.example.com")
    lines = (
        InvoiceLine(1, "PLAT-ENT", "Platform subscription, Enterprise", Decimal(12),
                    Decimal("95.00"), Decimal("1140.00"), "CA-STATE", Decimal("7.25"),
                    Decimal("82.65"), units="EA"),
        InvoiceLine(2, "SUP-PREM", "Premium support", Decimal(1), Decimal("250.00"),
                    Decimal("250.00"), "CA-STATE", Decimal("7.25"), Decimal("18.13"),
                    units="MON"),
    )
    invoice = Invoice(
        key=key, order_id="100", order_number="SO-10100", customer=customer,
        tran_date=dt.date(2026, 11, 1), due_date=dt.date(2026, 12, 1), currency="USD",
        po_number="PO-445566", lines=lines, subtotal=Decimal("1390.00"),
        tax_total=Decimal("100.78"), total=Decimal("1490.78"),
        period_start=dt.date(2026, 11, 1), period_end=dt.date(2026, 11, 30),
        netsuite_id="9001", tran_id="INV-9001", entity_name="Northwind Traders Inc.",
        contract_start=dt.date(2026, 1, 1), contract_end=dt.date(2026, 12, 31))
    return dataclasses.replace(invoice, **changes)


class ConnectorConformance:
    """Subclass and provide a ``connector`` fixture."""

    @pytest.fixture
    def connector(self) -> Connector:
        pytest.fail("a ConnectorConformance subclass must provide a `connector` fixture")

    def test_render_is_deterministic(self, connector: Connector) -> None:
        inv = sample_invoice()
        assert connector.render(inv).body == connector.render(inv).body
        assert connector.render(inv).key == inv.key

    def test_accepted_submission_has_a_reference(self, connector: Connector) -> None:
        inv = sample_invoice()
        outcome = connector.submit(inv, connector.render(inv))
        assert outcome.status in (OutcomeStatus.ACCEPTED, OutcomeStatus.PENDING)
        assert outcome.reference

    def test_status_finds_what_was_submitted(self, connector: Connector) -> None:
        inv = sample_invoice("so:101:2026-11-01")
        assert connector.status(inv.key) is None
        sent = connector.submit(inv, connector.render(inv))
        seen = connector.status(inv.key)
        assert seen is not None and seen.reference == sent.reference

    def test_second_submission_is_not_a_new_document(self, connector: Connector) -> None:
        inv = sample_invoice("so:102:2026-11-01")
        first = connector.submit(inv, connector.render(inv))
        second = connector.submit(inv, connector.render(inv))
        assert second.status is OutcomeStatus.REJECTED or second.reference == first.reference
