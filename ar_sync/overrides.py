"""Overrides: a person accepts one finding on one invoice, with segregation of duties.

An approval names the unit, the rule and the value the rule found; it releases the invoice
on the next cycle and covers only that value, so a later change to the data is checked
afresh. Who approves is recorded (the OS user, or ``--as`` with the OS user beside it) with
the reason. Refused: the service identity, and whoever last changed the invoice's data
through ar-sync — nobody approves their own change.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from ar_sync.errors import ArSyncError
from ar_sync.store import SERVICE, State, Store, now


class ApprovalRefused(ArSyncError):
    """Raised when an approval would break the rules (nothing to approve, duties not split)."""


@dataclass(frozen=True)
class Approval:
    key: str
    rule: str
    found: tuple[str, ...]
    actor: str


def who(as_user: str | None) -> tuple[str, str]:
    """(actor, OS user) for an operator command."""
    os_user = getpass.getuser()
    return (as_user or os_user), os_user


def approve(store: Store, key: str, rule: str, reason: str, *, actor: str, os_user: str,
            service_user: str) -> Approval:
    """Record an approval of ``rule`` on ``key``; raise ApprovalRefused with the reason why not."""
    unit = store.unit(key)
    if unit is None:
        raise ApprovalRefused(f"no invoice with key {key!r}")
    if unit["state"] != State.HELD:
        raise ApprovalRefused(f"{key} is {unit['state']}, not held: nothing to approve")
    given = store.approvals([key]).get(key, {})
    open_findings = [f for f in store.latest_findings(key)
                     if f["severity"] == "error" and f["approval"] is None
                     and f["found"] not in given.get(f["rule"], {})]
    mine = [f for f in open_findings if f["rule"] == rule]
    if not mine:
        rules = ", ".join(sorted({f["rule"] for f in open_findings})) or "none"
        raise ApprovalRefused(f"{key} has no open finding of rule {rule!r} (open: {rules})")
    if len(reason.strip()) < 10:
        raise ApprovalRefused("say why in --reason (at least 10 characters): it is audit evidence")
    for person in {actor, os_user}:
        if person in (SERVICE, service_user):
            raise ApprovalRefused(f"{person!r} is the service identity; a person must approve "
                                  "(segregation of duties)")
    changer = last_data_change(store, key)
    if changer and changer in {actor, os_user}:
        raise ApprovalRefused(f"{changer!r} last changed this invoice's data through ar-sync "
                              "and cannot approve it (segregation of duties); ask a colleague")
    found = tuple(sorted({f["found"] for f in mine}))
    with store.transaction():
        for value in found:
            store.conn.execute(
                "INSERT INTO approvals (key, rule, found, actor, reason, at) VALUES "
                "(?, ?, ?, ?, ?, ?)", (key, rule, value, actor, reason, now()))
        store.conn.execute("UPDATE units SET rerun_requested = 1 WHERE key = ?", (key,))
        store.event(key, "finding_approved", actor, rule=rule, found=list(found),
                    reason=reason, os_user=os_user)
    return Approval(key, rule, found, actor)


def last_data_change(store: Store, key: str) -> str | None:
    """The person who last changed this unit's data through ar-sync, if anyone did."""
    row = store.conn.execute(
        "SELECT actor FROM events WHERE key = ? AND kind = 'data_changed' ORDER BY id DESC "
        "LIMIT 1", (key,)).fetchone()
    return str(row["actor"]) if row else None


def record_data_change(store: Store, keys: list[str], actor: str, what: dict[str, str]) -> None:
    """Note on each unit that a person changed its source data through ar-sync."""
    with store.transaction():
        for key in keys:
            store.event(key, "data_changed", actor, **what)


def approvals_of(store: Store, key: str) -> list[dict[str, str]]:
    return [dict(r) for r in store.rows(
        "SELECT rule, found, actor, reason, at FROM approvals WHERE key = ? ORDER BY id", (key,))]


__all__ = ["Approval", "ApprovalRefused", "approvals_of", "approve", "last_data_change",
           "record_data_change", "who"]
