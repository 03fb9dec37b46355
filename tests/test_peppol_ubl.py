"""Peppol BIS Billing 3.0: every UBL document the builder makes passes the official UBL 2.1
XSD, the EN 16931 rules and the Peppol rules; Invoice Responses map onto the taxonomy; the
connector passes the conformance kit against a loopback access point and into a directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ar_sync.connector import RejectionReason as R
from ar_sync.documents.ubl import build, parse_invoice_response
from ar_sync.documents.validation import UblValidator
from ar_sync.models import OutcomeStatus, Seller
from ar_sync.testing import ConnectorConformance, sample_invoice
from ar_sync_peppol import PeppolConnector, response_outcome
from tests.conftest import INVOICE_RESPONSES, PEPPOL_EXAMPLES, UBL_XSD_DIR, need_shared
from tests.peppol_fake import TOKEN, FakeAccessPoint, serve_access_point
from tests.ubl_corpus import US, corpus


@pytest.mark.parametrize("name", sorted(corpus()))
def test_corpus_passes_xsd_en16931_and_peppol(name: str, ubl_validator: UblValidator,
                                              seller: Seller) -> None:
    body = build(corpus()[name], seller)
    fatal = [f for f in ubl_validator.findings(body) if f[1] == "fatal"]
    assert fatal == []


def test_validator_really_catches_a_missing_reference(ubl_validator: UblValidator,
                                                      seller: Seller) -> None:
    body = build(corpus()["no-po-buyer-reference"], seller, buyer_reference="x")
    broken = body.replace(b"<cbc:BuyerReference>x</cbc:BuyerReference>", b"")
    assert "PEPPOL-EN16931-R003" in {rule for rule, _, _ in ubl_validator.findings(broken)}


def test_official_peppol_examples_pass_the_same_validator(ubl_validator: UblValidator) -> None:
    need_shared(PEPPOL_EXAMPLES)
    for path in sorted(PEPPOL_EXAMPLES.glob("*.xml")):
        fatal = [f for f in ubl_validator.findings(path.read_bytes()) if f[1] == "fatal"]
        assert fatal == [], path.name


def test_official_invoice_responses_round_trip() -> None:
    need_shared(INVOICE_RESPONSES)
    files = sorted(INVOICE_RESPONSES.glob("*.xml"))
    assert len(files) == 13
    seen = set()
    for path in files:
        resp = parse_invoice_response(path.read_bytes())
        assert resp.code in ("AB", "IP", "UQ", "CA", "RE", "AP", "PD") and resp.invoice_id
        outcome = response_outcome(resp, "peppol:1")
        rejected = resp.code in ("UQ", "RE")
        assert (outcome.status is OutcomeStatus.REJECTED) == rejected
        seen.add(resp.code)
    assert seen == {"AP", "CA", "IP", "PD", "RE", "UQ"}
    missing = parse_invoice_response((INVOICE_RESPONSES / "T111-uc006b-Missing PO.xml")
                                     .read_bytes())
    outcome = response_outcome(missing, "peppol:1")
    assert (missing.code, missing.reasons, missing.actions) == ("UQ", ("REF",), ("PIN",))
    assert (outcome.reason_code, outcome.field) == (R.MISSING_PO, "BT-13")
    assert "PO0001" in outcome.remote_text


# -- the connector against a loopback access point ----------------------------------------

@pytest.fixture
def access_point() -> Iterator[FakeAccessPoint]:
    need_shared(UBL_XSD_DIR)
    with serve_access_point(UblValidator(UBL_XSD_DIR)) as ap:
        yield ap


def ap_settings(ap: FakeAccessPoint, seller: Seller, **over: Any) -> dict[str, Any]:
    return {"url": ap.url, "token": SecretStr(TOKEN), "xsd_dir": UBL_XSD_DIR,
            "seller": seller} | over


PEPPOL_SAMPLE = dataclasses.replace(sample_invoice(), customer=US)


class TestPeppolAccessPoint(ConnectorConformance):
    @pytest.fixture
    def connector(self, access_point: FakeAccessPoint, seller: Seller) -> PeppolConnector:
        return PeppolConnector("peppol", ap_settings(access_point, seller))


class TestPeppolDirectory(ConnectorConformance):
    @pytest.fixture
    def connector(self, tmp_path: Path, seller: Seller) -> PeppolConnector:
        return PeppolConnector("peppol", {"directory": tmp_path / "out", "seller": seller})


def test_status_carries_the_buyers_invoice_response(access_point: FakeAccessPoint,
                                                    seller: Seller) -> None:
    need_shared(INVOICE_RESPONSES)
    conn = PeppolConnector("peppol", ap_settings(access_point, seller))
    sent = conn.submit(PEPPOL_SAMPLE, conn.render(PEPPOL_SAMPLE))
    assert sent.status is OutcomeStatus.ACCEPTED
    access_point.response_xml[PEPPOL_SAMPLE.key] = (
        INVOICE_RESPONSES / "T111-uc006b-Missing PO.xml").read_text()
    seen = conn.status(PEPPOL_SAMPLE.key)
    assert seen is not None and seen.reason_code == R.MISSING_PO
    assert seen.reference == sent.reference


def test_bad_token_is_authentication(access_point: FakeAccessPoint, seller: Seller) -> None:
    conn = PeppolConnector("peppol", ap_settings(access_point, seller, token=SecretStr("no")))
    outcome = conn.submit(PEPPOL_SAMPLE, conn.render(PEPPOL_SAMPLE))
    assert outcome.reason_code == R.AUTHENTICATION


def test_invalid_ubl_is_stopped_before_the_access_point(access_point: FakeAccessPoint,
                                                        seller: Seller) -> None:
    conn = PeppolConnector("peppol", ap_settings(access_point, seller))
    doc = conn.render(PEPPOL_SAMPLE)
    broken = dataclasses.replace(doc, body=doc.body.replace(b"<cbc:IssueDate>2026-11-01",
                                                            b"<cbc:IssueDate>01/11/2026"))
    outcome = conn.submit(PEPPOL_SAMPLE, broken)
    assert outcome.reason_code == R.FORMAT_ERROR and access_point.docs == {}


def test_settings_are_validated() -> None:
    assert PeppolConnector.validate_settings({"directory": "x"}) == []
    problems = dict(PeppolConnector.validate_settings(
        {"url": "http://ap", "directory": "x", "tax_categories": {"A": "Q"}}))
    assert {"url", "token_env", "tax_categories"} <= set(problems)


def test_broken_access_point_answers_are_transient_never_a_crash(
        access_point: FakeAccessPoint, seller: Seller) -> None:
    """A proxy's HTML page or an answer cut short, on submit and on status: the connector
    raises ar-sync's errors (ambiguous when the document may have arrived), never requests'
    or json's own, which would stop the cycle."""
    from http.server import BaseHTTPRequestHandler

    from conftest import serve_http

    from ar_sync.errors import AmbiguousError, TransientError

    class Broken(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if self.command == "POST":
                self.rfile.read(int(self.headers["Content-Length"]))
            if "cut" in self.path:  # promises 400 bytes, sends 20, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "400")
                self.end_headers()
                self.wfile.write(b'{"id": "doc-1", "st')
                self.close_connection = True
                return
            body = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Broken) as base:
        for path in ("/html", "/cut"):
            conn = PeppolConnector("peppol", ap_settings(access_point, seller,
                                                         url=base + path))
            with pytest.raises(AmbiguousError):
                conn.submit(PEPPOL_SAMPLE, conn.render(PEPPOL_SAMPLE))
            with pytest.raises(TransientError):
                conn.status(PEPPOL_SAMPLE.key)
