"""The review checklist: every rule passes a clean invoice and catches its problem, in words
an AR person acts on (rule id, field, what was found, what was expected)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ar_sync.checks import RULES, CheckContext, approved, evaluate, run_checks
from ar_sync.invoicing import build_draft
from ar_sync.models import (
    BillableUnit,
    CustomerRequirements,
    Finding,
    Invoice,
    PurchaseOrder,
    Severity,
    TaxCode,
    TaxKind,
    UnitKind,
    UnitLine,
)
from ar_sync.money import round_money
from ar_sync.netsuite.gateway import InvoiceSummary
from ar_sync.testing import sample_invoice

AS_OF = dt.date(2026, 11, 30)
REQ = CustomerRequirements(
    "CUST-1001", channel="coupa", po_required=True, po_pattern=r"PO-\d{6}",
    po_pattern_hint="PO-123456", ap_email="ap@northwind.example.com",
    purchase_orders={"PO-445566": PurchaseOrder("PO-445566", Decimal("5000.00"), "USD",
                                                dt.date(2027, 6, 30))})
TAX = {"CA-STATE": TaxCode("CA-STATE", Decimal("7.25")),
       "EXEMPT": TaxCode("EXEMPT", Decimal(0), TaxKind.EXEMPT),
       "EU-RC": TaxCode("EU-RC", Decimal(0), TaxKind.REVERSE_CHARGE),
       "US-ZERO": TaxCode("US-ZERO", Decimal(0), TaxKind.ZERO),
       "NL-21": TaxCode("NL-21", Decimal(21))}
CTX = CheckContext(as_of=AS_OF, requirements=REQ, channels=frozenset({"coupa", "email"}),
                   channel="coupa", profile="cxml", tax_codes=TAX,
                   nexus_states=frozenset({"CA", "NY"}))
INV = sample_invoice()


def check(inv: Invoice = INV, stage: str = "draft", **ctx: Any) -> list[Finding]:
    return run_checks(inv, dataclasses.replace(CTX, **ctx), stage)  # type: ignore[arg-type]


def only(findings: list[Finding], rule: str) -> Finding:
    assert [f.rule for f in findings] == [rule], [f.message for f in findings]
    return findings[0]


def customer(**changes: Any) -> Invoice:
    return dataclasses.replace(INV, customer=dataclasses.replace(INV.customer, **changes))


def address(**changes: Any) -> Invoice:
    return customer(bill_to=dataclasses.replace(INV.customer.bill_to, **changes))


def line(n: int, inv: Invoice = INV, **changes: Any) -> Invoice:
    lines = list(inv.lines)
    lines[n - 1] = dataclasses.replace(lines[n - 1], **changes)
    return dataclasses.replace(inv, lines=tuple(lines))


def test_a_clean_invoice_passes_every_rule_at_both_stages() -> None:
    assert check() == []
    assert check(stage="invoice", draft=INV) == []


# -- customer ------------------------------------------------------------------------------

def test_customer_active() -> None:
    f = only(check(customer(is_inactive=True)), "customer.active")
    assert f.field == "customer.isInactive" and "CUST-1001" in f.message


def test_customer_name_matches() -> None:
    f = only(check(dataclasses.replace(INV, entity_name="Northwind Traders")),
             "customer.name_matches")
    assert (f.found, f.expected) == ("Northwind Traders", "Northwind Traders Inc.")


def test_bill_to_complete_names_each_missing_part() -> None:
    findings = check(address(zip="", city=""))
    assert {(f.rule, f.field) for f in findings} == {
        ("customer.bill_to_complete", "billingAddress.zip"),
        ("customer.bill_to_complete", "billingAddress.city")}
    assert any("has no ZIP code" in f.message for f in findings)
    assert only(check(address(zip="9410")), "customer.bill_to_complete").found == "9410"
    eu = address(state="", zip="10115", country="DE")
    assert check(eu, nexus_states=frozenset()) == []
    f = only(check(address(state="", zip="", country="DE")), "customer.bill_to_complete")
    assert f.expected == "a postal code"


def test_ap_email_when_the_channel_is_email() -> None:
    assert check(profile="email") == []
    no_mail = dataclasses.replace(REQ, ap_email="")
    f = only(check(customer(email="accounts at northwind"), profile="email",
                   requirements=no_mail), "customer.ap_email")
    assert f.field == "email" and "AP address" in f.message
    assert check(customer(email=""), requirements=no_mail) == []  # cXML needs no mailbox


def test_buyer_tax_id_for_peppol_and_on_request() -> None:
    peppol = customer(peppol_id="0088:5790000436057", vat_id="")
    f = only(check(peppol, profile="peppol"), "customer.tax_id")
    assert f.field == "vatRegNumber"
    asks = dataclasses.replace(REQ, required_fields=("vat_id",))
    assert [x.rule for x in check(customer(vat_id=""), requirements=asks)] == [
        "customer.tax_id", "customer.required_fields"]
    assert check(customer(vat_id="NL123456789B01", peppol_id="0088:57900"),
                 profile="peppol") == []


def test_required_fields_of_the_customer() -> None:
    asks = dataclasses.replace(REQ, required_fields=("memo", "period"), notes="cost centre")
    f = only(check(requirements=asks, ), "customer.required_fields")
    assert f.field == "memo" and "cost centre" in f.message
    assert check(dataclasses.replace(INV, memo="CC-4410"), requirements=asks) == []
    no_period = dataclasses.replace(INV, memo="CC-4410", period_start=None, period_end=None)
    assert only(check(no_period, requirements=asks), "customer.required_fields").field == (
        "startDate/endDate")


# -- arithmetic and source -----------------------------------------------------------------

def test_line_amount_not_quantity_times_rate() -> None:
    inv = line(2, amount=Decimal("205.00"))
    inv = dataclasses.replace(inv, subtotal=Decimal("1345.00"), total=Decimal("1445.78"))
    f = only(check(inv), "lines.amount_matches")
    assert (f.field, f.found, f.expected) == ("item[2].amount", "205.00 USD", "250.00 USD")
    assert "quantity 1 × rate 250.00 = 250.00 USD" in f.message


def test_zero_and_negative_lines_only_on_credits() -> None:
    free = line(2, quantity=Decimal(1), rate=Decimal(0), amount=Decimal(0),
                tax_amount=Decimal(0))
    free = dataclasses.replace(free, subtotal=Decimal("1140.00"), tax_total=Decimal("82.65"),
                               total=Decimal("1222.65"))
    f = only(check(free), "lines.positive")
    assert f.field == "item[2].amount" and "credit" in f.message
    assert check(dataclasses.replace(free, is_credit=True)) == []


def test_currency_is_the_customers() -> None:
    f = only(check(customer(currency="EUR")), "lines.currency")
    assert (f.found, f.expected) == ("USD", "EUR")


def test_totals_with_discount_and_shipping() -> None:
    f = only(check(dataclasses.replace(INV, total=Decimal("1490.79"))), "totals.agree")
    assert (f.field, f.expected) == ("total", "1490.78 USD")
    adjusted = dataclasses.replace(INV, discount_total=Decimal("90.00"),
                                   shipping=Decimal("15.00"), total=Decimal("1415.78"))
    assert check(adjusted) == []
    f = only(check(dataclasses.replace(INV, tax_total=Decimal("82.65"),
                                       total=Decimal("1472.65"))), "totals.agree")
    assert f.field == "taxTotal"


def test_quantity_within_what_remains_on_the_order_line() -> None:
    f = only(check(line(1, quantity_remaining=Decimal(8))), "source.quantity")
    assert (f.field, f.found, f.expected) == ("item[1].quantity", "12", "at most 8")
    assert check(line(1, quantity_remaining=Decimal(12))) == []


def test_netsuite_lines_come_from_the_order_at_the_invoice_stage() -> None:
    extra = dataclasses.replace(INV, lines=(*INV.lines, dataclasses.replace(
        INV.lines[1], order_line=3, item="TRAIN")))
    findings = [f for f in check(extra, "invoice", draft=INV) if f.rule == "source.lines"]
    assert [(f.field, f.found) for f in findings] == [("item[3]", "TRAIN")]
    repriced = line(1, rate=Decimal("96.00"), amount=Decimal("1152.00"),
                    tax_amount=Decimal("83.52"))
    repriced = dataclasses.replace(repriced, subtotal=Decimal("1402.00"),
                                   tax_total=Decimal("101.65"), total=Decimal("1503.65"))
    findings = [f for f in check(repriced, "invoice", draft=INV) if f.rule == "source.price"]
    assert [(f.field, f.found, f.expected) for f in findings] == [
        ("item[1].rate", "96.00", "95.00")]


def test_customer_and_po_equal_the_orders_at_the_invoice_stage() -> None:
    f = only(check(dataclasses.replace(INV, po_number="PO-445567"), "invoice", draft=INV),
             "source.customer_po")
    assert (f.field, f.found, f.expected) == ("otherRefNum", "PO-445567", "PO-445566")
    other = customer(id="777", entity_id="CUST-9")
    assert {f.field for f in check(other, "invoice", draft=INV)
            if f.rule == "source.customer_po"} == {"entity"}


def test_netsuite_totals_must_match_the_draft() -> None:
    created = dataclasses.replace(INV, tax_total=Decimal("0"), total=Decimal("1390.00"))
    findings = check(created, "invoice", draft=INV)
    assert {(f.rule, f.field) for f in findings} >= {("netsuite.matches_draft", "taxTotal"),
                                                     ("netsuite.matches_draft", "total")}


# -- dates ---------------------------------------------------------------------------------

def test_invoice_date_not_future_nor_in_a_closed_period() -> None:
    f = only(check(as_of=dt.date(2026, 10, 31)), "dates.invoice_date")
    assert "future" in f.message
    f = only(check(closed_through=dt.date(2026, 11, 30)), "dates.invoice_date")
    assert "closed accounting period" in f.message
    assert check(closed_through=dt.date(2026, 10, 31)) == []


def test_due_date_is_invoice_date_plus_terms() -> None:
    f = only(check(dataclasses.replace(INV, due_date=dt.date(2026, 12, 15))), "dates.due_date")
    assert (f.found, f.expected) == ("2026-12-15", "2026-12-01") and "Net 30" in f.message


def test_service_period_inside_the_contract_term() -> None:
    late = dataclasses.replace(INV, contract_end=dt.date(2026, 11, 15))
    f = only(check(late), "dates.service_in_term")
    assert f.expected == "within 2026-01-01 to 2026-11-15"
    backwards = dataclasses.replace(INV, period_end=dt.date(2026, 10, 1))
    assert "ends" in only(check(backwards), "dates.service_in_term").message


def summary(**changes: Any) -> InvoiceSummary:
    base = InvoiceSummary("77", "INV-0077", "", INV.customer.id, "55", INV.po_number, "USD",
                          Decimal("999.00"), dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    return dataclasses.replace(base, **changes)


def test_no_overlap_with_a_period_already_invoiced_for_the_order() -> None:
    overlapping = summary(order_id="100", period_start=dt.date(2026, 11, 15),
                          period_end=dt.date(2026, 12, 14))
    f = only(check(existing=[overlapping]), "dates.no_overlap")
    assert "INV-0077" in f.message and "billed twice" in f.message
    assert check(existing=[summary(order_id="100")]) == []  # October: adjacent, not overlapping
    assert check(existing=[dataclasses.replace(overlapping, order_id="101")]) == []


def test_renewal_starts_the_day_after_the_renewed_term() -> None:
    renewal = dataclasses.replace(INV, renews_term_ending=dt.date(2025, 12, 31))
    assert check(renewal) == []
    gap = dataclasses.replace(INV, renews_term_ending=dt.date(2025, 12, 26))
    f = only(check(gap), "dates.renewal_continuity")
    assert "gap of 5 day(s)" in f.message and f.expected == "2025-12-27"


# -- PO ------------------------------------------------------------------------------------

def test_po_required_and_po_format() -> None:
    f = only(check(dataclasses.replace(INV, po_number="")), "po.required")
    assert f.field == "otherRefNum" and "ap@northwind.example.com" in f.message
    assert "PO-123456" in f.expected
    f = only(check(dataclasses.replace(INV, po_number="4455")), "po.format")
    assert f.found == "4455"
    assert check(dataclasses.replace(INV, po_number=""), requirements=None) == []


def test_po_not_expired() -> None:
    expired = dataclasses.replace(REQ, purchase_orders={"PO-445566": PurchaseOrder(
        "PO-445566", None, "", dt.date(2026, 10, 31))})
    f = only(check(requirements=expired), "po.not_expired")
    assert f.found == "PO-445566 expired 2026-10-31" and "new PO" in f.message


def test_po_within_amount_counts_what_was_invoiced_before() -> None:
    assert check(existing=[summary(total=Decimal("3509.22"))]) == []  # exactly 5000.00
    f = only(check(existing=[summary(total=Decimal("3509.23"))]), "po.within_amount")
    assert "0.01 over" in f.message and f.expected == "at most 5000.00 USD"
    elsewhere = summary(total=Decimal("9000.00"), po_number="PO-999999")
    assert check(existing=[elsewhere]) == []


# -- tax -----------------------------------------------------------------------------------

def test_taxable_lines_carry_a_tax_code() -> None:
    f = only(check(line(2, tax_code="")), "tax.code_present")
    assert f.field == "item[2].taxCode"


def test_tax_rate_matches_the_code() -> None:
    f = only(check(line(2, tax_rate=Decimal("8.25"))), "tax.rate_matches_code")
    assert (f.found, f.expected) == ("8.25%", "7.25%")
    f = only(check(line(2, tax_code="CA-XX")), "tax.rate_matches_code")
    assert "does not have" in f.message


def exempt(**changes: Any) -> Invoice:
    inv = customer(tax_exempt=True, **changes)
    for n in (1, 2):
        inv = line(n, inv, tax_code="EXEMPT", tax_rate=Decimal(0), tax_amount=Decimal(0))
    return dataclasses.replace(inv, tax_total=Decimal(0), total=inv.subtotal)


def test_tax_exempt_customer_needs_a_valid_certificate_and_no_tax() -> None:
    assert check(exempt(exemption_certificate="CA-RESALE-1188",
                        exemption_expires=dt.date(2027, 1, 31))) == []
    f = only(check(exempt()), "tax.exempt_certificate")
    assert f.found == "(none on file)" and "no exemption certificate" in f.message
    f = only(check(exempt(exemption_certificate="CA-RESALE-1188",
                          exemption_expires=dt.date(2026, 10, 1))), "tax.exempt_certificate")
    assert "expired on 2026-10-01" in f.message
    taxed = customer(tax_exempt=True, exemption_certificate="CA-RESALE-1188")
    assert {f.field for f in check(taxed)} == {"item[1].taxCode", "item[2].taxCode"}


def reverse_charge(**changes: Any) -> Invoice:
    inv = address(state="", zip="1017 AB", country="NL")
    inv = dataclasses.replace(inv, customer=dataclasses.replace(inv.customer, **changes))
    for n in (1, 2):
        inv = line(n, inv, tax_code="EU-RC", tax_rate=Decimal(0), tax_amount=Decimal(0))
    return dataclasses.replace(inv, tax_total=Decimal(0), total=inv.subtotal)


def test_reverse_charge_needs_the_vat_id_and_a_zero_rate() -> None:
    assert check(reverse_charge(vat_id="DE811907980")) == []
    f = only(check(reverse_charge(vat_id="")), "tax.reverse_charge")
    assert f.field == "vatRegNumber" and "VIES" in f.message
    taxed = line(1, reverse_charge(vat_id="DE811907980"), tax_rate=Decimal(19),
                 tax_amount=Decimal("216.60"))
    taxed = dataclasses.replace(taxed, tax_total=Decimal("216.60"),
                                total=taxed.subtotal + Decimal("216.60"))
    assert {f.rule for f in check(taxed)} == {"tax.reverse_charge", "tax.rate_matches_code"}


def test_zero_tax_where_the_seller_has_nexus() -> None:
    zero = line(2, tax_code="US-ZERO", tax_rate=Decimal(0), tax_amount=Decimal(0))
    zero = dataclasses.replace(zero, tax_total=Decimal("82.65"), total=Decimal("1472.65"))
    f = only(check(zero), "tax.nexus_zero")
    assert f.field == "item[2].taxCode" and "CA" in f.message
    assert check(zero, nexus_states=frozenset({"NY"})) == []


# -- duplicates and channels ---------------------------------------------------------------

def test_duplicate_of_an_existing_invoice() -> None:
    inv = sample_invoice(netsuite_id=None, tran_id=None)
    twin = summary(total=inv.total, period_start=inv.period_start, period_end=inv.period_end)
    twin = dataclasses.replace(twin, order_id="55")
    findings = check(inv, existing=[twin])
    assert "duplicate.invoice" in {f.rule for f in findings}
    assert "INV-0077" in next(f.message for f in findings if f.rule == "duplicate.invoice")
    assert "duplicate.invoice" not in {f.rule for f in check(inv, existing=[
        dataclasses.replace(twin, period_start=dt.date(2026, 10, 2))])}
    assert "duplicate.invoice" not in {f.rule for f in check(inv, existing=[
        dataclasses.replace(twin, external_id=inv.key)])}


def test_unconfigured_channel_is_held() -> None:
    f = only(check(channel="fax", profile="none"), "delivery.channel")
    assert f.found == "fax"


def test_cxml_needs_units_of_measure_and_po_line_numbers() -> None:
    f = only(check(line(2, units="")), "channel.cxml")
    assert f.field == "item[2].units" and "UnitOfMeasure" in f.message
    assert check(line(2, units=""), profile="email") == []


def test_peppol_needs_an_endpoint_and_a_reference() -> None:
    good = customer(peppol_id="0088:5790000436057", vat_id="NL123456789B01")
    assert check(good, profile="peppol") == []
    f = only(check(customer(vat_id="NL123456789B01"), profile="peppol"), "channel.peppol")
    assert f.field == "custentity_peppol_endpoint"
    no_ref = dataclasses.replace(good, po_number="")
    findings = check(no_ref, profile="peppol", requirements=None)
    assert [x.field for x in findings] == ["otherRefNum"]
    with_ref = dataclasses.replace(REQ, po_required=False, buyer_reference="4410-NW")
    assert check(no_ref, profile="peppol", requirements=with_ref) == []


# -- the engine ----------------------------------------------------------------------------

def test_a_crashing_rule_becomes_a_finding_not_a_crash() -> None:
    inv = dataclasses.replace(INV, lines=(None,))  # type: ignore[arg-type]
    assert any("could not run" in f.message for f in check(inv))


def test_rule_ids_are_unique_and_every_rule_is_reported() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) >= 30
    assert [r.id for r, _ in evaluate(INV, CTX, "draft")] == [
        r.id for r in RULES if "draft" in r.stages]


def test_an_approval_covers_only_the_value_it_saw() -> None:
    findings = check(dataclasses.replace(INV, po_number="4455"))
    holding, ok = approved(findings, {"po.format": {"4455"}})
    assert (holding, [f.rule for f in ok]) == ([], ["po.format"])
    changed = check(dataclasses.replace(INV, po_number="4456"))
    holding, ok = approved(changed, {"po.format": {"4455"}})
    assert [f.found for f in holding] == ["4456"] and ok == []


# -- properties ----------------------------------------------------------------------------

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)
qty = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("9999"), places=3)
codes = st.sampled_from(["CA-STATE", "US-ZERO", "EXEMPT", "NL-21"])
lines_st = st.lists(st.tuples(qty, money, codes), min_size=1, max_size=8)


def unit_of(lines: list[tuple[Decimal, Decimal, str]], amount_delta: Decimal = Decimal(0)
            ) -> BillableUnit:
    return BillableUnit(
        key="so:1:2026-11-01", kind=UnitKind.ORDER, order_id="1", order_number="SO-1",
        customer=INV.customer, bill_date=AS_OF, currency="USD", po_number="PO-123456",
        lines=tuple(UnitLine(i + 1, "X", "x", q, r,
                             round_money(q * r, "USD") + (amount_delta if i == 0 else 0),
                             code, TAX[code].rate, units="EA")
                    for i, (q, r, code) in enumerate(lines)))


ARITHMETIC = {"lines.amount_matches", "totals.agree"}


@settings(max_examples=200, deadline=None)
@given(lines_st)
def test_consistent_drafts_never_raise_an_arithmetic_finding(lines: list) -> None:
    draft = build_draft(unit_of(lines))
    assert not {f.rule for f in check(draft)} & ARITHMETIC
    assert draft.total == draft.subtotal + draft.tax_total


@settings(max_examples=200, deadline=None)
@given(lines_st, st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
       st.booleans())
def test_a_perturbed_amount_always_raises_one(lines: list, delta: Decimal, up: bool) -> None:
    draft = build_draft(unit_of(lines, delta if up else -delta))
    assert "lines.amount_matches" in {f.rule for f in check(draft)}


@settings(max_examples=100, deadline=None)
@given(lines_st, st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2))
def test_a_perturbed_total_always_raises_one(lines: list, delta: Decimal) -> None:
    draft = build_draft(unit_of(lines))
    assert "totals.agree" in {f.rule for f in check(
        dataclasses.replace(draft, total=draft.total + delta))}


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_every_rule_is_tested_in_this_file_and_holds_by_default(rule: str) -> None:
    with open(__file__, encoding="utf-8") as fh:
        assert f'"{rule}"' in fh.read(), f"no test names {rule}"
    assert next(r for r in RULES if r.id == rule).severity is Severity.ERROR
