"""Authentication for SuiteTalk REST: OAuth 2.0 client credentials (M2M) and TBA.

**OAuth 2.0 M2M** (NetSuite's preferred kind; reference netsuite-rest.md §1a): a JWT
assertion signed with the private key of the certificate mapped to the integration and
role — header ``alg`` PS256/ES256 (RS256 is refused since March 2025), ``typ`` JWT, ``kid``
the certificate id; claims ``iss`` (client id), ``scope``, ``aud`` (the token URL), ``iat``
and ``exp`` under an hour later — is posted to the token endpoint for a one-hour access
token. PyJWT does the signing; the token is cached and renewed :data:`RENEW_MARGIN` before
it expires, and once more when NetSuite answers 401 (the client's job).

**TBA** (OAuth 1.0a, HMAC-SHA256) through requests-oauthlib: ``realm`` is the account id
exactly as NetSuite spells it in credentials (``1234567_SB1``, upper case); the query string
is signed because requests-oauthlib signs the prepared URL, so paging parameters must go
through ``params=`` and never be appended afterwards.

Secrets (the private key file's content, access tokens, TBA secrets) are registered for
masking the moment they are read; none is ever put into a message.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1

from ar_sync import log
from ar_sync.errors import FatalError

ASSERTION_LIFETIME = 300  # seconds; NetSuite: exp "less than 60 minutes" after iat
RENEW_MARGIN = 300  # renew the access token this many seconds before it expires
DEFAULT_TOKEN_LIFETIME = 3600  # what NetSuite grants when expires_in is missing
CERTIFICATE_WARNING_DAYS = 30
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REALM = re.compile(r"[0-9]+(_[A-Z]+[0-9]*)?|[A-Z]+[0-9]+(_[A-Z]+[0-9]*)?")
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class Authenticator(Protocol):
    """What the client needs from either kind of authentication."""

    kind: str

    def auth(self) -> requests.auth.AuthBase:
        """The auth to attach to the next request (fetching a token if needed)."""
        ...

    def renew(self, failed: requests.auth.AuthBase) -> bool:
        """Replace credentials NetSuite just refused; False when there is nothing to renew."""
        ...

    def refused(self) -> str:
        """What to tell a person when NetSuite keeps answering 401."""
        ...


# -- keys and certificates -------------------------------------------------------------------

def load_private_key(path: Path) -> PrivateKey:
    """Read a PEM private key (unencrypted) and register its text as a secret.

    Loaded once per file version: checking an RSA key's primes takes a noticeable time.
    """
    stat = path.stat()
    return _load_private_key(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_private_key(path: Path, mtime_ns: int, size: int) -> PrivateKey:
    data = path.read_bytes()
    text = data.decode("ascii", errors="replace")
    log.register_secrets([text.strip(), *(line for line in text.splitlines()
                                          if len(line) >= 16 and "PRIVATE KEY" not in line)])
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted PEM private key (PKCS#8 or traditional); "
                         f"{type(exc).__name__}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"a {type(key).__name__} cannot sign for NetSuite (use RSA or EC)")
    return key


def signing_algorithm(key: PrivateKey) -> str:
    """PS256 for RSA (3072 or 4096 bits), ES256/384/512 for EC: never RS256."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 3072:
            raise ValueError(f"RSA key of {key.key_size} bits: NetSuite accepts 3072 or 4096")
        return "PS256"
    try:
        return _EC_ALGORITHMS[key.curve.name]
    except KeyError:
        raise ValueError(f"EC curve {key.curve.name}: NetSuite accepts P-256, P-384, P-521"
                         ) from None


def certificate_expiry(path: Path) -> dt.datetime:
    """When the certificate (PEM or DER) stops being valid, in UTC."""
    data = path.read_bytes()
    cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data))
    return cert.not_valid_after_utc


def expiry_warning(not_after: dt.datetime, now: dt.datetime | None = None) -> str | None:
    """A warning when the M2M certificate expires within 30 days (or has expired)."""
    left = not_after - (now or dt.datetime.now(dt.UTC))
    if left > dt.timedelta(days=CERTIFICATE_WARNING_DAYS):
        return None
    when = not_after.date().isoformat()
    if left <= dt.timedelta(0):
        return (f"the NetSuite M2M certificate expired on {when}: upload a new one and map it "
                "(Setup > Integration > OAuth 2.0 Client Credentials (M2M) Setup)")
    return (f"the NetSuite M2M certificate expires on {when} ({left.days} days): upload a new "
            "one and map it before then (Setup > Integration > OAuth 2.0 Client Credentials)")


# -- OAuth 2.0 client credentials (M2M) ------------------------------------------------------

class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


TokenPost = Callable[[str, dict[str, str]], dict[str, Any]]  # (url, form) -> token JSON


