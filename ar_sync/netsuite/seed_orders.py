"""Sales orders of the sandbox accounts: a :class:`Plan` and the NetSuite record it becomes.

A plan has its dates as offsets from an anchor day (see :mod:`.seed_catalog`); ``order_doc``
turns it into a sales order document once the anchor is known. The defaults are the clean
case; a plan's extra fields (``currency``, ``entity_name``, ``term_end``, ``by_hand``) are
how the demo account plants the problems the checklist must catch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from ar_sync.money import round_money
from ar_sync.netsuite.seed_catalog import Cust, Doc, Line, Offset, at, line_doc


@dataclass(frozen=True, slots=True)
class HandBill:
    """An invoice someone made by hand from an order, outside its billing run or schedule."""

    date: Offset
    lines: tuple[Line, ...]  # items of the order, with the quantities billed
    period: tuple[Offset, Offset] | None = None
    memo: str = ""


@dataclass(frozen=True, eq=False)
class Plan:
    """One sales order before its dates (offsets from the anchor) are known."""

    customer: Cust
    kind: str  # "oneoff", "monthly", "annual" or "milestone"
    start: Offset  # the order date; a subscription's first day; a project's start
    lines: tuple[Line, ...]
    status: str = "pendingBilling"
    po: str = ""
    memo: str = ""
    periods: int = 1  # months or years of a subscription
    billed: int = 0  # leading instalments (or the whole one-off order) invoiced before
    service: tuple[Offset, Offset] | None = None  # a one-off order's service period
    milestones: tuple[tuple[Offset, int, str], ...] = ()  # (date, percent, name)
    renews: Plan | None = None
    problem: str = ""
    currency: str = ""  # "": the customer's
    entity_name: str = ""  # "": the customer's name (else the name it had when entered)
    term_end: Offset | None = None  # an ``endDate`` other than the schedule's last day
    by_hand: tuple[HandBill, ...] = ()

    def sort_key(self) -> int:
        """Roughly days from the anchor, months counted as 30.44 days: anchor-independent."""
        return self.start[0] * 3044 + self.start[1] * 100


def order_doc(plan: Plan, internal_id: int, number: int, customer: Doc, anchor: dt.date,
              renews: tuple[str, str] | None = None) -> Doc:
    """The sales order record of ``plan``; ``renews`` is the renewed order's (id, tranId).

    ``startDate``/``endDate`` are the contract term: a subscription's whole term (every
    instalment inside it), a project's span, a one-off order's service period if any.
    """
    cur, tax = plan.currency or customer["currency"], customer["taxItem"]
    billed = _billed(plan)
    items = [line_doc(n, ln, tax, cur, billed.get(ln.item, Decimal(0)))
             for n, ln in enumerate(plan.lines, 1)]
    instalments = list(_instalments(plan, anchor, items, tax, cur))
    start, end = _term(plan, anchor, instalments)
    doc: Doc = {
        "internalId": str(internal_id), "tranId": f"SO-{number}",
        "entity": {"internalId": customer["internalId"],
                   "name": plan.entity_name or customer["companyName"]},
        "tranDate": at(anchor, plan.start).isoformat(), "status": plan.status,
        "currency": cur, "otherRefNum": plan.po, "memo": plan.memo,
        "startDate": start, "endDate": end, "item": items}
    if renews is not None:
        doc["custbody_renewal_of"] = {"internalId": renews[0], "name": renews[1]}
        doc["memo"] = f"Renewal of {renews[1]}, {plan.periods * 12} months from {start}"
    if plan.kind != "oneoff":
        milestone = plan.kind == "milestone"
        doc["billingSchedule"] = {
            "name": "Fixed bid 30/40/30" if milestone else f"{plan.kind.title()} in advance",
            "scheduleType": "fixedBidMilestone" if milestone else "standard",
            "frequency": "milestone" if milestone else
            "monthly" if plan.kind == "monthly" else "annually",
            "instalments": instalments}
    return doc


def _billed(plan: Plan) -> dict[str, Decimal]:
    """``quantityBilled`` per item of a one-off order: all of it once billed, else by hand.

    A scheduled order's lines stay at 0: its instalments say what was billed.
    """
    if plan.kind != "oneoff":
        return {}
    if plan.billed:
        return {ln.item: ln.quantity for ln in plan.lines}
    billed: dict[str, Decimal] = {}
    for bill in plan.by_hand:
        for ln in bill.lines:
            billed[ln.item] = billed.get(ln.item, Decimal(0)) + ln.quantity
    return billed


def _instalments(plan: Plan, anchor: dt.date, items: list[Doc], tax: str,
                 cur: str) -> Iterator[Doc]:
    if plan.kind in ("monthly", "annual"):
        step = 1 if plan.kind == "monthly" else 12
        for i in range(plan.periods):
            first = at(anchor, (plan.start[0] + step * i, plan.start[1]))
            last = at(anchor, (plan.start[0] + step * (i + 1), plan.start[1]))
            yield {"date": first.isoformat(), "periodStart": first.isoformat(),
                   "periodEnd": (last - dt.timedelta(days=1)).isoformat(),
                   "item": [dict(x) for x in items], "invoice": None}
    previous = at(anchor, plan.start)
    for offset, percent, name in plan.milestones:
        day, total = at(anchor, offset), plan.lines[0].rate
        share = Line("IMPL-FIXED", Decimal(1), round_money(total * percent / 100, cur))
        line = line_doc(1, share, tax, cur) | {
            "description": f"Implementation milestone: {name} ({percent}% of {total} {cur})"}
        yield {"date": day.isoformat(), "periodStart": previous.isoformat(),
               "periodEnd": day.isoformat(), "milestone": name, "percent": str(percent),
               "item": [line], "invoice": None}
        previous = day + dt.timedelta(days=1)


def _term(plan: Plan, anchor: dt.date, instalments: list[Doc]) -> tuple[str | None, str | None]:
    if instalments:
        start, end = instalments[0]["periodStart"], instalments[-1]["periodEnd"]
    elif plan.service:
        start, end = (at(anchor, plan.service[0]).isoformat(),
                      at(anchor, plan.service[1]).isoformat())
    else:
        return None, None
    return start, at(anchor, plan.term_end).isoformat() if plan.term_end else end
