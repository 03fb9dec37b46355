"""What the sandbox accounts are made of: a price book, tax codes, customers, order lines.

The supplier is Meridian Cloud Systems, a B2B SaaS company: platform subscriptions per
seat, add-ons, support plans, implementation projects, professional services, training,
a little hardware and perpetual licences. :data:`CUSTOMERS` are the demo account's
customers (US states, EU countries, the UK, Norway and Canada; Net 15 to Net 60; USD, EUR
and GBP; exempt customers with a valid, an expired and no certificate; every delivery
channel). Which of them need a PO, and its format, is ar-sync's requirements library, not
NetSuite data: :mod:`.seed_library` writes it.

An order is first a :class:`Plan` with dates as offsets from an anchor day; ``order_doc``
makes it the NetSuite record once the anchor is known. An offset ``(m, d)`` means the
anchor plus ``m`` calendar months (day clamped to the month's end) plus ``d`` days.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ar_sync.models import TaxCode, TaxKind
from ar_sync.money import round_money

Doc = dict[str, Any]
Offset = tuple[int, int]  # (months, days) from the anchor

_STATE_RATES = (("CA", "7.25"), ("NY", "4.00"), ("TX", "6.25"), ("WA", "6.50"), ("IL", "6.25"),
                ("MA", "6.25"), ("NJ", "6.625"), ("CO", "2.90"), ("GA", "4.00"), ("FL", "6.00"),
                ("PA", "6.00"), ("AZ", "5.60"))
# The account's tax codes. The seller charges sales tax in the states it has a code for
# (its nexus); elsewhere in the US a sale is not taxed (US-ZERO).
TAX_CODES: dict[str, TaxCode] = {t.code: t for t in (
    *(TaxCode(f"{state}-STATE", Decimal(rate), TaxKind.STANDARD, f"{state} state sales tax")
      for state, rate in _STATE_RATES),
    TaxCode("US-ZERO", Decimal("0"), TaxKind.ZERO,
            "Not taxed: no sales tax nexus in the customer's state"),
    TaxCode("EXEMPT", Decimal("0"), TaxKind.EXEMPT, "Tax exempt customer (certificate on file)"),
    TaxCode("EU-RC", Decimal("0"), TaxKind.REVERSE_CHARGE,
            "EU reverse charge (VAT Directive art. 196)"),
    TaxCode("GB-RC", Decimal("0"), TaxKind.REVERSE_CHARGE, "UK reverse charge"),
    TaxCode("EXPORT", Decimal("0"), TaxKind.ZERO,
            "Export of services, outside the scope of US sales tax"),
)}
NEXUS_STATES: tuple[str, ...] = tuple(sorted(state for state, _ in _STATE_RATES))
_EU = frozenset({"DE", "FR", "NL", "IE", "BE", "AT", "ES", "IT"})
_FX = {"EUR": Decimal("0.92"), "GBP": Decimal("0.79")}  # price books in EUR and GBP

# item id: (description, list price in USD, unit of measure as UN/ECE Rec. 20 codes, which
# Peppol and cXML both expect: EA each, HUR hour, DAY day, MON month, ANN year, LS lump sum)
ITEMS: dict[str, tuple[str, str, str]] = {
    "PLAT-ENT-M": ("Meridian Platform Enterprise, per seat per month", "65.00", "EA"),
    "PLAT-PRO-M": ("Meridian Platform Professional, per seat per month", "39.00", "EA"),
    "ANALYTICS-M": ("Advanced Analytics add-on, per seat per month", "12.50", "EA"),
    "SUPPORT-PREM-M": ("Premium Support plan, monthly", "750.00", "MON"),
    "PLAT-ENT-A": ("Meridian Platform Enterprise, per seat per year", "720.00", "EA"),
    "PLAT-PRO-A": ("Meridian Platform Professional, per seat per year", "420.00", "EA"),
    "ANALYTICS-A": ("Advanced Analytics add-on, per seat per year", "138.00", "EA"),
    "SUPPORT-PREM-A": ("Premium Support plan, annual", "8400.00", "ANN"),
    "SANDBOX-A": ("Additional sandbox environment, annual", "3600.00", "ANN"),
    "IMPL-FIXED": ("Implementation services, fixed fee", "1.00", "LS"),
    "PS-ARCH": ("Solution architect services (hours)", "225.00", "HUR"),
    "PS-MIGRATE": ("Data migration services (hours)", "185.00", "HUR"),
    "TRAIN-VIRTUAL": ("Administrator training, virtual class (per attendee)", "450.00", "EA"),
    "TRAIN-ONSITE": ("On-site training day", "2800.00", "DAY"),
    "HW-GATEWAY": ("Edge Gateway G2 appliance", "1249.00", "EA"),
    "HW-SCANNER": ("Rugged barcode scanner RS-40", "389.00", "EA"),
    "LIC-ERP-CONN": ("ERP connector licence, perpetual", "4500.00", "EA"),
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
    peppol: str = ""  # Peppol endpoint id, scheme:value
    cert_expires: Offset | None = None  # when the exemption certificate runs out
    email: str | None = None  # None: ap@<company>.example.com
    memo: str = ""  # what the customer wants in the memo of every order (a cost centre)


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
       60, "ariba", "{:08d}", exempt="MA-ST5-E-220931", cert_expires=(20, 0),
       notes="Public university, ST-5 on file."),
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
       "78703", "US", 45, exempt="TX-01-339-7429301", cert_expires=(9, 0)),
    _C(1016, "Copperline Energy Corp.", "2 N Central Ave", "Phoenix", "AZ", "85004", "US", 30,
       "coupa", "PO-{:06d}"),
    _C(1017, "Old Harbor Mutual Insurance", "175 Federal St", "Boston", "MA", "02110", "US",
       45, "ariba", "45{:08d}"),
    _C(1018, "Silverpine Software Resellers", "1000 2nd Ave", "Seattle", "WA", "98104", "US",
       exempt="WA-RS-603118774", cert_expires=(14, 0), notes="Reseller permit on file."),
    _C(1019, "Lakeshore Retail Holdings", "233 S Wacker Dr", "Chicago", "IL", "60606", "US",
       30, "coupa", "LRH{:07d}", inactive=True, notes="Account closed; do not bill."),
    _C(1020, "Redwood Analytics Inc.", "500 Arguello St", "Redwood City", "CA", "94063", "US",
       30, "ariba", "RWA{:07d}"),
    _C(1021, "Hudson Valley Health Network", "2 Executive Blvd", "Suffern", "NY", "10901",
       "US", 45, "coupa", "HVH-{:06d}", memo="Cost centre 4410 (Clinical Informatics)",
       notes="Wants its cost centre in the memo of every invoice."),
    _C(1022, "Rheinwerk Maschinenbau GmbH", "Königsallee 92", "Düsseldorf", "", "40212", "DE",
       30, "peppol", "45{:08d}", vat="DE811234567", peppol="9930:DE811234567"),
    _C(1023, "Hanse Logistik AG", "Am Sandtorkai 50", "Hamburg", "", "20457", "DE", 45,
       "peppol", "BN-{:06d}", vat="DE298765431", peppol="0088:4012345000009"),
    _C(1024, "Atelier Lumière SAS", "18 Rue de la Paix", "Paris", "", "75002", "FR", 60,
       "peppol", "BC-{:06d}", vat="FR40303265045", peppol="0009:30326504500017"),
    _C(1025, "Groupe Vallon SA", "12 Quai Saint-Antoine", "Lyon", "", "69002", "FR", 45,
       vat="FR83404833048"),
    _C(1026, "Polderkade Technology B.V.", "Herengracht 420", "Amsterdam", "", "1017 BZ", "NL",
       30, "peppol", "PK-{:06d}", vat="NL859123456B01", peppol="0106:34123456"),
    _C(1027, "Zuidas Financial Services N.V.", "Gustav Mahlerplein 2", "Amsterdam", "",
       "1082 MA", "NL", 30, "peppol", "45{:08d}", vat="NL812345678B01",
       peppol="9944:NL812345678B01"),
    _C(1028, "Liffey Data Labs Ltd", "2 Grand Canal Square", "Dublin", "", "D02 A342", "IE", 30,
       "peppol", "LDL-{:05d}", vat="IE6388047V", peppol="9935:IE6388047V"),
    _C(1029, "Thameside Analytics Ltd", "30 Finsbury Square", "London", "", "EC2A 1AG", "GB",
       vat="GB123456789"),
    _C(1030, "Maple Leaf Outfitters Inc.", "220 King St W", "Toronto", "ON", "M5H 1K4", "CA"),
    # Customers added with the full checklist; each has one order, which has a problem.
    _C(1031, "Kestrel Creative Studio LLC", "1120 NW Couch St", "Portland", "OR", "97209",
       "US", 15, email="", notes="New customer; AP contact not known yet."),
    _C(1032, "Nordvik Maritime AS", "Strandkaien 14", "Bergen", "", "5013", "NO", 30, "peppol",
       "NM-{:05d}", peppol="0192:987654321"),
    _C(1033, "Cedar Valley Public Library District", "120 E Main St", "Belleville", "IL",
       "62220", "US", 30, exempt="IL-E9912-4471", cert_expires=(-1, -3),
       notes="Public library; exemption letter renewed every five years."),
    _C(1034, "Estudio Marea S.L.", "Calle de Colón 12", "Valencia", "", "46004", "ES", 30),
    _C(1035, "Zorggroep Brugge VZW", "Ruddershove 10", "Brugge", "", "8000", "BE", 45, "peppol",
       vat="BE0412345678", notes="Public care group: no POs; quote the buyer reference."),
)


# -- customers as NetSuite records -----------------------------------------------------------

def currency_of(c: Cust) -> str:
    """EU customers are billed in EUR, British ones in GBP, everyone else in USD."""
    return "EUR" if c.country in _EU else "GBP" if c.country == "GB" else "USD"


def tax_code_of(c: Cust) -> str:
    """State sales tax where the seller has nexus, reverse charge for EU and UK businesses,
    none when exempt, in a US state without nexus, or abroad."""
    if c.exempt is not None:
        return "EXEMPT"
    if c.country == "US":
        return f"{c.state}-STATE" if c.state in NEXUS_STATES else "US-ZERO"
    return "EU-RC" if c.country in _EU else "GB-RC" if c.country == "GB" else "EXPORT"


def slug(name: str) -> str:
    """The mail domain part for a company: ``Old Harbor Mutual`` → ``oldharbor``."""
    words = name.lower().split()
    return re.sub(r"[^a-z0-9]", "", words[0] + (words[1] if len(words[0]) <= 4 else ""))


def ap_email_of(c: Cust) -> str:
    """The customer's AP mailbox, as on its record ("" when nobody knows it)."""
    return f"ap@{slug(c.name)}.example.com" if c.email is None else c.email


