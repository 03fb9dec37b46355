"""Authentication: the M2M JWT assertion as NetSuite documents it, the token cached and renewed,
a 401 renewed once then fatal with a clear message; TBA signed with HMAC-SHA256 over the
query string, realm as NetSuite spells the account id. The fake verifies every signature."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from netsuite_rest_fake import ACCOUNT, CLIENT_ID, FakeNetSuite, key_pair, rest_gateway
from structlog.testing import capture_logs
from test_gateway_contract import ANCHOR, all_units

from ar_sync import log
from ar_sync.netsuite.rest.auth import (
    M2MAuth,
    TokenRefused,
    certificate_expiry,
    expiry_warning,
    load_private_key,
    realm_problem,
    signing_algorithm,
)
from ar_sync.netsuite.rest.errors import CredentialsRefused
from ar_sync.netsuite.seed import build_demo_account


@pytest.fixture
def fake(tmp_path: Path) -> FakeNetSuite:
    build_demo_account(tmp_path / "netsuite.db", anchor=ANCHOR)
    with FakeNetSuite(tmp_path / "netsuite.db") as server:
        yield server  # type: ignore[misc]


@pytest.mark.parametrize("kind,alg", [("rsa", "PS256"), ("ec", "ES256")])
def test_the_assertion_is_signed_and_claims_what_netsuite_documents(
        fake: FakeNetSuite, kind: str, alg: str) -> None:
    with rest_gateway(fake, kind=kind) as gw:
        assert all_units(gw, ANCHOR)
    [(header, claims)] = fake.assertions  # verified by the fake with the certificate
    assert header == {"alg": alg, "typ": "JWT", "kid": key_pair(kind).kid}
    assert claims["iss"] == CLIENT_ID and claims["aud"] == fake.token_url
    assert claims["scope"] == "rest_webservices"
    assert 0 < claims["exp"] - claims["iat"] < 3600
    assert abs(claims["iat"] - time.time()) < 60


def test_the_fake_refuses_rs256_and_a_wrong_audience(fake: FakeNetSuite) -> None:
    keys = key_pair("rsa")
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "scope": "rest_webservices", "aud": fake.token_url,
              "iat": now, "exp": now + 300}

    def ask(assertion: str) -> requests.Response:
        return requests.post(fake.token_url, timeout=5, data={
            "grant_type": "client_credentials", "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})

    headers = {"kid": keys.kid, "typ": "JWT"}
    assert ask(jwt.encode(claims, keys.private_key, "PS256", headers)).status_code == 200
    rs256 = ask(jwt.encode(claims, keys.private_key, "RS256", headers))
    assert rs256.status_code == 400 and rs256.json()["error"] == "invalid_grant"
    wrong = ask(jwt.encode(claims | {"aud": "https://elsewhere"}, keys.private_key, "PS256",
                           headers))
    assert wrong.status_code == 400
    long = ask(jwt.encode(claims | {"exp": now + 3600}, keys.private_key, "PS256", headers))
    assert long.status_code == 400


def test_only_keys_netsuite_accepts_can_sign() -> None:
    assert signing_algorithm(rsa.generate_private_key(65537, 3072)) == "PS256"
    assert signing_algorithm(ec.generate_private_key(ec.SECP384R1())) == "ES384"
    with pytest.raises(ValueError, match="3072 or 4096"):
        signing_algorithm(rsa.generate_private_key(65537, 2048))
    with pytest.raises(ValueError, match="P-256"):
        signing_algorithm(ec.generate_private_key(ec.SECP256K1()))


def test_the_token_is_cached_and_renewed_before_it_expires(fake: FakeNetSuite) -> None:
    now = [1000.0]  # the monotonic clock the token's lifetime is measured on
    with rest_gateway(fake, clock=lambda: now[0]) as gw:
        auth = gw.client.auth
        assert isinstance(auth, M2MAuth)
        for _ in range(3):
            gw.read_invoices(["1"])
        assert auth.tokens_fetched == 1 and fake.stats.requests["token"] == 1
        now[0] += 3600 - 310  # ten seconds before the renewal margin: still the same token
        gw.read_invoices(["1"])
        assert auth.tokens_fetched == 1
        now[0] += 20  # inside the margin: a new token before the next call
        gw.read_invoices(["1"])
        assert auth.tokens_fetched == 2 and fake.stats.requests["token"] == 2


def test_a_401_renews_the_token_once_and_goes_on(fake: FakeNetSuite) -> None:
    with rest_gateway(fake) as gw:
        gw.read_invoices(["1"])
        fake.revoke_tokens()
        with capture_logs() as logs:
            gw.read_invoices(["1"])
    assert fake.stats.requests["token"] == 2
    assert [e["event"] for e in logs].count("netsuite_token_renewed") == 1


def test_a_401_after_renewal_is_fatal_and_says_what_to_check(fake: FakeNetSuite) -> None:
    fake.permissions = fake.permissions - {"rest_webservices"}
    with rest_gateway(fake) as gw, pytest.raises(CredentialsRefused) as info:
        gw.read_invoices(["1"])
    assert fake.stats.requests["token"] == 2 and fake.stats.statuses[401] == 2
    assert "REST Web Services" in str(info.value) and "INVALID_LOGIN" in str(info.value)


def test_a_refused_assertion_names_the_certificate_mapping(fake: FakeNetSuite) -> None:
    with rest_gateway(fake, certificate_id="not-mapped") as gw, \
            pytest.raises(TokenRefused, match="certificate id"):
        gw.read_invoices(["1"])


def test_tba_signs_with_hmac_sha256_the_realm_and_the_query_string(fake: FakeNetSuite) -> None:
    with rest_gateway(fake, auth="tba") as gw:
        assert len(all_units(gw, ANCHOR)) > 50  # every request verified by the fake
        request = requests.Request("POST", f"{fake.url}/query/v1/suiteql",
                                   params={"limit": "1000", "offset": "0"},
                                   auth=gw.client.auth.auth()).prepare()
    header = request.headers["Authorization"]
    header = header.decode() if isinstance(header, bytes) else header
    assert header.startswith(f'OAuth realm="{ACCOUNT}"')
    assert 'oauth_signature_method="HMAC-SHA256"' in header
    assert parse_qs(request.url.split("?", 1)[1]) == {"limit": ["1000"], "offset": ["0"]}
    tampered = requests.post(request.url.replace("limit=1000", "limit=999"), timeout=5,
                             headers={"Authorization": header, "Prefer": "transient"},
                             data=b'{"q": "SELECT 1"}')
    assert tampered.status_code == 401  # the query string is part of the signature


def test_tba_with_a_lower_case_realm_is_refused_and_explained(fake: FakeNetSuite) -> None:
    with rest_gateway(fake, auth="tba", account_id="1234567_sb1") as gw, \
            pytest.raises(CredentialsRefused, match="realm must be upper case") as info:
        gw.read_invoices(["1"])
    assert "'1234567_SB1'" in str(info.value)
    assert realm_problem("1234567_SB1") is None and realm_problem("TSTDRV123456") is None
    assert "upper case" in (realm_problem("1234567-sb1") or "")


def test_certificate_expiry_is_warned_within_30_days(tmp_path: Path) -> None:
    _, soon = key_pair("ec").write(tmp_path / "soon", days_left=12)
    _, later = key_pair("ec").write(tmp_path / "later", days_left=200)
    message = expiry_warning(certificate_expiry(soon))
    assert message and "expires on" in message and "(11 days)" in message
    assert expiry_warning(certificate_expiry(later)) is None
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    assert "expired" in (expiry_warning(past) or "")


def test_the_private_key_file_is_a_secret(tmp_path: Path) -> None:
    key_file, _ = key_pair("rsa").write(tmp_path)
    load_private_key(key_file)
    text = key_file.read_text()
    body = [line for line in text.splitlines() if "PRIVATE KEY" not in line]
    assert log.mask(f"oops {body[3]}") == "oops ***"
    assert not any(line in log.mask(text) for line in body)
