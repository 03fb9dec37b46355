"""Channel and duplicate rules: what the customer's channel would reject, and double bills."""

from __future__ import annotations

from collections.abc import Iterator

from ar_sync.checks import CheckContext, finding, rule
from ar_sync.models import Finding, Invoice


@rule("duplicate.invoice", "No existing invoice has the same customer, PO, amount and period")
def duplicate_invoice(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    for other in ctx.existing:
        if (other.external_id != inv.key and other.netsuite_id != inv.netsuite_id
                and other.customer_id == inv.customer.id
                and other.po_number == inv.po_number and other.currency == inv.currency
                and other.total == inv.total and other.period_start == inv.period_start
                and other.period_end == inv.period_end):
            yield finding("duplicate.invoice", "total", f"{inv.total} {inv.currency}",
                          "no earlier invoice for the same PO, amount and period",
                          f"Invoice {other.tran_id} already bills {inv.customer.name} "
                          f"{other.total} {other.currency} on PO {other.po_number or '(none)'} "
                          f"for the same period; sales order {inv.order_number} looks like a "
                          "duplicate.")


@rule("delivery.channel", "The customer's delivery channel is configured", stages=("draft",))
def channel_configured(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.channel not in ctx.channels:
        yield finding("delivery.channel", "channel", ctx.channel or "(none)",
                      f"one of the configured channels: {', '.join(sorted(ctx.channels))}",
                      f"{inv.customer.name} receives invoices by {ctx.channel or '(no channel)'}"
                      ", which is not configured under [channels].")


@rule("channel.cxml", "cXML portals get PO line numbers and units of measure")
def cxml(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.profile != "cxml":
        return
    for line in inv.lines:
        if not line.units.strip():
            yield finding("channel.cxml", f"item[{line.order_line}].units", "(empty)",
                          "a unit of measure (EA, HUR, MON …)",
                          f"Line {line.order_line} ({line.item}) has no unit of measure; "
                          f"{ctx.channel} rejects cXML invoice lines without UnitOfMeasure.")
        if line.order_line <= 0:
            yield finding("channel.cxml", f"item[{line.order_line}].orderLine",
                          line.order_line, "the PO line number",
                          f"Line {line.item} has no PO line number; {ctx.channel} matches "
                          "invoice lines to PO lines by number.")


@rule("channel.peppol", "Peppol gets an endpoint id and a buyer or order reference")
def peppol(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.profile != "peppol":
        return
    if ":" not in inv.customer.peppol_id:
        yield finding("channel.peppol", "custentity_peppol_endpoint",
                      inv.customer.peppol_id or "(empty)", "scheme:identifier, e.g. 0088:…",
                      f"{inv.customer.name} has no Peppol endpoint id; the access point cannot "
                      "route the invoice.")
    buyer_ref = ctx.requirements.buyer_reference if ctx.requirements else ""
    if not inv.po_number.strip() and not buyer_ref.strip():
        yield finding("channel.peppol", "otherRefNum", "(empty)",
                      "a PO (order reference) or the customer's buyer reference",
                      f"Peppol BIS 3 needs a buyer reference or an order reference (BT-10/BT-13)"
                      f"; sales order {inv.order_number} has no PO and the library has no "
                      f"buyer_reference for {inv.customer.entity_id}.")
