"""From a billable unit to an invoice draft: pure, no I/O.

The draft copies what NetSuite's order or billing schedule says (quantities, rates and
amounts as given: if the order's amount is wrong, the checklist must see it, not have it
silently repaired) and computes tax and totals under the documented rounding rule.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ar_sync.models import BillableUnit, Invoice, InvoiceLine, UnitLine
from ar_sync.money import round_money


def line_tax(amount: Decimal, rate_percent: Decimal, currency: str) -> Decimal:
    """Tax on one line, rounded half-up to the currency's minor unit."""
    return round_money(amount * rate_percent / 100, currency)


def build_line(line: UnitLine, currency: str) -> InvoiceLine:
    return InvoiceLine(
        order_line=line.order_line,
        item=line.item,
        description=line.description,
        quantity=line.quantity,
        rate=line.rate,
        amount=line.amount,
        tax_code=line.tax_code,
        tax_rate=line.tax_rate,
        tax_amount=line_tax(line.amount, line.tax_rate, currency),
        units=line.units,
        quantity_remaining=line.quantity_remaining,
    )


def due_date(invoice_date: dt.date, terms_days: int) -> dt.date:
    return invoice_date + dt.timedelta(days=terms_days)


def build_draft(unit: BillableUnit) -> Invoice:
    """The invoice ar-sync will ask NetSuite to create for ``unit``."""
    lines = tuple(build_line(line, unit.currency) for line in unit.lines)
    subtotal = sum((ln.amount for ln in lines), Decimal(0))
    tax_total = sum((ln.tax_amount for ln in lines), Decimal(0))
    return Invoice(
        key=unit.key,
        order_id=unit.order_id,
        order_number=unit.order_number,
        customer=unit.customer,
        tran_date=unit.bill_date,
        due_date=due_date(unit.bill_date, unit.customer.terms.days),
        currency=unit.currency,
        po_number=unit.po_number,
        lines=lines,
        subtotal=subtotal,
        tax_total=tax_total,
        total=subtotal + tax_total,
        period_start=unit.period_start,
        period_end=unit.period_end,
        memo=unit.memo,
        entity_name=unit.entity_name or unit.customer.name,
        contract_start=unit.contract_start,
        contract_end=unit.contract_end,
        renews_term_ending=unit.renews_term_ending,
    )
