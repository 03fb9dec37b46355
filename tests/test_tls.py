"""TLS is always verified, and ``[tls] ca_bundle`` is how a private CA is trusted.

A throwaway CA and a server certificate for 127.0.0.1 are made here with ``cryptography``;
a real HTTPS server and a real SMTP server (aiosmtpd, STARTTLS) present it. Without the
bundle every client — the NetSuite REST gateway, the SOAP transport, the cXML and Peppol
connectors, the alert webhook, e-mail delivery and alert e-mail — refuses, with an error that
names TLS verification; with the bundle each connects. Nothing turns verification off: not a
config key, not ``verify=False``, not ``CURL_CA_BUNDLE=""``.
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from conftest import minimal_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from ar_sync import alerts
from ar_sync.config import Settings, load_settings
from ar_sync.connector import open_connector
from ar_sync.errors import AmbiguousError, ConfigError, FatalError
from ar_sync.models import OutcomeStatus
from ar_sync.netsuite.rest.client import ClientOptions, RestClient
from ar_sync.netsuite.rest.options import open_client
from ar_sync.netsuite.soap.client import CountingTransport, wsdl_transport
from ar_sync.netsuite.soap.options import SoapOptions
from ar_sync.netsuite.soap.passport import TokenCredentials
from ar_sync.store import Store
from ar_sync.testing import sample_invoice
from ar_sync.tls import TlsPolicy
from ar_sync_email import EmailConnector
from ar_sync_peppol import PeppolConnector
from tests.conftest import SELLER

REPO = Path(__file__).resolve().parent.parent
NAMES_TLS = re.compile(r"TLS verification failed \(.*certificate.*\).*\[tls\] ca_bundle", re.I)


# -- a throwaway CA and a server certificate for 127.0.0.1 ------------------------------------

@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate (what [tls] ca_bundle names)
    cert: Path  # the server's certificate, signed by the CA
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(_name("ar-sync test CA"))
          .issuer_name(_name("ar-sync test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(hours=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pki


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    return context


# -- a real HTTPS server ----------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    received: list[tuple[str, str]] = []

    def _answer(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(("POST", self.path))
        if "suiteql" in self.path:
            self._answer({"items": [{"one": 1}], "hasMore": False, "count": 1})
        else:
            self._answer({"id": "doc-1", "ok": True})

    def do_GET(self) -> None:
        self.received.append(("GET", self.path))
        self._answer({"ok": True})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def https(pki: Pki) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = _server_context(pki).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- a config on disk ------------------------------------------------------------------------

def _config(tmp_path: Path, extra: str) -> Path:
    return minimal_config(tmp_path, extra)


def _bundle_line(pki: Pki, tmp_path: Path) -> str:
    """``[tls] ca_bundle`` as a path relative to the config file, like other paths."""
    local = tmp_path / "certs" / "company-ca.pem"
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(pki.ca.read_bytes())
    return '[tls]\nca_bundle = "certs/company-ca.pem"\n'


TBA = """
[netsuite]
api = "rest"
account_id = "1234567_SB1"
[netsuite.rest]
base_url = "{url}/services/rest"
auth = "tba"
consumer_key_env = "TLS_TEST_CK"
consumer_secret_env = "TLS_TEST_CS"
token_id_env = "TLS_TEST_TI"
token_secret_env = "TLS_TEST_TS"
max_attempts = 1
"""


@pytest.fixture
def tba_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TLS_TEST_CK", "TLS_TEST_CS", "TLS_TEST_TI", "TLS_TEST_TS"):
        monkeypatch.setenv(var, f"value-of-{var.lower()}")
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)


# -- the NetSuite REST gateway ---------------------------------------------------------------

def test_rest_refuses_an_unknown_ca_naming_tls_verification(
        https: str, tmp_path: Path, tba_env: None) -> None:
    client = open_client(load_settings(_config(tmp_path, TBA.format(url=https))))
    with pytest.raises(FatalError) as info:
        client.suiteql("SELECT 1 AS one FROM dual", 1)
    assert NAMES_TLS.search(str(info.value)), str(info.value)
    assert "querying NetSuite" in str(info.value)
    client.close()


def test_rest_connects_with_the_ca_bundle_from_the_config(
        https: str, tmp_path: Path, tba_env: None, pki: Pki,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(_config(tmp_path, TBA.format(url=https) + _bundle_line(pki, tmp_path)))
    assert settings.tls_policy.ca_bundle == tmp_path / "certs" / "company-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "not-this-one.pem"))  # config wins
    client = open_client(settings)
    assert client.suiteql("SELECT 1 AS one FROM dual", 1)["items"] == [{"one": 1}]
    client.close()


def test_netsuite_ping_reports_tls_verification_once(https: str, tmp_path: Path,
                                                     tba_env: None) -> None:
    from ar_sync.netsuite.rest.ping import FAIL, ping

    checks = ping(load_settings(_config(tmp_path, TBA.format(url=https))))
    failed = [c for c in checks if c.status == FAIL]
    assert len(failed) == 1 and NAMES_TLS.search(failed[0].detail), checks


def test_rest_still_honours_requests_ca_bundle_without_the_setting(
        https: str, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
    client = RestClient(ClientOptions(f"{https}/services/rest", max_attempts=1))
    assert client.suiteql("SELECT 1 AS one FROM dual", 1)["count"] == 1
    client.close()


@pytest.mark.parametrize("variable", ["CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"])
def test_an_empty_ca_bundle_variable_does_not_turn_verification_off(
        https: str, variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "")
    client = RestClient(ClientOptions(f"{https}/services/rest", max_attempts=1))
    with pytest.raises(FatalError, match="TLS verification failed"):
        client.suiteql("SELECT 1", 1)
    client.close()
    session = TlsPolicy().session()  # a connector's session reads the environment per request
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{https}/x", timeout=5)


def test_verify_false_in_code_changes_nothing(https: str, pki: Pki) -> None:
    session = TlsPolicy().session()
    session.verify = False
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{https}/x", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{https}/x", timeout=5, verify=False)
    assert TlsPolicy(pki.ca).session().get(f"{https}/x", timeout=5, verify=False).ok


# -- the SOAP transport ----------------------------------------------------------------------

def _soap_options(tmp_path: Path, tls: TlsPolicy, wsdl: str = "netsuite.wsdl") -> SoapOptions:
    return SoapOptions(endpoint="https://127.0.0.1/services/NetSuitePort_2023_2", wsdl=wsdl,
                       version="2023_2", credentials=TokenCredentials("1", "a", "b", "c", "d"),
                       cache_dir=tmp_path / "wsdl", tls=tls)


def test_the_soap_transports_verify_with_the_bundle(https: str, pki: Pki,
                                                    tmp_path: Path) -> None:
    for tls, ok in ((TlsPolicy(), False), (TlsPolicy(pki.ca), True)):
        transport = CountingTransport(_soap_options(tmp_path, tls))
        loader = wsdl_transport(_soap_options(tmp_path, tls, wsdl=f"{https}/netsuite.wsdl"))
        for session in (transport.session, loader.session):
            if ok:
                assert session.post(f"{https}/soap", data=b"<x/>", timeout=5).ok
            else:
                with pytest.raises(requests.exceptions.SSLError):
                    session.post(f"{https}/soap", data=b"<x/>", timeout=5)


# -- the connectors ----------------------------------------------------------------------------

def _peppol(https: str, **extra: Any) -> PeppolConnector:
    return PeppolConnector("peppol", {"url": https, "token": SecretStr("access-point-token"),
                                      "seller": SELLER, **extra})


def test_peppol_refuses_an_unknown_ca_and_connects_with_the_bundle(https: str,
                                                                   pki: Pki) -> None:
    invoice = sample_invoice()
    refused = _peppol(https)
    with pytest.raises(FatalError) as info:  # stops the channel: a person must add the CA
        refused.submit(invoice, refused.render(invoice))
    assert NAMES_TLS.search(str(info.value)) and str(info.value).startswith("peppol:")
    assert "access-point-token" not in str(info.value)
    trusting = _peppol(https, tls=TlsPolicy(pki.ca))
    outcome = trusting.submit(invoice, trusting.render(invoice))
    assert outcome.status is OutcomeStatus.ACCEPTED and outcome.reference == "peppol:doc-1"


def test_cxml_refuses_an_unknown_ca_and_connects_with_the_bundle(https: str, pki: Pki,
                                                                 cxml_dtd: Path) -> None:
    from ar_sync_cxml import CoupaConnector

    def coupa(**extra: Any) -> CoupaConnector:
        return CoupaConnector("coupa", {"url": f"{https}/cxml", "dtd_file": cxml_dtd,
                                        "shared_secret": SecretStr("s3cret"),
                                        "from_identity": "1", "to_identity": "2",
                                        "seller": SELLER, **extra})

    invoice = sample_invoice()
    refused = coupa()
    with pytest.raises(FatalError) as info:
        refused.submit(invoice, refused.render(invoice))
    assert NAMES_TLS.search(str(info.value)) and "s3cret" not in str(info.value)
    trusting = coupa(tls=TlsPolicy(pki.ca))
    # it connects; the answer is no cXML, which the connector reads as an ambiguous 200
    with pytest.raises(AmbiguousError) as answered:
        trusting.submit(invoice, trusting.render(invoice))
    assert "TLS" not in str(answered.value) and "no cXML" in str(answered.value)


def test_open_connector_hands_the_config_bundle_to_the_connector(
        https: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLS_TEST_TOKEN", "access-point-token")
    channel = f'[channels.peppol]\nconnector = "peppol"\nurl = "{https}"\n' \
              'token_env = "TLS_TEST_TOKEN"\n'
    settings = load_settings(_config(tmp_path, channel + _bundle_line(pki, tmp_path)))
    connector = open_connector(settings, "peppol")
    invoice = sample_invoice()
    assert connector.submit(invoice, connector.render(invoice)).status is \
        OutcomeStatus.ACCEPTED


# -- the alert webhook --------------------------------------------------------------------------

def _alert(settings: Settings) -> int:
    """Send one alert through the configured sinks; how many went out (0: a sink failed)."""
    store = Store.open(settings.state_path)
    try:
        return alerts.send(settings, store, [alerts.Alert("tls-test", "hello")])
    finally:
        store.close()


def test_the_alert_webhook_verifies_with_the_bundle(https: str, pki: Pki,
                                                    tmp_path: Path) -> None:
    hook = f'[alerts]\nwebhook_url = "{https}/hook"\n'
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _alert(load_settings(_config(tmp_path / "a", hook))) == 0
    trusting = load_settings(_config(tmp_path / "b", hook + _bundle_line(pki, tmp_path / "b")))
    before = len(_Handler.received)
    assert _alert(trusting) == 1
    assert _Handler.received[before:] == [("POST", "/hook")]


# -- SMTP with STARTTLS: e-mail delivery and alert e-mail ------------------------------------

@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp(pki: Pki) -> Iterator[Mailbox]:
    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=box.port,
                            tls_context=_server_context(pki), require_starttls=True)
    controller.start()
    yield box
    controller.stop()


def test_email_starttls_refuses_an_unknown_ca_and_sends_with_the_bundle(
        smtp: Mailbox, pki: Pki, tmp_path: Path) -> None:
    def connector(**extra: Any) -> EmailConnector:
        return EmailConnector("email", {"host": "127.0.0.1", "port": smtp.port,
                                        "from_address": "billing@meridian.example.com",
                                        "sent_dir": tmp_path / "sent", "timeout_seconds": 5,
                                        "seller": SELLER, **extra})

    invoice = sample_invoice("so:700:2026-11-01")
    refused = connector()
    with pytest.raises(FatalError) as info:
        refused.submit(invoice, refused.render(invoice))
    assert NAMES_TLS.search(str(info.value)) and "SMTP server 127.0.0.1" in str(info.value)
    assert list((tmp_path / "sent").iterdir()) == [], "nothing went out: no intent is left"
    trusting = connector(tls=TlsPolicy(pki.ca))
    sent = len(smtp.messages)
    assert trusting.submit(invoice, trusting.render(invoice)).status is OutcomeStatus.ACCEPTED
    assert len(smtp.messages) == sent + 1


def test_alert_email_starttls_is_verified(smtp: Mailbox, pki: Pki, tmp_path: Path) -> None:
    mail = (f'[alerts.email]\nhost = "127.0.0.1"\nport = {smtp.port}\nstarttls = true\n'
            'sender = "ar-sync@example.com"\nto = ["oncall@example.com"]\ntimeout_seconds = 5\n')
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sent = len(smtp.messages)
    assert _alert(load_settings(_config(tmp_path / "a", mail))) == 0, \
        "smtplib's own default context would not have verified"
    assert len(smtp.messages) == sent
    assert _alert(load_settings(_config(tmp_path / "b", mail
                                        + _bundle_line(pki, tmp_path / "b")))) == 1
    assert len(smtp.messages) == sent + 1


# -- configuration ---------------------------------------------------------------------------

def test_a_missing_or_unusable_bundle_is_reported_with_file_and_key(tmp_path: Path) -> None:
    path = _config(tmp_path, '[tls]\nca_bundle = "certs/nope.pem"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.problems == [(str(path), "tls.ca_bundle",
                                    f"no such file: {tmp_path / 'certs' / 'nope.pem'}")]
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    path = _config(tmp_path, '[tls]\nca_bundle = "not-a-cert.pem"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    [(file, key, message)] = info.value.problems
    assert (file, key) == (str(path), "tls.ca_bundle") and "no PEM certificates" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_bundle_is_reported(tmp_path: Path, pki: Pki) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pki.ca.read_bytes())
    bundle.chmod(0)
    path = _config(tmp_path, '[tls]\nca_bundle = "ca.pem"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    [(file, key, message)] = info.value.problems
    assert (file, key) == (str(path), "tls.ca_bundle") and "cannot read" in message


def test_no_config_key_can_turn_verification_off(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLS_TEST_TOKEN", "t")
    path = _config(tmp_path, """
[tls]
verify = false
[alerts]
verify_ssl = false
[netsuite.rest]
insecure = true
[channels.peppol]
connector = "peppol"
url = "https://ap.example.com"
token_env = "TLS_TEST_TOKEN"
verify = false
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = {key: message for file, key, message in info.value.problems}
    assert all(file == str(path) for file, _, _ in info.value.problems)
    assert set(problems) == {"tls.verify", "alerts.verify_ssl", "netsuite.rest.insecure",
                             "channels.peppol.verify"}
    for message in problems.values():
        assert message.startswith("TLS certificate verification cannot be turned off")
        assert "[tls] ca_bundle" in message


def test_nothing_in_the_code_turns_verification_off() -> None:
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|_create_unverified_context|"
                         r"check_hostname\s*=\s*False|PYTHONHTTPSVERIFY")
    offenders = [f"{path.relative_to(REPO)}:{n}" for root in ("ar_sync", "connectors")
                 for path in (REPO / root).rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
