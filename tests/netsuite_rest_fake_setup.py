"""Test credentials and keys for the fake NetSuite, and wiring a config or a gateway to it.

Keys and certificates are made at test time with ``cryptography`` (RSA 3072 for PS256, EC
P-256 for ES256) and never committed; :func:`key_pair` makes each once per process.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ar_sync.netsuite.rest.auth import M2MAuth, TbaAuth
from ar_sync.netsuite.rest.client import ClientOptions, RestClient
from ar_sync.netsuite.rest.gateway import RestGateway

if TYPE_CHECKING:
    from netsuite_rest_fake import FakeNetSuite

ACCOUNT = "1234567_SB1"
CLIENT_ID = "ar-sync-test-client-0001"
RSA_KID, EC_KID = "cert-rsa-3072", "cert-ec-p256"
TBA_SECRETS = {"consumer_key": "ck-" + "a1" * 16, "consumer_secret": "cs-" + "b2" * 16,
               "token_id": "ti-" + "c3" * 16, "token_secret": "ts-" + "d4" * 16}
ENV = {"AR_SYNC_TEST_NS_CLIENT_ID": CLIENT_ID,
       **{f"AR_SYNC_TEST_NS_{k.upper()}": v for k, v in TBA_SECRETS.items()}}


# -- test keys and certificates (made at test time, never committed) -------------------------

@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_pem: bytes
    certificate_pem: bytes
    public_key: Any
    private_key: Any  # loaded once: loading checks an RSA key's primes (0.15 s)

    def write(self, directory: Path, *, days_left: int | None = None) -> tuple[Path, Path]:
        """Write the key (0600) and a certificate (valid ``days_left`` more days if given)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = directory / f"{self.kid}.key.pem", directory / f"{self.kid}.crt"
        key_path.write_bytes(self.private_pem)
        key_path.chmod(0o600)
        cert = (self.certificate_pem if days_left is None
                else _certificate(self.private_key, days_left))
        cert_path.write_bytes(cert)
        return key_path, cert_path


_KEYS: dict[str, KeyPair] = {}


def key_pair(kind: str = "rsa") -> KeyPair:
    """An RSA 3072 (PS256) or EC P-256 (ES256) key with a self-signed certificate."""
    if kind not in _KEYS:
        key: Any = (rsa.generate_private_key(65537, 3072) if kind == "rsa"
                    else ec.generate_private_key(ec.SECP256R1()))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        _KEYS[kind] = KeyPair(RSA_KID if kind == "rsa" else EC_KID, pem,
                              _certificate(key, 700), key.public_key(), key)
    return _KEYS[kind]


def _certificate(key: Any, days_left: int) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ar-sync test integration")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now + dt.timedelta(days=days_left)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


# -- wiring a config to the fake ------------------------------------------------------------

def use_rest(config: Path, fake: FakeNetSuite, *, auth: str = "oauth2", kind: str = "rsa",
             concurrency: int = 2, key_dir: Path | None = None, days_left: int | None = None,
             extra: str = "") -> dict[str, str]:
    """Point a demo config at ``fake`` (``api = "rest"``); the env its ``*_env`` keys need."""
    keys = key_pair(kind)
    key_file, cert_file = keys.write(key_dir or config.parent / "keys", days_left=days_left)
    if auth == "oauth2":
        creds = (f'client_id_env = "AR_SYNC_TEST_NS_CLIENT_ID"\ncertificate_id = "{keys.kid}"\n'
                 f'private_key_file = "{key_file}"\ncertificate_file = "{cert_file}"\n')
    else:
        creds = "".join(f'{k}_env = "AR_SYNC_TEST_NS_{k.upper()}"\n' for k in TBA_SECRETS)
    text = config.read_text(encoding="utf-8")
    section = (f'[netsuite]\napi = "rest"\naccount_id = "{fake.account_id}"\n'
               f'sandbox_file = "state/sandbox.db"\ntimeout_seconds = 5\n\n[netsuite.rest]\n'
               f'base_url = "{fake.url}"\ntoken_url = "{fake.token_url}"\nauth = "{auth}"\n'
               f"{creds}concurrency = {concurrency}\nbackoff_seconds = 0.05\n{extra}\n")
    text, n = re.subn(r"^\[netsuite\]\n.*?(?=^\[)", lambda _: section, text, count=1,
                      flags=re.M | re.S)
    assert n == 1, "the config has a [netsuite] table"
    config.write_text(text, encoding="utf-8")
    return dict(ENV)


def rest_gateway(fake: FakeNetSuite, *, auth: str = "oauth2", kind: str = "rsa",
                 concurrency: int = 2, max_attempts: int = 4, read_timeout: float = 5.0,
                 sleep: Any = None, clock: Any = None, account_id: str | None = None,
                 certificate_id: str | None = None) -> RestGateway:
    """A RestGateway on ``fake`` without a config file (unit and contract tests)."""
    options = ClientOptions(fake.url, concurrency=concurrency, connect_timeout=2.0,
                            read_timeout=read_timeout, max_attempts=max_attempts, backoff=0.01,
                            backoff_cap=0.05)
    client = RestClient(options, sleep=sleep or time.sleep)
    if auth == "tba":
        client.auth = TbaAuth(account_id=account_id or fake.account_id, **TBA_SECRETS)
    else:
        keys = key_pair(kind)
        client.auth = M2MAuth(
            client_id=CLIENT_ID, certificate_id=certificate_id or keys.kid,
            key=keys.private_key,
            token_url=fake.token_url, scope="rest_webservices", post=client.post_token,
            clock=clock or time.monotonic)
    return RestGateway(client)
