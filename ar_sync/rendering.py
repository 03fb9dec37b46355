"""Human-readable renderings of an invoice (plain text, fits 100 columns)."""

from __future__ import annotations

from decimal import Decimal

from ar_sync.models import Invoice
from ar_sync.money import MINOR_UNITS, plain


def _fmt(amount: Decimal, currency: str) -> str:
    return f"{amount:,.{MINOR_UNITS.get(currency, 2)}f}"


def render_text(invoice: Invoice) -> str:
    """The invoice as a person reads it: parties, references, lines, totals."""
    c = invoice.customer
    cur = invoice.currency
    head = [
        f"INVOICE {invoice.number}",
        "",
        "Bill to:",
        *(f"  {line}" for line in c.bill_to.lines()),
        "",
        f"Customer:      {c.name} ({c.entity_id})",
        f"Invoice date:  {invoice.tran_date.isoformat()}",
        f"Terms:         {c.terms.name}",
        f"Due date:      {invoice.due_date.isoformat()}",
        f"PO number:     {invoice.po_number or '-'}",
        f"Sales order:   {invoice.order_number}",
    ]
    if invoice.period_start and invoice.period_end:
        head.append(f"Service:       {invoice.period_start} to {invoice.period_end}")
    rows = [f"{'#':>3}  {'Item':<44} {'Qty':>8} {'Rate':>13} {'Tax %':>6} {'Amount':>16}"]
    for line in invoice.lines:
        rows.append(
            f"{line.order_line:>3}  {line.description[:44]:<44} {plain(line.quantity):>8} "
            f"{_fmt(line.rate, cur):>13} {plain(line.tax_rate):>6} "
            f"{_fmt(line.amount, cur):>16}"
        )
    totals = [
        f"{'Subtotal':>88} {_fmt(invoice.subtotal, cur):>11}",
        f"{'Tax':>88} {_fmt(invoice.tax_total, cur):>11}",
        f"{'Total ' + cur:>88} {_fmt(invoice.total, cur):>11}",
    ]
    return "\n".join([*head, "", *rows, "", *totals, ""])
