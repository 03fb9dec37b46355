"""NetSuite's SOAP records (zeep objects) to the domain models.

The SOAP gateway must list the same units as the sandbox and REST gateways for the same
account. The sandbox already keeps its records as NetSuite-shaped documents (NetSuite's
field names), so a SOAP record is turned into that document shape here and the one
definition of the rules in :mod:`ar_sync.netsuite.sandbox_records` (what is due, its kind,
its lines, NetSuite's invoice as a model) is applied to it: no second copy to drift.

Where the 2023_2 schema has no place for a value, it is read from the record's
``customFieldList`` under the custom field id the sandbox uses:

* customer: ``custentity_ar_channel``, ``custentity_peppol_endpoint`` (text),
  ``custentity_exempt_cert_expires`` (date);
* sales order: ``custbody_renewal_of`` (select: the order renewed),
  ``custbody_ar_billing_instalments`` (text, JSON) — **UNVERIFIED / pinned**: SOAP 2023_2
  exposes a billing schedule only as a reference (``billingSchedule``, ``nextBill``), not
  its instalments' dates, periods and lines; the account's billing workflow is expected
  to keep them in this field in the sandbox's instalment shape. :func:`instalments` is the
  one function to change when the real source is confirmed;
* invoice: ``custbody_contract_start``/``_end``, ``custbody_renews_term_ending`` (dates).

Numbers: SOAP sends quantities and amounts as ``xsd:double``; they are read back through
``repr`` (the shortest exact decimal of the double NetSuite sent); ``rate`` is a string and
kept as it is. Dates: NetSuite sends ``dateTime`` in the account's time zone; the calendar
date is taken in the offset it was sent with, never converted.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from ar_sync.models import TaxCode, TaxKind
from ar_sync.money import to_decimal

Doc = dict[str, Any]
INSTALMENTS_FIELD = "custbody_ar_billing_instalments"
ORDER_STATUS = {"_pendingApproval": "pendingApproval", "_pendingFulfillment": "pendingFulfillment",
                "_cancelled": "cancelled", "_partiallyFulfilled": "partiallyFulfilled",
                "_pendingBillingPartFulfilled": "pendingBillingPartFulfilled",
                "_pendingBilling": "pendingBilling", "_fullyBilled": "fullyBilled",
                "_closed": "closed"}
# NetSuite's Country enum against ISO 3166 alpha-2 (the countries customers commonly have;
# an unknown enum value makes the record unreadable, naming the value).
COUNTRIES = {
    "US": "_unitedStates", "CA": "_canada", "MX": "_mexico", "GB": "_unitedKingdom",
    "IE": "_ireland", "DE": "_germany", "FR": "_france", "NL": "_netherlands",
    "BE": "_belgium", "LU": "_luxembourg", "ES": "_spain", "PT": "_portugal", "IT": "_italy",
    "AT": "_austria", "CH": "_switzerland", "DK": "_denmark", "SE": "_sweden",
    "NO": "_norway", "FI": "_finland", "PL": "_poland", "CZ": "_czechRepublic",
    "AU": "_australia", "NZ": "_newZealand", "JP": "_japan", "SG": "_singapore",
    "IN": "_india", "CN": "_china", "BR": "_brazil", "IS": "_iceland", "GR": "_greece",
    "HU": "_hungary", "RO": "_romania", "EE": "_estonia", "LV": "_latvia",
    "LT": "_lithuania", "SK": "_slovakRepublic", "SI": "_slovenia", "HR": "_croatiaHrvatska",
    "BG": "_bulgaria", "CY": "_cyprus", "MT": "_malta", "IL": "_israel", "ZA": "_southAfrica",
    "AE": "_unitedArabEmirates", "HK": "_hongKong", "KR": "_korea_South",
}
ISO_OF = {enum: iso for iso, enum in COUNTRIES.items()}


# -- values -------------------------------------------------------------------------------

def number(value: Any, field: str) -> str:
    """A SOAP number as exact decimal text (a double through its shortest repr)."""
    if value is None:
        raise ValueError(f"{field}: missing")
    text = repr(value) if isinstance(value, float) else str(value).strip().rstrip("%")
    try:
        return str(Decimal(text))
    except InvalidOperation:
        raise ValueError(f"{field}: {value!r} is not a number") from None


def optional_number(value: Any, field: str) -> str | None:
    return None if value is None else number(value, field)


def day(value: Any) -> str | None:
    """A ``dateTime`` (or date) as an ISO date in the offset NetSuite sent it with."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(str(value)[:10]).isoformat()


