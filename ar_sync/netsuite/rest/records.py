"""SuiteQL rows (see :mod:`.queries`) to the domain models.

The REST gateway must list the same units as the sandbox for the same account (same
keys, kinds, lines and fingerprints), so the rules here mirror
:mod:`ar_sync.netsuite.sandbox_records`: a one-off order is one unit on its date, each due
instalment of a billing schedule is one unit, the first instalment of a renewal order is a
RENEWAL, a fixed-bid milestone schedule's instalments are MILESTONEs.

SuiteQL leaves NULL columns out of a row, booleans are ``'T'``/``'F'``, and numbers may
come as JSON numbers (parsed as ``Decimal``) or strings: every value is read through the
helpers below, which raise ``ValueError("field: problem")`` so the gateway can hold the
order as an ``UnreadableRecord`` naming the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import groupby
from typing import Any

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
from ar_sync.money import to_decimal
from ar_sync.netsuite.gateway import InvoiceSummary
from ar_sync.netsuite.rest.queries import BILLABLE

Row = dict[str, Any]
MILESTONE_SCHEDULE = "fixedBidMilestone"  # the billing schedule type of milestone billing


# -- values -------------------------------------------------------------------------------

def text(row: Row, column: str) -> str:
    """An optional text column ("" when NULL, i.e. absent from the row)."""
    value = row.get(column)
    return "" if value is None else str(value)


def required(row: Row, column: str, field: str) -> str:
    value = text(row, column)
    if not value:
        raise ValueError(f"{field}: missing")
    return value


def number(row: Row, column: str, field: str, default: str | None = None) -> Decimal:
    value = row.get(column, default)
    if value is None:
        raise ValueError(f"{field}: missing")
    return to_decimal(value, what=field)


def day(row: Row, column: str, field: str) -> dt.date | None:
    value = text(row, column)
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a date") from None


def flag(row: Row, column: str, default: bool = False) -> bool:
    value = text(row, column).upper()
    return default if not value else value in ("T", "TRUE", "Y", "1")


def ident(row: Row, column: str, field: str) -> str:
    value = required(row, column, field)
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{field}: {value!r} is not an internal id")
    return value


# -- customers and orders -----------------------------------------------------------------

def address(row: Row, prefix: str) -> Address:
    return Address(**{f.name: text(row, prefix + f.name) for f in dataclasses.fields(Address)})


def customer(row: Row) -> Customer:
    """The customer columns (``customer_*``, ``terms_*``, ``bill_*``) of an order row."""
    return Customer(
        id=ident(row, "customer_id", "entity"),
        entity_id=required(row, "customer_entityid", "entity.entityId"),
        name=text(row, "customer_name"), bill_to=address(row, "bill_"),
        terms=Terms(text(row, "terms_name"), int(number(row, "terms_days", "terms", "0"))),
        currency=required(row, "customer_currency", "entity.currency"),
        email=text(row, "customer_email"), is_inactive=flag(row, "customer_inactive"),
        tax_exempt=not flag(row, "customer_taxable", default=True),
        exemption_certificate=text(row, "customer_resalenumber"),
        exemption_expires=day(row, "customer_exempt_expires", "custentity_exempt_cert_expires"),
        vat_id=text(row, "customer_vatregnumber"), channel=text(row, "customer_channel"),
        peppol_id=text(row, "customer_peppol"))


def unit_line(row: Row, where: str, *, whole_order: bool = False) -> UnitLine:
    """An order or instalment line, values exactly as NetSuite holds them.

    Billing a whole order, what is left to bill is ``quantity - quantitybilled`` (part of
    the line may have been invoiced by hand); an instalment's share has no such count.
    """
    line = int(number(row, "line", f"{where}.line"))
    name = f"{where}[{line}]"
    quantity = number(row, "quantity", f"{name}.quantity")
    remaining = (quantity - number(row, "quantitybilled", f"{name}.quantityBilled", "0")
                 if whole_order else None)
    return UnitLine(
        order_line=line, item=required(row, "item", f"{name}.item"),
        description=text(row, "description"), quantity=quantity,
        rate=number(row, "rate", f"{name}.rate"), amount=number(row, "amount", f"{name}.amount"),
        tax_code=text(row, "taxcode"), tax_rate=number(row, "taxrate", f"{name}.taxRate", "0"),
        units=text(row, "units"), quantity_remaining=remaining)


def order_units(order: Row, lines: Sequence[Row], instalments: Sequence[Row],
                as_of: dt.date) -> list[BillableUnit]:
    """Every unit of ``order`` due on or before ``as_of`` (``instalments`` holds only the
    due, uninvoiced instalment lines; ``lines`` the order's item lines), by date."""
    if text(order, "status") not in BILLABLE:
        return []
    cust = customer(order)
    renewal = bool(text(order, "renewal_of"))
    if not text(order, "billingschedule"):
        bill_date = day(order, "trandate", "tranDate")
        if bill_date is None:
            raise ValueError("tranDate: missing")
        if bill_date > as_of:
            return []
        kind = UnitKind.RENEWAL if renewal else UnitKind.ORDER
        period = (day(order, "startdate", "startDate"), day(order, "enddate", "endDate"))
        return [_unit(order, cust, kind, bill_date,
                      [unit_line(r, "item", whole_order=True) for r in lines], period)]
    units = []
    for number_, rows in groupby(instalments, key=lambda r: int(r["instalment"])):
        group = list(rows)
        head = group[0]
        where = f"billingSchedule.instalments[{number_}]"
        bill_date = day(head, "billdate", f"{where}.date")
        if bill_date is None or bill_date > as_of:
            continue
        kind = (UnitKind.RENEWAL if renewal and number_ == 1 else
                UnitKind.MILESTONE if text(head, "scheduletype") == MILESTONE_SCHEDULE else
                UnitKind.INSTALMENT)
        period = (day(head, "periodstart", f"{where}.periodStart"),
                  day(head, "periodend", f"{where}.periodEnd"))
        units.append(_unit(order, cust, kind, bill_date,
                           [unit_line(r, f"{where}.item") for r in group], period))
    return sorted(units, key=lambda u: u.bill_date)


def _unit(order: Row, cust: Customer, kind: UnitKind, bill_date: dt.date,
          lines: list[UnitLine], period: tuple[dt.date | None, dt.date | None]) -> BillableUnit:
    """One unit; its contract term is the order's start and end date."""
    order_id = ident(order, "id", "internalId")
    renewal = bool(text(order, "renewal_of"))
    return BillableUnit(
        key=unit_key(order_id, bill_date), kind=kind, order_id=order_id,
        order_number=text(order, "tranid"), customer=cust, bill_date=bill_date,
        currency=required(order, "currency", "currency"), po_number=text(order, "otherrefnum"),
        lines=tuple(lines), period_start=period[0], period_end=period[1],
        memo=text(order, "memo"), entity_name=text(order, "entity_name"),
        contract_start=day(order, "startdate", "startDate"),
        contract_end=day(order, "enddate", "endDate"),
        renews_term_ending=day(order, "renews_term_ending", "custbody_renewal_of.endDate")
        if renewal else None)


# -- invoices -----------------------------------------------------------------------------

def invoices(rows: Iterable[Row]) -> list[Invoice]:
    """One invoice per id from rows of one line each (ordered by id, then line)."""
    return [invoice(list(group)) for _, group in groupby(rows, key=lambda r: str(r["id"]))]


def invoice(rows: Sequence[Row]) -> Invoice:
    """An invoice from its rows; the subtotal is what NetSuite's total says it is
    (total - tax + discount - shipping), so a header out of step with its lines shows."""
    head = rows[0]
    where = f"invoice {text(head, 'id')}"
    lines = tuple(_invoice_line(r, where) for r in rows if r.get("line") is not None)
    total = number(head, "total", f"{where}: total")
    tax_total = number(head, "taxtotal", f"{where}: taxTotal", "0")
    discount = number(head, "discounttotal", f"{where}: discountTotal", "0")
    shipping = number(head, "shippingcost", f"{where}: shippingCost", "0")
    tran_date = day(head, "trandate", f"{where}: tranDate")
    if tran_date is None:
        raise ValueError(f"{where}: tranDate: missing")
    return Invoice(
        key=text(head, "externalid"), order_id=text(head, "order_id"),
        order_number=text(head, "order_number"),
        customer=dataclasses.replace(customer(head), bill_to=address(head, "inv_")),
        tran_date=tran_date, due_date=day(head, "duedate", f"{where}: dueDate") or tran_date,
        currency=required(head, "currency", f"{where}: currency"),
        po_number=text(head, "otherrefnum"), lines=lines,
        subtotal=total - tax_total + discount - shipping,
        tax_total=tax_total, total=total, period_start=day(head, "startdate", "startDate"),
        period_end=day(head, "enddate", "endDate"), memo=text(head, "memo"),
        netsuite_id=text(head, "id"), tran_id=text(head, "tranid"),
        entity_name=text(head, "entity_name"),
        contract_start=day(head, "contract_start", "custbody_contract_start"),
        contract_end=day(head, "contract_end", "custbody_contract_end"),
        renews_term_ending=day(head, "renews_term_ending", "custbody_renews_term_ending"),
        discount_total=discount, shipping=shipping)


def _invoice_line(row: Row, where: str) -> InvoiceLine:
    name = f"{where} item[{text(row, 'line')}]"
    return InvoiceLine(
        order_line=int(number(row, "orderline", f"{name}.orderLine", "0")),
        item=text(row, "item"), description=text(row, "description"),
        quantity=number(row, "quantity", f"{name}.quantity"),
        rate=number(row, "rate", f"{name}.rate"), amount=number(row, "amount", f"{name}.amount"),
        tax_code=text(row, "taxcode"), tax_rate=number(row, "taxrate", f"{name}.taxRate", "0"),
        tax_amount=number(row, "taxamount", f"{name}.taxAmount", "0"), units=text(row, "units"),
        quantity_remaining=number(row, "quantityremaining", f"{name}.quantityRemaining")
        if row.get("quantityremaining") is not None else None)


def parse_unit_key(key: str) -> tuple[str, dt.date] | None:
    """``so:<order id>:<date>`` back to its parts; None for anything else."""
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != "so" or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    try:
        return parts[1], dt.date.fromisoformat(parts[2])
    except ValueError:
        return None


def summary(row: Row) -> InvoiceSummary:
    """What the duplicate check needs of one invoice (also ones billed before ar-sync)."""
    return InvoiceSummary(
        netsuite_id=text(row, "id"), tran_id=text(row, "tranid"),
        external_id=text(row, "externalid"), customer_id=text(row, "customer_id"),
        order_id=text(row, "order_id"), po_number=text(row, "otherrefnum"),
        currency=text(row, "currency"), total=number(row, "total", "total"),
        period_start=day(row, "startdate", "startDate"),
        period_end=day(row, "enddate", "endDate"))


def tax_code(row: Row) -> TaxCode:
    """A tax code; its kind from its name and description (SuiteQL has no such column)."""
    code, description = required(row, "code", "salesTaxItem.itemId"), text(row, "description")
    rate = number(row, "rate", f"tax code {code}: rate", "0")
    words = f"{code} {description}".lower()
    kind = (TaxKind.EXEMPT if "exempt" in words else
            TaxKind.REVERSE_CHARGE if "reverse charge" in words or code.endswith("-RC") else
            TaxKind.ZERO if rate == 0 else TaxKind.STANDARD)
    return TaxCode(code=code, rate=rate, kind=kind, description=description)
