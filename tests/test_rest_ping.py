"""``ar-sync netsuite ping`` says plainly what is wrong, in the terms of NetSuite's setup
screens; ``status`` warns of a certificate about to expire."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from netsuite_rest_fake import FakeNetSuite, use_rest

from ar_sync.cli import cli
from ar_sync.demo import write_demo_dir

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return write_demo_dir(tmp_path / "demo", AS_OF)


@pytest.fixture
def fake(demo: Path) -> Iterator[FakeNetSuite]:
    with FakeNetSuite(demo.parent / "state" / "sandbox.db") as server:
        yield server


def ping(config: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Result:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, ["--config", str(config), "netsuite", "ping"])


def test_a_good_setup_passes_every_check(demo: Path, fake: FakeNetSuite,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    result = ping(demo, monkeypatch, use_rest(demo, fake))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if not line.startswith("      ")]
    assert max(map(len, result.stdout.splitlines())) <= 100
    assert [line.split(":")[0] for line in lines] == [
        "ok    configuration", "ok    access token", "ok    SuiteQL", "ok    SuiteQL",
        "ok    SuiteQL", "info  creating invoices"]
    assert "PS256" in result.output and "sales orders: readable" in result.output


def test_the_checks_in_json(demo: Path, fake: FakeNetSuite,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    for name, value in use_rest(demo, fake).items():
        monkeypatch.setenv(name, value)
    fake.permissions = fake.permissions - {"rest_webservices"}
    result = CliRunner().invoke(cli, ["--config", str(demo), "netsuite", "ping", "--json"])
    assert result.exit_code == 1
    checks = json.loads(result.stdout)
    assert {"status", "what", "detail"} <= set(checks[0])
    assert any(c["status"] == "FAIL" and "REST Web Services" in c["detail"] for c in checks)


def test_tba_passes_too(demo: Path, fake: FakeNetSuite,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = ping(demo, monkeypatch, use_rest(demo, fake, auth="tba"))
    assert result.exit_code == 0, result.output
    assert "access token" not in result.output and "invoices: readable" in result.output


def test_a_role_without_rest_web_services_is_named(demo: Path, fake: FakeNetSuite,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake.permissions = fake.permissions - {"rest_webservices"}
    result = ping(demo, monkeypatch, use_rest(demo, fake))
    assert result.exit_code == 1
    assert "FAIL  credentials: role lacks REST Web Services permission" in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= 100


def test_a_role_without_sales_orders_is_named(demo: Path, fake: FakeNetSuite,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake.permissions = fake.permissions - {"sales_orders"}
    result = ping(demo, monkeypatch, use_rest(demo, fake))
    assert result.exit_code == 1
    assert ("FAIL SuiteQL: sales orders: role lacks Transactions > Sales Order (View)"
            in " ".join(result.output.split()))
    assert "ok    SuiteQL: invoices" in result.output


def test_a_lower_case_realm_is_explained(demo: Path, fake: FakeNetSuite,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    env = use_rest(demo, fake, auth="tba")
    demo.write_text(demo.read_text().replace('account_id = "1234567_SB1"',
                                             'account_id = "1234567_sb1"'))
    result = ping(demo, monkeypatch, env)
    assert result.exit_code == 2
    assert "netsuite.account_id: realm must be upper case" in result.output
    assert "'1234567_SB1', not '1234567_sb1'" in result.output


def test_an_unmapped_certificate_is_explained(demo: Path, fake: FakeNetSuite,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env = use_rest(demo, fake)
    demo.write_text(demo.read_text().replace('certificate_id = "cert-rsa-3072"',
                                             'certificate_id = "cert-from-old-sandbox"'))
    result = ping(demo, monkeypatch, env)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "FAIL access token: NetSuite's token endpoint refused" in text
    assert "mappings are cleared on every sandbox refresh" in text


def test_config_problems_are_reported_with_their_keys(demo: Path, fake: FakeNetSuite,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    env = use_rest(demo, fake)
    text = demo.read_text().replace(fake.url, "http://netsuite.example.com/services/rest")
    weak = demo.parent / "weak.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    text = text.replace("private_key_file = ", f'private_key_file = "{weak}"\n# was: ')
    demo.write_text(text)
    result = ping(demo, monkeypatch, env)
    assert result.exit_code == 2
    assert "netsuite.rest.base_url: must be https" in result.output
    assert "netsuite.rest.private_key_file:" in result.output and "3072 or 4096" in result.output


def test_an_expiring_certificate_is_warned_by_ping_and_status(
        demo: Path, fake: FakeNetSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    env = use_rest(demo, fake, days_left=9)
    result = ping(demo, monkeypatch, env)
    assert result.exit_code == 0
    assert "warn  certificate: the NetSuite M2M certificate expires on" in result.output
    run = CliRunner().invoke(cli, ["--config", str(demo), "run", "--once", "--as-of",
                                   AS_OF.isoformat()])
    assert run.exit_code == 0, run.output
    assert "netsuite_certificate_expiring" in run.output  # logged by every cycle
    status = CliRunner().invoke(cli, ["--config", str(demo), "status"])
    assert "warning: the NetSuite M2M certificate expires on" in status.output
