"""Shared fixtures for the delivery-channel tests: the official e-invoicing schemas in
``../shared/einvoice`` (located from the repo root) and validators built once per session.

Without ``../shared`` these tests skip with the reason; under ``CI=true`` they fail instead,
so a CI machine that lost the schemas cannot pass silently.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ar_sync.models import Address, Seller

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "einvoice"
CXML_DTD = SHARED / "cxml/officeluv-cxml/spec/fixtures/1.2.037-InvoiceDetail.dtd"
CXML_MAIN_DTD = SHARED / "cxml/cxml-php/tests/metadata/cxml/dtd/1.2.063/cXML.dtd"
UBL_XSD_DIR = SHARED / "ubl-2.1/oasis-ubl-2.1-os/xsd/maindoc"
PEPPOL_XSLT_DIR = (SHARED / "peppol-bis-3/phive-rules/phive-rules-peppol/src/main/resources/"
                   "external/schematron/openpeppol/2026.5/xslt")
SCHEMATRON = (PEPPOL_XSLT_DIR / "CEN-EN16931-UBL.xslt", PEPPOL_XSLT_DIR / "PEPPOL-EN16931-UBL.xslt")
PEPPOL_EXAMPLES = SHARED / "peppol-bis-3/peppol-bis-invoice-3/rules/examples"
INVOICE_RESPONSES = SHARED / "peppol-bis-3/poacc-upgrade-3/rules/examples/Invoice reponse use cases"


def need_shared(*paths: Path) -> None:
    """Skip (fail under CI=true) when a file from ../shared/einvoice is missing."""
    missing = [str(p) for p in paths if not p.exists()]
    if not missing:
        return
    reason = f"official e-invoicing files not found (expected ../shared/einvoice): {missing[0]}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cxml_dtd() -> Path:
    need_shared(CXML_DTD)
    return CXML_DTD


@pytest.fixture(scope="session")
def ubl_validator() -> Iterator[object]:
    """The UBL XSD plus EN 16931 and Peppol schematron, compiled once per test run."""
    need_shared(UBL_XSD_DIR, *SCHEMATRON)
    from ar_sync.documents.validation import UblValidator

    yield UblValidator(UBL_XSD_DIR, SCHEMATRON)


SELLER = Seller(
    name="Meridian Cloud Systems Inc.",
    address=Address("Meridian Cloud Systems Inc.", "200 Clarendon St", "Floor 12", "Boston",
                    "MA", "02116", "US"),
    remit_to=Address("Meridian Cloud Systems Inc.", "PO Box 84512", "", "Boston", "MA",
                     "02284", "US"),
    vat_id="IE3456789OH", tax_id="46-1234567", peppol_id="0088:5790000436057",
    email="billing@meridian.example.com", phone="+1 617 555 0100",
    iban="IE29AIBK93115212345678", bic="AIBKIE2D", bank_account="000123456789",
    bank_routing="011000138", bank_name="Bank of Boston",
    payment_note="Please quote the invoice number with your payment.")


@pytest.fixture
def seller() -> Seller:
    return SELLER


# -- loopback servers shared by tests ---------------------------------------------------------

@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a free port) running ``handler``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A loopback port nobody listens on (aiosmtpd needs one named up front)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """What an SMTP server on loopback received: envelopes, and each message's text."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def texts(self) -> list[str]:
        return [message_from_bytes(e.content).get_payload(decode=True).decode()
                for e in self.messages]


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """A plain SMTP server (aiosmtpd) on loopback: its port and its inbox."""
    from aiosmtpd.controller import Controller

    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def minimal_config(directory: Path, extra: str = "") -> Path:
    """The smallest valid config (one outbox channel, an empty library) plus ``extra``."""
    (directory / "customers.toml").write_text("")
    path = directory / "ar-sync.toml"
    path.write_text('[requirements]\nlibrary = "customers.toml"\n[delivery]\n'
                    'default_channel = "email"\n[channels.email]\nconnector = "outbox"\n'
                    'directory = "out"\n' + extra)
    return path
