"""Every SuiteQL query the REST gateway sends, in one place.

What is sourced (reference netsuite-rest.md §3): the ``transaction`` table with ``id``,
``tranid``, ``type`` (``SalesOrd``, ``CustInvc``), ``entity``, ``trandate`` and ``status``
as a single letter (``E`` Pending Billing/Partially Fulfilled, ``F`` Pending Billing);
lower-case column keys in the answer; a unique ``ORDER BY`` for paged queries.

What is **not** found in the reference and is pinned here (and by the fake in
``tests/netsuite_rest_fake_data.py``) until a sandbox account confirms it — each is one
name in this file:

* ``transaction.nextbilldate`` (the REST record's ``nextBill``), ``createdfrom``,
  ``billingschedule``, ``foreigntotal``, ``taxtotal``, ``discounttotal``, ``shippingcost``,
  ``billingaddress``; the account's custom fields ``custbody_renewal_of``,
  ``custbody_contract_start``/``_end``, ``custbody_renews_term_ending``,
  ``custentity_ar_channel``, ``custentity_peppol_endpoint``,
  ``custentity_exempt_cert_expires``;
* ``transactionline``: ``linesequencenumber``, ``foreignamount`` as the line amount (its
  sign on sales lines is UNVERIFIED), ``taxcode``, ``taxrate1``, ``tax1amt``, ``orderline``,
  ``units`` (shown with ``BUILTIN.DF``), ``quantitybilled`` (seen in a public SuiteQL note),
  ``quantityremaining``;
* the due instalments of billing schedules: ``billinginstalmentline`` (one row per line of
  each instalment: ``billdate``, ``periodstart``, ``periodend``, ``invoice``,
  ``scheduletype``) — the SuiteQL table for billing-schedule instalments was NOT FOUND;
* ``customer.defaultbillingaddress`` → ``entityaddress.nkey``; ``term``; ``currency.symbol``
  (ISO code); ``salestaxitem`` (legacy tax codes; SuiteTax accounts differ).

Dates are selected through ``TO_CHAR(…, 'YYYY-MM-DD')`` because SuiteQL formats raw date
columns with the user's date preference.
"""

from __future__ import annotations

from ar_sync.netsuite.rest.suiteql import Key

SALES_ORDER = "SalesOrd"
INVOICE = "CustInvc"
TYPES = frozenset({SALES_ORDER, INVOICE})
STATUS_LETTERS = frozenset("ABCDEFGH")
BILLABLE = ("E", "F")  # Pending Billing/Partially Fulfilled, Pending Billing

_CUSTOMER = """\
c.id AS customer_id, c.entityid AS customer_entityid, c.companyname AS customer_name,
c.isinactive AS customer_inactive, c.email AS customer_email, c.taxable AS customer_taxable,
c.resalenumber AS customer_resalenumber, c.vatregnumber AS customer_vatregnumber,
c.custentity_ar_channel AS customer_channel, cc.symbol AS customer_currency,
c.custentity_peppol_endpoint AS customer_peppol,
TO_CHAR(c.custentity_exempt_cert_expires, 'YYYY-MM-DD') AS customer_exempt_expires,
ct.name AS terms_name, ct.daysuntilnetdue AS terms_days,
ea.addressee AS bill_addressee, ea.addr1 AS bill_addr1, ea.addr2 AS bill_addr2,
ea.city AS bill_city, ea.state AS bill_state, ea.zip AS bill_zip, ea.country AS bill_country"""

_CUSTOMER_JOINS = """\
LEFT JOIN customer c ON c.id = t.entity
LEFT JOIN currency cc ON cc.id = c.currency
LEFT JOIN term ct ON ct.id = c.terms
LEFT JOIN entityaddress ea ON ea.nkey = c.defaultbillingaddress"""

