"""The invoice cycle: pull → draft → check → create → read back → check → render → deliver.

Every side effect is bracketed by state transitions in the store (intent before, outcome
after), so a run killed at any moment is finished by the next one without duplicating or
losing an invoice or a delivery:

* a unit left ``creating`` is looked up by its external id: adopted if NetSuite has it,
  otherwise created on this pass;
* a unit left ``delivering`` is looked up with the channel's status: recorded as delivered
  if the channel has it, otherwise delivered again.

Errors are caught here, by branch, and nowhere else: ``TransientError`` schedules a retry,
``RejectedError`` holds the unit for a person, ``FatalError`` ends the cycle. One bad
record never stops the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ar_sync import breakers, failpoints, log, playbook
from ar_sync.checks import CheckContext, Stage, approved, rules_version, run_checks
from ar_sync.config import Settings
from ar_sync.connector import Connector, open_connector
from ar_sync.errors import (
    AmbiguousError,
    ArSyncError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
    TransientError,
)
from ar_sync.invoicing import build_draft
from ar_sync.models import (
    BillableUnit,
    DeliveryOutcome,
    Finding,
    Invoice,
    OutcomeStatus,
    Severity,
    TaxCode,
    UnreadableRecord,
    from_jsonable,
    to_jsonable,
    unreadable_key,
)
from ar_sync.netsuite.gateway import Gateway, InvoiceSummary
from ar_sync.requirements import library_version
from ar_sync.store import State, Store, now

T = TypeVar("T")
BEFORE_CREATION = ("check", "netsuite")  # hold stages at which NetSuite has no invoice


@dataclass
class CycleReport:
    """What one cycle did, for the summary, `status` and the cycle's heartbeat row."""

    found: int = 0
    created: int = 0
    adopted: int = 0
    delivered: int = 0
    held: int = 0
    retrying: int = 0
    still_held: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "reasons"}
        return data | {"reasons": dict(self.reasons.most_common())}