def name(ref: Any) -> str:
    """A RecordRef's display name ("" when absent)."""
    return str(getattr(ref, "name", None) or "") if ref is not None else ""


def ref_id(ref: Any) -> str:
    return str(getattr(ref, "internalId", None) or "") if ref is not None else ""


def customs(record: Any) -> dict[str, Any]:
    """A record's custom fields by script id; select fields as their RecordRef-like value."""
    holder = getattr(record, "customFieldList", None)
    return {str(f.scriptId): f.value for f in (getattr(holder, "customField", None) or [])}


def _items(record: Any) -> list[Any]:
    holder = getattr(record, "itemList", None)
    return list(getattr(holder, "item", None) or [])


# -- records to documents -----------------------------------------------------------------

def customer_doc(rec: Any, term_days: dict[str, int]) -> Doc:
    """A Customer record as the sandbox's customer document."""
    custom = customs(rec)
    terms = rec.terms
    return {
        "internalId": str(rec.internalId), "entityId": rec.entityId or "",
        "companyName": rec.companyName or "", "email": rec.email or "",
        "defaultAddress": address_doc(default_billing(rec)),
        "terms": {"name": name(terms), "daysUntilNetDue": term_days.get(ref_id(terms), 0)},
        "currency": name(rec.currency), "isInactive": bool(rec.isInactive),
        "taxable": rec.taxable is not False, "resaleNumber": rec.resaleNumber or "",
        "vatRegNumber": rec.vatRegNumber or "",
        "custentity_ar_channel": custom.get("custentity_ar_channel") or "",
        "custentity_peppol_endpoint": custom.get("custentity_peppol_endpoint") or "",
        "custentity_exempt_cert_expires": day(custom.get("custentity_exempt_cert_expires")),
    }


def default_billing(rec: Any) -> Any:
    book = getattr(getattr(rec, "addressbookList", None), "addressbook", None) or []
    chosen = next((a for a in book if a.defaultBilling), book[0] if book else None)
    return getattr(chosen, "addressbookAddress", None)


def address_doc(addr: Any) -> Doc:
    if addr is None:
        return {}
    country = addr.country or ""
    if country and country not in ISO_OF:
        raise ValueError(f"country: NetSuite country {country!r} has no ISO code here")
    return {"addressee": addr.addressee or "", "addr1": addr.addr1 or "",
            "addr2": addr.addr2 or "", "city": addr.city or "", "state": addr.state or "",
            "zip": addr.zip or "", "country": ISO_OF.get(country, "")}


def order_doc(rec: Any) -> Doc:
    """A SalesOrder record as the sandbox's order document (instalments included)."""
    custom = customs(rec)
    doc: Doc = {
        "internalId": str(rec.internalId), "tranId": rec.tranId or "",
        "entity": {"internalId": ref_id(rec.entity), "name": name(rec.entity)},
        "tranDate": day(rec.tranDate), "status": ORDER_STATUS.get(str(rec.orderStatus), ""),
        "currency": name(rec.currency), "otherRefNum": rec.otherRefNum or "",
        "memo": rec.memo or "", "startDate": day(rec.startDate), "endDate": day(rec.endDate),
        "item": [_order_line(i) for i in _items(rec)]}
    if rec.billingSchedule is not None:
        doc["billingSchedule"] = instalments(rec.billingSchedule, custom.get(INSTALMENTS_FIELD))
    renewal = custom.get("custbody_renewal_of")
    if renewal is not None and ref_id(renewal):
        doc["custbody_renewal_of"] = {"internalId": ref_id(renewal), "name": name(renewal)}
    return doc


