"""A large generated sandbox account, for benchmarks and the crash and daemon tests.

Every customer and order passes every check of the review checklist, except the ~1% of
orders with a line amount typo that :attr:`GeneratedAccount.planted` names.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ar_sync.netsuite import sandbox_records as records
from ar_sync.netsuite.seed_catalog import (
    ONE_OFF_ITEMS,
    TAX_CODES,
    Cust,
    Line,
    currency_of,
    customer_doc,
    make_po,
    price,
)
from ar_sync.netsuite.seed_file import write_account
from ar_sync.netsuite.seed_orders import Plan, order_doc


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
    return write_account(Path(path), lambda db: _fill_generated(
        db, n_orders, anchor, random.Random(seed), customers), overwrite)


def _fill_generated(db: sqlite3.Connection, n_orders: int, anchor: dt.date,
                    rng: random.Random, n_customers: int | None) -> GeneratedAccount:
    custs = [_generated_customer(rng, i) for i in range(
        n_customers or max(1, min(500, -(-n_orders // 20))))]
    docs = [customer_doc(c, anchor) for c in custs]
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


_PEPPOL_SCHEMES = {"DE": "9930", "FR": "9957", "NL": "9944"}  # VAT-number endpoint schemes
# Every generated order has a PO: two orders of one customer for the same amount are then
# never taken for duplicates (a one-line order of a fixed-quantity item would be).
_PO_FORMATS = {"coupa": "PO-{:06d}", "ariba": "45{:08d}", "email": "{:06d}", "peppol": "PO-{:06d}"}


def _generated_customer(rng: random.Random, i: int) -> Cust:
    """A customer that passes every check: US ones in the seller's nexus states, European
    ones on Peppol with a VAT number and an endpoint id; all of them give a PO."""
    city, state, zip_code, country = rng.choice(_GEN_PLACES)
    name = " ".join(rng.choice(words) for words in _GEN_NAMES)
    us = country == "US"
    street = (f"{rng.randint(1, 9999)} {rng.choice(('Main', 'Oak', 'Park'))}"
              f" {'St' if us else 'Weg'}")
    terms = rng.choice((15, 30, 30, 45, 60))
    channel = rng.choice(("coupa", "ariba", "email", "email")) if us else "peppol"
    exempt = f"EX-{i:06d}" if us and rng.random() < 0.05 else None
    vat = "" if us else f"{country}{rng.randrange(10**8, 10**9)}"
    return Cust(20001 + i, name, street, city, state, zip_code, country, terms, channel,
                po=_PO_FORMATS[channel], exempt=exempt, vat=vat,
                peppol=f"{_PEPPOL_SCHEMES[country]}:{vat}" if vat else "",
                cert_expires=(24, 0) if exempt else None)


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
