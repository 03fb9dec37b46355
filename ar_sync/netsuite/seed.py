"""Deterministic sandbox accounts: the demo account, and a large generated one for benchmarks.

The demo account is what a newcomer watches ar-sync bill: Meridian Cloud Systems, a B2B
SaaS supplier with 35 customers in the US and Europe and 119 sales orders of every
kind the cycle handles, plus a deliberate share of the problems an AR specialist meets
(:data:`PLANTED_PROBLEMS`, in :mod:`.seed_plants`). Quantities and PO numbers come from
``random.Random(2026)``; dates are relative to ``anchor`` (the day the file is created) so
there is always work due "today", and two builds with the same anchor are identical. Which
order gets which number does not depend on the anchor, so :data:`PLANTED_PROBLEMS` holds
for every anchor.

Dating scheme: an offset ``(m, d)`` means ``anchor`` plus ``m`` calendar months (day
clamped to the month's end) plus ``d`` days. Monthly instalment ``i`` of an order started
at ``(m, d)`` falls on ``(m + i, d)``; annual ones on ``(m + 12 i, d)``; a renewal starts
at ``(m, d)`` where the order it renews ran from ``(m - 12, d)`` to the day before.

Which customers need a PO, and its format, lives in ar-sync's requirements library, not in
NetSuite: :mod:`.seed_library` provides it and the matching ``[checks]`` settings.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ar_sync.models import UnitLine
from ar_sync.money import round_money
from ar_sync.netsuite import sandbox_records as records
from ar_sync.netsuite.seed_catalog import (
    CUSTOMERS,
    HARDWARE_ITEMS,
    TAX_CODES,
    Cust,
    Line,
    at,
    customer_doc,
    make_po,
    one_off_lines,
    subscription_lines,
)
from ar_sync.netsuite.seed_file import write_account
from ar_sync.netsuite.seed_generated import GeneratedAccount, build_generated_account
from ar_sync.netsuite.seed_library import (
    demo_check_settings,
    demo_requirements,
    write_requirements_library,
)
from ar_sync.netsuite.seed_orders import Plan, order_doc
from ar_sync.netsuite.seed_plants import (
    PLANTED_PROBLEMS,
    plant_checklist_problems,
    plant_everyday_problems,
)

__all__ = ["PLANTED_PROBLEMS", "GeneratedAccount", "build_demo_account",
           "build_generated_account", "demo_check_settings", "demo_requirements",
           "write_requirements_library"]

Doc = dict[str, Any]


# -- the demo account's orders ---------------------------------------------------------------

def _demo_plans(rng: random.Random) -> list[Plan]:
    """Every demo order, in a fixed order; ``rng`` draws quantities and PO numbers."""
    c = {cust.number: cust for cust in CUSTOMERS}
    plans: list[Plan] = []

    def one_off(n: int, day: int, **kw: Any) -> Plan:
        kw.setdefault("po", make_po(rng, c[n]))
        kw.setdefault("memo", c[n].memo)
        plan = Plan(c[n], "oneoff", (0, day), kw.pop("lines", None) or one_off_lines(rng, c[n]),
                    **kw)
        plans.append(plan)
        return plan

    for n in (1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1012, 1015, 1016,
              1017, 1018, 1020, 1021, 1022, 1023, 1024, 1025, 1026, 1027, 1028, 1029, 1030):
        one_off(n, -rng.randint(0, 25))
    for n in (1009, 1016):  # hardware shipped in part: billable as far as fulfilled
        one_off(n, -rng.randint(3, 12), lines=one_off_lines(rng, c[n], HARDWARE_ITEMS),
                status="pendingBillingPartFulfilled")
    for n in (1001, 1010, 1022):  # entered for a date still to come: not due yet
        one_off(n, rng.randint(2, 9))
    for n, status in ((1003, "pendingApproval"), (1011, "pendingApproval"),
                      (1004, "pendingFulfillment"), (1015, "pendingFulfillment"),
                      (1030, "pendingFulfillment"), (1007, "closed"), (1019, "closed"),
                      (1003, "fullyBilled"), (1011, "fullyBilled"), (1019, "fullyBilled"),
                      (1025, "fullyBilled")):
        billed = int(status == "fullyBilled")
        one_off(n, -rng.randint(30, 200) if billed else -rng.randint(1, 20), status=status,
                billed=billed)
    _subscriptions(rng, c, plans)
    _projects(rng, c, plans)
    plant_everyday_problems(rng, c, plans, one_off)
    return plans


def _subscriptions(rng: random.Random, c: dict[int, Cust], plans: list[Plan]) -> None:
    for n in (1001, 1002, 1005, 1006, 1007, 1009, 1010, 1016, 1018, 1020, 1021, 1022, 1024,
              1026, 1029, 1030, 1025):
        months, unbilled = rng.randint(1, 9), rng.choice((1, 1, 1, 2))
        start = (-months, -rng.randint(0, 12)) if n != 1025 else (1, 0)  # 1025: starts later
        plans.append(Plan(c[n], "monthly", start, subscription_lines(rng, c[n], "M"),
                          po=make_po(rng, c[n]), periods=12,
                          billed=max(0, months + 1 - unbilled) if n != 1025 else 0,
                          memo="Meridian Platform subscription, 12 months, billed monthly"))
    for n, years_in in ((1006, 0), (1008, 0), (1015, 1), (1017, 1), (1022, 2), (1025, 0),
                        (1027, 1), (1028, 0)):
        day = rng.randint(0, 20)
        start = (-12 * years_in, -day) if n != 1025 else (0, 15)
        plans.append(Plan(c[n], "annual", start, subscription_lines(rng, c[n], "A"),
                          po=make_po(rng, c[n]), periods=3, billed=years_in,
                          memo="Meridian Platform subscription, 3-year term, billed annually",
                          status="pendingApproval" if n == 1025 else "pendingBilling"))
    for n, day, years in ((1001, -3, 1), (1004, 0, 1), (1007, -11, 2), (1010, -19, 1),
                          (1027, -6, 1), (1029, 20, 1)):
        lines = subscription_lines(rng, c[n], "A")
        old = Plan(c[n], "annual", (-12, day), lines, po=make_po(rng, c[n]), billed=1,
                   memo="Meridian Platform subscription, 12 months, billed annually")
        uplift = tuple(Line(ln.item, ln.quantity, round_money(ln.rate * Decimal("1.05"), "USD"))
                       for ln in lines)
        plans += [old, Plan(c[n], "annual", (0, day), uplift, po=make_po(rng, c[n]),
                            periods=years, renews=old)]


def _projects(rng: random.Random, c: dict[int, Cust], plans: list[Plan]) -> None:
    names = ("Design signed off", "Configuration and data migration complete", "Go-live")
    for n, start, dates, billed in (
            (1020, (-3, 0), ((-2, 0), (0, -3), (2, 0)), 1),
            (1021, (-1, 0), ((0, -10), (2, 0), (4, 0)), 0),
            (1024, (-5, 0), ((-4, 0), (-1, 0), (0, -1)), 2),
            (1016, (0, 5), ((0, 20), (2, 0), (4, 0)), 0),
            (1011, (-2, 0), ((-1, 0), (0, -2), (3, 0)), 1),  # planted: one unit due
            (1026, (-1, -10), ((0, -5), (3, 0), (5, 0)), 0)):
        total = Decimal(rng.randrange(24, 120) * 1000).quantize(Decimal("0.01"))
        plans.append(Plan(
            c[n], "milestone", start, (Line("IMPL-FIXED", Decimal(1), total),),
            po=make_po(rng, c[n]), billed=billed,
            milestones=tuple(zip(dates, (30, 40, 30), names, strict=True)),
            memo="Implementation project, fixed fee, billed on milestones 30/40/30"))


# -- writing the demo account ----------------------------------------------------------------

def build_demo_account(path: Path, anchor: dt.date, *, overwrite: bool = False) -> None:
    """Write the demo account to ``path``; an existing file is only replaced if told to."""
    write_account(Path(path), lambda db: _fill_demo(db, anchor), overwrite)


def _fill_demo(db: sqlite3.Connection, anchor: dt.date) -> None:
    rng = random.Random(2026)
    plans = sorted(_demo_plans(rng), key=Plan.sort_key)
    plans += sorted(plant_checklist_problems(rng, {c.number: c for c in CUSTOMERS}),
                    key=Plan.sort_key)  # numbered after the rest, so no number moves
    customers = {c.number: customer_doc(c, anchor) for c in CUSTOMERS}
    orders = [order_doc(p, 4001 + i, 10001 + i, customers[p.customer.number], anchor,
                        _renewed(plans, p)) for i, p in enumerate(plans)]
    invoices = list(_history(plans, orders, customers, anchor, first_id=4001 + len(plans)))
    records.initialise(db, TAX_CODES, {
        "account": "Meridian Cloud Systems, Inc. (sandbox)", "anchor": anchor.isoformat(),
        "next_transaction_id": str(4001 + len(plans) + len(invoices)),
        "next_invoice_number": str(20001 + len(invoices))})
    db.executemany(records.INSERT_CUSTOMER, [records.customer_row(d) for d in customers.values()])
    db.executemany(records.INSERT_ORDER, [records.order_row(o) for o in orders])
    db.executemany(records.INSERT_INVOICE, [records.invoice_row(i) for i in invoices])


def _renewed(plans: list[Plan], plan: Plan) -> tuple[str, str] | None:
    """The (internal id, tranId) of the order ``plan`` renews, numbered as in _fill_demo."""
    if plan.renews is None:
        return None
    old = plans.index(plan.renews)
    return str(4001 + old), f"SO-{10001 + old}"


@dataclass(frozen=True)
class _Bill:
    """One invoice of the account's past: an instalment or order billed, or a bill by hand."""

    day: dt.date
    seq: int  # the instalment's index; bills by hand sort after the instalments of a day
    plan: Plan
    order: Doc
    lines: list[UnitLine]
    period: tuple[dt.date | None, dt.date | None]
    memo: str
    instalment: Doc | None = None
    by_hand: bool = False


