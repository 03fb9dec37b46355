"""The account behind the fake NetSuite REST API: a sandbox account file seen through SuiteQL.

The fake stores nothing of its own. Reads run the gateway's SuiteQL in SQLite over
NetSuite-shaped TEMP views (``transaction``, ``transactionline``, ``customer``,
``entityaddress``, ``term``, ``currency``, ``item``, ``salestaxitem``,
``billinginstalmentline``…) defined over the sandbox's JSON documents; a transform hands an
invoice to :class:`~ar_sync.netsuite.sandbox.SandboxGateway`, so creation follows the very
rules the sandbox gateway follows (numbers, tax from the account's codes, unique external
ids, refusals with NetSuite codes). The same demo data, the same planted problems, and the
same file the crash test inspects, over REST.

What the views pin (column names NOT FOUND in the reference) is listed in
``ar_sync/netsuite/rest/queries.py``. As in NetSuite: status letters, ``'T'``/``'F'``
booleans, NULL for empty fields (left out of result rows), a main line per transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from ar_sync.errors import DuplicateExternalIdError, RejectedError, TransientError
from ar_sync.invoicing import build_line
from ar_sync.models import Invoice, InvoiceLine
from ar_sync.netsuite import sandbox_records
from ar_sync.netsuite.sandbox import SandboxGateway

CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "DKK", "NOK")
SO_STATUS = ("CASE s.status WHEN 'pendingApproval' THEN 'A' WHEN 'pendingFulfillment' THEN 'B'"
             " WHEN 'cancelled' THEN 'C' WHEN 'partiallyFulfilled' THEN 'D'"
             " WHEN 'pendingBillingPartFulfilled' THEN 'E' WHEN 'pendingBilling' THEN 'F'"
             " WHEN 'fullyBilled' THEN 'G' WHEN 'closed' THEN 'H' END")


def _j(doc: str, path: str, blank_is_null: bool = True) -> str:
    expr = f"json_extract({doc}, '$.{path}')"
    return f"NULLIF({expr}, '')" if blank_is_null else expr


def _ref(table: str, column: str, value: str) -> str:
    return f"(SELECT r.id FROM {table} r WHERE r.{column} = {value})"


def _tax(value: str) -> str:
    return f"(SELECT t.rowid FROM main.tax_codes t WHERE t.code = {value})"


def _view(name: str, columns: list[str], arms: list[tuple[str, dict[str, str]]]) -> str:
    """``CREATE TEMP VIEW`` as a UNION ALL of arms; a column an arm lacks is NULL."""
    selects = ["SELECT " + ", ".join(f"{exprs.get(c, 'NULL')} AS {_quote(c)}" for c in columns)
               + f" FROM {source}" for source, exprs in arms]
    return f"CREATE TEMP VIEW {_quote(name)} AS " + " UNION ALL ".join(selects)


def _quote(name: str) -> str:
    return f'"{name}"' if name == "transaction" else name


TRANSACTION = ["id", "tranid", "type", "status", "entity", "entity_display", "trandate",
               "duedate", "nextbilldate", "currency", "otherrefnum", "memo", "externalid",
               "startdate", "enddate", "createdfrom", "custbody_renewal_of", "billingschedule",
               "foreigntotal", "taxtotal", "discounttotal", "shippingcost", "billingaddress",
               "custbody_contract_start", "custbody_contract_end",
               "custbody_renews_term_ending"]
_HEADER = {"id": "s.id", "tranid": "s.tran_id", "entity": "s.customer",
           "entity_display": _j("s.doc", "entity.name"), "trandate": "s.tran_date",
           "currency": _ref("currency", "symbol", _j("s.doc", "currency")),
           "otherrefnum": _j("s.doc", "otherRefNum"), "memo": _j("s.doc", "memo"),
           "startdate": _j("s.doc", "startDate"), "enddate": _j("s.doc", "endDate")}
_ORDER_HEADER = _HEADER | {
    "type": "'SalesOrd'", "status": SO_STATUS,
    "nextbilldate": "s.next_bill",
    "custbody_renewal_of": _j("s.doc", "custbody_renewal_of.internalId"),
    "billingschedule": "CASE WHEN json_type(s.doc, '$.billingSchedule') = 'object' THEN s.id END"}
_INVOICE_HEADER = _HEADER | {
    "type": "'CustInvc'",
    "status": f"CASE {_j('s.doc', 'status')} WHEN 'paidInFull' THEN 'B' ELSE 'A' END",
    "duedate": _j("s.doc", "dueDate"), "externalid": "s.external_id",
    "createdfrom": "s.sales_order", "foreigntotal": _j("s.doc", "total"),
    "taxtotal": _j("s.doc", "taxTotal"), "discounttotal": _j("s.doc", "discountTotal"),
    "shippingcost": _j("s.doc", "shippingCost"), "billingaddress": "s.id",
    "custbody_contract_start": _j("s.doc", "custbody_contract_start"),
    "custbody_contract_end": _j("s.doc", "custbody_contract_end"),
    "custbody_renews_term_ending": _j("s.doc", "custbody_renews_term_ending")}

LINE = ["transaction", "id", "linesequencenumber", "mainline", "taxline", "item", "memo",
        "quantity", "rate", "foreignamount", "taxcode", "taxrate1", "tax1amt", "orderline",
        "units_display", "quantitybilled", "quantityremaining"]
_MAIN_LINE = {"transaction": "s.id", "id": "0", "linesequencenumber": "0", "mainline": "'T'",
              "taxline": "'F'"}
_ITEM_LINE = {"transaction": "s.id", "id": _j("j.value", "line", False),
              "linesequencenumber": _j("j.value", "line", False), "mainline": "'F'",
              "taxline": "'F'", "item": _ref("item", "itemid", _j("j.value", "item")),
              "memo": _j("j.value", "description"), "quantity": _j("j.value", "quantity"),
              "rate": _j("j.value", "rate"), "foreignamount": _j("j.value", "amount"),
              "taxcode": _tax(_j("j.value", "taxCode")), "units_display": _j("j.value", "units")}
_ORDER_LINE = _ITEM_LINE | {"taxrate1": _j("j.value", "taxRate"),
                            "quantitybilled": _j("j.value", "quantityBilled")}
_INVOICE_LINE = _ITEM_LINE | {"taxrate1": _j("j.value", "taxRate1"),
                              "tax1amt": _j("j.value", "tax1Amt"),
                              "orderline": _j("j.value", "orderLine"),
                              "quantityremaining": _j("j.value", "quantityRemaining")}
_ITEMS = "json_each(s.doc, '$.item') j"
_ADDRESS = ("addressee", "addr1", "addr2", "city", "state", "zip", "country")

VIEWS = [
    "CREATE TEMP TABLE currency (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL UNIQUE)",
    "CREATE TEMP TABLE item (id INTEGER PRIMARY KEY, itemid TEXT NOT NULL UNIQUE)",
    _view("src_transaction", TRANSACTION, [("main.sales_orders s", _ORDER_HEADER),
                                       ("main.invoices s", _INVOICE_HEADER)]),
    _view("src_transactionline", LINE, [
        ("main.sales_orders s", _MAIN_LINE), (f"main.sales_orders s, {_ITEMS}", _ORDER_LINE),
        ("main.invoices s", _MAIN_LINE), (f"main.invoices s, {_ITEMS}", _INVOICE_LINE)]),
    _view("customer", [
        "id", "entityid", "companyname", "isinactive", "email", "terms", "currency", "taxable",
        "resalenumber", "vatregnumber", "custentity_ar_channel", "custentity_peppol_endpoint",
        "custentity_exempt_cert_expires", "defaultbillingaddress"], [("main.customers s", {
            "id": "s.id", "entityid": "s.entity_id", "companyname": _j("s.doc", "companyName"),
            "isinactive": f"CASE WHEN {_j('s.doc', 'isInactive', False)} THEN 'T' ELSE 'F' END",
            "email": _j("s.doc", "email"), "terms": _j("s.doc", "terms.daysUntilNetDue"),
            "currency": _ref("currency", "symbol", _j("s.doc", "currency")),
            "taxable": f"CASE WHEN {_j('s.doc', 'taxable', False)} = 0 THEN 'F' ELSE 'T' END",
            "resalenumber": _j("s.doc", "resaleNumber"),
            "vatregnumber": _j("s.doc", "vatRegNumber"),
            "custentity_ar_channel": _j("s.doc", "custentity_ar_channel"),
            "custentity_peppol_endpoint": _j("s.doc", "custentity_peppol_endpoint"),
            "custentity_exempt_cert_expires": _j("s.doc", "custentity_exempt_cert_expires"),
            "defaultbillingaddress": "s.id"})]),
    """CREATE TEMP VIEW term AS
    SELECT CAST(json_extract(c.doc, '$.terms.daysUntilNetDue') AS INTEGER) AS id,
      MIN(json_extract(c.doc, '$.terms.name')) AS name,
      CAST(json_extract(c.doc, '$.terms.daysUntilNetDue') AS INTEGER) AS daysuntilnetdue
    FROM main.customers c GROUP BY 1""",
    *(_view(name, ["nkey", *_ADDRESS], [(table, {"nkey": "s.id"} | {
        f: _j("s.doc", f"{path}.{f}") for f in _ADDRESS})]) for name, table, path in (
        ("entityaddress", "main.customers s", "defaultAddress"),
        ("transactionbillingaddress", "main.invoices s", "billingAddress"))),
    """CREATE TEMP VIEW salestaxitem AS
    SELECT t.rowid AS id, t.code AS itemid, t.rate AS rate, NULLIF(t.description, '')
      AS description FROM main.tax_codes t""",
    _view("src_billinginstalmentline", [
        "transaction", "instalment", "billdate", "periodstart", "periodend", "milestone",
        "invoice", "scheduletype", "line", "item", "memo", "quantity", "rate", "amount",
        "taxcode", "taxrate", "units_display"], [(
            "main.sales_orders s, json_each(s.doc, '$.billingSchedule.instalments') i, "
            "json_each(i.value, '$.item') l", {
                "transaction": "s.id", "instalment": "CAST(i.key AS INTEGER) + 1",
                "billdate": _j("i.value", "date"), "periodstart": _j("i.value", "periodStart"),
                "periodend": _j("i.value", "periodEnd"),
                "milestone": _j("i.value", "milestone"), "invoice": _j("i.value", "invoice"),
                "scheduletype": _j("s.doc", "billingSchedule.scheduleType"),
                "line": _j("l.value", "line", False),
                "item": _ref("item", "itemid", _j("l.value", "item")),
                "memo": _j("l.value", "description"), "quantity": _j("l.value", "quantity"),
                "rate": _j("l.value", "rate"), "amount": _j("l.value", "amount"),
                "taxcode": _tax(_j("l.value", "taxCode")), "taxrate": _j("l.value", "taxRate"),
                "units_display": _j("l.value", "units")})]),
]
# The compound views, kept in TEMP tables of the same name without the prefix: SQLite would
# otherwise materialize every line of every document for each join (the fake must not be
# what a benchmark measures). (table, key column, indexes)
MATERIALIZED = (
    ("transaction", "id", ("id", "type, status, nextbilldate", "entity", "createdfrom")),
    ("transactionline", "transaction", ('"transaction", linesequencenumber',)),
    ("billinginstalmentline", "transaction", ('"transaction", instalment, line',)),
)
_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
                     sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_DROP_TABLE,
                     sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH,
                     sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_INDEX,
                     sqlite3.SQLITE_TRANSACTION})
_ITEM_CODES = """
SELECT json_extract(j.value, '$.item') FROM main.sales_orders s, json_each(s.doc, '$.item') j
UNION SELECT json_extract(l.value, '$.item') FROM main.sales_orders s,
  json_each(s.doc, '$.billingSchedule.instalments') i, json_each(i.value, '$.item') l
