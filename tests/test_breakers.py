"""Circuit breakers: a failing channel or NetSuite is left alone for a cool-down, then probed;
nothing is lost or sent twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.errors import TransientError
from ar_sync.models import DeliveryOutcome, Invoice
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.pipeline import Cycle
from ar_sync.store import Store
from ar_sync_outbox import OutboxConnector

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = write_demo_dir(tmp_path / "demo", AS_OF)
    text = config.read_text().replace("[logging]", "[retry]\nin_call_wait_seconds = 0\n"
                                      "breaker_threshold = 3\nbase_seconds = 1\n\n[logging]")
    config.write_text(text)
    return load_settings(config)


class Down(OutboxConnector):
    """A channel that is down until told otherwise."""

    calls = 0
    up = False

    def submit(self, invoice: Invoice, document: Any) -> DeliveryOutcome:
        Down.calls += 1
        if not Down.up:
            raise TransientError("503 Service Unavailable")
        return super().submit(invoice, document)


def run(settings: Settings, gateway: Any = None) -> Any:
    store = Store.open(settings.state_path)
    down = Down("coupa", {"directory": settings.base / "outbox" / "coupa"})
    cycle = Cycle(settings, store, gateway or SandboxGateway.open(settings.sandbox_path),
                  connectors={"coupa": down}, as_of=AS_OF)
    return cycle.run(), store


def rows(settings: Settings, sql: str) -> list[Any]:
    store = Store.open(settings.state_path)
    try:
        return store.rows(sql)
    finally:
        store.close()


def cool_down_over(settings: Settings) -> None:
    store = Store.open(settings.state_path)
    store.conn.execute("UPDATE breakers SET open_until = '2000-01-01'")
    store.conn.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
    store.close()


def test_a_failing_channel_is_left_alone_then_probed(settings: Settings) -> None:
    Down.calls, Down.up = 0, False
    run(settings)
    assert Down.calls == 3  # the threshold, not one call per invoice
    waiting = rows(settings, "SELECT key FROM units WHERE channel = 'coupa' AND state = 'retry'")
    assert len(waiting) > 3
    opened = rows(settings, "SELECT detail FROM events WHERE kind = 'breaker_opened'")
    assert len(opened) == 1 and "channel:coupa" in opened[0]["detail"]
    run(settings)  # still cooling down: nothing is sent
    assert Down.calls == 3
    cool_down_over(settings)
    run(settings)  # the probe fails: open again, after one call
    assert Down.calls == 4
    cool_down_over(settings)
    Down.up = True
    run(settings)  # the probe succeeds: the queue drains
    assert rows(settings, "SELECT key FROM units WHERE channel = 'coupa' AND state = 'retry'"
                ) == []
    assert [r["kind"] for r in rows(settings, "SELECT kind FROM events WHERE kind LIKE "
                                    "'breaker_%' ORDER BY id")] == [
        "breaker_opened", "breaker_opened", "breaker_closed"]
    delivered = rows(settings, "SELECT COUNT(*) AS n FROM units WHERE channel = 'coupa' AND "
                     "state = 'delivered'")[0]["n"]
    assert delivered == len(list((settings.base / "outbox" / "coupa").glob("*.json")))


class NetSuiteDown:
    def __init__(self, inner: SandboxGateway) -> None:
        self.inner, self.name, self.calls = inner, "sandbox", 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def invoices_for_customers(self, *args: Any) -> Any:
        self.calls += 1
        raise TransientError("NetSuite 503")


def test_netsuite_failing_opens_its_breaker_and_later_cycles_wait(settings: Settings) -> None:
    gateway = NetSuiteDown(SandboxGateway.open(settings.sandbox_path))
    for _ in range(3):
        with pytest.raises(TransientError):
            run(settings, gateway)
    assert gateway.calls == 9  # 3 cycles x 3 bounded in-call attempts
    report, _ = run(settings, gateway)  # open: the cycle does not call NetSuite at all
    assert gateway.calls == 9 and report.found == 0
    last = rows(settings, "SELECT outcome, summary FROM cycles ORDER BY id DESC LIMIT 1")[0]
    assert last["outcome"] == "skipped" and "circuit open" in last["summary"]
    cool_down_over(settings)
    report, _ = run(settings)  # healthy again: the probe goes through and the cycle bills
    assert report.delivered > 0


def test_waiting_on_an_open_circuit_spends_no_attempts(settings: Settings) -> None:
    """Invoices for a channel whose circuit is open wait for the probe: they are not counted
    as failed attempts, so a long outage does not escalate them without a single try."""
    Down.calls, Down.up = 0, False
    run(settings)  # three failures open the circuit; the rest of coupa waits
    before = {r["key"]: r["retries"] for r in rows(
        settings, "SELECT key, retries FROM units WHERE channel = 'coupa' AND state = 'retry'")}
    until = rows(settings, "SELECT open_until FROM breakers WHERE name = 'channel:coupa'"
                 )[0]["open_until"]
    for _ in range(12):  # more cycles than [retry] max_attempts, all inside the cool-down
        store = Store.open(settings.state_path)
        store.conn.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
        store.close()
        run(settings)
    assert Down.calls == 3, "nothing was sent while the circuit was open"
    after = [r for r in rows(settings, "SELECT key, retries, state, next_attempt_at FROM units")
             if r["key"] in before]
    assert {r["key"]: r["retries"] for r in after} == before
    assert {r["state"] for r in after} == {"retry"}
    assert {r["next_attempt_at"] for r in after} == {until}
    cool_down_over(settings)
    Down.up = True
    run(settings)
    assert rows(settings, "SELECT key FROM units WHERE channel = 'coupa' AND state = 'retry'"
                ) == []


def test_the_channel_is_asked_first_only_when_a_send_may_have_arrived(
        settings: Settings) -> None:
    """After a plain transient failure nothing reached the channel: the retry sends at once.
    After an ambiguous send the retry asks the channel first and records what it has."""
    from ar_sync.errors import AmbiguousError

    class Flaky(OutboxConnector):
        mode = "transient"
        asked: list[str] = []

        def submit(self, invoice: Invoice, document: Any) -> DeliveryOutcome:
            if Flaky.mode == "transient":
                raise TransientError("503")
            outcome = super().submit(invoice, document)  # it arrives; the answer is lost
            if Flaky.mode == "ambiguous":
                raise AmbiguousError("no answer after sending")
            return outcome

        def status(self, key: str) -> DeliveryOutcome | None:
            Flaky.asked.append(key)
            return super().status(key)

    def cycle() -> None:
        store = Store.open(settings.state_path)
        flaky = Flaky("coupa", {"directory": settings.base / "outbox" / "coupa"})
        Cycle(settings, store, SandboxGateway.open(settings.sandbox_path),
              connectors={"coupa": flaky}, as_of=AS_OF).run()
        store.conn.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
        store.conn.execute("UPDATE breakers SET open_until = NULL, failures = 0")
        store.close()

    cycle()  # every coupa send fails plainly
    Flaky.mode = "ambiguous"
    cycle()  # retried without asking first; they arrive but no answer comes back
    assert Flaky.asked == []
    sent = {r["key"] for r in rows(settings, "SELECT key FROM attempts WHERE outcome = "
                                   "'ambiguous'")}
    waiting = {r["key"] for r in rows(settings, "SELECT key FROM units WHERE state = 'retry'")}
    assert sent and waiting > sent, "the circuit opened: the rest were never sent"
    Flaky.mode = "ok"
    cycle()  # only those asked first: the channel has them, recorded, not sent again
    assert set(Flaky.asked) == sent
    delivered = rows(settings, "SELECT key, delivery_ref FROM units WHERE channel = 'coupa' "
                     "AND state = 'delivered'")
    assert {r["key"] for r in delivered} >= waiting
    assert len(list((settings.base / "outbox" / "coupa").glob("*.json"))) == len(delivered)
