"""The sandbox account file: its tables, its NetSuite-shaped records, and their models.

Records are JSON documents with NetSuite's field names (``internalId``, ``tranId``,
``otherRefNum``, ``billingSchedule`` ...) and Decimal values as strings. Beside each
document sit the columns queries need (id, status, customer, externalId, tranDate,
nextBill), always derived from the document by the ``*_row`` functions so they cannot
disagree. The functions that turn documents into domain models, and that compute an
invoice the way NetSuite does, live here so that the gateway (:mod:`.sandbox`) and the
account builders (:mod:`.seed`) share one definition of the data.

Fields beyond NetSuite's standard ones are the account's custom fields, named as NetSuite
names them: ``custentity_*`` on customers (delivery channel, exemption certificate expiry,
Peppol endpoint id), ``custbody_*`` on transactions (the order a renewal renews; on an
invoice, the contract term copied from its order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from ar_sync.errors import RejectedError
from ar_sync.models import (
    Address,
    BillableUnit,
    Customer,
    Invoice,
    InvoiceLine,
    TaxCode,
    TaxKind,
    Terms,
    UnitKind,
    UnitLine,
    unit_key,
)
from ar_sync.money import round_money, to_decimal
from ar_sync.netsuite.gateway import InvoiceSummary

Doc = dict[str, Any]

FORMAT = "ar-sync-sandbox/2"  # 2: tax code kinds, units of measure, contract terms
BILLABLE_STATUSES = ("pendingBilling", "pendingBillingPartFulfilled")
ORDER_STATUSES = frozenset({"pendingApproval", "pendingFulfillment", "partiallyFulfilled",
                            *BILLABLE_STATUSES, "fullyBilled", "closed", "cancelled"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tax_codes (
    code TEXT PRIMARY KEY, rate TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'standard',
    description TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE COLLATE NOCASE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sales_orders (
    id INTEGER PRIMARY KEY, tran_id TEXT NOT NULL UNIQUE COLLATE NOCASE,
    customer INTEGER NOT NULL REFERENCES customers(id), status TEXT NOT NULL,
    tran_date TEXT NOT NULL, next_bill TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sales_orders_billing ON sales_orders(status, next_bill);
CREATE INDEX IF NOT EXISTS sales_orders_customer ON sales_orders(customer);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY, tran_id TEXT NOT NULL UNIQUE,
    external_id TEXT UNIQUE COLLATE NOCASE, customer INTEGER NOT NULL,
    sales_order INTEGER, tran_date TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invoices_customer ON invoices(customer, tran_date);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, method TEXT NOT NULL, records INTEGER NOT NULL);
"""
INSERT_CUSTOMER = "INSERT INTO customers (id, entity_id, doc) VALUES (?, ?, ?)"
INSERT_ORDER = ("INSERT INTO sales_orders (id, tran_id, customer, status, tran_date, next_bill,"
                " doc) VALUES (?, ?, ?, ?, ?, ?, ?)")
INSERT_INVOICE = ("INSERT INTO invoices (id, tran_id, external_id, customer, sales_order,"
                  " tran_date, doc) VALUES (?, ?, ?, ?, ?, ?, ?)")


# -- the file ------------------------------------------------------------------------------

def connect(path: Path) -> sqlite3.Connection:
    """Open an account file (created owner-only if absent) in WAL mode and autocommit.

    Autocommit because every write here names its own transaction: one invoice, one
    admin edit, one seed.
    """
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def initialise(db: sqlite3.Connection, tax_codes: Mapping[str, TaxCode],
               meta: dict[str, str]) -> None:
    """Create the tables, the account's tax codes and settings, in the caller's transaction."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.executemany("INSERT INTO tax_codes (code, rate, kind, description) VALUES (?, ?, ?, ?)",
                   [(code, str(t.rate), t.kind.value, t.description)
                    for code, t in tax_codes.items()])
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", {"format": FORMAT, **meta}.items())


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (IMMEDIATE) so check-then-insert cannot race."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def dump(doc: Doc) -> str:
    """A document as stored: compact JSON, non-ASCII kept readable (Düsseldorf)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def customer_row(doc: Doc) -> tuple[int, str, str]:
    """The indexed columns of a customer and its document, for INSERT_CUSTOMER."""
    return int(doc["internalId"]), doc["entityId"], dump(doc)


def order_row(doc: Doc) -> tuple[int, str, int, str, str, str | None, str]:
    """The indexed columns of a sales order, derived from its document (never set apart)."""
    return (int(doc["internalId"]), doc["tranId"], int(doc["entity"]["internalId"]),
            doc["status"], doc["tranDate"], next_bill(doc), dump(doc))


def invoice_row(doc: Doc) -> tuple[int, str, str | None, int, int | None, str, str]:
    """The indexed columns of an invoice; an empty external id is NULL, so never a clash."""
    created = doc.get("createdFrom") or {}
    return (int(doc["internalId"]), doc["tranId"], doc.get("externalId") or None,
            int(doc["entity"]["internalId"]),
            int(created["internalId"]) if created else None, doc["tranDate"], dump(doc))


def next_bill(order: Doc) -> str | None:
    """NetSuite's ``nextBill``: the order date, or the earliest unbilled instalment."""
    schedule = order.get("billingSchedule")
    if not schedule:
        return str(order["tranDate"])
    dates: list[str] = [i["date"] for i in schedule["instalments"] if not i.get("invoice")]
    return min(dates) if dates else None


def renewed_order_id(order: Doc) -> str | None:
    """The internal id of the order ``order`` renews (``custbody_renewal_of``), if any."""
    ref = order.get("custbody_renewal_of")
    value = str(ref.get("internalId", "")) if isinstance(ref, dict) else ""
    return value if value.isdigit() else None


def parse_unit_key(key: str) -> tuple[str, dt.date] | None:
    """``so:<order id>:<date>`` back to its parts; None for anything else."""
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != "so" or not parts[1].isdigit():
        return None
    try:
        return parts[1], dt.date.fromisoformat(parts[2])
    except ValueError:
        return None


# -- documents to models -------------------------------------------------------------------

def parse_date(value: str | None) -> dt.date | None:
    """A record's ISO date, or None when the field is empty."""
    return dt.date.fromisoformat(value) if value else None



def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def address_model(doc: Doc) -> Address:
    """NetSuite's address subrecord as the model; fields it lacks are empty, extra ignored."""
    return Address(**{f.name: str(doc.get(f.name) or "") for f in dataclasses.fields(Address)})


def customer_model(doc: Doc) -> Customer:
    """The customer record as the cycle sees it, custom fields included."""
    terms = doc.get("terms") or {}
    return Customer(
        id=str(doc["internalId"]), entity_id=doc["entityId"], name=doc.get("companyName", ""),
        bill_to=address_model(doc.get("defaultAddress") or {}),
        terms=Terms(terms.get("name", ""), int(terms.get("daysUntilNetDue", 0))),
        currency=doc["currency"], email=doc.get("email", ""),
        is_inactive=bool(doc.get("isInactive")), tax_exempt=not doc.get("taxable", True),
        exemption_certificate=doc.get("resaleNumber", ""),
        exemption_expires=parse_date(doc.get("custentity_exempt_cert_expires")),
        vat_id=doc.get("vatRegNumber", ""), channel=doc.get("custentity_ar_channel", ""),
        peppol_id=doc.get("custentity_peppol_endpoint") or "")


def tax_code_model(row: Sequence[str]) -> TaxCode:
    """A row of the account's tax codes (code, rate, kind, description) as the model."""
    code, rate, kind, description = row
    return TaxCode(code, to_decimal(rate, what=f"tax code {code} rate"), TaxKind(kind),
                   description)


def unit_line(doc: Doc, *, whole_order: bool = False) -> UnitLine:
    """An order or instalment line as the cycle bills it (values exactly as entered).

    Billing a whole order, what is left to bill is ``quantity - quantityBilled`` (someone
    may have invoiced part of the line by hand); an instalment's share has no such count.
    """

    def num(name: str, default: str | None = None) -> Decimal:
        value = doc.get(name, default) if default is not None else doc[name]
        return to_decimal(value, what=f"line {doc.get('line')} {name}")

    quantity = num("quantity")
    return UnitLine(order_line=int(doc["line"]), item=doc["item"],
                    description=doc.get("description", ""), quantity=quantity,
                    rate=num("rate"), amount=num("amount"), tax_code=doc.get("taxCode", ""),
                    tax_rate=num("taxRate", "0"), units=doc.get("units") or "",
                    quantity_remaining=quantity - num("quantityBilled", "0")
                    if whole_order else None)


