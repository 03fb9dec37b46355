"""The invoice as a PDF a person reads: seller and remit-to, customer and bill-to, number and
date, PO, terms and due date, lines, tax, totals and how to pay.

fpdf2 with the built-in Helvetica (no font files, pure Python). The creation date is the
invoice date, so the same invoice renders to the same bytes. Text outside Latin-1 is
transliterated where it can be and replaced where it cannot; the PDF never fails on a name.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal

from fpdf import FPDF

from ar_sync.documents import amount, number
from ar_sync.models import Address, Invoice, Seller


def render_pdf(invoice: Invoice, seller: Seller) -> bytes:
    """The invoice PDF (A4, one or more pages)."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(dt.datetime.combine(invoice.tran_date, dt.time(), dt.UTC))
    pdf.set_title(_t(f"Invoice {invoice.number}"))
    pdf.set_author(_t(seller.name))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    _header(pdf, invoice, seller)
    _parties(pdf, invoice, seller)
    _references(pdf, invoice)
    _lines(pdf, invoice)
    _totals(pdf, invoice)
    _payment(pdf, invoice, seller)
    return bytes(pdf.output())


def _header(pdf: FPDF, inv: Invoice, seller: Seller) -> None:
    pdf.set_font("Helvetica", "B", 18)
    title = "CREDIT NOTE" if inv.is_credit else "INVOICE"
    pdf.cell(0, 10, _t(f"{title} {inv.number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    ids = [x for x in (f"VAT {seller.vat_id}" if seller.vat_id else "",
                       f"EIN {seller.tax_id}" if seller.tax_id else "", seller.email,
                       seller.phone) if x]
    pdf.cell(0, 5, _t(f"{seller.name}   " + "   ".join(ids)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _parties(pdf: FPDF, inv: Invoice, seller: Seller) -> None:
    blocks = [("From", [seller.name, *_addr(seller.address)]),
              ("Remit to", [seller.name, *_addr(seller.remit_to)]),
              ("Bill to", [inv.entity_name or inv.customer.name, *_addr(inv.customer.bill_to),
                           *([f"VAT {inv.customer.vat_id}"] if inv.customer.vat_id else [])])]
    top = pdf.get_y()
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / 3
    bottom = top
    for i, (label, lines) in enumerate(blocks):
        pdf.set_xy(pdf.l_margin + i * width, top)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(width, 5, label, new_x="LEFT", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        for text in lines:
            pdf.cell(width, 4.5, _t(text)[:48], new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom + 4)


def _references(pdf: FPDF, inv: Invoice) -> None:
    rows = [("Invoice number", inv.number), ("Invoice date", inv.tran_date.isoformat()),
            ("Customer", f"{inv.customer.name} ({inv.customer.entity_id})"),
            ("PO number", inv.po_number or "-"), ("Sales order", inv.order_number),
            ("Terms", inv.customer.terms.name), ("Due date", inv.due_date.isoformat())]
    if inv.period_start and inv.period_end:
        rows.append(("Service period", f"{inv.period_start} to {inv.period_end}"))
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(35, 5, label)
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 5, _t(value), new_x="LMARGIN", new_y="NEXT")
    if inv.memo:
        pdf.multi_cell(0, 5, _t(inv.memo), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


COLUMNS = ((10, "#", "R"), (78, "Description", "L"), (18, "Qty", "R"), (12, "Unit", "L"),
           (24, "Rate", "R"), (14, "Tax %", "R"), (30, "Amount", "R"))


def _lines(pdf: FPDF, inv: Invoice) -> None:
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(230, 230, 230)
    for width, label, align in COLUMNS:
        pdf.cell(width, 6, label, border="B", align=align, fill=True)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    cur = inv.currency
    for ln in inv.lines:
        values = (str(ln.order_line), ln.description or ln.item, number(ln.quantity), ln.units,
                  _money(ln.rate, cur), number(ln.tax_rate), _money(ln.amount, cur))
        for (width, _, align), value in zip(COLUMNS, values, strict=True):
            pdf.cell(width, 5.5, _t(value)[:44], align=align)
        pdf.ln()
    pdf.ln(2)


def _totals(pdf: FPDF, inv: Invoice) -> None:
    rows = [("Subtotal", inv.subtotal)]
    if inv.discount_total:
        rows.append(("Discount", -inv.discount_total))
    if inv.shipping:
        rows.append(("Shipping", inv.shipping))
    rows += [("Tax", inv.tax_total), (f"Total {inv.currency}", inv.total)]
    for label, value in rows:
        bold = label.startswith("Total")
        pdf.set_font("Helvetica", "B" if bold else "", 10 if bold else 9)
        pdf.cell(156, 6, label, align="R")
        pdf.cell(30, 6, _money(value, inv.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _payment(pdf: FPDF, inv: Invoice, seller: Seller) -> None:
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "How to pay", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    lines = [f"Please pay {_money(inv.total, inv.currency)} {inv.currency} by "
             f"{inv.due_date.isoformat()}, quoting invoice {inv.number}."]
    if seller.iban:
        lines.append(f"IBAN {seller.iban}" + (f"   BIC {seller.bic}" if seller.bic else ""))
    if seller.bank_account:
        lines.append(f"{seller.bank_name or 'Bank'}: account {seller.bank_account}"
                     + (f", ABA routing {seller.bank_routing}" if seller.bank_routing else ""))
    lines.append(f"Cheques to: {', '.join([seller.name, *_addr(seller.remit_to)])}")
    if seller.payment_note:
        lines.append(seller.payment_note)
    for text in lines:
        pdf.multi_cell(0, 5, _t(text), new_x="LMARGIN", new_y="NEXT")


def _addr(address: Address) -> list[str]:
    parts = address.lines()
    return parts[1:] if parts and parts[0] == address.addressee else parts


def _money(value: Decimal, currency: str) -> str:
    text = amount(value, currency)
    whole, _, frac = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}" + (f".{frac}" if frac else "")
    return f"-{grouped}" if text.startswith("-") else grouped


def _t(text: str) -> str:
    """Latin-1 text for the core fonts: accents kept, others transliterated or '?'."""
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(plain or {"\u2013": "-", "\u2014": "-", "\u20ac": "EUR"}.get(ch, "?"))
    return "".join(out)
