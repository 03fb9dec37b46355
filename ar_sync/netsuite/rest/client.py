"""The HTTP side of the REST gateway: one session, timeouts, the concurrency limit, backoff.

* **One ``requests.Session``** shared by the gateway's threads (urllib3's pool is thread
  safe), a connection pool as large as the concurrency limit, and ``(connect, read)``
  timeouts on every request. urllib3's own retries are off: every retry is ours, bounded
  and logged.
* **A process-wide concurrency limit** per account (``[netsuite.rest] concurrency``): the
  account's request pool (5–20, plus 10 per SuiteCloud Plus licence) is shared with every
  other integration, so ar-sync takes only its share. The slot is held for the request
  alone, never while backing off.
* **Backoff**: 429, 5xx, timeouts and resets are retried with exponential backoff and full
  jitter, at least as long as ``Retry-After`` says when NetSuite sends one (NOT FOUND in
  the reference: honoured if present). Retries live here rather than in the pipeline's
  tenacity wrapper because only here are ``Retry-After`` and the difference between "not
  sent", "refused before processing" (429) and "sent, no answer" visible.
* **Writes are never resent blindly.** A request that may have reached NetSuite without an
  answer (read timeout, reset, a 5xx) raises at once — :class:`~ar_sync.errors.AmbiguousError`
  or :class:`~.errors.NetSuiteServerError` — and the gateway looks the external id up.
* **401** renews the OAuth 2.0 token once and repeats the request; a second 401 (or any
  401 under TBA, which has nothing to renew) is fatal with a message saying what to check.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
import urllib3

from ar_sync import log, metrics
from ar_sync.errors import AmbiguousError, ArSyncError, FatalError, TransientError
from ar_sync.netsuite.rest.auth import Authenticator, token_refusal
from ar_sync.netsuite.rest.errors import (
    CredentialsRefused,
    NetSuiteErrorBody,
    NetSuiteServerError,
    classify,
    parse_error,
)
from ar_sync.tls import DEFAULT as DEFAULT_TLS
from ar_sync.tls import TlsPolicy, verification_failure

SUITEQL_PATH = "query/v1/suiteql"
Classifier = Callable[[NetSuiteErrorBody], ArSyncError]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Where the account is and how politely to use it."""

    base_url: str  # ends with /services/rest
    concurrency: int = 2
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_attempts: int = 4
    backoff: float = 1.0  # seconds before the first retry (then doubling, jittered)
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0  # never wait longer than this for one Retry-After
    tls: TlsPolicy = DEFAULT_TLS  # always verified; [tls] ca_bundle adds CAs

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"


_LIMITS: dict[str, threading.BoundedSemaphore] = {}
_LIMITS_LOCK = threading.Lock()


def process_limit(account: str, size: int) -> threading.BoundedSemaphore:
    """The one semaphore of this process for ``account``: every client on it shares it."""
    with _LIMITS_LOCK:
        if account not in _LIMITS:
            _LIMITS[account] = threading.BoundedSemaphore(size)
        return _LIMITS[account]


