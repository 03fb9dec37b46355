"""Editing sandbox records by field path, as a person fixes data "in NetSuite".

``ar-sync sandbox set-order SO-10042 item[2].amount 90.00``: the path names NetSuite's field
with NetSuite's 1-based line numbers, and the value is stored the way the document stores
it (decimals and dates as strings, flags as booleans), so a fix never breaks the record.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ar_sync.money import to_decimal
from ar_sync.netsuite import sandbox_records as records
from ar_sync.netsuite.sandbox_records import Doc

# Fields that may be set although a record lacks them (older records, or left out when empty).
ORDER_OPTIONAL = frozenset({"otherRefNum", "memo", "startDate", "endDate"})
CUSTOMER_OPTIONAL = frozenset({"email", "resaleNumber", "vatRegNumber", "custentity_ar_channel",
                               "custentity_exempt_cert_expires", "custentity_peppol_endpoint"})
_READ_ONLY = frozenset({"internalId", "tranId", "entityId", "line", "orderLine", "invoice"})
_DECIMALS = frozenset({"quantity", "quantityBilled", "rate", "amount", "taxRate"})
_BOOLEANS = {"true": True, "t": True, "yes": True, "1": True,
             "false": False, "f": False, "no": False, "0": False}
_DATES = frozenset({"tranDate", "startDate", "endDate", "date", "periodStart", "periodEnd",
                    "custentity_exempt_cert_expires"})
_CLEARABLE_DATES = frozenset({"startDate", "endDate", "custentity_exempt_cert_expires"})
_SEGMENT = re.compile(r"([A-Za-z_]\w*)(?:\[(\d+)\])?")


def set_field(doc: Doc, path: str, value: object, record: str,
              optional: frozenset[str] = frozenset()) -> None:
    """Set ``path`` (``memo``, ``defaultAddress.zip``, ``item[2].amount``) in ``doc``.

    List positions count from 1, like NetSuite's line numbers. Only fields the record
    already has (or a few optional ones) can be set, so a typo is an error, not a new field.
    """
    steps = [_SEGMENT.fullmatch(part) for part in path.split(".")]
    parsed = [(m[1], m[2]) for m in steps if m is not None]
    if len(parsed) != len(steps):
        raise ValueError(f"{record}: {path!r} is not a field path "
                         "(e.g. memo, defaultAddress.zip, item[2].amount)")
    node: Any = doc
    for step_name, step_index in parsed[:-1]:
        node = _step(node, step_name, step_index, record, path)
    name, index = parsed[-1]
    if not isinstance(node, dict) or (name not in node and path not in optional):
        raise ValueError(f"{record} has no field {path!r}")
    if name in _READ_ONLY:
        raise ValueError(f"{record}: {path!r} is read-only")
    if index is not None or isinstance(node.get(name), dict | list):
        raise ValueError(f"{record}: {path!r} is a group of fields; name one of them "
                         "(e.g. item[2].amount, defaultAddress.zip)")
    node[name] = _coerce(name, value, f"{record}: {path}")


def _step(node: Any, name: str, index: str | None, record: str, path: str) -> Any:
    if not isinstance(node, dict) or name not in node:
        raise ValueError(f"{record} has no field {path!r}")
    child = node[name]
    if index is None:
        return child
    if not isinstance(child, list) or not 1 <= int(index) <= len(child):
        size = len(child) if isinstance(child, list) else 0
        raise ValueError(f"{record}: {name}[{index}] does not exist in {path!r} ({name} has "
                         f"{size} entries, numbered from 1)")
    return child[int(index) - 1]


def _coerce(name: str, value: object, where: str) -> object:
    """The value as the document stores it: decimals and dates as strings, flags as bools."""
    if name in _DECIMALS:
        return str(to_decimal(value, what=where))
    text = "" if value is None else str(value).strip()
    if name in ("isInactive", "taxable"):
        if isinstance(value, bool):
            return value
        if text.lower() not in _BOOLEANS:
            raise ValueError(f"{where}: {text!r} is not true or false")
        return _BOOLEANS[text.lower()]
    if name in _DATES:
        if not text and name in _CLEARABLE_DATES:
            return None
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(f"{where}: {text!r} is not a date (YYYY-MM-DD)") from None
    if name == "daysUntilNetDue":
        if not text.isdigit():
            raise ValueError(f"{where}: {text!r} is not a number of days")
        return int(text)
    if name == "status" and text not in records.ORDER_STATUSES:
        raise ValueError(f"{where}: {text!r} is not a sales order status "
                         f"({', '.join(sorted(records.ORDER_STATUSES))})")
    return text