_ORDER = f"""\
SELECT t.id AS id, t.tranid AS tranid, t.status AS status, t.entity AS entity,
tc.symbol AS currency, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate,
t.otherrefnum AS otherrefnum, t.memo AS memo,
TO_CHAR(t.startdate, 'YYYY-MM-DD') AS startdate, TO_CHAR(t.enddate, 'YYYY-MM-DD') AS enddate,
t.custbody_renewal_of AS renewal_of, t.billingschedule AS billingschedule,
BUILTIN.DF(t.entity) AS entity_name,
TO_CHAR(ro.enddate, 'YYYY-MM-DD') AS renews_term_ending,
{_CUSTOMER}
FROM transaction t
LEFT JOIN currency tc ON tc.id = t.currency
LEFT JOIN transaction ro ON ro.id = t.custbody_renewal_of
{_CUSTOMER_JOINS}
WHERE t.type = {{sales_order}} AND """

# Sales orders pending billing whose next bill date has come, by id.
DUE_ORDERS = _ORDER + ("t.status IN {statuses} AND t.nextbilldate <= {as_of} AND {after}\n"
                       "ORDER BY t.id")
# Sales orders by id, whatever their status (re-reading units; the caller filters).
ORDERS_BY_ID = _ORDER + "t.id IN {ids} AND {after}\nORDER BY t.id"
ORDER_KEYS = (Key("t.id", "id"),)

# The item lines of sales orders (not the main line, not tax lines).
ORDER_LINES = """\
SELECT tl.transaction AS transaction, tl.linesequencenumber AS line, i.itemid AS item,
tl.memo AS description, tl.quantity AS quantity, tl.rate AS rate,
tl.foreignamount AS amount, sti.itemid AS taxcode, tl.taxrate1 AS taxrate,
BUILTIN.DF(tl.units) AS units, tl.quantitybilled AS quantitybilled
FROM transactionline tl
LEFT JOIN item i ON i.id = tl.item
LEFT JOIN salestaxitem sti ON sti.id = tl.taxcode
WHERE tl.transaction IN {ids} AND tl.mainline = 'F' AND tl.taxline = 'F' AND {after}
ORDER BY tl.transaction, tl.linesequencenumber"""
LINE_KEYS = (Key("tl.transaction", "transaction"), Key("tl.linesequencenumber", "line"))

# The lines of billing-schedule instalments due by a date and not invoiced yet.
INSTALMENT_LINES = """\
SELECT b.transaction AS transaction, b.instalment AS instalment,
TO_CHAR(b.billdate, 'YYYY-MM-DD') AS billdate,
TO_CHAR(b.periodstart, 'YYYY-MM-DD') AS periodstart,
TO_CHAR(b.periodend, 'YYYY-MM-DD') AS periodend, b.scheduletype AS scheduletype,
b.line AS line, i.itemid AS item, b.memo AS description, b.quantity AS quantity,
b.rate AS rate, b.amount AS amount, sti.itemid AS taxcode, b.taxrate AS taxrate,
BUILTIN.DF(b.units) AS units
FROM billinginstalmentline b
LEFT JOIN item i ON i.id = b.item
LEFT JOIN salestaxitem sti ON sti.id = b.taxcode
WHERE b.transaction IN {ids} AND b.billdate <= {as_of} AND b.invoice IS NULL AND {after}
ORDER BY b.transaction, b.instalment, b.line"""
INSTALMENT_KEYS = (Key("b.transaction", "transaction"), Key("b.instalment", "instalment"),
                   Key("b.line", "line"))

