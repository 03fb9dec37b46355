"""cXML for Coupa and SAP Business Network: InvoiceDetailRequest out, Status and
StatusUpdateRequest in.

The request is built without the shared secret: what is rendered (and stored for audit) never
holds it; :func:`with_shared_secret` adds it to the bytes just before they are sent. Every
document parsed here goes through :data:`SAFE_PARSER` (no network, no entity expansion, no
DTD loading), whatever its DOCTYPE says.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from ar_sync.documents import amount, number
from ar_sync.models import Address, Invoice, Seller

VERSION = "1.2.037"  # the InvoiceDetail.dtd the requests are validated against
DOCTYPE = f'<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/{VERSION}/InvoiceDetail.dtd">'
SAFE_PARSER = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False,
                              dtd_validation=False, huge_tree=False)
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The header credentials a portal gave us (From, To, Sender); no secret in here."""

    from_domain: str
    from_identity: str
    to_domain: str
    to_identity: str
    sender_domain: str
    sender_identity: str
    user_agent: str = "ar-sync"
    deployment_mode: str = "production"  # or "test"


def payload_id(invoice: Invoice, body_hash: str, domain: str = "ar-sync") -> str:
    """Deterministic and unique per content: a corrected resend gets a new payloadID."""
    return f"{invoice.key.replace(':', '.')}.{body_hash[:12]}@{domain}"


def invoice_request(invoice: Invoice, seller: Seller, cred: Credentials,
                    remit_to_id: str = "") -> bytes:
    """An InvoiceDetailRequest for ``invoice`` (a credit memo when ``invoice.is_credit``)."""
    request = _request(invoice, seller, remit_to_id)
    digest = hashlib.sha256(etree.tostring(request) + repr(cred).encode()).hexdigest()
    stamp = f"{invoice.tran_date.isoformat()}T00:00:00+00:00"
    root = etree.Element("cXML", payloadID=payload_id(invoice, digest), timestamp=stamp,
                         version=VERSION)
    root.set(XML_LANG, "en-US")
    header = etree.SubElement(root, "Header")
    _credential(etree.SubElement(header, "From"), cred.from_domain, cred.from_identity)
    _credential(etree.SubElement(header, "To"), cred.to_domain, cred.to_identity)
    sender = etree.SubElement(header, "Sender")
    _credential(sender, cred.sender_domain, cred.sender_identity)
    _text(sender, "UserAgent", cred.user_agent)
    wrapper = etree.SubElement(root, "Request", deploymentMode=cred.deployment_mode)
    wrapper.append(request)
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n' + DOCTYPE.encode() + b"\n"
            + etree.tostring(root, encoding="UTF-8"))


def with_shared_secret(body: bytes, secret: str) -> bytes:
    """``body`` with ``<SharedSecret>`` in the Sender credential: only for the wire."""
    doc = etree.fromstring(body, SAFE_PARSER)
    credential = doc.find("Header/Sender/Credential")
    if credential is None:
        raise ValueError("not a cXML request with a Sender credential")
    _text(credential, "SharedSecret", secret)
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n' + DOCTYPE.encode() + b"\n"
            + etree.tostring(doc, encoding="UTF-8"))


