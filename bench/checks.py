"""Benchmark the review checklist: cost per invoice on generated invoices.

    /work/venv/bin/python bench/checks.py [--invoices 50000] [--json]

Generates N consistent draft invoices (1-8 lines, random quantities, rates and tax codes,
a mix of channel profiles, tax-exempt and reverse-charge customers, a requirements-library
entry with a PO pattern and a known PO per customer, a few existing invoices per customer for
the duplicate, overlap and PO-amount rules), then times ``run_checks`` on every invoice at the
draft stage and again at the invoice stage (against its draft). Generation is not timed.

Target: under 0.2 ms of checklist per invoice (both stages together). A script run on
demand, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import time
from decimal import Decimal

from ar_sync.checks import RULES, CheckContext, run_checks
from ar_sync.invoicing import build_draft
from ar_sync.models import (
    Address,
    BillableUnit,
    Customer,
    CustomerRequirements,
    Invoice,
    PurchaseOrder,
    TaxCode,
    TaxKind,
    Terms,
    UnitKind,
    UnitLine,
)
from ar_sync.money import round_money
from ar_sync.netsuite.gateway import InvoiceSummary

AS_OF = dt.date(2026, 11, 30)
TAX = {"CA-STATE": TaxCode("CA-STATE", Decimal("7.25")),
       "NY-STATE": TaxCode("NY-STATE", Decimal("8.875")),
       "EXEMPT": TaxCode("EXEMPT", Decimal(0), TaxKind.EXEMPT),
       "EU-RC": TaxCode("EU-RC", Decimal(0), TaxKind.REVERSE_CHARGE)}
PROFILES = ("cxml", "peppol", "email")


def customers(n: int, rng: random.Random) -> list[tuple[Customer, CustomerRequirements, str]]:
    out = []
    for i in range(n):
        kind = rng.choice(("us", "us", "exempt", "eu"))
        country, state, zipc = (("NL", "", "1017 AB") if kind == "eu"
                                else ("US", rng.choice(("CA", "NY")), f"{10000 + i:05d}"))
        c = Customer(str(i), f"CUST-{i}", f"Customer {i} Inc.",
                     Address(f"Customer {i} Inc.", f"{i} Main St", "", "Springfield", state,
                             zipc, country),
                     Terms("Net 30", 30), "EUR" if kind == "eu" else "USD",
                     email=f"ap{i}@example.com", tax_exempt=kind == "exempt",
                     exemption_certificate="RESALE-1" if kind == "exempt" else "",
                     exemption_expires=dt.date(2028, 1, 1), vat_id=f"NL{i:09d}B01",
                     peppol_id=f"0088:{i:013d}")
        po = f"PO-{i:06d}"
        req = CustomerRequirements(c.entity_id, po_required=True, po_pattern=r"PO-\d{6}",
                                   ap_email=c.email, purchase_orders={po: PurchaseOrder(
                                       po, Decimal("100000000"), c.currency, dt.date(2028, 1, 1))})
        out.append((c, req, rng.choice(PROFILES)))
    return out


def code_for(c: Customer) -> str:
    if c.tax_exempt:
        return "EXEMPT"
    if c.bill_to.country != "US":
        return "EU-RC"
    return "CA-STATE" if c.bill_to.state == "CA" else "NY-STATE"


def draft(n: int, c: Customer, rng: random.Random) -> Invoice:
    code = code_for(c)
    lines = []
    for ln in range(1, rng.randint(1, 8) + 1):
        qty = Decimal(rng.randint(1, 5000)) / 10
        rate = Decimal(rng.randint(100, 500000)) / 100
        lines.append(UnitLine(ln, f"ITEM-{ln}", "Item", qty, rate, round_money(qty * rate,
                              c.currency), code, TAX[code].rate, units="EA",
                              quantity_remaining=qty))
    start = dt.date(2026, 11, 1)
    unit = BillableUnit(f"so:{n}:2026-11-01", UnitKind.INSTALMENT, str(n), f"SO-{n}", c,
                        dt.date(2026, 11, 1), c.currency, f"PO-{int(c.id):06d}", tuple(lines),
                        start, dt.date(2026, 11, 30), entity_name=c.name,
                        contract_start=dt.date(2026, 1, 1), contract_end=dt.date(2026, 12, 31))
    return build_draft(unit)


def history(c: Customer, rng: random.Random) -> list[InvoiceSummary]:
    return [InvoiceSummary(str(k), f"INV-{k}", "", c.id, str(rng.randint(1, 10**6)),
                           f"PO-{int(c.id):06d}", c.currency, Decimal(rng.randint(1, 10**6)),
                           dt.date(2026, m, 1), dt.date(2026, m, 28))
            for k, m in enumerate(range(5, 11))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    people = customers(500, rng)
    contexts = []
    for c, req, profile in people:
        contexts.append(CheckContext(as_of=AS_OF, requirements=req, existing=history(c, rng),
                                     channels=frozenset(PROFILES), channel=profile,
                                     profile=profile, tax_codes=TAX,
                                     nexus_states=frozenset({"CA", "NY"})))
    work = []
    for n in range(args.invoices):
        i = rng.randrange(len(people))
        d = draft(n, people[i][0], rng)
        created = dataclasses.replace(d, netsuite_id=str(n), tran_id=f"INV-{n}")
        work.append((d, created, contexts[i]))
    findings = 0
    start = time.perf_counter()
    for d, _, ctx in work:
        findings += len(run_checks(d, ctx, "draft"))
    mid = time.perf_counter()
    for d, created, ctx in work:
        findings += len(run_checks(created, dataclasses.replace(ctx, draft=d), "invoice"))
    end = time.perf_counter()
    n = len(work)
    figures = {
        "invoices": n, "rules": len(RULES), "lines": sum(len(d.lines) for d, _, _ in work),
        "findings": findings,
        "draft_ms_per_invoice": round((mid - start) * 1000 / n, 4),
        "invoice_stage_ms_per_invoice": round((end - mid) * 1000 / n, 4),
        "total_ms_per_invoice": round((end - start) * 1000 / n, 4),
        "target_ms_per_invoice": 0.2,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for name, value in figures.items():
        print(f"{name:<30} {value}")


if __name__ == "__main__":
    main()
