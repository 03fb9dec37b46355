"""The domain: what NetSuite tells us, what we draft, what we find, what channels answer.

Values are frozen dataclasses. Money amounts are ``Decimal`` in the currency named on the
record that holds them (an order, an invoice); a line never carries another currency.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
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
    exemption_expires: dt.date | None = None  # the certificate's expiry, when known
    vat_id: str = ""  # the buyer's tax / VAT registration number
    channel: str = ""  # delivery channel named on the customer record, if any
    peppol_id: str = ""  # Peppol endpoint id, scheme:value (e.g. 0088:5790000436057)


@dataclass(frozen=True, slots=True)
class Seller:
    """Who issues the invoices (``[seller]`` in the config): printed and sent on documents."""

    name: str
    address: Address
    remit_to: Address  # where payment goes; the seller's address when not configured
    vat_id: str = ""  # VAT registration (EU/UK customers), e.g. IE3456789OH
    tax_id: str = ""  # US EIN, printed on US invoices
    peppol_id: str = ""  # the seller's Peppol endpoint, scheme:value
    email: str = ""
    phone: str = ""
    iban: str = ""
    bic: str = ""
    bank_account: str = ""  # US: account number at the bank below
    bank_routing: str = ""  # US: ABA routing number
    bank_name: str = ""
    payment_note: str = ""  # free text printed under "How to pay"


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
    units: str = ""  # unit of measure as on the order (EA, HUR, MON ...)
    quantity_remaining: Decimal | None = None  # on the order line before this unit, if known


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
    entity_name: str = ""  # the customer name as the order shows it
    contract_start: dt.date | None = None  # the order's contract or subscription term
    contract_end: dt.date | None = None
    renews_term_ending: dt.date | None = None  # for a renewal: the end of the term it renews

    def fingerprint(self) -> str:
        """A hash of everything the invoice is made from; it changes when NetSuite data does.

        The dataclass repr is exact (Decimal and date reprs round-trip) and deterministic;
        a release that adds a field changes every fingerprint once, which only makes held
        units be checked again.
        """
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


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
    units: str = ""
    quantity_remaining: Decimal | None = None


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
    entity_name: str = ""  # the customer name printed on the invoice
    contract_start: dt.date | None = None
    contract_end: dt.date | None = None
    renews_term_ending: dt.date | None = None
    buyer_reference: str = ""  # the customer's reference for routing (Peppol BT-10), if any
    discount_total: Decimal = Decimal(0)  # a positive number, subtracted from the subtotal
    shipping: Decimal = Decimal(0)
    is_credit: bool = False

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


class TaxKind(StrEnum):
    STANDARD = "standard"  # a sales tax or VAT rate
    EXEMPT = "exempt"  # no tax: the customer or item is exempt
    REVERSE_CHARGE = "reverse_charge"  # EU B2B across borders: the buyer accounts for VAT
    ZERO = "zero"  # zero-rated


@dataclass(frozen=True, slots=True)
class TaxCode:
    """A tax code of the account and its rate (percent)."""

    code: str
    rate: Decimal
    kind: TaxKind = TaxKind.STANDARD
    description: str = ""


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
class PurchaseOrder:
    """A customer PO the AR team knows the limits of (from the requirements library)."""

    number: str
    amount: Decimal | None = None
    currency: str = ""
    expires: dt.date | None = None


@dataclass(frozen=True, slots=True)
class CustomerRequirements:
    """One customer's entry in the requirements library (config/customers.toml)."""

    customer: str  # entity id
    channel: str = ""
    po_required: bool = False
    po_pattern: str = ""
    po_pattern_hint: str = ""
    ap_email: str = ""
    ap_contact: str = ""
    buyer_reference: str = ""  # Peppol BT-10 when there is no PO
    required_fields: tuple[str, ...] = ()
    attachments: tuple[str, ...] = ()
    notes: str = ""
    purchase_orders: dict[str, PurchaseOrder] = field(default_factory=dict)


_FIELDS: dict[type, tuple[str, ...]] = {}
_HINTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, looked up once per class (this is on the hot path)."""
    if cls not in _FIELDS:
        _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return _FIELDS[cls]


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    """Turn models into JSON-ready data: Decimal and dates become strings, exactly."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is Decimal:
        return str(value)
    if kind is dt.date or kind is dt.datetime:
        return value.isoformat()
    if kind is tuple or kind is list:
        return [to_jsonable(v) for v in value]
    if hasattr(kind, "__dataclass_fields__"):
        return {name: to_jsonable(getattr(value, name)) for name in _field_names(kind)}
    if kind is dict:
        return {k: to_jsonable(v) for k, v in value.items()}
    return value  # enums (str subclasses) and anything else JSON takes as it is


def _hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's resolved field types, resolved once per class."""
    if cls not in _HINTS:
        import typing

        hints = typing.get_type_hints(cls)
        _HINTS[cls] = tuple((name, hints[name]) for name in _field_names(cls))
    return _HINTS[cls]


def from_jsonable(cls: type[Any], data: Any) -> Any:
    """Rebuild a model from :func:`to_jsonable` output (used for stored drafts)."""
    return cls(**{name: _decode(tp, data[name]) for name, tp in _hints(cls) if name in data})


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