def customer_doc(c: Cust, anchor: dt.date) -> Doc:
    """The customer record as NetSuite spells it; internal ids are ``number - 700``.

    ``custentity_*`` are the account's custom fields: the delivery channel, the exemption
    certificate's expiry (dated from ``anchor``) and the Peppol endpoint id.
    """
    expires = at(anchor, c.cert_expires).isoformat() if c.cert_expires else None
    return {
        "internalId": str(c.number - 700), "entityId": f"CUST-{c.number}", "companyName": c.name,
        "isInactive": c.inactive, "email": ap_email_of(c),
        "terms": {"name": f"Net {c.terms}", "daysUntilNetDue": c.terms},
        "currency": currency_of(c),
        "defaultAddress": {"addressee": c.name, "addr1": c.street, "addr2": "", "city": c.city,
                           "state": c.state, "zip": c.zip, "country": c.country},
        "taxable": c.exempt is None, "resaleNumber": c.exempt or "", "vatRegNumber": c.vat,
        "taxItem": tax_code_of(c), "custentity_ar_channel": c.channel,
        "custentity_exempt_cert_expires": expires, "custentity_peppol_endpoint": c.peppol,
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
    """An order line to be: item, quantity, rate; the rest only when it is not the default.

    The defaults are the clean case: amount = quantity × rate, the item's unit of measure,
    the customer's tax code at the account's rate.
    """

    item: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal | None = None
    units: str | None = None
    tax_code: str | None = None
    tax_rate: Decimal | None = None


def price(item: str, currency: str) -> Decimal:
    """The list price of ``item`` in ``currency`` (a price book per currency)."""
    base = Decimal(ITEMS[item][1])
    return base if currency == "USD" else round_money(base * _FX[currency], currency)


def line_doc(n: int, line: Line, tax_code: str, currency: str,
             billed: Decimal = Decimal(0)) -> Doc:
    """An order line; ``billed`` is how much of it was invoiced already (``quantityBilled``)."""
    exact = line.quantity * line.rate
    if round_money(exact, currency) != exact:
        raise ValueError(f"{line.item}: {line.quantity} × {line.rate} is not a whole cent")
    amount = line.amount if line.amount is not None else round_money(exact, currency)
    code = tax_code if line.tax_code is None else line.tax_code
    rate = line.tax_rate if line.tax_rate is not None else (
        TAX_CODES[code].rate if code else Decimal(0))
    return {"line": n, "item": line.item, "description": ITEMS[line.item][0],
            "quantity": str(line.quantity), "quantityBilled": str(billed),
            "units": ITEMS[line.item][2] if line.units is None else line.units,
            "rate": str(line.rate), "amount": str(amount), "taxCode": code, "taxRate": str(rate)}


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