def _order_line(item: Any) -> Doc:
    where = f"item[{item.line}]"
    return {"line": item.line, "item": name(item.item), "description": item.description or "",
            "quantity": number(item.quantity, f"{where}.quantity"),
            "rate": number(item.rate, f"{where}.rate"),
            "amount": number(item.amount, f"{where}.amount"), "taxCode": name(item.taxCode),
            "taxRate": number(item.taxRate1 or 0, f"{where}.taxRate1"),
            "units": name(item.units),
            "quantityBilled": number(item.quantityBilled or 0, f"{where}.quantityBilled")}


def instalments(schedule: Any, text: Any) -> Doc:
    """The schedule's instalments: from ``custbody_ar_billing_instalments`` (pinned, see
    the module docstring); a scheduled order without them is unreadable, by that name."""
    if not text:
        raise ValueError(f"{INSTALMENTS_FIELD}: missing on a scheduled order")
    try:
        data = json.loads(str(text))
    except ValueError:
        raise ValueError(f"{INSTALMENTS_FIELD}: not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("instalments"), list):
        raise ValueError(f"{INSTALMENTS_FIELD}: no instalments list")
    return {"name": name(schedule), **data}


def invoice_doc(rec: Any) -> Doc:
    """An Invoice record as the sandbox's invoice document."""
    custom = customs(rec)
    where = f"invoice {rec.internalId}"
    return {
        "internalId": str(rec.internalId), "tranId": rec.tranId or "",
        "externalId": rec.externalId or "",
        "entity": {"internalId": ref_id(rec.entity), "name": name(rec.entity)},
        "createdFrom": ({"internalId": ref_id(rec.createdFrom), "name": name(rec.createdFrom)}
                        if rec.createdFrom is not None else {}),
        "tranDate": day(rec.tranDate), "dueDate": day(rec.dueDate) or day(rec.tranDate),
        "currency": name(rec.currency), "otherRefNum": rec.otherRefNum or "",
        "memo": rec.memo or "", "startDate": day(rec.startDate), "endDate": day(rec.endDate),
        "custbody_contract_start": day(custom.get("custbody_contract_start")),
        "custbody_contract_end": day(custom.get("custbody_contract_end")),
        "custbody_renews_term_ending": day(custom.get("custbody_renews_term_ending")),
        "billingAddress": address_doc(rec.billingAddress), "email": rec.email or "",
        "item": [_invoice_line(i, where) for i in _items(rec)],
        "subTotal": number(rec.subTotal or 0, f"{where}: subTotal"),
        "discountTotal": number(rec.discountTotal or 0, f"{where}: discountTotal"),
        "shippingCost": number(rec.shippingCost or 0, f"{where}: shippingCost"),
        "taxTotal": number(rec.taxTotal or 0, f"{where}: taxTotal"),
        "total": number(rec.total, f"{where}: total")}


def _invoice_line(item: Any, where: str) -> Doc:
    at = f"{where} item[{item.line}]"
    return {"line": item.line, "orderLine": item.orderLine or 0, "item": name(item.item),
            "description": item.description or "",
            "quantity": number(item.quantity, f"{at}.quantity"),
            "rate": number(item.rate, f"{at}.rate"),
            "amount": number(item.amount, f"{at}.amount"), "taxCode": name(item.taxCode),
            "taxRate1": number(item.taxRate1 or 0, f"{at}.taxRate1"),
            "tax1Amt": number(item.tax1Amt or 0, f"{at}.tax1Amt"), "units": name(item.units),
            "quantityRemaining": optional_number(item.quantityRemaining,
                                                 f"{at}.quantityRemaining")}


def tax_code(rec: Any) -> TaxCode:
    """A SalesTaxItem: its kind from NetSuite's own flags (exempt, reverse charge)."""
    code = str(rec.itemId or rec.name or "")
    rate = to_decimal(number(rec.rate or "0", f"tax code {code}: rate"), what=code)
    kind = (TaxKind.EXEMPT if rec.exempt else TaxKind.REVERSE_CHARGE if rec.reverseCharge
            else TaxKind.ZERO if rate == 0 else TaxKind.STANDARD)
    return TaxCode(code=code, rate=rate, kind=kind, description=rec.description or "")