def _request(inv: Invoice, seller: Seller, remit_to_id: str) -> etree._Element:
    sign = Decimal(-1) if inv.is_credit else Decimal(1)
    req = etree.Element("InvoiceDetailRequest")
    header = etree.SubElement(
        req, "InvoiceDetailRequestHeader", invoiceID=inv.tran_id or inv.key,
        purpose="creditMemo" if inv.is_credit else "standard", operation="new",
        invoiceDate=f"{inv.tran_date.isoformat()}T00:00:00+00:00")
    etree.SubElement(header, "InvoiceDetailHeaderIndicator")
    etree.SubElement(header, "InvoiceDetailLineIndicator", isTaxInLine="yes")
    _partner(header, "remitTo", seller.name, seller.remit_to, remit_to_id)
    _partner(header, "from", seller.name, seller.address, "", seller.email)
    _partner(header, "soldTo", inv.entity_name or inv.customer.name, inv.customer.bill_to, "")
    etree.SubElement(header, "PaymentTerm", payInNumberOfDays=str(
        max(0, (inv.due_date - inv.tran_date).days)))
    if inv.period_start and inv.period_end:
        etree.SubElement(header, "Period", startDate=_stamp(inv.period_start),
                         endDate=_stamp(inv.period_end))
    if inv.memo:
        _text(header, "Comments", inv.memo, lang=True)
    _extrinsic(header, "ar-sync-key", inv.key)
    _extrinsic(header, "salesOrder", inv.order_number)
    order = etree.SubElement(req, "InvoiceDetailOrder")
    info = etree.SubElement(order, "InvoiceDetailOrderInfo")
    if inv.po_number:
        ref = etree.SubElement(info, "OrderReference", orderID=inv.po_number)
        etree.SubElement(ref, "DocumentReference", payloadID=inv.po_number)
    else:
        etree.SubElement(info, "SupplierOrderInfo", orderID=inv.order_number)
    for line in inv.lines:
        _item(order, inv, line, sign)
    _summary(req, inv, sign)
    return req


def _item(order: etree._Element, inv: Invoice, line: object, sign: Decimal) -> None:
    from ar_sync.models import InvoiceLine

    assert isinstance(line, InvoiceLine)
    cur = inv.currency
    item = etree.SubElement(order, "InvoiceDetailItem", invoiceLineNumber=str(line.order_line),
                            quantity=number(line.quantity))
    _text(item, "UnitOfMeasure", line.units)
    _money(etree.SubElement(item, "UnitPrice"), line.rate, cur)
    ref = etree.SubElement(item, "InvoiceDetailItemReference", lineNumber=str(line.order_line))
    item_id = etree.SubElement(ref, "ItemID")
    _text(item_id, "SupplierPartID", line.item)
    _text(ref, "Description", line.description, lang=True)
    _money(etree.SubElement(item, "SubtotalAmount"), sign * line.amount, cur)
    _tax(item, sign * line.tax_amount, cur, line.tax_rate, sign * line.amount, line.tax_code)


def _summary(req: etree._Element, inv: Invoice, sign: Decimal) -> None:
    cur = inv.currency
    summary = etree.SubElement(req, "InvoiceDetailSummary")
    _money(etree.SubElement(summary, "SubtotalAmount"), sign * inv.subtotal, cur)
    tax = etree.SubElement(summary, "Tax")
    _money(tax, sign * inv.tax_total, cur)
    _text(tax, "Description", "total tax", lang=True)
    if inv.shipping:
        _money(etree.SubElement(summary, "ShippingAmount"), sign * inv.shipping, cur)
    if inv.discount_total:
        discount = etree.SubElement(summary, "InvoiceDetailDiscount")
        _money(discount, sign * inv.discount_total, cur)
    _money(etree.SubElement(summary, "NetAmount"), sign * inv.total, cur)
    _money(etree.SubElement(summary, "DueAmount"), sign * inv.total, cur)


def _tax(parent: etree._Element, tax: Decimal, cur: str, rate: Decimal, taxable: Decimal,
         code: str) -> None:
    el = etree.SubElement(parent, "Tax")
    _money(el, tax, cur)
    _text(el, "Description", code or "tax", lang=True)
    detail = etree.SubElement(el, "TaxDetail", purpose="tax", category="sales",
                              percentageRate=number(rate))
    _money(etree.SubElement(detail, "TaxableAmount"), taxable, cur)
    _money(etree.SubElement(detail, "TaxAmount"), tax, cur)


def _partner(header: etree._Element, role: str, name: str, address: Address,
             address_id: str, email: str = "") -> None:
    contact = etree.SubElement(etree.SubElement(header, "InvoicePartner"), "Contact", role=role)
    if address_id:
        contact.set("addressID", address_id)
    _text(contact, "Name", name, lang=True)
    postal = etree.SubElement(contact, "PostalAddress")
    if address.addressee:
        _text(postal, "DeliverTo", address.addressee)
    for street in (address.addr1, address.addr2):
        if street:
            _text(postal, "Street", street)
    _text(postal, "City", address.city)
    if address.state:
        _text(postal, "State", address.state)
    if address.zip:
        _text(postal, "PostalCode", address.zip)
    _text(postal, "Country", address.country, isoCountryCode=address.country)
    if email:
        _text(contact, "Email", email, name="default")


