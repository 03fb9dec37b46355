"""The NetSuite gateway over SuiteTalk SOAP: search to read, initialize + add to create.

* **Reading what is due** is one transaction search — sales orders whose *status* is
  pending billing (or pending billing / partially fulfilled) — with lines
  (``bodyFieldsOnly=false``), a thousand per page, every page through ``searchMoreWithId``
  up to ``totalPages``. ``nextBill`` is not a filter (it belongs to billing schedules and
  would drop orders without one): it only tells whether a scheduled order has an
  instalment due. Customers, their terms and renewed orders come with one ``getList``
  per page, never one request per order.
* **Creating** is ``initializeList`` (NetSuite's "Bill" on each order) then ``addList``
  of the initialized invoices with the unit key as ``externalId``, the draft's date, PO,
  period and exactly its lines, under ``ignoreReadOnlyFields``. Results are mapped record
  by record: ``DUP_RCRD`` means the invoice exists (the pipeline adopts it, nothing is
  added again); ``afterSubmitFailed`` with a reference means it was saved; any other
  error holds that unit with NetSuite's code and message and the rest goes on.
  ``addList`` is safe to resend: NetSuite refuses a second invoice under the same
  external id. The new invoices are read back with ``getList``.
* **The playbook's PO** (:class:`~ar_sync.netsuite.gateway.PurchaseOrderSource`): the
  order's ``otherRefNum`` with one ``get``; a corrected PO goes on the invoice with
  ``update`` carrying only the internal id and ``otherRefNum`` (NetSuite leaves every field
  not sent untouched), and the invoice is read back with ``getList``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ar_sync import failpoints, log
from ar_sync.errors import (
    ArSyncError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
    TransientError,
)
from ar_sync.models import BillableUnit, Invoice, TaxCode, UnreadableRecord, unreadable_key
from ar_sync.netsuite import sandbox_records as shapes
from ar_sync.netsuite.gateway import Closing, CreateResult, InvoiceSummary, rebatch
from ar_sync.netsuite.soap import records
from ar_sync.netsuite.soap.client import BatchTooLarge, SoapClient

if TYPE_CHECKING:
    from ar_sync.config import Settings

DUPLICATE_CODES = frozenset({"DUP_RCRD"})  # UNVERIFIED (reference §10.1): DUP_RCRD assumed
EXPIRED_SEARCH = "INVALID_JOB_ID"
MISSING_RECORD = "RCRD_DSNT_EXIST"
BILLABLE = ("_salesOrderPendingBilling", "_salesOrderPendingBillingPartiallyFulfilled")


def chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


class SoapGateway(Closing):
    """The :class:`~ar_sync.netsuite.gateway.Gateway` over one account's SOAP port."""

    name = "soap"

    def __init__(self, client: SoapClient) -> None:
        self.client = client
        self.log = log.get("ar_sync.netsuite")
        self._customers: dict[str, Any] = {}  # customer records read this cycle, by id
        self._terms: dict[str, int] = {}  # days until net due, by term id

    @classmethod
    def from_settings(cls, settings: Settings) -> SoapGateway:
        from ar_sync.netsuite.soap.options import soap_options

        return cls(SoapClient(soap_options(settings)))

    def close(self) -> None:
        self.client.close()

    # -- reading what is due -------------------------------------------------------------

    def iter_billable(self, as_of: dt.date,
                      batch_size: int) -> Iterator[list[BillableUnit | UnreadableRecord]]:
        """Due units by order id then date, a search page of orders at a time."""
        c = self.client
        search = c.common.TransactionSearchBasic(
            type=c.core.SearchEnumMultiSelectField(searchValue=["_salesOrder"],
                                                   operator="anyOf"),
            status=c.core.SearchEnumMultiSelectField(searchValue=list(BILLABLE),
                                                     operator="anyOf"))
        pages = self._search(search, "listing sales orders to bill", lines=True)
        yield from rebatch((self._units(sorted(page, key=lambda r: int(r.internalId)), as_of)
                            for page in pages), batch_size)

    def fetch_units(self, keys: Sequence[str],
                    as_of: dt.date) -> dict[str, BillableUnit | UnreadableRecord]:
        """These units as NetSuite has them now; an ``unreadable`` key brings its order."""
        wanted = set(keys)
        whole = {k.split(":")[1] for k in wanted if k.endswith(":unreadable")}
        ids = {p[0] for p in map(shapes.parse_unit_key, wanted) if p}
        ids |= {i for i in whole if i.isascii() and i.isdigit()}
        orders = self._get("salesOrder", sorted(ids, key=int), "re-reading sales orders")
        return {u.key: u for u in self._units(orders, as_of)
                if u.key in wanted or u.order_id in whole}

    def _units(self, orders: list[Any], as_of: dt.date) -> list[BillableUnit | UnreadableRecord]:
        """The units of a page of orders; customers and renewed orders in one getList each."""
        due = [o for o in orders if _may_be_due(o, as_of)]
        customers = self._customer_docs({records.ref_id(o.entity) for o in due})
        renewed_ids = {records.ref_id(records.customs(o).get("custbody_renewal_of"))
                       for o in due} - {""}
        ends = {str(r.internalId): records.day(r.endDate) for r in
                self._get("salesOrder", sorted(renewed_ids, key=int), "reading renewed orders")}
        out: list[BillableUnit | UnreadableRecord] = []
        for rec in due:
            cid = records.ref_id(rec.entity)
            try:
                order = records.order_doc(rec)
                customer = shapes.customer_model(customers[cid])
                renews = shapes.parse_date(ends.get(shapes.renewed_order_id(order) or ""))
                out.extend(shapes.order_units(order, customer, as_of, renews))
            except (KeyError, ValueError, TypeError) as exc:
                field, _, problem = str(exc).strip("'\"").partition(": ")
                out.append(UnreadableRecord(
                    key=unreadable_key(str(rec.internalId)), order_id=str(rec.internalId),
                    order_number=rec.tranId or "?", customer_id=cid,
                    field=field or "?", problem=problem or f"field {exc} is missing"))
        return out

    # -- creating ------------------------------------------------------------------------

    def create_invoices(self, drafts: Sequence[Invoice]) -> list[CreateResult]:
        """initializeList, addList and getList, each batched; one result per draft."""
        results: dict[int, CreateResult] = {}
        ready: list[tuple[int, Any]] = []
        size = self.client.options.initialize_batch_size
        for chunk in chunks(list(enumerate(drafts)), size):
            ready += self._initialize(chunk, results)
        created: dict[int, str] = {}
        for chunk in chunks(ready, self.client.options.add_batch_size):
            self._add(chunk, drafts, results, created)
        read = self._read_back(list(created.values()))
        for i, new_id in created.items():
            results[i] = read.get(new_id) or dataclasses.replace(drafts[i], netsuite_id=new_id)
        return [results[i] for i in range(len(drafts))]

    def _initialize(self, chunk: list[tuple[int, Invoice]],
                    results: dict[int, CreateResult]) -> list[tuple[int, Any]]:
        c = self.client
        requests = [c.core.InitializeRecord(
            type="invoice", reference=c.core.InitializeRef(type="salesOrder",
                                                           internalId=d.order_id))
            for _, d in chunk]
        answer = c.call("initializeList", f"initializing {len(chunk)} invoices",
                        initializeRecord=requests)
        ready, refused = [], []
        for (i, draft), response in zip(chunk, _list(answer, "readResponse"), strict=True):
            if response.status.isSuccess:
                ready.append((i, self._invoice_record(draft, response.record)))
            else:
                refused.append((i, draft, _status(response.status)))
        taken = self._taken([d.key for _, d, _ in refused]) if refused else {}
        for i, draft, (code, message) in refused:
            results[i] = (DuplicateExternalIdError(draft.key) if draft.key.lower() in taken
                          else RejectedError(f"NetSuite: {message}", code="NETSUITE_REFUSED",
                                             remote_code=code, field="createdFrom"))
        return ready

    def _invoice_record(self, draft: Invoice, initialized: Any) -> Any:
        """The initialized invoice with the unit's key, date, PO, period and lines."""
        c = self.client
        by_line = {int(item.orderLine or 0): item for item in records._items(initialized)}
        lines = []
        for line in draft.lines:
            source = by_line.get(line.order_line)
            lines.append(c.sales.InvoiceItem(
                item=source.item if source is not None else c.core.RecordRef(name=line.item),
                orderLine=line.order_line, quantity=float(line.quantity), rate=str(line.rate),
                amount=float(line.amount)))
        custom = [c.core.DateCustomFieldRef(scriptId=k, value=_noon(v)) for k, v in (
            ("custbody_contract_start", draft.contract_start),
            ("custbody_contract_end", draft.contract_end),
            ("custbody_renews_term_ending", draft.renews_term_ending)) if v]
        return c.sales.Invoice(
            externalId=draft.key, entity=initialized.entity,
            createdFrom=initialized.createdFrom, tranDate=_noon(draft.tran_date),
            otherRefNum=draft.po_number or None, memo=draft.memo or None,
            startDate=_noon(draft.period_start), endDate=_noon(draft.period_end),
            itemList=c.sales.InvoiceItemList(item=lines, replaceAll=True),
            customFieldList=c.core.CustomFieldList(customField=custom) if custom else None)

    def _add(self, chunk: list[tuple[int, Any]], drafts: Sequence[Invoice],
             results: dict[int, CreateResult], created: dict[int, str]) -> None:
        """addList one chunk (split in two when NetSuite says it is too many records)."""
        c = self.client
        try:
            answer = c.call("addList", f"creating {len(chunk)} invoices",
                            record=[r for _, r in chunk],
                            preferences=c.messages.Preferences(ignoreReadOnlyFields=True,
                                                               warningAsError=False))
        except BatchTooLarge:
            if len(chunk) == 1:
                raise FatalError("NetSuite refused a single invoice as too large") from None
            half = len(chunk) // 2
            self._add(chunk[:half], drafts, results, created)
            self._add(chunk[half:], drafts, results, created)
            return
        for (i, _), response in zip(chunk, _list(answer, "writeResponse"), strict=True):
            outcome = self._write_outcome(drafts[i], response)
            if isinstance(outcome, str):
                created[i] = outcome
                failpoints.hit("netsuite_commit")  # the crash test stops here, mid-batch
            else:
                results[i] = outcome

    def _write_outcome(self, draft: Invoice, response: Any) -> str | ArSyncError:
        """One record's WriteResponse: the new internal id, or the error for this unit."""
        status, ref = response.status, getattr(response, "baseRef", None)
        new_id = records.ref_id(ref)
        if status.isSuccess and new_id:
            return new_id
        details = list(status.statusDetail or [])
        if new_id and any(d.afterSubmitFailed for d in details):
            self.log.warning("invoice_after_submit_failed", key=draft.key, netsuite_id=new_id,
                             message=_status(status)[1])
            return new_id  # saved; only a script after saving failed
        code, message = _status(status)
        if code in DUPLICATE_CODES:
            return DuplicateExternalIdError(draft.key)
        return RejectedError(f"NetSuite: {message}", code="NETSUITE_REFUSED", remote_code=code,
                             field=_field_of(message))

    def _read_back(self, ids: list[str]) -> dict[str, Invoice]:
        if not ids:
            return {}
        try:
            return self.read_invoices(ids)
        except TransientError as exc:  # created all the same; the cycle reads them again
            self.log.warning("invoice_read_back_failed", count=len(ids), error=str(exc))
            return {}

    # -- looking up ----------------------------------------------------------------------

    def find_invoices(self, external_ids: Sequence[str]) -> dict[str, Invoice]:
        found = {inv.key.lower(): inv for inv in self._by_external_id(external_ids, lines=True)}
        return {e: found[e.lower()] for e in external_ids if e.lower() in found}

    def _taken(self, keys: Sequence[str]) -> dict[str, str]:
        return {str(r.externalId).lower(): str(r.internalId)
                for r in self._invoice_search(keys, lines=False)}

    def _by_external_id(self, keys: Sequence[str], lines: bool) -> list[Invoice]:
        return self._invoice_models(self._invoice_search(keys, lines=lines))

    def _invoice_search(self, keys: Sequence[str], lines: bool) -> list[Any]:
        c, out = self.client, []
        for chunk in chunks(sorted(set(keys)), 1000):
            search = c.common.TransactionSearchBasic(
                type=c.core.SearchEnumMultiSelectField(searchValue=["_invoice"],
                                                       operator="anyOf"),
                externalId=c.core.SearchMultiSelectField(
                    searchValue=[c.core.RecordRef(externalId=k) for k in chunk],
                    operator="anyOf"))
            for page in self._search(search, "finding invoices by external id", lines=lines):
                out += page
        return out

    def read_invoices(self, netsuite_ids: Sequence[str]) -> dict[str, Invoice]:
        ids = sorted({str(i) for i in netsuite_ids if str(i).isascii() and str(i).isdigit()},
                     key=int)
        invoices = self._invoice_models(self._get("invoice", ids, "reading invoices back"))
        return {inv.netsuite_id or "": inv for inv in invoices}

    def _invoice_models(self, recs: list[Any]) -> list[Invoice]:
        customers = self._customer_docs({records.ref_id(r.entity) for r in recs})
        out = []
        for rec in recs:
            try:
                out.append(shapes.invoice_model(records.invoice_doc(rec),
                                                customers[records.ref_id(rec.entity)]))
            except (KeyError, ValueError, TypeError) as exc:
                self.log.error("netsuite_invoice_unreadable", netsuite_id=rec.internalId,
                               error=str(exc))
        return out

    def invoices_for_customers(self, customer_ids: Sequence[str],
                               since: dt.date) -> list[InvoiceSummary]:
        c, out = self.client, []
        ids = sorted({str(i) for i in customer_ids if str(i).isdigit()}, key=int)
        for chunk in chunks(ids, 1000):
            search = c.common.TransactionSearchBasic(
                type=c.core.SearchEnumMultiSelectField(searchValue=["_invoice"],
                                                       operator="anyOf"),
                entity=c.core.SearchMultiSelectField(
                    searchValue=[c.core.RecordRef(internalId=i) for i in chunk],
                    operator="anyOf"),
                tranDate=c.core.SearchDateField(
                    searchValue=dt.datetime(since.year, since.month, since.day),
                    operator="onOrAfter"))
            for page in self._search(search, "listing customers' invoices", lines=False):
                out += [shapes.invoice_summary(records.invoice_doc(r)) for r in page]
        return sorted(out, key=lambda s: int(s.netsuite_id))

    def tax_codes(self) -> dict[str, TaxCode]:
        """The account's sales tax codes (one search; the cycle reads them once)."""
        search = self.client.common.SalesTaxItemSearchBasic()
        codes = [records.tax_code(r) for page in self._search(search, "reading tax codes",
                                                              lines=False) for r in page]
        return {t.code: t for t in codes}

    # -- the playbook's PO (PurchaseOrderSource) ----------------------------------------

    def current_po(self, order_id: str) -> str:
        """The sales order's PO (``otherRefNum``) now: one ``get``; ``""`` when the order has
        none or NetSuite has no such order (as the sandbox answers)."""
        order_id = str(order_id)
        if not (order_id.isascii() and order_id.isdigit()):
            return ""
        c = self.client
        answer = c.call("get", f"reading sales order {order_id}'s PO",
                        baseRef=c.core.RecordRef(internalId=order_id, type="salesOrder"))
        if not answer.status.isSuccess:
            code, message = _status(answer.status)
            if code == MISSING_RECORD:
                return ""
            raise RejectedError(f"NetSuite: {message}", code="NETSUITE_REFUSED",
                                remote_code=code, field="otherRefNum")
        return str(getattr(answer.record, "otherRefNum", None) or "")

    def set_invoice_po(self, netsuite_id: str, po: str) -> Invoice:
        """``update`` of the invoice with its internal id and ``otherRefNum`` only (NetSuite
        leaves every field not sent as it is), then the invoice read back as NetSuite holds
        it. Safe to resend: setting the same PO again changes nothing."""
        c, netsuite_id = self.client, str(netsuite_id)
        answer = c.call("update", f"updating invoice {netsuite_id}'s PO",
                        record=c.sales.Invoice(internalId=netsuite_id, otherRefNum=po),
                        preferences=c.messages.Preferences(warningAsError=False))
        status = answer.status
        if not status.isSuccess:
            code, message = _status(status)
            if not any(d.afterSubmitFailed for d in status.statusDetail or []):
                raise RejectedError(f"NetSuite: {message}", code="NETSUITE_REFUSED",
                                    remote_code=code,
                                    field=_field_of(message) or (
                                        "id" if code in (MISSING_RECORD, "INVALID_KEY_OR_REF")
                                        else "otherRefNum"))
            # saved; only a script after saving failed
            self.log.warning("invoice_after_submit_failed", netsuite_id=netsuite_id,
                             message=message)
        invoice = self.read_invoices([netsuite_id]).get(netsuite_id)
        if invoice is None:
            raise RejectedError(f"NetSuite took the PO on invoice {netsuite_id} but the "
                                "invoice could not be read back", code="NETSUITE_REFUSED",
                                field="id")
        return invoice

    # -- plumbing ------------------------------------------------------------------------

    def _search(self, search: Any, what: str, *, lines: bool) -> Iterator[list[Any]]:
        """Every page of a search: ``searchMoreWithId`` up to ``totalPages`` (an empty page
        is not the end); an expired search id restarts the search, skipping what was seen."""
        c = self.client
        prefs = c.messages.SearchPreferences(bodyFieldsOnly=not lines, returnSearchColumns=False,
                                             pageSize=c.options.page_size)
        seen: set[str] = set()

        def run() -> Any:
            return c.call("search", what, search_preferences=prefs, searchRecord=search)

        result, index, restarts = _checked(run(), what), 1, 0
        while True:
            page = [r for r in _records(result) if str(r.internalId) not in seen]
            seen |= {str(r.internalId) for r in page}
            if page:
                yield page
            if index >= int(result.totalPages or 0):
                return
            index += 1
            more = c.call("searchMoreWithId", what, search_preferences=prefs,
                          searchId=result.searchId, pageIndex=index)
            if not more.status.isSuccess and _status(more.status)[0] == EXPIRED_SEARCH:
                restarts += 1
                if restarts > 3:
                    raise TransientError(f"NetSuite search ids kept expiring while {what}")
                self.log.warning("netsuite_search_restarted", what=what, page=index)
                result, index = _checked(run(), what), 1  # from page 1; seen ones skipped
                continue
            result = _checked(more, what)

    def _get(self, record_type: str, ids: Sequence[str], what: str) -> list[Any]:
        """getList in batches; records NetSuite does not have are left out."""
        c, out = self.client, []
        for chunk in chunks(list(ids), c.options.get_batch_size):
            answer = c.call("getList", what, baseRef=[
                c.core.RecordRef(internalId=i, type=record_type) for i in chunk])
            out += [r.record for r in _list(answer, "readResponse")
                    if r.status.isSuccess and r.record is not None]
        return out

    def _customer_docs(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        missing = sorted((i for i in ids - self._customers.keys() if i.isdigit()), key=int)
        recs = self._get("customer", missing, "reading customers")
        terms = sorted({records.ref_id(r.terms) for r in recs} - self._terms.keys() - {""},
                       key=int)
        for term in self._get("term", terms, "reading payment terms"):
            self._terms[str(term.internalId)] = int(term.daysUntilNetDue or 0)
        for rec in recs:
            self._customers[str(rec.internalId)] = rec
        return {i: records.customer_doc(self._customers[i], self._terms)
                for i in ids if i in self._customers}


def _may_be_due(order: Any, as_of: dt.date) -> bool:
    """A scheduled order may be due only when its ``nextBill`` has come (the rules in
    ``order_units`` decide the rest, for scheduled and other orders alike)."""
    if order.billingSchedule is None:
        return True
    next_bill = records.day(order.nextBill)
    return next_bill is not None and dt.date.fromisoformat(next_bill) <= as_of


def _noon(day: dt.date | None) -> dt.datetime | None:
    """A date as NetSuite's dateTime: noon, so no time-zone reading moves it a day."""
    return None if day is None else dt.datetime(day.year, day.month, day.day, 12)


def _list(answer: Any, item: str) -> list[Any]:
    holder = getattr(answer, item, None)
    return list(holder or [])


def _records(result: Any) -> list[Any]:
    return list(getattr(result.recordList, "record", None) or []) if result.recordList else []


def _status(status: Any) -> tuple[str, str]:
    details = [d for d in (status.statusDetail or []) if d.type != "WARN"] or list(
        status.statusDetail or [])
    if not details:
        return "UNKNOWN", "NetSuite gave no reason"
    return str(details[0].code or "UNKNOWN"), str(details[0].message or "")


def _checked(result: Any, what: str) -> Any:
    if not result.status.isSuccess:
        code, message = _status(result.status)
        raise FatalError(f"NetSuite refused the search while {what}: {code} {message}")
    return result


def _field_of(message: str) -> str:
    lowered = message.lower()
    for field in ("otherRefNum", "taxCode", "tranDate", "entity", "currency", "item"):
        if field.lower() in lowered:
            return field
    return ""
