"""A loopback fake of NetSuite's SuiteTalk REST API, for tests and the benchmark.

A real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, port 0) that behaves as
``shared/reference/netsuite-rest.md`` documents, so the REST gateway is tested over the
wire, not against mocks:

* ``POST …/auth/oauth2/v1/token``: form-encoded client credentials; the JWT assertion is
  verified with PyJWT against the test certificate of its ``kid`` — alg PS256/ES256 family
  only (RS256 refused), ``typ`` JWT, ``iss`` the client id, ``aud`` the token URL, ``scope``
  containing ``rest_webservices``, ``exp - iat`` under an hour; answers a one-hour token;
* every other request needs ``Bearer`` (an issued, unexpired, unrevoked token) or TBA,
  verified by recomputing the HMAC-SHA256 signature over the RFC 5849 base string (query
  parameters included, realm excluded) with oauthlib's primitives; the realm must be the
  account id exactly (``1234567_SB1``). 401 answers carry ``WWW-Authenticate`` and
  NetSuite's ``INVALID_LOGIN`` body;
* ``POST …/query/v1/suiteql``: ``Prefer: transient`` required, ``limit`` 1–1000, ``offset``
  a multiple of ``limit`` and under the 100,000-row cap; ``hasMore``, ``count``,
  ``totalResults``; lower-case keys, NULL columns left out;
* ``POST …/record/v1/salesOrder/{id}/!transform/invoice``: 204 + ``Location``; unknown
  field names refused under ``X-NetSuite-PropertyNameValidation: Error``;
* ``PATCH …/record/v1/invoice/{id}``: 204; sets ``otherRefNum`` through the sandbox's
  ``set_invoice_po`` (the one field the fake can update: any other name is refused under
  ``X-NetSuite-PropertyNameValidation: Error``, else ignored with ``X-NetSuite-Warning``);
  an unknown id is a 404 ``NONEXISTENT_ID``; each accepted body is kept in ``patches``;
* errors in NetSuite's shape (``type``, ``title``, ``status``, ``o:errorDetails``);
* a role's permissions (``permissions``), an account concurrency limit answered with 429,
  a response time (``latency``: the fake's own work is part of it), and injectable faults:
  a status (429 with ``Retry-After``, 5xx), slow
  answers, and connections dropped after reading the request (before or after processing).

Data lives in a sandbox account file (:mod:`netsuite_rest_fake_data`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from netsuite_rest_fake_data import (
    LINE_FIELDS,
    PATCH_FIELDS,
    TRANSFORM_FIELDS,
    FakeAccount,
    Refusal,
)
from netsuite_rest_fake_setup import (
    ACCOUNT,
    CLIENT_ID,
    EC_KID,
    ENV,
    RSA_KID,
    TBA_SECRETS,
    KeyPair,
    key_pair,
    rest_gateway,
    use_rest,
)
from oauthlib.oauth1.rfc5849 import signature, utils

__all__ = [
    "ACCOUNT",
    "CLIENT_ID",
    "EC_KID",
    "ENV",
    "RSA_KID",
    "TBA_SECRETS",
    "FakeNetSuite",
    "Fault",
    "KeyPair",
    "key_pair",
    "rest_gateway",
    "use_rest",
]

JWT_ALGORITHMS = ["PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
PERMISSIONS = frozenset({"rest_webservices", "suiteanalytics", "customers", "sales_orders",
                         "invoices"})
ROUTES = (("token", "POST", re.compile(r"/services/rest/auth/oauth2/v1/token")),
          ("suiteql", "POST", re.compile(r"/services/rest/query/v1/suiteql")),
          ("transform", "POST", re.compile(
              r"/services/rest/record/v1/salesOrder/(?P<id>[^/]+)/!transform/invoice")),
          ("patch", "PATCH", re.compile(r"/services/rest/record/v1/invoice/(?P<id>[^/]+)")))
ERROR_TYPE = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"


# -- faults --------------------------------------------------------------------------------

@dataclass
class Fault:
    """What to do to the next ``times`` requests of ``route`` whose path or body holds
    ``match``: ``status`` (answer it), ``slow`` (answer late), ``drop_before`` (close without
    processing), ``drop_after`` (process, then close without answering)."""

    kind: str
    route: str = "any"
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    code: str = ""
    detail: str = ""
    path: str = ""
    match: str = ""
    times: int = 1
    raw: bool = False  # a proxy's HTML body instead of NetSuite's JSON


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)  # by route
    statuses: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    over_limit: int = 0
    dropped: int = 0
    suiteql: list[tuple[int, int, str]] = field(default_factory=list)  # (limit, offset, q)
    refusals: Counter[str] = field(default_factory=Counter)  # by o:errorCode (e.g. DUP_RCRD)


class FakeNetSuite:
    """The fake account's REST API on 127.0.0.1; use as a context manager."""

    def __init__(self, account_file: Path, *, latency: float = 0.0,
                 concurrency_limit: int | None = None, token_ttl: int = 3600,
                 row_cap: int = 100_000, account_id: str = ACCOUNT,
                 permissions: frozenset[str] = PERMISSIONS,
                 certificates: Path | None = None) -> None:
        """``certificates``: a directory of ``<kid>.crt`` files to trust (default: this
        process's test keys)."""
        self.account = FakeAccount(account_file)
        self.latency, self.concurrency_limit = latency, concurrency_limit
        self.token_ttl, self.row_cap, self.account_id = token_ttl, row_cap, account_id
        self.permissions = permissions
        self.certificates = (
            {p.stem: x509.load_pem_x509_certificate(p.read_bytes()).public_key()
             for p in certificates.glob("*.crt")} if certificates else
            {k.kid: k.public_key for k in (key_pair("rsa"), key_pair("ec"))})
        self.faults: list[Fault] = []
        # token URLs clients may know the account by besides its own (a proxy in front of
        # it): a JWT assertion's aud may name any of them
        self.token_urls: list[str] = []
        self.stats = Stats()
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []  # (invoice id, body) applied
        self.tokens: dict[str, float] = {}
        self._nonces: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.origin}/services/rest"

    @property
    def token_url(self) -> str:
        return f"{self.url}/auth/oauth2/v1/token"

    def __enter__(self) -> FakeNetSuite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.account.close()

    def inject(self, kind: str, **kw: Any) -> Fault:
        fault = Fault(kind, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def invoice_keys(self) -> list[str]:
        """External ids of the invoices in the account that ar-sync made (``so:…``)."""
        rows = self.account.suiteql("SELECT externalid FROM transaction WHERE type = "
                                    "'CustInvc' AND externalid LIKE 'so:%' ORDER BY id")
        return [r["externalid"] for r in rows]

    # -- one request ----------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        arrived = time.perf_counter()  # the response time counts from here
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        parts = urlsplit(handler.path)
        route, match = next(((name, m) for name, verb, pattern in ROUTES
                             if verb == method and (m := pattern.fullmatch(parts.path))),
                            ("unknown", None))
        with self._lock:
            self.stats.requests[route] += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            over = (self.concurrency_limit is not None
                    and self.stats.in_flight > self.concurrency_limit)
            self.stats.over_limit += over
            fault = None if over else self._take_fault(route, handler.path, body)
        try:
            answer = self._answer(handler, method, route, match, parts.query, body, fault, over,
                                  arrived)
        finally:
            with self._lock:  # the request is done before its answer is on the wire
                self.stats.in_flight -= 1
        if answer is None:
            with self._lock:
                self.stats.dropped += 1
            handler.close_connection = True
            return
        status, headers, payload = answer
        with self._lock:
            self.stats.statuses[status] += 1
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _take_fault(self, route: str, path: str, body: bytes) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.route in ("any", route) and (
                    fault.match in path or fault.match.encode() in body):
                fault.times -= 1
                return fault
        return None

    def _answer(self, handler: _Handler, method: str, route: str, match: Any, query: str,
                body: bytes, fault: Fault | None, over: bool, arrived: float) -> Answer | None:
        if over:
            return error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit "
                         "exceeded. Request blocked.", title="Too Many Requests")
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            if fault.kind == "drop_before":
                return None
            if fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                if fault.raw:
                    return fault.status, {"Content-Type": "text/html", **headers}, (
                        f"<html><body><h1>{fault.status}</h1>proxy error</body></html>".encode())
                return error(fault.status, fault.code or _default_code(fault.status),
                             fault.detail or "Injected failure.", path=fault.path,
                             headers=headers)
        answer = self._dispatch(handler, method, route, match, query, body)
        if self.latency:  # the response time NetSuite takes, its own work included
            time.sleep(max(0.0, self.latency - (time.perf_counter() - arrived)))
        return None if fault is not None and fault.kind == "drop_after" else answer

    def _dispatch(self, handler: _Handler, method: str, route: str, match: Any, query: str,
                  body: bytes) -> Answer:
        try:
            if route == "token":
                return self._token(body)
            denied = self._authenticate(handler, method, query)
            if denied is not None:
                return denied
            if route == "suiteql":
                return self._suiteql(handler, query, body)
            if route == "transform":
                return self._transform(handler, match["id"], body)
            if route == "patch":
                return self._patch_invoice(handler, match["id"], body)
            return error(404, "INVALID_URL", f"No such resource: {method} {handler.path}",
                         title="Not Found")
        except Refusal as exc:
            with self._lock:
                self.stats.refusals[exc.code] += 1
            return error(exc.status, exc.code, exc.detail, path=exc.path)

    # -- authentication -------------------------------------------------------------------

    def _token(self, body: bytes) -> Answer:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if (form.get("grant_type") != "client_credentials" or form.get("client_assertion_type")
                != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"):
            return oauth_error("invalid_request", "grant_type or client_assertion_type is wrong")
        try:
            header, claims = self._verify_assertion(form.get("client_assertion", ""))
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            return oauth_error("invalid_grant", f"{type(exc).__name__}: {exc}")
        token = f"fake-access-{len(self.tokens)}-{time.monotonic_ns()}"
        with self._lock:
            self.assertions.append((header, claims))
            self.tokens[token] = time.time() + self.token_ttl
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "access_token": token, "token_type": "bearer",
            "expires_in": str(self.token_ttl)}).encode()

    def _verify_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        header = jwt.get_unverified_header(assertion)
        if header.get("alg") not in JWT_ALGORITHMS or header.get("typ") != "JWT":
            raise ValueError(f"alg {header.get('alg')!r} / typ {header.get('typ')!r} refused")
        key = self.certificates[header["kid"]]
        claims = jwt.decode(assertion, key, algorithms=[header["alg"]],
                            audience=[self.token_url, *self.token_urls],
                            issuer=CLIENT_ID, options={"require": ["iss", "aud", "iat", "exp"]})
        scopes = str(claims.get("scope", "")).replace(" ", "").split(",")
        if "rest_webservices" not in scopes:
            raise ValueError(f"scope {claims.get('scope')!r} lacks rest_webservices")
        if not 0 < claims["exp"] - claims["iat"] < 3600:
            raise ValueError("exp must be less than 60 minutes after iat")
        return header, claims

    def _authenticate(self, handler: _Handler, method: str, query: str) -> Answer | None:
        value = handler.headers.get("Authorization", "")
        if value.startswith("Bearer "):
            with self._lock:
                ok = self.tokens.get(value[7:], 0) > time.time()
        elif value.startswith("OAuth "):
            ok = self._verify_tba(handler, method, query, value)
        else:
            ok = False
        if not ok or "rest_webservices" not in self.permissions:
            return error(401, "INVALID_LOGIN", "Invalid login attempt. For more details, see "
                         "the Login Audit Trail in the NetSuite UI at Setup > Users/Roles > "
                         "User Management > View Login Audit Trail.", title="Unauthorized",
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                  'error_description="Invalid login attempt."'})
        return None

    def _verify_tba(self, handler: _Handler, method: str, query: str, value: str) -> bool:
        params = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(value)}
        if (params.get("realm") != self.account_id
                or params.get("oauth_signature_method") != "HMAC-SHA256"
                or params.get("oauth_consumer_key") != TBA_SECRETS["consumer_key"]
                or params.get("oauth_token") != TBA_SECRETS["token_id"]
                or abs(time.time() - int(params.get("oauth_timestamp", 0))) > 300):
            return False
        with self._lock:
            nonce = params.get("oauth_nonce", "")
            if not nonce or nonce in self._nonces:
                return False
            self._nonces.add(nonce)
        collected = signature.collect_parameters(uri_query=query, headers={"Authorization": value},
                                                 exclude_oauth_signature=True, with_realm=False)
        uri = signature.base_string_uri(f"http://{handler.headers['Host']}{urlsplit(handler.path).path}")
        base = signature.signature_base_string(method, uri,
                                               signature.normalize_parameters(collected))
        key = "&".join(utils.escape(TBA_SECRETS[k]) for k in ("consumer_secret", "token_secret"))
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256)
                                    .digest()).decode()
        return hmac.compare_digest(expected, params.get("oauth_signature", ""))

    def _permit(self, needed: str, what: str) -> None:
        if needed not in self.permissions:
            if needed == "customers":  # NetSuite also says it as a 400 USER_ERROR
                raise Refusal(400, "USER_ERROR", "Your current role does not have permission "
                              f"to view {what}.")
            raise Refusal(403, "INSUFFICIENT_PERMISSION", f"Permission Violation: you need the "
                          f"'{what}' permission to access this page.")

    # -- the API --------------------------------------------------------------------------

    def _suiteql(self, handler: _Handler, query: str, body: bytes) -> Answer:
        if handler.headers.get("Prefer", "").lower() != "transient":
            raise Refusal(400, "INVALID_HEADER", "Prefer: transient is required for SuiteQL.")
        args = {k: v[0] for k, v in parse_qs(query).items()}
        limit, offset = int(args.get("limit", "1000")), int(args.get("offset", "0"))
        if not 1 <= limit <= 1000:
            raise Refusal(400, "INVALID_PARAMETER", "The limit must be between 1 and 1000.")
        if offset % limit:
            raise Refusal(400, "INVALID_PARAMETER", "The offset must be a multiple of limit.")
        if offset >= self.row_cap:
            raise Refusal(400, "INVALID_PARAMETER", f"Offset {offset}: SuiteQL returns at most "
                          f"{self.row_cap:,} results; use a narrower query.")
        text = json.loads(body)["q"]
        self._permit("suiteanalytics", "SuiteAnalytics Workbook")
        for table, needed, label in ((r"\bcustomer\b", "customers", "Lists > Customers"),
                                     ("'SalesOrd'", "sales_orders", "Transactions > Sales Order"),
                                     ("'CustInvc'", "invoices", "Transactions > Invoice")):
            if re.search(table, text):
                self._permit(needed, label)
        rows = self.account.suiteql(text)
        with self._lock:
            self.stats.suiteql.append((limit, offset, text))
        page = rows[offset:min(offset + limit, self.row_cap)]
        href = f"{self.url}/query/v1/suiteql?limit={limit}&offset={offset}"
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "links": [{"rel": "self", "href": href}], "count": len(page),
            "hasMore": offset + len(page) < len(rows),
            "items": [{"links": [], **row} for row in page], "offset": offset,
            "totalResults": len(rows)}, default=str).encode()

    def _transform(self, handler: _Handler, order_id: str, body: bytes) -> Answer:
        self._permit("invoices", "Transactions > Invoice")
        if not order_id.isdigit():
            raise Refusal(404, "NONEXISTENT_ID", f"Invalid record id {order_id!r}.")
        data = json.loads(body or b"{}", parse_float=Decimal)
        if handler.headers.get("X-NetSuite-PropertyNameValidation", "").lower() == "error":
            unknown = [f"{k}" for k in data if k not in TRANSFORM_FIELDS] + [
                f"item.items[{n}].{k}" for n, line in enumerate(data.get("item", {}).get(
                    "items", [])) for k in line if k not in LINE_FIELDS]
            if unknown:
                raise Refusal(400, "NONEXISTENT_FIELD", f"Invalid field name: {unknown[0]}.",
                              unknown[0])
        new_id = self.account.transform(order_id, data)
        return 204, {"Location": f"{self.url}/record/v1/invoice/{new_id}"}, b""

    def _patch_invoice(self, handler: _Handler, invoice_id: str, body: bytes) -> Answer:
        """``PATCH record/v1/invoice/{id}``: update the fields sent (``otherRefNum`` only)."""
        self._permit("invoices", "Transactions > Invoice")
        try:
            data = json.loads(body or b"{}", parse_float=Decimal)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise Refusal(400, "INVALID_CONTENT", "The request body is not a JSON object.")
        unknown = [k for k in data if k not in PATCH_FIELDS]
        headers: dict[str, str] = {}
        if unknown:
            if handler.headers.get("X-NetSuite-PropertyNameValidation", "").lower() == "error":
                raise Refusal(400, "NONEXISTENT_FIELD", f"Invalid field name: {unknown[0]}.",
                              unknown[0])
            headers["X-NetSuite-Warning"] = f"Invalid field name: {unknown[0]}. Ignored."
        if "otherRefNum" in data:
            if not isinstance(data["otherRefNum"], str):
                raise Refusal(400, "INVALID_FLD_VALUE", "Invalid value for field otherRefNum.",
                              "otherRefNum")
            self.account.set_invoice_po(invoice_id, data["otherRefNum"])
        else:
            self.account.invoice_exists(invoice_id)
        with self._lock:
            self.patches.append((invoice_id, data))
        return 204, headers, b""