def order_units(order: Doc, customer: Customer, as_of: dt.date,
                renews_term_ending: dt.date | None = None) -> list[BillableUnit]:
    """Every unit of ``order`` due on or before ``as_of`` and not billed yet, by date.

    ``renews_term_ending``: for a renewal, the ``endDate`` of the order it renews.
    """
    if order["status"] not in BILLABLE_STATUSES:
        return []
    renewal = bool(order.get("custbody_renewal_of"))
    schedule = order.get("billingSchedule")
    renews = renews_term_ending if renewal else None
    if not schedule:
        bill_date = dt.date.fromisoformat(order["tranDate"])
        kind = UnitKind.RENEWAL if renewal else UnitKind.ORDER
        return [] if bill_date > as_of else [_unit(
            order, customer, kind, bill_date, order["item"],
            (parse_date(order.get("startDate")), parse_date(order.get("endDate"))), renews,
            whole=True)]
    milestone = schedule.get("scheduleType") == "fixedBidMilestone"
    units = []
    for index, inst in enumerate(schedule["instalments"]):
        bill_date = dt.date.fromisoformat(inst["date"])
        if inst.get("invoice") or bill_date > as_of:
            continue
        kind = (UnitKind.RENEWAL if renewal and index == 0 else
                UnitKind.MILESTONE if milestone else UnitKind.INSTALMENT)
        units.append(_unit(order, customer, kind, bill_date, inst["item"],
                           (parse_date(inst.get("periodStart")), parse_date(inst.get("periodEnd"))),
                           renews))
    return sorted(units, key=lambda u: u.bill_date)


def _unit(order: Doc, customer: Customer, kind: UnitKind, bill_date: dt.date,
          lines: list[Doc], period: tuple[dt.date | None, dt.date | None],
          renews: dt.date | None, *, whole: bool = False) -> BillableUnit:
    """One unit; its contract term is the order's ``startDate``..``endDate``."""
    return BillableUnit(
        key=unit_key(order["internalId"], bill_date), kind=kind, order_id=order["internalId"],
        order_number=order["tranId"], customer=customer, bill_date=bill_date,
        currency=order["currency"], po_number=order.get("otherRefNum") or "",
        lines=tuple(unit_line(line, whole_order=whole) for line in lines),
        period_start=period[0], period_end=period[1], memo=order.get("memo") or "",
        entity_name=order["entity"].get("name") or "",
        contract_start=parse_date(order.get("startDate")),
        contract_end=parse_date(order.get("endDate")), renews_term_ending=renews)


def invoice_document(*, internal_id: int, number: int, external_id: str, order: Doc,
                     customer: Doc, tran_date: dt.date, lines: Sequence[UnitLine | InvoiceLine],
                     po_number: str, memo: str, period: tuple[dt.date | None, dt.date | None],
                     renews_term_ending: dt.date | None = None, status: str = "open") -> Doc:
    """An invoice as NetSuite saves it: its number, line tax, totals and due date computed.

    ``lines`` carry the tax rate NetSuite applies (the account's rate for the tax code).
    The name and the contract term come from the order (``entity``, its ``startDate`` and
    ``endDate`` into ``custbody_contract_*``), as the account's transform sources them;
    ``renews_term_ending`` is the renewed order's ``endDate``. No discounts or shipping.
    """
    currency = order["currency"]
    items = [_invoice_line(n, line, currency) for n, line in enumerate(lines, 1)]
    subtotal = sum((Decimal(i["amount"]) for i in items), Decimal(0))
    tax_total = sum((Decimal(i["tax1Amt"]) for i in items), Decimal(0))
    due = tran_date + dt.timedelta(days=int(customer["terms"]["daysUntilNetDue"]))
    return {
        "internalId": str(internal_id), "tranId": f"INV-{number}", "externalId": external_id,
        "entity": dict(order["entity"]),
        "createdFrom": {"internalId": order["internalId"], "name": order["tranId"]},
        "status": status, "tranDate": tran_date.isoformat(), "dueDate": due.isoformat(),
        "terms": dict(customer["terms"]), "currency": currency, "otherRefNum": po_number,
        "memo": memo, "startDate": _iso(period[0]), "endDate": _iso(period[1]),
        "custbody_contract_start": order.get("startDate"),
        "custbody_contract_end": order.get("endDate"),
        "custbody_renews_term_ending": _iso(renews_term_ending),
        "billingAddress": dict(customer["defaultAddress"]), "email": customer.get("email", ""),
        "item": items, "subTotal": str(subtotal), "discountTotal": "0", "shippingCost": "0",
        "taxTotal": str(tax_total), "total": str(subtotal + tax_total),
    }


def _invoice_line(n: int, line: UnitLine | InvoiceLine, currency: str) -> Doc:
    """An invoice line; ``quantityRemaining`` is what was left to bill on the order line
    before this invoice (None for an instalment), so a check on it reads the same after."""
    tax = round_money(line.amount * line.tax_rate / 100, currency)
    remaining = line.quantity_remaining
    return {"line": n, "orderLine": line.order_line, "item": line.item,
            "description": line.description, "quantity": str(line.quantity),
            "units": line.units, "quantityRemaining": None if remaining is None else str(remaining),
            "rate": str(line.rate), "amount": str(line.amount), "taxCode": line.tax_code,
            "taxRate1": str(line.tax_rate), "tax1Amt": str(tax)}


