"""Loopback fakes of a Coupa and an SAP Business Network cXML invoice endpoint.

Real HTTP servers on 127.0.0.1 that validate every request against the real
InvoiceDetail.dtd and answer with the documented codes, including the confusing ones: a
``<Status code="401">`` inside an HTTP 200 (wrong shared secret), a Coupa 500 that means an
invalid PO, an SAP Business Network 500 with ANERR for an over-invoiced PO. ``GET
/status/<key>`` answers what was accepted, as a portal status API would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from ar_sync.documents.cxml import SAFE_PARSER, response
from ar_sync.documents.validation import DtdValidator

SECRET = "cxml-test-secret"


@dataclass
class FakePortal:
    flavour: str  # "coupa" or "ariba"
    dtd: DtdValidator
    secret: str = SECRET
    invalid_pos: set[str] = field(default_factory=set)  # PO numbers the buyer does not know
    over_invoiced_pos: set[str] = field(default_factory=set)
    forced: list[tuple[int, int, str]] = field(default_factory=list)  # (http, cxml, text)
    pending: bool = False  # answer 201 (SAP Business Network: status updates follow)
    accepted: dict[str, dict[str, str]] = field(default_factory=dict)  # by ar-sync key
    invoice_ids: set[str] = field(default_factory=set)
    received: list[bytes] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)  # (cxml code, invoiceID)
    url: str = ""

    def handle(self, body: bytes) -> tuple[int, bytes]:
        self.received.append(body)
        if self.forced:
            http, code, text = self.forced.pop(0)
            return http, response(code, text, text)
        errors = self.dtd.errors(body)
        if errors:
            return (406 if self.flavour == "coupa" else 200), response(
                406, "Not Acceptable", "Document did not validate with DTD: " + errors[0])
        doc = etree.fromstring(body, SAFE_PARSER)
        if doc.findtext("Header/Sender/Credential/SharedSecret") != self.secret:
            return 200, response(401, "Unauthorized", "SharedSecret mismatch")
        header = doc.find(".//InvoiceDetailRequestHeader")
        assert header is not None
        invoice_id = header.get("invoiceID", "")
        key = doc.findtext(".//Extrinsic[@name='ar-sync-key']") or invoice_id
        ref = doc.find(".//OrderReference")
        po = ref.get("orderID", "") if ref is not None else ""
        code, answer = self._decide(invoice_id, po, doc)
        self.answers.append((code, invoice_id))
        if code in (200, 201):
            payload = f"{self.flavour}-{len(self.accepted) + 1:05d}@fake"
            self.accepted[key] = {"reference": f"{self.flavour}:{payload}",
                                  "status": "pending" if code == 201 else "accepted"}
            self.invoice_ids.add(invoice_id)
            return 200, response(code, answer, payload=payload)
        return (500 if code == 500 else 200 if self.flavour == "ariba" else code), response(
            code, answer, answer)

    def _decide(self, invoice_id: str, po: str, doc: etree._Element) -> tuple[int, str]:
        if self.flavour == "coupa":
            if invoice_id in self.invoice_ids:
                return 417, ("Invalid attributes: the invoice number has already been used "
                             "for this supplier")
            if not po:
                return 417, "Invalid order reference: PO missing"
            if po in self.invalid_pos:
                return 500, f"Unexpected server error: Invalid Coupa PO number {po}"
            if any(not (u.text or "").strip() for u in doc.iter("UnitOfMeasure")):
                return 500, "Unexpected server error: invalid UOM"
            return 200, "OK"
        if invoice_id in self.invoice_ids:
            return 400, f"INVOICE_DUPLICATE: invoice {invoice_id} was already received"
        if po in self.over_invoiced_pos:
            return 500, ("ANERR-10000000001: ANInvoiceRule.accumulatedPoItemInvoicedAmount: "
                         "the invoice exceeds the remaining amount of the purchase order")
        if not po or po in self.invalid_pos:
            return 400, f"INV-13: order {po or '(none)'} is obsolete, duplicate or replaced"
        return (201, "Accepted") if self.pending else (200, "OK")

    def status(self, key: str) -> tuple[int, bytes]:
        found = self.accepted.get(key)
        if found is None:
            return 404, b'{"error": "not found"}'
        return 200, json.dumps(found).encode()


@contextmanager
def serve_portal(flavour: str, dtd_file: Path, **kw: object) -> Iterator[FakePortal]:
    portal = FakePortal(flavour, DtdValidator(dtd_file), **kw)  # type: ignore[arg-type]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                code, answer = portal.handle(body)
            self._send(code, answer, "text/xml")

        def do_GET(self) -> None:
            with lock:
                code, answer = portal.status(unquote(self.path.rsplit("/", 1)[-1]))
            self._send(code, answer, "application/json")

        def _send(self, code: int, body: bytes, media: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    portal.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield portal
    finally:
        server.shutdown()
        server.server_close()
