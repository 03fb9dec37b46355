"""Logs are JSON lines on stderr with the invoice key; secrets never appear anywhere.

The secrets tests set token values in the environment, reference them from the config
with ``*_env`` keys, and serve two channels with a careless test connector
(tests/fixtures/leaky_connector) that puts its token into its log lines, errors and
rejection texts. It is registered for the ``ar-sync`` subprocesses through a
``.dist-info`` directory on their PYTHONPATH, as an installed plugin would be. Then every
output of every command, and every byte written under the working directory (state file,
its WAL, outboxes), is searched for the token values.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import free_port, serve_http

from ar_sync import log
from ar_sync.demo import write_demo_dir

_SCRIPT = Path(sys.executable).with_name("ar-sync")
AR_SYNC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ar_sync"]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

EMAIL_TOKEN = f"tok-email-{secrets.token_hex(10)}"
COUPA_TOKEN = f"tok-coupa-{secrets.token_hex(10)}"
SHORT_TOKEN = f"k{secrets.token_hex(3)}"  # registered (>= 4 chars) but too short for the portal
HOOK_TOKEN = f"hook-{secrets.token_hex(10)}"  # the secret path of a Slack-style webhook URL
SECRETS = {"AR_SYNC_TEST_EMAIL_TOKEN": EMAIL_TOKEN, "AR_SYNC_TEST_COUPA_TOKEN": COUPA_TOKEN,
           "AR_SYNC_TEST_SHORT_TOKEN": SHORT_TOKEN}
INVOICE_EVENT = re.compile(r"^(invoice_|create_|delivery_|retry_)")


# -- helpers -------------------------------------------------------------------------------

def set_section(config: Path, section: str, body: str) -> None:
    """Replace the body of ``[section]`` in a config file (appending the table if absent)."""
    text = config.read_text(encoding="utf-8")
    pattern = re.compile(rf"^\[{re.escape(section)}\]\n.*?(?=^\[|\Z)", re.M | re.S)
    table = f"[{section}]\n{body.strip()}\n\n"
    text, n = pattern.subn(lambda _: table, text, count=1)
    config.write_text(text if n else text + "\n" + table, encoding="utf-8")


def plugin_path(root: Path) -> str:
    """A PYTHONPATH on which the leaky connector is an installed ``ar_sync.connectors`` plugin."""
    info = root / "ar_sync_leaky_test-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ar-sync-leaky-test\n"
                                   "Version: 0.0\n")
    (info / "entry_points.txt").write_text("[ar_sync.connectors]\n"
                                           "leaky = ar_sync_leaky:LeakyConnector\n")
    return os.pathsep.join([str(root), str(FIXTURES / "leaky_connector"),
                            *filter(None, [os.environ.get("PYTHONPATH")])])


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("AR_SYNC_CONFIG", "AR_SYNC_FAILPOINT")}
    return subprocess.run([*AR_SYNC, "--config", str(config), *args], capture_output=True,
                          text=True, env=base | (env or {}), timeout=60, check=False)


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as a JSON object (fails on a line that is not one)."""
    events = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"log line is not JSON: {line!r}")
        assert isinstance(event, dict) and "event" in event and "level" in event, line
        events.append(event)
    return events


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def leaks(text: str | bytes) -> list[str]:
    """The secret values found in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    return [v for v in [*SECRETS.values(), HOOK_TOKEN] if v.encode() in data]


def leaky_config(directory: Path, email_mode: str = "reject") -> Path:
    """A demo directory whose email and coupa channels are served by the leaky connector."""
    config = write_demo_dir(directory)
    set_section(config, "logging", 'level = "info"')
    set_section(config, "channels.email", f'connector = "leaky"\n'
                f'token_env = "AR_SYNC_TEST_EMAIL_TOKEN"\nmode = "{email_mode}"')
    set_section(config, "channels.coupa", 'connector = "leaky"\n'
                'token_env = "AR_SYNC_TEST_COUPA_TOKEN"\nmode = "transient"')
    return config


@pytest.fixture
def process_state() -> Iterator[None]:
    """Restore what log.configure() changes process-wide."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook = hook
    structlog.reset_defaults()


