"""cXML invoice delivery to Coupa (``coupa``) and SAP Business Network (``ariba``).

Both portals take an InvoiceDetailRequest over HTTPS and answer with a cXML Response whose
``Status`` is the real answer: an HTTP 200 can carry ``<Status code="401">``, and a 500 can
mean a bad PO rather than a broken server. :meth:`CxmlConnector._outcome` reads the body
first and the HTTP code only when there is no cXML in it; each flavour maps its portal's
codes onto :class:`~ar_sync.connector.RejectionReason`.

Every request is validated against the InvoiceDetail DTD (``dtd_file``) before it is sent;
the shared secret is added to the bytes on the wire only, never to the rendered document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from ar_sync.channel_http import send, status_json
from ar_sync.connector import Document, RejectionReason, safe_filename
from ar_sync.documents.cxml import (
    Credentials,
    CxmlStatus,
    invoice_request,
    parse_status,
    with_shared_secret,
)
from ar_sync.documents.validation import DtdValidator
from ar_sync.errors import AmbiguousError, TransientError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus, Seller
from ar_sync.tls import policy_of

R = RejectionReason
MEDIA_TYPE = "text/xml"
KNOWN = ("url", "dtd_file", "shared_secret", "from_domain", "from_identity", "to_domain",
         "to_identity", "sender_domain", "sender_identity", "remit_to_id", "deployment_mode",
         "status_url", "status_token", "connect_timeout_seconds", "read_timeout_seconds",
         "status_listen", "seller")
REQUIRED = ("url", "dtd_file", "from_identity", "to_identity")


class CxmlConnector:
    """What Coupa and SAP Business Network share; subclasses map the portal's codes."""

    portal: ClassVar[str] = "cxml"
    default_domain: ClassVar[str] = "NetworkID"

    def __init__(self, channel: str, settings: Mapping[str, Any]) -> None:
        self.channel = channel
        self.url = str(settings["url"])
        self.secret = settings.get("shared_secret")
        domain = str(settings.get("from_domain", self.default_domain))
        self.credentials = Credentials(
            from_domain=domain, from_identity=str(settings["from_identity"]),
            to_domain=str(settings.get("to_domain", domain)),
            to_identity=str(settings["to_identity"]),
            sender_domain=str(settings.get("sender_domain", domain)),
            sender_identity=str(settings.get("sender_identity", settings["from_identity"])),
            deployment_mode=str(settings.get("deployment_mode", "production")))
        self.remit_to_id = str(settings.get("remit_to_id", ""))
        self.seller: Seller = settings["seller"]
        self.validator = DtdValidator(settings["dtd_file"])
        self.status_url = str(settings.get("status_url", ""))
        self.status_token = settings.get("status_token")
        self.timeout = (float(settings.get("connect_timeout_seconds", 10)),
                        float(settings.get("read_timeout_seconds", 60)))
        self.session = policy_of(settings).session()  # always verified ([tls] ca_bundle)

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = [(k, "unknown key") for k in settings if k not in KNOWN
                    and not k.endswith("_env")]
        problems += [(k, "required") for k in REQUIRED if k not in settings]
        for key in ("url", "status_url"):
            if key in settings and not str(settings[key]).startswith(("https://", "http://")):
                problems.append((key, "must be an http(s) URL"))
        if "shared_secret" not in settings and "shared_secret_env" not in settings:
            problems.append(("shared_secret_env", "required: the variable holding the "
                             "cXML shared secret"))
        if settings.get("deployment_mode", "production") not in ("production", "test"):
            problems.append(("deployment_mode", "must be \"production\" or \"test\""))
        if "dtd_file" in settings and not _exists(settings["dtd_file"]):
            problems.append(("dtd_file", f"no such file: {settings['dtd_file']}"))
        return problems

    # -- the contract --------------------------------------------------------------------

    def render(self, invoice: Invoice) -> Document:
        body = invoice_request(invoice, self.seller, self.credentials, self.remit_to_id)
        return Document(invoice.key, MEDIA_TYPE, f"{safe_filename(invoice.key)}.xml", body)

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        errors = self.validator.errors(document.body)
        if errors:  # never reaches the portal: a defect in the document
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.FORMAT_ERROR,
                                   remote_code="DTD", remote_text="; ".join(errors[:5]),
                                   field="InvoiceDetailRequest")
        wire = document.body
        if self.secret is not None:
            wire = with_shared_secret(wire, self.secret.get_secret_value())
        answer = send(self.session, "POST", self.url, channel=self.channel, peer=self.portal,
                      data=wire, timeout=self.timeout,
                      headers={"Content-Type": f"{MEDIA_TYPE}; charset=UTF-8"})
        return self._outcome(answer, invoice.po_number)

    def status(self, key: str) -> DeliveryOutcome | None:
        """What the portal's status API knows of ``key`` (the ar-sync-key extrinsic).

        Without ``status_url`` the portal cannot be asked: raising says "unknown", so an
        ambiguous send is looked up again later and held when retries run out, never resent.
        """
        if not self.status_url:
            raise TransientError(f"{self.channel}: no status_url configured; cannot tell "
                                 "whether the invoice arrived")
        headers = {}
        if self.status_token is not None:
            headers["Authorization"] = f"Bearer {self.status_token.get_secret_value()}"
        data = status_json(self.session, f"{self.status_url.rstrip('/')}/{quote(key, safe='')}",
                           channel=self.channel, timeout=self.timeout, headers=headers)
        if data is None:
            return None
        state = str(data.get("status", ""))
        if state == "rejected":
            return DeliveryOutcome(OutcomeStatus.REJECTED, reference=data.get("reference", ""),
                                   reason_code=R.OTHER, remote_text=data.get("text", ""))
        status = OutcomeStatus.PENDING if state == "pending" else OutcomeStatus.ACCEPTED
        return DeliveryOutcome(status, reference=str(data.get("reference", "")))

    # -- reading the answer --------------------------------------------------------------

    def _outcome(self, answer: requests.Response, po: str) -> DeliveryOutcome:
        status = parse_status(answer.content)
        if status is None:  # no cXML: only now does the HTTP code speak
            return self._http_only(answer)
        if status.code in ("200", "201", "204"):
            reference = f"{self.portal}:{status.payload_id or answer.headers.get('X-Request-Id')}"
            pending = status.code == "201"
            return DeliveryOutcome(OutcomeStatus.PENDING if pending else OutcomeStatus.ACCEPTED,
                                   reference=reference)
        reason, field = self.classify(status, po)
        if reason is None:
            raise TransientError(f"{self.channel}: {self.portal} status {status.code} "
                                 f"without a business reason: {status.message[:200]}")
        return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=reason,
                               remote_code=status.code, remote_text=status.message,
                               field=field)

    def _http_only(self, answer: requests.Response) -> DeliveryOutcome:
        code = answer.status_code
        if code == 429 or code >= 500:
            raise TransientError(f"{self.channel}: HTTP {code} without a cXML answer")
        if code in (401, 403):
            reason = R.AUTHENTICATION if code == 401 else R.CHANNEL_NOT_ENABLED
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=reason,
                                   remote_code=f"HTTP {code}", remote_text=answer.reason or "")
        if 200 <= code < 300:
            raise AmbiguousError(f"{self.channel}: HTTP {code} but no cXML Status in the body")
        return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code=R.OTHER,
                               remote_code=f"HTTP {code}", remote_text=answer.text[:300])

    def classify(self, status: CxmlStatus, po: str) -> tuple[RejectionReason | None, str]:
        """Our reason (None: transient) and the field, for a non-2xx cXML Status."""
        common = {"401": (R.AUTHENTICATION, "Header/Sender/Credential"),
                  "403": (R.CHANNEL_NOT_ENABLED, "Header"),
                  "406": (R.FORMAT_ERROR, "InvoiceDetailRequest"),
                  "450": (R.FORMAT_ERROR, "cXML/@version"),
                  "475": (R.FORMAT_ERROR, "cXML")}
        if status.code in common:
            return common[status.code]
        return R.OTHER, ""


