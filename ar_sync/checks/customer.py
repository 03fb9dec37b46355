"""Customer rules: the right customer, a complete address, a way to reach AP, tax ids."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ar_sync.checks import CheckContext, finding, rule
from ar_sync.models import Finding, Invoice, TaxKind

US_ZIP = re.compile(r"^\d{5}(-?\d{4})?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _who(inv: Invoice) -> str:
    return f"customer {inv.customer.entity_id} ({inv.customer.name})"


@rule("customer.active", "The customer exists and is active")
def active(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.customer.is_inactive:
        yield finding("customer.active", "customer.isInactive", "inactive", "an active customer",
                      f"Customer {inv.customer.entity_id} ({inv.customer.name}) is inactive in "
                      "NetSuite; reactivate it or bill another customer.")


@rule("customer.name_matches", "The name on the invoice is the customer record's name")
def name_matches(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.entity_name and inv.entity_name.strip() != inv.customer.name.strip():
        yield finding("customer.name_matches", "entity", inv.entity_name, inv.customer.name,
                      f"Sales order {inv.order_number} names the customer {inv.entity_name!r} "
                      f"but the customer record {inv.customer.entity_id} says "
                      f"{inv.customer.name!r}; portals match on the legal name.")


@rule("customer.bill_to_complete", "The bill-to address is complete for its country")
def bill_to_complete(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    a = inv.customer.bill_to
    required = {"addr1": "street", "city": "city", "country": "country"}
    required |= ({"state": "state", "zip": "ZIP code"} if a.country == "US"
                 else {"zip": "postal code"})
    for attr, label in required.items():
        if not getattr(a, attr).strip():
            yield finding("customer.bill_to_complete", f"billingAddress.{attr}", "(empty)",
                          f"a {label}", f"Bill-to address of {_who(inv)} has no {label}.")
    if a.country == "US" and a.zip.strip() and not US_ZIP.match(a.zip.strip()):
        yield finding("customer.bill_to_complete", "billingAddress.zip", a.zip,
                      "a 5- or 9-digit US ZIP code (12345 or 12345-6789)",
                      f"Bill-to ZIP code {a.zip!r} of {_who(inv)} is not a valid US ZIP code.")


@rule("customer.ap_email", "An accounts-payable e-mail exists when the channel is e-mail")
def ap_email(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.profile != "email":
        return
    address = (ctx.requirements.ap_email if ctx.requirements and ctx.requirements.ap_email
               else inv.customer.email)
    if not EMAIL.match(address.strip()):
        yield finding("customer.ap_email", "email", address or "(empty)",
                      "the AP mailbox, e.g. ap@customer.example.com",
                      f"{inv.customer.name} receives invoices by e-mail but has no valid AP "
                      "address (requirements library ap_email, or the customer's e-mail).")


@rule("customer.tax_id", "A buyer tax/VAT id exists where the channel or the tax needs one")
def tax_id(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    reverse = any(_kind(ctx, ln.tax_code) is TaxKind.REVERSE_CHARGE for ln in inv.lines)
    if reverse:
        return  # tax.reverse_charge says it, in its own words
    needs = ctx.profile == "peppol" or (ctx.requirements is not None
                                       and "vat_id" in ctx.requirements.required_fields)
    if needs and not inv.customer.vat_id.strip():
        why = ("Peppol invoices carry it" if ctx.profile == "peppol"
               else "the customer requires it")
        yield finding("customer.tax_id", "vatRegNumber", "(empty)", "the buyer's VAT id",
                      f"{inv.customer.name} has no VAT registration number in NetSuite; {why}.")


@rule("customer.required_fields", "The fields this customer insists on are filled")
def required_fields(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if ctx.requirements is None:
        return
    values = {"po_number": inv.po_number, "memo": inv.memo, "vat_id": inv.customer.vat_id,
              "period": "x" if inv.period_start and inv.period_end else ""}
    labels = {"po_number": "otherRefNum", "memo": "memo", "vat_id": "vatRegNumber",
              "period": "startDate/endDate"}
    for name in ctx.requirements.required_fields:
        if not values.get(name, "").strip():
            notes = f" Library notes: {ctx.requirements.notes}" if ctx.requirements.notes else ""
            yield finding("customer.required_fields", labels[name], "(empty)",
                          f"a value for {name}",
                          f"{inv.customer.name} requires {name.replace('_', ' ')} on every "
                          f"invoice and sales order {inv.order_number} has none.{notes}")


def _kind(ctx: CheckContext, code: str) -> TaxKind | None:
    tc = ctx.tax_codes.get(code)
    return tc.kind if tc else None