# -- logs: JSON lines on stderr, each invoice line with its key -------------------------

@pytest.mark.slow
def test_logs_are_json_lines_on_stderr_with_the_invoice_key_and_stdout_is_for_people(
        tmp_path: Path) -> None:
    config = write_demo_dir(tmp_path / "demo")
    set_section(config, "logging", 'level = "info"')
    result = run_cli(config, "run", "--once")
    assert result.returncode == 0, result.stderr

    assert [line for line in result.stdout.splitlines() if line.strip()] == [
        result.stdout.strip()], "one summary line for people"
    assert result.stdout.startswith("found ") and "{" not in result.stdout
    events = json_lines(result.stderr)
    about_invoices = [e for e in events if INVOICE_EVENT.match(e["event"])]
    assert about_invoices and all(e.get("key") for e in about_invoices)

    db = config.parent / "state" / "ar-sync.db"

    def logged(event: str) -> set[str]:
        return {e["key"] for e in events if e["event"] == event}

    def stored(where: str) -> set[str]:
        return {k for (k,) in query(db, f"SELECT key FROM units WHERE {where}")}

    assert logged("invoice_delivered") == stored("state = 'delivered'") != set()
    assert logged("invoice_held") == stored("state = 'held'") != set()
    assert logged("invoice_created") == stored("netsuite_id IS NOT NULL")
    assert {"cycle_started", "cycle_finished"} <= {e["event"] for e in events}


def test_other_libraries_log_lines_are_json_and_masked_too(
        capsys: pytest.CaptureFixture[str], process_state: None) -> None:
    """APScheduler's skipped runs and job errors, an HTTP library's request log: same road."""
    secret = f"tok-inproc-{secrets.token_hex(8)}"
    log.register_secrets([secret])
    log.configure("info", "json")
    logging.getLogger("urllib3.connectionpool").warning("GET %s", f"/x?access_token={secret}")
    try:
        raise ValueError(f"bad reply for token {secret}")
    except ValueError:
        logging.getLogger("apscheduler.executors.default").exception('Job "cycle" raised')
    logging.getLogger("apscheduler.scheduler").info("Running job")  # chatter below warning
    log.get("ar_sync.cycle").info("invoice_held", key="so:1:2026-11-01", why=secret)
    err = capsys.readouterr().err
    assert secret not in err
    events = json_lines(err)
    assert [(e["event"], e["level"]) for e in events] == [
        ("GET /x?access_token=***", "warning"), ('Job "cycle" raised', "error"),
        ("invoice_held", "info")]
    assert "ValueError: bad reply for token ***" in events[1]["exception"]
    assert events[0]["logger"] == "urllib3.connectionpool"
    assert events[2]["why"] == "***"


# -- secrets: nowhere in output, logs, the state file or the outboxes ---------------------

