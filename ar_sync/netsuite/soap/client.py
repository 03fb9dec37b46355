"""The zeep client: the WSDL loaded once, every request signed, faults classified.

Why it looks like this:

* **Loaded once per process, cached on disk.** Parsing NetSuite's WSDL and its 46 XSDs
  takes about half a second; fetching them over the network takes far longer and fails
  when NetSuite's CDN does. A URL is fetched through zeep's SQLite cache in the state
  directory (no expiry: a version's WSDL never changes), so later starts need no
  download; a local path is read as it is. The parsed client is kept per process.
* **Every namespace from the version.** ``urn:core_2023_2.platform…`` is built from
  ``[netsuite.soap] version``; nothing names one version.
* **Huge answers, safely.** ``xml_huge_tree`` lets lxml read search pages of a thousand
  orders; DTDs, entity expansion and external references are forbidden.
* **One place that retries** (NetSuite's guidance: increasing, jittered delays): the
  concurrency faults and HTTP 5xx a bounded number of times, ``UnexpectedErrorFault`` fewer
  times, and a fresh token passport on every attempt (a passport is single-use).
  ``ExceededRecordCountFault`` is :class:`BatchTooLarge`, for the caller to split;
  credentials and permission faults are fatal, in words an operator can act on.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.cache
import zeep.exceptions
import zeep.wsdl
from lxml import etree

from ar_sync import log, metrics
from ar_sync.errors import ArSyncError, FatalError, TransientError
from ar_sync.netsuite.soap.options import SoapOptions
from ar_sync.netsuite.soap.passport import passport
from ar_sync.tls import verification_failure

_DOCUMENTS: dict[tuple[str, str], Any] = {}  # parsed WSDLs (zeep Documents), per process
_LOAD_LOCK = threading.Lock()

RETRIED_FAULTS = frozenset({"exceededConcurrentRequestLimitFault", "exceededRequestLimitFault",
                            "exceededUsageLimitFault"})
RETRIED_CODES = frozenset({"WS_REQUEST_BLOCKED", "WS_CONCUR_SESSION_DISALLWD"})
SPLIT_FAULTS = frozenset({"exceededRecordCountFault", "exceededRequestSizeFault"})
FATAL_FAULTS = {
    "invalidCredentialsFault": "NetSuite refused the token passport: check the account id "
    "(spelled as in credentials, e.g. 1234567_SB1), the consumer key/secret and token "
    "id/secret, that the token is not revoked, and that this machine's clock is right",
    "invalidAccountFault": "NetSuite does not know this account id",
    "invalidVersionFault": "NetSuite does not serve this WSDL version at this endpoint",
    "insufficientPermissionFault": "the token's role lacks a permission ar-sync needs "
    "(Lists > Customers, Transactions > Sales Order and Invoice, Web Services)",
    "invalidSessionFault": "NetSuite ended the session",
}


def namespaces(version: str) -> dict[str, str]:
    """NetSuite's namespaces for an endpoint version (``2023_2``)."""
    platform = f"{version}.platform.webservices.netsuite.com"
    return {"core": f"urn:core_{platform}", "common": f"urn:common_{platform}",
            "messages": f"urn:messages_{platform}", "faults": f"urn:faults_{platform}",
            "core_types": f"urn:types.core_{platform}",
            "sales": f"urn:sales_{version}.transactions.webservices.netsuite.com",
            "relationships": f"urn:relationships_{version}.lists.webservices.netsuite.com",
            "accounting": f"urn:accounting_{version}.lists.webservices.netsuite.com",
            "platform": f"urn:platform_{version}.webservices.netsuite.com"}


class BatchTooLarge(ArSyncError):
    """Raised when NetSuite refused a list request for its record count or size: split it."""


class UnexpectedNetSuiteError(TransientError):
    """Raised when NetSuite kept answering ``UnexpectedErrorFault`` (carries its error id)."""


class CountingTransport(zeep.Transport):
    """zeep's transport with a connect and a read timeout, counting requests by operation."""

    def __init__(self, options: SoapOptions, **kwargs: Any) -> None:
        kwargs.setdefault("session", options.tls.session())  # always verified ([tls])
        super().__init__(timeout=max(options.connect_timeout, 30.0), **kwargs)
        self.timeouts = (options.connect_timeout, options.read_timeout)
        self.requests: Counter[str] = Counter()
        self.first_request_at: float | None = None

    def post(self, address: str, message: Any, headers: dict[str, str]) -> Any:
        action = headers.get("SOAPAction", "").strip('"') or "?"
        self.requests[action] += 1
        if self.first_request_at is None:
            self.first_request_at = time.perf_counter()
        return self.session.post(address, data=message, headers=headers, timeout=self.timeouts)


