"""The daemon: the configured schedule, one daemon per state file, clean stops, no overlap.

The process tests start real ``ar-sync daemon`` processes on a demo directory (its first
cycle runs at start) and read the real SQLite state file while they work; the scheduling
tests run :func:`ar_sync.daemon.serve` in this process with a fast trigger and a slow
stand-in cycle, because the config cannot schedule more often than once a minute.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import structlog
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ar_sync import daemon, log
from ar_sync.config import Settings, load_settings
from ar_sync.connector import safe_filename
from ar_sync.demo import write_demo_dir
from ar_sync.netsuite.seed import GeneratedAccount, build_generated_account
from ar_sync.runner import LockHeldError, state_lock

_SCRIPT = Path(sys.executable).with_name("ar-sync")
AR_SYNC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ar_sync"]
UTC = dt.UTC


# -- helpers -------------------------------------------------------------------------------

def set_section(config: Path, section: str, body: str) -> None:
    """Replace the body of ``[section]`` in a config file (appending the table if absent)."""
    text = config.read_text(encoding="utf-8")
    pattern = re.compile(rf"^\[{re.escape(section)}\]\n.*?(?=^\[|\Z)", re.M | re.S)
    table = f"[{section}]\n{body.strip()}\n\n"
    text, n = pattern.subn(lambda _: table, text, count=1)
    config.write_text(text if n else text + "\n" + table, encoding="utf-8")


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("AR_SYNC_CONFIG", "AR_SYNC_FAILPOINT")}


def run_cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AR_SYNC, "--config", str(config), *args], capture_output=True,
                          text=True, env=cli_env(), timeout=timeout, check=False)


class Daemon:
    """A running ``ar-sync daemon`` whose stdout and stderr go to files."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.out, self.err = logs.with_suffix(".out"), logs.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([*AR_SYNC, "--config", str(config), "daemon"],
                                         stdout=out, stderr=err, env=cli_env())
        self.pid = self.proc.pid

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8")

    def stop(self, *signals: signal.Signals, timeout: float = 15) -> int:
        for i, sig in enumerate(signals):
            if i:
                time.sleep(0.05)
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons started by a test; any still running at the end are killed."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Query a SQLite file another process is writing; [] until its tables exist."""
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(db, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def count(db: Path, where: str) -> int:
    found = rows(db, f"SELECT COUNT(*) FROM {where}")
    return int(found[0][0]) if found else 0


def wait_for(condition: Callable[[], bool], d: Daemon, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if d.proc.poll() is not None:
            pytest.fail(f"the daemon exited ({d.proc.returncode}) before {what}:\n{d.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s:\n{d.stderr()}")
        time.sleep(0.05)


def state_of(config: Path) -> Path:
    return config.parent / "state" / "ar-sync.db"


def outbox_files(config: Path) -> list[str]:
    return sorted(p.name for p in (config.parent / "outbox").glob("*/*.json"))


def assert_settled(db: Path) -> None:
    """Nothing is left half-done: no unit mid-create or mid-delivery, no open attempt."""
    assert rows(db, "SELECT key, state FROM units WHERE state IN ('creating', 'delivering')") == []
    assert rows(db, "SELECT id, key, operation FROM attempts WHERE outcome = 'pending'") == []
    assert rows(db, "SELECT id, outcome FROM cycles WHERE finished_at IS NULL") == []


def demo_config(tmp_path: Path, orders: int | None = None) -> tuple[Path, GeneratedAccount | None]:
    """A demo directory; with ``orders``, on a generated account of that many due orders."""
    config = write_demo_dir(tmp_path / "demo")
    account = None
    if orders:
        anchor = dt.date.today() - dt.timedelta(days=1)  # due in every time zone by today
        account = build_generated_account(config.parent / "state" / "big.db", orders, anchor)
        set_section(config, "netsuite", 'api = "sandbox"\nsandbox_file = "state/big.db"')
    return config, account


# -- one daemon per state file; SIGTERM and SIGINT ----------------------------------------

@pytest.mark.slow
def test_second_daemon_is_refused_naming_the_holder_and_sigterm_stops_cleanly(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    config, _ = demo_config(tmp_path)
    db = state_of(config)
    first = Daemon(config, tmp_path / "first")
    daemons.append(first)
    wait_for(lambda: count(db, "cycles WHERE outcome = 'ok'") >= 1, first,
             "finished first cycle")
    delivered = count(db, "units WHERE state = 'delivered'")
    assert delivered > 0, "the cycle at start billed the demo account"
    assert delivered == len(outbox_files(config))

    started = time.monotonic()
    second = run_cli(config, "daemon", timeout=30)
    assert second.returncode == 1, second.stderr
    assert time.monotonic() - started < 15
    assert re.search(rf"\bpid {first.pid}\b", second.stderr), second.stderr
    assert "in use" in second.stderr and "Traceback" not in second.stderr
    assert count(db, "cycles") == 1, "the refused daemon ran no cycle"
    assert first.proc.poll() is None, "the first daemon keeps running"

    assert first.stop(signal.SIGTERM) == 0, first.stderr()
    assert "Traceback" not in first.stderr()
    assert_settled(db)
    assert count(db, "units WHERE state = 'delivered'") == delivered
    with state_lock(db):  # released: the next process may work the state file
        pass


@pytest.mark.slow
def test_sigint_stops_an_idle_daemon_cleanly(tmp_path: Path, daemons: list[Daemon]) -> None:
    config, _ = demo_config(tmp_path)
    db = state_of(config)
    d = Daemon(config, tmp_path / "d")
    daemons.append(d)
    wait_for(lambda: count(db, "cycles WHERE outcome = 'ok'") >= 1, d, "finished first cycle")
    assert d.stop(signal.SIGINT) == 0, d.stderr()
    assert "Traceback" not in d.stderr() and "KeyboardInterrupt" not in d.stderr()
    assert_settled(db)
    with state_lock(db):
        pass


# -- a signal mid-cycle finishes the invoice in hand --------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("phase, signals", [
    ("creating", (signal.SIGTERM,)),
    ("delivering", (signal.SIGINT,)),
], ids=["sigterm-while-creating", "sigint-while-delivering"])
def test_a_signal_mid_cycle_finishes_the_invoice_in_hand_and_the_next_run_the_rest(
        tmp_path: Path, daemons: list[Daemon], phase: str,
        signals: tuple[signal.Signals, ...]) -> None:
    config, account = demo_config(tmp_path, orders=600)
    assert account is not None
    db = state_of(config)
    if phase == "creating":  # three batches: the signal lands while the first is created
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("[billing]\n", "[billing]\nbatch_size = 200\n", 1),
                          encoding="utf-8")
    d = Daemon(config, tmp_path / "d")
    daemons.append(d)
    if phase == "creating":
        wait_for(lambda: count(db, "units WHERE state = 'creating'") > 0, d,
                 "units being created")
    else:
        wait_for(lambda: count(db, "units WHERE state = 'delivered'") >= 20, d,
                 "deliveries")
    assert d.stop(*signals) == 0, d.stderr()
    assert "Traceback" not in d.stderr()

    assert_settled(db)
    (summary,) = [json.loads(s) for (s,) in rows(db, "SELECT summary FROM cycles")]
    assert summary["stopped_early"] is True
    delivered = {k for (k,) in rows(db, "SELECT key FROM units WHERE state = 'delivered'")}
    if phase == "creating":
        assert count(db, "units") < account.billable_orders, "it stopped before pulling all"
    else:
        assert delivered and count(db, "units WHERE state = 'created'") > 0, "it stopped early"
    assert outbox_files(config) == sorted(f"{safe_filename(k)}.json" for k in delivered)

    rest = run_cli(config, "run", "--once")
    assert rest.returncode == 0, rest.stderr
    assert "adopted 0," in rest.stdout, "nothing was created in NetSuite without a record"
    assert_settled(db)
    states = dict(rows(db, "SELECT state, COUNT(*) FROM units GROUP BY state"))
    assert set(states) == {"delivered", "held"}
    assert sum(states.values()) == account.billable_orders
    assert len(account.planted) <= states["held"] < account.billable_orders // 20
    assert {s for (s,) in rows(db, "SELECT DISTINCT hold_stage FROM units WHERE state = 'held'")
            } == {"check"}, "no invoice was refused by NetSuite or the outbox as a duplicate"
    delivered = {k for (k,) in rows(db, "SELECT key FROM units WHERE state = 'delivered'")}
    assert outbox_files(config) == sorted(f"{safe_filename(k)}.json" for k in delivered)
    assert rows(db, "SELECT key, COUNT(*) FROM attempts WHERE operation = 'deliver' "
                    "AND outcome = 'ok' GROUP BY key HAVING COUNT(*) > 1") == []
    sandbox = config.parent / "state" / "big.db"
    ids = [e for (e,) in rows(sandbox, "SELECT external_id FROM invoices "
                                        "WHERE external_id IS NOT NULL")]
    assert len(ids) == len({e.lower() for e in ids}) == len(delivered)
    assert set(ids) == delivered


