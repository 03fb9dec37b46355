"""The whole cycle with ``api = "rest"`` against the fake: every due unit billed exactly once,
the planted problems held, NetSuite's own message on a refusal, and a real ``ar-sync run
--once`` that survives 429s, 5xx and dropped connections."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from netsuite_rest_fake import CLIENT_ID, FakeNetSuite, key_pair, rest_gateway, use_rest
from test_gateway_contract import all_units

from ar_sync.config import load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.errors import ConfigError
from ar_sync.models import UnitKind
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle

AS_OF = dt.date(2026, 11, 30)


def units(config: Path) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(config.parent / "state" / "ar-sync.db")
    db.row_factory = sqlite3.Row
    try:
        return {r["key"]: dict(r) for r in db.execute("SELECT * FROM units")}
    finally:
        db.close()


def outbox(config: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["key"]
                  for p in (config.parent / "outbox").glob("*/*.json"))


def delivered(config: Path) -> list[str]:
    return sorted(k for k, u in units(config).items() if u["state"] == "delivered")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return write_demo_dir(tmp_path / "demo", AS_OF)


@pytest.fixture
def fake(demo: Path) -> Iterator[FakeNetSuite]:
    with FakeNetSuite(demo.parent / "state" / "sandbox.db") as server:
        yield server


@pytest.mark.parametrize("auth", ["oauth2", "tba"])
def test_a_cycle_over_rest_ends_where_the_sandbox_ends(
        tmp_path: Path, demo: Path, fake: FakeNetSuite, monkeypatch: pytest.MonkeyPatch,
        auth: str) -> None:
    twin = write_demo_dir(tmp_path / "twin", AS_OF)
    run_cycle(load_settings(twin), as_of=AS_OF)
    for name, value in use_rest(demo, fake, auth=auth).items():
        monkeypatch.setenv(name, value)
    report = run_cycle(load_settings(demo), as_of=AS_OF)
    got = {k: (u["state"], u["hold_reason"]) for k, u in units(demo).items()}
    assert got == {k: (u["state"], u["hold_reason"]) for k, u in units(twin).items()}
    held = {u["order_number"]: u["hold_reason"] for u in units(demo).values()
            if u["state"] == "held"}
    assert held == PLANTED_PROBLEMS
    assert sorted(fake.invoice_keys()) == delivered(demo) == outbox(demo)
    assert report.delivered == len(delivered(demo))
    again = run_cycle(load_settings(demo), as_of=AS_OF)
    assert (again.created, again.adopted, again.delivered) == (0, 0, 0)
    assert sorted(fake.invoice_keys()) == delivered(demo)


def _clean_orders(fake: FakeNetSuite, n: int) -> list[str]:
    """Keys of ``n`` due one-off units on orders without a planted problem."""
    with rest_gateway(fake) as gw:
        due = [u for u in all_units(gw, AS_OF) if u.kind is UnitKind.ORDER
               and u.order_number not in PLANTED_PROBLEMS]
    return [u.key for u in due[:n]]


def ar_sync(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("AR_SYNC_CONFIG",
                                                               "AR_SYNC_FAILPOINT")}
    when = ["--as-of", AS_OF.isoformat()] if args[0] == "run" else []
    return subprocess.run([sys.executable, "-m", "ar_sync", "--config", str(config), *args,
                           *when], env=base | env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.slow
def test_run_once_over_rest_survives_429s_5xx_and_resets(demo: Path,
                                                         fake: FakeNetSuite) -> None:
    env = use_rest(demo, fake, kind="ec", extra="max_attempts = 5\n")
    dropped_after, dropped_before, failed, refused = _clean_orders(fake, 4)
    fake.inject("status", route="token", status=503)
    fake.inject("status", route="suiteql", status=429, retry_after="1")
    fake.inject("drop_after", route="suiteql")
    fake.inject("status", route="transform", status=429, retry_after="1", times=2)
    fake.inject("drop_after", route="transform", match=dropped_after)
    fake.inject("drop_before", route="transform", match=dropped_before)
    fake.inject("status", route="transform", status=500, match=failed,
                detail="An unexpected error has occurred. Error ID: lw3k2m1x")
    fake.inject("status", route="transform", status=400, code="USER_ERROR", path="terms",
                detail="Please enter value(s) for: Terms", match=refused, times=10)

    first = ar_sync(demo, env, "run", "--once")
    assert first.returncode == 0, first.stderr[-3000:]
    events = [json.loads(line)["event"] for line in first.stderr.splitlines()]
    assert events.count("netsuite_request_retry") >= 5  # token 503, 429s, a reset query
    state = units(demo)
    assert state[dropped_after]["state"] == state[failed]["state"] == "delivered"
    assert state[dropped_before]["state"] == "retry"  # may have landed: looked up next cycle
    assert (state[refused]["state"], state[refused]["hold_reason"]) == ("held",
                                                                        "netsuite.refused")
    shown = ar_sync(demo, env, "show", refused, "--json")
    story = json.loads(shown.stdout)
    create = [a for a in story["attempts"] if a["operation"] == "create"][-1]
    assert create["outcome"] == "rejected"
    assert create["message"] == "Please enter value(s) for: Terms"

    db = sqlite3.connect(demo.parent / "state" / "ar-sync.db")
    db.execute("UPDATE units SET next_attempt_at = '2000-01-01' WHERE state = 'retry'")
    db.commit()
    db.close()
    second = ar_sync(demo, env, "run", "--once")
    assert second.returncode == 0, second.stderr[-3000:]
    keys = fake.invoice_keys()
    assert len(keys) == len(set(keys)), "no invoice twice"
    assert sorted(keys) == delivered(demo) == outbox(demo)
    assert dropped_before in keys and refused not in keys
    held = {u["order_number"] for u in units(demo).values() if u["state"] == "held"}
    assert held == set(PLANTED_PROBLEMS) | {units(demo)[refused]["order_number"]}
    assert_no_secret_anywhere(demo, fake, [first, second, shown])


def assert_no_secret_anywhere(demo: Path, fake: FakeNetSuite,
                              runs: list[subprocess.CompletedProcess[str]]) -> None:
    """No access token, client id or line of the private key in any output or written file."""
    key_lines = [line for line in key_pair("ec").private_pem.decode().splitlines()
                 if "PRIVATE KEY" not in line]
    secrets = [*fake.tokens, CLIENT_ID, *key_lines]
    assert len(fake.tokens) >= 1
    files = [p for p in demo.parent.rglob("*") if p.is_file() and p.parent.name != "keys"]
    blobs = [r.stdout + r.stderr for r in runs] + [p.read_bytes().decode("latin-1")
                                                   for p in files]
    leaks = [s for s in secrets for blob in blobs if s in blob]
    assert not leaks, f"secrets found: {leaks[:3]}"


def test_the_rest_section_is_validated_only_when_selected(demo: Path) -> None:
    text = demo.read_text()
    assert load_settings(demo).netsuite.api == "sandbox"  # nothing of REST is required
    demo.write_text(text.replace('api = "sandbox"', 'api = "rest"'))
    with pytest.raises(ConfigError) as info:
        load_settings(demo)
    keys = {key for _, key, _ in info.value.problems}
    assert {"netsuite.rest.base_url", "netsuite.rest.token_url", "netsuite.rest.client_id_env",
            "netsuite.rest.certificate_id", "netsuite.rest.private_key_file"} <= keys