SETTINGS = zeep.Settings(strict=True, xml_huge_tree=True, forbid_dtd=True,
                         forbid_entities=True, forbid_external=True)  # for every answer
# The WSDL's own schema imports (46 XSDs) are references it must follow: allowed there only.
WSDL_SETTINGS = zeep.Settings(strict=True, xml_huge_tree=True, forbid_dtd=True,
                              forbid_entities=True, forbid_external=False)


def load_wsdl(options: SoapOptions) -> Any:
    """The parsed WSDL (a zeep ``Document``), once per process; a URL through the cache."""
    key = (options.wsdl, str(options.cache_dir))
    with _LOAD_LOCK:
        if key not in _DOCUMENTS:
            transport: Any = wsdl_transport(options)  # zeep's hint says a class; it is not
            _DOCUMENTS[key] = zeep.wsdl.Document(options.wsdl, transport,
                                                 settings=WSDL_SETTINGS)
        return _DOCUMENTS[key]


def wsdl_transport(options: SoapOptions) -> zeep.Transport:
    """The transport that loads the WSDL: cached in the state directory when it is a URL."""
    if not options.wsdl.startswith(("http://", "https://")):
        return zeep.Transport(session=options.tls.session())
    Path(options.cache_dir).mkdir(parents=True, exist_ok=True)
    cache = zeep.cache.SqliteCache(path=str(Path(options.cache_dir) / "wsdl-cache.sqlite"),
                                   timeout=None)
    return zeep.Transport(cache=cache, timeout=max(options.connect_timeout, 30.0),
                          session=options.tls.session())


