"""Health and metrics over HTTP: ``/healthz`` and Prometheus ``/metrics``.

Figures are read from the state store at each scrape (a custom collector), so they are right
whatever process wrote them — the daemon, a ``run --once``, an operator's ``rerun`` — and a
restart loses nothing. The NetSuite requests the store does not record (reads, and how each
HTTP request was answered) are the daemon's own counters (:mod:`ar_sync.metrics`). Bound to
127.0.0.1 unless ``[health] listen`` says otherwise.

``/healthz`` answers 200 while the last successful cycle is younger than twice the schedule
interval, else 503 with the reason, so a plain HTTP probe notices a stuck or failing daemon.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ar_sync import metrics
from ar_sync.config import Settings
from ar_sync.store import State, Store


def _age(stamp: str | None, now: dt.datetime) -> float | None:
    return (now - dt.datetime.fromisoformat(stamp)).total_seconds() if stamp else None


class StoreCollector(Collector):
    """Prometheus figures from the state store, computed at scrape time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Any]:
        store = Store.open(self.path)
        try:
            yield from self._figures(store)
        finally:
            store.close()

    def _figures(self, store: Store) -> Iterator[Any]:
        now = dt.datetime.now(dt.UTC)
        units = GaugeMetricFamily("arsync_units", "Units by state", labels=["state"])
        for r in store.rows("SELECT state, COUNT(*) AS n FROM units GROUP BY state"):
            units.add_metric([r["state"]], r["n"])
        yield units
        cycles = CounterMetricFamily("arsync_cycles", "Cycles run, by outcome",
                                     labels=["outcome"])
        seconds = GaugeMetricFamily("arsync_last_cycle_duration_seconds",
                                    "How long the last finished cycle took")
        for r in store.rows("SELECT outcome, COUNT(*) AS n FROM cycles GROUP BY outcome"):
            cycles.add_metric([r["outcome"]], r["n"])
        yield cycles
        last = store.rows("SELECT started_at, finished_at FROM cycles WHERE finished_at IS "
                          "NOT NULL ORDER BY id DESC LIMIT 1")
        if last:
            seconds.add_metric([], (dt.datetime.fromisoformat(last[0]["finished_at"]) -
                                    dt.datetime.fromisoformat(last[0]["started_at"])
                                    ).total_seconds())
        yield seconds
        ok = store.rows("SELECT MAX(finished_at) AS at FROM cycles WHERE outcome = 'ok'")[0]["at"]
        success = GaugeMetricFamily("arsync_last_success_timestamp_seconds",
                                    "When the last cycle succeeded (Unix time)")
        if ok:
            success.add_metric([], dt.datetime.fromisoformat(ok).timestamp())
        yield success
        calls = CounterMetricFamily("arsync_calls", "Calls to NetSuite and deliveries, by "
                                    "target, operation and outcome",
                                    labels=["target", "operation", "outcome"])
        for r in store.rows("SELECT target, operation, outcome, COUNT(*) AS n FROM attempts "
                            "GROUP BY target, operation, outcome"):
            calls.add_metric([r["target"], r["operation"], r["outcome"]], r["n"])
        yield calls
        queue = GaugeMetricFamily("arsync_retry_queue", "Units waiting for a retry")
        queue.add_metric([], store.rows("SELECT COUNT(*) AS n FROM units WHERE state = ?",
                                        (State.RETRY,))[0]["n"])
        yield queue
        oldest = GaugeMetricFamily("arsync_oldest_held_age_seconds",
                                   "Age of the oldest unit waiting for a person")
        held = store.rows("SELECT MIN(updated_at) AS at FROM units WHERE state = ?",
                          (State.HELD,))[0]["at"]
        oldest.add_metric([], _age(held, now) or 0.0)
        yield oldest


class ProcessCollector(Collector):
    """This process's own counters (:mod:`ar_sync.metrics`): NetSuite requests by result."""

    def collect(self) -> Iterator[Any]:
        yield from metrics.REGISTRY.collect()


def health(settings: Settings) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for ``/healthz``."""
    from ar_sync.alerts import schedule_interval

    store = Store.open(settings.state_path)
    try:
        ok = store.rows("SELECT MAX(finished_at) AS at FROM cycles WHERE outcome = 'ok'")[0]["at"]
    finally:
        store.close()
    limit = 2 * schedule_interval(settings)
    age = _age(ok, dt.datetime.now(dt.UTC))
    if age is None:
        return 503, {"status": "unhealthy", "reason": "no cycle has succeeded yet"}
    if age > limit.total_seconds():
        return 503, {"status": "unhealthy", "last_success": ok,
                     "reason": f"no successful cycle for over {limit}"}
    return 200, {"status": "ok", "last_success": ok}


def serve(settings: Settings, listen: str) -> ThreadingHTTPServer:
    """Start the health server in a daemon thread; return it (``shutdown()`` to stop)."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(settings.state_path))
    registry.register(ProcessCollector())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                code, body = health(settings)
                self._send(code, "application/json", json.dumps(body).encode())
            elif self.path == "/metrics":
                self._send(200, "text/plain; version=0.0.4", generate_latest(registry))
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
