"""Peppol BIS Billing 3.0: UBL 2.1 Invoice and CreditNote, and Invoice Responses back.

The builder writes only what EN 16931 and the Peppol rules ask for and never an empty
element (PEPPOL-EN16931-R008). Totals are computed from the lines as the rules do
(BR-CO-10..16); the payable amount is the invoice's own total, so an invoice whose numbers do
not add up fails validation here instead of at the buyer.

VAT categories come from the line's tax code: ``tax_categories`` maps codes to categories;
without an entry, a code naming reverse charge (``*RC*``) is ``AE``, ``EXEMPT`` is ``E``,
``EXPORT`` is ``G``, another 0 % line ``Z``, and a taxed line ``S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from ar_sync.documents import amount, number
from ar_sync.documents.cxml import SAFE_PARSER
from ar_sync.models import Address, Invoice, InvoiceLine, Seller

CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
ROOT_NS = {"Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
           "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"}
CUSTOMIZATION = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
EXEMPTION = {"AE": ("VATEX-EU-AE", "Reverse charge"),
             "E": ("", "Exempt from tax (exemption certificate on file)"),
             "G": ("VATEX-EU-G", "Export outside the EU")}


def tax_category(line: InvoiceLine, overrides: Mapping[str, str] | None = None) -> str:
    """The EN 16931 VAT category (S, Z, E, AE, G) of a line."""
    code = line.tax_code.upper()
    if overrides and line.tax_code in overrides:
        return overrides[line.tax_code]
    if line.tax_rate > 0:
        return "S"
    if "RC" in code.split("-") or "REVERSE" in code:
        return "AE"
    if "EXEMPT" in code:
        return "E"
    if "EXPORT" in code:
        return "G"
    return "Z"


def build(invoice: Invoice, seller: Seller, *, buyer_reference: str = "",
          tax_categories: Mapping[str, str] | None = None) -> bytes:
    """The UBL document for ``invoice``: a CreditNote when ``invoice.is_credit``."""
    kind = "CreditNote" if invoice.is_credit else "Invoice"
    b = _Builder(invoice, kind, tax_categories or {})
    root = etree.Element(f"{{{ROOT_NS[kind]}}}{kind}",
                         nsmap={None: ROOT_NS[kind], "cac": CAC,  # type: ignore[dict-item]
                                "cbc": CBC})
    b.head(root, buyer_reference or invoice.buyer_reference or invoice.po_number
           or invoice.customer.entity_id)
    _party(etree.SubElement(root, f"{{{CAC}}}AccountingSupplierParty"), seller.peppol_id,
           seller.name, seller.address, seller.vat_id, seller.email)
    c = invoice.customer
    _party(etree.SubElement(root, f"{{{CAC}}}AccountingCustomerParty"), c.peppol_id,
           invoice.entity_name or c.name, c.bill_to, c.vat_id, c.email)
    b.payment(root, seller)
    b.allowances_and_totals(root)
    for line in invoice.lines:
        b.line(root, line)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class _Builder:
    def __init__(self, inv: Invoice, kind: str, overrides: Mapping[str, str]) -> None:
        self.inv, self.kind, self.overrides = inv, kind, overrides
        self.cur = inv.currency
        self.first_category = tax_category(inv.lines[0], overrides) if inv.lines else "S"
        self.first_rate = inv.lines[0].tax_rate if inv.lines else Decimal(0)

    def head(self, root: etree._Element, buyer_reference: str) -> None:
        inv = self.inv
        _cbc(root, "CustomizationID", CUSTOMIZATION)
        _cbc(root, "ProfileID", PROFILE)
        _cbc(root, "ID", inv.tran_id or inv.key)
        _cbc(root, "IssueDate", inv.tran_date.isoformat())
        if self.kind == "Invoice":
            _cbc(root, "DueDate", inv.due_date.isoformat())
            _cbc(root, "InvoiceTypeCode", "380")
        else:
            _cbc(root, "CreditNoteTypeCode", "381")
        if inv.memo:
            _cbc(root, "Note", inv.memo)
        _cbc(root, "DocumentCurrencyCode", self.cur)
        _cbc(root, "BuyerReference", buyer_reference)
        if inv.period_start and inv.period_end:
            period = _cac(root, "InvoicePeriod")
            _cbc(period, "StartDate", inv.period_start.isoformat())
            _cbc(period, "EndDate", inv.period_end.isoformat())
        if inv.po_number:
            _cbc(_cac(root, "OrderReference"), "ID", inv.po_number)

    def payment(self, root: etree._Element, seller: Seller) -> None:
        means = _cac(root, "PaymentMeans")
        _cbc(means, "PaymentMeansCode", "58" if seller.iban else "30")
        _cbc(means, "PaymentID", self.inv.tran_id or self.inv.key)
        account = seller.iban or seller.bank_account
        if account:
            fin = _cac(means, "PayeeFinancialAccount")
            _cbc(fin, "ID", account)
            _cbc(fin, "Name", seller.name)
            bank = seller.bic or seller.bank_routing
            if bank:
                _cbc(_cac(fin, "FinancialInstitutionBranch"), "ID", bank)
        note = f"{self.inv.customer.terms.name}, due {self.inv.due_date.isoformat()}"
        _cbc(_cac(root, "PaymentTerms"), "Note", note)

    def allowances_and_totals(self, root: etree._Element) -> None:
        inv, cur = self.inv, self.cur
        if inv.discount_total:
            self._allowance(root, False, "Discount", inv.discount_total)
        if inv.shipping:
            self._allowance(root, True, "Shipping and handling", inv.shipping)
        groups: dict[tuple[str, Decimal], list[Decimal]] = {}
        for line in inv.lines:
            key = (tax_category(line, self.overrides), line.tax_rate)
            taxable, tax = groups.setdefault(key, [Decimal(0), Decimal(0)])
            groups[key] = [taxable + line.amount, tax + line.tax_amount]
        first = (self.first_category, self.first_rate)
        if first in groups:  # document-level allowances/charges carry the first line's VAT
            groups[first][0] += inv.shipping - inv.discount_total
            line_tax = sum((ln.tax_amount for ln in inv.lines), Decimal(0))
            groups[first][1] += inv.tax_total - line_tax
        total = _cac(root, "TaxTotal")
        _money(total, "TaxAmount", inv.tax_total, cur)
        for (category, rate), (taxable, tax) in groups.items():
            sub = _cac(total, "TaxSubtotal")
            _money(sub, "TaxableAmount", taxable, cur)
            _money(sub, "TaxAmount", tax, cur)
            _category(sub, "TaxCategory", category, rate, exemption=True)
        line_total = sum((ln.amount for ln in inv.lines), Decimal(0))
        exclusive = line_total - inv.discount_total + inv.shipping
        m = _cac(root, "LegalMonetaryTotal")
        _money(m, "LineExtensionAmount", line_total, cur)
        _money(m, "TaxExclusiveAmount", exclusive, cur)
        _money(m, "TaxInclusiveAmount", exclusive + inv.tax_total, cur)
        if inv.discount_total:
            _money(m, "AllowanceTotalAmount", inv.discount_total, cur)
        if inv.shipping:
            _money(m, "ChargeTotalAmount", inv.shipping, cur)
        _money(m, "PayableAmount", inv.total, cur)

    def _allowance(self, root: etree._Element, charge: bool, reason: str,
                   value: Decimal) -> None:
        ac = _cac(root, "AllowanceCharge")
        _cbc(ac, "ChargeIndicator", "true" if charge else "false")
        _cbc(ac, "AllowanceChargeReason", reason)
        _money(ac, "Amount", value, self.cur)
        _category(ac, "TaxCategory", self.first_category, self.first_rate)

    def line(self, root: etree._Element, line: InvoiceLine) -> None:
        tag, qty = (("InvoiceLine", "InvoicedQuantity") if self.kind == "Invoice"
                    else ("CreditNoteLine", "CreditedQuantity"))
        el = _cac(root, tag)
        _cbc(el, "ID", str(line.order_line))
        _cbc(el, qty, number(line.quantity), unitCode=line.units or "C62")
        _money(el, "LineExtensionAmount", line.amount, self.cur)
        if self.inv.po_number:
            _cbc(_cac(el, "OrderLineReference"), "LineID", str(line.order_line))
        item = _cac(el, "Item")
        if line.description:
            _cbc(item, "Description", line.description)
        _cbc(item, "Name", (line.description or line.item)[:100])
        _cbc(_cac(item, "SellersItemIdentification"), "ID", line.item)
        _category(item, "ClassifiedTaxCategory", tax_category(line, self.overrides),
                  line.tax_rate)
        _money(_cac(el, "Price"), "PriceAmount", line.rate, self.cur, exact=True)


def _party(parent: etree._Element, endpoint: str, name: str, address: Address, vat_id: str,
           email: str) -> None:
    party = _cac(parent, "Party")
    if ":" in endpoint:
        scheme, value = endpoint.split(":", 1)
        _cbc(party, "EndpointID", value, schemeID=scheme)
    _cbc(_cac(party, "PartyName"), "Name", name)
    postal = _cac(party, "PostalAddress")
    for tag, value in (("StreetName", address.addr1), ("AdditionalStreetName", address.addr2),
                       ("CityName", address.city), ("PostalZone", address.zip),
                       ("CountrySubentity", address.state)):
        if value:
            _cbc(postal, tag, value)
    _cbc(_cac(postal, "Country"), "IdentificationCode", address.country)
    if vat_id:
        tax_scheme = _cac(party, "PartyTaxScheme")
        _cbc(tax_scheme, "CompanyID", vat_id)
        _cbc(_cac(tax_scheme, "TaxScheme"), "ID", "VAT")
    _cbc(_cac(party, "PartyLegalEntity"), "RegistrationName", name)
    if email:
        _cbc(_cac(party, "Contact"), "ElectronicMail", email)


def _category(parent: etree._Element, tag: str, category: str, rate: Decimal, *,
              exemption: bool = False) -> None:
    cat = _cac(parent, tag)
    _cbc(cat, "ID", category)
    _cbc(cat, "Percent", number(rate))
    if exemption and category in EXEMPTION:
        code, reason = EXEMPTION[category]
        if code:
            _cbc(cat, "TaxExemptionReasonCode", code)
        _cbc(cat, "TaxExemptionReason", reason)
    _cbc(_cac(cat, "TaxScheme"), "ID", "VAT")


def _cac(parent: etree._Element, tag: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC}}}{tag}")


def _cbc(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{CBC}}}{tag}", attrs)
    el.text = text
    return el


def _money(parent: etree._Element, tag: str, value: Decimal, currency: str, *,
           exact: bool = False) -> None:
    text = number(value) if exact else amount(value, currency)
    _cbc(parent, tag, text, currencyID=currency)


# -- Peppol Invoice Response (ApplicationResponse, T111) -------------------------------------

STATUSES = {"AB": "acknowledged", "IP": "in process", "UQ": "under query",
            "CA": "conditionally accepted", "RE": "rejected", "AP": "accepted", "PD": "paid"}


@dataclass(frozen=True, slots=True)
class InvoiceResponse:
    """One Peppol Invoice Response: the status, with its reason and action codes."""

    invoice_id: str  # the invoice's BT-1 the response is about
    code: str  # AB IP UQ CA RE AP PD
    date: str
    reasons: tuple[str, ...]  # OPStatusReason: REF LEG REC QUA DEL PRI QTY ITM PAY UNR FIN PPD OTH
    actions: tuple[str, ...]  # OPStatusAction: NOA PIN NIN CNF CNP CNA OTH
    conditions: tuple[tuple[str, str], ...]  # (attribute, e.g. BT-13; description)
    note: str

    @property
    def status(self) -> str:
        return STATUSES.get(self.code, self.code)


def parse_invoice_response(body: bytes) -> InvoiceResponse:
    """Read an ApplicationResponse; ``ValueError`` when it is not one."""
    try:
        doc = etree.fromstring(body, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if etree.QName(doc).localname != "ApplicationResponse":
        raise ValueError("not an ApplicationResponse")
    ns = {"cac": CAC, "cbc": CBC}
    resp = doc.find("cac:DocumentResponse/cac:Response", ns)
    if resp is None:
        raise ValueError("ApplicationResponse without DocumentResponse/Response")
    reasons: list[str] = []
    actions: list[str] = []
    conditions: list[tuple[str, str]] = []
    for status in resp.findall("cac:Status", ns):
        code = status.find("cbc:StatusReasonCode", ns)
        if code is not None:
            (actions if code.get("listID") == "OPStatusAction" else reasons).append(
                (code.text or "").strip())
        for cond in status.findall("cac:Condition", ns):
            conditions.append((cond.findtext("cbc:AttributeID", "", ns).strip(),
                               cond.findtext("cbc:Description", "", ns).strip()))
    notes = [" ".join((s.text or "").split()) for s in resp.iter(f"{{{CBC}}}StatusReason")]
    return InvoiceResponse(
        invoice_id=doc.findtext("cac:DocumentResponse/cac:DocumentReference/cbc:ID", "",
                                ns).strip(),
        code=resp.findtext("cbc:ResponseCode", "", ns).strip(),
        date=resp.findtext("cbc:EffectiveDate", "", ns).strip(),
        reasons=tuple(reasons), actions=tuple(actions), conditions=tuple(conditions),
        note="; ".join(n for n in notes if n))
