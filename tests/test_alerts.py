"""Alerts: one message per cycle with enough to act, deduplicated, to a webhook and by e-mail."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from conftest import Inbox, free_port, serve_http

from ar_sync.config import load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.errors import ArSyncError
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle

AS_OF = dt.date(2026, 11, 30)


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    with serve_http(Hook) as base:
        yield f"{base}/hook"


def configured(tmp_path: Path, alerts: str) -> Any:
    config = write_demo_dir(tmp_path / "demo", AS_OF)
    config.write_text(config.read_text() + "\n" + alerts)
    return load_settings(config)


def test_one_webhook_message_per_cycle_naming_what_was_held(tmp_path: Path,
                                                            webhook: str) -> None:
    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "{webhook}"\n')
    run_cycle(settings, as_of=AS_OF)
    assert len(Hook.received) == 1
    text = Hook.received[0]["text"]
    assert text.startswith(f"ar-sync: {len(PLANTED_PROBLEMS)} thing(s) need a person")
    assert "po.required" in text and "SO-10077" in text and "ar-sync failures" in text
    run_cycle(settings, as_of=AS_OF)  # nothing new: no message
    assert len(Hook.received) == 1


def test_the_same_problem_alerts_once_per_period(tmp_path: Path, webhook: str) -> None:
    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "{webhook}"\n')
    run_cycle(settings, as_of=AS_OF)
    from ar_sync.store import Store

    store = Store.open(settings.state_path)
    key = store.rows("SELECT key FROM units WHERE hold_reason = 'po.required'")[0]["key"]
    store.request_rerun([key], "alice", "try again")
    store.close()
    run_cycle(settings, as_of=AS_OF, only_keys=[key])  # held again for the same reason
    assert len(Hook.received) == 1


def test_what_still_waits_after_the_period_is_recalled_once_per_period(
        tmp_path: Path, webhook: str) -> None:
    """Each held invoice alerts once; if invoices still wait a period later, one reminder
    line says how many and how many nobody took — once per period, not every cycle."""
    from ar_sync.oncall import acknowledge
    from ar_sync.store import Store

    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "{webhook}"\ndedup_hours = 24\n')
    run_cycle(settings, as_of=AS_OF)
    assert "STILL WAITING" not in Hook.received[0]["text"], "not on the day they were held"
    store = Store.open(settings.state_path)
    acknowledge(store, store.rows("SELECT key FROM units WHERE state = 'held'")[0]["key"],
                "alice", "on it")
    store.conn.execute("UPDATE units SET updated_at = '2026-11-28T09:00:00+00:00' "
                       "WHERE state = 'held'")
    store.close()
    run_cycle(settings, as_of=AS_OF)
    assert len(Hook.received) == 2
    reminder = Hook.received[1]["text"]
    held = len(PLANTED_PROBLEMS)
    assert (f"STILL WAITING: {held} invoice(s) held for a person for over 24 h, {held - 1} "
            "taken by nobody") in reminder and "2026-11-28 09:00 UTC" in reminder
    run_cycle(settings, as_of=AS_OF)
    assert len(Hook.received) == 2, "once per period"


def test_the_watchdog_alerts_when_cycles_stop_succeeding_even_if_one_never_ends(
        tmp_path: Path, webhook: str) -> None:
    """A cycle that hangs never reaches its own alert; the daemon's watchdog does, once."""
    from ar_sync.daemon import watchdog
    from ar_sync.store import Store

    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "{webhook}"\n')
    started = dt.datetime.now(dt.UTC)
    Store.open(settings.state_path).close()
    assert not watchdog(settings, started), "a daemon that just started is not late"
    run_cycle(settings, as_of=AS_OF)
    Hook.received.clear()
    assert not watchdog(settings, started), "a recent success: nothing to say"
    store = Store.open(settings.state_path)  # the last success was three hours ago
    store.conn.execute("UPDATE cycles SET finished_at = '2026-01-01T00:00:00+00:00'")
    store.close()
    assert watchdog(settings, started)
    [message] = [h["text"] for h in Hook.received]
    assert "NO SUCCESSFUL CYCLE for over 2:00:00" in message and "restarted" in message
    assert not watchdog(settings, started) and len(Hook.received) == 1, "once per period"


def test_alerts_by_email(tmp_path: Path, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    settings = configured(tmp_path, f'[alerts.email]\nhost = "127.0.0.1"\nport = {port}\n'
                                    'starttls = false\nsender = "ar-sync@example.com"\n'
                                    'to = ["oncall@example.com"]\n')
    run_cycle(settings, as_of=AS_OF)
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message.rcpt_tos == ["oncall@example.com"]
    body = message.content.decode()
    assert f"Subject: ar-sync: {len(PLANTED_PROBLEMS)} thing(s) need a person" in body
    assert "lines.amount_matches" in body


def test_a_failing_cycle_alerts_that_nothing_has_succeeded(tmp_path: Path,
                                                          webhook: str) -> None:
    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "{webhook}"\n')
    settings.sandbox_path.write_bytes(b"this is not a NetSuite account")
    with pytest.raises(ArSyncError):
        run_cycle(settings, as_of=AS_OF)
    assert len(Hook.received) == 1
    assert "NO SUCCESSFUL CYCLE for over 2:00:00 (last: never)" in Hook.received[0]["text"]


def test_a_broken_webhook_is_retried_after_the_next_cycle(tmp_path: Path,
                                                         webhook: str) -> None:
    dead = free_port()
    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "http://127.0.0.1:{dead}/x"\n'
                                    "timeout_seconds = 2\n")
    run_cycle(settings, as_of=AS_OF)  # the cycle itself succeeds; the alert waits
    from ar_sync.store import Store

    store = Store.open(settings.state_path)
    assert store.rows("SELECT * FROM alerts_sent") == []
    assert store.rows("SELECT * FROM cycles")[0]["outcome"] == "ok"
    store.close()
    fixed = settings.path.read_text().replace(f"http://127.0.0.1:{dead}/x", webhook)
    settings.path.write_text(fixed)
    run_cycle(load_settings(settings.path), as_of=AS_OF)  # nothing new, but what waited goes
    assert len(Hook.received) == 1
    assert f"{len(PLANTED_PROBLEMS)} thing(s)" in Hook.received[0]["text"]


def test_a_channel_that_stops_working_alerts_once(tmp_path: Path, webhook: str) -> None:
    from ar_sync.playbook import alert_channel
    from ar_sync.store import Store

    settings = configured(tmp_path, f'[alerts]\nwebhook_url = "{webhook}"\n')
    run_cycle(settings, as_of=AS_OF)
    from ar_sync import alerts
    from ar_sync.netsuite import open_gateway
    from ar_sync.pipeline import Cycle

    store = Store.open(settings.state_path)
    mark = alerts.watermark(store)
    cycle = Cycle(settings, store, open_gateway(settings), as_of=AS_OF)
    alert_channel(cycle, "coupa", "the portal refused our credentials (401)")
    alert_channel(cycle, "coupa", "the portal refused our credentials (401)")
    assert alerts.send(settings, store, alerts.collect(store, mark)) == 1
    text = Hook.received[-1]["text"]
    assert "CHANNEL coupa is not usable: the portal refused our credentials (401)" in text