# Invoices with their lines and customer: one row per line (header columns repeated).
_INVOICES = f"""\
SELECT t.id AS id, t.tranid AS tranid, t.externalid AS externalid,
t.createdfrom AS order_id, so.tranid AS order_number,
TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, TO_CHAR(t.duedate, 'YYYY-MM-DD') AS duedate,
tc.symbol AS currency, t.otherrefnum AS otherrefnum, t.memo AS memo,
TO_CHAR(t.startdate, 'YYYY-MM-DD') AS startdate, TO_CHAR(t.enddate, 'YYYY-MM-DD') AS enddate,
t.foreigntotal AS total, t.taxtotal AS taxtotal, t.discounttotal AS discounttotal,
t.shippingcost AS shippingcost, BUILTIN.DF(t.entity) AS entity_name,
TO_CHAR(t.custbody_contract_start, 'YYYY-MM-DD') AS contract_start,
TO_CHAR(t.custbody_contract_end, 'YYYY-MM-DD') AS contract_end,
TO_CHAR(t.custbody_renews_term_ending, 'YYYY-MM-DD') AS renews_term_ending,
ba.addressee AS inv_addressee, ba.addr1 AS inv_addr1, ba.addr2 AS inv_addr2,
ba.city AS inv_city, ba.state AS inv_state, ba.zip AS inv_zip, ba.country AS inv_country,
{_CUSTOMER},
tl.linesequencenumber AS line, tl.orderline AS orderline, i.itemid AS item,
tl.memo AS description, tl.quantity AS quantity, tl.rate AS rate,
tl.foreignamount AS amount, sti.itemid AS taxcode, tl.taxrate1 AS taxrate,
tl.tax1amt AS taxamount, BUILTIN.DF(tl.units) AS units,
tl.quantityremaining AS quantityremaining
FROM transaction t
LEFT JOIN transaction so ON so.id = t.createdfrom
LEFT JOIN currency tc ON tc.id = t.currency
LEFT JOIN transactionbillingaddress ba ON ba.nkey = t.billingaddress
{_CUSTOMER_JOINS}
LEFT JOIN transactionline tl ON tl.transaction = t.id AND tl.mainline = 'F'
    AND tl.taxline = 'F'
LEFT JOIN item i ON i.id = tl.item
LEFT JOIN salestaxitem sti ON sti.id = tl.taxcode
WHERE t.type = {{invoice}} AND """
_BY_LINE = " AND {after}\nORDER BY t.id, COALESCE(tl.linesequencenumber, 0)"
INVOICES_BY_ID = _INVOICES + "t.id IN {ids}" + _BY_LINE
INVOICES_BY_EXTERNAL_ID = _INVOICES + "UPPER(t.externalid) IN {external_ids}" + _BY_LINE
INVOICE_LINE_KEYS = (Key("t.id", "id"), Key("COALESCE(tl.linesequencenumber, 0)", "line"))

# Which of these external ids are taken (the look-up before and after creating).
INVOICE_IDS_BY_EXTERNAL_ID = """\
SELECT t.id AS id, t.externalid AS externalid FROM transaction t
WHERE t.type = {invoice} AND UPPER(t.externalid) IN {external_ids} AND {after}
ORDER BY t.id"""

# What the duplicate check needs of the customers' recent invoices.
INVOICE_SUMMARIES = """\
SELECT t.id AS id, t.tranid AS tranid, t.externalid AS externalid, t.entity AS customer_id,
t.createdfrom AS order_id, t.otherrefnum AS otherrefnum, tc.symbol AS currency,
t.foreigntotal AS total, TO_CHAR(t.startdate, 'YYYY-MM-DD') AS startdate,
TO_CHAR(t.enddate, 'YYYY-MM-DD') AS enddate
FROM transaction t
LEFT JOIN currency tc ON tc.id = t.currency
WHERE t.type = {invoice} AND t.entity IN {customers} AND t.trandate >= {since} AND {after}
ORDER BY t.id"""
ID_KEYS = (Key("t.id", "id"),)

# The PO on one sales order now (the remediation playbook's ``current_po``): one row or none.
ORDER_PO = ("SELECT otherrefnum FROM transaction WHERE id = {order} "
            "AND type = {sales_order}")

TAX_CODES = """\
SELECT sti.id AS id, sti.itemid AS code, sti.rate AS rate, sti.description AS description
FROM salestaxitem sti WHERE {after}
ORDER BY sti.id"""
TAX_CODE_KEYS = (Key("sti.id", "id"),)

# `netsuite ping`: one row of each table the cycle reads, to prove the role may read it.
PING_CUSTOMERS = "SELECT c.id AS id FROM customer c WHERE {after}\nORDER BY c.id"
PING_TRANSACTIONS = ("SELECT t.id AS id FROM transaction t WHERE t.type = {type} AND {after}\n"
                     "ORDER BY t.id")
CUSTOMER_KEYS = (Key("c.id", "id"),)
