"""The NetSuite gateway over SuiteTalk REST: SuiteQL to read, ``!transform`` to create.

Reads are SuiteQL in bulk with keyset paging (:mod:`.suiteql`): due orders a thousand per
request with their customer joined, then the item lines or due instalment lines of that
page, never one GET per order. Read-backs and look-ups are one SuiteQL over a batch.

Creating is one ``POST /record/v1/salesOrder/{id}/!transform/invoice`` per invoice
(NetSuite has no batch transform), run concurrently up to the account share
(``concurrency``) by worker threads sharing the client. The body carries the unit's key as
``externalId``, its date, PO, memo, period and exactly its lines; the new id comes from the
``Location`` header. ``X-NetSuite-PropertyNameValidation: Error`` makes NetSuite refuse a
field name it does not know instead of dropping it: a dropped ``externalId`` would quietly
end idempotency.

Never twice: the batch's external ids are looked up before anything is sent (a taken key
is answered with ``DuplicateExternalIdError``, as the sandbox does), and again after any
transform that may have landed without an answer. Found: it is ours. Not found after a
timeout or reset: ``AmbiguousError`` — the request may still be running, so the pipeline
looks again next cycle. Not found after NetSuite itself answered 5xx: that request is
over, so it is sent again (at most :data:`RESEND_LIMIT` times).

The remediation playbook's :class:`~ar_sync.netsuite.gateway.PurchaseOrderSource`: the
order's PO is one SuiteQL query; the invoice's PO is one ``PATCH /record/v1/invoice/{id}``
with ``otherRefNum`` alone, then the invoice read back like a new one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ar_sync import failpoints, log
from ar_sync.errors import (
    AmbiguousError,
    ArSyncError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
    TransientError,
)
from ar_sync.models import (
    BillableUnit,
    Invoice,
    TaxCode,
    UnreadableRecord,
    unreadable_key,
)
from ar_sync.netsuite.gateway import Closing, CreateResult, InvoiceSummary, rebatch
from ar_sync.netsuite.rest import queries as q
from ar_sync.netsuite.rest import records
from ar_sync.netsuite.rest.client import RestClient, dumps_exact
from ar_sync.netsuite.rest.errors import NetSuiteErrorBody, NetSuiteServerError, classify
from ar_sync.netsuite.rest.suiteql import (
    MAX_IN_LIST,
    PAGE_LIMIT,
    Key,
    Literal,
    QueryValueError,
    in_list_rows,
    keyset_rows,
    render,
    sql_date,
    sql_enum,
    sql_enums,
    sql_id,
    sql_ids,
    sql_texts,
)

if TYPE_CHECKING:
    from ar_sync.config import Settings

Row = dict[str, Any]
RESEND_LIMIT = 1  # resends after NetSuite answered 5xx and the look-up found nothing
_LOCATION = re.compile(r"/record/v1/invoice/([0-9]{1,18})/?$")


class RestGateway(Closing):
    """The :class:`~ar_sync.netsuite.gateway.Gateway` over one account's REST API."""

    name = "rest"

    def __init__(self, client: RestClient) -> None:
        self.client = client
        self.log = log.get("ar_sync.netsuite")

    @classmethod
    def from_settings(cls, settings: Settings) -> RestGateway:
        from ar_sync.netsuite.rest.options import open_client

        return cls(open_client(settings))

    def close(self) -> None:
        self.client.close()

    # -- reading what is due -------------------------------------------------------------

    def iter_billable(self, as_of: dt.date,
                      batch_size: int) -> Iterator[list[BillableUnit | UnreadableRecord]]:
        """Due units by order id then date; a page of orders per request, batched."""
        rows = self._rows(q.DUE_ORDERS, q.ORDER_KEYS, sales_order=_type(q.SALES_ORDER),
                          statuses=sql_enums(q.BILLABLE, q.STATUS_LETTERS),
                          as_of=sql_date(as_of))
        yield from rebatch((self._units(orders, as_of) for orders in _pages(rows, PAGE_LIMIT)),
                           batch_size)

    def fetch_units(self, keys: Sequence[str],
                    as_of: dt.date) -> dict[str, BillableUnit | UnreadableRecord]:
        """These units as NetSuite has them now; an ``unreadable`` key brings its order."""
        wanted = set(keys)
        whole = {k.split(":")[1] for k in wanted if k.endswith(":unreadable")}
        ids = {p[0] for p in map(records.parse_unit_key, wanted) if p}
        ids |= {i for i in whole if i.isascii() and i.isdigit()}
        orders = self._bulk(q.ORDERS_BY_ID, q.ORDER_KEYS, "ids", sorted(ids, key=int), sql_ids,
                            sales_order=_type(q.SALES_ORDER))
        return {u.key: u for u in self._units(orders, as_of)
                if u.key in wanted or u.order_id in whole}

    def _units(self, orders: list[Row], as_of: dt.date) -> list[BillableUnit | UnreadableRecord]:
        """The units of a page of orders: their lines in bulk, then one order at a time."""
        billable = [o for o in orders if records.text(o, "status") in q.BILLABLE
                    and records.text(o, "id").isdigit()]
        plain = [o["id"] for o in billable if not records.text(o, "billingschedule")]
        scheduled = [o["id"] for o in billable if records.text(o, "billingschedule")]
        lines = self._grouped(q.ORDER_LINES, q.LINE_KEYS, plain)
        instalments = self._grouped(q.INSTALMENT_LINES, q.INSTALMENT_KEYS, scheduled,
                                    as_of=sql_date(as_of))
        out: list[BillableUnit | UnreadableRecord] = []
        for order in orders:
            oid = records.text(order, "id")
            try:
                out.extend(records.order_units(order, lines.get(oid, []),
                                               instalments.get(oid, []), as_of))
            except (KeyError, ValueError, TypeError) as exc:
                field, _, problem = str(exc).partition(": ")
                out.append(UnreadableRecord(
                    key=unreadable_key(oid), order_id=oid,
                    order_number=records.text(order, "tranid") or "?",
                    customer_id=records.text(order, "entity"), field=field or "?",
                    problem=problem or str(exc)))
        return out

    def _grouped(self, template: str, keys: Sequence[Key], ids: list[Any],
                 **values: Literal) -> dict[str, list[Row]]:
        by_order: dict[str, list[Row]] = defaultdict(list)
        for row in self._bulk(template, keys, "ids", ids, sql_ids, **values):
            by_order[records.text(row, "transaction")].append(row)
        return by_order

    def _rows(self, template: str, keys: Sequence[Key], **values: Literal) -> Iterator[Row]:
        return keyset_rows(self.client.suiteql, template, keys, values)

    def _bulk(self, template: str, keys: Sequence[Key], name: str, values: Sequence[Any],
              literal: Callable[[Iterable[Any]], Literal], **fixed: Literal) -> list[Row]:
        """All rows for an IN list of ``values``: chunks and their later pages at once."""
        if not values:
            return []
        chunk = 500 if literal is sql_texts else MAX_IN_LIST
        return in_list_rows(self.client.suiteql, self._run, template, keys, name, values,
                            literal, fixed=fixed, chunk=chunk,
                            parallel=self.client.options.concurrency)

    def _run(self, thunks: list[Callable[[], list[Row]]]) -> list[list[Row]]:
        """Independent queries at once (the client's semaphore bounds what is in flight)."""
        if len(thunks) == 1:
            return [thunks[0]()]
        with ThreadPoolExecutor(max_workers=min(len(thunks), self.client.options.concurrency),
                                thread_name_prefix="netsuite-read") as pool:
            return list(pool.map(lambda thunk: thunk(), thunks))

    # -- creating ------------------------------------------------------------------------

    def create_invoices(self, drafts: Sequence[Invoice]) -> list[CreateResult]:
        """One transform per draft, up to ``concurrency`` at a time; results in order."""
        if not drafts:
            return []
        taken = self._taken([d.key for d in drafts])
        results: list[CreateResult | None] = [
            DuplicateExternalIdError(d.key) if d.key.lower() in taken else None for d in drafts]
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=self.client.options.concurrency,
                                thread_name_prefix="netsuite-create") as pool:
            futures = {i: pool.submit(self._create_one, drafts[i], stop)
                       for i, r in enumerate(results) if r is None}
        failures = [exc for f in futures.values() if (exc := f.exception()) is not None]
        if failures:
            raise failures[0]  # fatal: what was created is adopted by the next run's look-up
        outcomes = {i: f.result() for i, f in futures.items()}
        read = self._read_back([v for v in outcomes.values() if isinstance(v, str)])
        for i, outcome in outcomes.items():
            results[i] = (read.get(outcome) or dataclasses.replace(drafts[i], netsuite_id=outcome)
                          if isinstance(outcome, str) else outcome)
        return [r for r in results if r is not None]

    def _create_one(self, draft: Invoice, stop: threading.Event) -> str | ArSyncError:
        """Create one invoice; its new internal id, or the error for this record."""
        for attempt in range(RESEND_LIMIT + 1):
            if stop.is_set():
                return TransientError(f"{draft.key}: not sent, the batch stopped on a fatal error")
            try:
                new_id = self._transform(draft)
            except RejectedError as exc:
                return exc
            except (AmbiguousError, NetSuiteServerError) as exc:
                found = self._look_up_after(draft.key, exc)
                if found:
                    failpoints.hit("netsuite_commit")
                    return found
                if isinstance(exc, NetSuiteServerError) and attempt < RESEND_LIMIT:
                    self.log.warning("invoice_create_resent", key=draft.key, error=str(exc))
                    continue
                return exc
            except TransientError as exc:
                return exc
            except FatalError:
                stop.set()
                raise
            failpoints.hit("netsuite_commit")  # the crash test stops here, mid-batch
            return new_id
        raise AssertionError("unreachable")  # pragma: no cover

    def _transform(self, draft: Invoice) -> str:
        order = sql_ids([draft.order_id]).sql.strip("()")
        what = f"creating invoice {draft.key}"
        response = self.client.request(
            "POST", self.client.options.url(f"record/v1/salesOrder/{order}/!transform/invoice"),
            kind="transform", what=what, idempotent=False,
            classifier=lambda body: classify(body, what=what, external_id=draft.key),
            headers={"Content-Type": "application/json",
                     "X-NetSuite-PropertyNameValidation": "Error"},
            data=dumps_exact(transform_body(draft)).encode("utf-8"))
        match = _LOCATION.search(response.headers.get("Location", ""))
        if match is None:
            raise AmbiguousError(f"NetSuite answered HTTP {response.status_code} to {what} "
                                 "without the new invoice's Location")
        return match[1]

    def _look_up_after(self, key: str, exc: ArSyncError) -> str | None:
        """After a transform that may have landed: its invoice id, if NetSuite has it."""
        try:
            found = self._taken([key]).get(key.lower())
        except TransientError as lookup:
            self.log.warning("invoice_lookup_failed", key=key, error=str(lookup))
            return None
        self.log.warning("invoice_create_uncertain", key=key, error=str(exc),
                         found=found is not None)
        return found

    def _taken(self, keys: Sequence[str]) -> dict[str, str]:
        """Which external ids already name an invoice: lower-case key → internal id."""
        rows = self._bulk(q.INVOICE_IDS_BY_EXTERNAL_ID, q.ID_KEYS, "external_ids",
                          sorted({k.upper() for k in keys}), sql_texts, invoice=_type(q.INVOICE))
        return {records.text(row, "externalid").lower(): records.text(row, "id") for row in rows}

    def _read_back(self, ids: list[str]) -> dict[str, Invoice]:
        """The new invoices as NetSuite made them, in one go; if that fails they are still
        created, and the cycle reads them again before checking and delivering."""
        if not ids:
            return {}
        try:
            return self.read_invoices(ids)
        except TransientError as exc:
            self.log.warning("invoice_read_back_failed", count=len(ids), error=str(exc))
            return {}

    # -- looking up ----------------------------------------------------------------------

    def find_invoices(self, external_ids: Sequence[str]) -> dict[str, Invoice]:
        found = {inv.key.lower(): inv for inv in self._invoices(
            q.INVOICES_BY_EXTERNAL_ID, "external_ids", sorted({e.upper() for e in external_ids}),
            sql_texts)}
        return {e: found[e.lower()] for e in external_ids if e.lower() in found}

    def read_invoices(self, netsuite_ids: Sequence[str]) -> dict[str, Invoice]:
        ids = sorted({str(i) for i in netsuite_ids if str(i).isascii() and str(i).isdigit()},
                     key=int)
        return {inv.netsuite_id or "": inv
                for inv in self._invoices(q.INVOICES_BY_ID, "ids", ids, sql_ids)}

    def _invoices(self, template: str, name: str, values: Sequence[Any],
                  literal: Callable[[Iterable[Any]], Literal]) -> list[Invoice]:
        rows = self._bulk(template, q.INVOICE_LINE_KEYS, name, values, literal,
                          invoice=_type(q.INVOICE))
        out = []
        for group in _by_id(rows):
            try:
                out.append(records.invoice(group))
            except (KeyError, ValueError, TypeError) as exc:
                self.log.error("netsuite_invoice_unreadable", netsuite_id=group[0].get("id"),
                               error=str(exc))
        return out

    def invoices_for_customers(self, customer_ids: Sequence[str],
                               since: dt.date) -> list[InvoiceSummary]:
        ids = sorted({str(c) for c in customer_ids if str(c).isascii() and str(c).isdigit()},
                     key=int)
        rows = self._bulk(q.INVOICE_SUMMARIES, q.ID_KEYS, "customers", ids, sql_ids,
                          invoice=_type(q.INVOICE), since=sql_date(since))
        return [records.summary(row) for row in rows]

    def tax_codes(self) -> dict[str, TaxCode]:
        """The account's tax codes (one SuiteQL; the cycle reads them once)."""
        codes = map(records.tax_code, self._rows(q.TAX_CODES, q.TAX_CODE_KEYS))
        return {c.code: c for c in codes}

    # -- the playbook's PO (PurchaseOrderSource) ----------------------------------------

    def current_po(self, order_id: str) -> str:
        """The sales order's PO (``otherRefNum``) now: one SuiteQL query; ``""`` when the
        order has none or NetSuite has no such sales order (as the sandbox answers)."""
        try:
            order = sql_id(order_id)
        except QueryValueError:
            return ""  # not an internal id: nothing to ask NetSuite
        query = render(q.ORDER_PO, order=order, sales_order=_type(q.SALES_ORDER))
        items = list(self.client.suiteql(query, 1).get("items") or [])
        return records.text(items[0], "otherrefnum") if items else ""

    def set_invoice_po(self, netsuite_id: str, po: str) -> Invoice:
        """``PATCH /record/v1/invoice/{id}`` with ``otherRefNum`` alone (NetSuite leaves every
        field not sent as it is), then the invoice read back as NetSuite holds it.

        Sent as idempotent: setting the same PO again changes nothing, so a 5xx, a 429 or a
        request without an answer is resent by the client like a read. A 4xx is that
        invoice's problem: ``RejectedError`` with NetSuite's code and message.
        """
        if not isinstance(po, str) or not po:
            # clearing a body field over REST needs replaceSelectedFields (reference §2),
            # UNVERIFIED; the playbook only ever sets a PO
            raise ValueError(f"set_invoice_po needs a PO to set, got {po!r}")
        try:
            invoice_id = sql_id(netsuite_id).sql
        except QueryValueError:
            raise RejectedError(f"not a NetSuite internal id: {netsuite_id!r}",
                                code="INVALID_REFERENCE", field="id") from None
        what = f"updating invoice {invoice_id}'s PO"
        response = self.client.request(
            "PATCH", self.client.options.url(f"record/v1/invoice/{invoice_id}"),
            kind="update", what=what, idempotent=True,
            classifier=lambda body: _record_refusal(body, what),
            headers={"Content-Type": "application/json",
                     "X-NetSuite-PropertyNameValidation": "Error"},
            data=dumps_exact({"otherRefNum": po}).encode("utf-8"))
        if not 200 <= response.status_code < 300:
            raise TransientError(f"NetSuite answered HTTP {response.status_code} while {what}")
        if response.status_code != 204:
            self.log.warning("netsuite_unexpected_status", what=what,
                             status=response.status_code, expected=204)
        invoice = self.read_invoices([invoice_id]).get(invoice_id)
        if invoice is None:
            raise RejectedError(f"NetSuite took the PO on invoice {invoice_id} but the invoice "
                                "could not be read back", code="NETSUITE_REFUSED", field="id")
        return invoice