class Hook(BaseHTTPRequestHandler):
    """A webhook receiver (Slack-style: the secret is in the URL's path)."""

    received: list[bytes] = []

    def do_POST(self) -> None:
        Hook.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200 if HOOK_TOKEN in self.path else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def webhook() -> Iterator[str]:
    Hook.received = []
    with serve_http(Hook) as base:
        yield f"{base}/services/{HOOK_TOKEN}"


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One cycle with the leaky channels and alerts to a webhook whose URL is a secret, then
    every read command, an audit export and a backup; their outputs and the alerts."""
    root = tmp_path_factory.mktemp("secrets")
    config = leaky_config(root / "demo")
    set_section(config, "alerts", 'webhook_url_env = "AR_SYNC_TEST_HOOK_URL"')
    with webhook() as url:
        env = SECRETS | {"PYTHONPATH": plugin_path(root / "site"), "AR_SYNC_TEST_HOOK_URL": url}
        outputs = {"run": run_cli(config, "run", "--once", env=env)}
    assert outputs["run"].returncode == 0, outputs["run"].stderr
    alerts = list(Hook.received)
    assert alerts, "the held invoices were alerted"
    db = config.parent / "state" / "ar-sync.db"
    rejected = query(db, "SELECT key FROM units WHERE channel = 'email' AND state = 'held' "
                         "AND hold_stage = 'delivery'")
    retrying = query(db, "SELECT key FROM units WHERE channel = 'coupa' AND state = 'retry'")
    assert rejected and retrying, "both careless channels were used"
    email_key, coupa_key = rejected[0][0], retrying[0][0]
    for name, args in {"status": ["status"], "status --json": ["status", "--json"],
                       "failures": ["failures"], "failures --json": ["failures", "--json"],
                       "show email": ["show", email_key], "show email --json":
                       ["show", email_key, "--json"], "show coupa --json":
                       ["show", coupa_key, "--json"], "audit export": [
                           "audit", "export", "--from", "2000-01-01", "--to", "2100-01-01",
                           str(config.parent / "evidence")],
                       "state backup": ["state", "backup", str(config.parent / "backup.db")],
                       "config check": ["config", "check"]}.items():
        outputs[name] = run_cli(config, *args, env=env)
        assert outputs[name].returncode == 0, (name, outputs[name].stderr)
    return {"config": config, "outputs": outputs, "email_key": email_key,
            "coupa_key": coupa_key, "alerts": alerts}


@pytest.mark.slow
def test_no_command_prints_a_secret_and_masks_show_where_it_was(
        leaky_run: dict[str, Any]) -> None:
    outputs: dict[str, subprocess.CompletedProcess[str]] = leaky_run["outputs"]
    for name, result in outputs.items():
        assert leaks(result.stdout) == [], f"`{name}` prints a secret"
        assert leaks(result.stderr) == [], f"`{name}` logs a secret"

    failures = {f["key"]: f for f in json.loads(outputs["failures --json"].stdout)}
    reasons = " ".join(r["message"] for r in failures[leaky_run["email_key"]]["reasons"])
    assert "access_token=***" in reasons and "Bearer ***" in reasons
    shown = json.loads(outputs["show coupa --json"].stdout)
    assert any("access_token=***" in (a["message"] or "") for a in shown["attempts"])
    assert "access_token=***" in outputs["show email"].stdout


@pytest.mark.slow
def test_log_lines_of_the_careless_connector_are_masked_json(leaky_run: dict[str, Any]) -> None:
    events = json_lines(leaky_run["outputs"]["run"].stderr)
    library = [e for e in events if e.get("logger") == "leaky.http"]
    own = [e for e in events if e["event"] == "portal_call_failed"]
    assert library and own, "the connector's log lines come out (masked), not dropped"
    assert all("access_token=***" in e["event"] for e in library)
    assert all("access_token=***" in e["url"] and e.get("key") for e in own)
    retried = [e for e in events if e["event"] == "retry_scheduled"]
    # the first failures carry the portal's URL, masked; once the channel's circuit breaker
    # opens, the rest wait with "channel coupa is failing" and never call the portal
    from_portal = [e for e in retried if "portal" in e["error"]]
    assert from_portal and all("access_token=***" in e["error"] for e in from_portal)
    assert all(e in from_portal or "is failing" in e["error"] for e in retried)


@pytest.mark.slow
def test_no_file_written_holds_a_secret(leaky_run: dict[str, Any]) -> None:
    """The state file (and its WAL if left), the lock, the outboxes: every byte."""
    directory: Path = leaky_run["config"].parent
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert any(p.name == "ar-sync.db" for p in files)
    assert any(p.suffix == ".json" and "outbox" in p.parts for p in files)
    assert {str(p.relative_to(directory)): leaks(p.read_bytes()) for p in files
            if leaks(p.read_bytes())} == {}
    db = directory / "state" / "ar-sync.db"
    masked = query(db, "SELECT COUNT(*) FROM attempts WHERE message LIKE '%access_token=***%'")
    assert masked[0][0] > 0, "the masked text is what the state file keeps"


@pytest.mark.slow
def test_alerts_and_the_evidence_bundle_hold_no_secret(leaky_run: dict[str, Any]) -> None:
    """What leaves through alerts, and what an auditor receives, is masked like the rest."""
    alerts = leaky_run["alerts"]
    assert [leaks(body) for body in alerts] == [[] for _ in alerts]
    text = " ".join(json.loads(body)["text"] for body in alerts)
    assert leaky_run["email_key"] in text and "access_token=***" in text, \
        "the rejection is in the alert, its token masked"
    evidence = leaky_run["config"].parent / "evidence"
    exported = [p for p in evidence.rglob("*") if p.is_file()]
    assert exported, "the bundle was written"
    assert {p.name: leaks(p.read_bytes()) for p in exported if leaks(p.read_bytes())} == {}
    assert any(b"access_token=***" in p.read_bytes() for p in exported)


@pytest.mark.slow
def test_a_webhook_that_fails_is_logged_without_its_secret_url(tmp_path: Path) -> None:
    """requests puts the URL in its errors; the URL is a secret and stays masked."""
    config = write_demo_dir(tmp_path / "demo")
    set_section(config, "alerts", 'webhook_url_env = "AR_SYNC_TEST_HOOK_URL"')
    url = f"http://127.0.0.1:{free_port()}/services/{HOOK_TOKEN}"  # nobody listening
    result = run_cli(config, "run", "--once", env={"AR_SYNC_TEST_HOOK_URL": url})
    assert result.returncode == 0, result.stderr
    failed = [e for e in json_lines(result.stderr) if e["event"] == "alert_webhook_failed"]
    assert failed and "127.0.0.1" in failed[0]["error"], result.stderr
    assert leaks(result.stderr) == [] and leaks(result.stdout) == []
    files = [p for p in config.parent.rglob("*") if p.is_file()]
    assert {str(p): leaks(p.read_bytes()) for p in files if leaks(p.read_bytes())} == {}


@pytest.mark.slow
def test_a_crash_in_a_connector_library_is_logged_masked(tmp_path: Path) -> None:
    """An exception outside the error tree ends the run; its text is masked like any line."""
    config = leaky_config(tmp_path / "demo", email_mode="crash")
    result = run_cli(config, "run", "--once",
                     env=SECRETS | {"PYTHONPATH": plugin_path(tmp_path / "site")})
    assert result.returncode == 1
    assert leaks(result.stdout + result.stderr) == []
    crashed = [e for e in json_lines(result.stderr) if e["event"] == "crashed"]
    assert len(crashed) == 1 and "ValueError: unexpected reply from" in crashed[0]["exception"]
    assert "access_token=***" in crashed[0]["exception"]
    for p in (tmp_path / "demo").rglob("*"):
        assert not p.is_file() or leaks(p.read_bytes()) == [], p


@pytest.mark.slow
def test_config_check_reports_problems_without_echoing_secrets(tmp_path: Path) -> None:
    config = leaky_config(tmp_path / "demo")
    set_section(config, "channels.email", 'connector = "leaky"\n'
                'token_env = "AR_SYNC_TEST_SHORT_TOKEN"\ncolour = "blue"')
    set_section(config, "delivery", 'default_channel = "fax"')
    env = SECRETS | {"PYTHONPATH": plugin_path(tmp_path / "site")}
    result = run_cli(config, "config", "check", env=env)
    assert result.returncode == 2
    out = result.stdout + result.stderr
    assert "delivery.default_channel" in out and "channels.email.colour: unknown key" in out
    assert "channels.email.token_env: token '***' is too short" in out
    assert leaks(out) == []


@pytest.mark.slow
def test_config_check_does_not_echo_a_secret_pasted_in_place_of_its_variable(
        tmp_path: Path) -> None:
    config = leaky_config(tmp_path / "demo")
    set_section(config, "channels.coupa", f'connector = "leaky"\ntoken_env = "{COUPA_TOKEN}"')
    env = SECRETS | {"PYTHONPATH": plugin_path(tmp_path / "site")}
    result = run_cli(config, "config", "check", env=env)
    assert result.returncode == 2
    assert "channels.coupa.token_env" in result.stderr
    assert leaks(result.stdout + result.stderr) == []
