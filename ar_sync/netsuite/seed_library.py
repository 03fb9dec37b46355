"""The demo's side of ar-sync's own configuration: the requirements library and [checks].

Which customers need a PO and in what format, their AP contact, the fields they insist on,
their purchase orders with amounts and expiry dates: none of that is NetSuite data, it is
what AR knows about each customer. :func:`demo_requirements` is that knowledge for the demo
account's customers; :func:`write_requirements_library` writes it as the TOML file ar-sync
loads (by hand, so the sandbox needs no TOML writer package). :func:`demo_check_settings`
gives the ``[checks]`` values that match the account (where the seller charges sales tax).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from ar_sync.netsuite.seed_catalog import CUSTOMERS, NEXUS_STATES, Cust, ap_email_of, po_pattern

_CHANNEL_NOTES = {
    "coupa": "Coupa supplier portal: invoice against the approved PO (PO flip), one PO each.",
    "ariba": "SAP Ariba Network: PO-based invoices only; the PO must match the Ariba order.",
    "peppol": "Peppol BIS Billing 3.0; the PO number goes in the order reference.",
    "email": "PDF invoice to the AP mailbox.",
}
_CONTACTS = ("Dana Whitfield", "Marcus Oyelaran", "Priya Raman", "Tom Kowalczyk", "Elena Vasquez",
             "Henrik Sørensen", "Claire Dubois", "Jonas Weber", "Aoife Brennan", "Sam Patel",
             "Maarten de Vries", "Grace Liu", "Olu Adeyemi")

# What AR knows beyond channel, PO format and mailbox, by customer number.
_EXTRAS: dict[int, dict[str, Any]] = {
    1002: {"attachments": ["timesheet"]},
    1009: {"attachments": ["packing slip"]},
    1016: {"purchase_orders": {"PO-550120": {"amount": "50000.00", "currency": "USD"}},
           "notes": "Blanket PO PO-550120 covers licences and services up to 50,000.00 USD."},
    1017: {"attachments": ["timesheet"],
           "purchase_orders": {"4500071234": {"amount": "120000.00", "currency": "USD",
                                              "expires": dt.date(2023, 12, 31)}},
           "notes": "4500071234 was the FY2023 blanket order; new work needs a new PO."},
    1021: {"required_fields": ["memo"]},
    1024: {"required_fields": ["vat_id"],
           "notes": "French invoices must show the buyer's VAT number."},
    1035: {"buyer_reference": "ZGB-ICT-2291"},
}


def demo_requirements() -> dict[str, dict[str, Any]]:
    """The demo customers' entries for ar-sync's requirements library, by entity id.

    Values are what TOML holds (strings, booleans, lists, dates, nested tables), so the
    written file reads back equal to this.
    """
    return {f"CUST-{c.number}": _entry(c) for c in CUSTOMERS}


def _entry(c: Cust) -> dict[str, Any]:
    extra = _EXTRAS.get(c.number, {})
    entry: dict[str, Any] = {"channel": c.channel, "po_required": bool(c.po)}
    if c.po:
        entry["po_pattern"], entry["po_pattern_hint"] = po_pattern(c.po)
    entry["ap_email"] = ap_email_of(c)
    contact = _CONTACTS[c.number % len(_CONTACTS)]
    entry["ap_contact"] = f"{contact}, Accounts Payable" if entry["ap_email"] else ""
    for key in ("buyer_reference", "required_fields", "attachments"):
        if key in extra:
            entry[key] = extra[key]
    entry["notes"] = " ".join(filter(None, (_CHANNEL_NOTES[c.channel], c.notes,
                                            extra.get("notes", ""))))
    if "purchase_orders" in extra:
        entry["purchase_orders"] = extra["purchase_orders"]
    return entry


def demo_check_settings() -> dict[str, Any]:
    """The ``[checks]`` values of the demo config.

    ``nexus_states``: where the demo seller charges sales tax (the states it has a tax code
    for). ``periods_closed_through``: None, because the demo's dates move with the day the
    account is seeded, so no fixed closed period fits every demo.
    """
    return {"nexus_states": list(NEXUS_STATES), "periods_closed_through": None}


# -- writing TOML ----------------------------------------------------------------------------

def write_requirements_library(path: Path,
                               requirements: dict[str, dict[str, Any]] | None = None) -> None:
    """Write a requirements library (the demo's unless given) as TOML, one table each."""
    entries = demo_requirements() if requirements is None else requirements
    out = ["# Customer requirements library: how each customer wants to be invoiced.",
           "# Generated for the ar-sync sandbox demo account; edit freely."]
    for customer, entry in entries.items():
        out += _table(["customers", customer], entry)
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")


def _table(names: list[str], table: dict[str, Any]) -> list[str]:
    """``[a."b c"]`` with its plain keys, then each nested table under its own header."""
    out = ["", "[" + ".".join(_toml_key(n) for n in names) + "]"]
    out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
            if not isinstance(v, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            for name, sub in value.items():
                if not isinstance(sub, dict):
                    raise TypeError(f"{key}.{name}: expected a table, got {sub!r}")
                out += _table([*names, key, name], sub)
    return out


def _toml_str(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return '"' + "".join(escapes.get(ch, ch if ch >= " " and ch != "\x7f" else
                                     f"\\u{ord(ch):04x}") for ch in text) + '"'


def _toml_key(key: str) -> str:
    """Bare keys for plain names; entity ids and PO numbers quoted, as people write them."""
    return key if re.fullmatch(r"[a-z_]+", key) else _toml_str(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to the requirements library")
