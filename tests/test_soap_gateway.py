"""The SOAP gateway against the loopback fake over NetSuite's real 2023_2 WSDL: the shared
gateway contract, then what only SOAP has (passport, paging, batching, faults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from netsuite_soap_fake import FakeSoap, soap_gateway
from test_gateway_contract import ANCHOR, Account, GatewayContract

from ar_sync.netsuite.seed import build_demo_account


@pytest.fixture(scope="session")
def demo_account(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo account, built once; each test works on a copy."""
    path = tmp_path_factory.mktemp("soap-account") / "netsuite.db"
    build_demo_account(path, anchor=ANCHOR)
    return path


def fresh_copy(source: Path, directory: Path) -> Path:
    target = directory / "netsuite.db"
    target.write_bytes(source.read_bytes())
    target.chmod(0o600)
    return target


class TestSoapGateway(GatewayContract):
    @pytest.fixture
    def account(self, tmp_path: Path, demo_account: Path) -> Iterator[Account]:
        with FakeSoap(fresh_copy(demo_account, tmp_path)) as fake:
            gateway = soap_gateway(fake, cache_dir=tmp_path / "cache")
            yield Account(gateway, ANCHOR, lambda oid, f, v: fake.account.sandbox
                          .set_order_field(oid, f, v))
            gateway.close()
            assert fake.invalid == [] and fake.invalid_responses == []
