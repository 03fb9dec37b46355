"""kill -9 at any moment, then a normal run: no duplicate and no missing invoice or delivery.

Real ``ar-sync run --once`` processes are killed with SIGKILL at many different points:
after every kind of state commit, just before and just after the call that creates
invoices in NetSuite, in the middle of NetSuite's batch (some invoices of the batch
created, the rest not), between writing a delivery and publishing it, just before and just
after a submission, and at random moments by a timer. The account and the deliveries are
then compared with an uninterrupted run of the same account.

Each test runs against the sandbox gateway and against the REST gateway: then the processes
talk HTTP to the fake NetSuite (``tests/netsuite_rest_fake.py``) running in this test
process over the same account file, and a kill mid-batch leaves transforms in flight that
NetSuite completes after the client died. The reference is the sandbox's uninterrupted run:
both gateways must end exactly there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netsuite_rest_fake import FakeNetSuite, use_rest

from ar_sync.demo import write_demo_dir

AS_OF = dt.date(2026, 11, 30)
pytestmark = pytest.mark.slow


def ar_sync(config: Path, *args: str, failpoint: str = "",
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AR_SYNC_FAILPOINT"}
    if failpoint:
        env["AR_SYNC_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "ar_sync", "--config", str(config), *args,
                           "--as-of", AS_OF.isoformat()], env=env, capture_output=True,
                          text=True, timeout=timeout)


def outcome(config: Path) -> dict[str, Any]:
    """Everything the test compares: the state store, NetSuite, the outboxes."""
    base = config.parent
    state = sqlite3.connect(base / "state" / "ar-sync.db")
    units = dict(state.execute("SELECT key, state FROM units"))
    ok_deliveries = [k for (k,) in state.execute(
        "SELECT key FROM attempts WHERE operation = 'deliver' AND outcome = 'ok'")]
    pending = state.execute("SELECT COUNT(*) FROM attempts WHERE outcome = 'pending'").fetchone()
    integrity = state.execute("PRAGMA integrity_check").fetchone()[0]
    state.close()
    netsuite = sqlite3.connect(base / "state" / "sandbox.db")
    invoices = [k for (k,) in netsuite.execute(
        "SELECT external_id FROM invoices WHERE external_id LIKE 'so:%'")]
    netsuite.close()
    files = [json.loads(p.read_text())["key"] for p in sorted(base.glob("outbox/*/*.json"))]
    return {"units": units, "invoices": invoices, "files": files, "pending": pending[0],
            "ok_deliveries": ok_deliveries, "integrity": integrity}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = write_demo_dir(tmp_path_factory.mktemp("reference") / "demo", AS_OF)
    assert ar_sync(config, "run", "--once").returncode == 0
    return outcome(config)


GATEWAYS = ["sandbox", "rest", "soap"]


@pytest.fixture
def demo(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh demo directory on the sandbox gateway, or on REST or SOAP against a fake
    NetSuite."""
    config = write_demo_dir(tmp_path / "demo", AS_OF)
    if request.param == "sandbox":
        yield config
        return
    if request.param == "soap":
        from netsuite_soap_fake import FakeSoap, use_soap

        with FakeSoap(config.parent / "state" / "sandbox.db") as soap:
            for name, value in use_soap(config, soap).items():
                monkeypatch.setenv(name, value)  # inherited by the ar-sync processes
            yield config
            assert soap.invalid == [] and soap.invalid_responses == []
        return
    with FakeNetSuite(config.parent / "state" / "sandbox.db") as fake:
        for name, value in use_rest(config, fake, kind="ec").items():
            monkeypatch.setenv(name, value)  # inherited by the ar-sync processes
        yield config


def kill_until_done(config: Path, failpoint: str, counts: list[int]) -> int:
    """Run with each failpoint count in turn; return how many runs were killed."""
    killed = 0
    for n in counts:
        result = ar_sync(config, "run", "--once", failpoint=f"{failpoint}:{n}")
        assert result.returncode in (0, -signal.SIGKILL), result.stderr[-2000:]
        killed += result.returncode == -signal.SIGKILL
    return killed


def assert_same_as_reference(config: Path, reference: dict[str, Any]) -> None:
    final = ar_sync(config, "run", "--once")
    assert final.returncode == 0, final.stderr[-2000:]
    again = ar_sync(config, "run", "--once")
    assert "created 0, adopted 0, delivered 0" in again.stdout
    got = outcome(config)
    delivered = sorted(k for k, s in reference["units"].items() if s == "delivered")
    assert got["units"] == reference["units"], "every unit ends where an uninterrupted run ends"
    assert sorted(got["invoices"]) == delivered, "each invoice exactly once in NetSuite"
    assert sorted(got["files"]) == delivered, "each delivery exactly once"
    assert sorted(got["ok_deliveries"]) == delivered, "one successful delivery attempt each"
    assert got["pending"] == 0 and got["integrity"] == "ok"
    from ar_sync.audit import verify
    from ar_sync.store import Store

    store = Store.open(config.parent / "state" / "ar-sync.db")
    try:
        assert verify(store)[1] is None, "the audit chain survives every kill"
    finally:
        store.close()


# Where to stop, and at which passes of that point: spread over the whole run.
POINTS = {
    "commit": [2, 3, 5, 9, 17, 40, 90, 150, 230, 310, 400],
    "before_create": [1, 1],
    "after_create": [1, 1],
    "netsuite_commit": [1, 7, 30, 55],
    "before_submit": [1, 13, 40],
    "outbox_write": [1, 21, 50],
    "after_submit": [1, 9, 33, 60],
}


# Over REST, the points around NetSuite (what follows creation does not depend on it).
REST_POINTS = ("before_create", "after_create", "commit", "netsuite_commit")
CASES = [(gateway, point) for gateway in GATEWAYS for point in sorted(POINTS)
         if gateway != "rest" or point in REST_POINTS]


@pytest.mark.parametrize("demo,failpoint", CASES, indirect=["demo"])
def test_kill_9_at_a_failpoint_then_run_again(demo: Path, reference: dict[str, Any],
                                              failpoint: str) -> None:
    config = demo
    killed = kill_until_done(config, failpoint, POINTS[failpoint])
    assert killed >= 1, "the failpoint was reached and the process killed"
    assert_same_as_reference(config, reference)


@pytest.mark.parametrize("demo", GATEWAYS, indirect=True)
def test_kill_9_at_random_moments(demo: Path, reference: dict[str, Any]) -> None:
    config = demo
    rng = random.Random(9)
    killed = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "ar_sync", "--config", str(config),
                                 "run", "--once", "--as-of", AS_OF.isoformat()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    assert_same_as_reference(config, reference)