def _history(plans: list[Plan], orders: list[Doc], customers: dict[int, Doc],
             anchor: dt.date, first_id: int) -> Iterator[Doc]:
    """The invoices billed before ar-sync (no external id, or the old billing run's), and
    the few made by hand from an order, in date order."""
    bills = sorted((bill for plan, order in zip(plans, orders, strict=True)
                    for bill in _bills(plan, order, anchor)),
                   key=lambda b: (b.day, int(b.order["internalId"]), b.seq))
    ends = {o["internalId"]: _opt(o.get("endDate")) for o in orders}
    for seq, bill in enumerate(bills):
        order, renewal = bill.order, bill.order.get("custbody_renewal_of")
        external = "" if bill.by_hand or seq % 3 else f"BILLRUN-{bill.day:%Y%m}-{seq:03d}"
        inv = records.invoice_document(
            internal_id=first_id + seq, number=20001 + seq, external_id=external, order=order,
            customer=customers[bill.plan.customer.number], tran_date=bill.day, lines=bill.lines,
            po_number=order["otherRefNum"], memo=bill.memo, period=bill.period,
            renews_term_ending=ends.get(renewal["internalId"]) if renewal else None)
        inv["status"] = "paidInFull" if inv["dueDate"] < anchor.isoformat() else "open"
        if bill.instalment is not None:
            bill.instalment["invoice"] = inv["internalId"]
            if all(i["invoice"] for i in order["billingSchedule"]["instalments"]):
                order["status"] = "fullyBilled"
        yield inv


