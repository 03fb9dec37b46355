"""``ar-sync daemon``: cycles on a schedule, one daemon per state file, clean shutdown.

APScheduler 3.x ``BlockingScheduler`` runs the cycle with ``max_instances=1`` (a cycle
that overruns is never started twice; the skipped run is logged) and ``coalesce=True``
(missed runs collapse into one). The state lock is held for the daemon's whole life.
SIGTERM and SIGINT set a stop flag that the cycle checks between invoices: the invoice in
hand is finished and recorded, then the process exits 0.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from types import FrameType
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ar_sync import log
from ar_sync.config import Settings
from ar_sync.errors import ArSyncError
from ar_sync.runner import run_cycle, state_lock


def trigger_for(settings: Settings) -> Any:
    """The schedule from ``[schedule]``: a cron expression, else an interval (default 60 min)."""
    sched = settings.model.schedule
    if sched.cron:
        return CronTrigger.from_crontab(sched.cron, timezone=settings.zone)
    return IntervalTrigger(minutes=sched.interval_minutes or 60, timezone=settings.zone)


def serve(settings: Settings) -> None:
    """Run until a signal; raises LockHeldError if another process holds the state file."""
    logger = log.get("ar_sync.daemon")
    stop = threading.Event()
    busy = threading.Lock()

    def cycle() -> None:
        with busy:
            if stop.is_set():
                return
            try:
                run_cycle(settings, stop=stop, locked=True)
            except ArSyncError as exc:  # logged; the next scheduled cycle tries again
                logger.error("cycle_error", error=str(exc), error_class=type(exc).__name__)

    with state_lock(settings.state_path):
        scheduler = BlockingScheduler(timezone=settings.zone)
        scheduler.add_job(cycle, trigger_for(settings), id="cycle", max_instances=1,
                          coalesce=True, misfire_grace_time=300,
                          next_run_time=dt.datetime.now(settings.zone))

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("daemon_stopping", signal=signal.Signals(signum).name)
            stop.set()
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        logger.info("daemon_started", state=str(settings.state_path))
        scheduler.start()
        with busy:  # the cycle in hand finishes its current invoice, then returns
            pass
        logger.info("daemon_stopped")
