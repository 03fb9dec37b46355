"""The sandbox: a simulated NetSuite account in a local SQLite file.

Why it exists: a person who has never seen ar-sync can watch it bill a realistic account
with no network, and tests and benchmarks get an account that behaves like NetSuite where
exactly-once billing depends on it:

* records are NetSuite-shaped JSON documents (NetSuite's field names, Decimal values as
  strings); the columns queries need (id, status, customer, externalId, tranDate, nextBill)
  sit indexed beside them, so no query scans JSON;
* an invoice's ``externalId`` is unique, case-insensitively as in NetSuite: a second create
  under the same key returns :class:`DuplicateExternalIdError` and changes nothing;
* the invoice insert and "this order / instalment is billed" are one SQLite transaction,
  so a process killed mid-call leaves the whole invoice or nothing;
* creation computes what NetSuite computes (numbers, tax from the account's tax codes,
  totals, due date), so the cycle can check NetSuite's version against its draft;
* what NetSuite would refuse comes back as a per-record :class:`RejectedError` carrying a
  NetSuite error code.

The file is owner-only (0600) and in WAL mode, so the daemon and a person's
``ar-sync sandbox`` edits can use it at once. ``synchronous=NORMAL``: a commit survives a
killed process; a power cut may lose the last commits (a sandbox is not a book of record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from ar_sync import failpoints
from ar_sync.errors import (
    AmbiguousError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
    TransientError,
)
from ar_sync.models import (
    BillableUnit,
    Invoice,
    InvoiceLine,
    TaxCode,
    UnreadableRecord,
    unreadable_key,
)
from ar_sync.netsuite import sandbox_records as records
from ar_sync.netsuite.gateway import Closing, CreateResult, InvoiceSummary, rebatch
from ar_sync.netsuite.sandbox_edit import CUSTOMER_OPTIONAL, ORDER_OPTIONAL, set_field
from ar_sync.netsuite.sandbox_records import Doc

_IN_CHUNK = 500  # ids per ``IN (...)``: well under SQLite's variable limit
_UPDATE_ORDER = ("UPDATE sales_orders SET tran_id = ?, customer = ?, status = ?, tran_date = ?,"
                 " next_bill = ?, doc = ? WHERE id = ?")
# Keyset paging walks the primary key (NOT INDEXED keeps the rowid, drops the status index,
# which would re-sort every match on every page): each page costs the rows it passes.
_PAGE = ("SELECT id, customer, doc FROM sales_orders NOT INDEXED WHERE id > ?"
         " AND status IN (?, ?) AND next_bill <= ? ORDER BY id LIMIT ?")


@contextlib.contextmanager
def _classified(action: str, *, ambiguous: bool = False) -> Iterator[None]:
    """SQLite failures as the error tree: busy is transient, anything else is fatal."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise FatalError(f"sandbox account unusable while {action}: {exc}") from exc
        kind = AmbiguousError if ambiguous else TransientError
        raise kind(f"sandbox account busy while {action}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise FatalError(f"sandbox account file is damaged ({action}): {exc}") from exc


def _check_format(path: Path) -> None:
    """Refuse a file that is not a sandbox account, before changing anything in it."""
    try:
        with _classified(f"opening {path}"), contextlib.closing(
                sqlite3.connect(path, timeout=10.0)) as probe:
            row = probe.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except FatalError:
        row = None
    if row and row[0].startswith("ar-sync-sandbox/") and row[0] != records.FORMAT:
        raise FatalError(f"{path} is a sandbox account made by another version of ar-sync "
                         f"({row[0]}, this one reads {records.FORMAT}); move it aside and a "
                         "new demo account is seeded in its place")
    if not row or row[0] != records.FORMAT:
        raise FatalError(f"{path} is not a sandbox account file ({records.FORMAT})")


class SandboxGateway(Closing):
    """The :class:`~ar_sync.netsuite.gateway.Gateway` over one sandbox account file."""

    name = "sandbox"

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._lock = threading.RLock()  # one connection, shared by the daemon's threads
        self.path = path

    @classmethod
    def open(cls, path: Path) -> SandboxGateway:
        """Open the account in ``path``, seeding the demo account there on first use."""
        path = Path(path)
        if not path.exists():
            from ar_sync.netsuite.seed import build_demo_account

            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process seeded it first
                build_demo_account(path, anchor=dt.date.today())
        _check_format(path)
        return cls(records.connect(path), path)

    def close(self) -> None:
        self._db.close()

    # -- reading what is due -------------------------------------------------------------

    def iter_billable(self, as_of: dt.date,
                      batch_size: int) -> Iterator[list[BillableUnit | UnreadableRecord]]:
        """Units due by ``as_of``, by order id then date, one order page per round trip."""
        yield from rebatch(self._pages(as_of, batch_size), batch_size)

    def _pages(self, as_of: dt.date,
               size: int) -> Iterator[list[BillableUnit | UnreadableRecord]]:
        """The due orders' units, a page of ``size`` orders at a time (keyset by id)."""
        after, more = 0, size > 0
        while more:
            with self._lock, _classified("listing billable orders"):
                rows = self._db.execute(_PAGE, (after, *records.BILLABLE_STATUSES,
                                                as_of.isoformat(), size)).fetchall()
                self._log("iter_billable", len(rows))
                units = self._units(rows, as_of)
            more = len(rows) == size
            after = rows[-1][0] if rows else after
            yield units

    def fetch_units(self, keys: Sequence[str],
                    as_of: dt.date) -> dict[str, BillableUnit | UnreadableRecord]:
        """These units as NetSuite has them now; an ``unreadable`` key brings its whole order."""
        wanted = set(keys)
        whole = {k.split(":")[1] for k in wanted if k.endswith(":unreadable")}
        ids = {int(p[0]) for p in map(records.parse_unit_key, wanted) if p}
        ids |= {int(i) for i in whole if i.isdigit()}
        with self._lock, _classified("re-reading units"):
            self._log("fetch_units", len(wanted))
            rows = self._select_in("SELECT id, customer, doc FROM sales_orders WHERE id IN", ids)
            return {u.key: u for u in self._units(rows, as_of)
                    if u.key in wanted or u.order_id in whole}

    def _units(self, rows: list[Any], as_of: dt.date) -> list[BillableUnit | UnreadableRecord]:
        """Units of these order rows; an order whose data cannot be read becomes an
        ``UnreadableRecord`` naming the field, so one bad record never stops the listing."""
        customers = self._customer_docs({row[1] for row in rows})
        orders = [json.loads(doc) for _, _, doc in rows]
        ends = self._renewed_term_ends(orders)
        out: list[BillableUnit | UnreadableRecord] = []
        for (_, cid, _), order in zip(rows, orders, strict=True):
            try:
                customer = records.customer_model(customers[cid])
                renews = records.parse_date(ends.get(records.renewed_order_id(order) or ""))
                out.extend(records.order_units(order, customer, as_of, renews))
            except (KeyError, ValueError, TypeError) as exc:
                out.append(UnreadableRecord(
                    key=unreadable_key(str(order.get("internalId"))),
                    order_id=str(order.get("internalId")), order_number=order.get("tranId", "?"),
                    customer_id=str(cid), field=_field_of(exc), problem=_problem(exc)))
        return out

    # -- invoices ------------------------------------------------------------------------

    def create_invoices(self, drafts: Sequence[Invoice]) -> list[CreateResult]:
        """One transaction per draft; refusals are returned in place, in order."""
        with _classified("creating invoices", ambiguous=True):
            with self._lock:
                self._log("create_invoices", len(drafts))
            results = []
            for draft in drafts:
                results.append(self._create_one(draft))
                failpoints.hit("netsuite_commit")  # the crash test stops here mid-batch
            return results

    def _create_one(self, draft: Invoice) -> CreateResult:
        try:
            with self._lock, records.transaction(self._db):
                return self._insert_invoice(draft)
        except RejectedError as exc:
            return exc
        except sqlite3.IntegrityError as exc:  # only if the UNIQUE index saw it first
            if "external_id" not in str(exc):
                raise
            return DuplicateExternalIdError(draft.key)

    def _insert_invoice(self, draft: Invoice) -> Invoice:
        db = self._db
        if db.execute("SELECT 1 FROM invoices WHERE external_id = ?", (draft.key,)).fetchone():
            raise DuplicateExternalIdError(draft.key)
        order, bill_date = self._order_to_bill(draft)
        customer = self._customer_docs({int(order["entity"]["internalId"])}).popitem()[1]
        if customer.get("isInactive"):
            raise records.refused(
                f"Customer {customer['entityId']} {customer['companyName']} is inactive.",
                "CUSTOMER_INACTIVE", "USER_ERROR", "entity")
        lines = self._lines_with_account_tax(draft)
        invoice_id, number = self._next("next_transaction_id"), self._next("next_invoice_number")
        records.mark_billed(order, bill_date, invoice_id)
        renewed = self._renewed_term_ends([order]).get(records.renewed_order_id(order) or "")
        doc = records.invoice_document(
            internal_id=invoice_id, number=number, external_id=draft.key, order=order,
            customer=customer, tran_date=draft.tran_date, lines=lines,
            po_number=draft.po_number, memo=draft.memo,
            period=(draft.period_start, draft.period_end),
            renews_term_ending=records.parse_date(renewed))
        db.execute(records.INSERT_INVOICE, records.invoice_row(doc))
        self._save_order(order)
        return records.invoice_model(doc, customer)

    def _order_to_bill(self, draft: Invoice) -> tuple[Doc, dt.date]:
        parsed = records.parse_unit_key(draft.key)
        if parsed is None or parsed[0] != draft.order_id:
            raise records.refused(
                f"External id {draft.key!r} does not name a billing date of sales order "
                f"{draft.order_id}.", "INVALID_DATA", "USER_ERROR", "externalId")
        row = self._db.execute("SELECT doc FROM sales_orders WHERE id = ?",
                               (int(parsed[0]),)).fetchone()
        if row is None:
            raise records.refused(f"Invalid createdfrom reference key {draft.order_id}.",
                                  "INVALID_REFERENCE", "INVALID_KEY_OR_REF", "createdFrom")
        order: Doc = json.loads(row[0])
        if draft.currency != order["currency"]:
            raise records.refused(
                f"Currency {draft.currency} does not match the currency {order['currency']} "
                f"of sales order {order['tranId']}.", "INVALID_DATA", "USER_ERROR", "currency")
        return order, parsed[1]

    def _lines_with_account_tax(self, draft: Invoice) -> list[InvoiceLine]:
        """The draft's lines as sent, with the tax rate the account has for each tax code."""
        if not draft.lines:
            raise records.refused("You must enter at least one line item for this transaction.",
                                  "INVALID_DATA", "USER_ERROR", "item")
        rates = dict(self._db.execute("SELECT code, rate FROM tax_codes").fetchall())
        lines = []
        for n, line in enumerate(draft.lines, 1):
            if line.tax_code and line.tax_code not in rates:
                raise records.refused(
                    f"Invalid taxcode reference key {line.tax_code}.", "INVALID_REFERENCE",
                    "INVALID_KEY_OR_REF", f"item[{n}].taxCode")
            rate = Decimal(rates[line.tax_code]) if line.tax_code else Decimal(0)
            lines.append(dataclasses.replace(line, tax_rate=rate))
        return lines

    def tax_codes(self) -> dict[str, TaxCode]:
        """The account's tax codes, their rates and kinds (one round trip)."""
        with self._lock, _classified("reading tax codes"):
            self._log("tax_codes", 1)
            rows = self._db.execute(
                "SELECT code, rate, kind, description FROM tax_codes ORDER BY code").fetchall()
        return {row[0]: records.tax_code_model(row) for row in rows}

    def find_invoices(self, external_ids: Sequence[str]) -> dict[str, Invoice]:
        with self._lock, _classified("finding invoices"):
            self._log("find_invoices", len(external_ids))
            rows = self._select_in("SELECT doc FROM invoices WHERE external_id IN",
                                   set(external_ids))
            found = {i.key.lower(): i for i in self._invoice_models(rows)}
        return {e: found[e.lower()] for e in external_ids if e.lower() in found}

    def read_invoices(self, netsuite_ids: Sequence[str]) -> dict[str, Invoice]:
        ids = {int(i) for i in netsuite_ids if str(i).isdigit()}
        with self._lock, _classified("reading invoices"):
            self._log("read_invoices", len(netsuite_ids))
            rows = self._select_in("SELECT doc FROM invoices WHERE id IN", ids)
            return {i.netsuite_id or "": i for i in self._invoice_models(rows)}

    def invoices_for_customers(self, customer_ids: Sequence[str],
                               since: dt.date) -> list[InvoiceSummary]:
        ids = {int(c) for c in customer_ids if str(c).isdigit()}
        with self._lock, _classified("listing invoices of customers"):
            self._log("invoices_for_customers", len(customer_ids))
            rows = self._select_in("SELECT id, doc FROM invoices WHERE tran_date >= ? AND "
                                   "customer IN", ids, since.isoformat())
        rows.sort(key=lambda r: r[0])
        # summarise row by row: a customer's whole history is never parsed at once
        return [records.invoice_summary(json.loads(doc)) for _, doc in rows]

    def _invoice_models(self, rows: list[Any]) -> list[Invoice]:
        docs = [json.loads(r[0]) for r in rows]
        customers = self._customer_docs({int(d["entity"]["internalId"]) for d in docs})
        return [records.invoice_model(d, customers[int(d["entity"]["internalId"])])
                for d in docs]

    # -- purchase orders (the remediation playbook) -------------------------------------

    def current_po(self, order_id: str) -> str:
        """The sales order's PO (``otherRefNum``) as it is now."""
        with self._lock, _classified("reading a sales order's PO"):
            self._log("current_po", 1)
            row = self._db.execute("SELECT doc FROM sales_orders WHERE id = ?",
                                   (int(order_id) if str(order_id).isdigit() else -1,)).fetchone()
        return str(json.loads(row[0]).get("otherRefNum") or "") if row else ""

    def set_invoice_po(self, netsuite_id: str, po: str) -> Invoice:
        """Set ``otherRefNum`` on an invoice (PATCH /record/v1/invoice/{id} in REST)."""
        with self._lock, _classified("updating an invoice's PO"), \
                records.transaction(self._db):
            self._log("set_invoice_po", 1)
            row = self._db.execute("SELECT doc FROM invoices WHERE id = ?",
                                   (int(netsuite_id),)).fetchone()
            if row is None:
                raise RejectedError(f"no invoice {netsuite_id}", code="INVALID_KEY_OR_REF",
                                    field="id")
            doc = json.loads(row[0])
            doc["otherRefNum"] = po
            self._db.execute("UPDATE invoices SET doc = ? WHERE id = ?",
                             (records.dump(doc), int(netsuite_id)))
            return self._invoice_models([(records.dump(doc),)])[0]

    # -- plumbing ------------------------------------------------------------------------

    def _select_in(self, sql: str, values: Collection[Any], *params: Any) -> list[Any]:
        """``sql`` ending in ``IN`` run over ``values`` in chunks; one round trip for NetSuite."""
        ordered: list[Any] = sorted(values)
        rows: list[Any] = []
        for start in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[start:start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows += self._db.execute(f"{sql} ({marks})", (*params, *chunk)).fetchall()
        return rows

    def _renewed_term_ends(self, orders: Sequence[Doc]) -> dict[str, str | None]:
        """The ``endDate`` (as stored) of each order these renew, by internal id: a join in
        SuiteQL. Parsed by the caller, per order, so a bad date makes one order unreadable."""
        ids = {int(i) for i in map(records.renewed_order_id, orders) if i}
        if not ids:
            return {}
        rows = self._select_in("SELECT id, doc FROM sales_orders WHERE id IN", ids)
        return {str(oid): json.loads(doc).get("endDate") for oid, doc in rows}

    def _customer_docs(self, ids: Collection[int]) -> dict[int, Doc]:
        rows = self._select_in("SELECT id, doc FROM customers WHERE id IN", ids)
        return {cid: json.loads(doc) for cid, doc in rows}

    def _save_order(self, order: Doc) -> None:
        oid, *columns = records.order_row(order)
        self._db.execute(_UPDATE_ORDER, (*columns, oid))

    def _next(self, counter: str) -> int:
        """Take the next number of an account sequence (inside the caller's transaction)."""
        value = int(self._db.execute("SELECT value FROM meta WHERE key = ?", (counter,))
                    .fetchone()[0])
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value + 1), counter))
        return value

    def _log(self, method: str, count: int) -> None:
        """One row per round trip NetSuite would see, for tests and benchmarks to count."""
        self._db.execute("INSERT INTO requests (at, method, records) VALUES (?, ?, ?)",
                         (dt.datetime.now(dt.UTC).isoformat(), method, count))

    def request_counts(self) -> dict[str, int]:
        """How many round trips each gateway method made against this account so far."""
        with self._lock:
            rows = self._db.execute("SELECT method, COUNT(*) FROM requests GROUP BY method")
            return dict(rows.fetchall())

    # -- admin: a person fixing data "in NetSuite" (``ar-sync sandbox``) -------------------

    def get_order(self, ref: str) -> Doc:
        """A sales order as NetSuite holds it, by ``tranId`` (``SO-10042``) or internal id."""
        with self._lock:
            return self._record("sales_orders", "tran_id", "sales order", ref)

    def set_order_field(self, ref: str, field: str, value: object) -> Doc:
        """Change one field, e.g. ``otherRefNum``, ``memo`` or ``item[2].amount``."""
        with self._lock, records.transaction(self._db):
            order = self._record("sales_orders", "tran_id", "sales order", ref)
            set_field(order, field, value, f"sales order {order['tranId']}", ORDER_OPTIONAL)
            self._save_order(order)
        return order

    def get_customer(self, ref: str) -> Doc:
        """A customer record, by ``entityId`` (``CUST-1004``) or internal id."""
        with self._lock:
            return self._record("customers", "entity_id", "customer", ref)

    def set_customer_field(self, ref: str, field: str, value: object) -> Doc:
        """Change one field, e.g. ``defaultAddress.zip``, ``isInactive`` or ``email``."""
        with self._lock, records.transaction(self._db):
            customer = self._record("customers", "entity_id", "customer", ref)
            set_field(customer, field, value, f"customer {customer['entityId']}",
                      CUSTOMER_OPTIONAL)
            self._db.execute("UPDATE customers SET doc = ? WHERE id = ?",
                             (records.dump(customer), int(customer["internalId"])))
        return customer

    def _record(self, table: str, number: str, what: str, ref: str) -> Doc:
        ref = str(ref).strip()
        row = self._db.execute(f"SELECT doc FROM {table} WHERE {number} = ? OR id = ?",
                               (ref, int(ref) if ref.isdigit() else -1)).fetchone()
        if row is None:
            raise KeyError(f"no {what} {ref!r} in the sandbox account {self.path}")
        return dict(json.loads(row[0]))


def _field_of(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else "?"
    text = str(exc)
    return text.split(":", 1)[0] if ":" in text else "?"


def _problem(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"field {exc.args[0]!r} is missing" if exc.args else "a field is missing"
    return str(exc)