def transform_body(draft: Invoice) -> dict[str, Any]:
    """The transform's body: the unit key as externalId, its date, PO, period and lines."""
    body: dict[str, Any] = {"externalId": draft.key, "tranDate": draft.tran_date.isoformat()}
    optional = {"otherRefNum": draft.po_number, "memo": draft.memo,
                "startDate": draft.period_start.isoformat() if draft.period_start else "",
                "endDate": draft.period_end.isoformat() if draft.period_end else ""}
    body |= {k: v for k, v in optional.items() if v}
    body["item"] = {"items": [{"orderLine": ln.order_line, "quantity": ln.quantity,
                               "rate": ln.rate, "amount": ln.amount} for ln in draft.lines]}
    return body


def _record_refusal(body: NetSuiteErrorBody, what: str) -> ArSyncError:
    """An update of one record refused: a 4xx is ``RejectedError`` with NetSuite's code and
    message (the field from ``o:errorPath``, else ``id`` for a missing record)."""
    error = classify(body, what=what, record=True)
    if isinstance(error, RejectedError) and not error.field:
        missing = body.status == 404 or body.code in ("NONEXISTENT_ID", "INVALID_KEY_OR_REF")
        error.field = "id" if missing else "otherRefNum"
    return error


def _type(name: str) -> Literal:
    return sql_enum(name, q.TYPES)


def _pages(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """``rows`` in lists of ``size`` (a SuiteQL page each: the next page is fetched lazily)."""
    page: list[Row] = []
    for row in rows:
        page.append(row)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _by_id(rows: Iterable[Row]) -> Iterator[list[Row]]:
    group: list[Row] = []
    for row in rows:
        if group and row.get("id") != group[0].get("id"):
            yield group
            group = []
        group.append(row)
    if group:
        yield group