UNION SELECT json_extract(j.value, '$.item') FROM main.invoices s, json_each(s.doc, '$.item') j
"""
TRANSFORM_FIELDS = frozenset({"externalId", "tranDate", "otherRefNum", "memo", "startDate",
                              "endDate", "item"})
LINE_FIELDS = frozenset({"orderLine", "quantity", "rate", "amount"})
PATCH_FIELDS = frozenset({"otherRefNum"})  # what PATCH record/v1/invoice/{id} can update
_INTERNAL_ID = re.compile(r"[0-9]{1,18}")


class Refusal(Exception):
    """A NetSuite error answer: HTTP status, o:errorCode, detail, o:errorPath."""

    def __init__(self, status: int, code: str, detail: str, path: str = "") -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.path = status, code, detail, path


def translate(query: str) -> str:
    """SuiteQL to SQLite: one SELECT, no comments; ``transaction`` quoted (a SQLite keyword)."""
    parts = re.split(r"('(?:[^']|'')*')", query)
    if len(parts) % 2 == 0 or parts[-1].count("'"):
        raise Refusal(400, "INVALID_PARAMETER", "Invalid search query: unterminated string.")
    code = parts[::2]
    joined = " ".join(code)
    if ";" in joined or "--" in joined or "/*" in joined:
        raise Refusal(400, "INVALID_PARAMETER", "Invalid search query: only one statement, "
                      "without comments, is allowed.")
    if not re.match(r"\s*(SELECT|WITH)\b", query, re.I):
        raise Refusal(400, "INVALID_PARAMETER", "Invalid search query: not a SELECT.")
    parts[::2] = [re.sub(r"\btransaction\b", '"transaction"', _display(p), flags=re.I)
                  for p in code]
    return "".join(parts)


def _display(code: str) -> str:
    """``BUILTIN.DF(t.entity)`` (a reference's display text) is the view's ``entity_display``."""
    return re.sub(r"BUILTIN\.DF\(\s*(\w+)\.(\w+)\s*\)", r"\1.\2_display", code, flags=re.I)


def _to_date(value: str, fmt: str) -> str:
    if fmt != "YYYY-MM-DD":
        raise ValueError(f"unsupported date format {fmt}")
    return dt.date.fromisoformat(value).isoformat()


def _to_char(value: Any, fmt: str) -> Any:
    return value  # dates are ISO text in the views; TO_CHAR(d, 'YYYY-MM-DD') is the identity


class FakeAccount:
    """Reads and writes of one sandbox account file, as the REST API offers them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.sandbox = SandboxGateway.open(self.path)  # writes: transforms and admin edits
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.create_function("TO_DATE", 2, _to_date, deterministic=True)
        self._db.create_function("TO_CHAR", 2, _to_char, deterministic=True)
        for statement in VIEWS:
            self._db.execute(statement)
        self._db.executemany("INSERT INTO currency (symbol) VALUES (?)",
                             [(c,) for c in CURRENCIES])
        codes = sorted(c for (c,) in self._db.execute(_ITEM_CODES) if c)
        self._db.executemany("INSERT INTO item (itemid) VALUES (?)", [(c,) for c in codes])
        for table, _, indexes in MATERIALIZED:
            self._db.execute(f'CREATE TEMP TABLE "{table}" AS SELECT * FROM src_{table} WHERE 0')
            for n, columns in enumerate(indexes):
                self._db.execute(f'CREATE INDEX temp.{table}_{n} ON "{table}" ({columns})')
        self._lock = threading.Lock()
        self._refresh()
        self._seen = self._version()  # the data_version the materialized tables reflect

    def close(self) -> None:
        self._db.close()
        self.sandbox.close()

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _refresh(self, ids: list[int] | None = None) -> None:
        """Bring the materialized tables up to date for these documents, or all of them.

        ``PRAGMA data_version`` changes whenever another connection commits: when it moved
        since the last refresh for a reason the fake did not account for (a test editing an
        order, another process), everything is rebuilt; after its own transform, only the
        order and the new invoice are. Callers hold the lock."""
        self._db.execute("BEGIN")
        for table, key, _ in MATERIALIZED:
            where = "" if ids is None else f' WHERE "{key}" IN ({",".join(map(str, ids))})'
            self._db.execute(f'DELETE FROM temp."{table}"{where}')
            self._db.execute(f'INSERT INTO temp."{table}" SELECT * FROM src_{table}{where}')
        self._db.execute("COMMIT")

    def suiteql(self, query: str) -> list[dict[str, Any]]:
        sql = translate(query)
        with self._lock:
            if self._version() != self._seen:
                self._refresh()
                self._seen = self._version()
            self._db.set_authorizer(_read_only)
            try:
                cursor = self._db.execute(sql)
                names = [d[0].lower() for d in cursor.description]
                rows = cursor.fetchall()
            except sqlite3.Error as exc:
                raise Refusal(400, "INVALID_PARAMETER",
                              f"Invalid search query. Search error occurred: {exc}") from None
            finally:
                self._db.set_authorizer(None)
        return [{n: v for n, v in zip(names, row, strict=True) if v is not None}
                for row in rows]

    def transform(self, order_id: str, body: dict[str, Any]) -> str:
        """``salesOrder/{id}/!transform/invoice``: the new invoice's internal id."""
        try:
            order = self.sandbox.get_order(order_id)
        except KeyError:
            raise Refusal(404, "NONEXISTENT_ID", f"The record instance does not exist. Provide "
                          f"a valid record instance ID: salesOrder {order_id}.") from None
        draft = self._draft(order, body)
        with self._lock:  # a write and its refresh, together
            before = self._version()
            try:
                [result] = self.sandbox.create_invoices([draft])
            except TransientError as exc:
                raise Refusal(503, "UNEXPECTED_ERROR", str(exc)) from None
            if isinstance(result, Invoice):
                self._refresh(None if before != self._seen else
                              [int(order["internalId"]), int(str(result.netsuite_id))])
                self._seen = self._version()
        if isinstance(result, Invoice):
            return str(result.netsuite_id)
        if isinstance(result, DuplicateExternalIdError):
            raise Refusal(400, "DUP_RCRD", "This record already exists: an invoice with "
                          f"external ID {draft.key} exists.", "externalId")
        assert isinstance(result, RejectedError), result
        raise Refusal(400, result.remote_code or "USER_ERROR", str(result), result.field)

    def set_invoice_po(self, invoice_id: str, po: str) -> None:
        """``PATCH record/v1/invoice/{id}`` with ``otherRefNum``, through the sandbox."""
        self.invoice_exists(invoice_id)
        with self._lock:  # a write and its refresh, together
            before = self._version()
            try:
                self.sandbox.set_invoice_po(invoice_id, po)
            except RejectedError:
                raise _no_invoice(invoice_id) from None
            except TransientError as exc:
                raise Refusal(503, "UNEXPECTED_ERROR", str(exc)) from None
            self._refresh(None if before != self._seen else [int(invoice_id)])
            self._seen = self._version()

    def invoice_exists(self, invoice_id: str) -> None:
        """Refuse, as NetSuite does, a record path whose invoice does not exist."""
        if not _INTERNAL_ID.fullmatch(invoice_id) or not self.sandbox.read_invoices(
                [invoice_id]):
            raise _no_invoice(invoice_id)

    def _draft(self, order: dict[str, Any], body: dict[str, Any]) -> Invoice:
        """The invoice the transform makes: the order's lines (or the instalment's, by the
        key's date), with the body's quantities, rates and amounts."""
        key = str(body.get("externalId") or "")
        parsed = sandbox_records.parse_unit_key(key)
        schedule = order.get("billingSchedule")
        source = order["item"]
        if schedule and parsed:
            found = [i for i in schedule["instalments"] if i["date"] == parsed[1].isoformat()]
            source = found[0]["item"] if found else []
        by_line = {int(line["line"]): line for line in source}
        lines = [self._line(n, item, by_line, whole_order=not schedule)
                 for n, item in enumerate(body.get("item", {}).get("items", []))]
        tran_date = dt.date.fromisoformat(str(body.get("tranDate") or dt.date.today()))
        customer = sandbox_records.customer_model(
            self.sandbox.get_customer(order["entity"]["internalId"]))
        return Invoice(
            key=key, order_id=order["internalId"], order_number=order["tranId"],
            customer=customer, tran_date=tran_date, due_date=tran_date,
            currency=order["currency"],
            po_number=str(body.get("otherRefNum", order.get("otherRefNum") or "")),
            lines=tuple(lines), subtotal=Decimal(0), tax_total=Decimal(0), total=Decimal(0),
            period_start=_date(body.get("startDate")), period_end=_date(body.get("endDate")),
            memo=str(body.get("memo", order.get("memo") or "")))

    @staticmethod
    def _line(n: int, item: dict[str, Any], by_line: dict[int, Any], *,
              whole_order: bool) -> InvoiceLine:
        """The order line ``orderLine`` names, as the sandbox bills it, with the body's
        quantity, rate and amount."""
        source = by_line.get(int(item.get("orderLine", -1)))
        if source is None:
            raise Refusal(400, "INVALID_CONTENT", f"Invalid orderLine {item.get('orderLine')}: "
                          "no such line on the sales order.", f"item.items[{n}].orderLine")
        line = build_line(sandbox_records.unit_line(source, whole_order=whole_order), "USD")
        quantity = Decimal(str(item.get("quantity", line.quantity)))
        rate = Decimal(str(item.get("rate", line.rate)))
        return dataclasses.replace(line, quantity=quantity, rate=rate,
                                   amount=Decimal(str(item.get("amount", quantity * rate))))


def _no_invoice(invoice_id: str) -> Refusal:
    return Refusal(404, "NONEXISTENT_ID", "The record instance does not exist. Provide a valid "
                   f"record instance ID: invoice {invoice_id}.")


def _date(value: object) -> dt.date | None:
    return dt.date.fromisoformat(str(value)) if value else None


def _read_only(action: int, *args: object) -> int:
    """The authorizer while a query runs: reading only."""
    return sqlite3.SQLITE_DENY if action in _WRITES else sqlite3.SQLITE_OK