def invoice_model(doc: Doc, customer: Doc) -> Invoice:
    """An invoice document as the domain model; the bill-to is the invoice's own copy."""
    created = doc.get("createdFrom") or {}
    bill_to = address_model(doc.get("billingAddress") or {})
    lines = tuple(InvoiceLine(
        order_line=int(i["orderLine"]), item=i["item"], description=i["description"],
        quantity=Decimal(i["quantity"]), rate=Decimal(i["rate"]), amount=Decimal(i["amount"]),
        tax_code=i["taxCode"], tax_rate=Decimal(i["taxRate1"]), tax_amount=Decimal(i["tax1Amt"]),
        units=i.get("units") or "", quantity_remaining=_decimal(i.get("quantityRemaining")))
        for i in doc["item"])
    return Invoice(
        key=doc.get("externalId") or "", order_id=created.get("internalId", ""),
        order_number=created.get("name", ""),
        customer=dataclasses.replace(customer_model(customer), bill_to=bill_to),
        tran_date=dt.date.fromisoformat(doc["tranDate"]),
        due_date=dt.date.fromisoformat(doc["dueDate"]), currency=doc["currency"],
        po_number=doc.get("otherRefNum") or "", lines=lines, subtotal=Decimal(doc["subTotal"]),
        tax_total=Decimal(doc["taxTotal"]), total=Decimal(doc["total"]),
        period_start=parse_date(doc.get("startDate")), period_end=parse_date(doc.get("endDate")),
        memo=doc.get("memo") or "", netsuite_id=doc["internalId"], tran_id=doc["tranId"],
        entity_name=doc["entity"].get("name") or "",
        contract_start=parse_date(doc.get("custbody_contract_start")),
        contract_end=parse_date(doc.get("custbody_contract_end")),
        renews_term_ending=parse_date(doc.get("custbody_renews_term_ending")),
        discount_total=Decimal(doc.get("discountTotal") or "0"),
        shipping=Decimal(doc.get("shippingCost") or "0"), is_credit=False)


def invoice_summary(doc: Doc) -> InvoiceSummary:
    """What the duplicate check needs of an invoice, including ones billed before ar-sync."""
    return InvoiceSummary(
        netsuite_id=doc["internalId"], tran_id=doc["tranId"],
        external_id=doc.get("externalId") or "", customer_id=doc["entity"]["internalId"],
        order_id=(doc.get("createdFrom") or {}).get("internalId", ""),
        po_number=doc.get("otherRefNum") or "", currency=doc["currency"],
        total=Decimal(doc["total"]), period_start=parse_date(doc.get("startDate")),
        period_end=parse_date(doc.get("endDate")))


# -- what NetSuite refuses -----------------------------------------------------------------

def refused(message: str, code: str, remote_code: str, field: str) -> RejectedError:
    """NetSuite's per-record refusal: our reason ``code``, NetSuite's ``remote_code``."""
    return RejectedError(message, code=code, remote_code=remote_code, field=field)


_NOT_BILLABLE = {"fullyBilled": "the order is already billed", "closed": "the order is closed",
                 "cancelled": "the order is cancelled"}


def mark_billed(order: Doc, bill_date: dt.date, invoice_id: int) -> None:
    """Record on ``order`` that the unit dated ``bill_date`` is billed, as NetSuite does."""
    name = order["tranId"]
    if order["status"] not in BILLABLE_STATUSES:
        why = _NOT_BILLABLE.get(order["status"], f"the order is {order['status']}")
        raise refused(f"You have an invalid sales order {name} or {why}.", "NOT_BILLABLE",
                      "INVALID_INITIALIZE_REF", "createdFrom")
    schedule = order.get("billingSchedule")
    if not schedule:
        order["status"] = "fullyBilled"
        for line in order["item"]:
            line["quantityBilled"] = line["quantity"]
        return
    instalments = schedule["instalments"]
    found = [i for i in instalments if i["date"] == bill_date.isoformat()]
    if not found:
        raise refused(f"Sales order {name} has no billing schedule date {bill_date}.",
                      "NOT_BILLABLE", "INVALID_INV_DATE", "tranDate")
    if found[0].get("invoice"):
        raise refused(f"The {bill_date} instalment of sales order {name} is already billed "
                      f"(invoice {found[0]['invoice']}).", "NOT_BILLABLE",
                      "INVALID_INITIALIZE_REF", "createdFrom")
    found[0]["invoice"] = str(invoice_id)
    if all(i.get("invoice") for i in instalments):
        order["status"] = "fullyBilled"
