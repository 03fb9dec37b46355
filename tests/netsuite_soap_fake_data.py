"""The account behind the fake SuiteTalk SOAP port: a sandbox account file as SOAP records.

The fake stores nothing of its own. Reads turn the sandbox's NetSuite-shaped documents into
zeep objects of NetSuite's own WSDL types (``SalesOrder``, ``Customer``, ``Invoice``,
``Term``, ``SalesTaxItem``), in the shape :mod:`ar_sync.netsuite.soap.records` reads (the
pinned custom fields included); ``addList`` hands each invoice to
:class:`~ar_sync.netsuite.sandbox.SandboxGateway`, so creation follows the very rules the
sandbox follows (numbers, tax from the account's codes, unique external ids, refusals with
NetSuite codes). The same demo data and planted problems, over SOAP.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
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
from ar_sync.netsuite.soap.client import namespaces
from ar_sync.netsuite.soap.records import COUNTRIES, INSTALMENTS_FIELD

PACIFIC = dt.timezone(dt.timedelta(hours=-8))  # NetSuite answers in the account's zone
ORDER_STATUS = {v: k for k, v in {
    "_pendingApproval": "pendingApproval", "_pendingFulfillment": "pendingFulfillment",
    "_cancelled": "cancelled", "_partiallyFulfilled": "partiallyFulfilled",
    "_pendingBillingPartFulfilled": "pendingBillingPartFulfilled",
    "_pendingBilling": "pendingBilling", "_fullyBilled": "fullyBilled",
    "_closed": "closed"}.items()}
SEARCH_STATUS = {"_salesOrderPendingBilling": "pendingBilling",
                 "_salesOrderPendingBillingPartiallyFulfilled": "pendingBillingPartFulfilled"}


class Refused(Exception):
    """A per-record refusal: NetSuite's status code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def when(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    d = dt.date.fromisoformat(value)
    return dt.datetime(d.year, d.month, d.day, tzinfo=PACIFIC)


def _f(value: Any) -> float | None:
    return None if value is None or value == "" else float(Decimal(str(value)))