def _bills(plan: Plan, order: Doc, anchor: dt.date) -> Iterator[_Bill]:
    """The past invoices of one order: its first ``plan.billed`` units, then its bills by hand."""
    schedule = order.get("billingSchedule")
    for index in range(plan.billed):
        part = schedule["instalments"][index] if schedule else order
        yield _Bill(dt.date.fromisoformat(part.get("date") or order["tranDate"]), index, plan,
                    order, [records.unit_line(x) for x in part["item"]],
                    (_opt(part.get("periodStart", part.get("startDate"))),
                     _opt(part.get("periodEnd", part.get("endDate")))),
                    order["memo"], part if schedule else None)
    by_item = {x["item"]: x for x in order["item"]}
    for k, hand in enumerate(plan.by_hand):
        lines = [records.unit_line(by_item[ln.item] | {
            "quantity": str(ln.quantity), "amount": str(round_money(
                ln.quantity * Decimal(by_item[ln.item]["rate"]), order["currency"]))})
            for ln in hand.lines]
        period = (at(anchor, hand.period[0]), at(anchor, hand.period[1])) if hand.period else (
            None, None)
        yield _Bill(at(anchor, hand.date), 1000 + k, plan, order, lines, period,
                    hand.memo or order["memo"], by_hand=True)


def _opt(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None
