"""What the sandbox accounts are made of: a price book, tax codes, customers, order lines.

The supplier is Meridian Cloud Systems, a B2B SaaS company: platform subscriptions per
seat, add-ons, support plans, implementation projects, professional services, training,
a little hardware and perpetual licences. :data:`CUSTOMERS` are the demo account's
customers (US states, EU countries, the UK and Canada; Net 15 to Net 60; USD, EUR and GBP;
exempt customers with and without a certificate; every delivery channel). Which of them
need a PO, and its format, is ar-sync's requirements library, not NetSuite data:
:func:`demo_requirements` gives it and :func:`write_requirements_library` writes it.

An order is first a :class:`Plan` with dates as offsets from an anchor day; ``order_doc``
makes it the NetSuite record once the anchor is known. An offset ``(m, d)`` means the
anchor plus ``m`` calendar months (day clamped to the month's end) plus ``d`` days.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ar_sync.money import round_money

Doc = dict[str, Any]
Offset = tuple[int, int]  # (months, days) from the anchor

TAX_CODES: dict[str, tuple[Decimal, str]] = {
    **{f"{state}-STATE": (Decimal(rate), f"{state} state sales tax") for state, rate in (
        ("CA", "7.25"), ("NY", "4.00"), ("TX", "6.25"), ("WA", "6.50"), ("IL", "6.25"),
        ("MA", "6.25"), ("NJ", "6.625"), ("CO", "2.90"), ("GA", "4.00"), ("FL", "6.00"),
        ("PA", "6.00"), ("AZ", "5.60"))},
    "EXEMPT": (Decimal("0"), "Tax exempt customer"),
    "EU-RC": (Decimal("0"), "EU reverse charge (VAT Directive art. 196)"),
    "GB-RC": (Decimal("0"), "UK reverse charge"),
    "EXPORT": (Decimal("0"), "Export of services, outside the scope of US sales tax"),
}
_EU = frozenset({"DE", "FR", "NL", "IE", "BE", "AT", "ES", "IT"})
_FX = {"EUR": Decimal("0.92"), "GBP": Decimal("0.79")}  # price books in EUR and GBP

# item id: (description, list price in USD)
ITEMS: dict[str, tuple[str, str]] = {
    "PLAT-ENT-M": ("Meridian Platform Enterprise, per seat per month", "65.00"),
    "PLAT-PRO-M": ("Meridian Platform Professional, per seat per month", "39.00"),
    "ANALYTICS-M": ("Advanced Analytics add-on, per seat per month", "12.50"),
    "SUPPORT-PREM-M": ("Premium Support plan, monthly", "750.00"),
    "PLAT-ENT-A": ("Meridian Platform Enterprise, per seat per year", "720.00"),
    "PLAT-PRO-A": ("Meridian Platform Professional, per seat per year", "420.00"),
    "ANALYTICS-A": ("Advanced Analytics add-on, per seat per year", "138.00"),
    "SUPPORT-PREM-A": ("Premium Support plan, annual", "8400.00"),
    "SANDBOX-A": ("Additional sandbox environment, annual", "3600.00"),
    "IMPL-FIXED": ("Implementation services, fixed fee", "1.00"),
    "PS-ARCH": ("Solution architect services (hours)", "225.00"),
    "PS-MIGRATE": ("Data migration services (hours)", "185.00"),
    "TRAIN-VIRTUAL": ("Administrator training, virtual class (per attendee)", "450.00"),
    "TRAIN-ONSITE": ("On-site training day", "2800.00"),
    "HW-GATEWAY": ("Edge Gateway G2 appliance", "1249.00"),
    "HW-SCANNER": ("Rugged barcode scanner RS-40", "389.00"),
    "LIC-ERP-CONN": ("ERP connector licence, perpetual", "4500.00"),
}
ONE_OFF_ITEMS = ("PS-ARCH", "PS-MIGRATE", "TRAIN-VIRTUAL", "TRAIN-ONSITE", "HW-GATEWAY",
                 "HW-SCANNER", "LIC-ERP-CONN")
_HOURS = frozenset({"PS-ARCH", "PS-MIGRATE"})
HARDWARE_ITEMS = ("HW-GATEWAY", "HW-SCANNER")


@dataclass(frozen=True, slots=True)
class Cust:
    """A customer of an account, before it becomes a NetSuite record."""

    number: int
    name: str
    street: str
    city: str
    state: str
    zip: str
    country: str
    terms: int = 30
    channel: str = "email"
    po: str = ""  # PO template like "PO-{:06d}" when the customer requires a PO
    exempt: str | None = None  # None: taxable; "": exempt without certificate; else certificate
    vat: str = ""
    inactive: bool = False
    notes: str = ""


_C = Cust
CUSTOMERS: tuple[Cust, ...] = (
    _C(1001, "Northwind Logistics, Inc.", "1200 Harbor Blvd", "Oakland", "CA", "94607", "US",
       30, "coupa", "PO-{:06d}"),
    _C(1002, "Brightline Health Systems", "455 Madison Ave", "New York", "NY", "10022", "US",
       45, "ariba", "45{:08d}"),
    _C(1003, "Lone Star Freight Co.", "8100 Westpark Dr", "Houston", "TX", "77063", "US"),
    _C(1004, "Cascade Outdoor Supply", "2201 Westlake Ave", "Seattle", "WA", "98121", "US", 15),
    _C(1005, "Prairie Foods Cooperative", "300 N LaSalle St", "Chicago", "IL", "60654", "US",
       30, "coupa", "PF-{:05d}"),
    _C(1006, "Harborview University", "77 Massachusetts Ave", "Cambridge", "MA", "02139", "US",
       60, "ariba", "{:08d}", exempt="MA-ST5-E-220931", notes="Public university, ST-5 on file."),
    _C(1007, "Summit Ridge Capital LLC", "1 Market St, Suite 2400", "San Francisco", "CA",
       "94105", "US"),
    _C(1008, "Garden State Pharma Labs", "100 Campus Dr", "Florham Park", "NJ", "07932", "US",
       45, "coupa", "PO-{:06d}"),
    _C(1009, "Mile High Robotics", "1700 Lincoln St", "Denver", "CO", "80203", "US", 30,
       "coupa", "MHR-{:06d}"),
    _C(1010, "Peachtree Media Group", "1180 Peachtree St NE", "Atlanta", "GA", "30309", "US"),
    _C(1011, "Gulf Coast Community Foundation", "401 E Jackson St", "Tampa", "FL", "33602",
       "US", exempt="", notes="Nonprofit; exemption certificate requested, not yet received."),
    _C(1012, "Keystone Manufacturing LLC", "600 Grant St", "Pittsburgh", "PA", "15219", "US",
       60, "ariba", "45{:08d}"),
    _C(1013, "Bayside Dental Partners", "3131 Camino del Rio N", "San Diego", "CA", "", "US", 15),
    _C(1014, "Empire Legal Services LLP", "200 State St", "", "NY", "12207", "US"),
    _C(1015, "Riverbend Independent School District", "1111 W 6th St", "Austin", "TX",
       "78703", "US", 45, exempt="TX-01-339-7429301"),
    _C(1016, "Copperline Energy Corp.", "2 N Central Ave", "Phoenix", "AZ", "85004", "US", 30,
       "coupa", "PO-{:06d}"),
    _C(1017, "Old Harbor Mutual Insurance", "175 Federal St", "Boston", "MA", "02110", "US",
       45, "ariba", "45{:08d}"),
    _C(1018, "Silverpine Software Resellers", "1000 2nd Ave", "Seattle", "WA", "98104", "US",
       exempt="WA-RS-603118774", notes="Reseller permit on file."),
    _C(1019, "Lakeshore Retail Holdings", "233 S Wacker Dr", "Chicago", "IL", "60606", "US",
       30, "coupa", "LRH{:07d}", inactive=True, notes="Account closed; do not bill."),
    _C(1020, "Redwood Analytics Inc.", "500 Arguello St", "Redwood City", "CA", "94063", "US",
       30, "ariba", "RWA{:07d}"),
    _C(1021, "Hudson Valley Health Network", "2 Executive Blvd", "Suffern", "NY", "10901",
       "US", 45, "coupa", "HVH-{:06d}"),
    _C(1022, "Rheinwerk Maschinenbau GmbH", "Königsallee 92", "Düsseldorf", "", "40212", "DE",
       30, "peppol", "45{:08d}", vat="DE811234567"),
    _C(1023, "Hanse Logistik AG", "Am Sandtorkai 50", "Hamburg", "", "20457", "DE", 45,
       "peppol", "BN-{:06d}", vat="DE298765431"),
    _C(1024, "Atelier Lumière SAS", "18 Rue de la Paix", "Paris", "", "75002", "FR", 60,
       "peppol", "BC-{:06d}", vat="FR40303265045"),
    _C(1025, "Groupe Vallon SA", "12 Quai Saint-Antoine", "Lyon", "", "69002", "FR", 45,
       vat="FR83404833048"),
    _C(1026, "Polderkade Technology B.V.", "Herengracht 420", "Amsterdam", "", "1017 BZ", "NL",
       30, "peppol", "PK-{:06d}", vat="NL859123456B01"),
    _C(1027, "Zuidas Financial Services N.V.", "Gustav Mahlerplein 2", "Amsterdam", "",
       "1082 MA", "NL", 30, "peppol", "45{:08d}", vat="NL812345678B01"),
    _C(1028, "Liffey Data Labs Ltd", "2 Grand Canal Square", "Dublin", "", "D02 A342", "IE", 30,
       "peppol", "LDL-{:05d}", vat="IE6388047V"),
    _C(1029, "Thameside Analytics Ltd", "30 Finsbury Square", "London", "", "EC2A 1AG", "GB",
       vat="GB123456789"),
    _C(1030, "Maple Leaf Outfitters Inc.", "220 King St W", "Toronto", "ON", "M5H 1K4", "CA"),
)


# -- customers as NetSuite records -----------------------------------------------------------

def currency_of(c: Cust) -> str:
    """EU customers are billed in EUR, British ones in GBP, everyone else in USD."""
    return "EUR" if c.country in _EU else "GBP" if c.country == "GB" else "USD"


def tax_code_of(c: Cust) -> str:
    """US state sales tax, reverse charge for EU and UK businesses, none when exempt."""
    if c.exempt is not None:
        return "EXEMPT"
    if c.country == "US":
        return f"{c.state}-STATE"
    return "EU-RC" if c.country in _EU else "GB-RC" if c.country == "GB" else "EXPORT"


def slug(name: str) -> str:
    """The mail domain part for a company: ``Old Harbor Mutual`` → ``oldharbor``."""
    words = name.lower().split()
    return re.sub(r"[^a-z0-9]", "", words[0] + (words[1] if len(words[0]) <= 4 else ""))


def customer_doc(c: Cust) -> Doc:
    """The customer record as NetSuite spells it; internal ids are ``number - 700``."""
    return {
        "internalId": str(c.number - 700), "entityId": f"CUST-{c.number}", "companyName": c.name,
        "isInactive": c.inactive, "email": f"ap@{slug(c.name)}.example.com",
        "terms": {"name": f"Net {c.terms}", "daysUntilNetDue": c.terms},
        "currency": currency_of(c),
        "defaultAddress": {"addressee": c.name, "addr1": c.street, "addr2": "", "city": c.city,
                           "state": c.state, "zip": c.zip, "country": c.country},
        "taxable": c.exempt is None, "resaleNumber": c.exempt or "", "vatRegNumber": c.vat,
        "taxItem": tax_code_of(c), "custentity_ar_channel": c.channel,
        "subsidiary": {"internalId": "1", "name": "Meridian Cloud Systems, Inc."},
    }


def po_pattern(template: str) -> tuple[str, str]:
    """A PO template's regular expression and a sample: ``PO-{:06d}`` → ``^PO-\\d{6}$``."""
    digits = _po_digits(template)
    return ("^" + re.sub(r"\{:0\dd\}", rf"\\d{{{digits}}}", template) + "$",
            template.format(int("123456789"[:digits])))


