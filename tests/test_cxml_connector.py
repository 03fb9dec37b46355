"""cXML delivery to Coupa and SAP Business Network, against loopback fakes that validate each
request with the real InvoiceDetail.dtd and answer with the documented codes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ar_sync.connector import RejectionReason as R
from ar_sync.connector import load_factory
from ar_sync.documents.cxml import parse_status_update
from ar_sync.documents.validation import DtdValidator
from ar_sync.errors import AmbiguousError, TransientError
from ar_sync.models import OutcomeStatus, Seller
from ar_sync.testing import ConnectorConformance, sample_invoice
from ar_sync_cxml import AribaConnector, CoupaConnector, CxmlConnector
from tests.conftest import CXML_MAIN_DTD, need_shared
from tests.cxml_fake import SECRET, FakePortal, serve_portal


def settings(portal: FakePortal, dtd: Path, seller: Seller, **over: Any) -> dict[str, Any]:
    return {"url": f"{portal.url}/cxml/invoices", "dtd_file": dtd,
            "shared_secret": SecretStr(SECRET), "from_identity": "MERIDIAN",
            "to_identity": "BUYER-1", "remit_to_id": "RT-BOSTON",
            "status_url": f"{portal.url}/status", "read_timeout_seconds": 5,
            "seller": seller} | over


@pytest.fixture
def coupa(cxml_dtd: Path) -> Iterator[FakePortal]:
    with serve_portal("coupa", cxml_dtd) as portal:
        yield portal


@pytest.fixture
def ariba(cxml_dtd: Path) -> Iterator[FakePortal]:
    with serve_portal("ariba", cxml_dtd) as portal:
        yield portal


class TestCoupaConformance(ConnectorConformance):
    @pytest.fixture
    def connector(self, coupa: FakePortal, cxml_dtd: Path, seller: Seller) -> CoupaConnector:
        return CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))


class TestAribaConformance(ConnectorConformance):
    @pytest.fixture
    def connector(self, ariba: FakePortal, cxml_dtd: Path, seller: Seller) -> AribaConnector:
        return AribaConnector("ariba", settings(ariba, cxml_dtd, seller))


def test_entry_points_name_both_flavours() -> None:
    assert load_factory("coupa") is CoupaConnector
    assert load_factory("ariba") is AribaConnector


def test_rendered_document_is_valid_and_holds_no_secret(coupa: FakePortal, cxml_dtd: Path,
                                                        seller: Seller) -> None:
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))
    doc = conn.render(sample_invoice())
    assert DtdValidator(cxml_dtd).errors(doc.body) == []
    assert SECRET.encode() not in doc.body
    text = doc.body.decode()
    for expected in ('invoiceID="INV-9001"', 'orderID="PO-445566"', "<UnitOfMeasure>EA<",
                     'role="remitTo" addressID="RT-BOSTON"', 'invoiceLineNumber="2"',
                     "<Money currency=\"USD\">1490.78</Money>", 'lineNumber="1"'):
        assert expected in text
    conn.submit(sample_invoice(), doc)
    assert SECRET.encode() in coupa.received[-1]  # only on the wire


def test_credit_memo_validates(coupa: FakePortal, cxml_dtd: Path, seller: Seller) -> None:
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))
    credit = sample_invoice(is_credit=True)
    doc = conn.render(credit)
    assert 'purpose="creditMemo"' in doc.body.decode()
    assert DtdValidator(cxml_dtd).errors(doc.body) == []


def test_a_401_inside_http_200_is_authentication(coupa: FakePortal, cxml_dtd: Path,
                                                 seller: Seller) -> None:
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller,
                                            shared_secret=SecretStr("wrong")))
    inv = sample_invoice()
    outcome = conn.submit(inv, conn.render(inv))
    assert outcome.status is OutcomeStatus.REJECTED
    assert (outcome.reason_code, outcome.remote_code) == (R.AUTHENTICATION, "401")
    assert "wrong" not in outcome.remote_text


def test_coupa_500_that_means_a_bad_po(coupa: FakePortal, cxml_dtd: Path,
                                       seller: Seller) -> None:
    coupa.invalid_pos.add("PO-445566")
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))
    inv = sample_invoice()
    outcome = conn.submit(inv, conn.render(inv))
    assert (outcome.reason_code, outcome.remote_code) == (R.INVALID_PO, "500")
    assert "Invalid Coupa PO number" in outcome.remote_text
    assert outcome.field == "OrderReference/@orderID"


@pytest.mark.parametrize(("http", "code", "text", "reason"), [
    (403, 403, "cXML invoicing is not allowed for this supplier", R.CHANNEL_NOT_ENABLED),
    (406, 406, "could not parse", R.FORMAT_ERROR),
    (417, 417, "Invalid order reference: PO line 7 does not exist", R.INVALID_PO),
    (417, 417, "the invoice number has already been used for this supplier", R.DUPLICATE),
    (450, 450, "cXML version not supported", R.FORMAT_ERROR),
    (500, 500, "Unexpected server error: invalid UOM", R.AMOUNT_MISMATCH),
    (500, 500, "billTo in the cXML file does not match the billTo on the Coupa PO",
     R.ADDRESS_MISMATCH),
])
def test_coupa_codes(coupa: FakePortal, cxml_dtd: Path, seller: Seller, http: int, code: int,
                     text: str, reason: R) -> None:
    coupa.forced.append((http, code, text))
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))
    inv = sample_invoice()
    outcome = conn.submit(inv, conn.render(inv))
    assert outcome.reason_code == reason and outcome.remote_code == str(code)


def test_coupa_500_without_a_business_text_is_transient(coupa: FakePortal, cxml_dtd: Path,
                                                        seller: Seller) -> None:
    coupa.forced.append((500, 500, "Unexpected server error"))
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))
    with pytest.raises(TransientError):
        conn.submit(sample_invoice(), conn.render(sample_invoice()))


def test_ariba_over_invoiced_po_and_duplicates(ariba: FakePortal, cxml_dtd: Path,
                                               seller: Seller) -> None:
    conn = AribaConnector("ariba", settings(ariba, cxml_dtd, seller))
    ariba.over_invoiced_pos.add("PO-445566")
    inv = sample_invoice()
    over = conn.submit(inv, conn.render(inv))
    assert (over.reason_code, over.remote_code) == (R.PO_OVER_INVOICED, "500")
    ariba.over_invoiced_pos.clear()
    assert conn.submit(inv, conn.render(inv)).status is OutcomeStatus.ACCEPTED
    again = conn.submit(inv, conn.render(inv))
    assert again.reason_code == R.DUPLICATE and "INVOICE_DUPLICATE" in again.remote_text


def test_ariba_201_is_pending_with_a_reference(ariba: FakePortal, cxml_dtd: Path,
                                               seller: Seller) -> None:
    ariba.pending = True
    conn = AribaConnector("ariba", settings(ariba, cxml_dtd, seller))
    outcome = conn.submit(sample_invoice(), conn.render(sample_invoice()))
    assert outcome.status is OutcomeStatus.PENDING and outcome.reference.startswith("ariba:")


@pytest.mark.parametrize(("code", "text", "reason"), [
    (400, "INV-13: order is obsolete", R.INVALID_PO),
    (400, "INV-98: tax ID missing", R.TAX_ERROR),
    (401, "SharedSecret mismatch", R.AUTHENTICATION),
    (500, "ANERR-12: something the customer decided", R.OTHER),
])
def test_ariba_codes(ariba: FakePortal, cxml_dtd: Path, seller: Seller, code: int, text: str,
                     reason: R) -> None:
    ariba.forced.append((200, code, text))
    conn = AribaConnector("ariba", settings(ariba, cxml_dtd, seller))
    outcome = conn.submit(sample_invoice(), conn.render(sample_invoice()))
    assert outcome.reason_code == reason


def test_invalid_document_never_reaches_the_portal(coupa: FakePortal, cxml_dtd: Path,
                                                   seller: Seller) -> None:
    conn = CoupaConnector("coupa", settings(coupa, cxml_dtd, seller))
    doc = conn.render(sample_invoice())
    broken = dataclasses.replace(doc, body=doc.body.replace(b"<InvoiceDetailSummary>",
                                                            b"<Bogus/><InvoiceDetailSummary>"))
    outcome = conn.submit(sample_invoice(), broken)
    assert outcome.reason_code == R.FORMAT_ERROR and outcome.remote_code == "DTD"
    assert coupa.received == []


def test_timeouts_are_ambiguous_and_refused_connections_transient(cxml_dtd: Path,
                                                                   seller: Seller) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    portal = FakePortal("coupa", DtdValidator(cxml_dtd), url=f"http://127.0.0.1:{port}")
    conn = CoupaConnector("coupa", settings(portal, cxml_dtd, seller, read_timeout_seconds=0.3))
    with pytest.raises(AmbiguousError):
        conn.submit(sample_invoice(), conn.render(sample_invoice()))
    listener.close()
    with pytest.raises(TransientError) as exc:
        conn.submit(sample_invoice(), conn.render(sample_invoice()))
    assert not isinstance(exc.value, AmbiguousError)


def test_settings_are_validated(cxml_dtd: Path) -> None:
    good = {"url": "https://x.coupahost.com/cxml/invoices", "dtd_file": cxml_dtd,
            "shared_secret_env": "X", "from_identity": "A", "to_identity": "B"}
    assert CxmlConnector.validate_settings(good) == []
    bad = CoupaConnector.validate_settings({"url": "ftp://x", "dtd_file": "/nope", "x": 1})
    keys = {k for k, _ in bad}
    assert {"url", "dtd_file", "x", "from_identity", "shared_secret_env"} <= keys


def test_status_update_request_sample_parses() -> None:
    need_shared(CXML_MAIN_DTD)
    sample = CXML_MAIN_DTD.parents[2] / "samples" / "StatusUpdateRequest.xml"
    update = parse_status_update(sample.read_bytes())
    assert update.status_code == "200" and update.invoice_id == "0c300508b7863dcclb_14999"
