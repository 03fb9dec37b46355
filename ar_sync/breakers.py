"""Circuit breakers: stop calling NetSuite or a channel that keeps failing, then probe.

One breaker per NetSuite account (``netsuite``) and per channel (``channel:<name>``). After
``[retry] breaker_threshold`` consecutive transient failures the breaker opens: for
``breaker_cooldown_seconds`` nothing is sent there (units wait in ``retry``; nothing is lost
or sent twice), the opening is recorded with its reason as an event (which alerts once). When
the cool-down is over, one call goes through as a probe: success closes the breaker, failure
opens it again for another cool-down.

The state lives in the state store, so a restart neither forgets an open breaker nor hammers
a service that was failing a minute ago. Writes happen only when the state changes or a
failure is counted: a healthy service costs one dictionary lookup per call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ar_sync.store import Store, now

NETSUITE = "netsuite"


def channel(name: str) -> str:
    return f"channel:{name}"


@dataclass
class _State:
    failures: int = 0
    open_until: str | None = None  # ISO time; None while closed


class Breakers:
    """The breakers of one state store."""

    def __init__(self, store: Store, threshold: int, cooldown: dt.timedelta) -> None:
        self.store, self.threshold, self.cooldown = store, threshold, cooldown
        self.states: dict[str, _State] = {
            r["name"]: _State(r["failures"], r["open_until"])
            for r in store.rows("SELECT name, failures, open_until FROM breakers")}

    def allows(self, name: str) -> bool:
        """False while the breaker is open and cooling down; True otherwise (incl. a probe)."""
        state = self.states.get(name)
        return state is None or state.open_until is None or state.open_until <= now()

    def open_until(self, name: str) -> str | None:
        state = self.states.get(name)
        return state.open_until if state else None

    def succeeded(self, name: str) -> None:
        state = self.states.get(name)
        if state is None or (state.failures == 0 and state.open_until is None):
            return
        was_open = state.open_until is not None
        self._save(name, _State())
        if was_open:
            with self.store.transaction():
                self.store.event(None, "breaker_closed", breaker=name)

    def failed(self, name: str, reason: str) -> bool:
        """Count a transient failure; True if the breaker (re)opened now."""
        state = self.states.get(name) or _State()
        failures = state.failures + 1
        probe_failed = state.open_until is not None  # we were probing after a cool-down
        if failures < self.threshold and not probe_failed:
            self._save(name, _State(failures, None))
            return False
        until = (dt.datetime.now(dt.UTC) + self.cooldown).isoformat(timespec="milliseconds")
        self._save(name, _State(failures, until))
        with self.store.transaction():
            self.store.event(None, "breaker_opened", breaker=name, failures=failures,
                             until=until, reason=reason)
        return True

    def _save(self, name: str, state: _State) -> None:
        self.states[name] = state
        with self.store.transaction():
            self.store.conn.execute(
                "INSERT INTO breakers (name, failures, open_until, updated_at) VALUES "
                "(?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET failures = excluded.failures, "
                "open_until = excluded.open_until, updated_at = excluded.updated_at",
                (name, state.failures, state.open_until, now()))