class Cycle:
    """One pass over everything due, and everything left in flight by earlier passes."""

    def __init__(self, settings: Settings, store: Store, gateway: Gateway,
                 connectors: dict[str, Connector] | None = None, *,
                 as_of: dt.date | None = None, stop: threading.Event | None = None,
                 progress: Callable[[str, int], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.gateway = gateway
        self.connectors = connectors if connectors is not None else {}
        self.as_of = as_of or dt.datetime.now(settings.zone).date()
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda step, n: None)
        self.report = CycleReport()
        self.log = log.get("ar_sync.cycle")
        self.versions = (rules_version(),
                         library_version(settings.resolve(settings.model.requirements.library)))
        self.broken_channels: set[str] = set()
        self.unseen: set[str] = set()
        self._tax_codes: dict[str, TaxCode] | None = None
        retry_cfg = settings.model.retry
        self.breakers = breakers.Breakers(store, retry_cfg.breaker_threshold, dt.timedelta(
            seconds=retry_cfg.breaker_cooldown_seconds))
        self._channels: dict[str, str] = {}  # channel of each unit drafted in this batch
        self._attempts: dict[str, int] = {}  # pending create attempt of each unit in the batch

    # -- the cycle -----------------------------------------------------------------------

    def run(self, only_keys: Sequence[str] | None = None) -> CycleReport:
        """Run the cycle (restricted to ``only_keys`` for a rerun). An error that ends it
        (FatalError, or NetSuite still failing after every retry) is recorded on the cycle's
        row as ``failed`` and propagates."""
        cycle_id = self.store.begin_cycle()
        self.log.info("cycle_started", as_of=self.as_of.isoformat(), only=only_keys)
        if not self.breakers.allows(breakers.NETSUITE):
            until = self.breakers.open_until(breakers.NETSUITE)
            self.log.warning("netsuite_circuit_open", until=until)
            self.store.end_cycle(cycle_id, "skipped", self.report.as_dict() | {
                "reason": f"NetSuite circuit open until {until}"})
            return self.report
        try:
            self.reconcile()
            if only_keys is None:
                self.unseen = self._awaiting_pull()
                for batch in self._pull():
                    self.process_units(batch)
                    if self.stop.is_set():
                        break
                else:
                    self._settle_unseen()
            else:
                self.process_units(list(self._refetch(only_keys).values()))
            self.resume_created(only_keys)
        except ArSyncError as exc:  # not only FatalError: a row left 'running' lies
            self.store.end_cycle(cycle_id, "failed", self.report.as_dict() | {"error": str(exc)})
            self.log.error("cycle_failed", error=str(exc))
            raise
        self.report.stopped_early = self.stop.is_set()
        self.store.end_cycle(cycle_id, "ok", self.report.as_dict())
        self.log.info("cycle_finished", **self.report.as_dict())
        return self.report

    def _pull(self) -> Iterator[list[BillableUnit | UnreadableRecord]]:
        """What is due, batch by batch, with the in-call retries every other NetSuite call
        gets (``_call``): a listing is a generator, so a transient failure part-way (a page
        that failed after the gateway's own retries) lists again from the start, bounded,
        jittered and logged. Listing is a read, and each batch taken is recorded before the
        next is read, so listing again is safe; units already taken in this cycle are left
        out (one key per unit is kept for the cycle to know them)."""
        cfg = self.settings.model.retry
        taken: set[str] = set()
        for attempt in range(1, cfg.in_call_attempts + 1):
            try:
                for batch in self.gateway.iter_billable(self.as_of,
                                                        self.settings.billing.batch_size):
                    fresh = [u for u in batch if u.key not in taken]
                    taken.update(u.key for u in fresh)
                    if fresh:
                        yield fresh
                return
            except TransientError as exc:
                if attempt >= cfg.in_call_attempts:
                    raise
                wait = random.uniform(0, min(cfg.in_call_wait_seconds * 2 ** attempt,
                                             cfg.in_call_wait_seconds * 8))
                self.log.warning("netsuite_retry", call="iter_billable", attempt=attempt,
                                 error=str(exc))
                time.sleep(wait)

    def _refetch(self, keys: Sequence[str]) -> dict[str, BillableUnit | UnreadableRecord]:
        rows = self.store.units(keys)
        wanted = [k for k in keys if k not in rows or _before_creation(rows[k])]
        return self._call(self.gateway.fetch_units, wanted, self.as_of) if wanted else {}

    # -- reconcile what a crash left in flight -------------------------------------------

    def _awaiting_pull(self) -> set[str]:
        """Units without an invoice that this pull should list again (usually few)."""
        return {r["key"] for r in self.store.rows(
            "SELECT key FROM units WHERE state = ? OR (state = ? AND retry_stage = 'create')",
            (State.NEW, State.RETRY))}

    def _settle_unseen(self) -> None:
        """Units NetSuite stopped listing before ar-sync invoiced them: hold for a person."""
        if not self.unseen:
            return
        keys = sorted(self.unseen)
        still = self._call(self.gateway.fetch_units, keys, self.as_of)
        self.process_units(list(still.values()))
        for key in (k for k in keys if k not in still):
            finding = Finding("netsuite.not_billable", Severity.ERROR, "status", "not billable",
                              "pending billing",
                              "NetSuite no longer lists this as due to bill, and ar-sync has not "
                              "invoiced it: was it billed, closed or edited in NetSuite? Check "
                              "the sales order, then resolve or rerun.")
            with self.store.transaction():
                self.store.record_check(key, "draft", [finding], *self.versions)
                self._hold(key, "netsuite", [finding])

    def reconcile(self) -> None:
        """Settle units a killed run left ``creating`` or ``delivering``, and look up the
        due create retries: an ambiguous failure may have created the invoice after all."""
        creating = [r["key"] for r in self.store.rows(
            "SELECT key FROM units WHERE state = ? OR (state = ? AND retry_stage = 'create' "
            "AND next_attempt_at <= ?)", (State.CREATING, State.RETRY, now()))]
        for start in range(0, len(creating), 500):
            self._settle_creating(creating[start:start + 500])
        for row in self.store.rows("SELECT key, channel FROM units WHERE state = ?",
                                   (State.DELIVERING,)):
            self._settle_delivering(row["key"], row["channel"])

    def _settle_creating(self, keys: list[str]) -> None:
        found = self._call(self.gateway.find_invoices, keys)
        for key in keys:
            with self.store.transaction():
                self._close_pending(key, "create", found.get(key))
                if key in found:
                    inv = found[key]
                    self.store.set_state(key, State.CREATED, netsuite_id=inv.netsuite_id,
                                         tran_id=inv.tran_id)
                    self.store.event(key, "create_reconciled", found=True,
                                     netsuite_id=inv.netsuite_id)
                    self.report.adopted += 1
                elif (row := self.store.unit(key)) and row["state"] == State.CREATING:
                    self.store.set_state(key, State.RETRY, retry_stage="create",
                                         next_attempt_at=now())
                    self.store.event(key, "create_reconciled", found=False)
            self.log.info("create_reconciled", key=key, found=key in found)

    def _settle_delivering(self, key: str, channel: str) -> None:
        try:
            outcome = self._connector(channel).status(key)
        except (TransientError, FatalError) as exc:
            self.log.warning("delivery_status_unavailable", key=key, error=str(exc))
            return
        with self.store.transaction():
            pending = self.store.pending_attempt(key, "deliver")
            if outcome is not None and outcome.status is not OutcomeStatus.REJECTED:
                if pending:
                    self.store.finish_attempt(pending["id"], "ok", reference=outcome.reference,
                                              message="confirmed by channel status after restart")
                self.store.set_state(key, State.DELIVERED, delivery_ref=outcome.reference)
                self.store.event(key, "delivery_reconciled", found=True,
                                 reference=outcome.reference)
            else:
                if pending:
                    self.store.finish_attempt(pending["id"], "lost",
                                              message="channel has no record of it after restart")
                self.store.set_state(key, State.CREATED)
                self.store.event(key, "delivery_reconciled", found=False)
        self.log.info("delivery_reconciled", key=key, found=outcome is not None)

    def _close_pending(self, key: str, operation: str, invoice: Invoice | None) -> None:
        pending = self.store.pending_attempt(key, operation)
        if pending is None:
            return
        if invoice is not None:
            self.store.finish_attempt(pending["id"], "ok", reference=invoice.netsuite_id or "",
                                      message="found by external id after restart")
        else:
            self.store.finish_attempt(pending["id"], "lost",
                                      message="not found by external id after restart")

    # -- units pulled from NetSuite ------------------------------------------------------

    def process_units(self, batch: Sequence[BillableUnit | UnreadableRecord]) -> None:
        """Draft, check and create the units of one batch that need it."""
        self.report.found += len(batch)
        self.unseen.difference_update(u.key for u in batch)
        rows = self.store.units([u.key for u in batch])
        units = [u for u in batch if isinstance(u, BillableUnit)]
        for record in batch:
            if isinstance(record, UnreadableRecord):
                self._hold_unreadable(record, rows.get(record.key))
        self._resolve_unreadable({u.order_id for u in units})
        todo = [u for u in units if self._needs_pass(u, rows.get(u.key))]
        if not todo:
            return
        existing = self.existing_invoices([u.customer.id for u in todo])
        approvals = self.store.approvals([u.key for u in todo])
        passing: list[tuple[Invoice, bool]] = []
        with self.store.transaction():  # the batch's intents, committed before the call
            for unit in todo:
                if self.stop.is_set():  # create what is already marked `creating`, then stop
                    break
                row = rows.get(unit.key)
                draft = self._check_draft(unit, existing, row, approvals.get(unit.key, {}))
                if draft is not None:
                    passing.append((draft, row is not None and row["state"] == State.RETRY))
        created = self._create(passing)
        if created and not self.stop.is_set():
            self._deliver_batch([{"key": d.key, "netsuite_id": i.netsuite_id,
                                  "channel": self._channels[d.key], "state": State.CREATED}
                                 for d, i in created], {d.key: d for d, _ in created})

    def _hold_unreadable(self, record: UnreadableRecord, row: Any) -> None:
        """Hold an order NetSuite gave us with data we cannot use, naming the field."""
        if (row is not None and row["state"] == State.HELD and not row["rerun_requested"]
                and row["fingerprint"] == record.fingerprint()):
            self.report.still_held += 1
            return
        finding = Finding("netsuite.unreadable", Severity.ERROR, record.field, record.problem,
                          "a value ar-sync can bill",
                          f"Sales order {record.order_number} cannot be billed: {record.field}: "
                          f"{record.problem}. Correct it in NetSuite; the next cycle reads it "
                          "again.")
        with self.store.transaction():
            self.store.upsert_unit({
                "key": record.key, "kind": "unreadable", "order_id": record.order_id,
                "order_number": record.order_number, "customer_id": record.customer_id,
                "customer_entity": "", "customer_name": f"customer {record.customer_id}",
                "channel": "", "currency": "", "total": "0",
                "bill_date": self.as_of.isoformat(),
                "state": row["state"] if row is not None else State.NEW,
                "fingerprint": record.fingerprint(), "draft": "{}"})
            self.store.record_check(record.key, "draft", [finding], *self.versions)
            if row is None:
                self.store.event(record.key, "discovered", order=record.order_number)
            self._hold(record.key, "check", [finding])

    def _resolve_unreadable(self, order_ids: set[str]) -> None:
        """Orders that read cleanly again no longer need their 'unreadable' hold."""
        if not order_ids:
            return
        held = [r["key"] for r in self.store.units([unreadable_key(o) for o in order_ids])
                .values() if r["state"] == State.HELD]
        for key in held:
            with self.store.transaction():
                self.store.set_state(key, State.RESOLVED, rerun_requested=0)
                self.store.event(key, "resolved", note="the sales order reads cleanly again")

    def _needs_pass(self, unit: BillableUnit, row: Any) -> bool:
        if row is None or row["state"] == State.NEW:
            return True
        if row["rerun_requested"]:
            return row["state"] in (State.HELD, State.RETRY) and _before_creation(row)
        if row["state"] == State.RETRY and row["retry_stage"] == "create":
            return bool(row["next_attempt_at"] <= now())
        if row["state"] == State.HELD and row["hold_stage"] in BEFORE_CREATION:
            if row["fingerprint"] != unit.fingerprint():
                return True
            self.report.still_held += 1
        return False

    def existing_invoices(self, customer_ids: Iterable[str]) -> dict[str, list[InvoiceSummary]]:
        """The customers' recent invoices, one bulk call (duplicates, overlaps, PO totals)."""
        since = self.as_of - dt.timedelta(days=self.settings.billing.duplicate_lookback_days)
        customers = sorted(set(customer_ids))
        by_customer: dict[str, list[InvoiceSummary]] = defaultdict(list)
        for summary in self._call(self.gateway.invoices_for_customers, customers, since):
            by_customer[summary.customer_id].append(summary)
        return by_customer

    def channel_for(self, unit_customer_entity: str, customer_channel: str) -> str:
        req = self.settings.requirements.get(unit_customer_entity)
        return (req.channel if req and req.channel else customer_channel
                or self.settings.delivery.default_channel)

    def context(self, invoice: Invoice, channel: str, existing: Sequence[InvoiceSummary],
                draft: Invoice | None = None) -> CheckContext:
        """Everything the checklist consults for ``invoice``."""
        if self._tax_codes is None:
            self._tax_codes = self._call(self.gateway.tax_codes)
        checks = self.settings.model.checks
        section = self.settings.model.channels.get(channel)
        return CheckContext(
            as_of=self.as_of, requirements=self.settings.requirements.get(
                invoice.customer.entity_id),
            existing=existing, draft=draft, channels=frozenset(self.settings.model.channels),
            channel=channel, profile=section.profile if section else "none",
            tax_codes=self._tax_codes, nexus_states=frozenset(checks.nexus_states),
            closed_through=checks.periods_closed_through)

    def checklist(self, invoice: Invoice, ctx: CheckContext, stage: Stage,
                  approvals: Mapping[str, Mapping[str, int]]) -> tuple[list[Finding],
                                                                        list[Finding]]:
        """All findings, and those that hold (not approved by a person)."""
        findings = run_checks(invoice, ctx, stage)
        holding, _ = approved(findings, {r: set(v) for r, v in approvals.items()})
        return findings, holding

    def _check_draft(self, unit: BillableUnit, existing: dict[str, list[InvoiceSummary]],
                     row: Any, approvals: Mapping[str, Mapping[str, int]]) -> Invoice | None:
        """Draft and check one unit; hold it (returning None) or mark it ``creating``."""
        try:
            draft = build_draft(unit)
        except (ArithmeticError, TypeError, ValueError, AttributeError) as exc:
            self._hold_unreadable(UnreadableRecord(
                unit.key, unit.order_id, unit.order_number, unit.customer.id, "-",
                f"{type(exc).__name__}: {exc}"), row)
            return None
        channel = self.channel_for(unit.customer.entity_id, unit.customer.channel)
        self._channels[unit.key] = channel
        ctx = self.context(draft, channel, existing.get(unit.customer.id, ()))
        findings, holds = self.checklist(draft, ctx, "draft", approvals)
        with self.store.transaction():
            self.store.upsert_unit(_unit_row(unit, draft, channel, row))
            self.store.record_check(unit.key, "draft", findings, *self.versions, approvals)
            if row is None:
                self.store.event(unit.key, "discovered", unit_kind=unit.kind.value,
                                 order=unit.order_number, total=str(draft.total))
            elif row["fingerprint"] != unit.fingerprint():
                self.store.event(unit.key, "source_changed", previous=row["fingerprint"])
            if holds:
                self._hold(unit.key, "check", holds)
                return None
            self.store.set_state(unit.key, State.CREATING, rerun_requested=0, hold_stage=None,
                                 hold_reason=None)
            self._attempts[unit.key] = self.store.begin_attempt(
                unit.key, f"netsuite:{self.gateway.name}", "create")
        return draft

    # -- create in NetSuite --------------------------------------------------------------

    def _create(self, drafts: list[tuple[Invoice, bool]]) -> list[tuple[Invoice, Invoice]]:
        """Create the batch in NetSuite; return (draft, invoice) of each one that now exists."""
        in_batch = {d.key for d, _ in drafts}
        self._channels = {k: v for k, v in self._channels.items() if k in in_batch}
        if not drafts:
            return []
        self.progress("create", len(drafts))
        retried = [d.key for d, was_retried in drafts if was_retried]
        already = self._call(self.gateway.find_invoices, retried) if retried else {}
        fresh = [d for d, _ in drafts if d.key not in already]
        try:
            failpoints.hit("before_create")
            results: list[Invoice | ArSyncError] = (
                self._call(self.gateway.create_invoices, fresh) if fresh else [])
            failpoints.hit("after_create")
        except TransientError as exc:  # the whole call failed: nothing to adopt yet
            with self.store.transaction():
                for draft in fresh:
                    self._retry(draft.key, "create", exc)
            results, fresh = [], []
        taken = [d.key for d, r in zip(fresh, results, strict=True)
                 if isinstance(r, DuplicateExternalIdError)]
        adopted = self._call(self.gateway.find_invoices, taken) if taken else {}
        drafts_by_key = {d.key: d for d, _ in drafts}
        created: list[tuple[Invoice, Invoice]] = []
        with self.store.transaction():  # the batch's outcomes
            for key, invoice in already.items():
                self._record_created(key, invoice, adopted=True)
                created.append((drafts_by_key[key], invoice))
            for draft, result in zip(fresh, results, strict=True):
                now_there = self._record_create_result(draft, result, adopted)
                if now_there is not None:
                    created.append((draft, now_there))
        self._attempts.clear()
        return created

    def _record_create_result(self, draft: Invoice, result: Invoice | ArSyncError,
                              adopted: Mapping[str, Invoice]) -> Invoice | None:
        """Record one per-record result; the invoice if NetSuite has it now."""
        if isinstance(result, Invoice):
            self._record_created(draft.key, result, adopted=False)
            return result
        if isinstance(result, DuplicateExternalIdError):
            if draft.key in adopted:
                self._record_created(draft.key, adopted[draft.key], adopted=True)
                return adopted[draft.key]
            self._retry(draft.key, "create", result)
        elif isinstance(result, RejectedError):
            finding = Finding("netsuite.refused", Severity.ERROR, result.field or "-",
                              result.remote_code or result.code, "NetSuite to accept the invoice",
                              f"NetSuite refused the invoice: {result}")
            with self.store.transaction():
                self._finish_pending(draft.key, "create", "rejected", result)
                self._hold(draft.key, "netsuite", [finding])
        elif isinstance(result, TransientError):
            self._retry(draft.key, "create", result)
        else:
            raise result
        return None

    def _record_created(self, key: str, invoice: Invoice, *, adopted: bool) -> None:
        with self.store.transaction():
            attempt = self._attempts.pop(key, None)
            if attempt is None and (pending := self.store.pending_attempt(key, "create")):
                attempt = pending["id"]
            if attempt is not None:
                self.store.finish_attempt(attempt, "ok", reference=invoice.netsuite_id or "",
                                          message="adopted existing invoice" if adopted else "")
            self.store.set_state(key, State.CREATED, netsuite_id=invoice.netsuite_id,
                                 tran_id=invoice.tran_id, retries=0, next_attempt_at=None)
            self.store.event(key, "invoice_adopted" if adopted else "invoice_created",
                             netsuite_id=invoice.netsuite_id, tran_id=invoice.tran_id)
        self.report.adopted += adopted
        self.report.created += not adopted
        self.log.info("invoice_adopted" if adopted else "invoice_created", key=key,
                      tran_id=invoice.tran_id)

    # -- after creation: read back, check again, deliver ----------------------------------

    def resume_created(self, only_keys: Sequence[str] | None = None) -> None:
        """Check again and deliver created invoices left over: by a crash, a retry that has
        come due, or a person's rerun. Pages through the store, a batch at a time."""
        size, after = self.settings.billing.batch_size, ""
        while not self.stop.is_set():
            rows = self.store.rows(
                "SELECT key, netsuite_id, channel, state, retry_stage, next_attempt_at, "
                "rerun_requested FROM units WHERE netsuite_id IS NOT NULL AND state IN "
                "(?, ?, ?) AND key > ? ORDER BY key LIMIT ?",
                (State.CREATED, State.RETRY, State.HELD, after, size))
            if not rows:
                return
            after = rows[-1]["key"]
            due = [dict(r) for r in rows if _ready_to_deliver(r, only_keys)]
            if due:
                drafts = {r["key"]: from_jsonable(Invoice, _json(r["draft"])) for r in
                          self.store.rows(f"SELECT key, draft FROM units WHERE key IN "
                                          f"({','.join('?' * len(due))})",
                                          [r["key"] for r in due])}
                self._deliver_batch(due, drafts)

    def _deliver_batch(self, rows: Sequence[Mapping[str, Any]], drafts: Mapping[str, Invoice],
                       ) -> None:
        """Read a batch back from NetSuite in one call, check each again, deliver each."""
        invoices = self._call(self.gateway.read_invoices, [r["netsuite_id"] for r in rows])
        existing = self.existing_invoices(i.customer.id for i in invoices.values())
        approvals = self.store.approvals([r["key"] for r in rows])
        for row in rows:
            if self.stop.is_set():
                return
            invoice = invoices.get(row["netsuite_id"])
            if invoice is None:
                self._retry(row["key"], "deliver", TransientError(
                    f"invoice {row['netsuite_id']} could not be read back from NetSuite"))
                continue
            self._verify_and_deliver(row, invoice, drafts[row["key"]],
                                     existing.get(invoice.customer.id, []),
                                     approvals.get(row["key"], {}))

    def _verify_and_deliver(self, row: Mapping[str, Any], invoice: Invoice, draft: Invoice,
                            existing: Sequence[InvoiceSummary],
                            approvals: Mapping[str, Mapping[str, int]]) -> None:
        key = row["key"]
        ctx = self.context(invoice, row["channel"], existing, draft)
        findings, holds = self.checklist(invoice, ctx, "invoice", approvals)

        def record_check() -> None:
            self.store.record_check(key, "invoice", findings, *self.versions, approvals)

        if holds:
            with self.store.transaction():
                record_check()
                self._hold(key, "invoice", holds)
            return
        # Ask the channel first only when an earlier send may have arrived (ambiguous): after
        # plain transient failures or a wait on an open circuit nothing got there, and a
        # channel refuses a second copy anyway (the playbook then reconciles by status).
        maybe_there = row["state"] == State.RETRY and bool(self.store.rows(
            "SELECT 1 FROM attempts WHERE key = ? AND operation = 'deliver' "
            "AND outcome = 'ambiguous' LIMIT 1", (key,)))
        self._deliver(key, row["channel"], invoice, maybe_there, record_check)

    def addressed(self, invoice: Invoice) -> Invoice:
        """The invoice as its channel needs it: the AP mailbox and buyer reference from the
        customer requirements library win over the NetSuite record (the checks used them)."""
        req = self.settings.requirements.get(invoice.customer.entity_id)
        if req is None or ((not req.ap_email or req.ap_email == invoice.customer.email)
                           and req.buyer_reference == invoice.buyer_reference):
            return invoice
        customer = dataclasses.replace(invoice.customer,
                                       email=req.ap_email or invoice.customer.email)
        return dataclasses.replace(invoice, customer=customer,
                                   buyer_reference=req.buyer_reference or invoice.buyer_reference)

    def _deliver(self, key: str, channel: str, invoice: Invoice, retried: bool,
                 record_check: Callable[[], None]) -> None:
        """Render and submit; ``record_check`` is written in the same transaction as the
        delivery's intent (or its failure), so the check and the attempt go together."""
        invoice = self.addressed(invoice)
        if not self.breakers.allows(breakers.channel(channel)):
            # The circuit is open: wait for it without spending one of the unit's attempts
            # (the channel was not tried); the probe after the cool-down decides.
            until = self.breakers.open_until(breakers.channel(channel)) or now()
            with self.store.transaction():
                record_check()
                self.store.set_state(key, State.RETRY, retry_stage="deliver",
                                     next_attempt_at=until)
                self.store.event(key, "retry_deferred", stage="deliver", at=until,
                                 reason=f"channel {channel} circuit is open")
            self.report.retrying += 1
            return
        if channel in self.broken_channels:
            with self.store.transaction():
                record_check()
                self._retry(key, "deliver", TransientError(f"channel {channel} is failing"))
            return
        try:
            connector = self._connector(channel)
            arrived = connector.status(key) if retried else None
            if arrived is None:
                document = connector.render(invoice)
        except (TransientError, FatalError) as exc:
            with self.store.transaction():
                record_check()
                self._channel_failed(key, channel, exc)
            return
        if arrived is not None:  # a retry after an ambiguous send: it got there
            with self.store.transaction():
                record_check()
                self._record_delivery(key, None, arrived)
            return
        with self.store.transaction():
            record_check()
            attempt = self.store.begin_attempt(key, f"channel:{channel}", "deliver",
                                               document.body, document.media_type)
            self.store.set_state(key, State.DELIVERING)
        try:
            failpoints.hit("before_submit")
            outcome = connector.submit(invoice, document)
            failpoints.hit("after_submit")
        except (TransientError, FatalError) as exc:
            self._channel_failed(key, channel, exc, attempt)
            return
        self.breakers.succeeded(breakers.channel(channel))  # it answered, yes or no
        if outcome.status is OutcomeStatus.REJECTED and playbook.after_rejection(
                self, key, channel, invoice, attempt, outcome):
            return  # the remediation playbook took it (resubmitted, reconciled or held)
        self._record_delivery(key, attempt, outcome)

    def _record_delivery(self, key: str, attempt: int | None, outcome: DeliveryOutcome) -> None:
        accepted = outcome.status is not OutcomeStatus.REJECTED and bool(outcome.reference)
        with self.store.transaction():
            if attempt is not None:
                self.store.finish_attempt(attempt, "ok" if accepted else "rejected",
                                          code=outcome.reason_code, reference=outcome.reference,
                                          message=outcome.remote_text)
            if accepted:
                self.store.set_state(key, State.DELIVERED, delivery_ref=outcome.reference,
                                     retries=0, next_attempt_at=None, rerun_requested=0,
                                     hold_stage=None, hold_reason=None)
                self.store.event(key, "invoice_delivered", reference=outcome.reference,
                                 status=outcome.status.value)
            else:
                text = outcome.remote_text or "the channel gave no reference"
                finding = Finding(f"channel.{(outcome.reason_code or 'rejected').lower()}",
                                  Severity.ERROR, outcome.field or "-",
                                  outcome.remote_code or "-", "the channel to accept it",
                                  f"The channel rejected the invoice ({outcome.reason_code or '?'}"
                                  f"): {text}")
                self.store.record_check(key, "delivery", [finding], *self.versions)
                self._hold(key, "delivery", [finding])
                return
        self.report.delivered += 1
        self.log.info("invoice_delivered", key=key, reference=outcome.reference)

    def _channel_failed(self, key: str, channel: str, exc: ArSyncError,
                        attempt: int | None = None) -> None:
        if isinstance(exc, TransientError) and self.breakers.failed(
                breakers.channel(channel), f"{type(exc).__name__}: {exc}"):
            self.broken_channels.add(channel)  # open: the rest of the cycle leaves it alone
        if isinstance(exc, FatalError):
            self.log.error("channel_unusable", channel=channel, error=str(exc))
            playbook.alert_channel(self, channel, str(exc))  # one alert, channel stopped
        if attempt is not None and isinstance(exc, AmbiguousError):
            # An ambiguous send is an attempt like any other: counted, so a channel that
            # never answers ends in a hold (retry.exhausted) instead of a resend every cycle.
            with self.store.transaction():  # leave DELIVERING: next start asks the channel
                self.store.finish_attempt(attempt, "ambiguous", error_class=type(exc).__name__,
                                          message=str(exc))
                row = self.store.unit(key)
                retries = (row["retries"] if row else 0) + 1
                if retries < self.settings.model.retry.max_attempts:
                    self.store.set_state(key, State.RETRY, retry_stage="deliver",
                                         retries=retries, next_attempt_at=now())
                    return
            self._retry(key, "deliver", exc)  # the last attempt: held for a person
            return
        self._retry(key, "deliver", exc, attempt)

    # -- shared transitions --------------------------------------------------------------

    def _hold(self, key: str, stage: str, findings: Sequence[Finding]) -> None:
        """Hold a unit for a person (inside a transaction)."""
        reason = "; ".join(f.rule for f in findings)
        self.store.set_state(key, State.HELD, hold_stage=stage,
                             hold_reason=reason, rerun_requested=0)
        self.store.event(key, "held", stage=stage, rules=[f.rule for f in findings],
                         messages=[f.message for f in findings])
        self.report.held += 1
        self.report.reasons.update(f.rule for f in findings)
        self.log.info("invoice_held", key=key, stage=stage, rules=reason)

    def _retry(self, key: str, stage: str, exc: ArSyncError, attempt: int | None = None) -> None:
        cfg = self.settings.model.retry
        with self.store.transaction():
            row = self.store.unit(key)
            retries = (row["retries"] if row else 0) + 1
            if attempt is None:
                pending = self.store.pending_attempt(key, "create" if stage == "create"
                                                     else "deliver")
                attempt = pending["id"] if pending else None
            if attempt is not None:
                self.store.finish_attempt(attempt, "transient", error_class=type(exc).__name__,
                                          message=str(exc))
            if retries >= cfg.max_attempts:
                finding = Finding("retry.exhausted", Severity.ERROR, stage, str(exc),
                                  f"success within {cfg.max_attempts} attempts",
                                  f"Gave up after {retries} attempts to {stage}: {exc}")
                self.store.record_check(key, stage, [finding], *self.versions)
                self._hold(key, stage if stage != "create" else "netsuite", [finding])
                return
            delay = min(cfg.cap_seconds, cfg.base_seconds * 2 ** (retries - 1))
            delay = delay * (0.5 + random.random() / 2)
            at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)).isoformat(
                timespec="milliseconds")
            self.store.set_state(key, State.RETRY, retry_stage=stage, retries=retries,
                                 next_attempt_at=at)
            self.store.event(key, "retry_scheduled", stage=stage, attempt=retries, at=at,
                             error=f"{type(exc).__name__}: {exc}")
        self.report.retrying += 1
        self.log.warning("retry_scheduled", key=key, stage=stage, attempt=retries, error=str(exc))

    def _finish_pending(self, key: str, operation: str, outcome: str, exc: ArSyncError) -> None:
        pending = self.store.pending_attempt(key, operation)
        if pending:
            self.store.finish_attempt(pending["id"], outcome, error_class=type(exc).__name__,
                                      code=getattr(exc, "remote_code", "") or
                                      getattr(exc, "code", ""), message=str(exc))

    def _connector(self, channel: str) -> Connector:
        if channel not in self.connectors:
            self.connectors[channel] = open_connector(self.settings, channel)
        return self.connectors[channel]

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the gateway with bounded, jittered, logged retries for transient errors."""
        cfg = self.settings.model.retry

        def log_retry(state: Any) -> None:
            self.log.warning("netsuite_retry", call=fn.__name__, attempt=state.attempt_number,
                             error=str(state.outcome.exception()))

        if not self.breakers.allows(breakers.NETSUITE):
            raise TransientError("NetSuite circuit is open until "
                                 f"{self.breakers.open_until(breakers.NETSUITE)}")
        wrapped = retry(
            retry=retry_if_exception(lambda e: isinstance(e, TransientError)
                                     and not isinstance(e, AmbiguousError)),
            stop=stop_after_attempt(cfg.in_call_attempts),
            wait=wait_random_exponential(multiplier=cfg.in_call_wait_seconds,
                                         max=cfg.in_call_wait_seconds * 8),
            before_sleep=log_retry, reraise=True)(fn)
        try:
            result = wrapped(*args)
        except TransientError as exc:
            self.breakers.failed(breakers.NETSUITE, f"{fn.__name__}: {exc}")
            raise
        self.breakers.succeeded(breakers.NETSUITE)
        return result


def _before_creation(row: Any) -> bool:
    return bool(row["netsuite_id"] is None)


def _ready_to_deliver(row: Any, only_keys: Iterable[str] | None) -> bool:
    if only_keys is not None and row["key"] not in only_keys:
        return False
    if row["state"] == State.CREATED:
        return True
    if row["state"] == State.RETRY:
        return bool(row["rerun_requested"] or row["next_attempt_at"] <= now())
    return bool(row["rerun_requested"])  # HELD after creation: only when a person asks


def _unit_row(unit: BillableUnit, draft: Invoice, channel: str, row: Any) -> dict[str, Any]:
    return {
        "key": unit.key, "kind": unit.kind.value, "order_id": unit.order_id,
        "order_number": unit.order_number, "customer_id": unit.customer.id,
        "customer_entity": unit.customer.entity_id, "customer_name": unit.customer.name,
        "channel": channel, "currency": unit.currency, "total": str(draft.total),
        "bill_date": unit.bill_date.isoformat(),
        "state": row["state"] if row is not None else State.NEW,
        "fingerprint": unit.fingerprint(),
        "draft": json.dumps(to_jsonable(draft), separators=(",", ":")),
    }


def _json(text: str) -> Any:
    return json.loads(text)
