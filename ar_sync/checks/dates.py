"""Date rules: an open period, the right due date, service inside the term, no double billing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from ar_sync.checks import CheckContext, finding, rule
from ar_sync.models import Finding, Invoice


@rule("dates.invoice_date", "The invoice date is in an open period and not in the future")
def invoice_date(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.tran_date > ctx.as_of:
        yield finding("dates.invoice_date", "tranDate", inv.tran_date, f"on or before {ctx.as_of}",
                      f"Invoice date {inv.tran_date} is in the future.")
    if ctx.closed_through and inv.tran_date <= ctx.closed_through:
        yield finding("dates.invoice_date", "tranDate", inv.tran_date,
                      f"after {ctx.closed_through} (periods up to then are closed)",
                      f"Invoice date {inv.tran_date} falls in a closed accounting period; "
                      "post it in the open period or ask accounting to reopen it.")


@rule("dates.due_date", "The due date is the invoice date plus the payment terms")
def due_date(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    expected = inv.tran_date + dt.timedelta(days=inv.customer.terms.days)
    if inv.due_date != expected:
        yield finding("dates.due_date", "dueDate", inv.due_date, str(expected),
                      f"Due date {inv.due_date} is not invoice date {inv.tran_date} + "
                      f"{inv.customer.terms.name} ({expected}).")


@rule("dates.service_in_term", "The service period lies inside the contract term")
def service_in_term(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    start, end = inv.period_start, inv.period_end
    if start and end and end < start:
        yield finding("dates.service_in_term", "endDate", end, f"on or after {start}",
                      f"The service period ends ({end}) before it starts ({start}).")
    cs, ce = inv.contract_start, inv.contract_end
    if start and end and cs and ce and (start < cs or end > ce):
        yield finding("dates.service_in_term", "startDate/endDate", f"{start} to {end}",
                      f"within {cs} to {ce}",
                      f"Sales order {inv.order_number} bills service from {start} to {end}, "
                      f"outside its contract term {cs} to {ce}.")


@rule("dates.no_overlap", "The period was not invoiced already for the same order")
def no_overlap(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    start, end = inv.period_start, inv.period_end
    if not (start and end):
        return
    for other in ctx.existing:
        if (other.order_id == inv.order_id and other.external_id != inv.key
                and other.netsuite_id != inv.netsuite_id and other.period_start
                and other.period_end and other.period_start <= end
                and start <= other.period_end):
            yield finding("dates.no_overlap", "startDate/endDate", f"{start} to {end}",
                          f"no overlap with {other.period_start} to {other.period_end}",
                          f"Invoice {other.tran_id} already bills sales order {inv.order_number} "
                          f"for {other.period_start} to {other.period_end}, which overlaps "
                          f"{start} to {end}: the same service would be billed twice.")


@rule("dates.renewal_continuity", "A renewal starts the day after the renewed term ends")
def renewal_continuity(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    previous = inv.renews_term_ending
    start = inv.contract_start or inv.period_start
    if previous is None or start is None:
        return
    expected = previous + dt.timedelta(days=1)
    if start != expected:
        gap = (start - expected).days
        what = f"a gap of {gap} day(s)" if gap > 0 else f"an overlap of {-gap} day(s)"
        yield finding("dates.renewal_continuity", "startDate", start, str(expected),
                      f"Renewal {inv.order_number} starts {start}, but the term it renews ended "
                      f"{previous}: {what}. The renewal term should start {expected}.")