class RestClient:
    """Sends requests to one account within its concurrency limit; classifies failures."""

    def __init__(self, options: ClientOptions, auth: Authenticator | None = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.auth = auth
        self.sleep = sleep
        self.session = options.tls.session(pool_connections=2,
                                           pool_maxsize=max(4, options.concurrency),
                                           max_retries=0)
        self.session.headers.update({"User-Agent": "ar-sync", "Accept": "application/json"})
        _environment_once(self.session, options.base_url, options.tls)
        self.limit = process_limit(options.base_url, options.concurrency)
        self.sent: Counter[str] = Counter()  # requests by kind, for `ping` and the benchmark
        self._sent_lock = threading.Lock()
        self.log = log.get("ar_sync.netsuite")

    def close(self) -> None:
        self.session.close()

    # -- the calls the gateway makes ------------------------------------------------------

    def suiteql(self, query: str, limit: int) -> Mapping[str, Any]:
        """One page of a SuiteQL query (``offset`` always 0: paging is by key)."""
        return self._read_json(
            "a SuiteQL page", "POST", self.options.url(SUITEQL_PATH), kind="suiteql",
            what="querying NetSuite", idempotent=True,
            params={"limit": str(limit), "offset": "0"},
            headers={"Prefer": "transient", "Content-Type": "application/json"},
            data=json.dumps({"q": query}).encode())

    def post_token(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        """The token endpoint (form-encoded, unauthenticated); a refusal is fatal."""
        return dict(self._read_json("the token endpoint's answer", "POST", url, kind="token",
                                    what="requesting an access token", idempotent=True,
                                    authenticate=False, data=form,
                                    classifier=_token_classifier))

    def _read_json(self, answer: str, method: str, url: str, **kwargs: Any) -> Mapping[str, Any]:
        """An idempotent request whose answer must be a JSON object. A 2xx that is not one
        (a proxy's HTML page, a body cut short) is transient like a 5xx, so it is asked
        again, bounded by ``max_attempts`` and logged like the retries in :meth:`request`."""
        attempt = 0
        while True:
            attempt += 1
            response = self.request(method, url, **kwargs)
            try:
                return parse_json(response, answer)
            except TransientError as error:
                if attempt >= self.options.max_attempts:
                    self.log.error("netsuite_request_failed", what=kwargs["what"],
                                   attempts=attempt, error=str(error))
                    raise
                delay = self.delay(attempt, None)
                self.log.warning("netsuite_request_retry", what=kwargs["what"], attempt=attempt,
                                 of=self.options.max_attempts, wait_seconds=round(delay, 3),
                                 retry_after=None, error=str(error))
                self.sleep(delay)

    # -- one request, with bounded retries -------------------------------------------------

    def request(self, method: str, url: str, *, kind: str, what: str, idempotent: bool,
                authenticate: bool = True, classifier: Classifier | None = None,
                **kwargs: Any) -> requests.Response:
        """Send until answered, retrying what is safe to retry; raise the classified error."""
        renewed, attempt = False, 0
        while True:
            attempt += 1
            auth = self.auth.auth() if authenticate and self.auth else None
            retry_after: float | None = None
            try:
                response = self._send(method, url, kind, auth, kwargs)
            except requests.RequestException as exc:
                metrics.netsuite_request("rest", kind, "timeout" if isinstance(
                    exc, requests.Timeout) else "connection")
                error: ArSyncError = self._unanswered(exc, what, idempotent)
            else:
                metrics.netsuite_request("rest", kind, metrics.http_result(response.status_code))
                if response.status_code < 400:
                    return response
                if (response.status_code == 401 and auth is not None and not renewed
                        and self.auth is not None and self.auth.renew(auth)):
                    renewed = True
                    self.log.warning("netsuite_token_renewed", reason="401", what=what)
                    continue
                error = self._refused(response, what, classifier, auth is not None)
                if not isinstance(error, TransientError):
                    raise error  # refused, fatal: no retry can change the answer
                if not idempotent and response.status_code != 429:
                    raise _ambiguous(error)  # a write may have happened: the gateway looks
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= self.options.max_attempts:
                self.log.error("netsuite_request_failed", what=what, attempts=attempt,
                               error=str(error))
                raise error
            delay = self.delay(attempt, retry_after)
            self.log.warning("netsuite_request_retry", what=what, attempt=attempt,
                             of=self.options.max_attempts, wait_seconds=round(delay, 3),
                             retry_after=retry_after, error=str(error))
            self.sleep(delay)

    def _send(self, method: str, url: str, kind: str, auth: Any,
              kwargs: dict[str, Any]) -> requests.Response:
        with self.limit:
            with self._sent_lock:
                self.sent[kind] += 1
            return self.session.request(
                method, url, auth=auth, allow_redirects=False,
                timeout=(self.options.connect_timeout, self.options.read_timeout), **kwargs)

    def _unanswered(self, exc: requests.RequestException, what: str,
                    idempotent: bool) -> ArSyncError:
        """A request that got no HTTP answer: retry it, or raise if it may have landed."""
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
                      | requests.exceptions.InvalidSchema):
            raise FatalError(f"bad NetSuite URL while {what}: {exc}") from exc
        if (tls := verification_failure(exc)) is not None:  # no request left: a person must act
            raise FatalError(f"cannot reach NetSuite safely while {what}: {tls}") from exc
        reason = f"{type(exc).__name__}: {_root_cause(exc)}"
        if not_sent(exc):
            return TransientError(f"could not reach NetSuite while {what} ({reason})")
        if not idempotent:
            raise AmbiguousError(f"no answer from NetSuite while {what}; the request may have "
                                 f"been carried out ({reason})") from exc
        return TransientError(f"no answer from NetSuite while {what} ({reason})")

    def _refused(self, response: requests.Response, what: str, classifier: Classifier | None,
                 authenticated: bool) -> ArSyncError:
        body = parse_error(response.status_code, response.text)
        error = (classifier or (lambda b: classify(b, what=what)))(body)
        if response.status_code == 401 and authenticated and self.auth is not None:
            return CredentialsRefused(f"{self.auth.refused()} ({body.describe()})")
        return error

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before attempt ``attempt + 1``: Retry-After if given, else jittered
        exponential backoff (``backoff × 2^(attempt-1)``, capped, times 0.5–1.0)."""
        if retry_after is not None:
            wait = min(retry_after, self.options.retry_after_cap)
            return wait + random.uniform(0, min(1.0, wait / 10 + 0.05))
        ceiling = min(self.options.backoff_cap, self.options.backoff * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


def _environment_once(session: requests.Session, url: str,
                      tls: TlsPolicy = DEFAULT_TLS) -> None:
    """Read the proxy and CA-bundle environment once, not on every request.

    requests re-reads the whole environment for each request (about a millisecond: 1 % of a
    150 ms round trip, and the transforms are round-trip bound). ``HTTPS_PROXY``/``NO_PROXY``
    and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` still apply, as of when the gateway opens;
    ``[tls] ca_bundle`` wins over them. An empty variable is no bundle: verification stays on.
    """
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and tls.ca_bundle is None:
        session.verify = bundle


def _ambiguous(error: ArSyncError) -> ArSyncError:
    """A failed write: NetSuite's own 5xx stays as it is (the request is over); any other
    transient answer (a proxy's bare 502, a gateway timeout) may hide a write that happened."""
    if isinstance(error, TransientError) and not isinstance(error, NetSuiteServerError):
        return AmbiguousError(f"{error}; the request may have been carried out")
    return error


def not_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached NetSuite (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(
            exc, requests.exceptions.ReadTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _root_cause(exc: BaseException) -> str:
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return type(exc).__name__


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, float((when - dt.datetime.now(dt.UTC)).total_seconds()))


def parse_json(response: requests.Response, what: str) -> Mapping[str, Any]:
    """A JSON object with every number as ``Decimal`` (never float: money must stay exact)."""
    try:
        data = json.loads(response.text, parse_float=Decimal)
    except ValueError as exc:
        raise TransientError(f"NetSuite sent {what} that is not JSON") from exc
    if not isinstance(data, dict):
        raise TransientError(f"NetSuite sent {what} that is not a JSON object")
    return data


def dumps_exact(value: Any) -> str:
    """JSON with ``Decimal`` written as exact numbers (``3747.00``, not ``3747.0000001``)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent to NetSuite")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps_exact(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_exact(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _token_classifier(body: NetSuiteErrorBody) -> ArSyncError:
    if body.status == 429 or body.status >= 500:
        return TransientError(f"NetSuite's token endpoint was unavailable ({body.describe()})")
    return token_refusal(body.status, {"error": body.code or body.title,
                                       "error_description": body.message})