def _po_digits(template: str) -> int:
    match = re.search(r"\{:0(\d)d\}", template)
    if match is None:
        raise ValueError(f"PO template {template!r} has no {{:0Nd}} number field")
    return int(match[1])


# -- the requirements library (ar-sync's, not NetSuite's) -------------------------------------

_CHANNEL_NOTES = {
    "coupa": "Coupa supplier portal: invoice against the approved PO (PO flip), one PO each.",
    "ariba": "SAP Ariba Network: PO-based invoices only; the PO must match the Ariba order.",
    "peppol": "Peppol BIS Billing 3.0; the PO number goes in the order reference.",
    "email": "PDF invoice to the AP mailbox.",
}


def demo_requirements() -> dict[str, dict[str, Any]]:
    """The demo customers' entries for ar-sync's requirements library, by entity id."""
    entries: dict[str, dict[str, Any]] = {}
    for c in CUSTOMERS:
        entry: dict[str, Any] = {"channel": c.channel, "po_required": bool(c.po)}
        if c.po:
            entry["po_pattern"], entry["po_pattern_hint"] = po_pattern(c.po)
        entry["ap_email"] = f"ap@{slug(c.name)}.example.com"
        entry["notes"] = " ".join(filter(None, (_CHANNEL_NOTES[c.channel], c.notes)))
        entries[f"CUST-{c.number}"] = entry
    return entries


