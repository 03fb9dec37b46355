"""Peppol BIS Billing 3.0 delivery: UBL 2.1 through an access point's HTTP API, or into an
outbox directory another process hands to an access point.

Each document is validated before it leaves: against the UBL 2.1 XSD when ``xsd_dir`` is set,
and the EN 16931 + Peppol schematron when ``schematron_files`` is too (needs ``saxonche``).
A document with a fatal finding is refused here as ``FORMAT_ERROR`` and never sent.

The access point API this speaks is small and common to most providers' REST fronts:

* ``POST {url}/documents?reference=<key>`` with the UBL body: 200/201 ``{"id": ...}``
  accepted, 202 pending, 409 duplicate, 400/422 ``{"errors": [{"rule", "text"}]}``;
* ``GET {url}/documents?reference=<key>``: 404 unknown, else ``{"id", "status",
  "response"}`` where ``response`` is the buyer's latest Invoice Response (UBL XML), if any.

Invoice Responses (AB, IP, UQ, CA, RE, AP, PD) map onto outcomes by :func:`response_outcome`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from ar_sync.channel_http import send, status_json
from ar_sync.connector import Document, RejectionReason, safe_filename
from ar_sync.documents.ubl import InvoiceResponse, build, parse_invoice_response
from ar_sync.documents.validation import UblValidator
from ar_sync.errors import AmbiguousError, TransientError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus, Seller
from ar_sync.tls import policy_of

R = RejectionReason
MEDIA_TYPE = "application/xml"
KNOWN = ("url", "token", "directory", "xsd_dir", "schematron_files", "tax_categories",
         "connect_timeout_seconds", "read_timeout_seconds", "seller")
REASONS = {"LEG": R.TAX_ERROR, "PRI": R.AMOUNT_MISMATCH, "QTY": R.AMOUNT_MISMATCH,
           "ITM": R.AMOUNT_MISMATCH, "REC": R.ADDRESS_MISMATCH}


def response_outcome(resp: InvoiceResponse, reference: str) -> DeliveryOutcome:
    """A Peppol Invoice Response as an outcome in our taxonomy.

    AB/IP: pending. CA/AP/PD: accepted. UQ/RE: rejected, with the reason from the status
    reason codes and the conditions (UQ + REF/PIN on BT-13 is a missing PO).
    """
    if resp.code in ("AB", "IP"):
        return DeliveryOutcome(OutcomeStatus.PENDING, reference=reference)
    if resp.code in ("CA", "AP", "PD"):
        return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=reference)
    fields = [attr for attr, _ in resp.conditions]
    reason = R.OTHER
    if "REF" in resp.reasons and any(f in ("BT-13", "BT-10") for f in fields):
        reason = R.MISSING_PO if "PIN" in resp.actions or resp.code == "UQ" else R.INVALID_PO
    elif "REF" in resp.reasons and any(f in ("BT-25", "BT-1") for f in fields):
        reason = R.DUPLICATE
    else:
        reason = next((REASONS[r] for r in resp.reasons if r in REASONS), R.OTHER)
    details = [f"{a} {d}".strip() for a, d in resp.conditions]
    text = "; ".join(p for p in (f"{resp.code} {resp.status}", resp.note, *details) if p)
    return DeliveryOutcome(OutcomeStatus.REJECTED, reference=reference, reason_code=reason,
                           remote_code=" ".join((resp.code, *resp.reasons, *resp.actions)),
                           remote_text=text, field=fields[0] if fields else "")


class PeppolConnector:
    """UBL 2.1 BIS Billing 3.0 to an access point (``url``) or a directory."""

    def __init__(self, channel: str, settings: Mapping[str, Any]) -> None:
        self.channel = channel
        self.seller: Seller = settings["seller"]
        self.url = str(settings.get("url", "")).rstrip("/")
        self.directory = Path(settings["directory"]) if "directory" in settings else None
        self.token = settings.get("token")
        self.tax_categories = dict(settings.get("tax_categories", {}))
        self.timeout = (float(settings.get("connect_timeout_seconds", 10)),
                        float(settings.get("read_timeout_seconds", 60)))
        self.validator = (UblValidator(Path(settings["xsd_dir"]),
                                       [Path(p) for p in settings.get("schematron_files", ())])
                          if "xsd_dir" in settings else None)
        self.session = policy_of(settings).session()  # always verified ([tls] ca_bundle)

    @staticmethod
    def validate_settings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = [(k, "unknown key") for k in settings if k not in KNOWN
                    and not k.endswith("_env")]
        if ("url" in settings) == ("directory" in settings):
            problems.append(("url", "set exactly one of url (an access point) or directory"))
        if "url" in settings and not str(settings["url"]).startswith(("https://", "http://")):
            problems.append(("url", "must be an http(s) URL"))
        if "url" in settings and "token" not in settings and "token_env" not in settings:
            problems.append(("token_env", "required with url: the access point's API token"))
        if "schematron_files" in settings and "xsd_dir" not in settings:
            problems.append(("schematron_files", "needs xsd_dir as well"))
        bad = {c for c in dict(settings.get("tax_categories", {})).values()
               if c not in ("S", "Z", "E", "AE", "K", "G", "O", "L", "M")}
        if bad:
            problems.append(("tax_categories", f"unknown VAT categories {sorted(bad)}"))
        return problems

    def render(self, invoice: Invoice) -> Document:
        body = build(invoice, self.seller, tax_categories=self.tax_categories)
        return Document(invoice.key, MEDIA_TYPE, f"{safe_filename(invoice.key)}.xml", body)

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        if self.validator is not None:
            errors = self.validator.errors(document.body)
            if errors:
                return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.FORMAT_ERROR,
                                       remote_code=errors[0].split(":", 1)[0],
                                       remote_text="; ".join(errors[:5]), field="UBL")
        if self.directory is not None:
            return self._to_directory(document)
        answer = send(self.session, "POST", f"{self.url}/documents", channel=self.channel,
                      peer="the access point", params={"reference": invoice.key},
                      data=document.body, timeout=self.timeout, headers=self._headers())
        return self._outcome(answer)

    def status(self, key: str) -> DeliveryOutcome | None:
        if self.directory is not None:
            name = f"{safe_filename(key)}.xml"
            return (DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=self._file_ref(name))
                    if (self.directory / name).exists() else None)
        data = status_json(self.session, f"{self.url}/documents", channel=self.channel,
                           params={"reference": key}, timeout=self.timeout,
                           headers=self._headers())
        if data is None:
            return None
        if not data.get("id"):  # not the access point's answer (a proxy's JSON): ask again
            raise TransientError(f"{self.channel}: the status answer is not the access "
                                 "point's JSON")
        reference = f"peppol:{data['id']}"
        if data.get("response"):
            return response_outcome(parse_invoice_response(data["response"].encode()),
                                    reference)
        pending = data.get("status") == "pending"
        return DeliveryOutcome(OutcomeStatus.PENDING if pending else OutcomeStatus.ACCEPTED,
                               reference=reference)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": MEDIA_TYPE}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        return headers

    def _outcome(self, answer: requests.Response) -> DeliveryOutcome:
        code = answer.status_code
        if code in (200, 201, 202):
            status = OutcomeStatus.PENDING if code == 202 else OutcomeStatus.ACCEPTED
            ident = _json(answer).get("id")
            if not ident:  # taken, most likely, but without a reference: the status tells
                raise AmbiguousError(f"{self.channel}: HTTP {code} without a document id "
                                     "(the answer is not the access point's JSON)")
            return DeliveryOutcome(status, reference=f"peppol:{ident}")
        if code == 429 or code >= 500:
            raise TransientError(f"{self.channel}: access point HTTP {code}")
        text = answer.text[:500]
        reason, field = {401: (R.AUTHENTICATION, ""), 403: (R.CHANNEL_NOT_ENABLED, ""),
                         409: (R.DUPLICATE, "BT-1"), 404: (R.OTHER, "BT-49")}.get(
                             code, (R.FORMAT_ERROR, "UBL"))
        remote = f"HTTP {code}"
        if code in (400, 422):
            errors = _json(answer).get("errors", [])
            if errors:
                remote = str(errors[0].get("rule", remote))
                text = "; ".join(f"{e.get('rule')}: {e.get('text')}" for e in errors[:5])
        return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=reason, remote_code=remote,
                               remote_text=text, field=field)

    def _to_directory(self, document: Document) -> DeliveryOutcome:
        assert self.directory is not None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(document.body)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, self.directory / document.filename)
            finally:
                os.unlink(tmp)
        except FileExistsError:
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.DUPLICATE,
                                   remote_code="EEXIST",
                                   remote_text=f"{document.filename} was already delivered")
        except OSError as exc:
            raise TransientError(f"{self.channel}: outbox not writable: {exc.strerror}") from exc
        return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=self._file_ref(document.filename))

    def _file_ref(self, name: str) -> str:
        return f"peppol-outbox:{self.channel}/{name}"


def _json(answer: requests.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
