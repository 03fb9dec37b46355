"""XML from outside (portal answers, status updates, Peppol invoice responses, SOAP answers)
never expands entities and never fetches anything: not a local file, not a DTD over the
network, not a billion laughs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions
import zeep.loader
from conftest import serve_http

from ar_sync.documents.cxml import parse_status, parse_status_update
from ar_sync.documents.ubl import parse_invoice_response
from ar_sync.netsuite.soap.client import SETTINGS

MARKER = "TOP-SECRET-FILE-CONTENT"


class Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        Recorder.hits.append(self.path)
        body = f'<!ENTITY remote "{MARKER}">'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.hits = []
    with serve_http(Recorder) as base:
        yield base


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(MARKER)
    return path


def hostile(root: str, inner: str, secret_file: Path, server: str, laughs: bool) -> bytes:
    """A document whose DOCTYPE defines a file entity, a remote DTD and (``laughs``) nested
    entities; without ``laughs`` the ``&i;`` reference is to a plain entity."""
    nested = '<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">' + "".join(
        f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("bcdefgh", "cdefghi",
                                                                    strict=True))
    nested = nested if laughs else '<!ENTITY i "lollol">'
    return (f'<?xml version="1.0"?>\n<!DOCTYPE {root} SYSTEM "{server}/evil.dtd" [\n'
            f'<!ENTITY file SYSTEM "file://{secret_file}">\n'
            f'<!ENTITY % remote SYSTEM "{server}/param.dtd">\n%remote;\n{nested}\n]>\n'
            f"{inner}").encode()


LAUGHS = pytest.mark.parametrize("laughs", [False, True], ids=["file-entity", "billion-laughs"])


@LAUGHS
def test_cxml_answers_expand_nothing_and_fetch_nothing(secret_file: Path, server: str,
                                                      laughs: bool) -> None:
    body = hostile("cXML", '<cXML payloadID="1@x"><Response><Status code="500" text="Bad">'
                   "&file; &i;</Status></Response></cXML>", secret_file, server, laughs)
    started = time.monotonic()
    status = parse_status(body)
    assert time.monotonic() - started < 1, "no entity expansion (a billion laughs)"
    if laughs:
        assert status is None, "refused as not cXML (libxml2's amplification limit)"
    else:
        assert status is not None and status.code == "500"
        assert MARKER not in status.text + status.detail and "lol" not in status.detail
    assert Recorder.hits == [], "no DTD fetched over the network"


@LAUGHS
def test_status_updates_from_a_portal_expand_nothing(secret_file: Path, server: str,
                                                     laughs: bool) -> None:
    body = hostile("cXML", '<cXML payloadID="2@x"><Request><StatusUpdateRequest>'
                   '<DocumentReference payloadID="inv-1"/><Status code="200" text="OK">&file;'
                   '</Status><InvoiceStatus type="rejected"><Comments>&file; &i;</Comments>'
                   "</InvoiceStatus></StatusUpdateRequest></Request></cXML>",
                   secret_file, server, laughs)
    if laughs:
        with pytest.raises(ValueError, match="not XML"):
            parse_status_update(body)
        assert Recorder.hits == []
        return
    update = parse_status_update(body)
    assert update.invoice_status == "rejected" and update.invoice_id == "inv-1"
    assert MARKER not in update.comments and "lol" not in update.comments
    assert Recorder.hits == []


@LAUGHS
def test_peppol_invoice_responses_expand_nothing(secret_file: Path, server: str,
                                                 laughs: bool) -> None:
    ns = ('xmlns="urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2" '
          'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
          'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"')
    body = hostile("ApplicationResponse", f"<ApplicationResponse {ns}><cac:DocumentResponse>"
                   "<cac:Response><cbc:ResponseCode>RE</cbc:ResponseCode><cac:Status>"
                   "<cbc:StatusReasonCode listID=\"OPStatusReason\">REF</cbc:StatusReasonCode>"
                   "<cbc:StatusReason>&file; &i;</cbc:StatusReason></cac:Status></cac:Response>"
                   "<cac:DocumentReference><cbc:ID>INV-1</cbc:ID></cac:DocumentReference>"
                   "</cac:DocumentResponse></ApplicationResponse>", secret_file, server, laughs)
    if laughs:
        with pytest.raises(ValueError, match="not XML"):
            parse_invoice_response(body)
        assert Recorder.hits == []
        return
    answer = parse_invoice_response(body)
    assert MARKER not in repr(answer) and "lollol" not in repr(answer)
    assert Recorder.hits == []


def test_soap_answers_with_a_doctype_are_refused(secret_file: Path, server: str) -> None:
    """zeep, as the SOAP gateway configures it, refuses DTDs and entities outright."""
    envelope = hostile("soapenv:Envelope", '<soapenv:Envelope xmlns:soapenv='
                       '"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&file;'
                       "</soapenv:Body></soapenv:Envelope>", secret_file, server, True)
    with pytest.raises((zeep.exceptions.DTDForbidden, zeep.exceptions.EntitiesForbidden,
                        zeep.exceptions.XMLSyntaxError)):
        zeep.loader.parse_xml(envelope, None, settings=SETTINGS)
    assert Recorder.hits == []
