"""The problems planted in the demo account, one per order, each caught by exactly its rule.

:data:`PLANTED_PROBLEMS` maps each planted order's ``tranId`` to the check rule that must
hold it. The first ten are the problems an AR specialist meets every week; the rest are
what only the full review checklist catches (tax, dates, purchase orders, channels).
Everything else in the demo account is clean under every rule, so the demo shows exactly
these held and the rest delivered.

Planted orders are numbered after the rest (SO-10098 on), so adding a plant never moves the
number of an existing order; their numbers do not depend on the anchor day.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ar_sync.money import round_money
from ar_sync.netsuite.seed_catalog import (
    Cust,
    Line,
    make_po,
    one_off_lines,
    price,
    subscription_lines,
)
from ar_sync.netsuite.seed_orders import HandBill, Plan

# The order (tranId) each planted problem is on, and the check rule that must catch it.
PLANTED_PROBLEMS: dict[str, str] = {
    "SO-10029": "tax.exempt_certificate",  # CUST-1011: exempt, certificate never received
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
    # Only the full checklist catches these. SO-10098 (renewed by SO-10107) and SO-10099
    # (billed on the blanket PO of SO-10111) are clean history, not plants.
    "SO-10100": "dates.no_overlap",  # CUST-1029: this month's seats already invoiced by hand
    "SO-10101": "source.quantity",  # CUST-1009: bills 10 scanners, 4 were billed by hand
    "SO-10102": "customer.active",  # CUST-1019: the customer was closed, the order was not
    "SO-10103": "customer.tax_id",  # CUST-1032 (Peppol, Norway): no VAT number on record
    "SO-10104": "customer.name_matches",  # CUST-1010: entered as Peachtree Media Partners LLC
    "SO-10105": "dates.service_in_term",  # CUST-1027: a year billed, the term ends in 5 months
    "SO-10106": "channel.cxml",  # CUST-1012 (Ariba): line 2 has no unit of measure
    "SO-10107": "dates.renewal_continuity",  # CUST-1005: starts two weeks after SO-10098 ended
    "SO-10108": "po.not_expired",  # CUST-1017: PO 4500071234 expired 2023-12-31
    "SO-10109": "tax.reverse_charge",  # CUST-1034 (Spain, e-mail): reverse charge, no VAT id
    "SO-10110": "lines.currency",  # CUST-1025 (billed in EUR): the order is in USD
    "SO-10111": "po.within_amount",  # CUST-1016: PO-550120 for 50,000.00, SO-10099 used most
    "SO-10112": "tax.nexus_zero",  # CUST-1001 (California): US-ZERO, 0% where tax is due
    "SO-10113": "customer.required_fields",  # CUST-1021: no memo (it wants its cost centre)
    "SO-10114": "lines.positive",  # CUST-1007: two training seats at 0.00
    "SO-10115": "tax.exempt_certificate",  # CUST-1033: certificate expired a month ago
    "SO-10116": "tax.code_present",  # CUST-1030: line 2 has no tax code
    "SO-10117": "channel.peppol",  # CUST-1035 (Peppol): no Peppol endpoint id
    "SO-10118": "customer.ap_email",  # CUST-1031 (e-mail): no AP address anywhere
    "SO-10119": "tax.rate_matches_code",  # CUST-1002: NY-STATE (4%) line taxed at 8.875%
}

D = Decimal


def plant_everyday_problems(rng: random.Random, c: dict[int, Cust], plans: list[Plan],
                            one_off: Callable[..., Plan]) -> None:
    """The problems an AR specialist meets every week; each order has exactly one."""
    one_off(1008, -4, po="", problem="po.required")
    plans.append(Plan(c[1012], "monthly", (0, -1), subscription_lines(rng, c[1012], "M"),
                      periods=12, problem="po.required",
                      memo="Meridian Platform subscription, 12 months, billed monthly"))
    one_off(1002, -6, po="450012345", problem="po.format")  # nine digits, not ten
    one_off(1005, -2, po="PF 20931", problem="po.format")  # a space for the dash
    one_off(1013, -5, problem="customer.bill_to_complete")  # ZIP missing
    one_off(1014, -8, problem="customer.bill_to_complete")  # city missing
    usd = D("1249.00")
    one_off(1004, -3, lines=(Line("HW-GATEWAY", D(3), usd, D("3474.00")),
                             Line("HW-SCANNER", D(3), D("389.00"))),
            problem="lines.amount_matches")  # 3 × 1,249.00 = 3,747.00: digits swapped
    one_off(1017, -1, lines=(Line("PS-ARCH", D("42.5"), D("225.00"), D("9652.50")),),
            problem="lines.amount_matches")
    for n, first, again in ((1003, -21, -2), (1023, -40, -6)):
        lines, po = one_off_lines(rng, c[n], ("PS-ARCH", "TRAIN-ONSITE")), make_po(rng, c[n])
        service = ((-2, 0), (-1, -1))
        memo = "Advisory and on-site training, last month"
        one_off(n, first, lines=lines, po=po, service=service, memo=memo, status="fullyBilled",
                billed=1)
        one_off(n, again, lines=lines, po=po, service=service, memo=memo,
                problem="duplicate.invoice")


def plant_checklist_problems(rng: random.Random, c: dict[int, Cust]) -> list[Plan]:
    """The problems only the full checklist catches; each order has exactly one, and is due
    once, a few days before the anchor (so also for a billing zone a day behind)."""
    plans: list[Plan] = []

    def one_off(n: int, day: int, lines: tuple[Line, ...] = (), **kw: Any) -> None:
        kw.setdefault("po", make_po(rng, c[n]))
        kw.setdefault("memo", c[n].memo)
        plans.append(Plan(c[n], "oneoff", (0, day), lines or one_off_lines(rng, c[n]), **kw))

    def line(item: str, quantity: int, currency: str = "USD", **kw: Any) -> Line:
        return Line(item, D(quantity), price(item, currency), **kw)

    one_off(1019, -9, problem="customer.active")  # the account was closed; the order was not
    one_off(1010, -7, entity_name="Peachtree Media Partners LLC",  # renamed since
            problem="customer.name_matches")
    one_off(1031, -2, lines=(line("PS-ARCH", 8), line("TRAIN-VIRTUAL", 3)),
            problem="customer.ap_email")  # e-mail customer, no address anywhere
    one_off(1032, -8, lines=(line("LIC-ERP-CONN", 2), line("PS-ARCH", 16)),
            problem="customer.tax_id")  # Peppol, Norway (no reverse charge), no VAT number
    one_off(1021, -4, memo="", problem="customer.required_fields")  # no cost centre memo
    one_off(1007, -4, lines=(line("PS-ARCH", 16), Line("TRAIN-VIRTUAL", D(2), D("0.00"))),
            memo="Architecture review; two training seats free of charge",
            problem="lines.positive")
    one_off(1025, -5, currency="USD", lines=(line("LIC-ERP-CONN", 2),),  # a EUR customer
            problem="lines.currency")
    one_off(1009, -12, lines=(line("HW-SCANNER", 10), line("HW-GATEWAY", 2)),
            by_hand=(HandBill((0, -9), (line("HW-SCANNER", 4),),
                              memo="4 scanners shipped ahead, billed by hand"),),
            problem="source.quantity")  # 4 of the 10 scanners are billed already
    plans.append(Plan(  # co-termed add-on, but billed for a whole year
        c[1027], "annual", (0, -7), (line("SANDBOX-A", 1, "EUR"),), po=make_po(rng, c[1027]),
        term_end=(5, -8), memo="Additional sandbox environment until the contract renews",
        problem="dates.service_in_term"))
    seats = (line("PLAT-PRO-M", 25, "GBP"), line("SUPPORT-PREM-M", 1, "GBP"))
    plans.append(Plan(  # this month's seats were already invoiced by hand
        c[1029], "monthly", (-1, -9), seats, po=make_po(rng, c[1029]), periods=12, billed=1,
        memo="Meridian Platform subscription, 12 months, billed monthly",
        by_hand=(HandBill((0, -8), seats[:1], ((0, -9), (1, -10)),
                          "Platform seats for the month, invoiced early on request"),),
        problem="dates.no_overlap"))
    _renewal_with_a_gap(rng, c[1005], plans)
    one_off(1017, -6, po="4500071234", lines=(line("PS-ARCH", 24),),  # FY2023 blanket PO
            problem="po.not_expired")
    plans.append(Plan(c[1016], "oneoff", (-3, -10), (line("LIC-ERP-CONN", 8),
                                                     line("PS-ARCH", 16)),
                      status="fullyBilled", po="PO-550120", billed=1,
                      memo="ERP connector licences and set-up"))
    one_off(1016, -5, po="PO-550120", lines=(line("LIC-ERP-CONN", 3),),  # over 50,000.00
            problem="po.within_amount")
    one_off(1030, -3, lines=(line("PS-MIGRATE", 24), line("TRAIN-VIRTUAL", 6, tax_code="")),
            problem="tax.code_present")  # Canada: not a nexus state, so only this rule
    one_off(1002, -2, lines=(line("PS-ARCH", 20, tax_rate=D("8.875")),),  # NYC's combined rate
            problem="tax.rate_matches_code")
    one_off(1033, -4, lines=(line("TRAIN-VIRTUAL", 4), line("LIC-ERP-CONN", 1)),
            problem="tax.exempt_certificate")  # the certificate expired last month
    one_off(1034, -6, lines=(line("PS-ARCH", 12, "EUR"),),
            problem="tax.reverse_charge")  # EU reverse charge, buyer has no VAT number
    one_off(1001, -5, lines=(line("TRAIN-ONSITE", 2, tax_code="US-ZERO"),),  # CA: tax is due
            problem="tax.nexus_zero")
    one_off(1012, -7, lines=(line("HW-GATEWAY", 5), line("HW-SCANNER", 12, units="")),
            problem="channel.cxml")  # Ariba needs a unit of measure on every line
    one_off(1035, -3, po="", lines=(line("PS-ARCH", 16, "EUR"), line("TRAIN-VIRTUAL", 8, "EUR")),
            problem="channel.peppol")  # Peppol customer without an endpoint id
    return plans


def _renewal_with_a_gap(rng: random.Random, c: Cust, plans: list[Plan]) -> None:
    """A one-year subscription and its renewal, which starts two weeks after it ended."""
    lines = (Line("PLAT-PRO-A", D(15), price("PLAT-PRO-A", "USD")),)
    old = Plan(c, "annual", (-12, -20), lines, po=make_po(rng, c), billed=1,
               memo="Meridian Platform subscription, 12 months, billed annually")
    uplift = tuple(Line(ln.item, ln.quantity, round_money(ln.rate * D("1.05"), "USD"))
                   for ln in lines)
    plans += [old, Plan(c, "annual", (0, -6), uplift, po=make_po(rng, c), renews=old,
                        problem="dates.renewal_continuity")]
