"""A loopback HTTP proxy that injects transient faults in front of any of our loopback fakes.

A real ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) that forwards each request to an
upstream origin (the NetSuite REST fake, the cXML portal fake, …) and, on a configurable
fraction of requests chosen with a seeded :class:`random.Random`, does what networks,
load balancers and overloaded services do instead:

``reset_before``
    read the request, then drop the connection without forwarding it or answering
    (``rst``: TCP reset through ``SO_LINGER 0``; ``fin``: an orderly close). The client
    cannot tell this from ``reset_after``: for a write it must be treated as ambiguous.
``reset_after``
    forward the request (the upstream does the work), then drop the connection without an
    answer. This is the case exactly-once exists for: the invoice exists, the client does
    not know it.
``timeout``
    stall past the client's read timeout (``FaultPlan.client_timeout`` + a margin).
    ``late``: stall first, then forward — the request lands *after* the client gave up, as
    a request queued behind a slow one does; ``stalled``: forward, then hold the answer
    back. Either way the answer is written to a client that is gone, then the connection is
    closed.
``throttle``
    answer 429 with ``Retry-After`` (``FaultPlan.retry_after``) without forwarding.
``burst``
    answer 503 without forwarding, to this request and the next 1–3 requests through the
    proxy (``FaultPlan.burst``): services fail in runs, not as independent coin flips. A
    burst is a short outage, so it also ends ``FaultPlan.burst_seconds`` after it began: a
    client that backs off for longer (or a circuit breaker's probe after its cool-down)
    finds the service back rather than the rest of a burst that waited for it.
``malformed``
    ``html``: an intermediary's HTML page (status 200, 502 or 504) without forwarding;
    ``garbage``: forward, then replace the answer with status 200 and bytes that are
    neither JSON nor XML (a mangled answer to work that was done).
``truncated``
    forward, then send half the upstream body: ``honest`` with a ``Content-Length`` that
    matches what is sent (the client gets a well-framed, half document), ``dishonest`` with
    the full ``Content-Length`` and the connection closed after half (the client sees an
    incomplete read). An answer without a body (NetSuite's 204 to a transform) is cut in
    its header block instead (``head``).
``slow``
    forward and answer correctly, but late: ``FaultPlan.slow`` seconds, always under the
    client's read timeout.

Error bodies follow the side the proxy stands in front of (``FaultPlan.flavour``):
``netsuite`` answers 429 and 503 half of the time in NetSuite's own error shape
(:func:`netsuite_rest_fake.error`: ``type``, ``title``, ``status``, ``o:errorDetails``) —
NetSuite itself refused before processing — and half of the time with a bare HTML page from
a load balancer (for a write, the client cannot know whether it got through); the choice is
made per burst, so a burst speaks one language. ``http`` (the cXML portal) gets HTTP-level
faults only: plain HTML pages, never a cXML body.

Other choices, documented here because a test's meaning depends on them:

* **Rate.** ``FaultPlan.rate`` is the expected fraction of *eligible* requests that get a
  fault, bursts included: the chance of a fault starting is lowered so that a burst's
  follow-on requests are counted in the rate (:meth:`FaultPlan.start_probability`).
  Requests the ``eligible`` predicate excludes are forwarded untouched and counted apart.
* **Kinds** are drawn by ``FaultPlan.weights`` (equal by default). Timeouts cost the test
  wall time (a client waits a whole read timeout), so a test may weight them lower.
* **Determinism.** Every draw (fault or not, kind, variant, delay, burst length) comes from
  one seeded generator under a lock, in arrival order. The sequence of decisions is
  reproducible; which concurrent request receives which decision depends on thread timing.
* **Forwarding** takes request bodies with a ``Content-Length`` (a chunked one is answered
  501: our clients never send one), keeps the client's ``Host`` header (the NetSuite fake
  verifies TBA signatures over it, and the client signed the proxy's URL) and drops
  hop-by-hop headers; the answer is re-framed with its own ``Content-Length``. Each client
  connection gets one upstream connection of its own (HTTP/1.1 keep-alive on both sides
  where the upstream allows it). An upstream that cannot be reached is answered 502
  (``upstream_error``).
* **Counters** (:class:`Counters`): requests in, by route and by fault kind and variant;
  requests forwarded upstream (a ``late`` timeout counts when it is forwarded). Read them
  with :meth:`FaultProxy.snapshot`. :meth:`FaultProxy.wait_idle` (and ``close``) waits for
  stalled handlers (up to ``drain_seconds``), so that late requests have landed and are
  counted before a test looks at the upstream.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from netsuite_rest_fake import error as netsuite_error

KINDS = ("reset_before", "reset_after", "timeout", "throttle", "burst", "malformed",
         "truncated", "slow")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "content-length"})
_ID_SEGMENT = re.compile(r"/[^/]*[0-9%][^/]*")  # a path segment with an id or an encoded key

Eligible = Callable[[str, str], bool]  # (method, path) -> may this request be faulted?


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, how often and how hard."""

    rate: float = 0.0  # expected fraction of eligible requests that get a fault
    weights: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 1.0))
    flavour: Literal["netsuite", "http"] = "http"
    client_timeout: float = 1.0  # the client's read timeout: a ``timeout`` stalls past it
    timeout_margin: float = 0.1  # how long past it (a ``late`` request lands this much later)
    slow: tuple[float, float] = (0.05, 0.25)  # seconds added to a slow answer
    retry_after: str = "1"  # the 429's Retry-After value (delta-seconds)
    burst: tuple[int, int] = (2, 4)  # length of a 503 burst, this request included
    burst_seconds: float = 0.5  # ... and how long it may last at most
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {self.rate}")
        if self.slow[1] >= self.client_timeout:
            raise ValueError("a slow answer must stay under the client's read timeout")
        if not 1 <= self.burst[0] <= self.burst[1]:
            raise ValueError(f"bad burst lengths {self.burst}")

    def start_probability(self) -> float:
        """Chance that a request not already in a burst starts a fault, such that the
        expected fraction of faulted requests is ``rate``.

        Per such request, a fault starts with probability p; it is a burst with share b and
        then takes m requests on average (m - 1 beyond this one). Faulted requests per
        decision: p(1 + b(m-1)); requests consumed per decision: 1 + pb(m-1). Setting their
        ratio to ``rate`` gives p = rate / (1 + b(m-1)(1-rate)).
        """
        total = sum(self.weights.values())
        b = self.weights.get("burst", 0.0) / total if total else 0.0
        m = (self.burst[0] + self.burst[1]) / 2
        return self.rate / (1 + b * (m - 1) * (1 - self.rate))