class SoapAccount:
    """One sandbox account file, read and written as NetSuite's SOAP records."""

    def __init__(self, path: Path, client: Any, version: str) -> None:
        self.path = Path(path)
        self.sandbox = SandboxGateway.open(self.path)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.lock = threading.Lock()
        ns = namespaces(version)
        self.core, self.sales = client.type_factory(ns["core"]), client.type_factory(ns["sales"])
        self.rel = client.type_factory(ns["relationships"])
        self.acct = client.type_factory(ns["accounting"])
        self.common = client.type_factory(ns["common"])
        self._ids: dict[str, int] = {}

    def close(self) -> None:
        self.db.close()
        self.sandbox.close()

    def _id(self, kind: str, name: str) -> str:
        return str(self._ids.setdefault(f"{kind}:{name}", len(self._ids) + 1))

    def _ref(self, kind: str, name: str | None) -> Any:
        return self.core.RecordRef(internalId=self._id(kind, name), name=name) if name else None

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    # -- queries (ids only; records are built a page at a time) ---------------------------

    def order_ids(self, statuses: list[str]) -> list[str]:
        wanted = [SEARCH_STATUS[s] for s in statuses if s in SEARCH_STATUS]
        marks = ",".join("?" * len(wanted))
        return [str(i) for (i,) in self._rows(
            f"SELECT id FROM sales_orders WHERE status IN ({marks}) ORDER BY id", tuple(wanted))]

    def invoice_ids(self, external_ids: list[str] | None, customers: list[str] | None,
                    since: str | None) -> list[str]:
        sql, args = "SELECT id FROM invoices WHERE 1=1", []
        if external_ids is not None:
            sql += f" AND external_id IN ({','.join('?' * len(external_ids))})"
            args += external_ids
        if customers is not None:
            sql += f" AND customer IN ({','.join('?' * len(customers))})"
            args += [int(c) for c in customers if c.isdigit()]
        if since:
            sql += " AND tran_date >= ?"
            args.append(since)
        return [str(i) for (i,) in self._rows(sql + " ORDER BY id", tuple(args))]

    def tax_rows(self) -> list[Any]:
        return self._rows("SELECT code, rate, kind, description FROM tax_codes ORDER BY code")

    def doc(self, table: str, internal_id: str) -> dict[str, Any] | None:
        if not internal_id.isdigit():
            return None
        row = self._rows(f"SELECT doc FROM {table} WHERE id = ?", (int(internal_id),))
        return json.loads(row[0][0]) if row else None

    # -- documents to records --------------------------------------------------------------

    def record(self, kind: str, internal_id: str, lines: bool = True) -> Any:
        table = {"salesOrder": "sales_orders", "invoice": "invoices",
                 "customer": "customers"}.get(kind)
        if kind == "term":
            days = int(internal_id)
            return self.acct.Term(internalId=internal_id, name=f"Net {days}",
                                  daysUntilNetDue=days)
        doc = self.doc(table, internal_id) if table else None
        if doc is None:
            return None
        build = {"salesOrder": self.order, "invoice": self.invoice,
                 "customer": self.customer}[kind]
        return build(doc, lines)

    def _custom(self, fields: list[Any]) -> Any:
        fields = [f for f in fields if f is not None]
        return self.core.CustomFieldList(customField=fields) if fields else None

    def _text(self, script_id: str, value: str | None) -> Any:
        return self.core.StringCustomFieldRef(scriptId=script_id, value=value) if value else None

    def _date(self, script_id: str, value: str | None) -> Any:
        return (self.core.DateCustomFieldRef(scriptId=script_id, value=when(value))
                if value else None)

    def address(self, doc: dict[str, Any]) -> Any:
        return self.common.Address(
            country=COUNTRIES.get(doc.get("country") or "") or None,
            addressee=doc.get("addressee") or None, addr1=doc.get("addr1") or None,
            addr2=doc.get("addr2") or None, city=doc.get("city") or None,
            state=doc.get("state") or None, zip=doc.get("zip") or None)

    def customer(self, doc: dict[str, Any], lines: bool = True) -> Any:
        terms = doc.get("terms") or {}
        book = self.rel.CustomerAddressbookList(addressbook=[self.rel.CustomerAddressbook(
            defaultBilling=True, addressbookAddress=self.address(doc.get("defaultAddress") or {}))])
        return self.rel.Customer(
            internalId=str(doc["internalId"]), entityId=doc["entityId"],
            companyName=doc.get("companyName"), email=doc.get("email") or None,
            isInactive=bool(doc.get("isInactive")),
            terms=self.core.RecordRef(internalId=str(terms.get("daysUntilNetDue", 0)),
                                      name=terms.get("name")),
            currency=self._ref("currency", doc.get("currency")),
            taxable=bool(doc.get("taxable", True)), resaleNumber=doc.get("resaleNumber") or None,
            vatRegNumber=doc.get("vatRegNumber") or None, addressbookList=book,
            customFieldList=self._custom([
                self._text("custentity_ar_channel", doc.get("custentity_ar_channel")),
                self._text("custentity_peppol_endpoint", doc.get("custentity_peppol_endpoint")),
                self._date("custentity_exempt_cert_expires",
                           doc.get("custentity_exempt_cert_expires"))]))

    def order(self, doc: dict[str, Any], lines: bool = True) -> Any:
        schedule = doc.get("billingSchedule")
        renewal = doc.get("custbody_renewal_of")
        custom = [self._text(INSTALMENTS_FIELD, json.dumps(
            {k: v for k, v in schedule.items() if k != "name"}) if schedule else None)]
        if renewal:
            custom.append(self.core.SelectCustomFieldRef(
                scriptId="custbody_renewal_of", value=self.core.ListOrRecordRef(
                    internalId=str(renewal["internalId"]), name=renewal.get("name"))))
        items = [self.sales.SalesOrderItem(
            item=self._ref("item", i.get("item")), quantity=_f(i.get("quantity")),
            units=self._ref("units", i.get("units")), description=i.get("description") or None,
            rate=str(i["rate"]) if i.get("rate") is not None else None,
            amount=_f(i.get("amount")), line=int(i["line"]),
            quantityBilled=_f(i.get("quantityBilled", "0")),
            taxCode=self._ref("taxCode", i.get("taxCode")), taxRate1=_f(i.get("taxRate")))
            for i in doc.get("item", [])]
        return self.sales.SalesOrder(
            internalId=str(doc["internalId"]),
            entity=self.core.RecordRef(internalId=str(doc["entity"]["internalId"]),
                                       name=doc["entity"].get("name")),
            currency=self._ref("currency", doc.get("currency")), tranDate=when(doc["tranDate"]),
            tranId=doc["tranId"], orderStatus=ORDER_STATUS.get(doc["status"]),
            nextBill=when(sandbox_records.next_bill(doc)) if schedule else None,
            startDate=when(doc.get("startDate")), endDate=when(doc.get("endDate")),
            otherRefNum=doc.get("otherRefNum") or None, memo=doc.get("memo") or None,
            billingSchedule=(self._ref("billingSchedule", schedule.get("name"))
                             if schedule else None),
            itemList=self.sales.SalesOrderItemList(item=items) if lines and items else None,
            customFieldList=self._custom(custom))

    def invoice(self, doc: dict[str, Any], lines: bool = True) -> Any:
        created = doc.get("createdFrom") or {}
        items = [self.sales.InvoiceItem(
            item=self._ref("item", i.get("item")), line=int(i["line"]),
            description=i.get("description") or None, amount=_f(i["amount"]),
            quantity=_f(i["quantity"]), units=self._ref("units", i.get("units")),
            rate=str(i["rate"]), quantityRemaining=_f(i.get("quantityRemaining")),
            orderLine=int(i["orderLine"]) if i.get("orderLine") is not None else None,
            tax1Amt=_f(i.get("tax1Amt")), taxCode=self._ref("taxCode", i.get("taxCode")),
            taxRate1=_f(i.get("taxRate1"))) for i in doc.get("item", [])]
        return self.sales.Invoice(
            internalId=str(doc["internalId"]), externalId=doc.get("externalId") or None,
            entity=self.core.RecordRef(internalId=str(doc["entity"]["internalId"]),
                                       name=doc["entity"].get("name")),
            tranDate=when(doc["tranDate"]), tranId=doc["tranId"],
            createdFrom=self.core.RecordRef(internalId=str(created["internalId"]),
                                            name=created.get("name")) if created else None,
            currency=self._ref("currency", doc.get("currency")), dueDate=when(doc.get("dueDate")),
            startDate=when(doc.get("startDate")), endDate=when(doc.get("endDate")),
            otherRefNum=doc.get("otherRefNum") or None, memo=doc.get("memo") or None,
            billingAddress=self.address(doc.get("billingAddress") or {}),
            subTotal=_f(doc.get("subTotal")), discountTotal=_f(doc.get("discountTotal")),
            taxTotal=_f(doc.get("taxTotal")), total=_f(doc["total"]),
            shippingCost=_f(doc.get("shippingCost")), status=doc.get("status"),
            email=doc.get("email") or None,
            itemList=self.sales.InvoiceItemList(item=items) if lines and items else None,
            customFieldList=self._custom([
                self._date(k, doc.get(k)) for k in ("custbody_contract_start",
                                                    "custbody_contract_end",
                                                    "custbody_renews_term_ending")]))

    def tax_item(self, row: Any) -> Any:
        code, rate, kind, description = row
        return self.acct.SalesTaxItem(
            internalId=self._id("taxCode", code), itemId=code, description=description or None,
            rate=f"{rate}%", exempt=kind == "exempt", reverseCharge=kind == "reverse_charge")

    # -- writes ---------------------------------------------------------------------------

    def initialize(self, order_id: str) -> Any:
        """``initialize(invoice ← salesOrder)``: the order's lines, or its next instalment's."""
        doc = self.doc("sales_orders", order_id)
        if doc is None or doc["status"] not in sandbox_records.BILLABLE_STATUSES:
            name = doc["tranId"] if doc else order_id
            raise Refused("INVALID_INITIALIZE_REF", f"You have an invalid sales order {name} "
                          "or the order is already billed.")
        source = doc["item"]
        schedule = doc.get("billingSchedule")
        if schedule:
            due = [i for i in schedule["instalments"] if not i.get("invoice")]
            source = due[0]["item"] if due else []
        items = [self.sales.InvoiceItem(
            item=self._ref("item", i["item"]), orderLine=int(i["line"]),
            quantity=_f(i["quantity"]), rate=str(i["rate"]), amount=_f(i["amount"]))
            for i in source]
        return self.sales.Invoice(
            entity=self.core.RecordRef(internalId=str(doc["entity"]["internalId"]),
                                       name=doc["entity"].get("name")),
            createdFrom=self.core.RecordRef(internalId=str(doc["internalId"]),
                                            name=doc["tranId"]),
            currency=self._ref("currency", doc["currency"]),
            otherRefNum=doc.get("otherRefNum") or None,
            itemList=self.sales.InvoiceItemList(item=items))

    def add_invoice(self, record: Any) -> Invoice:
        """Create one invoice through the sandbox; Refused with NetSuite's code otherwise."""
        draft = self._draft(record)
        try:
            [result] = self.sandbox.create_invoices([draft])
        except TransientError as exc:
            raise Refused("UNEXPECTED_ERROR", str(exc)) from None
        if isinstance(result, Invoice):
            return result
        if isinstance(result, DuplicateExternalIdError):
            raise Refused("DUP_RCRD", "This record already exists: an invoice with external "
                          f"ID {draft.key} exists.")
        assert isinstance(result, RejectedError), result
        raise Refused(result.remote_code or "USER_ERROR", str(result))

    def _draft(self, record: Any) -> Invoice:
        key = str(record.externalId or "")
        order_id = str(getattr(record.createdFrom, "internalId", "") or "")
        order = self.doc("sales_orders", order_id)
        if order is None:
            raise Refused("INVALID_KEY_OR_REF", f"Invalid createdfrom reference key {order_id}.")
        parsed = sandbox_records.parse_unit_key(key)
        schedule, source = order.get("billingSchedule"), order["item"]
        if schedule and parsed:
            found = [i for i in schedule["instalments"] if i["date"] == parsed[1].isoformat()]
            source = found[0]["item"] if found else []
        by_line = {int(line["line"]): line for line in source}
        items = list(getattr(record.itemList, "item", None) or []) if record.itemList else []
        lines = [self._line(item, by_line, whole_order=not schedule) for item in items]
        tran_date = record.tranDate.date() if record.tranDate else dt.date.today()
        customer = sandbox_records.customer_model(
            self.sandbox.get_customer(order["entity"]["internalId"]))
        return Invoice(
            key=key, order_id=order["internalId"], order_number=order["tranId"],
            customer=customer, tran_date=tran_date, due_date=tran_date,
            currency=order["currency"], po_number=record.otherRefNum or "", lines=tuple(lines),
            subtotal=Decimal(0), tax_total=Decimal(0), total=Decimal(0),
            period_start=record.startDate.date() if record.startDate else None,
            period_end=record.endDate.date() if record.endDate else None,
            memo=record.memo or "")

    @staticmethod
    def _line(item: Any, by_line: dict[int, Any], *, whole_order: bool) -> InvoiceLine:
        source = by_line.get(int(item.orderLine or -1))
        if source is None:
            raise Refused("INVALID_KEY_OR_REF", f"Invalid orderline reference key "
                          f"{item.orderLine}.")
        line = build_line(sandbox_records.unit_line(source, whole_order=whole_order), "USD")
        quantity = Decimal(repr(item.quantity)) if item.quantity is not None else line.quantity
        rate = Decimal(str(item.rate)) if item.rate is not None else line.rate
        amount = Decimal(repr(item.amount)) if item.amount is not None else quantity * rate
        return dataclasses.replace(line, quantity=quantity, rate=rate, amount=amount)
