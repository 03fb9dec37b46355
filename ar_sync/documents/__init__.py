"""Documents rendered from an invoice: cXML (Coupa, SAP Business Network), UBL (Peppol), PDF.

Builders are pure and deterministic (the same invoice gives the same bytes), so a document
can be rendered again to compare, and the exact bytes sent are what the store keeps for
audit. Validation against the official schemas lives in :mod:`.validation`.
"""

from __future__ import annotations

from decimal import Decimal

from ar_sync.money import MINOR_UNITS


def amount(value: Decimal, currency: str) -> str:
    """An amount with the currency's minor units, as every format wants it (``1490.78``)."""
    return f"{value:.{MINOR_UNITS.get(currency, 2)}f}"


def number(value: Decimal) -> str:
    """A quantity or rate without exponent or trailing zeros (``12``, ``42.5``, ``7.25``)."""
    text = f"{value.normalize():f}"
    return text if text not in ("-0", "") else "0"
