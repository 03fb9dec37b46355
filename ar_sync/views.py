"""What the read commands show: plain data (for ``--json``) and text that fits 100 columns."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from typing import Any

from ar_sync.advice import suggest
from ar_sync.config import Settings
from ar_sync.store import State, Store, now

WIDTH = 100


def status_data(store: Store, settings: Settings | None = None) -> dict[str, Any]:
    """Counts by state with the oldest of each, the last cycles, the daemon's next run, and
    the health of NetSuite and of each channel."""
    states = {r["state"]: {"count": r["n"], "oldest": r["oldest"]} for r in store.rows(
        "SELECT state, COUNT(*) AS n, MIN(updated_at) AS oldest FROM units GROUP BY state")}
    last = store.rows("SELECT * FROM cycles ORDER BY id DESC LIMIT 1")
    ok = store.rows("SELECT * FROM cycles WHERE outcome = 'ok' ORDER BY id DESC LIMIT 1")
    breakers = {r["name"]: {"failures": r["failures"], "open_until": r["open_until"]}
                for r in store.rows("SELECT name, failures, open_until FROM breakers")}
    data: dict[str, Any] = {
        "state_file": str(store.path),
        "breakers": breakers,
        "units": states,
        "last_cycle": _cycle(last[0]) if last else None,
        "last_successful_cycle": _cycle(ok[0]) if ok else None,
    }
    if settings is not None:
        data["daemon"] = _daemon(settings)
        data["health"] = health_data(store, settings, breakers)
    return data


# How far back ``status`` looks for a target's recent calls: a day, within the last attempts.
HEALTH_WINDOW = dt.timedelta(hours=24)
HEALTH_ROWS = 20_000


def health_data(store: Store, settings: Settings,
                breakers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """NetSuite's and each channel's health: its breaker and its calls of the last 24 hours.

    ``verdict`` is ``down`` while the breaker is open, ``failing`` when the latest call
    failed or failures are being counted, ``ok`` when the latest call worked, ``idle`` with no
    call in the window. Reads only the newest attempts (by id), so it stays quick however
    long the history grows.
    """
    since = (dt.datetime.now(dt.UTC) - HEALTH_WINDOW).isoformat()
    rows = store.rows(
        "SELECT target, outcome, started_at, message FROM attempts WHERE id > "
        "(SELECT COALESCE(MAX(id), 0) FROM attempts) - ? AND started_at >= ? ORDER BY id",
        (HEALTH_ROWS, since))
    names = ["netsuite", *(f"channel:{c}" for c in sorted(settings.model.channels))]
    names += sorted({r["target"] for r in rows if r["target"].startswith("channel:")} - set(names))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [r for r in rows if (r["target"].startswith("netsuite:") if name == "netsuite"
                                    else r["target"] == name)]
        counts: dict[str, int] = {}
        for r in mine:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        ok_at = max((r["started_at"] for r in mine if r["outcome"] == "ok"), default=None)
        failed = [r for r in mine if r["outcome"] in ("transient", "ambiguous", "lost")]
        breaker = breakers.get(name, {"failures": 0, "open_until": None})
        latest = next((r for r in reversed(mine) if r["outcome"] != "pending"), None)
        if breaker["open_until"] and breaker["open_until"] > now():
            verdict = "down"
        elif breaker["failures"] or (latest is not None and latest["outcome"] in (
                "transient", "ambiguous", "lost")):
            verdict = "failing"
        else:
            verdict = "ok" if latest is not None else "idle"
        out[name] = {
            "verdict": verdict, "open_until": breaker["open_until"],
            "failures_in_a_row": breaker["failures"], "calls_24h": counts,
            "last_ok_at": ok_at,
            "last_failure": ({"at": failed[-1]["started_at"], "outcome": failed[-1]["outcome"],
                              "message": failed[-1]["message"]} if failed else None),
        }
    return out


def _daemon(settings: Settings) -> dict[str, Any]:
    from ar_sync.daemon import describe
    from ar_sync.runner import read_schedule

    info = read_schedule(settings.state_path)
    if info is None or info.get("alive") is False:
        return {"running": False, "schedule": describe(settings), "next_run_at": None}
    return {"running": bool(info["alive"]) if info.get("alive") is not None else None,
            "pid": info.get("pid"), "host": info.get("host"), "since": info.get("since"),
            "schedule": info.get("schedule"), "next_run_at": info.get("next_run_at")}


def _cycle(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "started_at": row["started_at"], "finished_at": row["finished_at"],
            "outcome": row["outcome"], "summary": json.loads(row["summary"])}


def format_status(data: dict[str, Any]) -> str:
    lines = [f"State file: {data['state_file']}", ""]
    order = [State.DELIVERED, State.HELD, State.RETRY, State.CREATED, State.DELIVERING,
             State.CREATING, State.NEW, State.RESOLVED]
    lines.append(f"{'state':<12} {'units':>7}  oldest change")
    for state in order:
        if state in data["units"]:
            u = data["units"][state]
            lines.append(f"{state:<12} {u['count']:>7}  {u['oldest']}")
    if not data["units"]:
        lines.append("(no invoices yet: run `ar-sync run --once`)")
    if "health" in data:
        lines += ["", f"{'health':<24} {'now':<8} last 24 h"]
        for name, h in data["health"].items():
            calls = ", ".join(f"{n} {k}" for k, n in sorted(h["calls_24h"].items())) or "no calls"
            state = {"down": f"DOWN until {_when(h['open_until'] or '')} UTC",
                     "failing": "FAILING"}.get(h["verdict"], h["verdict"])
            lines.append(f"{name:<24} {state:<8} {calls}")
            if h["last_failure"] and h["verdict"] != "ok":
                f = h["last_failure"]
                lines.extend(textwrap.wrap(
                    f"last failure {_when(f['at'])} UTC: {f['message'] or f['outcome']}",
                    WIDTH, initial_indent="    ", subsequent_indent="      "))
    elif data.get("breakers"):
        lines.append("")
        for name, b in sorted(data["breakers"].items()):
            state = (f"CIRCUIT OPEN until {_when(b['open_until'])} UTC" if b["open_until"]
                     else "ok" if not b["failures"] else f"{b['failures']} failure(s) in a row")
            lines.append(f"{name:<24} {state}")
    lines.append("")
    for label, key in (("Last cycle", "last_cycle"), ("Last success", "last_successful_cycle")):
        c = data[key]
        if c:
            s = c["summary"]
            lines.append(f"{label + ':':<14} #{c['id']} {c['outcome']} at "
                         f"{c['finished_at'] or c['started_at']} (found {s.get('found', 0)}, "
                         f"created {s.get('created', 0)}, delivered {s.get('delivered', 0)}, "
                         f"held {s.get('held', 0)})")
    if "daemon" in data:
        d = data["daemon"]
        if d["running"] is None:
            lines.append(f"{'Daemon:':<14} pid {d['pid']} on {d['host']} (another machine), "
                         f"{d['schedule']}, next run {_when(d['next_run_at'] or '?')} UTC")
        elif d["running"]:
            lines.append(f"{'Daemon:':<14} running (pid {d['pid']} since {_when(d['since'])} "
                         f"UTC), {d['schedule']}")
            lines.append(f"{'Next run:':<14} {_when(d['next_run_at'] or '?')} UTC")
        else:
            lines.append(f"{'Daemon:':<14} NOT RUNNING: nothing is billed until `ar-sync "
                         f"daemon` (or its systemd unit) starts ({d['schedule']} once it runs)")
    return "\n".join(lines)


def failures_data(store: Store, *, max_attempts: int | None = None) -> list[dict[str, Any]]:
    """Held (escalated) and retrying units with what a person needs to act, oldest first:
    the reasons (rule, field, message), the last answer from NetSuite or the channel (its
    code and text), the attempts, the owner and since when, and the suggested action."""
    rows = store.rows(
        "SELECT key, order_number, customer_entity, customer_name, channel, currency, total, "
        "state, hold_stage, hold_reason, retry_stage, retries, next_attempt_at, updated_at, "
        "owner, owned_since, (SELECT COUNT(*) FROM attempts a WHERE a.key = u.key) AS attempts, "
        "(SELECT MAX(started_at) FROM attempts a WHERE a.key = u.key) AS last_attempt "
        "FROM units u WHERE state IN (?, ?) ORDER BY updated_at", (State.HELD, State.RETRY))
    out = []
    for r in rows:
        findings = store.latest_findings(r["key"])
        answer = store.rows(
            "SELECT target, outcome, code, message, started_at FROM attempts WHERE key = ? "
            "AND outcome NOT IN ('ok', 'pending') ORDER BY id DESC LIMIT 1", (r["key"],))
        item = dict(r) | {"reasons": [
            {"rule": f["rule"], "field": f["field"], "message": f["message"]}
            for f in findings if f["severity"] == "error" and not f["approval"]],
            "last_answer": dict(answer[0]) if answer else None}
        item["suggested_action"] = suggest(item, max_attempts=max_attempts)
        out.append(item)
    return out


def format_failures(items: list[dict[str, Any]]) -> str:
    if not items:
        return "Nothing held or waiting for a retry."
    lines = [f"{'key':<20} {'order':<9} {'customer':<30} {'total':>17}  {'state':<5} at"]
    for it in items:
        where = it["hold_stage"] if it["state"] == State.HELD else it["retry_stage"]
        lines.append(f"{it['key']:<20} {it['order_number']:<9} {it['customer_name'][:30]:<30} "
                     f"{it['total'] + ' ' + it['currency']:>17}  {it['state']:<5} {where}")
        for reason in it["reasons"][:3]:
            lines.extend(textwrap.wrap(f"{reason['rule']}: {reason['message']}", WIDTH,
                                       initial_indent="    - ", subsequent_indent="      "))
        if it["state"] == State.RETRY:
            lines.append(f"    - retry {it['retries']} of {it['retry_stage']} due "
                         f"{_when(it['next_attempt_at'] or '')} UTC")
        ans = it.get("last_answer")
        if ans and (ans["code"] or ans["message"]) and it["state"] == State.HELD:
            lines.extend(textwrap.wrap(
                f"{ans['target']} said at {_when(ans['started_at'])} UTC: "
                f"{' '.join(x for x in (ans['code'], ans['message']) if x)}",
                WIDTH, initial_indent="    - ", subsequent_indent="      "))
        owner = (f"{it['owner']} since {_when(it['owned_since'])} UTC" if it["owner"]
                 else "nobody (`ack` takes it)")
        lines.append(f"    · waiting since {_when(it['updated_at'])} UTC, {it['attempts']} "
                     f"attempt(s), owner {owner}")
        lines.extend(textwrap.wrap(f"next: {it['suggested_action']}", WIDTH,
                                   initial_indent="    > ", subsequent_indent="      "))
    lines.append("")
    held = sum(1 for it in items if it["state"] == State.HELD)
    lines.append(f"{held} invoice(s) escalated to a person, {len(items) - held} retrying on "
                 "their own.\n`ar-sync show KEY` tells the whole story.")
    return "\n".join(lines)


def show_data(store: Store, key: str) -> dict[str, Any] | None:
    """Everything recorded about one unit."""
    unit = store.unit(key)
    if unit is None:
        return None
    data = dict(unit)
    data["draft"] = json.loads(data["draft"])
    runs = store.rows("SELECT * FROM check_runs WHERE key = ? ORDER BY id", (key,))
    data["checks"] = [dict(r) | {"findings": [dict(f) for f in store.rows(
        "SELECT rule, severity, field, found, expected, message, approval FROM findings "
        "WHERE check_run = ? ORDER BY id", (r["id"],))]} for r in runs]
    data["attempts"] = [dict(a) for a in store.rows(
        "SELECT id, target, operation, started_at, finished_at, outcome, error_class, code, "
        "message, reference, document_type, pruned_at, pruned_policy FROM attempts "
        "WHERE key = ? ORDER BY id", (key,))]
    data["approvals"] = [dict(a) for a in store.rows(
        "SELECT rule, found, actor, reason, at FROM approvals WHERE key = ? ORDER BY id", (key,))]
    data["events"] = [dict(e) | {"detail": json.loads(e["detail"])} for e in store.rows(
        "SELECT at, kind, actor, detail FROM events WHERE key = ? ORDER BY id", (key,))]
    return data


def format_show(d: dict[str, Any]) -> str:
    draft = d["draft"] or {"customer": {"name": d["customer_name"], "entity_id": "?"},
                           "subtotal": "?", "tax_total": "?", "total": "?", "currency": "",
                           "po_number": ""}
    cust = draft["customer"]
    lines = [
        f"{d['key']}  —  {d['state'].upper()}"
        + (f" at {d['hold_stage']}" if d["state"] == State.HELD else ""),
        f"Sales order {d['order_number']} ({d['kind']}), bill date {d['bill_date']}",
        f"Customer    {cust['name']} ({cust['entity_id']}), channel {d['channel']}",
        f"Amount      {draft['subtotal']} + tax {draft['tax_total']} = {draft['total']} "
        f"{draft['currency']}, PO {draft['po_number'] or '(none)'}",
        f"NetSuite    {d['tran_id'] or 'not created'}"
        + (f" (internal id {d['netsuite_id']})" if d["netsuite_id"] else ""),
        f"Delivery    {d['delivery_ref'] or '-'}",
    ]
    if d["checks"]:
        last = d["checks"][-1]
        lines += ["", f"Last check ({last['stage']}, {last['at']}): "
                  f"{'passed' if last['passed'] else 'FAILED'}"]
        for f in last["findings"]:
            approved = " (approved)" if f.get("approval") else ""
            lines.append(f"  [{f['severity']}] {f['rule']}  field {f['field']}{approved}")
            lines.extend(textwrap.wrap(f["message"], WIDTH, initial_indent="      ",
                                       subsequent_indent="      "))
            lines.append(f"      found: {f['found']}   expected: {f['expected']}")
    if d["approvals"]:
        lines += ["", "Approvals:"]
        for a in d["approvals"]:
            lines.extend(textwrap.wrap(f"{_when(a['at'])}  {a['rule']} ({a['found']}) by "
                                       f"{a['actor']}: {a['reason']}", WIDTH,
                                       initial_indent="  ", subsequent_indent="    "))
    if d["attempts"]:
        lines += ["", "Attempts (UTC):"]
        for a in d["attempts"]:
            lines.append(f"  {_when(a['started_at'])}  {a['operation']:<8} {a['target']:<18} "
                         f"{a['outcome']:<10} #{a['id']}")
            pruned = (f"(payload pruned {_when(a['pruned_at'])} UTC under "
                      f"{a['pruned_policy']})" if a["pruned_at"] else
                      f"sent {a['document_type']}: `ar-sync show {d['key']} --document "
                      f"{a['id']}`" if a["document_type"] else "")
            for extra in (a["reference"], a["message"], pruned):
                if extra:
                    lines.extend(textwrap.wrap(extra, WIDTH, initial_indent="      ",
                                               subsequent_indent="      "))
    lines += ["", "History (UTC):"]
    for e in d["events"]:
        lines.extend(textwrap.wrap(f"{_when(e['at'])}  {e['kind']:<18} {e['actor']:<8} "
                                   f"{_brief(e['detail'])}", WIDTH, initial_indent="  ",
                                   subsequent_indent=" " * 24))
    return "\n".join(lines)


def _when(stamp: str) -> str:
    return stamp[:19].replace("T", " ")


def _brief(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if k != "messages")
