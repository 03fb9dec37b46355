"""What the on-call person does from the CLI: filter the queue, take a unit, close one.

Every action records the operator (the OS user, or ``--as``) and their words as an event.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ar_sync.errors import ArSyncError
from ar_sync.store import State, Store, now

WAITING = (State.HELD, State.RETRY)
_AGE = re.compile(r"^(\d+)([mhd])$")


class OnCallError(ArSyncError):
    """Raised when an on-call action does not apply (unknown key, wrong state)."""


def parse_age(text: str) -> dt.timedelta:
    """``90m``, ``4h``, ``3d`` -> a timedelta; a clear error otherwise."""
    match = _AGE.match(text.strip())
    if not match:
        raise OnCallError(f"age {text!r}: use a number and m, h or d (90m, 4h, 3d)")
    n, unit = int(match[1]), match[2]
    field = {"m": "minutes", "h": "hours", "d": "days"}[unit]
    return dt.timedelta(**{field: n})


def select(items: Sequence[dict[str, Any]], *, customer: str | None = None,
           channel: str | None = None, reason: str | None = None,
           older_than: dt.timedelta | None = None, sort: str = "age") -> list[dict[str, Any]]:
    """Filter and sort the failures queue the way the on-call person asks."""
    cutoff = (dt.datetime.now(dt.UTC) - older_than).isoformat() if older_than else None
    wanted = reason.lower().replace("_", "") if reason else None

    def keep(it: dict[str, Any]) -> bool:
        if customer and customer.lower() not in (it["customer_entity"].lower(),
                                                 it["customer_name"].lower()):
            return False
        if channel and it["channel"] != channel:
            return False
        if wanted and not any(wanted in r["rule"].lower().replace("_", "")
                              for r in it["reasons"]):
            return False
        return not (cutoff and it["updated_at"] > cutoff)

    chosen = [it for it in items if keep(it)]
    if sort == "amount":
        chosen.sort(key=lambda it: Decimal(it["total"] or "0"), reverse=True)
    return chosen


def acknowledge(store: Store, key: str, actor: str, note: str) -> None:
    """Take ownership of a unit that needs a person."""
    _waiting(store, key)
    with store.transaction():
        store.conn.execute("UPDATE units SET owner = ?, owned_since = ? WHERE key = ?",
                           (actor, now(), key))
        store.event(key, "acknowledged", actor, note=note)


def resolve(store: Store, key: str, actor: str, note: str) -> None:
    """Close a unit a person dealt with outside ar-sync (it will not be billed by ar-sync)."""
    _waiting(store, key)
    if len(note.strip()) < 10:
        raise OnCallError("say what was done in --note (at least 10 characters): it is the "
                          "audit record")
    with store.transaction():
        store.set_state(key, State.RESOLVED, rerun_requested=0, next_attempt_at=None)
        store.event(key, "resolved", actor, note=note)


def _waiting(store: Store, key: str) -> Any:
    row = store.unit(key)
    if row is None:
        raise OnCallError(f"no invoice with key {key!r} (see `ar-sync failures`)")
    if row["state"] not in WAITING:
        raise OnCallError(f"{key} is {row['state']}: only held or retrying invoices need this")
    return row
