"""The remediation playbook, each path through a real cycle on the demo account with scripted
channels: a PO that appears in NetSuite is put on the invoice and resubmitted once; bad
credentials stop the channel with one alert and no burnt invoices; a duplicate is
reconciled from the channel's status, never resent."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ar_sync.config import load_settings
from ar_sync.connector import Document, RejectionReason
from ar_sync.demo import write_demo_dir
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.pipeline import Cycle
from ar_sync.store import State, Store

ANCHOR = dt.date(2026, 11, 30)


class Scripted:
    """A channel whose answers the test decides; counts what it was sent."""

    def __init__(self, channel: str, answer: object) -> None:
        self.channel = channel
        self.answer = answer
        self.sent: list[Invoice] = []
        self.accepted: dict[str, str] = {}

    def render(self, invoice: Invoice) -> Document:
        return Document(invoice.key, "text/plain", "x.txt", invoice.po_number.encode())

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        self.sent.append(invoice)
        outcome = self.answer(self, invoice)  # type: ignore[operator]
        assert isinstance(outcome, DeliveryOutcome)
        if outcome.status is OutcomeStatus.ACCEPTED:
            self.accepted[invoice.key] = outcome.reference
        return outcome

    def status(self, key: str) -> DeliveryOutcome | None:
        ref = self.accepted.get(key)
        return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=ref) if ref else None


def accept(conn: Scripted, inv: Invoice) -> DeliveryOutcome:
    return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=f"ok:{inv.key}:{inv.po_number}")


def test_every_playbook_path(tmp_path: Path) -> None:
    settings = load_settings(write_demo_dir(tmp_path / "demo", ANCHOR))
    store = Store.open(settings.state_path)
    gateway = SandboxGateway.open(settings.sandbox_path)
    refused: dict[str, str] = {}

    def coupa(conn: Scripted, inv: Invoice) -> DeliveryOutcome:
        if not refused:  # the first Coupa invoice: refused; the customer's AP then sends the PO
            refused[inv.key] = inv.po_number
            gateway.set_order_field(inv.order_number, "otherRefNum", inv.po_number[:-1] + "9")
        if inv.key in refused and inv.po_number == refused[inv.key]:
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=RejectionReason.INVALID_PO,
                                   remote_code="500", remote_text="Invalid Coupa PO number")
        return accept(conn, inv)

    def ariba(conn: Scripted, inv: Invoice) -> DeliveryOutcome:
        return DeliveryOutcome(OutcomeStatus.REJECTED,
                               reason_code=RejectionReason.AUTHENTICATION, remote_code="401",
                               remote_text="SharedSecret mismatch")

    def email(conn: Scripted, inv: Invoice) -> DeliveryOutcome:
        if not conn.accepted:  # it arrived once already: the portal says duplicate
            conn.accepted[inv.key] = "earlier-copy"
            return DeliveryOutcome(OutcomeStatus.REJECTED,
                                   reason_code=RejectionReason.DUPLICATE, remote_code="417")
        return accept(conn, inv)

    channels = {"coupa": Scripted("coupa", coupa), "ariba": Scripted("ariba", ariba),
                "email": Scripted("email", email), "peppol": Scripted("peppol", accept)}
    try:
        Cycle(settings, store, gateway, dict(channels), as_of=ANCHOR).run()  # type: ignore[arg-type]
        [(key, old_po)] = refused.items()
        row = store.unit(key)
        assert row is not None and row["state"] == State.DELIVERED
        assert row["delivery_ref"].endswith(old_po[:-1] + "9")
        events = [r["kind"] for r in store.rows("SELECT kind FROM events WHERE key = ?", (key,))]
        assert events.count("po_resubmitted") == 1
        assert gateway.find_invoices([key])[key].po_number == old_po[:-1] + "9"

        alerts = store.rows("SELECT detail FROM events WHERE kind = 'channel_alert'")
        assert len(alerts) == 1 and json.loads(alerts[0]["detail"])["channel"] == "ariba"
        assert len(channels["ariba"].sent) == 1  # one invoice tried, the rest not burnt
        ariba_rows = store.rows("SELECT state FROM units WHERE channel = 'ariba' AND "
                                "netsuite_id IS NOT NULL")
        assert ariba_rows and {r["state"] for r in ariba_rows} == {State.RETRY}

        dup = [r for r in store.rows("SELECT key, detail FROM events WHERE kind = "
                                     "'duplicate_reconciled'")]
        assert len(dup) == 1 and json.loads(dup[0]["detail"])["reference"] == "earlier-copy"
        assert store.unit(dup[0]["key"])["state"] == State.DELIVERED  # type: ignore[index]
        assert len([i for i in channels["email"].sent if i.key == dup[0]["key"]]) == 1
    finally:
        gateway.close()
        store.close()