@dataclass(frozen=True)
class Decision:
    """What the proxy does to one request."""

    kind: str  # one of KINDS
    variant: str = ""
    delay: float = 0.0
    netsuite_body: bool = False  # a NetSuite-shaped error body rather than a proxy's page
    status: int = 0
    noise: int = 0  # seeds the bytes of a garbage body (drawn with the decision)


@dataclass
class Counters:
    requests: int = 0  # every request the proxy read
    forwarded: int = 0  # requests sent on to the upstream
    eligible: int = 0  # requests that could have been faulted
    faults: Counter[str] = field(default_factory=Counter)  # by kind (a burst: each request)
    variants: Counter[str] = field(default_factory=Counter)  # "kind.variant"
    routes: Counter[str] = field(default_factory=Counter)  # "METHOD /path/{id}"
    bursts: int = 0  # bursts started
    upstream_errors: int = 0

    @property
    def faulted(self) -> int:
        return sum(self.faults.values())


class FaultProxy:
    """A fault-injecting proxy to ``upstream`` (an origin: ``http://127.0.0.1:PORT``).

    Use as a context manager; point the client at :attr:`origin` (or :meth:`url` for a
    path) instead of the upstream. ``plan`` may be replaced at any time (``proxy.plan =
    FaultPlan()`` turns faults off); ``eligible`` limits which requests may be faulted.
    """

    def __init__(self, upstream: str, plan: FaultPlan | None = None, *,
                 eligible: Eligible | None = None, drain_seconds: float = 5.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the fault proxy forwards to loopback http only, not {upstream}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.eligible = eligible or (lambda method, path: True)
        self.drain_seconds = drain_seconds
        self.counters = Counters()
        self._plan = plan or FaultPlan()
        self._rng = random.Random(self._plan.seed)
        self._burst_left = 0
        self._burst_until = 0.0
        self._burst_netsuite = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True, name="fault-proxy")

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self._plan, self._burst_left = plan, 0
            self._rng = random.Random(plan.seed)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str = "") -> str:
        return self.origin + path

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting; wait (bounded) for stalled requests to land and finish."""
        self._server.shutdown()
        self._server.server_close()
        self.wait_idle()

    def wait_idle(self, seconds: float | None = None) -> bool:
        """Wait until no request is in the proxy (a stalled one has landed and been
        answered), at most ``seconds`` (default ``drain_seconds``); True if idle."""
        deadline = time.monotonic() + (self.drain_seconds if seconds is None else seconds)
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
            return not self._in_flight

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain data (for reports and JSON)."""
        with self._lock:
            c = self.counters
            return {"requests": c.requests, "forwarded": c.forwarded, "eligible": c.eligible,
                    "faulted": c.faulted, "faults": dict(c.faults),
                    "variants": dict(c.variants), "routes": dict(c.routes),
                    "bursts": c.bursts, "upstream_errors": c.upstream_errors}

    # -- deciding --------------------------------------------------------------------------

    def decide(self, method: str, path: str) -> Decision | None:
        """Count the request and draw its fate (None: forward it untouched)."""
        route = f"{method} {_ID_SEGMENT.sub('/{id}', urlsplit(path).path)}"
        eligible = self.eligible(method, path)
        with self._lock:
            self.counters.requests += 1
            self.counters.routes[route] += 1
            self._in_flight += 1
            if not eligible:
                return None
            self.counters.eligible += 1
            decision = self._draw()
            if decision is not None:
                self.counters.faults[decision.kind] += 1
            return decision

    def _draw(self) -> Decision | None:
        plan, rng = self._plan, self._rng
        if self._burst_left > 0 and time.monotonic() < self._burst_until:
            self._burst_left -= 1
            return Decision("burst", "netsuite" if self._burst_netsuite else "html",
                            netsuite_body=self._burst_netsuite, status=503)
        if plan.rate <= 0 or rng.random() >= plan.start_probability():
            return None
        kinds = [k for k in KINDS if plan.weights.get(k, 0) > 0]
        kind = rng.choices(kinds, [plan.weights[k] for k in kinds])[0]
        netsuite = plan.flavour == "netsuite" and rng.random() < 0.5
        stall = plan.client_timeout + plan.timeout_margin
        match kind:
            case "reset_before" | "reset_after":
                return Decision(kind, rng.choice(("rst", "fin")))
            case "timeout":
                return Decision(kind, rng.choice(("late", "stalled")), delay=stall)
            case "throttle":
                return Decision(kind, "netsuite" if netsuite else "html",
                                netsuite_body=netsuite, status=429)
            case "burst":
                self._burst_left = rng.randint(*plan.burst) - 1
                self._burst_until = time.monotonic() + plan.burst_seconds
                self._burst_netsuite = netsuite
                self.counters.bursts += 1
                return Decision(kind, "netsuite" if netsuite else "html",
                                netsuite_body=netsuite, status=503)
            case "malformed":
                variant = rng.choice(("html", "garbage"))
                return Decision(kind, variant, status=rng.choice((200, 502, 504))
                                if variant == "html" else 200, noise=rng.getrandbits(32))
            case "truncated":
                return Decision(kind, rng.choice(("honest", "dishonest")))
            case _:  # slow
                return Decision(kind, rng.choice(("before", "after")),
                                delay=rng.uniform(*plan.slow))

    def _variant(self, kind: str, variant: str) -> None:
        with self._lock:
            self.counters.variants[f"{kind}.{variant}"] += 1

    def _forwarded(self) -> None:
        with self._lock:
            self.counters.forwarded += 1

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def _upstream_error(self) -> None:
        with self._lock:
            self.counters.upstream_errors += 1


