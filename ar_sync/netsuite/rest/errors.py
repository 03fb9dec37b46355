"""NetSuite's REST error bodies, turned into the project's error tree.

NetSuite answers a failed request with (reference, netsuite-rest.md §4)::

    {"type": "https://www.w3.org/...", "title": "Bad Request", "status": 400,
     "o:errorDetails": [{"detail": "...", "o:errorCode": "USER_ERROR",
                         "o:errorPath": "item.items[0].item"}]}

What happens next depends on the status and the code, never on our guess:

* 429 and 5xx are transient: retried with backoff (the request was not, or may not have
  been, carried out — :class:`NetSuiteServerError` keeps "NetSuite itself answered" apart
  from a proxy's bare 502, because only the former proves the request is over);
* 401 is fatal once the client has renewed its token (see :mod:`.client`);
* 403, and a 400 that says the role lacks a permission, are fatal: no invoice can fix it;
* any other 400 or 404 on a record is that record's problem: held with NetSuite's message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ar_sync.errors import (
    ArSyncError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
    TransientError,
)

# o:errorCode → our reason code for a refused record (``RejectedError.code``).
REASONS: dict[str, str] = {
    "USER_ERROR": "INVALID_DATA",
    "INVALID_CONTENT": "INVALID_DATA",
    "INVALID_FLD_VALUE": "INVALID_DATA",
    "NONEXISTENT_FIELD": "INVALID_DATA",
    "INVALID_KEY_OR_REF": "INVALID_REFERENCE",
    "NONEXISTENT_ID": "INVALID_REFERENCE",
    "INVALID_INITIALIZE_REF": "NOT_BILLABLE",
}
# The answer to a second invoice under a taken external id: NOT FOUND for REST in the
# reference (SOAP's DUP_RCRD is UNVERIFIED too) — extend this set when a sandbox says.
DUPLICATE_CODES = frozenset({"DUP_RCRD", "DUPLICATE_EXTERNAL_ID"})
PERMISSION_CODES = frozenset({"INSUFFICIENT_PERMISSION", "INVALID_PERMISSION"})
_PERMISSION_WORDS = ("permission", "not authorized", "not allowed to")


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    detail: str
    code: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class NetSuiteErrorBody:
    """A parsed error body; ``netsuite`` is False for anything not shaped like NetSuite's."""

    status: int
    title: str
    details: tuple[ErrorDetail, ...]
    netsuite: bool

    @property
    def code(self) -> str:
        return self.details[0].code if self.details else ""

    @property
    def path(self) -> str:
        return self.details[0].path if self.details else ""

    @property
    def message(self) -> str:
        """NetSuite's own words: every detail, in order; the title when there are none."""
        text = "; ".join(d.detail for d in self.details if d.detail)
        return text or self.title or f"HTTP {self.status}"

    def describe(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{code}: {self.message}"


class NetSuiteServerError(TransientError):
    """A 5xx that NetSuite itself answered (its error body): the request is over.

    Unlike a timeout or a proxy's bare 502, this proves nothing is still running on the
    server, so after looking the external id up the gateway may send again.
    """


class CredentialsRefused(FatalError):
    """NetSuite answered 401 (after one token renewal): wrong credentials, realm, or a role
    without the REST Web Services / OAuth 2.0 login permission."""


class PermissionRefused(FatalError):
    """NetSuite answered 403, or a 400 saying the role may not do this."""


def parse_error(status: int, text: str) -> NetSuiteErrorBody:
    """Read an error body; a body that is not NetSuite's (HTML from a proxy) still parses."""
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):  # OAuth 2.0 (RFC 6749)
        detail = ErrorDetail(str(data.get("error_description") or ""), data["error"])
        return NetSuiteErrorBody(status, data["error"], (detail,), netsuite=False)
    if not isinstance(data, dict) or not isinstance(data.get("o:errorDetails"), list):
        snippet = " ".join(text.split())[:200] if text else ""
        title = data.get("title", "") if isinstance(data, dict) else snippet
        return NetSuiteErrorBody(status, str(title or ""), (), netsuite=False)
    details = tuple(
        ErrorDetail(str(d.get("detail") or ""), str(d.get("o:errorCode") or ""),
                    str(d.get("o:errorPath") or ""))
        for d in data["o:errorDetails"] if isinstance(d, dict))
    return NetSuiteErrorBody(int(data.get("status") or status), str(data.get("title") or ""),
                             details, netsuite=True)


def is_permission_problem(body: NetSuiteErrorBody) -> bool:
    """403, a permission code, or a 400 whose text says the role may not do this."""
    if body.status == 403 or body.code in PERMISSION_CODES:
        return True
    text = body.message.lower()
    return body.status == 400 and any(word in text for word in _PERMISSION_WORDS)


def classify(body: NetSuiteErrorBody, *, what: str, external_id: str = "",
             record: bool = False) -> ArSyncError:
    """The error for a failed request about ``what`` (e.g. ``"creating invoice so:1:..."``).

    ``external_id`` is set for record creates and ``record`` for updates of one record: a
    4xx there is the record's problem; on a read, a 4xx means our query or the account
    changed shape, which no retry fixes.
    """
    if body.status == 429 or body.status >= 500:
        kind = NetSuiteServerError if body.netsuite and body.status >= 500 else TransientError
        return kind(f"NetSuite was unavailable while {what} ({body.describe()})")
    if body.status == 401:
        return CredentialsRefused(f"NetSuite refused the credentials while {what} "
                                  f"({body.describe()})")
    if is_permission_problem(body):
        return PermissionRefused(f"the NetSuite role lacks a permission needed for {what} "
                          f"({body.describe()}); see README 'NetSuite REST: role permissions'")
    if external_id and (body.code in DUPLICATE_CODES or _says_duplicate(body)):
        return DuplicateExternalIdError(external_id)
    if (external_id or record) and body.status in (400, 404, 409):
        return RejectedError(body.message, code=REASONS.get(body.code, "NETSUITE_REFUSED"),
                             remote_code=body.code or str(body.status), field=body.path)
    return FatalError(f"NetSuite refused the request while {what} ({body.describe()}); "
                      "the query or the account's configuration does not match ar-sync's")


def _says_duplicate(body: NetSuiteErrorBody) -> bool:
    text = body.message.lower()
    return "external id" in text and ("already exists" in text or "unique" in text)