class CoupaConnector(CxmlConnector):
    """Coupa: 417 for order references and duplicate numbers; 500 that mean bad data."""

    portal = "coupa"
    default_domain = "DUNS"

    def classify(self, status: CxmlStatus, po: str) -> tuple[RejectionReason | None, str]:
        text = status.message.lower()
        if "already been used" in text or "duplicate" in text:
            return R.DUPLICATE, "InvoiceDetailRequestHeader/@invoiceID"
        if status.code == "417" or (status.code == "500" and _names_data(text)):
            return _coupa_data_error(text, po)
        if status.code == "500":
            return None, ""  # "Unexpected server error" with nothing we recognise
        return super().classify(status, po)


class AribaConnector(CxmlConnector):
    """SAP Business Network: 200/201, 4xx, 500-with-ANERR, INVOICE_DUPLICATE, INV-xx."""

    portal = "ariba"
    default_domain = "NetworkID"

    def classify(self, status: CxmlStatus, po: str) -> tuple[RejectionReason | None, str]:
        text = status.message
        upper = text.upper()
        if "INVOICE_DUPLICATE" in upper:
            return R.DUPLICATE, "InvoiceDetailRequestHeader/@invoiceID"
        if "ACCUMULATEDPOITEMINVOICEDAMOUNT" in upper or "EXCEEDS LIMIT" in upper:
            return R.PO_OVER_INVOICED, "InvoiceDetailItem/SubtotalAmount"
        if "INV-13" in upper or "INV-15" in upper or ("ORDER" in upper and "INVALID" in upper):
            return (R.INVALID_PO if po else R.MISSING_PO), "OrderReference/@orderID"
        if "INV-98" in upper or "TAX" in upper:
            return R.TAX_ERROR, "Tax"
        if "INVOICE_NO_ID" in upper or "SUMMARY_AND_DETAIL" in upper:
            return R.FORMAT_ERROR, "InvoiceDetailRequestHeader"
        if status.code == "500":
            return (R.OTHER, "") if "ANERR" in upper else (None, "")
        return super().classify(status, po)


_DATA_WORDS = ("po number", "purchase order", "order header", "po line", "uom",
               "unit of measure", "bill to", "billto", "remit", "line number", "shipping",
               "tax", "credit")


def _names_data(text: str) -> bool:
    return any(w in text for w in _DATA_WORDS)


def _coupa_data_error(text: str, po: str) -> tuple[RejectionReason, str]:
    """Coupa's 417 and data-500 texts, in the order the compass pages list them."""
    if "bill to" in text or "billto" in text or "remit" in text:
        return R.ADDRESS_MISMATCH, "InvoicePartner/Contact"
    if "uom" in text or "unit of measure" in text:
        return R.AMOUNT_MISMATCH, "InvoiceDetailItem/UnitOfMeasure"
    if "line" in text:
        return R.INVALID_PO, "InvoiceDetailItemReference/@lineNumber"
    if "tax" in text:
        return R.TAX_ERROR, "Tax"
    if "shipping" in text or "charges" in text:
        return R.AMOUNT_MISMATCH, "InvoiceDetailSummary"
    if not po or "missing" in text or "blank" in text:
        return R.MISSING_PO, "OrderReference/@orderID"
    return R.INVALID_PO, "OrderReference/@orderID"


def _exists(path: Any) -> bool:
    from pathlib import Path

    return Path(str(path)).is_file()
