"""The first rules of the checklist: customer, address, arithmetic, PO, duplicates.

Each message names the field, what was found and what was expected, in words an AR
person acts on without opening the code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

from ar_sync.checks import CheckContext, rule
from ar_sync.models import Finding, Invoice, Severity
from ar_sync.money import round_money

E = Severity.ERROR
US_ZIP = re.compile(r"^\d{5}(-?\d{4})?$")


def _finding(rule_id: str, field: str, found: object, expected: str, message: str,
             severity: Severity = E) -> Finding:
    return Finding(rule_id, severity, field, str(found), expected, message)


@rule("customer.active", "The customer exists and is active")
def customer_active(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.customer.is_inactive:
        yield _finding("customer.active", "customer.isInactive", "inactive", "an active customer",
                       f"Customer {inv.customer.entity_id} ({inv.customer.name}) is inactive in "
                       "NetSuite; reactivate it or bill another customer.")


@rule("customer.bill_to_complete", "The bill-to address is complete for its country")
def bill_to_complete(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    a = inv.customer.bill_to
    who = f"customer {inv.customer.entity_id} ({inv.customer.name})"
    required = {"addr1": "street", "city": "city", "country": "country"}
    if a.country == "US":
        required |= {"state": "state", "zip": "ZIP code"}
    else:
        required |= {"zip": "postal code"}
    for attr, label in required.items():
        if not getattr(a, attr).strip():
            yield _finding("customer.bill_to_complete", f"billingAddress.{attr}", "(empty)",
                           f"a {label}", f"Bill-to address of {who} has no {label}.")
    if a.country == "US" and a.zip.strip() and not US_ZIP.match(a.zip.strip()):
        yield _finding("customer.bill_to_complete", "billingAddress.zip", a.zip,
                       "a 5- or 9-digit US ZIP code (12345 or 12345-6789)",
                       f"Bill-to ZIP code {a.zip!r} of {who} is not a valid US ZIP code.")


@rule("lines.amount_matches", "Each line's amount is quantity × rate to the cent")
def amount_matches(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    for line in inv.lines:
        expected = round_money(line.quantity * line.rate, inv.currency)
        if line.amount != expected:
            yield _finding(
                "lines.amount_matches", f"item[{line.order_line}].amount",
                f"{line.amount} {inv.currency}", f"{expected} {inv.currency}",
                f"Line {line.order_line} ({line.item}) amount is {line.amount} but quantity "
                f"{line.quantity.normalize()} × rate {line.rate} = {expected} {inv.currency}; "
                f"correct the line on sales order {inv.order_number}.")


@rule("totals.agree", "Subtotal, tax and total agree with the lines")
def totals_agree(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    subtotal = sum((ln.amount for ln in inv.lines), Decimal(0))
    tax = sum((ln.tax_amount for ln in inv.lines), Decimal(0))
    checks = (("subTotal", inv.subtotal, subtotal, "the sum of the line amounts"),
              ("taxTotal", inv.tax_total, tax, "the sum of the line taxes"),
              ("total", inv.total, inv.subtotal + inv.tax_total, "subtotal + tax"))
    for field, found, expected, what in checks:
        if found != expected:
            yield _finding("totals.agree", field, f"{found} {inv.currency}",
                           f"{expected} {inv.currency}",
                           f"Invoice {field} is {found} but {what} is {expected} {inv.currency}.")


@rule("po.required", "A PO number is present when the customer requires one")
def po_required(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    req = ctx.requirements
    if req and req.po_required and not inv.po_number.strip():
        contact = f" Ask AP at {req.ap_email} for the PO." if req.ap_email else ""
        yield _finding("po.required", "otherRefNum", "(empty)",
                       f"a PO number like {req.po_pattern_hint}" if req.po_pattern_hint
                       else "a PO number",
                       f"Customer {inv.customer.entity_id} ({inv.customer.name}) requires a PO "
                       f"number and sales order {inv.order_number} has none.{contact}")


@rule("po.format", "The PO number matches the customer's format")
def po_format(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    req = ctx.requirements
    po = inv.po_number.strip()
    if req and req.po_pattern and po and not re.fullmatch(req.po_pattern, po):
        hint = req.po_pattern_hint or req.po_pattern
        yield _finding("po.format", "otherRefNum", po, f"the format {hint}",
                       f"PO number {po!r} on sales order {inv.order_number} does not match "
                       f"{inv.customer.name}'s PO format ({hint}); the portal will reject it.")


@rule("duplicate.invoice", "No existing invoice has the same customer, PO, amount and period")
def duplicate_invoice(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    for other in ctx.existing:
        if (other.external_id != inv.key and other.netsuite_id != inv.netsuite_id
                and other.customer_id == inv.customer.id
                and other.po_number == inv.po_number and other.currency == inv.currency
                and other.total == inv.total and other.period_start == inv.period_start
                and other.period_end == inv.period_end):
            yield _finding("duplicate.invoice", "total", f"{inv.total} {inv.currency}",
                           "no earlier invoice for the same PO, amount and period",
                           f"Invoice {other.tran_id} already bills {inv.customer.name} "
                           f"{other.total} {other.currency} on PO {other.po_number or '(none)'} "
                           f"for the same period; sales order {inv.order_number} looks like a "
                           "duplicate.")


@rule("delivery.channel", "The customer's delivery channel is configured",
      stages=("draft",))
def channel_configured(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.channel not in ctx.channels:
        yield _finding("delivery.channel", "channel", ctx.channel or "(none)",
                       f"one of the configured channels: {', '.join(sorted(ctx.channels))}",
                       f"{inv.customer.name} receives invoices by {ctx.channel or '(no channel)'}"
                       ", which is not configured under [channels].")


@rule("netsuite.matches_draft", "NetSuite's invoice has the totals and lines we drafted",
      stages=("invoice",))
def matches_draft(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    d = ctx.draft
    if d is None:
        return
    pairs = (("subTotal", inv.subtotal, d.subtotal), ("taxTotal", inv.tax_total, d.tax_total),
             ("total", inv.total, d.total), ("lines", len(inv.lines), len(d.lines)),
             ("otherRefNum", inv.po_number, d.po_number), ("currency", inv.currency, d.currency))
    for field, got, want in pairs:
        if got != want:
            yield _finding("netsuite.matches_draft", field, got, str(want),
                           f"NetSuite invoice {inv.number} has {field} {got} but ar-sync drafted "
                           f"{want}; check tax codes and line edits in NetSuite.")