def _credential(parent: etree._Element, domain: str, identity: str) -> etree._Element:
    credential = etree.SubElement(parent, "Credential", domain=domain)
    _text(credential, "Identity", identity)
    return credential


def _extrinsic(parent: etree._Element, name: str, value: str) -> None:
    _text(parent, "Extrinsic", value, name=name)


def _money(parent: etree._Element, value: Decimal, currency: str) -> None:
    _text(parent, "Money", amount(value, currency), currency=currency)


def _text(parent: etree._Element, tag: str, text: str, *, lang: bool = False,
          **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrs)
    if lang:
        el.set(XML_LANG, "en")
    el.text = text
    return el


def _stamp(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00+00:00"


# -- what comes back ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CxmlStatus:
    """The ``Status`` of a cXML Response (or StatusUpdateRequest): code, text and content."""

    code: str
    text: str
    detail: str
    payload_id: str = ""

    @property
    def message(self) -> str:
        return " ".join(p for p in (self.text, self.detail) if p)


def parse_status(body: bytes) -> CxmlStatus | None:
    """The Status of a cXML Response body; ``None`` when the body is not cXML at all."""
    try:
        doc = etree.fromstring(body, SAFE_PARSER)
    except etree.XMLSyntaxError:
        return None
    status = doc.find("Response/Status")
    if doc.tag != "cXML" or status is None:
        return None
    return CxmlStatus(status.get("code", ""), status.get("text", ""),
                      " ".join((status.text or "").split()), doc.get("payloadID", ""))


def response(code: int, text: str, detail: str = "", payload: str = "") -> bytes:
    """A cXML Response with one Status, as portals and our listener answer."""
    root = etree.Element("cXML", payloadID=payload or f"{code}.response@ar-sync",
                         timestamp=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    root.set(XML_LANG, "en-US")
    status = etree.SubElement(etree.SubElement(root, "Response"), "Status", code=str(code),
                              text=text)
    status.set(XML_LANG, "en-US")
    status.text = detail or None
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.063/cXML.dtd">\n'
            + etree.tostring(root, encoding="UTF-8"))


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """An asynchronous StatusUpdateRequest: which invoice, and what happened to it."""

    invoice_id: str  # the InvoiceIDInfo/@invoiceID or DocumentReference payloadID
    key: str  # our unit key when the portal echoes the ar-sync-key extrinsic, else ""
    status_code: str
    status_text: str
    invoice_status: str  # processing | canceled | reconciled | rejected | paying | paid | ""
    comments: str
    payload_id: str


def parse_status_update(body: bytes) -> StatusUpdate:
    """Read a StatusUpdateRequest; ``ValueError`` when it is not one."""
    try:
        doc = etree.fromstring(body, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not XML: {exc}") from None
    sur = doc.find("Request/StatusUpdateRequest")
    if doc.tag != "cXML" or sur is None:
        raise ValueError("not a cXML StatusUpdateRequest")
    status = sur.find("Status")
    if status is None:
        raise ValueError("StatusUpdateRequest without Status")
    inv_status = sur.find("InvoiceStatus")
    info = sur.find(".//InvoiceIDInfo")
    ref = sur.find("DocumentReference")
    invoice_id = (info.get("invoiceID", "") if info is not None
                  else ref.get("payloadID", "") if ref is not None else "")
    key = sur.findtext(".//Extrinsic[@name='ar-sync-key']") or ""
    comments = " ".join(" ".join(str(t) for t in c.itertext()) for c in sur.iter("Comments"))
    comments = " ".join(comments.split())
    return StatusUpdate(
        invoice_id=invoice_id, key=key, status_code=status.get("code", ""),
        status_text=status.get("text", ""),
        invoice_status=inv_status.get("type", "") if inv_status is not None else "",
        comments=comments or " ".join((status.text or "").split()),
        payload_id=doc.get("payloadID", ""))
