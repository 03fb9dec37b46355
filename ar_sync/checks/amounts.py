"""Arithmetic and source rules: lines that add up, and that come from the sales order."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from ar_sync.checks import CheckContext, finding, rule
from ar_sync.models import Finding, Invoice
from ar_sync.money import plain, round_money


@rule("lines.amount_matches", "Each line's amount is quantity × rate to the cent")
def amount_matches(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    for line in inv.lines:
        expected = round_money(line.quantity * line.rate, inv.currency)
        if line.amount != expected:
            yield finding(
                "lines.amount_matches", f"item[{line.order_line}].amount",
                f"{line.amount} {inv.currency}", f"{expected} {inv.currency}",
                f"Line {line.order_line} ({line.item}) amount is {line.amount} but quantity "
                f"{plain(line.quantity)} × rate {line.rate} = {expected} {inv.currency}; "
                f"correct the line on sales order {inv.order_number}.")


@rule("lines.positive", "No zero or negative lines unless the document is a credit")
def positive(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.is_credit:
        return
    for line in inv.lines:
        if line.amount <= 0 or line.quantity <= 0:
            yield finding("lines.positive", f"item[{line.order_line}].amount",
                          f"{plain(line.quantity)} × {line.rate} = {line.amount}",
                          "a positive quantity and amount",
                          f"Line {line.order_line} ({line.item}) of sales order "
                          f"{inv.order_number} bills {line.amount} {inv.currency}: portals reject "
                          "zero and negative lines on an invoice; remove it or issue a credit.")


@rule("lines.currency", "The invoice is in the customer's currency")
def currency(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.currency != inv.customer.currency:
        yield finding("lines.currency", "currency", inv.currency, inv.customer.currency,
                      f"Sales order {inv.order_number} is in {inv.currency} but "
                      f"{inv.customer.name} is billed in {inv.customer.currency}.")


@rule("totals.agree", "Subtotal, discount, shipping, tax and total agree")
def totals_agree(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    subtotal = sum((ln.amount for ln in inv.lines), Decimal(0))
    tax = sum((ln.tax_amount for ln in inv.lines), Decimal(0))
    total = inv.subtotal - inv.discount_total + inv.shipping + inv.tax_total
    checks = (("subTotal", inv.subtotal, subtotal, "the sum of the line amounts"),
              ("taxTotal", inv.tax_total, tax, "the sum of the line taxes"),
              ("total", inv.total, total, "subtotal − discount + shipping + tax"))
    for field, found, expected, what in checks:
        if found != expected:
            yield finding("totals.agree", field, f"{found} {inv.currency}",
                          f"{expected} {inv.currency}",
                          f"Invoice {field} is {found} but {what} is {expected} {inv.currency}.")


@rule("source.quantity", "No line bills more than remains to bill on the order line")
def quantity(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    for line in inv.lines:
        left = line.quantity_remaining
        if left is not None and line.quantity > left:
            yield finding("source.quantity", f"item[{line.order_line}].quantity",
                          plain(line.quantity), f"at most {plain(left)}",
                          f"Line {line.order_line} ({line.item}) bills {plain(line.quantity)}"
                          f" but only {plain(left)} remain unbilled on sales order "
                          f"{inv.order_number}: part of it was billed already.")


@rule("source.lines", "Every line comes from the sales order or its billing schedule",
      stages=("invoice",))
def lines_from_source(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.draft is None:
        return
    known = {(ln.order_line, ln.item) for ln in ctx.draft.lines}
    for line in inv.lines:
        if (line.order_line, line.item) not in known:
            yield finding("source.lines", f"item[{line.order_line}]", line.item,
                          "a line of the sales order",
                          f"NetSuite invoice {inv.number} has line {line.order_line} "
                          f"({line.item}) that is not on sales order {inv.order_number} or its "
                          "billing schedule.")


@rule("source.price", "Quantities and prices equal the order's", stages=("invoice",))
def price(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.draft is None:
        return
    ordered = {ln.order_line: ln for ln in ctx.draft.lines}
    for line in inv.lines:
        src = ordered.get(line.order_line)
        if src is None:
            continue
        for field, got, want in (("rate", line.rate, src.rate),
                                 ("quantity", line.quantity, src.quantity)):
            if got != want:
                yield finding("source.price", f"item[{line.order_line}].{field}", got, str(want),
                              f"NetSuite invoice {inv.number} line {line.order_line} has "
                              f"{field} {got} but the sales order says {want}.")


@rule("source.customer_po", "Customer and PO equal the order's", stages=("invoice",))
def customer_po(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.draft is None:
        return
    if inv.customer.id != ctx.draft.customer.id:
        yield finding("source.customer_po", "entity", inv.customer.entity_id,
                      ctx.draft.customer.entity_id,
                      f"NetSuite invoice {inv.number} is for {inv.customer.name}, but sales "
                      f"order {inv.order_number} is {ctx.draft.customer.name}'s.")
    if inv.po_number != ctx.draft.po_number:
        yield finding("source.customer_po", "otherRefNum", inv.po_number or "(empty)",
                      ctx.draft.po_number or "(empty)",
                      f"NetSuite invoice {inv.number} carries PO {inv.po_number or '(none)'} "
                      f"but sales order {inv.order_number} has {ctx.draft.po_number or 'none'}.")


@rule("netsuite.matches_draft", "NetSuite's totals and tax are the ones we drafted",
      stages=("invoice",))
def matches_draft(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    d = ctx.draft
    if d is None:
        return
    pairs = (("subTotal", inv.subtotal, d.subtotal), ("taxTotal", inv.tax_total, d.tax_total),
             ("total", inv.total, d.total), ("currency", inv.currency, d.currency))
    for field, got, want in pairs:
        if got != want:
            yield finding("netsuite.matches_draft", field, got, str(want),
                          f"NetSuite invoice {inv.number} has {field} {got} but ar-sync drafted "
                          f"{want}; check tax codes and line edits in NetSuite.")
