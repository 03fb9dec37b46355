"""Wiring: open the store, the gateway and the lock, and run a cycle.

Only one process may work a state file at a time (a daemon, ``run --once`` or ``rerun``);
the lock file beside the state file names the holder so a second one can say who it is.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ar_sync import alerts, log
from ar_sync.config import Settings
from ar_sync.errors import ArSyncError, FatalError
from ar_sync.netsuite import open_gateway
from ar_sync.pipeline import Cycle, CycleReport
from ar_sync.store import Store


class LockHeldError(FatalError):
    """Raised when another ar-sync process already works this state file."""


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def schedule_path(state_path: Path) -> Path:
    """Where the running daemon says when it runs next (read by ``status``)."""
    return state_path.with_name(state_path.name + ".daemon.json")


def write_schedule(state_path: Path, info: dict[str, Any]) -> None:
    """Replace the daemon's schedule note atomically (0600, like the state file)."""
    path = schedule_path(state_path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)


def read_schedule(state_path: Path) -> dict[str, Any] | None:
    """The running daemon's note: pid, host, since, schedule, next run; None if no daemon.

    A note left by a daemon that died (its pid is gone, or another process holds the lock)
    counts as no daemon.
    """
    try:
        info: dict[str, Any] = json.loads(schedule_path(state_path).read_text(encoding="utf-8"))
        holder = lock_path(state_path).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if info.get("host") != socket.gethostname():
        return info | {"alive": None}  # another machine: cannot tell from here
    pid = int(info.get("pid", 0))
    alive = pid > 0 and holder.startswith(f"pid {pid} ") and _pid_alive(pid)
    return info | {"alive": alive}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def state_lock(state_path: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``state_path`` for the duration of the block."""
    path = lock_path(state_path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fh: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held across the yield
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            raise LockHeldError(f"{state_path} is in use by {holder}; "
                                "only one ar-sync may work a state file at a time") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
        fh.flush()
        yield
    finally:
        fh.close()


def run_cycle(settings: Settings, *, as_of: dt.date | None = None,
              only_keys: Sequence[str] | None = None, stop: threading.Event | None = None,
              progress: Callable[[str, int], None] | None = None,
              locked: bool = False) -> CycleReport:
    """Run one cycle on the configured account (taking the state lock unless ``locked``)."""
    if not locked:
        with state_lock(settings.state_path):
            return run_cycle(settings, as_of=as_of, only_keys=only_keys, stop=stop,
                             progress=progress, locked=True)
    store = Store.open(settings.state_path)
    mark = alerts.watermark(store)
    try:
        gateway = open_gateway(settings)
    except ArSyncError as exc:
        _alert_failure(settings, store, exc)
        store.close()
        raise
    try:
        cycle = Cycle(settings, store, gateway, as_of=as_of, stop=stop, progress=progress)
        report = cycle.run(only_keys)
        if alerts.enabled(settings):
            alerts.send(settings, store, [*alerts.collect(store, mark),  # and what waited
                                          *alerts.still_waiting(settings, store)])
        return report
    except ArSyncError as exc:
        _alert_failure(settings, store, exc, mark)
        raise
    finally:
        gateway.close()
        store.close()
        log.get().debug("cycle_closed")


def _alert_failure(settings: Settings, store: Store, exc: ArSyncError, mark: int = 0) -> None:
    """A failed cycle alerts (with what it held before failing), never hiding the error."""
    if not alerts.enabled(settings):
        return
    try:
        found = alerts.collect(store, mark) if mark else []
        alerts.send(settings, store, [*found, alerts.cycle_failed(
            settings, store, f"{type(exc).__name__}: {exc}")])
    except Exception as alert_exc:  # alerting must not mask the cycle's own error
        log.get("ar_sync.alerts").error("alerting_failed", error=str(alert_exc))
