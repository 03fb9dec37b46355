"""``ar-sync daemon``: cycles on a schedule, one daemon per state file, clean shutdown.

APScheduler 3.x ``BlockingScheduler`` runs the cycle with ``max_instances=1`` (a cycle
that overruns is never started twice; the skipped run is logged) and ``coalesce=True``
(missed runs collapse into one). The state lock is held for the daemon's whole life.
SIGTERM and SIGINT set a stop flag that the cycle checks between invoices: the invoice in
hand is finished and recorded, then the process exits 0.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ar_sync import log
from ar_sync.config import Settings
from ar_sync.cxml_listener import start_listeners
from ar_sync.errors import ArSyncError
from ar_sync.runner import run_cycle, schedule_path, state_lock, write_schedule


def trigger_for(settings: Settings) -> Any:
    """The schedule from ``[schedule]``: a cron expression, else an interval (default 60 min)."""
    sched = settings.model.schedule
    if sched.cron:
        minute, hour, day, month, weekday = sched.cron.split()
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_cron_weekdays(weekday), timezone=settings.zone)
    return IntervalTrigger(minutes=sched.interval_minutes or 60, timezone=settings.zone)


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field: str) -> str:
    """A cron weekday field as day names for APScheduler 3.x.

    Cron numbers weekdays from Sunday (0 and 7); APScheduler 3.x from Monday, even in
    ``CronTrigger.from_crontab`` (agronholm/apscheduler#286), so ``1-5`` would bill Tuesday
    to Saturday. Spelled out as names, the field means what it means in a crontab.
    """
    if not any(ch.isdigit() for ch in field):
        return field  # '*' and names mean the same to both
    days: set[int] = set()
    for item in field.lower().split(","):
        span, _, step = item.partition("/")
        first, _, last = span.partition("-")
        lo = 0 if span == "*" else _weekday(first)
        hi = 7 if span == "*" or (step and not last) else _weekday(last or first)
        if hi < lo or (step and not step.isdigit()) or step == "0":
            raise ValueError(f"cron weekday field {field!r} is not valid")
        days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token[:3] in _WEEKDAYS and len(token) == 3:
        return _WEEKDAYS.index(token)
    raise ValueError(f"cron weekday {token!r} is not valid (0-7 or sun-sat)")


def describe(settings: Settings) -> str:
    """The schedule in words, for ``status`` and the logs."""
    sched = settings.model.schedule
    if sched.cron:
        return f"cron {sched.cron!r} ({settings.zone.key})"
    minutes = sched.interval_minutes or 60
    if minutes < 1:
        return f"every {minutes * 60:g} s"
    return f"every {minutes:g} min"


RETENTION_EVERY = dt.timedelta(days=1)
RETENTION_FIRST = dt.timedelta(minutes=10)  # after start: the first cycle goes first


def watchdog(settings: Settings, started: dt.datetime) -> bool:
    """Alert when no cycle has succeeded for twice the schedule interval; True if it did.

    The cycle alerts this itself when it fails; the watchdog covers the cycle that never
    ends (every call has a timeout, but a bug or a wedged disk can still stall one): it runs
    on its own thread, so a stuck cycle cannot silence it. Deduplicated like every alert.
    """
    from ar_sync import alerts
    from ar_sync.store import Store

    if not alerts.enabled(settings):
        return False
    store = Store.open(settings.state_path)
    try:
        stale = alerts.no_success(settings, store, "The daemon is running, but no cycle has "
                                  "finished well: see `ar-sync status` and the logs; a cycle "
                                  "that never ends needs the service restarted.", started)
        return bool(stale and alerts.send(settings, store, [stale]))
    finally:
        store.close()


def add_watchdog_job(scheduler: Any, settings: Settings) -> Any:
    """Run :func:`watchdog` every half schedule interval (between 1 and 30 minutes)."""
    from ar_sync.alerts import schedule_interval

    logger = log.get("ar_sync.daemon")
    started = dt.datetime.now(dt.UTC)
    every = min(max(schedule_interval(settings) / 2, dt.timedelta(minutes=1)),
                dt.timedelta(minutes=30))

    def job() -> None:
        try:
            if watchdog(settings, started):
                logger.error("no_successful_cycle", alerted=True)
        except Exception as exc:  # the watchdog must never take the daemon down
            logger.error("watchdog_failed", error=str(exc), error_class=type(exc).__name__)

    return scheduler.add_job(job, IntervalTrigger(seconds=every.total_seconds(),
                                                  timezone=settings.zone),
                             id="watchdog", max_instances=1, coalesce=True)


def add_retention_job(scheduler: Any, settings: Settings, stop: threading.Event) -> Any:
    """Prune payloads past ``[retention]`` once a day (ar_sync/retention.py).

    Off the cycle's critical path: a job of its own on the scheduler's thread pool, in
    batches of small transactions that interleave with the cycle's, stopping between batches
    on SIGTERM. A failure is logged and tried again the next day; it never stops the daemon.
    """
    logger = log.get("ar_sync.daemon")

    def retention() -> None:
        from ar_sync.retention import prune
        from ar_sync.store import SERVICE, Store

        try:
            store = Store.open(settings.state_path)
            try:
                summary = prune(settings, store, actor=SERVICE, stop=stop.is_set)
            finally:
                store.close()
        except Exception as exc:  # the daemon outlives a failed prune
            logger.error("retention_failed", error=str(exc), error_class=type(exc).__name__)
            return
        logger.info("retention_done", attempts=summary["attempts"],
                    evidence=summary["evidence"], transport=summary["transport"],
                    bytes=summary["bytes"], free_bytes=summary["store"]["free_bytes"])

    return scheduler.add_job(retention, IntervalTrigger(seconds=RETENTION_EVERY.total_seconds(),
                                                        timezone=settings.zone),
                             id="retention", max_instances=1, coalesce=True,
                             misfire_grace_time=3600,
                             next_run_time=dt.datetime.now(settings.zone) + RETENTION_FIRST)


def serve(settings: Settings, trigger: Any = None) -> None:
    """Run until a signal; raises LockHeldError if another process holds the state file.

    ``trigger`` replaces the configured schedule (tests run cycles faster than once a minute).
    """
    logger = log.get("ar_sync.daemon")
    stop = threading.Event()
    busy = threading.Lock()

    note = {"pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "schedule": describe(settings) if trigger is None else str(trigger)}

    def announce(scheduler: BlockingScheduler) -> None:
        """Tell ``status`` when the next cycle runs (it reads this file, not the daemon)."""
        job = scheduler.get_job("cycle")
        upcoming = getattr(job, "next_run_time", None)
        write_schedule(settings.state_path, note | {"next_run_at": upcoming.astimezone(
            dt.UTC).isoformat(timespec="seconds") if upcoming else None})

    def cycle() -> None:
        with busy:
            if stop.is_set():
                return
            try:
                run_cycle(settings, stop=stop, locked=True)
            except ArSyncError as exc:  # logged; the next scheduled cycle tries again
                logger.error("cycle_error", error=str(exc), error_class=type(exc).__name__)
            finally:
                if not stop.is_set():
                    announce(scheduler)

    with state_lock(settings.state_path):
        scheduler = BlockingScheduler(timezone=settings.zone)
        scheduler.add_job(cycle, trigger or trigger_for(settings), id="cycle", max_instances=1,
                          coalesce=True, misfire_grace_time=300,
                          next_run_time=dt.datetime.now(settings.zone))
        add_retention_job(scheduler, settings, stop)
        add_watchdog_job(scheduler, settings)
        announce(scheduler)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("daemon_stopping", signal=signal.Signals(signum).name)
            if not stop.is_set():  # a second signal must not break the wait for the cycle
                stop.set()
                scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        listen = settings.model.health.listen
        health_server = None
        if listen:
            from ar_sync.health import serve as serve_health

            health_server = serve_health(settings, listen)
            logger.info("health_listening", listen=listen)
        logger.info("daemon_started", state=str(settings.state_path))
        listeners = start_listeners(settings)  # cXML StatusUpdateRequest endpoints, if any
        try:
            scheduler.start()
            with busy:  # the cycle in hand finishes its current invoice, then returns
                pass
        finally:
            for listener in listeners:
                listener.stop()
            schedule_path(settings.state_path).unlink(missing_ok=True)
        if health_server is not None:
            health_server.shutdown()
        logger.info("daemon_stopped")
