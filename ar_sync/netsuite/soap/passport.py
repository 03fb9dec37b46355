"""The TBA token passport: how every SOAP request proves who sends it.

NetSuite treats a passport as single-use, "even with retry logic" (reference §2): so a
passport is built per HTTP request, never per call, and a retried request gets a new nonce
and timestamp. The account id is sent exactly as the credentials spell it (``1234567_SB1``;
``_sb1`` is refused as an invalid login). No ``applicationInfo`` goes with it: NetSuite
answers that combination with "Ambiguous authentication".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

ALGORITHM = "HMAC-SHA256"  # HMAC-SHA1 ended with 2023.1; SOAP also accepts HMAC_SHA256
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """What the integration and token records in NetSuite hand out (secrets from the env)."""

    account: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str


@dataclass(frozen=True, slots=True)
class Passport:
    """One request's passport, field by field as ``platformCore:TokenPassport`` holds it."""

    account: str
    consumer_key: str
    token: str
    nonce: str
    timestamp: int
    signature: str
    algorithm: str = ALGORITHM


def new_nonce(length: int = 32) -> str:
    """A random alphanumeric nonce (NetSuite: 6-64 characters, no special characters)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def sign(creds: TokenCredentials, nonce: str, timestamp: int) -> str:
    """Base64 HMAC-SHA256 of ``account&consumerKey&token&nonce&timestamp`` under
    ``consumerSecret&tokenSecret`` (reference §2, NetSuite's Java sample)."""
    base = "&".join((creds.account, creds.consumer_key, creds.token_id, nonce, str(timestamp)))
    key = f"{creds.consumer_secret}&{creds.token_secret}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def passport(creds: TokenCredentials, *, clock: Callable[[], float] = time.time,
             nonce: Callable[[], str] = new_nonce) -> Passport:
    """A fresh passport: new nonce, current Unix time, signed."""
    value, stamp = nonce(), int(clock())
    return Passport(creds.account, creds.consumer_key, creds.token_id, value, stamp,
                    sign(creds, value, stamp))
