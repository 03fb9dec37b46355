"""The HTTP client: NetSuite's error bodies into the error tree; 429, 5xx, timeouts and resets
retried with bounded, logged backoff honouring Retry-After; writes never resent blindly;
the concurrency limit never exceeded."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netsuite_rest_fake import FakeNetSuite, rest_gateway
from structlog.testing import capture_logs
from test_gateway_contract import ANCHOR, all_units, make_draft

from ar_sync.errors import (
    AmbiguousError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
    TransientError,
)
from ar_sync.models import Invoice
from ar_sync.netsuite.rest.client import (
    ClientOptions,
    RestClient,
    dumps_exact,
    parse_retry_after,
)
from ar_sync.netsuite.rest.errors import (
    CredentialsRefused,
    NetSuiteServerError,
    PermissionRefused,
    classify,
    parse_error,
)
from ar_sync.netsuite.seed import build_demo_account


def body(status: int, code: str, detail: str, path: str = "") -> str:
    item = {"detail": detail, "o:errorCode": code} | ({"o:errorPath": path} if path else {})
    return json.dumps({"type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html",
                       "title": "Bad Request", "status": status, "o:errorDetails": [item]})


def test_netsuite_error_bodies_are_parsed() -> None:
    parsed = parse_error(400, body(400, "INVALID_CONTENT", "Invalid value for item.",
                                   "item.items[0].item"))
    assert (parsed.netsuite, parsed.code, parsed.path, parsed.message) == (
        True, "INVALID_CONTENT", "item.items[0].item", "Invalid value for item.")
    proxy = parse_error(502, "<html><body>Bad gateway</body></html>")
    assert not proxy.netsuite and "Bad gateway" in proxy.title
    oauth = parse_error(400, '{"error": "invalid_grant", "error_description": "expired"}')
    assert (oauth.code, oauth.message) == ("invalid_grant", "expired")
    assert parse_error(500, "").describe() == "HTTP 500: HTTP 500"


@pytest.mark.parametrize("status,code,detail,expected", [
    (429, "CONCURRENCY_LIMIT_EXCEEDED", "Request blocked.", TransientError),
    (500, "UNEXPECTED_ERROR", "An unexpected error occurred.", NetSuiteServerError),
    (503, "", "", TransientError),
    (401, "INVALID_LOGIN", "Invalid login attempt.", CredentialsRefused),
    (403, "INSUFFICIENT_PERMISSION", "Permission Violation.", PermissionRefused),
    (400, "USER_ERROR", "Your current role does not have permission to do this.",
     PermissionRefused),
    (400, "USER_ERROR", "Please enter value(s) for: Terms", RejectedError),
    (400, "INVALID_CONTENT", "Invalid value.", RejectedError),
    (404, "NONEXISTENT_ID", "The record instance does not exist.", RejectedError),
    (400, "DUP_RCRD", "This record already exists.", DuplicateExternalIdError),
])
def test_answers_are_classified_by_what_happens_next(status: int, code: str, detail: str,
                                                     expected: type) -> None:
    text = body(status, code, detail) if code else ""
    error = classify(parse_error(status, text), what="creating invoice k", external_id="k")
    assert type(error) is expected
    if isinstance(error, RejectedError) and not isinstance(error, DuplicateExternalIdError):
        assert str(error) == detail and error.remote_code == code


def test_a_4xx_on_a_read_is_fatal_not_a_record_problem() -> None:
    error = classify(parse_error(400, body(400, "INVALID_PARAMETER", "Invalid search query.")),
                     what="querying NetSuite")
    assert type(error) is FatalError and "Invalid search query." in str(error)


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_decimals_are_sent_exactly() -> None:
    from decimal import Decimal

    text = dumps_exact({"rate": Decimal("1249.00"), "qty": Decimal("42.5"), "ok": True,
                        "items": [Decimal("0.10")], "name": "Düsseldorf"})
    assert text == '{"rate":1249.00,"qty":42.5,"ok":true,"items":[0.10],"name":"Düsseldorf"}'


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeNetSuite]:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db") as server:
        yield server


def test_retries_honour_retry_after_are_bounded_and_logged(fake: FakeNetSuite) -> None:
    slept: list[float] = []
    fake.inject("status", route="suiteql", status=429, retry_after="3", times=1)
    fake.inject("status", route="suiteql", status=503, times=1)
    with rest_gateway(fake, sleep=slept.append, max_attempts=3) as gw, capture_logs() as logs:
        assert gw.read_invoices(["1"]) == {}
    assert slept[0] >= 3 and slept[1] < 1  # Retry-After, then jittered backoff
    retries = [e for e in logs if e["event"] == "netsuite_request_retry"]
    assert [(e["attempt"], e["of"]) for e in retries] == [(1, 3), (2, 3)]
    assert retries[0]["retry_after"] == 3.0
    fake.inject("status", route="suiteql", status=503, times=5)
    with rest_gateway(fake, sleep=slept.append, max_attempts=3) as gw, \
            pytest.raises(TransientError, match="unavailable"):
        gw.read_invoices(["1"])
    assert fake.faults[-1].times == 2  # three attempts, then it gave up


def test_a_read_timeout_on_a_query_is_retried(fake: FakeNetSuite) -> None:
    fake.inject("slow", route="suiteql", delay=0.6)
    with rest_gateway(fake, read_timeout=0.25) as gw:
        assert len(all_units(gw, ANCHOR)) > 50
    assert fake.stats.requests["suiteql"] == 4  # three queries, one of them twice


def test_a_reset_connection_on_a_query_is_retried(fake: FakeNetSuite) -> None:
    fake.inject("drop_before", route="suiteql")
    fake.inject("drop_after", route="suiteql")
    with rest_gateway(fake) as gw:
        assert len(all_units(gw, ANCHOR)) > 50
    assert fake.stats.dropped == 2


def test_a_transform_that_times_out_is_ambiguous_and_never_sent_twice(
        fake: FakeNetSuite) -> None:
    fake.inject("slow", route="transform", delay=0.8)
    with rest_gateway(fake, read_timeout=0.3) as gw:
        unit = all_units(gw, ANCHOR)[0]
        [result] = gw.create_invoices([make_draft(unit)])
        assert isinstance(result, AmbiguousError)  # still running when looked up
        time.sleep(0.8)  # NetSuite finishes what it was doing
        [again] = gw.create_invoices([make_draft(unit)])
        assert isinstance(again, DuplicateExternalIdError)  # found, not sent again
    assert fake.stats.requests["transform"] == 1 and fake.invoice_keys() == [unit.key]


def test_a_request_that_never_connected_is_safe_to_send_again() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    slept: list[float] = []
    client = RestClient(ClientOptions(f"http://127.0.0.1:{port}/services/rest", max_attempts=3,
                                      backoff=0.01), sleep=slept.append)
    with pytest.raises(TransientError, match="could not reach NetSuite"):
        client.request("POST", client.options.url("record/v1/salesOrder/1/!transform/invoice"),
                       kind="transform", what="creating", idempotent=False, data=b"{}")
    assert len(slept) == 2 and client.sent["transform"] == 3


def test_the_concurrency_limit_is_never_exceeded(tmp_path: Path) -> None:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db", latency=0.02, concurrency_limit=3) as fake, \
            rest_gateway(fake, concurrency=3) as gw:
        gw.read_invoices(["1"])  # the token first
        threads = [threading.Thread(target=gw.read_invoices, args=([str(i)],))
                   for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert fake.stats.max_in_flight == 3 and fake.stats.over_limit == 0


def test_the_account_limit_answers_429_and_the_client_waits(tmp_path: Path) -> None:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    # four requests at once against a limit of one: each loser waits (backoff 10-50 ms) and
    # tries again; the bound is generous so that a busy machine cannot starve one thread
    # through every attempt (seen once in CI with 10)
    with FakeNetSuite(tmp_path / "netsuite.db", latency=0.05, concurrency_limit=1) as fake, \
            rest_gateway(fake, concurrency=4, max_attempts=40) as gw:
        units = all_units(gw, ANCHOR)[:6]
        results = gw.create_invoices([make_draft(u) for u in units])
        assert all(isinstance(r, Invoice) for r in results), [
            r for r in results if not isinstance(r, Invoice)]
        assert fake.stats.over_limit > 0 and sorted(fake.invoice_keys()) == sorted(
            u.key for u in units)


def test_the_proxy_environment_is_read_once_and_still_honoured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    remote = RestClient(ClientOptions("https://1234567-sb1.suitetalk.api.netsuite.com/services/rest"))
    assert remote.session.proxies.get("https") == "http://proxy.example:3128"
    assert remote.session.verify == "/etc/ssl/company-ca.pem"
    assert not remote.session.trust_env  # not re-read on every request
    local = RestClient(ClientOptions("http://127.0.0.1:9/services/rest"))
    assert "http" not in local.session.proxies and "https" not in local.session.proxies