class SoapClient:
    """One account's SuiteTalk SOAP port: typed factories and :meth:`call`."""

    def __init__(self, options: SoapOptions, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.ns = namespaces(options.version)
        self.transport = CountingTransport(options)
        try:
            document = load_wsdl(options)
        except (OSError, requests.RequestException, etree.XMLSyntaxError,
                zeep.exceptions.Error) as exc:
            raise FatalError(f"cannot load the NetSuite WSDL {options.wsdl}: "
                             f"{verification_failure(exc) or exc}") from exc
        wsdl = zeep.Client(document, transport=self.transport, settings=SETTINGS)
        self.zeep = wsdl
        self.service = wsdl.create_service(f"{{{self.ns['platform']}}}NetSuiteBinding",
                                           options.endpoint)
        self.core = wsdl.type_factory(self.ns["core"])
        self.common = wsdl.type_factory(self.ns["common"])
        self.messages = wsdl.type_factory(self.ns["messages"])
        self.sales = wsdl.type_factory(self.ns["sales"])
        self.accounting = wsdl.type_factory(self.ns["accounting"])
        self._sleep, self._clock = sleep, clock
        self.log = log.get("ar_sync.netsuite")

    @property
    def requests(self) -> Counter[str]:
        return self.transport.requests

    def close(self) -> None:
        self.transport.session.close()

    def _passport(self) -> Any:
        p = passport(self.options.credentials, clock=self._clock)
        return self.core.TokenPassport(
            account=p.account, consumerKey=p.consumer_key, token=p.token, nonce=p.nonce,
            timestamp=p.timestamp,
            signature=self.core.TokenPassportSignature(p.signature, algorithm=p.algorithm))

    def call(self, operation: str, what: str, *, search_preferences: Any = None,
             preferences: Any = None, **body: Any) -> Any:
        """Send ``operation`` and return its result; retried and classified here only."""
        unexpected = 0
        for attempt in range(1, self.options.max_attempts + 1):
            headers = {"tokenPassport": self._passport()}  # fresh on every attempt
            if search_preferences is not None:
                headers["searchPreferences"] = search_preferences
            if preferences is not None:
                headers["preferences"] = preferences
            try:
                answer = _unwrapped(getattr(self.service, operation)(**body,
                                                                     _soapheaders=headers))
                metrics.netsuite_request("soap", operation, "ok")
                return answer
            except zeep.exceptions.Fault as exc:
                metrics.netsuite_request("soap", operation, _fault_label(exc))
                error = classify_fault(exc, what)
                if isinstance(error, UnexpectedNetSuiteError):
                    unexpected += 1
                    if unexpected >= self.options.unexpected_error_attempts:
                        raise error from exc
            except zeep.exceptions.TransportError as exc:
                metrics.netsuite_request("soap", operation, metrics.http_result(exc.status_code))
                error = _http_error(exc.status_code, what)
            except requests.Timeout:
                metrics.netsuite_request("soap", operation, "timeout")
                error = TransientError(f"NetSuite did not answer {what} within "
                                       f"{self.options.read_timeout:g} s")
            except (requests.ConnectionError, etree.XMLSyntaxError) as exc:
                metrics.netsuite_request("soap", operation, "connection" if isinstance(
                    exc, requests.ConnectionError) else "malformed")
                if (tls := verification_failure(exc)) is not None:
                    raise FatalError(f"cannot reach NetSuite safely while {what}: "
                                     f"{tls}") from exc
                error = TransientError(f"NetSuite connection failed while {what}: "
                                       f"{type(exc).__name__}")
            if not isinstance(error, TransientError) or attempt == self.options.max_attempts:
                raise error
            delay = min(self.options.backoff_cap, self.options.backoff * 2 ** (attempt - 1))
            self.log.warning("netsuite_soap_retry", operation=operation, attempt=attempt,
                             error=str(error))
            self._sleep(delay * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover


def _unwrapped(answer: Any) -> Any:
    """The operation's one result element: zeep hands back ``{header, body}`` because the
    WSDL declares response headers (``documentInfo``)."""
    try:
        body = answer.body
    except AttributeError:
        return answer
    values = list(body.__values__.values()) if body is not None else [None]
    return values[0]


def classify_fault(exc: zeep.exceptions.Fault, what: str) -> ArSyncError:
    """A SOAP fault as the error tree, by its detail element (``platformFaults:*Fault``)."""
    if not isinstance(exc.detail, etree._Element) and not exc.code:
        # no SOAP fault at all: an HTML error page of a proxy or load balancer (HTTP 5xx)
        return TransientError(f"NetSuite answered without a SOAP envelope while {what}")
    name, code, message = fault_parts(exc)
    said = f"NetSuite {name or 'fault'} {code}: {message}".strip()
    if name in RETRIED_FAULTS or code in RETRIED_CODES:
        return TransientError(f"{said} (while {what})")
    if name in SPLIT_FAULTS:
        return BatchTooLarge(f"{said} (while {what})")
    if name == "unexpectedErrorFault":
        return UnexpectedNetSuiteError(f"{said} (while {what}; quote the error id to "
                                       "NetSuite support)")
    if name in FATAL_FAULTS:
        return FatalError(f"{FATAL_FAULTS[name]} — {said}")
    return FatalError(f"NetSuite refused the request while {what}: {said}")


def fault_parts(exc: zeep.exceptions.Fault) -> tuple[str, str, str]:
    """(detail element's local name, its code, its message) — faultstring as a fallback."""
    detail = exc.detail if isinstance(exc.detail, etree._Element) else None
    fault = next((c for c in detail if isinstance(c.tag, str)
                  and c.tag.endswith("Fault")), None) if detail is not None else None
    if fault is None:
        return "", str(exc.code or ""), str(exc.message or "")
    texts = {etree.QName(c).localname: (c.text or "").strip() for c in fault
             if isinstance(c.tag, str)}
    return (etree.QName(fault).localname, texts.get("code", ""),
            texts.get("message", "") or str(exc.message or ""))


def _fault_label(exc: zeep.exceptions.Fault) -> str:
    """The metrics label of a fault: its detail element's name, or ``not_soap`` for an
    answer without a SOAP envelope (a proxy's or load balancer's error page)."""
    if not isinstance(exc.detail, etree._Element) and not exc.code:
        return "not_soap"
    return fault_parts(exc)[0] or "fault"


def _http_error(status: int, what: str) -> ArSyncError:
    if status >= 500 or status == 429:
        return TransientError(f"NetSuite answered HTTP {status} while {what}")
    if status in (401, 403):
        return FatalError(f"NetSuite answered HTTP {status} while {what}: check the endpoint "
                          "and the token passport")
    return FatalError(f"NetSuite answered HTTP {status} while {what}: check "
                      "[netsuite.soap] endpoint")
