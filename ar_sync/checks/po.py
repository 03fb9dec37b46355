"""PO rules: present, well-formed, not expired, not over-invoiced."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

from ar_sync.checks import CheckContext, finding, rule
from ar_sync.models import Finding, Invoice


@rule("po.required", "A PO number is present when the customer requires one")
def required(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    req = ctx.requirements
    if req and req.po_required and not inv.po_number.strip():
        contact = f" Ask AP at {req.ap_email} for the PO." if req.ap_email else ""
        yield finding("po.required", "otherRefNum", "(empty)",
                      f"a PO number like {req.po_pattern_hint}" if req.po_pattern_hint
                      else "a PO number",
                      f"Customer {inv.customer.entity_id} ({inv.customer.name}) requires a PO "
                      f"number and sales order {inv.order_number} has none.{contact}")


@rule("po.format", "The PO number matches the customer's format")
def format_(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    req = ctx.requirements
    po = inv.po_number.strip()
    if req and req.po_pattern and po and not re.fullmatch(req.po_pattern, po):
        hint = req.po_pattern_hint or req.po_pattern
        yield finding("po.format", "otherRefNum", po, f"the format {hint}",
                      f"PO number {po!r} on sales order {inv.order_number} does not match "
                      f"{inv.customer.name}'s PO format ({hint}); the portal will reject it.")


@rule("po.not_expired", "The PO has not expired by the invoice date")
def not_expired(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    known = ctx.requirements.purchase_orders.get(inv.po_number) if ctx.requirements else None
    if known and known.expires and known.expires < inv.tran_date:
        yield finding("po.not_expired", "otherRefNum", f"{inv.po_number} expired {known.expires}",
                      f"a PO valid on {inv.tran_date}",
                      f"PO {inv.po_number} of {inv.customer.name} expired on {known.expires}, "
                      f"before the invoice date {inv.tran_date}; ask the customer for a new PO.")


@rule("po.within_amount", "Everything invoiced on the PO stays within its amount")
def within_amount(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    known = ctx.requirements.purchase_orders.get(inv.po_number) if ctx.requirements else None
    if not known or known.amount is None:
        return
    if known.currency and known.currency != inv.currency:
        return  # a PO in another currency is a human's call; lines.currency covers the rest
    billed = sum((o.total for o in ctx.existing if o.po_number == inv.po_number
                  and o.currency == inv.currency and o.external_id != inv.key
                  and o.netsuite_id != inv.netsuite_id), Decimal(0))
    if billed + inv.total > known.amount:
        yield finding("po.within_amount", "otherRefNum",
                      f"{billed + inv.total} {inv.currency} invoiced in total",
                      f"at most {known.amount} {inv.currency}",
                      f"PO {inv.po_number} is for {known.amount} {inv.currency}; "
                      f"{billed} is invoiced already and this invoice adds {inv.total}, "
                      f"{billed + inv.total - known.amount} over. The portal will reject it as "
                      "over-invoiced; ask the customer to raise the PO.")
