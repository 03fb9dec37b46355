"""A corpus of invoices for the UBL tests: US and EU customers, every VAT category the
builder emits, discounts and charges, several currencies, credit notes."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from ar_sync.models import Address, Customer, Invoice, InvoiceLine, Terms
from ar_sync.money import round_money
from ar_sync.testing import sample_invoice

D = Decimal


def line(n: int, item: str, qty: str, rate: str, code: str, tax: str, currency: str,
         units: str = "EA") -> InvoiceLine:
    amount = round_money(D(qty) * D(rate), currency)
    return InvoiceLine(n, item, f"{item} service", D(qty), D(rate), amount, code, D(tax),
                       round_money(amount * D(tax) / 100, currency), units=units)


def invoice(key: str, customer: Customer, currency: str, lines: list[InvoiceLine], *,
            discount: str = "0", shipping: str = "0", credit: bool = False,
            po: str = "PO-7781") -> Invoice:
    subtotal = sum((ln.amount for ln in lines), D(0))
    disc, ship = D(discount), D(shipping)
    tax = sum((ln.tax_amount for ln in lines), D(0))
    if disc or ship:  # tax on the adjusted base of the first line's category
        rate = lines[0].tax_rate
        tax += round_money((ship - disc) * rate / 100, currency)
    return sample_invoice(key, customer=customer, currency=currency, lines=tuple(lines),
                          subtotal=subtotal, tax_total=tax, total=subtotal - disc + ship + tax,
                          discount_total=disc, shipping=ship, is_credit=credit, po_number=po)


def customer(name: str, country: str, currency: str, vat: str = "", peppol: str = "",
             city: str = "Berlin", exempt: bool = False) -> Customer:
    return Customer(id=name[:4], entity_id=f"CUST-{name[:4].upper()}", name=name,
                    bill_to=Address(name, "Hauptstrasse 5", "", city, "", "10115", country),
                    terms=Terms("Net 30", 30), currency=currency,
                    email="ap@example.com", vat_id=vat, peppol_id=peppol, tax_exempt=exempt)


US = dataclasses.replace(sample_invoice().customer, peppol_id="0060:123456789")
DE = customer("Brandt Logistik GmbH", "DE", "EUR", "DE811234567", "9930:DE811234567")
FR = customer("Bleu Ciel SAS", "FR", "EUR", "FR40303265045", "0009:30326504500017", "Paris")
NL = customer("Polder Kaas BV", "NL", "EUR", "NL859123456B01", "0106:34123456", "Utrecht")
NO = customer("Nordvik Maritime AS", "NO", "NOK", "NO974760673MVA", "0192:974760673", "Bergen")
GB = customer("Thames Analytics Ltd", "GB", "GBP", "GB123456789", "9932:GB123456789", "London")
JP = customer("Sakura Denki KK", "JP", "JPY", "", "0088:4912345000019", "Tokyo")
EX = dataclasses.replace(US, name="Lakeside School District", tax_exempt=True)


def corpus() -> dict[str, Invoice]:
    """Name -> invoice; each must pass the XSD, EN 16931 and Peppol with no fatal finding."""
    return {
        "us-sales-tax": sample_invoice(customer=US),
        "us-exempt": invoice("so:2:2026-11-01", EX, "USD",
                             [line(1, "TRAIN", "3", "400.00", "EXEMPT", "0", "USD")]),
        "de-standard-19": invoice("so:3:2026-11-01", DE, "EUR",
                                  [line(1, "PLAT", "12", "88.50", "DE-19", "19", "EUR", "MON"),
                                   line(2, "PS", "42.5", "210.00", "DE-19", "19", "EUR",
                                        "HUR")]),
        "fr-reverse-charge": invoice("so:4:2026-11-01", FR, "EUR",
                                     [line(1, "PS", "16", "205.00", "EU-RC", "0", "EUR",
                                           "HUR")]),
        "nl-discount-and-shipping": invoice(
            "so:5:2026-11-01", NL, "EUR",
            [line(1, "HW-GATEWAY", "3", "1149.00", "NL-21", "21", "EUR"),
             line(2, "HW-SCANNER", "5", "358.00", "NL-21", "21", "EUR")],
            discount="150.00", shipping="45.00"),
        "no-export": invoice("so:6:2026-11-01", NO, "NOK",
                             [line(1, "LIC", "2", "9800.00", "EXPORT", "0", "NOK")]),
        "gb-zero-rated": invoice("so:7:2026-11-01", GB, "GBP",
                                 [line(1, "PLAT", "25", "71.00", "US-ZERO", "0", "GBP")]),
        "jp-yen": invoice("so:8:2026-11-01", JP, "JPY",
                          [line(1, "LIC", "2", "150000", "JP-10", "10", "JPY")]),
        "mixed-categories": invoice("so:9:2026-11-01", DE, "EUR",
                                    [line(1, "PLAT", "10", "90.00", "DE-19", "19", "EUR"),
                                     line(2, "BOOK", "3", "25.00", "DE-7", "7", "EUR"),
                                     line(3, "DON", "1", "100.00", "DE-ZERO", "0", "EUR")]),
        "de-credit-note": invoice("so:10:2026-11-01", DE, "EUR",
                                  [line(1, "PLAT", "2", "88.50", "DE-19", "19", "EUR", "MON")],
                                  credit=True),
        "us-credit-note": dataclasses.replace(sample_invoice("so:11:2026-11-01", customer=US),
                                              is_credit=True),
        "no-po-buyer-reference": invoice("so:12:2026-11-01", NL, "EUR",
                                         [line(1, "PS", "8", "190.00", "NL-21", "21", "EUR",
                                               "HUR")], po=""),
    }
