"""The suggested next step for an invoice that waits for a person, in one line.

``failures`` shows it beside each escalated invoice and alerts carry it, so the person at
3 a.m. knows what to do without reading the rules. It follows the playbook: what ar-sync
already did (re-read the PO, asked the channel about a duplicate, retried with backoff) is
not suggested again; what is left is the part only a person can do. The wording names the
command to run afterwards (``ar-sync <command> KEY``), because the command is what differs
between cases: ``rerun`` for data fixed in NetSuite, ``rerun --force`` only after a channel's
business rejection, ``approve`` when the finding is right but acceptable, ``resolve`` when it
was settled outside ar-sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ar_sync.store import State

# Rule prefixes of the checklist -> where the fix is made.
_FIX_IN_NETSUITE = {
    "customer.": "the customer record",
    "lines.": "the sales order lines",
    "totals.": "the sales order",
    "source.": "the sales order",
    "tax.": "the tax codes on the order or the customer's exemption",
    "dates.": "the order's dates or billing schedule",
    "po.": "the PO on the sales order (or the customer's PO list)",
    "channel.cxml": "the order lines (PO line numbers, units)",
    "channel.peppol": "the customer's Peppol id or buyer reference",
}


def suggest(item: Mapping[str, Any], *, max_attempts: int | None = None) -> str:
    """What a person should do next about one unit of the failures queue."""
    if item["state"] == State.RETRY:
        limit = f" of {max_attempts}" if max_attempts else ""
        return (f"Nothing yet: ar-sync retries on its own (attempt {item['retries']}{limit}) "
                "and escalates if it keeps failing.")
    rules = [r for r in (item.get("hold_reason") or "").split("; ") if r]
    rule = rules[0] if rules else ""
    stage = item.get("hold_stage") or ""
    channel = item.get("channel") or "the channel"
    if rule == "retry.exhausted":
        if stage in ("netsuite", "create"):
            return ("NetSuite kept failing: check `ar-sync status` and `ar-sync netsuite "
                    "ping`, fix access or wait for NetSuite, then `rerun`.")
        return (f"{channel} kept failing: check its health in `ar-sync status` and the last "
                "error in `show`, fix the channel, then `rerun`.")
    if rule in ("channel.missing_po", "channel.invalid_po"):
        return ("Send the drafted PO request (in `show`) to the customer's AP, put the PO on "
                "the sales order, then `rerun --force`.")
    if rule == "channel.duplicate":
        return (f"Look the invoice up in {channel}: if it was accepted there, `resolve --note`; "
                "if not, fix the cause and `rerun --force`.")
    if rule == "channel.defect":
        return ("A defect in ar-sync's document, not the customer's data: report it with the "
                "stored document (`show`); do not resend until it is fixed.")
    if rule.startswith("channel.") and stage == "delivery":
        return f"Fix what {channel} named (`show`), then `rerun --force`."
    if rule == "netsuite.unreadable":
        return "Correct the field named in NetSuite; the next cycle reads the order again."
    if rule == "netsuite.not_billable":
        return ("Check the sales order in NetSuite (billed, closed or edited by hand?): "
                "`resolve --note` if it is settled, else `rerun`.")
    if stage == "netsuite":
        return "NetSuite refused it: fix the record as its message says, then `rerun`."
    if rule.startswith("duplicate."):
        return (f"Compare with the earlier invoice: a real second bill is `approve --rule "
                f"{rule}`; a duplicate is `resolve --note`.")
    if rule.startswith("delivery."):
        return ("Configure the customer's channel (requirements library or [channels]), then "
                "`rerun`.")
    for prefix, where in _FIX_IN_NETSUITE.items():
        if rule.startswith(prefix):
            return (f"Fix {where} in NetSuite, then `rerun`; if it is right as it is, "
                    f"`approve --rule {rule}`.")
    return "Read the story (`show`), fix the cause, then `rerun`."