class M2MAuth:
    """Client-credentials tokens: minted from a signed assertion, cached, renewed early."""

    kind = "oauth2"

    def __init__(self, *, client_id: str, certificate_id: str, key: PrivateKey,
                 token_url: str, scope: str, post: TokenPost,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` measures the token's lifetime (monotonic: a jump of the wall clock never
        serves an expired token); the assertion's ``iat``/``exp`` are wall-clock time."""
        self.client_id, self.certificate_id, self.key = client_id, certificate_id, key
        self.token_url, self.scope, self.post, self.clock = token_url, scope, post, clock
        self.algorithm = signing_algorithm(key)
        self._lock = threading.Lock()
        self._current: BearerAuth | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def assertion(self, now: int) -> str:
        """The signed JWT the token endpoint expects (claims as NetSuite documents them)."""
        claims = {"iss": self.client_id, "scope": self.scope, "aud": self.token_url,
                  "iat": now, "exp": now + ASSERTION_LIFETIME}
        headers = {"typ": "JWT", "kid": self.certificate_id}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)

    def auth(self) -> requests.auth.AuthBase:
        with self._lock:
            if self._current is None or self.clock() >= self._expires_at - RENEW_MARGIN:
                self._fetch()
            assert self._current is not None
            return self._current

    def renew(self, failed: requests.auth.AuthBase) -> bool:
        """Fetch a new token unless another thread already replaced the refused one."""
        with self._lock:
            if self._current is failed or self._current is None:
                self._fetch()
        return True

    def refused(self) -> str:
        return ("NetSuite refused a freshly issued access token: the role probably lacks the "
                "'REST Web Services' or 'Log in using OAuth 2.0 Access Tokens' permission, or "
                "the entity or role is inactive (the Login Audit Trail has the reason)")

    def _fetch(self) -> None:
        started = self.clock()
        form = {"grant_type": "client_credentials",
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.assertion(int(time.time()))}
        answer = self.post(self.token_url, form)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise FatalError("NetSuite's token endpoint answered without an access_token")
        log.register_secrets([token])
        lifetime = _seconds(answer.get("expires_in"), DEFAULT_TOKEN_LIFETIME)
        self._current, self._expires_at = BearerAuth(token), started + lifetime
        self.tokens_fetched += 1
        log.get("ar_sync.netsuite").info("netsuite_token_issued", expires_in=lifetime)


class TokenRefused(FatalError):
    """NetSuite's token endpoint refused the JWT assertion."""


def token_refusal(status: int, answer: dict[str, Any] | None) -> TokenRefused:
    """The token endpoint said no: what a person should check (never the assertion)."""
    answer = answer or {}
    code = str(answer.get("error") or f"HTTP {status}")
    text = str(answer.get("error_description") or answer.get("title") or "")
    return TokenRefused(
        f"NetSuite's token endpoint refused the JWT assertion ({code}{': ' + text if text else ''})"
        ": check the client id, the certificate id (kid) and its M2M mapping to this entity and "
        "role (mappings are cleared on every sandbox refresh), the scope, and that the "
        "certificate is neither expired nor revoked")


def _seconds(value: object, default: int) -> int:
    try:
        return max(60, int(str(value)))
    except (TypeError, ValueError):
        return default


# -- token-based authentication (OAuth 1.0a) -------------------------------------------------

class TbaAuth:
    """TBA: every request signed with HMAC-SHA256, realm = the account id; nothing to renew."""

    kind = "tba"

    def __init__(self, *, account_id: str, consumer_key: str, consumer_secret: str,
                 token_id: str, token_secret: str) -> None:
        self.account_id = account_id
        self._auth: requests.auth.AuthBase = OAuth1(consumer_key, client_secret=consumer_secret,
                            resource_owner_key=token_id, resource_owner_secret=token_secret,
                            signature_method=SIGNATURE_HMAC_SHA256, realm=account_id)

    def auth(self) -> requests.auth.AuthBase:
        return self._auth

    def renew(self, failed: requests.auth.AuthBase) -> bool:
        return False

    def refused(self) -> str:
        problem = realm_problem(self.account_id)
        if problem:
            return problem
        return ("NetSuite refused the TBA signature (Invalid login attempt): check the consumer "
                "key and secret, the token id and secret, that the token belongs to this "
                "account, and that the role has the 'REST Web Services' permission")


def realm_problem(account_id: str) -> str | None:
    """Why ``account_id`` cannot be a TBA realm, or None: NetSuite wants ``1234567_SB1``."""
    if REALM.fullmatch(account_id):
        return None
    fixed = account_id.upper().replace("-", "_")
    if fixed != account_id and REALM.fullmatch(fixed):
        return (f"realm must be upper case with an underscore, as NetSuite spells the account "
                f"id in credentials: {fixed!r}, not {account_id!r}")
    return f"{account_id!r} is not a NetSuite account id (e.g. 1234567 or 1234567_SB1)"


def check_key_file(path: Path) -> tuple[PrivateKey | None, str | None]:
    """The key in ``path`` and None, or None and what is wrong (for the config check)."""
    try:
        key = load_private_key(path)
        signing_algorithm(key)
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror}"
    except ValueError as exc:
        return None, f"{path}: {exc}"
    return key, None

