"""The first checklist rules: each passes a clean invoice and catches its problem, in words."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ar_sync.checks import RULES, CheckContext, run_checks
from ar_sync.invoicing import build_draft
from ar_sync.models import (
    BillableUnit,
    CustomerRequirements,
    Severity,
    UnitKind,
    UnitLine,
)
from ar_sync.netsuite.gateway import InvoiceSummary
from ar_sync.testing import sample_invoice

AS_OF = dt.date(2026, 11, 30)
REQ = CustomerRequirements("CUST-1001", channel="coupa", po_required=True,
                           po_pattern=r"PO-\d{6}", po_pattern_hint="PO-123456",
                           ap_email="ap@northwind.example.com")
CTX = CheckContext(as_of=AS_OF, requirements=REQ, channels=frozenset({"coupa"}), channel="coupa")


def rules_of(findings: list) -> set[str]:
    return {f.rule for f in findings}


def test_a_clean_invoice_passes_every_rule() -> None:
    assert run_checks(sample_invoice(), CTX, "draft") == []
    assert run_checks(sample_invoice(), CTX, "invoice") == []


def test_inactive_customer_is_held() -> None:
    inv = sample_invoice()
    inv = dataclasses.replace(inv, customer=dataclasses.replace(inv.customer, is_inactive=True))
    [f] = run_checks(inv, CTX, "draft")
    assert (f.rule, f.field, f.severity) == ("customer.active", "customer.isInactive",
                                             Severity.ERROR)
    assert "CUST-1001" in f.message and "inactive" in f.message


def test_incomplete_us_address_names_each_missing_part() -> None:
    inv = sample_invoice()
    addr = dataclasses.replace(inv.customer.bill_to, zip="", city="")
    inv = dataclasses.replace(inv, customer=dataclasses.replace(inv.customer, bill_to=addr))
    findings = run_checks(inv, CTX, "draft")
    assert {f.field for f in findings} == {"billingAddress.zip", "billingAddress.city"}
    assert any("has no ZIP code" in f.message for f in findings)


def test_bad_us_zip_and_eu_postal_code_rules() -> None:
    inv = sample_invoice()
    bad = dataclasses.replace(inv.customer.bill_to, zip="9410")
    f = run_checks(dataclasses.replace(inv, customer=dataclasses.replace(
        inv.customer, bill_to=bad)), CTX, "draft")
    assert [x.found for x in f] == ["9410"]
    eu = dataclasses.replace(inv.customer.bill_to, state="", zip="10115", country="DE")
    assert run_checks(dataclasses.replace(inv, customer=dataclasses.replace(
        inv.customer, bill_to=eu)), CTX, "draft") == []


def test_line_amount_not_quantity_times_rate() -> None:
    inv = sample_invoice()
    line = dataclasses.replace(inv.lines[1], amount=Decimal("205.00"))
    inv = dataclasses.replace(inv, lines=(inv.lines[0], line), subtotal=Decimal("1345.00"),
                              total=Decimal("1427.65"))
    [f] = run_checks(inv, CTX, "draft")
    assert (f.rule, f.field, f.found, f.expected) == (
        "lines.amount_matches", "item[2].amount", "205.00 USD", "250.00 USD")
    assert "quantity 1 × rate 250.00 = 250.00 USD" in f.message


def test_totals_disagree() -> None:
    inv = dataclasses.replace(sample_invoice(), total=Decimal("1472.66"))
    [f] = run_checks(inv, CTX, "draft")
    assert (f.rule, f.field, f.expected) == ("totals.agree", "total", "1472.65 USD")


def test_po_required_and_po_format() -> None:
    [f] = run_checks(dataclasses.replace(sample_invoice(), po_number=""), CTX, "draft")
    assert (f.rule, f.field) == ("po.required", "otherRefNum")
    assert "ap@northwind.example.com" in f.message and "PO-123456" in f.expected
    [f] = run_checks(dataclasses.replace(sample_invoice(), po_number="4455"), CTX, "draft")
    assert (f.rule, f.found) == ("po.format", "4455")
    relaxed = dataclasses.replace(CTX, requirements=None)
    assert run_checks(dataclasses.replace(sample_invoice(), po_number=""), relaxed, "draft") == []


def test_duplicate_of_an_existing_invoice() -> None:
    inv = sample_invoice(netsuite_id=None, tran_id=None)
    twin = InvoiceSummary("77", "INV-0077", "", inv.customer.id, "55", inv.po_number, "USD",
                          inv.total, inv.period_start, inv.period_end)
    [f] = run_checks(inv, dataclasses.replace(CTX, existing=[twin]), "draft")
    assert f.rule == "duplicate.invoice" and "INV-0077" in f.message
    other_period = dataclasses.replace(twin, period_start=dt.date(2026, 10, 1))
    assert run_checks(inv, dataclasses.replace(CTX, existing=[other_period]), "draft") == []
    itself = dataclasses.replace(twin, external_id=inv.key)
    assert run_checks(inv, dataclasses.replace(CTX, existing=[itself]), "draft") == []


def test_unconfigured_channel_is_held() -> None:
    [f] = run_checks(sample_invoice(), dataclasses.replace(CTX, channel="fax"), "draft")
    assert (f.rule, f.found) == ("delivery.channel", "fax")


def test_netsuite_version_must_match_the_draft() -> None:
    draft = sample_invoice(netsuite_id=None, tran_id=None)
    created = dataclasses.replace(sample_invoice(), tax_total=Decimal("0"),
                                  total=Decimal("1390.00"))
    findings = run_checks(created, dataclasses.replace(CTX, draft=draft), "invoice")
    assert {(f.rule, f.field) for f in findings} >= {("netsuite.matches_draft", "taxTotal"),
                                                     ("netsuite.matches_draft", "total")}


def test_a_crashing_rule_becomes_a_finding_not_a_crash() -> None:
    inv = dataclasses.replace(sample_invoice(), lines=(None,))  # type: ignore[arg-type]
    findings = run_checks(inv, CTX, "draft")
    assert any("could not run" in f.message for f in findings)


def test_rule_ids_are_unique() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)
qty = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("9999"), places=3)


@given(st.lists(st.tuples(qty, money, st.sampled_from(["0", "7.25", "8.875", "19", "20"])),
                min_size=1, max_size=8))
def test_drafts_built_from_consistent_lines_never_raise_arithmetic_findings(lines: list) -> None:
    from ar_sync.money import round_money

    inv = sample_invoice()
    unit = BillableUnit(
        key="so:1:2026-11-01", kind=UnitKind.ORDER, order_id="1", order_number="SO-1",
        customer=inv.customer, bill_date=AS_OF, currency="USD", po_number="PO-123456",
        lines=tuple(UnitLine(i + 1, "X", "x", q, r, round_money(q * r, "USD"), "T", Decimal(t))
                    for i, (q, r, t) in enumerate(lines)))
    draft = build_draft(unit)
    assert not rules_of(run_checks(draft, CTX, "draft")) & {"lines.amount_matches",
                                                            "totals.agree"}
    assert draft.total == draft.subtotal + draft.tax_total