# -- the schedule --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_dir(tmp_path_factory.mktemp("daemon") / "demo").parent


def settings_with(demo: Path, name: str, schedule: str, zone: str) -> Settings:
    """The demo config with its ``[schedule]`` and time zone replaced, saved as ``name``."""
    config = demo / name
    config.write_text((demo / "ar-sync.toml").read_text(encoding="utf-8"), encoding="utf-8")
    set_section(config, "schedule", schedule)
    set_section(config, "billing", f'timezone = "{zone}"')
    return load_settings(config)


def test_cron_schedule_fires_at_the_configured_local_time(demo_dir: Path) -> None:
    """Weekdays count as in a crontab (0 and 7 are Sunday), in the billing time zone."""
    settings = settings_with(demo_dir, "cron.toml", 'cron = "30 6 * * 1-5"', "America/New_York")
    trigger = daemon.trigger_for(settings)
    friday_noon = dt.datetime(2026, 3, 6, 17, 0, tzinfo=UTC)
    # Monday 06:30 in New York, which moved to daylight time on Sunday: 10:30 UTC
    assert trigger.get_next_fire_time(None, friday_noon) == dt.datetime(2026, 3, 9, 10, 30,
                                                                         tzinfo=UTC)
    sunday = daemon.trigger_for(settings_with(demo_dir, "sunday.toml", 'cron = "30 6 * * 0"',
                                              "America/New_York"))
    assert sunday.get_next_fire_time(None, friday_noon) == dt.datetime(2026, 3, 8, 10, 30,
                                                                       tzinfo=UTC)
    tokyo = daemon.trigger_for(settings_with(demo_dir, "tokyo.toml", 'cron = "30 6 * * 1-5"',
                                             "Asia/Tokyo"))
    assert tokyo.get_next_fire_time(None, friday_noon) == dt.datetime(2026, 3, 8, 21, 30,
                                                                      tzinfo=UTC)