Answer = tuple[int, dict[str, str], bytes]


def error(status: int, code: str, detail: str, *, title: str = "", path: str = "",
          headers: dict[str, str] | None = None) -> Answer:
    """An answer in NetSuite's error shape."""
    item = {"detail": detail, "o:errorCode": code} | ({"o:errorPath": path} if path else {})
    payload = {"type": ERROR_TYPE, "title": title or _TITLES.get(status, "Error"),
               "status": status, "o:errorDetails": [item]}
    return status, {"Content-Type": "application/vnd.oracle.resource+json; type=error",
                    **(headers or {})}, json.dumps(payload).encode()


def oauth_error(code: str, description: str) -> Answer:
    return 400, {"Content-Type": "application/json"}, json.dumps(
        {"error": code, "error_description": description}).encode()


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}


def _default_code(status: int) -> str:
    return {429: "CONCURRENCY_LIMIT_EXCEEDED", 500: "UNEXPECTED_ERROR"}.get(status, "ERROR")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as NetSuite: the client pools connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def do_POST(self) -> None:
        self.server.fake.handle(self, "POST")  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self.server.fake.handle(self, "GET")  # type: ignore[attr-defined]

    def do_PATCH(self) -> None:
        self.server.fake.handle(self, "PATCH")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass
