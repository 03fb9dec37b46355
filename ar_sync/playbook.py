"""The remediation playbook: what to do when a channel rejects an invoice, by reason.

Configuration, not code paths: ``[playbook]`` maps each reason of the shared taxonomy
(:class:`~ar_sync.connector.RejectionReason`) to one action, with defaults from the
documented guidance:

* ``refresh_po`` (missing or invalid PO): re-read the PO from NetSuite; if the order has a
  different, well-formed PO now, put it on the NetSuite invoice and resubmit **once**;
  otherwise hold for a person with the customer's AP contact and a drafted request for the PO.
* ``check_status`` (duplicate): ask the channel what it has; record it as delivered if the
  channel holds an accepted copy, else hold. Never resend blindly.
* ``stop_channel`` (authentication, channel not enabled): stop using the channel for the rest
  of the cycle, record one alert, and put the invoice back to retry later, so one bad
  credential does not burn through every invoice.
* ``hold_defect`` (format error): hold as a defect in ar-sync's document, not the customer's.
* ``hold``: hold for a person with the channel's code and text.

The pipeline calls :func:`after_rejection` right after a submission came back rejected, and
:func:`alert_channel` when a connector raised ``FatalError``; everything else is here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ar_sync.connector import RejectionReason
from ar_sync.errors import ArSyncError, TransientError
from ar_sync.models import DeliveryOutcome, Finding, Invoice, OutcomeStatus, Severity
from ar_sync.netsuite.gateway import PurchaseOrderSource

if TYPE_CHECKING:
    from ar_sync.pipeline import Cycle

R = RejectionReason


def action_for(cycle: Cycle, reason: str) -> str:
    """The configured action for ``reason`` (unknown reasons: ``hold``)."""
    field = reason.lower() if reason in R.__members__ else "other"
    return str(getattr(cycle.settings.model.playbook, field, "hold"))


def after_rejection(cycle: Cycle, key: str, channel: str, invoice: Invoice,
                    attempt: int | None, outcome: DeliveryOutcome) -> bool:
    """Follow the playbook for a rejection; False leaves it to the default hold."""
    action = action_for(cycle, outcome.reason_code or "OTHER")
    cycle.log.info("playbook", key=key, reason=outcome.reason_code, action=action)
    if action == "refresh_po":
        return _refresh_po(cycle, key, channel, invoice, attempt, outcome)
    if action == "check_status":
        return _check_status(cycle, key, channel, attempt, outcome)
    if action == "stop_channel":
        _finish(cycle, attempt, outcome)
        alert_channel(cycle, channel, f"{outcome.reason_code}: {outcome.remote_code} "
                      f"{outcome.remote_text}".strip())
        cycle._retry(key, "deliver", TransientError(
            f"channel {channel} is not usable ({outcome.reason_code}); retrying after it "
            "is fixed"))
        return True
    if action == "hold_defect":
        _hold(cycle, key, attempt, outcome, "channel.defect",
              f"{channel} refused the document as malformed ({outcome.remote_code}: "
              f"{outcome.remote_text}). This is a defect in the document ar-sync produced, "
              "not in the customer's data: report it with the stored document of this "
              "attempt; do not resend until it is fixed.")
        return True
    return False


def alert_channel(cycle: Cycle, channel: str, problem: str) -> None:
    """Stop using ``channel`` for this cycle and record one alert for it."""
    if channel in cycle.broken_channels:
        return
    cycle.broken_channels.add(channel)
    with cycle.store.transaction():
        cycle.store.event(None, "channel_alert", channel=channel, problem=problem,
                          action="stopped for this cycle; fix the channel's credentials or "
                          "enablement, then invoices are retried")
    cycle.log.error("channel_alert", channel=channel, problem=problem)


# -- the actions -----------------------------------------------------------------------------

def _refresh_po(cycle: Cycle, key: str, channel: str, invoice: Invoice, attempt: int | None,
                outcome: DeliveryOutcome) -> bool:
    gateway = cycle.gateway
    tried = any(r["kind"] == "po_resubmitted" for r in cycle.store.rows(
        "SELECT kind FROM events WHERE key = ? AND kind = 'po_resubmitted'", (key,)))
    po = ""
    if isinstance(gateway, PurchaseOrderSource) and not tried and invoice.netsuite_id:
        try:
            po = cycle._call(gateway.current_po, invoice.order_id).strip()
        except ArSyncError as exc:
            cycle.log.warning("po_reread_failed", key=key, error=str(exc))
    if po and po != invoice.po_number and _well_formed(cycle, invoice, po):
        with cycle.store.transaction():
            _finish(cycle, attempt, outcome)
            cycle.store.event(key, "po_resubmitted", previous=invoice.po_number, po=po,
                              reason=outcome.reason_code, remote_code=outcome.remote_code)
        assert invoice.netsuite_id is not None and isinstance(gateway, PurchaseOrderSource)
        updated = cycle._call(gateway.set_invoice_po, invoice.netsuite_id, po)
        cycle._deliver(key, channel, updated, False, lambda: None)
        return True
    why = ("the resubmission with the corrected PO was refused as well" if tried else
           f"NetSuite still has {'PO ' + po if po else 'no PO'} on sales order "
           f"{invoice.order_number}")
    request = po_request(cycle, invoice, channel, outcome)
    rule = "channel.missing_po" if outcome.reason_code == R.MISSING_PO else "channel.invalid_po"
    _hold(cycle, key, attempt, outcome, rule,
          f"{channel} refused the invoice for its PO ({outcome.remote_code}: "
          f"{outcome.remote_text}); {why}. Ask the customer for the PO (request drafted "
          f"below), put it on sales order {invoice.order_number} and rerun.\n\n"
          f"To: {request['to']}\nSubject: {request['subject']}\n\n{request['body']}",
          event=("po_request_drafted", request))
    return True


def po_request(cycle: Cycle, invoice: Invoice, channel: str,
               outcome: DeliveryOutcome) -> dict[str, str]:
    """A request for the PO, addressed to the customer's AP contact, for a person to send."""
    req = cycle.settings.requirements.get(invoice.customer.entity_id)
    contact = req.ap_contact if req and req.ap_contact else "Accounts Payable"
    address = req.ap_email if req and req.ap_email else invoice.customer.email
    seller = cycle.settings.model.seller
    problem = (f"the PO {invoice.po_number} is not valid in your system" if invoice.po_number
               and outcome.reason_code != R.MISSING_PO else "it carries no purchase order")
    subject = cycle.settings.model.playbook.po_request_subject.format(
        invoice=invoice.number, order=invoice.order_number, customer=invoice.customer.name)
    body = (f"Hello {contact},\n\nyour {channel} portal did not accept our invoice "
            f"{invoice.number} of {invoice.tran_date} for {invoice.total:,} {invoice.currency} "
            f"(our sales order {invoice.order_number}) because {problem}.\n"
            f"Could you send us the purchase order number to bill it against? We will "
            f"resubmit the invoice as soon as we have it.\n\nThank you,\n"
            f"{seller.name} Accounts Receivable\n{seller.email}")
    return {"to": f"{contact} <{address}>" if address else contact, "subject": subject,
            "body": body}


def _check_status(cycle: Cycle, key: str, channel: str, attempt: int | None,
                  outcome: DeliveryOutcome) -> bool:
    try:
        seen = cycle._connector(channel).status(key)
    except ArSyncError as exc:
        cycle.log.warning("duplicate_status_unavailable", key=key, error=str(exc))
        seen = None
    if seen is not None and seen.status is not OutcomeStatus.REJECTED and seen.reference:
        with cycle.store.transaction():
            _finish(cycle, attempt, outcome)
            cycle.store.event(key, "duplicate_reconciled", reference=seen.reference)
        cycle._record_delivery(key, None, seen)
        return True
    _hold(cycle, key, attempt, outcome, "channel.duplicate",
          f"{channel} already has an invoice with this number ({outcome.remote_code}: "
          f"{outcome.remote_text}) and its status does not show ours as accepted. Check the "
          "portal before doing anything; ar-sync will not resend it.")
    return True


def _finish(cycle: Cycle, attempt: int | None, outcome: DeliveryOutcome) -> None:
    if attempt is not None:
        with cycle.store.transaction():
            cycle.store.finish_attempt(attempt, "rejected", code=outcome.reason_code,
                                       reference=outcome.reference,
                                       message=f"{outcome.remote_code} {outcome.remote_text}"
                                       .strip())


def _hold(cycle: Cycle, key: str, attempt: int | None, outcome: DeliveryOutcome, rule: str,
          message: str, event: tuple[str, dict[str, str]] | None = None) -> None:
    finding = Finding(rule, Severity.ERROR, outcome.field or "-", outcome.remote_code or "-",
                      "the channel to accept it", message)
    with cycle.store.transaction():
        _finish(cycle, attempt, outcome)
        cycle.store.record_check(key, "delivery", [finding], *cycle.versions)
        if event is not None:
            cycle.store.event(key, event[0], **event[1])
        cycle._hold(key, "delivery", [finding])


def _well_formed(cycle: Cycle, invoice: Invoice, po: str) -> bool:
    req = cycle.settings.requirements.get(invoice.customer.entity_id)
    return not (req and req.po_pattern and not re.fullmatch(req.po_pattern, po))
