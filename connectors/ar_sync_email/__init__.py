"""E-mail delivery: the invoice PDF (optionally with its Peppol UBL) to the customer's AP
mailbox over SMTP with STARTTLS and login.

SMTP cannot be asked afterwards what it received, so the connector keeps its own sent log
(``sent_dir``): ``<key>.sending`` is written before the message goes out and becomes
``<key>.eml`` once the server accepted it. :meth:`EmailConnector.status` reads that log; a
``.sending`` without ``.eml`` means a send whose outcome is unknown, which is reported as
such (never resent blindly). The SMTP password comes from ``password_env``.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from ar_sync.connector import Document, RejectionReason, safe_filename
from ar_sync.documents.pdf import render_pdf
from ar_sync.documents.ubl import build as build_ubl
from ar_sync.errors import AmbiguousError, FatalError, TransientError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus, Seller
from ar_sync.tls import policy_of, verification_failure

R = RejectionReason
KNOWN = ("host", "port", "username", "password", "from_address", "reply_to", "starttls",
         "ca_file", "sent_dir", "attach_ubl", "timeout_seconds", "bcc", "seller")


class EmailConnector:
    """The invoice PDF by SMTP to ``invoice.customer.email``."""

    def __init__(self, channel: str, settings: Mapping[str, Any]) -> None:
        self.channel = channel
        self.seller: Seller = settings["seller"]
        self.host = str(settings["host"])
        self.port = int(settings.get("port", 587))
        self.username = str(settings.get("username", ""))
        self.password = settings.get("password")
        self.sender = str(settings["from_address"])
        self.reply_to = str(settings.get("reply_to", ""))
        self.bcc = str(settings.get("bcc", ""))
        self.starttls = bool(settings.get("starttls", True))
        self.ca_file = settings.get("ca_file")  # added to [tls] ca_bundle, for this channel
        self.tls = policy_of(settings)
        self.sent_dir = Path(settings["sent_dir"])
        self.attach_ubl = bool(settings.get("attach_ubl", False))
        self.timeout = float(settings.get("timeout_seconds", 30))

    @staticmethod
    def validate_settings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = [(k, "unknown key") for k in settings if k not in KNOWN
                    and not k.endswith("_env")]
        problems += [(k, "required") for k in ("host", "from_address", "sent_dir")
                     if k not in settings]
        if "username" in settings and "password" not in settings \
                and "password_env" not in settings:
            problems.append(("password_env", "required with username: the SMTP password"))
        if not str(settings.get("port", 587)).isdigit():
            problems.append(("port", "must be a port number"))
        return problems

    def render(self, invoice: Invoice) -> Document:
        name = safe_filename(invoice.tran_id or invoice.key)
        attachments: tuple[tuple[str, bytes], ...] = ()
        if self.attach_ubl:
            attachments = ((f"{name}.xml", build_ubl(invoice, self.seller)),)
        return Document(invoice.key, "application/pdf", f"{name}.pdf",
                        render_pdf(invoice, self.seller), attachments)

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        to = invoice.customer.email.strip()
        if "@" not in to:
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.OTHER,
                                   remote_text="the customer has no e-mail address",
                                   field="email")
        sent, sending = self._log_paths(invoice.key)
        if sent.exists():
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.DUPLICATE,
                                   reference=self._reference(sent),
                                   remote_text="this invoice was already e-mailed")
        message = self._message(invoice, document, to)
        try:
            self.sent_dir.mkdir(parents=True, exist_ok=True)
            sending.write_bytes(bytes(message))
        except OSError as exc:
            raise TransientError(f"{self.channel}: sent log not writable: {exc}") from exc
        try:
            refused = self._send(message)
        except (TransientError, FatalError) as exc:
            if not isinstance(exc, AmbiguousError):  # nothing went out: forget the intent
                sending.unlink()
            raise
        if refused:
            sending.unlink()
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.OTHER,
                                   remote_code=refused[0], remote_text=refused[1], field="email")
        os.replace(sending, sent)
        return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=str(message["Message-ID"]))

    def status(self, key: str) -> DeliveryOutcome | None:
        sent, sending = self._log_paths(key)
        if sent.exists():
            return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=self._reference(sent))
        if sending.exists():
            raise TransientError(f"{self.channel}: a send of {key} was interrupted; whether "
                                 f"the server took it is unknown (see {sending})")
        return None

    # -- plumbing ------------------------------------------------------------------------

    def _message(self, inv: Invoice, doc: Document, to: str) -> EmailMessage:
        msg = EmailMessage()
        digest = hashlib.sha256(doc.body).hexdigest()[:12]
        domain = self.sender.rsplit("@", 1)[-1]
        msg["Message-ID"] = f"<{safe_filename(inv.key)}.{digest}@{domain}>"
        msg["Date"] = formatdate(localtime=False)
        msg["From"] = self.sender
        msg["To"] = to
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        if self.bcc:
            msg["Bcc"] = self.bcc
        kind = "Credit note" if inv.is_credit else "Invoice"
        po = f", PO {inv.po_number}" if inv.po_number else ""
        msg["Subject"] = f"{kind} {inv.number} from {self.seller.name}{po}"
        msg.set_content(
            f"Dear {inv.customer.name} accounts payable,\n\n"
            f"please find attached {kind.lower()} {inv.number} dated {inv.tran_date}{po}, "
            f"for {inv.total:,} {inv.currency}, due {inv.due_date} ({inv.customer.terms.name})."
            f"\n\nRegards,\n{self.seller.name}\n{self.seller.email}\n")
        msg.add_attachment(doc.body, maintype="application", subtype="pdf",
                           filename=doc.filename)
        for name, data in doc.attachments:
            msg.add_attachment(data, maintype="application", subtype="xml", filename=name)
        return msg

    def _send(self, message: EmailMessage) -> tuple[str, str] | None:
        """Send; the refusal ``(code, text)`` if the server refused the recipient."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:  # always verified: system roots, [tls] ca_bundle, ca_file
                    smtp.starttls(context=self.tls.ssl_context(self.ca_file))
                if self.username and self.password is not None:
                    smtp.login(self.username, self.password.get_secret_value())
                try:
                    smtp.send_message(message)
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = next(iter(exc.recipients.values()))
                    return str(code), text.decode(errors="replace")
        except smtplib.SMTPAuthenticationError as exc:
            raise FatalError(f"{self.channel}: SMTP login refused ({exc.smtp_code})") from exc
        except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
            raise AmbiguousError(f"{self.channel}: SMTP connection lost while sending") from exc
        except (OSError, smtplib.SMTPException) as exc:
            if (tls := verification_failure(exc)) is not None:  # before anything was sent
                raise FatalError(f"{self.channel}: SMTP server {self.host}: {tls}") from exc
            raise TransientError(f"{self.channel}: SMTP unavailable: {exc}") from exc
        return None

    def _log_paths(self, key: str) -> tuple[Path, Path]:
        name = safe_filename(key)
        return self.sent_dir / f"{name}.eml", self.sent_dir / f"{name}.sending"

    @staticmethod
    def _reference(sent: Path) -> str:
        for line in sent.read_bytes().split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                return line.split(b":", 1)[1].strip().decode()
        return f"email:{sent.name}"
