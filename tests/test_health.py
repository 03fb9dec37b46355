"""/healthz and Prometheus /metrics, read from the state store."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ar_sync.config import load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.health import serve
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle
from ar_sync.store import Store

AS_OF = dt.date(2026, 11, 30)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_and_metrics(tmp_path: Path) -> None:
    settings = load_settings(write_demo_dir(tmp_path / "demo", AS_OF))
    Store.open(settings.state_path).close()
    server = serve(settings, "127.0.0.1:0")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, body = get(f"{base}/healthz")
        assert code == 503 and "no cycle has succeeded yet" in body
        report = run_cycle(settings, as_of=AS_OF)
        code, body = get(f"{base}/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        code, metrics = get(f"{base}/metrics")
        assert code == 200
        assert f'arsync_units{{state="delivered"}} {float(report.delivered)}' in metrics
        assert f'arsync_units{{state="held"}} {float(len(PLANTED_PROBLEMS))}' in metrics
        assert 'arsync_cycles_total{outcome="ok"} 1.0' in metrics
        assert 'arsync_calls_total{operation="deliver",outcome="ok",target="channel:coupa"}' in (
            metrics)
        assert "arsync_last_success_timestamp_seconds" in metrics
        assert "arsync_oldest_held_age_seconds" in metrics
        store = Store.open(settings.state_path)  # three hours without a success: unhealthy
        store.conn.execute("UPDATE cycles SET finished_at = '2026-01-01T00:00:00+00:00'")
        store.close()
        code, body = get(f"{base}/healthz")
        assert code == 503 and "no successful cycle for over 2:00:00" in body
        assert get(f"{base}/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_netsuite_requests_by_kind_and_result(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The reads and refusals the store does not record: each REST request by kind and how
    NetSuite answered it, including a 503 that was retried and a 429."""
    from netsuite_rest_fake import FakeNetSuite, use_rest

    config = write_demo_dir(tmp_path / "demo", AS_OF)
    with FakeNetSuite(config.parent / "state" / "sandbox.db") as fake:
        for name, value in use_rest(config, fake).items():
            monkeypatch.setenv(name, value)
        with config.open("a", encoding="utf-8") as fh:
            fh.write("\n[retry]\nin_call_wait_seconds = 0.01\n")
        settings = load_settings(config)
        fake.inject("status", route="suiteql", status=503, times=1)
        fake.inject("status", route="transform", status=429, times=1, retry_after="0")
        before = _requests()
        run_cycle(settings, as_of=AS_OF)
    server = serve(settings, "127.0.0.1:0")
    try:
        metrics = get(f"http://127.0.0.1:{server.server_address[1]}/metrics")[1]
    finally:
        server.shutdown()
        server.server_close()
    after = _requests(metrics)
    grew = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert grew[("rest", "suiteql", "5xx")] == 1
    assert grew[("rest", "transform", "429")] == 1
    assert grew[("rest", "transform", "ok")] == 64
    assert grew[("rest", "suiteql", "ok")] >= 3 and grew[("rest", "token", "ok")] == 1


def _requests(text: str | None = None) -> dict[tuple[str, ...], float]:
    """arsync_netsuite_requests_total by (api, kind, result), from /metrics text or now."""
    if text is None:
        from prometheus_client import generate_latest

        from ar_sync.metrics import REGISTRY

        text = generate_latest(REGISTRY).decode()
    found = {}
    for m in re.finditer(r'arsync_netsuite_requests_total\{api="(\w+)",kind="(\w+)",'
                         r'result="(\w+)"\} ([\d.e+]+)', text):
        found[m.group(1, 2, 3)] = float(m[4])
    return found
