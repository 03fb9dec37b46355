"""The domain: what NetSuite tells us, what we draft, what we find, what channels answer.

Values are frozen dataclasses. Money amounts are ``Decimal`` in the currency named on the
record that holds them (an order, an invoice); a line never carries another currency.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ar_sync.money import Money


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address as NetSuite's address subrecord holds it (country is ISO 3166 alpha-2)."""

    addressee: str = ""
    addr1: str = ""
    addr2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""

    def lines(self) -> list[str]:
        """The address as printed on an invoice, empty parts left out."""
        locality = " ".join(p for p in (self.city, self.state, self.zip) if p)
        parts = (self.addressee, self.addr1, self.addr2, locality, self.country)
        return [p for p in parts if p]


@dataclass(frozen=True, slots=True)
class Terms:
    """Payment terms: ``Net 30`` means due ``days`` after the invoice date."""

    name: str
    days: int


@dataclass(frozen=True, slots=True)
class Customer:
    """The customer record fields the cycle and the checks need."""

    id: str  # NetSuite internal id
    entity_id: str  # the customer number people use, e.g. CUST-1004
    name: str
    bill_to: Address
    terms: Terms
    currency: str
    email: str = ""
    is_inactive: bool = False
    tax_exempt: bool = False
    exemption_certificate: str = ""
    vat_id: str = ""
    channel: str = ""  # delivery channel named on the customer record, if any


class UnitKind(StrEnum):
    ORDER = "order"  # a sales order billed in full
    INSTALMENT = "instalment"  # one date of a recurring billing schedule
    MILESTONE = "milestone"  # one milestone of a fixed-bid schedule
    RENEWAL = "renewal"  # first instalment of a renewal order


@dataclass(frozen=True, slots=True)
class UnitLine:
    """One line to bill, as NetSuite's order or its billing schedule gives it."""

    order_line: int
    item: str
    description: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal
    tax_code: str = ""
    tax_rate: Decimal = Decimal(0)  # percent, e.g. 8.25


@dataclass(frozen=True, slots=True)
class BillableUnit:
    """One thing that is due to bill and becomes exactly one invoice.

    ``key`` is deterministic (``so:<order id>:<bill date>``) and is the external id of the
    invoice in NetSuite: that is what makes creation idempotent across crashes.
    """

    key: str
    kind: UnitKind
    order_id: str
    order_number: str
    customer: Customer
    bill_date: dt.date
    currency: str
    po_number: str
    lines: tuple[UnitLine, ...]
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    memo: str = ""

    def fingerprint(self) -> str:
        """A hash of everything the invoice is made from; it changes when NetSuite data does."""
        blob = json.dumps(to_jsonable(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A NetSuite record the gateway could not turn into a unit (bad or missing data).

    The cycle holds it for a person, naming the record and the field, and goes on with the
    rest. Its key is ``so:<order id>:unreadable``; once the order reads cleanly again, the
    hold is resolved by itself.
    """

    key: str
    order_id: str
    order_number: str
    customer_id: str
    field: str
    problem: str

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.field}|{self.problem}".encode()).hexdigest()[:16]


def unreadable_key(order_id: str) -> str:
    return f"so:{order_id}:unreadable"


def unit_key(order_id: str, bill_date: dt.date) -> str:
    """The deterministic key of the unit billing ``order_id`` on ``bill_date``."""
    return f"so:{order_id}:{bill_date.isoformat()}"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    order_line: int
    item: str
    description: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal
    tax_code: str = ""
    tax_rate: Decimal = Decimal(0)
    tax_amount: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice: a draft before NetSuite has it (no ``netsuite_id``), then as created.

    The same type on both sides of creation lets one checklist run on the draft and again
    on NetSuite's version, whose totals and tax are the ones that count.
    """

    key: str  # also the NetSuite externalId
    order_id: str
    order_number: str
    customer: Customer
    tran_date: dt.date
    due_date: dt.date
    currency: str
    po_number: str
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    memo: str = ""
    netsuite_id: str | None = None
    tran_id: str | None = None  # the invoice number NetSuite assigned

    @property
    def is_draft(self) -> bool:
        return self.netsuite_id is None

    @property
    def total_money(self) -> Money:
        return Money(self.total, self.currency)

    @property
    def number(self) -> str:
        """What a person calls this invoice: NetSuite's number once it has one."""
        return self.tran_id or f"draft {self.key}"


class Severity(StrEnum):
    ERROR = "error"  # holds the invoice
    WARNING = "warning"  # recorded, does not hold


@dataclass(frozen=True, slots=True)
class Finding:
    """One check result that did not pass, in words an AR person acts on."""

    rule: str
    severity: Severity
    field: str
    found: str
    expected: str
    message: str

    @property
    def holds(self) -> bool:
        return self.severity is Severity.ERROR


class OutcomeStatus(StrEnum):
    ACCEPTED = "accepted"
    PENDING = "pending"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What a channel answered to a submission.

    ``reference`` is the channel's id for the document; an invoice is never marked
    delivered without one.
    """

    status: OutcomeStatus
    reference: str = ""
    reason_code: str = ""  # our taxonomy (MISSING_PO, FORMAT_ERROR, DUPLICATE, ...)
    remote_code: str = ""
    remote_text: str = ""
    field: str = ""


@dataclass(frozen=True, slots=True)
class CustomerRequirements:
    """One customer's entry in the requirements library (config/customers.toml)."""

    customer: str  # entity id
    channel: str = ""
    po_required: bool = False
    po_pattern: str = ""
    po_pattern_hint: str = ""
    ap_email: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def to_jsonable(value: Any) -> Any:
    """Turn models into JSON-ready data: Decimal and dates become strings, exactly."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(cls: type[Any], data: Any) -> Any:
    """Rebuild a model from :func:`to_jsonable` output (used for stored drafts)."""
    import typing

    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _decode(hints[f.name], data[f.name])
              for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def _decode(tp: Any, value: Any) -> Any:
    import types
    import typing

    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(inner[0], value)
    if origin is tuple:
        return tuple(_decode(typing.get_args(tp)[0], v) for v in value)
    if origin is dict or tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_jsonable(tp, value)  # type: ignore[arg-type]
    if tp is Decimal:
        return Decimal(value)
    if tp is dt.date:
        return dt.date.fromisoformat(value)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return tp(value)
    return value
