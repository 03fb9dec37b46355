"""Retention: attempt payloads are pruned once ``[retention]`` says they have been kept long
enough — by ``ar-sync state prune`` and once a day by the daemon.

What is kept where (docs/operations.md, "Retention"):

* **Evidence** — the document sent to a channel (the exact bytes) and the answer received
  (the portal's or NetSuite's text), of every attempt that delivered, was refused, or may
  have arrived (``ok``, ``rejected``, ``ambiguous``): ``evidence_days`` (default 2557, seven
  years).
* **Transport log** — what a try that certainly delivered nothing sent, and the error it met
  (``transient``: no connection, a timeout before sending, 429, a 5xx without a business
  answer; ``lost``: reconciliation showed it never arrived): ``transport_days`` (default 90).
  ar-sync keeps no raw HTTP or SMTP traffic of its own; these rows are the nearest thing.

Only units in a final state (delivered, resolved) are pruned: anything still in flight or held
keeps what reconciliation and the on-call person need. The row of each attempt stays (target,
operation, times, outcome, code, reference), gains ``pruned_at``, ``pruned_policy`` and the
document's SHA-256 and size, and each batch pruned appends one ``payloads_pruned`` event
(who, the policy, the counts, the attempt ids) to the hash-chained history, so
``audit verify`` still passes and ``audit export`` says what was pruned and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from ar_sync.config import Settings
from ar_sync.store import Store


def cutoffs(settings: Settings, now: dt.datetime | None = None) -> dict[str, str]:
    """The oldest ``started_at`` each kind of payload may have and still be kept."""
    cfg = settings.model.retention
    at = now or dt.datetime.now(dt.UTC)

    def before(days: int) -> str:
        return (at - dt.timedelta(days=days)).isoformat(timespec="milliseconds")

    return {"evidence_before": before(cfg.evidence_days),
            "transport_before": before(cfg.transport_days)}


def prune(settings: Settings, store: Store, *, actor: str, dry_run: bool = False,
          now: dt.datetime | None = None,
          stop: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Prune (or, with ``dry_run``, count) the payloads past retention; return the summary."""
    cfg = settings.model.retention
    policy = {"evidence_days": cfg.evidence_days, "transport_days": cfg.transport_days}
    limits = cutoffs(settings, now)
    counts = store.prune_payloads(evidence_before=limits["evidence_before"],
                                  transport_before=limits["transport_before"], actor=actor,
                                  policy=policy, dry_run=dry_run, stop=stop)
    return {"dry_run": dry_run, "actor": actor, "policy": policy, **limits, **counts,
            "store": store.space()}


def describe(summary: dict[str, Any]) -> str:
    """The summary in words, for the command line."""
    verb = "would prune" if summary["dry_run"] else "pruned"
    policy = summary["policy"]
    lines = [
        f"{verb} the payloads of {summary['attempts']} attempt(s) of {summary['units']} "
        f"finished invoice(s), {_size(summary['bytes'])} stored:",
        f"  {summary['evidence']:>7} evidence        older than {policy['evidence_days']} days "
        f"(before {summary['evidence_before'][:10]})",
        f"  {summary['transport']:>7} transport log   older than {policy['transport_days']} "
        f"days (before {summary['transport_before'][:10]})",
    ]
    space = summary["store"]
    if summary["dry_run"]:
        lines.append("dry run: nothing changed")
    else:
        lines.append(f"rows, metadata and the event history are kept; "
                     f"{summary['batches']} payloads_pruned event(s) recorded")
    lines.append(f"state store {_size(space['bytes'])}" + (
        f", of which {_size(space['free_bytes'])} in free pages (reused by new rows; "
        "`ar-sync state prune --vacuum` with the daemon stopped returns them to the disk)"
        if space["free_bytes"] else ""))
    return "\n".join(lines)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover
