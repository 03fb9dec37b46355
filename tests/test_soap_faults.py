"""What only the SOAP gateway has: the token passport, paging through ``searchMoreWithId``,
batch limits, per-record results, faults, and a WSDL published under another version."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netsuite_soap_fake import ACCOUNT, FakeSoap, Injected, soap_gateway, wsdl_dir
from test_gateway_contract import ANCHOR, all_units, first, make_draft
from test_soap_gateway import fresh_copy

from ar_sync.errors import DuplicateExternalIdError, FatalError, RejectedError
from ar_sync.models import Invoice, UnitKind
from ar_sync.netsuite.soap.passport import TokenCredentials, passport, sign


@pytest.fixture(scope="module")
def demo_account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ar_sync.netsuite.seed import build_demo_account

    path = tmp_path_factory.mktemp("soap-faults") / "netsuite.db"
    build_demo_account(path, anchor=ANCHOR)
    return path


@pytest.fixture
def fake(tmp_path: Path, demo_account: Path) -> Iterator[FakeSoap]:
    with FakeSoap(fresh_copy(demo_account, tmp_path)) as server:
        yield server
        assert server.invalid == [] and server.invalid_responses == []


def test_the_passport_signs_account_key_token_nonce_and_time() -> None:
    creds = TokenCredentials("1234567_SB1", "ck", "cs", "tk", "ts")
    p = passport(creds, clock=lambda: 1439829974.7, nonce=lambda: "6obMKq0tmY8ylVOdEkA1")
    base = b"1234567_SB1&ck&tk&6obMKq0tmY8ylVOdEkA1&1439829974"
    expected = base64.b64encode(hmac.new(b"cs&ts", base, hashlib.sha256).digest()).decode()
    assert (p.account, p.timestamp, p.signature, p.algorithm) == (
        "1234567_SB1", 1439829974, expected, "HMAC-SHA256")
    assert sign(creds, "6obMKq0tmY8ylVOdEkA1", 1439829974) == expected
    assert passport(creds).nonce != passport(creds).nonce


def test_pages_to_total_pages_past_an_empty_page_and_an_expired_search(
        fake: FakeSoap, tmp_path: Path) -> None:
    gateway = soap_gateway(fake, cache_dir=tmp_path, page_size=10)
    whole = [u.key for u in all_units(gateway, ANCHOR)]
    fake.empty_pages = {2}
    fake.faults = [Injected("searchMoreWithId", "expire")]
    again = [u.key for u in all_units(gateway, ANCHOR)]
    assert fake.faults[0].times == 0
    # page 2 came back empty: its orders are missed this time, but the pages after it are not
    assert set(again) < set(whole) and again[-1] == whole[-1] and len(whole) > 30
    assert fake.stats.requests["searchMoreWithId"] > 10


def test_add_list_is_batched_and_split_on_a_record_count_fault(
        fake: FakeSoap, tmp_path: Path) -> None:
    gateway = soap_gateway(fake, cache_dir=tmp_path, add_batch_size=8)
    fake.max_add_records = 5  # NetSuite says: too many records
    units = [u for u in all_units(gateway, ANCHOR)][:16]
    results = gateway.create_invoices([make_draft(u) for u in units])
    created = [r for r in results if isinstance(r, Invoice)]
    assert len(created) >= 12 and fake.stats.requests["addList"] >= 4
    assert fake.stats.records["addList"] == len(created) + sum(
        1 for r in results if isinstance(r, RejectedError))


def test_per_record_results_are_mapped_one_by_one(fake: FakeSoap, tmp_path: Path) -> None:
    gateway = soap_gateway(fake, cache_dir=tmp_path)
    one, two, three, four = first(all_units(gateway, ANCHOR), UnitKind.ORDER, 4)
    fake.record_errors[two.key] = ("INSUFFICIENT_PERMISSION", "You must have either "
                                   "'Transactions -> Invoice' permission to bill sales orders.")
    fake.after_submit_failed.add(three.key)
    [done] = gateway.create_invoices([make_draft(four)])
    assert isinstance(done, Invoice)
    results = gateway.create_invoices([make_draft(u) for u in (one, two, three, four)])
    assert isinstance(results[0], Invoice)
    assert isinstance(results[1], RejectedError)
    assert results[1].remote_code == "INSUFFICIENT_PERMISSION"
    assert "Transactions -> Invoice" in str(results[1])
    assert isinstance(results[2], Invoice) and results[2].netsuite_id
    assert isinstance(results[3], DuplicateExternalIdError)
    assert gateway.find_invoices([one.key, two.key, three.key]).keys() == {one.key, three.key}


def test_faults_are_retried_with_a_fresh_passport_or_explained(
        fake: FakeSoap, tmp_path: Path) -> None:
    gateway = soap_gateway(fake, cache_dir=tmp_path, max_attempts=4)
    fake.faults = [Injected("any", "concurrency", 2), Injected("any", "http503")]
    before = _counted()
    assert gateway.tax_codes()
    nonces = [n for n, _ in fake.stats.passports]
    assert len(nonces) == len(set(nonces))
    grew = {k: v - before.get(k, 0) for k, v in _counted().items() if v != before.get(k, 0)}
    assert grew == {("search", "exceededConcurrentRequestLimitFault"): 2,
                    ("search", "not_soap"): 1, ("search", "ok"): 1}  # the 503's HTML page
    fake.faults = [Injected("any", "unexpected", 5)]
    with pytest.raises(Exception, match="Error ID: lx9f2k1a1u8c0d2xq7s1"):
        gateway.tax_codes()
    fake.faults = [Injected("any", "credentials")]
    with pytest.raises(FatalError, match="account id"):
        gateway.tax_codes()
    wrong = soap_gateway(fake, cache_dir=tmp_path, account=ACCOUNT.lower())
    with pytest.raises(FatalError, match="Invalid login attempt"):
        wrong.tax_codes()


def test_a_timeout_is_retried(fake: FakeSoap, tmp_path: Path) -> None:
    gateway = soap_gateway(fake, cache_dir=tmp_path, read_timeout=0.3)
    fake.faults = [Injected("any", "slow", delay=0.6)]
    assert gateway.tax_codes()


def test_the_same_wsdl_under_another_versions_namespaces(tmp_path: Path,
                                                         demo_account: Path) -> None:
    source, target = wsdl_dir(), tmp_path / "wsdl-2025_2"
    (target / "xsd").mkdir(parents=True)
    for path in [source / "netsuite.wsdl", *sorted((source / "xsd").glob("*.xsd"))]:
        text = path.read_text(encoding="utf-8").replace("2023_2", "2025_2")
        (target / path.relative_to(source)).write_text(text, encoding="utf-8")
    with FakeSoap(fresh_copy(demo_account, tmp_path), wsdl=target, version="2025_2") as fake:
        gateway = soap_gateway(fake, cache_dir=tmp_path)
        [unit] = first(all_units(gateway, ANCHOR), UnitKind.ORDER)
        [created] = gateway.create_invoices([make_draft(unit)])
        assert isinstance(created, Invoice) and created.key == unit.key
        assert "NetSuitePort_2025_2" in fake.url
        assert fake.invalid == [] and fake.invalid_responses == []


def test_commands_that_do_not_talk_to_netsuite_never_import_zeep() -> None:
    code = ("import sys, ar_sync.cli, ar_sync.config, ar_sync.netsuite.gateway, "
            "ar_sync.netsuite.soap.options; print('zeep' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_wsdl_url_is_fetched_once_then_read_from_the_cache(
        fake: FakeSoap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ar_sync.netsuite.soap import client

    def start() -> None:
        monkeypatch.setattr(client, "_DOCUMENTS", {})  # as a new process would
        gateway = soap_gateway(fake, cache_dir=tmp_path / "wsdl-cache", wsdl=fake.wsdl_url)
        assert gateway.tax_codes()
        gateway.close()

    start()
    fetched = fake.stats.requests["GET wsdl"]
    assert fetched >= 40  # the WSDL and its XSDs
    start()
    assert fake.stats.requests["GET wsdl"] == fetched
    assert (tmp_path / "wsdl-cache" / "wsdl-cache.sqlite").is_file()


def _counted() -> dict[tuple[str, str], float]:
    """The process's SOAP request counters (what /metrics serves), by (operation, result)."""
    from ar_sync.metrics import REGISTRY

    return {(s.labels["kind"], s.labels["result"]): s.value for m in REGISTRY.collect()
            for s in m.samples if s.name.endswith("_total") and s.labels["api"] == "soap"}
