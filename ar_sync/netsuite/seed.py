"""Deterministic sandbox accounts: the demo account, and a large generated one for benchmarks.

The demo account is what a newcomer watches ar-sync bill: Meridian Cloud Systems, a B2B
SaaS supplier with 30 customers in the US and Europe and 97 sales orders of every
kind the cycle handles, plus a deliberate share of the problems an AR specialist meets
(:data:`PLANTED_PROBLEMS`). Quantities and PO numbers come from ``random.Random(2026)``;
dates are relative to ``anchor`` (the day the file is created) so there is always work due
"today", and two builds with the same anchor are identical. Which order gets which number
does not depend on the anchor, so :data:`PLANTED_PROBLEMS` holds for every anchor.

Dating scheme: an offset ``(m, d)`` means ``anchor`` plus ``m`` calendar months (day
clamped to the month's end) plus ``d`` days. Monthly instalment ``i`` of an order started
at ``(m, d)`` falls on ``(m + i, d)``; annual ones on ``(m + 12 i, d)``; a renewal starts
at ``(m, d)`` where the order it renews ran from ``(m - 12, d)`` to the day before.

Which customers need a PO, and its format, lives in ar-sync's requirements library, not in
NetSuite: :func:`demo_requirements` / :func:`write_requirements_library` provide it.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from ar_sync.money import round_money
from ar_sync.netsuite import sandbox_records as records
from ar_sync.netsuite.seed_catalog import (
    CUSTOMERS,
    HARDWARE_ITEMS,
    ONE_OFF_ITEMS,
    TAX_CODES,
    Cust,
    Line,
    Plan,
    currency_of,
    customer_doc,
    demo_requirements,
    make_po,
    one_off_lines,
    order_doc,
    price,
    subscription_lines,
    write_requirements_library,
)

__all__ = ["PLANTED_PROBLEMS", "GeneratedAccount", "build_demo_account",
           "build_generated_account", "demo_requirements", "write_requirements_library"]

Doc = dict[str, Any]
T = TypeVar("T")

# The order (tranId) each planted problem is on, and the check rule that must catch it.
PLANTED_PROBLEMS: dict[str, str] = {
    "SO-10066": "customer.bill_to_complete",  # CUST-1014: the bill-to has no city
    "SO-10072": "po.format",  # CUST-1002 (Ariba, 45 + 8 digits): PO "450012345"
    "SO-10073": "duplicate.invoice",  # CUST-1023: SO-10031 was invoiced for the same
    "SO-10075": "customer.bill_to_complete",  # CUST-1013: the bill-to has no ZIP code
    "SO-10077": "po.required",  # CUST-1008 (Coupa): no PO
    "SO-10082": "lines.amount_matches",  # CUST-1004: 3 x 1,249.00 entered as 3,474.00
    "SO-10084": "po.format",  # CUST-1005 (Coupa, PF-12345): PO "PF 20931"
    "SO-10085": "duplicate.invoice",  # CUST-1003: SO-10041 was invoiced for the same
    "SO-10086": "po.required",  # CUST-1012 (Ariba): a new monthly subscription, no PO
    "SO-10087": "lines.amount_matches",  # CUST-1017: 42.5 h x 225.00 entered as 9,652.50
}


# -- the demo account's orders ---------------------------------------------------------------

def _demo_plans(rng: random.Random) -> list[Plan]:
    """Every demo order, in a fixed order; ``rng`` draws quantities and PO numbers."""
    c = {cust.number: cust for cust in CUSTOMERS}
    plans: list[Plan] = []

    def one_off(n: int, day: int, **kw: Any) -> Plan:
        kw.setdefault("po", make_po(rng, c[n]))
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
    _planted(rng, c, plans, one_off)
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
            (1011, (-2, 0), ((-1, 0), (0, -2), (3, 0)), 0),
            (1026, (-1, -10), ((0, -5), (3, 0), (5, 0)), 0)):
        total = Decimal(rng.randrange(24, 120) * 1000).quantize(Decimal("0.01"))
        plans.append(Plan(
            c[n], "milestone", start, (Line("IMPL-FIXED", Decimal(1), total),),
            po=make_po(rng, c[n]), billed=billed,
            milestones=tuple(zip(dates, (30, 40, 30), names, strict=True)),
            memo="Implementation project, fixed fee, billed on milestones 30/40/30"))


def _planted(rng: random.Random, c: dict[int, Cust], plans: list[Plan],
             one_off: Callable[..., Plan]) -> None:
    """The problems an AR specialist meets; each order has exactly one."""
    one_off(1008, -4, po="", problem="po.required")
    plans.append(Plan(c[1012], "monthly", (0, -1), subscription_lines(rng, c[1012], "M"),
                      periods=12, problem="po.required",
                      memo="Meridian Platform subscription, 12 months, billed monthly"))
    one_off(1002, -6, po="450012345", problem="po.format")  # nine digits, not ten
    one_off(1005, -2, po="PF 20931", problem="po.format")  # a space for the dash
    one_off(1013, -5, problem="customer.bill_to_complete")  # ZIP missing
    one_off(1014, -8, problem="customer.bill_to_complete")  # city missing
    usd = Decimal("1249.00")
    one_off(1004, -3, lines=(Line("HW-GATEWAY", Decimal(3), usd, Decimal("3474.00")),
                             Line("HW-SCANNER", Decimal(3), Decimal("389.00"))),
            problem="lines.amount_matches")  # 3 × 1,249.00 = 3,747.00: digits swapped
    one_off(1017, -1, lines=(Line("PS-ARCH", Decimal("42.5"), Decimal("225.00"),
                                  Decimal("9652.50")),), problem="lines.amount_matches")
    for n, first, again in ((1003, -21, -2), (1023, -40, -6)):
        lines, po = one_off_lines(rng, c[n], ("PS-ARCH", "TRAIN-ONSITE")), make_po(rng, c[n])
        service = ((-2, 0), (-1, -1))
        memo = "Advisory and on-site training, last month"
        one_off(n, first, lines=lines, po=po, service=service, memo=memo, status="fullyBilled",
                billed=1)
        one_off(n, again, lines=lines, po=po, service=service, memo=memo,
                problem="duplicate.invoice")


# -- writing an account file ----------------------------------------------------------------

def build_demo_account(path: Path, anchor: dt.date, *, overwrite: bool = False) -> None:
    """Write the demo account to ``path``; an existing file is only replaced if told to."""
    _write_account(Path(path), lambda db: _fill_demo(db, anchor), overwrite)


def _write_account(path: Path, fill: Callable[[sqlite3.Connection], T], overwrite: bool) -> T:
    """Build into a temporary file, then put it in place in one step.

    A process killed mid-seed leaves no half-built account behind, and two processes
    seeding the same path at once end with one complete file (``link`` fails if taken).
    """
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; not replacing a sandbox account")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.building")
    _remove(tmp)
    db = records.connect(tmp)
    try:
        with records.transaction(db):
            result = fill(db)
    except BaseException:
        db.close()
        _remove(tmp)
        raise
    db.close()  # checkpoints the WAL into the file and removes it
    try:
        if overwrite:
            _remove(path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            os.replace(tmp, path)
        else:
            _link(tmp, path)
    finally:
        _remove(tmp)
    return result


def _link(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that is taken (rename where links are refused)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        os.replace(tmp, path)


def _remove(*paths: Path) -> None:
    for p in paths:
        for q in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
            q.unlink(missing_ok=True)


def _fill_demo(db: sqlite3.Connection, anchor: dt.date) -> None:
    plans = sorted(_demo_plans(random.Random(2026)), key=Plan.sort_key)
    customers = {c.number: customer_doc(c) for c in CUSTOMERS}
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


def _history(plans: list[Plan], orders: list[Doc], customers: dict[int, Doc],
             anchor: dt.date, first_id: int) -> Iterator[Doc]:
    """The invoices billed before ar-sync (no external id, or the old billing run's)."""
    bills = []
    for plan, order in zip(plans, orders, strict=True):
        schedule = order.get("billingSchedule")
        for index in range(plan.billed):
            when = schedule["instalments"][index]["date"] if schedule else order["tranDate"]
            bills.append((when, int(order["internalId"]), index, plan, order))
    for seq, (when, _, index, plan, order) in enumerate(sorted(bills, key=lambda b: b[:3])):
        part = order["billingSchedule"]["instalments"][index] if plan.kind != "oneoff" else order
        customer, day = customers[plan.customer.number], dt.date.fromisoformat(when)
        inv = records.invoice_document(
            internal_id=first_id + seq, number=20001 + seq,
            external_id=f"BILLRUN-{day:%Y%m}-{seq:03d}" if seq % 3 == 0 else "", order=order,
            customer=customer, tran_date=day, lines=[records.unit_line(x) for x in part["item"]],
            po_number=order["otherRefNum"], memo=order["memo"],
            period=(_opt(part.get("periodStart", part.get("startDate"))),
                    _opt(part.get("periodEnd", part.get("endDate")))))
        inv["status"] = "paidInFull" if inv["dueDate"] < anchor.isoformat() else "open"
        if plan.kind != "oneoff":
            part["invoice"] = inv["internalId"]
            if all(i["invoice"] for i in order["billingSchedule"]["instalments"]):
                order["status"] = "fullyBilled"
        yield inv


def _opt(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


# -- a large generated account, for benchmarks ----------------------------------------------

@dataclass(frozen=True, slots=True)
class GeneratedAccount:
    """What :func:`build_generated_account` wrote, for a benchmark to check against."""

    customers: int
    billable_orders: int  # each has exactly one unit due on the anchor
    other_orders: int  # not billable (pending approval or fulfilment, closed)
    planted: dict[str, str]  # tranId → rule id: ~1% of orders carry a line amount typo


_GEN_NAMES = (("Apex", "Blue", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iron",
               "Juniper", "Lumen", "Maple", "Nova", "Orchid", "Pioneer", "Quartz", "Ridge",
               "Summit", "Tidal", "Vista"),
              ("Analytics", "Biotech", "Logistics", "Foods", "Health", "Energy", "Media",
               "Robotics", "Retail", "Software", "Capital", "Freight", "Labs", "Systems"),
              ("Inc.", "LLC", "Corp.", "Co.", "Group"))
_GEN_PLACES = (("San Jose", "CA", "95113", "US"), ("Brooklyn", "NY", "11201", "US"),
               ("Dallas", "TX", "75201", "US"), ("Spokane", "WA", "99201", "US"),
               ("Naperville", "IL", "60540", "US"), ("Worcester", "MA", "01608", "US"),
               ("Newark", "NJ", "07102", "US"), ("Boulder", "CO", "80302", "US"),
               ("Savannah", "GA", "31401", "US"), ("Orlando", "FL", "32801", "US"),
               ("Philadelphia", "PA", "19103", "US"), ("Tucson", "AZ", "85701", "US"),
               ("München", "", "80331", "DE"), ("Lille", "", "59000", "FR"),
               ("Utrecht", "", "3511 AB", "NL"))
_GEN_ITEMS = (*ONE_OFF_ITEMS, "PLAT-PRO-M", "ANALYTICS-M", "SUPPORT-PREM-M", "SANDBOX-A")
_CHUNK = 1000


def build_generated_account(path: Path, n_orders: int, anchor: dt.date, seed: int = 1, *,
                            customers: int | None = None,
                            overwrite: bool = False) -> GeneratedAccount:
    """A large account: ``n_orders`` billable orders with 1-5 lines each (a fifth of them
    monthly subscriptions whose first month is due), one customer per ~20 orders (at most
    500 unless ``customers`` says), and one non-billable order per ten.

    Written in chunks of executemany, so memory stays flat whatever ``n_orders`` is.
    """
    return _write_account(Path(path), lambda db: _fill_generated(
        db, n_orders, anchor, random.Random(seed), customers), overwrite)


def _fill_generated(db: sqlite3.Connection, n_orders: int, anchor: dt.date,
                    rng: random.Random, n_customers: int | None) -> GeneratedAccount:
    custs = [_generated_customer(rng, i) for i in range(
        n_customers or max(1, min(500, -(-n_orders // 20))))]
    docs = [customer_doc(c) for c in custs]
    others = n_orders // 10
    records.initialise(db, TAX_CODES, {
        "account": "Meridian Cloud Systems, Inc. (generated)", "anchor": anchor.isoformat(),
        "next_transaction_id": str(5001 + n_orders + others), "next_invoice_number": "20001"})
    db.executemany(records.INSERT_CUSTOMER, [records.customer_row(d) for d in docs])
    planted: dict[str, str] = {}
    rows: list[tuple[Any, ...]] = []
    billables = 0
    for number in range(n_orders + others):
        billable = number % 11 != 10  # every eleventh order is not billable
        billables += billable
        k = rng.randrange(len(custs))
        order = order_doc(_generated_plan(rng, custs[k], billable), 5001 + number,
                          200001 + number, docs[k], anchor)
        if billable and rng.random() < 0.01:
            order["item"][0]["amount"] = str(Decimal(order["item"][0]["amount"]) + 10)
            for instalment in order.get("billingSchedule", {}).get("instalments", []):
                instalment["item"][0]["amount"] = order["item"][0]["amount"]
            planted[order["tranId"]] = "lines.amount_matches"
        rows.append(records.order_row(order))
        if len(rows) == _CHUNK:
            db.executemany(records.INSERT_ORDER, rows)
            rows.clear()
    db.executemany(records.INSERT_ORDER, rows)
    return GeneratedAccount(len(custs), billables, n_orders + others - billables, planted)


def _generated_customer(rng: random.Random, i: int) -> Cust:
    city, state, zip_code, country = rng.choice(_GEN_PLACES)
    name = " ".join(rng.choice(words) for words in _GEN_NAMES)
    us = country == "US"
    return Cust(20001 + i, name, f"{rng.randint(1, 9999)} {rng.choice(('Main', 'Oak', 'Park'))}"
                f" {'St' if us else 'Weg'}", city, state, zip_code, country,
                rng.choice((15, 30, 30, 45, 60)),
                rng.choice(("coupa", "ariba", "email", "email")) if us else "peppol",
                exempt=f"EX-{i:06d}" if us and rng.random() < 0.05 else None,
                vat="" if us else f"{country}{rng.randrange(10**8, 10**9)}")


def _generated_plan(rng: random.Random, c: Cust, billable: bool) -> Plan:
    lines = []
    for item in rng.sample(_GEN_ITEMS, rng.randint(1, 5)):
        qty = rng.randint(1, 60) if item not in ("SUPPORT-PREM-M", "SANDBOX-A") else 1
        lines.append(Line(item, Decimal(qty), price(item, currency_of(c))))
    status = "pendingBilling" if billable else rng.choice(
        ("pendingApproval", "pendingFulfillment", "closed"))
    monthly = rng.random() < 0.2
    return Plan(c, "monthly" if monthly else "oneoff", (0, -rng.randint(0, 20)), tuple(lines),
                status=status, po=make_po(rng, c), periods=12)
