"""Money: an exact ``Decimal`` amount with its currency.

Rounding rule (documented in README "Money and rounding"): amounts are rounded to the
currency's minor unit with ROUND_HALF_UP, once per line (quantity × rate, and the tax on
that line). Header totals are sums of already-rounded line values, so a total never
disagrees with its lines by a rounding cent. Floats are refused outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor units of the currencies ar-sync has been used with; others default to 2.
MINOR_UNITS: dict[str, int] = {"JPY": 0, "KRW": 0, "CLP": 0, "BHD": 3, "KWD": 3}
_QUANTS = {n: Decimal(1).scaleb(-n) for n in range(4)}


def quantum(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (0.01 for USD, 1 for JPY)."""
    return _QUANTS[MINOR_UNITS.get(currency, 2)]


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` half-up to the minor unit of ``currency``."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> str:
    """A quantity or rate as people write it: no trailing zeros, never an exponent (10, 42.5)."""
    return format(value.normalize(), "f")


def to_decimal(value: object, *, what: str) -> Decimal:
    """Parse a decimal from a string or int; floats are refused (they are not exact)."""
    if isinstance(value, float | bool):
        kind = type(value).__name__
        raise ValueError(f"{what}: {value!r} is a {kind}, expected a decimal string")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return result


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency; arithmetic between currencies is an error."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"Money amount must be Decimal, got {type(self.amount).__name__}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def rounded(self) -> Money:
        return Money(round_money(self.amount, self.currency), self.currency)

    def __str__(self) -> str:
        return f"{self.amount:,.{MINOR_UNITS.get(self.currency, 2)}f} {self.currency}"
