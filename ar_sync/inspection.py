"""``ar-sync check KEY``: the whole checklist on one unit, every rule passed or not.

Read-only: it reads the unit from NetSuite (the order if no invoice exists yet, else the
invoice NetSuite holds), runs every rule of that stage and reports each one with the rules
and library versions, without changing the unit's state.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from typing import Any

from ar_sync.checks import Stage, evaluate, rules_version
from ar_sync.config import Settings
from ar_sync.errors import ArSyncError
from ar_sync.invoicing import build_draft
from ar_sync.models import BillableUnit, Invoice, from_jsonable
from ar_sync.netsuite import open_gateway
from ar_sync.pipeline import Cycle
from ar_sync.requirements import library_version
from ar_sync.store import Store

WIDTH = 100


def check_unit(settings: Settings, key: str, as_of: dt.date | None = None) -> dict[str, Any]:
    """Every rule's result for ``key``, as data."""
    if not settings.state_path.exists():
        raise ArSyncError(f"no state file at {settings.state_path} yet: run `ar-sync run --once`")
    store = Store.open(settings.state_path)
    gateway = open_gateway(settings)
    try:
        cycle = Cycle(settings, store, gateway, as_of=as_of)
        row = store.unit(key)
        invoice, draft, channel = _subject(cycle, key, row)
        existing = cycle.existing_invoices([invoice.customer.id]).get(invoice.customer.id, [])
        ctx = cycle.context(invoice, channel, existing, draft)
        stage: Stage = "draft" if draft is None else "invoice"
        approvals = store.approvals([key]).get(key, {})
        results = []
        for rule, findings in evaluate(invoice, ctx, stage):
            covered = [f for f in findings if f.found in approvals.get(rule.id, {})]
            status = ("passed" if not findings else "approved" if len(covered) == len(findings)
                      else "warning" if not any(f.holds for f in findings) else "failed")
            results.append({"rule": rule.id, "summary": rule.summary, "status": status,
                            "findings": [_f(f) for f in findings]})
        return {"key": key, "stage": stage, "as_of": cycle.as_of.isoformat(),
                "invoice": invoice.number, "rules_version": rules_version(),
                "library_version": library_version(
                    settings.resolve(settings.model.requirements.library)),
                "results": results}
    finally:
        gateway.close()
        store.close()


def _f(f: Any) -> dict[str, str]:
    return {"rule": f.rule, "severity": f.severity.value, "field": f.field, "found": f.found,
            "expected": f.expected, "message": f.message}


def _subject(cycle: Cycle, key: str, row: Any) -> tuple[Invoice, Invoice | None, str]:
    """The invoice to check: NetSuite's if it exists, else a fresh draft from the order."""
    if row is not None and row["netsuite_id"]:
        found = cycle.gateway.read_invoices([row["netsuite_id"]])
        if row["netsuite_id"] not in found:
            raise ArSyncError(f"invoice {row['tran_id']} of {key} cannot be read from NetSuite")
        draft = from_jsonable(Invoice, json.loads(row["draft"]))
        return found[row["netsuite_id"]], draft, row["channel"]
    unit = cycle.gateway.fetch_units([key], cycle.as_of).get(key)
    if not isinstance(unit, BillableUnit):
        raise ArSyncError(f"{key} is not due to bill in NetSuite as of {cycle.as_of} "
                          "(or its data cannot be read: see `ar-sync show`)")
    channel = cycle.channel_for(unit.customer.entity_id, unit.customer.channel)
    return build_draft(unit), None, channel


def format_check(result: dict[str, Any]) -> str:
    marks = {"passed": "ok  ", "failed": "FAIL", "approved": "appr", "warning": "warn"}
    lines = [f"{result['key']} ({result['invoice']}): checklist at stage {result['stage']}, "
             f"as of {result['as_of']}",
             f"rules {result['rules_version']}, requirements library {result['library_version']}",
             ""]
    for r in result["results"]:
        lines.append(f"  [{marks[r['status']]}] {r['rule']:<26} {r['summary']}"[:WIDTH])
        for f in r["findings"]:
            lines.extend(textwrap.wrap(f["message"], WIDTH, initial_indent="         ",
                                       subsequent_indent="         "))
    failed = sum(r["status"] == "failed" for r in result["results"])
    lines += ["", f"{len(result['results'])} rules: {failed} failed."]
    return "\n".join(lines)