@pytest.mark.parametrize("schedule, minutes", [("", 60), ("interval_minutes = 15", 15)])
def test_interval_schedule_defaults_to_an_hour(demo_dir: Path, schedule: str,
                                               minutes: int) -> None:
    settings = settings_with(demo_dir, f"every{minutes}.toml", schedule, "Europe/Berlin")
    trigger = daemon.trigger_for(settings)
    first = trigger.get_next_fire_time(None, dt.datetime.now(UTC))
    assert trigger.get_next_fire_time(first, first) - first == dt.timedelta(minutes=minutes)


# -- an overrunning cycle is never started twice ------------------------------------------

@pytest.fixture
def process_state() -> Iterator[None]:
    """Restore what serve() and log.configure() change process-wide."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    hook = sys.excepthook
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    root.handlers[:] = root_handlers
    root.setLevel(root_level)
    sys.excepthook = hook
    structlog.reset_defaults()


def test_an_overrunning_cycle_is_skipped_and_logged_never_run_twice(
        demo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        process_state: None) -> None:
    settings = load_settings(demo_dir / "ar-sync.toml")
    log.configure("info", "json")
    guard = threading.Lock()
    active = peak = runs = 0
    held_by_daemon: list[bool] = []  # the state lock is held, at the start and end of cycles

    def slow_cycle(_settings: Settings, *, stop: threading.Event, locked: bool) -> None:
        nonlocal active, peak, runs
        try:
            with state_lock(settings.state_path):
                held_by_daemon.append(False)
        except LockHeldError:
            held_by_daemon.append(locked)
        with guard:
            active += 1
            runs += 1
            peak = max(peak, active)
        if runs == 3:  # stop while this cycle works; an impatient supervisor signals twice
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)  # six trigger periods: an overrun
        try:
            with state_lock(settings.state_path):
                held_by_daemon.append(False)
        except LockHeldError:
            held_by_daemon.append(True)
        with guard:
            active -= 1

    jobs: list[Any] = []

    class RecordingScheduler(BlockingScheduler):  # type: ignore[misc]
        def add_job(self, *args: Any, **kwargs: Any) -> Any:
            jobs.append(super().add_job(*args, **kwargs))
            return jobs[-1]

    monkeypatch.setattr(daemon, "run_cycle", slow_cycle)
    monkeypatch.setattr(daemon, "BlockingScheduler", RecordingScheduler)
    watchdog = threading.Timer(20, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        daemon.serve(settings, trigger=IntervalTrigger(seconds=0.05, timezone=settings.zone))
    finally:
        watchdog.cancel()

    assert runs == 3, "the schedule ran cycles one after another; none after the signal"
    assert peak == 1, "a cycle was started while another was running"
    assert held_by_daemon == [True] * 6, "the daemon holds the state lock for its whole life"
    # retention once a day; the watchdog alerts when no cycle succeeds (even a stuck one)
    assert sorted(j.id for j in jobs) == ["cycle", "retention", "watchdog"]
    job = next(j for j in jobs if j.id == "cycle")
    assert job.max_instances == 1 and job.coalesce is True
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    skipped = [e for e in lines if "skipped" in e["event"]]
    assert skipped, "a skipped run is logged"
    assert all(e["level"] == "warning" for e in skipped)
    assert {"daemon_started", "daemon_stopping", "daemon_stopped"} <= {e["event"] for e in lines}
