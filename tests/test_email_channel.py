"""E-mail with a PDF, against a real SMTP server on loopback (aiosmtpd) with STARTTLS and
login; the PDF's text holds the invoice number, PO, total and due date."""

from __future__ import annotations

import datetime as dt
import email
import io
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from pypdf import PdfReader

from ar_sync.documents.pdf import render_pdf
from ar_sync.errors import FatalError
from ar_sync.models import OutcomeStatus, Seller
from ar_sync.testing import ConnectorConformance, sample_invoice
from ar_sync_email import EmailConnector

USER, PASSWORD = "billing", "smtp-test-password"


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    port: int = 0
    ca_file: Path = Path()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    cert, key = _certificate(tmp_path_factory.mktemp("tls"))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    box = Mailbox(ca_file=cert)
    with socket.socket() as probe:  # aiosmtpd connects to itself at start: it needs a port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="localhost", port=port, tls_context=tls,
                            require_starttls=True, auth_required=True,
                            authenticator=_authenticator)
    controller.start()
    box.port = port
    yield box
    controller.stop()


def settings(box: Mailbox, tmp_path: Path, seller: Seller, **over: Any) -> dict[str, Any]:
    return {"host": "localhost", "port": box.port, "username": USER,
            "password": SecretStr(PASSWORD), "from_address": "billing@meridian.example.com",
            "ca_file": box.ca_file, "sent_dir": tmp_path / "sent", "timeout_seconds": 5,
            "seller": seller} | over


class TestEmailConformance(ConnectorConformance):
    @pytest.fixture
    def connector(self, smtp_server: Mailbox, tmp_path: Path, seller: Seller) -> EmailConnector:
        return EmailConnector("email", settings(smtp_server, tmp_path, seller))


def test_pdf_text_has_number_po_total_and_due_date(seller: Seller) -> None:
    inv = sample_invoice()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(
        render_pdf(inv, seller))).pages)
    for expected in ("INV-9001", "PO-445566", "1,490.78", "2026-12-01", "Net 30",
                     "Northwind Traders Inc.", "PO Box 84512", "IBAN IE29AIBK93115212345678",
                     "Premium support", "100.78"):
        assert expected in text, expected
    assert render_pdf(inv, seller) == render_pdf(inv, seller)


def test_pdf_survives_names_outside_latin1(seller: Seller) -> None:
    inv = sample_invoice()
    odd = inv.customer.__class__(**{**{f: getattr(inv.customer, f) for f in
                                       inv.customer.__dataclass_fields__},
                                    "name": "Łódź Ωmega – €"})
    text = PdfReader(io.BytesIO(render_pdf(sample_invoice(customer=odd), seller))) \
        .pages[0].extract_text()
    assert "mega" in text and "dz" in text


def test_message_goes_over_starttls_with_pdf_and_ubl(smtp_server: Mailbox, tmp_path: Path,
                                                    seller: Seller) -> None:
    conn = EmailConnector("email", settings(smtp_server, tmp_path, seller, attach_ubl=True))
    inv = sample_invoice("so:300:2026-11-01")
    outcome = conn.submit(inv, conn.render(inv))
    assert outcome.status is OutcomeStatus.ACCEPTED
    msg = smtp_server.messages[-1]
    assert msg["To"] == "ap@northwind.example.com" and "INV-9001" in msg["Subject"]
    names = [p.get_filename() for p in msg.walk() if p.get_filename()]
    assert names == ["INV-9001.pdf", "INV-9001.xml"]
    assert outcome.reference == msg["Message-ID"]
    assert PASSWORD.encode() not in (tmp_path / "sent" / "so_300_2026-11-01.eml").read_bytes()


def test_wrong_password_stops_the_channel(smtp_server: Mailbox, tmp_path: Path,
                                          seller: Seller) -> None:
    conn = EmailConnector("email", settings(smtp_server, tmp_path, seller,
                                            password=SecretStr("nope")))
    inv = sample_invoice("so:301:2026-11-01")
    with pytest.raises(FatalError):
        conn.submit(inv, conn.render(inv))
    assert conn.status(inv.key) is None  # nothing went out, nothing is pending


def test_settings_are_validated() -> None:
    assert EmailConnector.validate_settings(
        {"host": "h", "from_address": "a@b", "sent_dir": "s"}) == []
    problems = dict(EmailConnector.validate_settings({"username": "u", "x": 1}))
    assert {"host", "from_address", "sent_dir", "password_env", "x"} <= set(problems)
