"""The REST gateway against the loopback fake: the whole gateway contract, the same units and
invoices as the sandbox on the same account, and never an invoice twice.

Creation is where exactly-once lives, so most tests here inject what goes wrong on the wire
during a transform — a dropped connection before or after NetSuite processed it, NetSuite's
own 500, a proxy's bare 502, a 429 with Retry-After, a refusal — and check the account holds
each invoice once, and the result says what happened.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from netsuite_rest_fake import FakeNetSuite, rest_gateway
from structlog.testing import capture_logs
from test_gateway_contract import ANCHOR, Account, GatewayContract, all_units, make_draft

from ar_sync.errors import (
    AmbiguousError,
    DuplicateExternalIdError,
    FatalError,
    RejectedError,
)
from ar_sync.models import BillableUnit, Invoice
from ar_sync.netsuite.rest.gateway import RestGateway
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import build_demo_account


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeNetSuite]:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db") as server:
        yield server


@pytest.fixture
def gateway(fake: FakeNetSuite) -> Iterator[RestGateway]:
    with rest_gateway(fake) as gw:
        yield gw


@pytest.fixture
def units(gateway: RestGateway) -> list[BillableUnit]:
    return all_units(gateway, ANCHOR)


class TestRestGateway(GatewayContract):
    """Every test of the gateway contract, over HTTP against the fake."""

    @pytest.fixture
    def account(self, tmp_path: Path) -> Iterator[Account]:
        build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
        with FakeNetSuite(tmp_path / "netsuite.db") as server, rest_gateway(server) as gw:
            yield Account(gw, ANCHOR, server.account.sandbox.set_order_field)


def test_rest_lists_and_creates_exactly_what_the_sandbox_does(tmp_path: Path,
                                                               fake: FakeNetSuite,
                                                               gateway: RestGateway) -> None:
    shutil.copy(fake.account.path, tmp_path / "twin.db")
    with SandboxGateway.open(tmp_path / "twin.db") as twin:
        units = all_units(gateway, ANCHOR)
        assert units == all_units(twin, ANCHOR)  # keys, kinds, lines, customers, fingerprints
        drafts = [make_draft(u) for u in units[:12]]
        created = gateway.create_invoices(drafts)
        expected = twin.create_invoices(drafts)
        assert [type(r) for r in created] == [type(r) for r in expected]

        def comparable(inv: Invoice | object) -> object:
            return dataclasses.replace(inv, netsuite_id=None, tran_id=None) \
                if isinstance(inv, Invoice) else type(inv)

        assert list(map(comparable, created)) == list(map(comparable, expected))
        assert gateway.tax_codes() == twin.tax_codes()


def test_reads_are_bulk_not_one_request_per_order(fake: FakeNetSuite,
                                                  gateway: RestGateway) -> None:
    units = all_units(gateway, ANCHOR)
    listing = fake.stats.requests["suiteql"]
    assert len(units) > 50 and listing <= 4  # orders, their lines, due instalments
    gateway.create_invoices([make_draft(u) for u in units[:20]])
    assert fake.stats.requests["transform"] == 20
    assert fake.stats.requests["suiteql"] - listing == 2  # the look-up before, the read-back
    assert all(limit <= 1000 and offset == 0 for limit, offset, _ in fake.stats.suiteql)


def test_transforms_run_concurrently_up_to_the_limit_and_never_beyond(tmp_path: Path) -> None:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db", latency=0.03, concurrency_limit=3) as fake, \
            rest_gateway(fake, concurrency=3) as gw, rest_gateway(fake, concurrency=3) as other:
        units = all_units(gw, ANCHOR)
        halves = [units[:20], units[20:40]]
        threads = [threading.Thread(target=g.create_invoices, args=([make_draft(u) for u in h],))
                   for g, h in zip((gw, other), halves, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert fake.stats.max_in_flight == 3  # used the whole share, shared by both clients
        assert fake.stats.over_limit == 0 and fake.stats.statuses[429] == 0
        assert len(fake.invoice_keys()) == 40


def test_a_connection_dropped_after_netsuite_created_the_invoice_is_adopted(
        fake: FakeNetSuite, gateway: RestGateway, units: list[BillableUnit]) -> None:
    fake.inject("drop_after", route="transform", match=units[1].key)
    with capture_logs() as logs:
        results = gateway.create_invoices([make_draft(u) for u in units[:3]])
    assert all(isinstance(r, Invoice) for r in results)
    assert results[1].key == units[1].key and results[1].tran_id  # type: ignore[union-attr]
    assert sorted(fake.invoice_keys()) == sorted(u.key for u in units[:3])
    assert [e["found"] for e in logs if e["event"] == "invoice_create_uncertain"] == [True]


def test_a_connection_dropped_before_processing_is_ambiguous_and_not_resent(
        fake: FakeNetSuite, gateway: RestGateway, units: list[BillableUnit]) -> None:
    fake.inject("drop_before", route="transform", match=units[1].key)
    results = gateway.create_invoices([make_draft(u) for u in units[:3]])
    assert isinstance(results[0], Invoice) and isinstance(results[2], Invoice)
    assert isinstance(results[1], AmbiguousError)  # the pipeline looks again next cycle
    assert fake.stats.requests["transform"] == 3
    assert units[1].key not in fake.invoice_keys()


def test_netsuites_own_500_is_looked_up_then_sent_again_once(
        fake: FakeNetSuite, gateway: RestGateway, units: list[BillableUnit]) -> None:
    fake.inject("status", route="transform", status=500, match=units[0].key,
                detail="An unexpected error occurred. Error ID: kz1x9")
    [result] = gateway.create_invoices([make_draft(units[0])])
    assert isinstance(result, Invoice)
    assert fake.stats.requests["transform"] == 2 and fake.invoice_keys() == [units[0].key]


def test_a_proxys_bare_502_on_a_transform_is_ambiguous(
        fake: FakeNetSuite, gateway: RestGateway, units: list[BillableUnit]) -> None:
    fake.inject("status", route="transform", status=502, raw=True)
    [result] = gateway.create_invoices([make_draft(units[0])])
    assert isinstance(result, AmbiguousError)
    assert fake.stats.requests["transform"] == 1 and fake.invoice_keys() == []


def test_429_is_retried_after_retry_after_and_creates_once(fake: FakeNetSuite,
                                                           units: list[BillableUnit]) -> None:
    slept: list[float] = []
    fake.inject("status", route="transform", status=429, retry_after="2", times=2)
    with rest_gateway(fake, sleep=slept.append) as gw:
        results = gw.create_invoices([make_draft(units[0])])
    assert isinstance(results[0], Invoice)
    assert len(slept) == 2 and all(s >= 2 for s in slept)
    assert fake.invoice_keys() == [units[0].key]


def test_a_refusal_carries_netsuites_code_message_and_path(
        fake: FakeNetSuite, gateway: RestGateway, units: list[BillableUnit]) -> None:
    fake.inject("status", route="transform", status=400, code="USER_ERROR",
                detail="Please enter value(s) for: Terms", path="terms", match=units[0].key)
    first, second = gateway.create_invoices([make_draft(u) for u in units[:2]])
    assert isinstance(first, RejectedError) and not isinstance(first, DuplicateExternalIdError)
    assert (str(first), first.remote_code, first.field) == (
        "Please enter value(s) for: Terms", "USER_ERROR", "terms")
    assert isinstance(second, Invoice)


def test_a_permission_refusal_stops_the_batch(fake: FakeNetSuite, gateway: RestGateway,
                                              units: list[BillableUnit]) -> None:
    fake.permissions = fake.permissions - {"invoices"}
    with pytest.raises(FatalError, match="Transactions > Invoice"):
        gateway.create_invoices([make_draft(u) for u in units[:4]])
    assert fake.invoice_keys() == []


def test_a_key_that_netsuite_already_has_is_never_sent(fake: FakeNetSuite,
                                                       gateway: RestGateway,
                                                       units: list[BillableUnit]) -> None:
    gateway.create_invoices([make_draft(units[0])])
    sent = fake.stats.requests["transform"]
    again = dataclasses.replace(make_draft(units[0]), key=units[0].key.upper())
    [result] = gateway.create_invoices([again])
    assert isinstance(result, DuplicateExternalIdError)
    assert fake.stats.requests["transform"] == sent  # found by the look-up before sending


def test_keyset_paging_reads_past_the_offset_cap(tmp_path: Path) -> None:
    from ar_sync.netsuite.seed import build_generated_account

    account = build_generated_account(tmp_path / "big.db", 1300, ANCHOR)
    with FakeNetSuite(tmp_path / "big.db", row_cap=500) as fake, rest_gateway(fake) as gw:
        units = all_units(gw, ANCHOR, batch_size=200)
        assert len({u.order_id for u in units}) == account.billable_orders > 1000
        due = [q for _, _, q in fake.stats.suiteql if "nextbilldate" in q]
        assert len(due) >= 3 and all(offset == 0 for _, offset, _ in fake.stats.suiteql)
        with pytest.raises(FatalError, match="at most 500 results"):  # offset paging cannot
            gw.client.request("POST", gw.client.options.url("query/v1/suiteql"), kind="suiteql",
                              what="offset paging", idempotent=True,
                              params={"limit": "500", "offset": "500"},
                              headers={"Prefer": "transient"}, data=b'{"q": "SELECT 1"}')


def test_an_order_netsuite_cannot_give_cleanly_is_unreadable_not_fatal(
        fake: FakeNetSuite, gateway: RestGateway) -> None:
    units = all_units(gateway, ANCHOR)
    fake.account.sandbox.set_order_field(units[0].order_id, "currency", "XXX")  # unknown
    listed = [u for batch in gateway.iter_billable(ANCHOR, 50) for u in batch]
    broken = [u for u in listed if u.key.endswith(":unreadable")]
    assert len(broken) == 1 and broken[0].field == "currency"  # type: ignore[union-attr]
    assert len(listed) == len(units) - len([u for u in units
                                            if u.order_id == units[0].order_id]) + 1


def test_billing_dates_of_the_past_are_listed_by_keyset_in_order(
        gateway: RestGateway) -> None:
    early = all_units(gateway, ANCHOR - dt.timedelta(days=40))
    assert [u.key for u in early] == sorted((u.key for u in early),
                                            key=lambda k: (int(k.split(":")[1]), k))
