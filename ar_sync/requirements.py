"""The customer requirements library: each customer's own rules, as versioned config.

One TOML file with a ``[customers."<entity id>"]`` table per customer: how the customer wants
invoices (channel), whether a PO is required, what it looks like and which POs are known
(amount, expiry), the fields the customer insists on, the documents it wants attached, its AP
contact, and notes for the on-call person. Validated like the main config; its content hash is
stored with every check result as audit evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ar_sync.models import CustomerRequirements, PurchaseOrder

Problem = tuple[str, str, str]
REQUIRABLE = ("po_number", "memo", "period", "vat_id")


class _PurchaseOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Decimal | None = None
    currency: str = ""
    expires: dt.date | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("write amounts as strings (\"50000.00\"): floats are not exact")
        return value


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = ""
    po_required: bool = False
    po_pattern: str = ""
    po_pattern_hint: str = ""
    ap_email: str = ""
    ap_contact: str = ""
    buyer_reference: str = ""
    required_fields: list[Literal["po_number", "memo", "period", "vat_id"]] = []
    attachments: list[str] = []
    notes: str = ""
    purchase_orders: dict[str, _PurchaseOrder] = {}

    @field_validator("po_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class _Library(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customers: dict[str, _Entry] = {}


def load_library(path: Path, channels: set[str]) -> tuple[dict[str, CustomerRequirements],
                                                           list[Problem]]:
    """Read the library; return the entries and every problem found (file, key, message)."""
    name = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, [(name, "-", "customer requirements library not found "
                     "(set [requirements] library in the config)")]
    except tomllib.TOMLDecodeError as exc:
        return {}, [(name, "-", f"not valid TOML: {exc}")]
    try:
        lib = _Library.model_validate(data)
    except ValidationError as exc:
        return {}, [(name, ".".join(map(str, e["loc"])),
                     "unknown key" if e["type"] == "extra_forbidden" else e["msg"])
                    for e in exc.errors()]
    problems: list[Problem] = [
        (name, f"customers.{cid}.channel", f"channel {e.channel!r} is not defined in the config")
        for cid, e in lib.customers.items() if e.channel and e.channel not in channels
    ]
    return {cid: _entry(cid, e) for cid, e in lib.customers.items()}, problems


def _entry(cid: str, e: _Entry) -> CustomerRequirements:
    pos = {number: PurchaseOrder(number, po.amount, po.currency, po.expires)
           for number, po in e.purchase_orders.items()}
    return CustomerRequirements(
        customer=cid, channel=e.channel, po_required=e.po_required, po_pattern=e.po_pattern,
        po_pattern_hint=e.po_pattern_hint, ap_email=e.ap_email, ap_contact=e.ap_contact,
        buyer_reference=e.buyer_reference, required_fields=tuple(e.required_fields),
        attachments=tuple(e.attachments), notes=e.notes, purchase_orders=pos)


def library_version(path: Path) -> str:
    """Content hash of the library file, stored with every check result."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        return "absent"
