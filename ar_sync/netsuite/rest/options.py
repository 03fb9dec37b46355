"""``[netsuite.rest]``: what the config must hold, and the client built from it.

The config check (``load_settings`` when ``api = "rest"``, and ``netsuite ping``) reports
every problem with its key: a missing endpoint, a private key that cannot sign for NetSuite
(RSA under 3072 bits, an unknown curve, an encrypted or unreadable file), a TBA realm
NetSuite would refuse, plain ``http`` to anything but this machine.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ar_sync import log
from ar_sync.errors import ConfigError
from ar_sync.netsuite.rest.auth import (
    Authenticator,
    M2MAuth,
    TbaAuth,
    certificate_expiry,
    check_key_file,
    expiry_warning,
    load_private_key,
    realm_problem,
)
from ar_sync.netsuite.rest.client import ClientOptions, RestClient

if TYPE_CHECKING:
    from ar_sync.config import Settings

SECRETS = {"oauth2": ("client_id_env",),
           "tba": ("consumer_key_env", "consumer_secret_env", "token_id_env", "token_secret_env")}
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def config_problems(settings: Settings) -> list[tuple[str, str]]:
    """Every problem of the REST section as ``(key, message)``; empty when usable."""
    rest = settings.model.netsuite.rest
    out = _url_problem("base_url", rest.base_url)
    for key in SECRETS[rest.auth]:
        if getattr(rest, key) is None:
            out.append((key, f"required with auth = {rest.auth!r} (names the environment "
                             "variable holding it)"))
    if rest.auth == "oauth2":
        out += _url_problem("token_url", rest.token_url)
        if not rest.certificate_id:
            out.append(("certificate_id", "required with auth = 'oauth2' (the Certificate ID "
                                          "NetSuite shows for the M2M mapping)"))
        if not rest.private_key_file:
            out.append(("private_key_file", "required with auth = 'oauth2' (PEM file)"))
        elif (problem := check_key_file(settings.resolve(rest.private_key_file))[1]):
            out.append(("private_key_file", problem))
        if rest.certificate_file:
            try:
                certificate_expiry(settings.resolve(rest.certificate_file))
            except (OSError, ValueError) as exc:
                out.append(("certificate_file", f"not a readable X.509 certificate: {exc}"))
    elif (problem := realm_problem(settings.model.netsuite.account_id)):
        return [(f"netsuite.rest.{k}", m) for k, m in out] + [("netsuite.account_id", problem)]
    return [(f"netsuite.rest.{k}", m) for k, m in out]


def _url_problem(key: str, value: object) -> list[tuple[str, str]]:
    if value is None:
        return [(key, "required when netsuite.api = \"rest\" (see README: NetSuite REST)")]
    parts = urlsplit(str(value))
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        return [(key, "must be https (plain http only to 127.0.0.1 or localhost, for tests)")]
    return []


def client_options(settings: Settings) -> ClientOptions:
    rest = settings.model.netsuite.rest
    return ClientOptions(
        base_url=str(rest.base_url).rstrip("/"), concurrency=rest.concurrency,
        connect_timeout=rest.connect_timeout_seconds,
        read_timeout=settings.model.netsuite.timeout_seconds, max_attempts=rest.max_attempts,
        backoff=rest.backoff_seconds, backoff_cap=rest.backoff_cap_seconds,
        tls=settings.tls_policy)


def secret(settings: Settings, key: str) -> str:
    return settings.secrets[f"netsuite.rest.{key}"].get_secret_value()


def authenticator(settings: Settings, client: RestClient,
                  clock: Callable[[], float] = time.monotonic) -> Authenticator:
    """OAuth 2.0 M2M or TBA, as ``[netsuite.rest] auth`` says."""
    rest = settings.model.netsuite.rest
    if rest.auth == "tba":
        return TbaAuth(account_id=settings.model.netsuite.account_id,
                       consumer_key=secret(settings, "consumer_key_env"),
                       consumer_secret=secret(settings, "consumer_secret_env"),
                       token_id=secret(settings, "token_id_env"),
                       token_secret=secret(settings, "token_secret_env"))
    return M2MAuth(client_id=secret(settings, "client_id_env"),
                   certificate_id=rest.certificate_id,
                   key=load_private_key(settings.resolve(rest.private_key_file)),
                   token_url=str(rest.token_url), scope=rest.scope, post=client.post_token,
                   clock=clock)


def open_client(settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                ) -> RestClient:
    """A client for the configured account, authenticated; warns of an expiring certificate."""
    problems = config_problems(settings)
    if problems:
        raise ConfigError([(str(settings.path), key, message) for key, message in problems])
    client = RestClient(client_options(settings), sleep=sleep)
    client.auth = authenticator(settings, client)
    warning = certificate_warning(settings)
    if warning:
        log.get("ar_sync.netsuite").warning("netsuite_certificate_expiring", message=warning)
    return client


def certificate_warning(settings: Settings, now: dt.datetime | None = None) -> str | None:
    """The M2M certificate's expiry warning (within 30 days), for logs, `status` and `ping`."""
    rest = settings.model.netsuite.rest
    if rest.auth != "oauth2" or not rest.certificate_file:
        return None
    try:
        return expiry_warning(certificate_expiry(settings.resolve(rest.certificate_file)), now)
    except (OSError, ValueError):
        return None