def write_requirements_library(path: Path,
                               requirements: dict[str, dict[str, Any]] | None = None) -> None:
    """Write a requirements library (the demo's unless given) as TOML, one table each."""
    entries = demo_requirements() if requirements is None else requirements
    out = ["# Customer requirements library: how each customer wants to be invoiced.",
           "# Generated for the ar-sync sandbox demo account; edit freely."]
    for customer, entry in entries.items():
        out += ["", f"[customers.{_toml_str(customer)}]"]
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")


def _toml_str(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return '"' + "".join(escapes.get(ch, ch if ch >= " " and ch != "\x7f" else
                                     f"\\u{ord(ch):04x}") for ch in text) + '"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_str(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_str(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to the requirements library")


# -- dates and lines -------------------------------------------------------------------------

def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by calendar months, clamped to the month's last day (Jan 31 → Feb 28)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def at(anchor: dt.date, offset: Offset) -> dt.date:
    """The day ``offset`` (months, days) names, counted from ``anchor``."""
    return add_months(anchor, offset[0]) + dt.timedelta(days=offset[1])


@dataclass(frozen=True, slots=True)
class Line:
    """An order line to be: item, quantity, rate, and an amount only when it is wrong."""

    item: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal | None = None  # None: quantity × rate, the clean case


def price(item: str, currency: str) -> Decimal:
    """The list price of ``item`` in ``currency`` (a price book per currency)."""
    base = Decimal(ITEMS[item][1])
    return base if currency == "USD" else round_money(base * _FX[currency], currency)


def line_doc(n: int, line: Line, tax_code: str, currency: str) -> Doc:
    """An order line; its amount is quantity × rate exactly unless the plan says otherwise."""
    exact = line.quantity * line.rate
    if round_money(exact, currency) != exact:
        raise ValueError(f"{line.item}: {line.quantity} × {line.rate} is not a whole cent")
    amount = line.amount if line.amount is not None else round_money(exact, currency)
    return {"line": n, "item": line.item, "description": ITEMS[line.item][0],
            "quantity": str(line.quantity), "rate": str(line.rate), "amount": str(amount),
            "taxCode": tax_code, "taxRate": str(TAX_CODES[tax_code][0])}


def one_off_lines(rng: random.Random, c: Cust,
                  items: tuple[str, ...] = ONE_OFF_ITEMS) -> tuple[Line, ...]:
    """One to three lines of services, training, hardware or licences."""
    lines = []
    for item in rng.sample(items, rng.randint(1, min(3, len(items)))):
        qty = (rng.choice((8, 12, 16, 24, 32, 40, 60)) if item in _HOURS else
               rng.randint(1, 4) if item in ("TRAIN-ONSITE", "LIC-ERP-CONN") else
               rng.randint(2, 40))
        lines.append(Line(item, Decimal(qty), price(item, currency_of(c))))
    return tuple(lines)


def subscription_lines(rng: random.Random, c: Cust, period: str) -> tuple[Line, ...]:
    """Seats of a platform tier, maybe analytics for the same seats, maybe premium support."""
    seats = Decimal(rng.choice((10, 15, 20, 25, 40, 50, 75, 100, 150)))
    cur = currency_of(c)
    lines = [Line(rng.choice(("PLAT-ENT-", "PLAT-PRO-")) + period, seats, Decimal(0))]
    if rng.random() < 0.5:
        lines.append(Line(f"ANALYTICS-{period}", seats, Decimal(0)))
    if rng.random() < 0.4:
        lines.append(Line(f"SUPPORT-PREM-{period}", Decimal(1), Decimal(0)))
    return tuple(Line(ln.item, ln.quantity, price(ln.item, cur)) for ln in lines)


def make_po(rng: random.Random, c: Cust) -> str:
    """A valid PO for a customer that requires one; otherwise sometimes a free-form one."""
    if c.po:
        return c.po.format(rng.randrange(1, 10 ** _po_digits(c.po)))
    return str(rng.randrange(10000, 99999)) if rng.random() < 0.4 else ""


# -- orders as NetSuite records --------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Plan:
    """One sales order before its dates (offsets from the anchor) are known."""

    customer: Cust
    kind: str  # "oneoff", "monthly", "annual" or "milestone"
    start: Offset  # the order date; a subscription's first day; a project's start
    lines: tuple[Line, ...]
    status: str = "pendingBilling"
    po: str = ""
    memo: str = ""
    periods: int = 1  # months or years of a subscription
    billed: int = 0  # leading instalments (or the whole one-off order) invoiced before
    service: tuple[Offset, Offset] | None = None  # a one-off order's service period
    milestones: tuple[tuple[Offset, int, str], ...] = ()  # (date, percent, name)
    renews: Plan | None = None
    problem: str = ""

    def sort_key(self) -> int:
        """Roughly days from the anchor, months counted as 30.44 days: anchor-independent."""
        return self.start[0] * 3044 + self.start[1] * 100


def order_doc(plan: Plan, internal_id: int, number: int, customer: Doc, anchor: dt.date,
              renews: tuple[str, str] | None = None) -> Doc:
    """The sales order record of ``plan``; ``renews`` is the renewed order's (id, tranId)."""
    cur, tax = customer["currency"], customer["taxItem"]
    items = [line_doc(n, ln, tax, cur) for n, ln in enumerate(plan.lines, 1)]
    instalments = list(_instalments(plan, anchor, items, tax, cur))
    start, end = _term(plan, anchor, instalments)
    doc: Doc = {
        "internalId": str(internal_id), "tranId": f"SO-{number}",
        "entity": {"internalId": customer["internalId"], "name": customer["companyName"]},
        "tranDate": at(anchor, plan.start).isoformat(), "status": plan.status,
        "currency": cur, "otherRefNum": plan.po, "memo": plan.memo,
        "startDate": start, "endDate": end, "item": items}
    if renews is not None:
        doc["custbody_renewal_of"] = {"internalId": renews[0], "name": renews[1]}
        doc["memo"] = f"Renewal of {renews[1]}, {plan.periods * 12} months from {start}"
    if plan.kind != "oneoff":
        milestone = plan.kind == "milestone"
        doc["billingSchedule"] = {
            "name": "Fixed bid 30/40/30" if milestone else f"{plan.kind.title()} in advance",
            "scheduleType": "fixedBidMilestone" if milestone else "standard",
            "frequency": "milestone" if milestone else
            "monthly" if plan.kind == "monthly" else "annually",
            "instalments": instalments}
    return doc


def _instalments(plan: Plan, anchor: dt.date, items: list[Doc], tax: str,
                 cur: str) -> Iterator[Doc]:
    if plan.kind in ("monthly", "annual"):
        step = 1 if plan.kind == "monthly" else 12
        for i in range(plan.periods):
            first = at(anchor, (plan.start[0] + step * i, plan.start[1]))
            last = at(anchor, (plan.start[0] + step * (i + 1), plan.start[1]))
            yield {"date": first.isoformat(), "periodStart": first.isoformat(),
                   "periodEnd": (last - dt.timedelta(days=1)).isoformat(),
                   "item": [dict(x) for x in items], "invoice": None}
    previous = at(anchor, plan.start)
    for offset, percent, name in plan.milestones:
        day, total = at(anchor, offset), plan.lines[0].rate
        share = Line("IMPL-FIXED", Decimal(1), round_money(total * percent / 100, cur))
        line = line_doc(1, share, tax, cur) | {
            "description": f"Implementation milestone: {name} ({percent}% of {total} {cur})"}
        yield {"date": day.isoformat(), "periodStart": previous.isoformat(),
               "periodEnd": day.isoformat(), "milestone": name, "percent": str(percent),
               "item": [line], "invoice": None}
        previous = day + dt.timedelta(days=1)


def _term(plan: Plan, anchor: dt.date, instalments: list[Doc]) -> tuple[str | None, str | None]:
    if instalments:
        return instalments[0]["periodStart"], instalments[-1]["periodEnd"]
    if plan.service:
        return at(anchor, plan.service[0]).isoformat(), at(anchor, plan.service[1]).isoformat()
    return None, None