# -- bodies ----------------------------------------------------------------------------------

Answer = tuple[int, list[tuple[str, str]], bytes]
_REASONS = {200: "OK", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


def garbage(size: int, seed: int) -> bytes:
    """Bytes that are neither JSON nor well-formed XML, about ``size`` long (32-512)."""
    return b"\x00\xff<!-- " + random.Random(seed).randbytes(min(max(size, 32), 512))


def proxy_page(status: int, retry_after: str | None = None) -> Answer:
    """The bare HTML page a load balancer answers with (nginx's wording)."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    if status == 200:  # a maintenance page served with 200, as some appliances do
        title = "Service temporarily down for maintenance"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}"
            f"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()
    headers = [("Content-Type", "text/html"), ("Server", "nginx")]
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    return status, headers, body


def netsuite_page(status: int, retry_after: str | None = None) -> Answer:
    """NetSuite's own 429/503 error body (the fake's :func:`error` builds the shape)."""
    extra = {"Retry-After": retry_after} if retry_after is not None else None
    if status == 429:
        code, detail = "CONCURRENCY_LIMIT_EXCEEDED", ("Concurrent request limit exceeded. "
                                                      "Request blocked.")
    else:
        code, detail = "UNEXPECTED_ERROR", ("An unexpected error occurred. Error ID: "
                                            f"{os.urandom(5).hex()}")
    status, headers, body = netsuite_error(status, code, detail, headers=extra)
    return status, list(headers.items()), body


# -- the handler -----------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client, as a real proxy would
    disable_nagle_algorithm = True
    _conn: http.client.HTTPConnection | None = None

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the socket was reset on purpose
            super().finish()
        if self._conn is not None:
            self._conn.close()

    @property
    def proxy(self) -> FaultProxy:
        return self.server.proxy  # type: ignore[attr-defined, no-any-return]

    def _handle(self, method: str) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(501, "chunked request bodies are not supported by the fault proxy")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        decision = self.proxy.decide(method, self.path)
        try:
            self._act(method, body, decision)
        except OSError:  # the client went away (it timed out): nothing to tell it
            self.close_connection = True
        finally:
            self.proxy._done()

    def _act(self, method: str, body: bytes, d: Decision | None) -> None:
        plan = self.proxy.plan
        if d is None:
            self._send(self._forward(method, body))
            return
        if d.kind != "truncated":  # its variant is known once the answer is in
            self.proxy._variant(d.kind, d.variant)
        match d.kind:
            case "reset_before":
                self._drop(d.variant)
            case "reset_after":
                self._forward(method, body)
                self._drop(d.variant)
            case "timeout":
                if d.variant == "late":
                    time.sleep(d.delay)
                    answer = self._forward(method, body)
                else:
                    answer = self._forward(method, body)
                    time.sleep(d.delay)
                self._send(answer)  # to a client that is gone, most likely
                self.close_connection = True
            case "throttle" | "burst":
                retry_after = plan.retry_after if d.kind == "throttle" else None
                page = netsuite_page if d.netsuite_body else proxy_page
                self._send(page(d.status, retry_after))
            case "malformed":
                if d.variant == "html":
                    self._send(proxy_page(d.status))
                else:
                    _, headers, payload = self._forward(method, body)
                    kept = [(k, v) for k, v in headers if k.lower() == "content-type"]
                    self._send((200, kept, garbage(len(payload), d.noise)))
            case "truncated":
                self._truncate(self._forward(method, body), d.variant)
            case _:  # slow
                if d.variant == "before":
                    time.sleep(d.delay)
                answer = self._forward(method, body)
                if d.variant == "after":
                    time.sleep(d.delay)
                self._send(answer)

    # -- upstream --------------------------------------------------------------------------

    def _forward(self, method: str, body: bytes) -> Answer:
        """Send the request upstream on this connection's own upstream connection."""
        self.proxy._forwarded()
        for attempt in (1, 2):  # an idle keep-alive connection may have been closed
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
            try:
                self._conn.putrequest(method, self.path, skip_host=True,
                                      skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self._conn.putheader(name, value)
                self._conn.putheader("Content-Length", str(len(body)))
                self._conn.endheaders(body)
                response = self._conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    self.proxy._upstream_error()
                    return proxy_page(502)
                continue
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            if response.will_close:
                self._conn.close()
                self._conn = None
            return response.status, headers, payload
        raise AssertionError("unreachable")  # pragma: no cover

    # -- answering -------------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]], length: int) -> bytes:
        reason = http.client.responses.get(status, "")
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        if status not in (204, 304):
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, answer: Answer) -> None:
        status, headers, payload = answer
        if status in (204, 304):
            payload = b""
        self.wfile.write(self._head(status, headers, len(payload)) + payload)

    def _truncate(self, answer: Answer, variant: str) -> None:
        status, headers, payload = answer
        if status in (204, 304) or not payload:  # nothing to cut but the header block
            self.proxy._variant("truncated", "head")
            head = self._head(status, headers, 0)
            self.wfile.write(head[:len(head) // 2])
            self._drop("fin")
            return
        half = payload[:len(payload) // 2]
        self.proxy._variant("truncated", variant)
        if variant == "honest":
            self.wfile.write(self._head(status, headers, len(half)) + half)
            return
        self.wfile.write(self._head(status, headers, len(payload)) + half)
        self._drop("fin")

    def _drop(self, how: str) -> None:
        """Close the client's connection without (the rest of) an answer."""
        self.close_connection = True
        if how == "rst":  # SO_LINGER 0: close() sends a TCP reset instead of a FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.rfile.close()  # the reader holds a reference: close it, or no close happens
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_WR)
