"""``ar-sync status``: the daemon and its next run, and NetSuite's and each channel's health.

(A running daemon's next run and an open circuit are shown in tests/test_walkthrough.py, on
a real daemon.)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ar_sync.cli import cli
from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.runner import lock_path, run_cycle, write_schedule
from ar_sync.store import Store

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = write_demo_dir(tmp_path / "demo", AS_OF)
    settings = load_settings(config)
    run_cycle(settings, as_of=AS_OF)
    return settings


def status(settings: Settings) -> tuple[dict[str, Any], str]:
    runner = CliRunner()
    data = json.loads(runner.invoke(cli, ["--config", str(settings.path), "status", "--json"]
                                    ).output)
    text = runner.invoke(cli, ["--config", str(settings.path), "status"]).output
    return data, text


def daemon_note(settings: Settings, pid: int, schedule: str, next_run: str) -> None:
    """What a daemon with ``pid`` leaves beside the state file: the lock and its note."""
    lock_path(settings.state_path).write_text(f"pid {pid} on {socket.gethostname()} since x")
    write_schedule(settings.state_path, {"pid": pid, "host": socket.gethostname(),
                                         "since": "2026-11-30T07:00:00+00:00",
                                         "schedule": schedule, "next_run_at": next_run})


def test_no_daemon_is_said_plainly(settings: Settings) -> None:
    data, text = status(settings)
    assert data["daemon"] == {"running": False, "schedule": "every 60 min",
                              "next_run_at": None}
    assert "NOT RUNNING" in text and "every 60 min once it runs" in text


def test_a_dead_daemons_note_does_not_pass_for_a_running_one(settings: Settings) -> None:
    """A daemon killed with -9 leaves its note behind; its pid is gone, so it is not running."""
    gone = 2 ** 22 + 12345  # above the default pid_max: no such process
    daemon_note(settings, gone, "every 60 min", "2026-11-30T08:00:00+00:00")
    data, text = status(settings)
    assert data["daemon"]["running"] is False and "NOT RUNNING" in text


def test_a_live_daemons_next_run_is_shown(settings: Settings) -> None:
    """What the daemon writes (pid, schedule, next run) is what status shows while it lives."""
    daemon_note(settings, os.getpid(), "every 15 min", "2026-11-30T07:15:00+00:00")
    data, text = status(settings)
    assert data["daemon"]["running"] is True
    assert "Next run:      2026-11-30 07:15:00 UTC" in text and "every 15 min" in text


def test_health_of_netsuite_and_each_channel(settings: Settings) -> None:
    data, text = status(settings)
    health = data["health"]
    assert set(health) == {"netsuite", "channel:coupa", "channel:ariba", "channel:peppol",
                           "channel:email"}
    assert all(h["verdict"] == "ok" for h in health.values()), health
    assert health["netsuite"]["calls_24h"] == {"ok": 64}
    assert sum(h["calls_24h"].get("ok", 0) for n, h in health.items() if n != "netsuite") == 64

    store = Store.open(settings.state_path)  # the latest call to peppol failed
    with store.transaction():
        key = store.rows("SELECT key FROM units WHERE channel = 'peppol' LIMIT 1")[0]["key"]
        attempt = store.begin_attempt(key, "channel:peppol", "deliver")
        store.finish_attempt(attempt, "transient", message="access point HTTP 503")
    store.close()
    data, text = status(settings)
    assert data["health"]["channel:peppol"]["verdict"] == "failing"
    assert data["health"]["channel:peppol"]["last_failure"]["message"] == \
        "access point HTTP 503"
    line = next(li for li in text.splitlines() if li.startswith("channel:peppol"))
    assert "FAILING" in line
    assert "access point HTTP 503" in text
