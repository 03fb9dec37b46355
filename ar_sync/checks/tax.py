"""Tax rules: codes and rates as the account defines them; exemptions and reverse charge
backed by evidence; never silently taxed or untaxed."""

from __future__ import annotations

from collections.abc import Iterator

from ar_sync.checks import CheckContext, finding, rule
from ar_sync.models import Finding, Invoice, InvoiceLine, TaxKind
from ar_sync.money import plain


def _kind(ctx: CheckContext, line: InvoiceLine) -> TaxKind | None:
    tc = ctx.tax_codes.get(line.tax_code)
    return tc.kind if tc else None


@rule("tax.code_present", "Taxable lines carry a tax code")
def code_present(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if inv.customer.tax_exempt:
        return  # tax.exempt_certificate covers exempt customers
    for line in inv.lines:
        if not line.tax_code.strip():
            yield finding("tax.code_present", f"item[{line.order_line}].taxCode", "(empty)",
                          "a tax code", f"Line {line.order_line} ({line.item}) of sales order "
                          f"{inv.order_number} has no tax code; NetSuite cannot tax it right.")


@rule("tax.rate_matches_code", "Each line's tax rate is its code's rate")
def rate_matches_code(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.tax_codes:
        return
    for line in inv.lines:
        if not line.tax_code:
            continue
        tc = ctx.tax_codes.get(line.tax_code)
        if tc is None:
            yield finding("tax.rate_matches_code", f"item[{line.order_line}].taxCode",
                          line.tax_code, "a tax code of the account",
                          f"Line {line.order_line} uses tax code {line.tax_code!r}, which the "
                          "account does not have.")
        elif line.tax_rate != tc.rate:
            yield finding("tax.rate_matches_code", f"item[{line.order_line}].taxRate1",
                          f"{plain(line.tax_rate)}%", f"{plain(tc.rate)}%",
                          f"Line {line.order_line} is taxed at {plain(line.tax_rate)}% but "
                          f"tax code {tc.code} is {plain(tc.rate)}%.")


@rule("tax.exempt_certificate", "A tax-exempt customer has a valid certificate and no tax")
def exempt_certificate(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    c = inv.customer
    if not c.tax_exempt:
        return
    if not c.exemption_certificate.strip():
        yield finding("tax.exempt_certificate", "resaleNumber", "(none on file)",
                      "an exemption certificate valid on the invoice date",
                      f"{c.name} is marked tax-exempt but has no exemption certificate on file. "
                      "Get the certificate, or remove the exemption so tax is charged.")
    elif c.exemption_expires and c.exemption_expires < inv.tran_date:
        yield finding("tax.exempt_certificate", "resaleNumber",
                      f"{c.exemption_certificate} expired {c.exemption_expires}",
                      f"a certificate valid on {inv.tran_date}",
                      f"{c.name}'s exemption certificate {c.exemption_certificate} expired on "
                      f"{c.exemption_expires}; request a renewed certificate before invoicing.")
    for line in inv.lines:
        if line.tax_rate or line.tax_amount:
            yield finding("tax.exempt_certificate", f"item[{line.order_line}].taxCode",
                          f"{line.tax_code} {plain(line.tax_rate)}%", "an exempt code at 0%",
                          f"{c.name} is tax-exempt but line {line.order_line} is taxed at "
                          f"{plain(line.tax_rate)}%.")


@rule("tax.reverse_charge", "Reverse charge has the buyer's VAT id and a zero rate")
def reverse_charge(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    lines = [ln for ln in inv.lines if _kind(ctx, ln) is TaxKind.REVERSE_CHARGE]
    if lines and not inv.customer.vat_id.strip():
        yield finding("tax.reverse_charge", "vatRegNumber", "(empty)", "the buyer's VAT id",
                      f"Sales order {inv.order_number} uses EU reverse charge but "
                      f"{inv.customer.name} has no VAT id in NetSuite; without it the invoice "
                      "must carry VAT. Add the VAT id (check it in VIES).")
    for line in lines:
        if line.tax_rate != 0:
            yield finding("tax.reverse_charge", f"item[{line.order_line}].taxRate1",
                          f"{plain(line.tax_rate)}%", "0%",
                          f"Line {line.order_line} is reverse charge but taxed at "
                          f"{plain(line.tax_rate)}%.")


@rule("tax.nexus_zero", "No zero tax on a taxable line where the seller has nexus")
def nexus_zero(inv: Invoice, ctx: CheckContext) -> Iterator[Finding]:
    c = inv.customer
    if c.tax_exempt or c.bill_to.country != "US" or c.bill_to.state not in ctx.nexus_states:
        return
    for line in inv.lines:
        kind = _kind(ctx, line)
        if line.tax_rate == 0 and kind in (TaxKind.STANDARD, TaxKind.ZERO, None):
            yield finding("tax.nexus_zero", f"item[{line.order_line}].taxCode",
                          f"{line.tax_code or '(none)'} at 0%", "the state's sales tax",
                          f"Line {line.order_line} ({line.item}) goes to {c.bill_to.state}, where "
                          f"we collect sales tax, but is taxed at 0% and {c.name} is not exempt.")
