"""The demo account's planted problems: each is in the data, and nothing else is wrong.

:func:`judge` is an AR specialist's reading of a unit, written from the data and
independently of ``ar_sync.checks``: what would they object to, rule by rule? The demo
must show exactly :data:`PLANTED_PROBLEMS` under it, for any anchor day; the real rules
must then agree (the last tests here, and the lead's cycle tests).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_gateway_contract import all_units, make_draft

from ar_sync.models import BillableUnit, TaxCode, TaxKind, UnitKind
from ar_sync.netsuite.gateway import InvoiceSummary
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import (
    PLANTED_PROBLEMS,
    build_demo_account,
    build_generated_account,
    demo_check_settings,
    demo_requirements,
    write_requirements_library,
)

ANCHOR = dt.date(2026, 3, 15)
LOOKBACK = dt.timedelta(days=400)  # how far back the cycle lists a customer's invoices
PROFILE = {"coupa": "cxml", "ariba": "cxml", "peppol": "peppol", "email": "email"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
US_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
CHECKLIST = {
    "customer.active", "customer.name_matches", "customer.bill_to_complete", "customer.ap_email",
    "customer.tax_id", "customer.required_fields", "lines.amount_matches", "lines.positive",
    "lines.currency", "source.quantity", "dates.service_in_term", "dates.no_overlap",
    "dates.renewal_continuity", "po.required", "po.format", "po.not_expired",
    "po.within_amount", "tax.code_present", "tax.rate_matches_code", "tax.exempt_certificate",
    "tax.reverse_charge", "tax.nexus_zero", "duplicate.invoice", "channel.cxml",
    "channel.peppol"}


def judge(unit: BillableUnit, req: dict[str, Any], history: list[InvoiceSummary],
          codes: dict[str, TaxCode], nexus: set[str]) -> set[str]:
    """What an AR specialist objects to in ``unit``, as check rule ids."""
    c, po, lines = unit.customer, unit.po_number, unit.lines
    profile, total = PROFILE[req["channel"]], make_draft(unit).total
    kinds = {ln.tax_code: codes[ln.tax_code].kind for ln in lines if ln.tax_code in codes}
    reverse = TaxKind.REVERSE_CHARGE in kinds.values()
    a = c.bill_to
    known = req.get("purchase_orders", {}).get(po, {})
    on_po = sum((s.total for s in history if s.po_number == po and s.currency == unit.currency),
                Decimal(0))
    filled = {"memo": unit.memo, "po_number": po, "vat_id": c.vat_id,
              "period": "x" if unit.period_start and unit.period_end else ""}
    overlaps = [s for s in history if s.order_id == unit.order_id and s.period_start
                and s.period_end and unit.period_start and unit.period_end
                and s.period_start <= unit.period_end and unit.period_start <= s.period_end]
    wrong = {
        "customer.active": c.is_inactive,
        "customer.name_matches": unit.entity_name != c.name,
        "customer.bill_to_complete": not all((a.addr1, a.city, a.zip, a.country)) or (
            a.country == "US" and not (a.state and US_ZIP.match(a.zip))),
        "customer.ap_email": profile == "email" and not any(
            EMAIL.match(x) for x in (req.get("ap_email", ""), c.email)),
        "customer.tax_id": profile == "peppol" and not reverse and not c.vat_id,
        "customer.required_fields": any(not filled[f] for f in req.get("required_fields", [])),
        "lines.amount_matches": any(ln.amount != ln.quantity * ln.rate for ln in lines),
        "lines.positive": any(ln.amount <= 0 or ln.quantity <= 0 for ln in lines),
        "lines.currency": unit.currency != c.currency,
        "source.quantity": any(ln.quantity_remaining is not None
                               and ln.quantity > ln.quantity_remaining for ln in lines),
        "dates.service_in_term": bool(
            unit.period_start and unit.period_end and unit.contract_start and unit.contract_end
            and (unit.period_start < unit.contract_start
                 or unit.period_end > unit.contract_end)),
        "dates.no_overlap": bool(overlaps),
        "dates.renewal_continuity": bool(
            unit.renews_term_ending and unit.contract_start
            != unit.renews_term_ending + dt.timedelta(days=1)),
        "po.required": req["po_required"] and not po,
        "po.format": bool(po and req.get("po_pattern")
                          and not re.fullmatch(req["po_pattern"], po)),
        "po.not_expired": bool(known.get("expires") and known["expires"] < unit.bill_date),
        "po.within_amount": bool("amount" in known
                                 and on_po + total > Decimal(known["amount"])),
        "tax.code_present": not c.tax_exempt and not reverse and any(
            not ln.tax_code for ln in lines),
        "tax.rate_matches_code": any(ln.tax_code in codes and ln.tax_rate
                                     != codes[ln.tax_code].rate for ln in lines),
        "tax.exempt_certificate": c.tax_exempt and (
            not c.exemption_certificate
            or bool(c.exemption_expires and c.exemption_expires < unit.bill_date)
            or any(ln.tax_rate or kinds.get(ln.tax_code) is not TaxKind.EXEMPT
                   for ln in lines)),
        "tax.reverse_charge": reverse and (not c.vat_id or any(
            ln.tax_rate for ln in lines if kinds.get(ln.tax_code) is TaxKind.REVERSE_CHARGE)),
        "tax.nexus_zero": a.country == "US" and a.state in nexus and not c.tax_exempt and any(
            ln.tax_code and ln.tax_rate == 0 and kinds.get(ln.tax_code) is not TaxKind.EXEMPT
            for ln in lines),
        "duplicate.invoice": any(
            (s.customer_id, s.po_number, s.currency, s.total, s.period_start, s.period_end)
            == (c.id, po, unit.currency, total, unit.period_start, unit.period_end)
            for s in history),
        "channel.cxml": profile == "cxml" and any(
            not ln.units or ln.order_line <= 0 for ln in lines),
        "channel.peppol": profile == "peppol" and (
            ":" not in c.peppol_id or not (po or req.get("buyer_reference"))),
    }
    assert set(wrong) == CHECKLIST
    return {rule for rule, bad in wrong.items() if bad}


def judge_account(gateway: SandboxGateway, as_of: dt.date,
                  requirements: dict[str, dict[str, Any]]) -> dict[str, list[set[str]]]:
    """The judgement of every unit due on ``as_of``, by order number (one set per unit)."""
    units = all_units(gateway, as_of)
    history = gateway.invoices_for_customers(sorted({u.customer.id for u in units}),
                                             as_of - LOOKBACK)
    codes, nexus = gateway.tax_codes(), set(demo_check_settings()["nexus_states"])
    found: dict[str, list[set[str]]] = {}
    for unit in units:
        mine = [s for s in history if s.customer_id == unit.customer.id]
        found.setdefault(unit.order_number, []).append(
            judge(unit, requirements[unit.customer.entity_id], mine, codes, nexus))
    return found


@pytest.mark.parametrize("anchor", [ANCHOR, dt.date(2024, 2, 29), dt.date(2027, 1, 31),
                                    dt.date(2026, 11, 30)])
def test_planted_problems_are_there_and_everything_else_is_clean(tmp_path: Path,
                                                                 anchor: dt.date) -> None:
    build_demo_account(tmp_path / "ns.db", anchor=anchor)
    with SandboxGateway.open(tmp_path / "ns.db") as gateway:
        found = judge_account(gateway, anchor, demo_requirements())
        day_before = {u.order_number for u in all_units(gateway, anchor - dt.timedelta(1))}
    for order, per_unit in found.items():
        assert all(len(p) <= 1 for p in per_unit), f"{order} has several problems: {per_unit}"
        assert len({frozenset(p) for p in per_unit}) == 1, f"{order}: units differ {per_unit}"
    held = {order: next(iter(p[0])) for order, p in found.items() if p[0]}
    assert held == PLANTED_PROBLEMS
    assert all(len(found[order]) == 1 for order in PLANTED_PROBLEMS)  # one unit held each
    assert set(PLANTED_PROBLEMS) <= day_before  # also due in a billing zone a day behind


def test_every_rule_of_the_checklist_has_a_plant() -> None:
    rules = Counter(PLANTED_PROBLEMS.values())
    assert set(rules) == CHECKLIST
    assert {rule for rule, n in rules.items() if n >= 2} == {
        "po.required", "po.format", "customer.bill_to_complete", "lines.amount_matches",
        "duplicate.invoice", "tax.exempt_certificate"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("demo") / "ns.db"
    build_demo_account(path, anchor=ANCHOR)
    with SandboxGateway.open(path) as gateway:
        units = {u.order_number: u for u in all_units(gateway, ANCHOR)}
        history = gateway.invoices_for_customers(
            sorted({u.customer.id for u in units.values()}), ANCHOR - LOOKBACK)
        yield units, history, gateway.tax_codes(), gateway


def test_customer_plants_are_in_the_data_as_described(demo: Any) -> None:
    units, _, codes, _ = demo
    req = demo_requirements()
    assert units["SO-10102"].customer.is_inactive
    renamed = units["SO-10104"]
    assert renamed.entity_name != renamed.customer.name
    assert all(u.entity_name == u.customer.name for n, u in units.items() if n != "SO-10104")
    no_mail = units["SO-10118"]
    assert req[no_mail.customer.entity_id]["ap_email"] == no_mail.customer.email == ""
    norway = units["SO-10103"]  # Peppol, no VAT id, and no reverse charge to blame instead
    assert req[norway.customer.entity_id]["channel"] == "peppol" and not norway.customer.vat_id
    assert {codes[ln.tax_code].kind for ln in norway.lines} == {TaxKind.ZERO}
    memo = units["SO-10113"]
    assert req[memo.customer.entity_id]["required_fields"] == ["memo"] and memo.memo == ""
    assert all(u.memo for u in units.values()
               if u.customer.entity_id == memo.customer.entity_id and u is not memo)


def test_line_and_date_plants_are_in_the_data_as_described(demo: Any) -> None:
    units, history, _, gateway = demo
    assert min(ln.amount for ln in units["SO-10114"].lines) == 0
    assert units["SO-10110"].currency != units["SO-10110"].customer.currency
    scanners = units["SO-10101"].lines[0]  # 10 ordered, 4 billed by hand: 6 remain
    assert (scanners.quantity, scanners.quantity_remaining) == (10, 6)
    by_hand = [s for s in history if s.order_id == units["SO-10101"].order_id]
    assert len(by_hand) == 1 and not by_hand[0].external_id
    cut = units["SO-10105"]  # billed a year, the term ends within it
    assert cut.contract_start == cut.period_start and cut.period_end and cut.contract_end
    assert cut.contract_end < cut.period_end
    month = units["SO-10100"]
    earlier = [s for s in history if s.order_id == month.order_id
               and s.period_start == month.period_start]
    assert len(earlier) == 1 and not earlier[0].external_id
    assert earlier[0].period_end == month.period_end
    assert earlier[0].total != make_draft(month).total
    renewal = units["SO-10107"]
    assert renewal.kind is UnitKind.RENEWAL
    assert renewal.renews_term_ending and renewal.contract_start
    assert (renewal.contract_start - renewal.renews_term_ending).days == 15  # a 14-day gap
    assert gateway.get_order("SO-10098")["status"] == "fullyBilled"


def test_po_and_channel_plants_are_in_the_data_as_described(demo: Any) -> None:
    units, history, _, _ = demo
    req = demo_requirements()
    old = units["SO-10108"]
    assert req[old.customer.entity_id]["purchase_orders"][old.po_number]["expires"] < (
        old.bill_date)
    over = units["SO-10111"]
    po = req[over.customer.entity_id]["purchase_orders"][over.po_number]
    billed = sum(s.total for s in history if s.po_number == over.po_number)
    assert billed < Decimal(po["amount"]) < billed + make_draft(over).total
    cxml = units["SO-10106"]
    assert [ln.units for ln in cxml.lines] == ["EA", ""]
    peppol = units["SO-10117"]
    assert peppol.customer.peppol_id == "" and req[peppol.customer.entity_id]["buyer_reference"]
    assert all(":" in u.customer.peppol_id for n, u in units.items()
               if req[u.customer.entity_id]["channel"] == "peppol" and n != "SO-10117")


def test_tax_plants_are_in_the_data_as_described(demo: Any) -> None:
    units, _, codes, _ = demo
    nexus = set(demo_check_settings()["nexus_states"])
    assert not units["SO-10029"].customer.exemption_certificate
    expired = units["SO-10115"].customer
    assert expired.exemption_certificate and expired.exemption_expires
    assert expired.exemption_expires < units["SO-10115"].bill_date
    for u in units.values():
        if u.customer.tax_exempt and u.order_number not in PLANTED_PROBLEMS:
            assert u.customer.exemption_expires and u.customer.exemption_expires > ANCHOR
    rc = units["SO-10109"]
    assert not rc.customer.vat_id and rc.customer.channel == "email"
    assert {codes[ln.tax_code].kind for ln in rc.lines} == {TaxKind.REVERSE_CHARGE}
    zero = units["SO-10112"]
    assert zero.customer.bill_to.state in nexus
    assert codes[zero.lines[0].tax_code].kind is TaxKind.ZERO
    untaxed = units["SO-10116"]
    assert untaxed.customer.bill_to.country != "US" and untaxed.lines[1].tax_code == ""
    nyc = units["SO-10119"].lines[0]
    assert (nyc.tax_rate, codes[nyc.tax_code].rate) == (Decimal("8.875"), Decimal("4.00"))
    assert "US-ZERO" in {ln.tax_code for ln in units["SO-10118"].lines}  # no nexus in Oregon


def test_ar_sync_checks_hold_exactly_the_planted_problems(tmp_path: Path, demo: Any) -> None:
    """The real rules over the demo, with the context the cycle builds (per unit: due units
    of a planted order are all held by its rule)."""
    checks = pytest.importorskip("ar_sync.checks")
    invoicing = pytest.importorskip("ar_sync.invoicing")
    library = pytest.importorskip("ar_sync.requirements")
    _, history, codes, gateway = demo
    write_requirements_library(tmp_path / "customers.toml")
    requirements, problems = library.load_library(tmp_path / "customers.toml", set(PROFILE))
    assert problems == []
    settings = demo_check_settings()
    held: dict[str, set[str]] = {}
    for unit in all_units(gateway, ANCHOR):
        req = requirements[unit.customer.entity_id]
        ctx = checks.CheckContext(
            as_of=ANCHOR, requirements=req, channel=req.channel, profile=PROFILE[req.channel],
            existing=[s for s in history if s.customer_id == unit.customer.id],
            channels=frozenset(PROFILE), tax_codes=codes,
            nexus_states=frozenset(settings["nexus_states"]),
            closed_through=settings["periods_closed_through"])
        rules = {f.rule for f in checks.run_checks(invoicing.build_draft(unit), ctx, "draft")
                 if f.holds}
        assert len(rules) <= 1, f"{unit.key} ({unit.order_number}): {rules}"
        if rules:
            held.setdefault(unit.order_number, set()).update(rules)
    assert held == {order: {rule} for order, rule in PLANTED_PROBLEMS.items()}


def test_generated_account_is_clean_but_for_its_typos(tmp_path: Path) -> None:
    summary = build_generated_account(tmp_path / "g.db", 3000, ANCHOR, seed=3)
    with SandboxGateway.open(tmp_path / "g.db") as gateway:
        customers = [gateway.get_customer(str(20001 + i - 700))
                     for i in range(summary.customers)]
        library = {c["entityId"]: {"channel": c["custentity_ar_channel"], "po_required": False,
                                   "ap_email": c["email"]} for c in customers}
        found = judge_account(gateway, ANCHOR, library)
    flagged = {order: rules for order, per_unit in found.items() for rules in per_unit if rules}
    assert flagged == {order: {rule} for order, rule in summary.planted.items()}
    assert any(c["custentity_ar_channel"] == "peppol" for c in customers)
    assert any(not c["taxable"] for c in customers)
