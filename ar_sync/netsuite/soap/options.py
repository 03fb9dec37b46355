"""``[netsuite.soap]``: what the config must hold, and the options built from it.

No zeep here: ``ar-sync config check`` validates a SOAP config without loading the WSDL.
Every NetSuite namespace is derived from ``version`` (``urn:messages_2023_2.platform…``),
so moving to another endpoint version is a config change, not a code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ar_sync.errors import ConfigError
from ar_sync.netsuite.soap.passport import TokenCredentials
from ar_sync.tls import DEFAULT as DEFAULT_TLS
from ar_sync.tls import TlsPolicy

if TYPE_CHECKING:
    from ar_sync.config import Settings

SECRETS = ("consumer_key_env", "consumer_secret_env", "token_id_env", "token_secret_env")
VERSION = re.compile(r"^20[0-9]{2}_[12]$")
ACCOUNT = re.compile(r"^[0-9A-Za-z]+(_SB[0-9]+|_RP[0-9]*)?$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class SoapOptions:
    """Everything the SOAP client needs, resolved (paths absolute, secrets read)."""

    endpoint: str
    wsdl: str  # a URL or an absolute path
    version: str
    credentials: TokenCredentials
    cache_dir: Path
    page_size: int = 1000
    add_batch_size: int = 200
    initialize_batch_size: int = 200
    get_batch_size: int = 1000
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_attempts: int = 5
    unexpected_error_attempts: int = 2
    backoff: float = 1.0
    backoff_cap: float = 30.0
    tls: TlsPolicy = DEFAULT_TLS  # always verified; [tls] ca_bundle adds CAs


def config_problems(settings: Settings) -> list[tuple[str, str]]:
    """Every problem of the SOAP section as ``(key, message)``; empty when usable."""
    soap = settings.model.netsuite.soap
    out: list[tuple[str, str]] = []
    if soap.endpoint is None:
        out.append(("netsuite.soap.endpoint", "required when netsuite.api = \"soap\": the "
                    "account's service URL, https://<ACCOUNT>.suitetalk.api.netsuite.com/"
                    "services/NetSuitePort_<version>"))
    elif (problem := _https(str(soap.endpoint))):
        out.append(("netsuite.soap.endpoint", problem))
    if not soap.wsdl:
        out.append(("netsuite.soap.wsdl", "required: the WSDL's URL or a local path"))
    elif soap.wsdl.startswith(("http://", "https://")):
        if (problem := _https(soap.wsdl)):
            out.append(("netsuite.soap.wsdl", problem))
    elif not settings.resolve(soap.wsdl).is_file():
        out.append(("netsuite.soap.wsdl", f"no such file: {settings.resolve(soap.wsdl)}"))
    if not VERSION.match(soap.version):
        out.append(("netsuite.soap.version", f"{soap.version!r} is not an endpoint version "
                    "such as \"2023_2\" or \"2025_2\""))
    if not ACCOUNT.match(account_id(settings)):
        out.append(("netsuite.soap.account_id", f"{account_id(settings)!r}: spell the account "
                    "id exactly as NetSuite shows it in credentials, e.g. 1234567 or "
                    "1234567_SB1 (upper-case SB)"))
    out += [(f"netsuite.soap.{key}", "required when netsuite.api = \"soap\" (names the "
             "environment variable holding it)") for key in SECRETS
            if getattr(soap, key) is None]
    return out


def _https(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        return "must be https (plain http only to 127.0.0.1 or localhost, for tests)"
    return ""


def account_id(settings: Settings) -> str:
    """``[netsuite.soap] account_id``, else ``[netsuite] account_id``."""
    return settings.model.netsuite.soap.account_id or settings.model.netsuite.account_id


def soap_options(settings: Settings) -> SoapOptions:
    """The options of a validated config; raises ConfigError on any problem."""
    problems = config_problems(settings)
    if problems:
        raise ConfigError([(str(settings.path), key, message) for key, message in problems])
    soap = settings.model.netsuite.soap

    def secret(key: str) -> str:
        return settings.secrets[f"netsuite.soap.{key}"].get_secret_value()

    wsdl = soap.wsdl if soap.wsdl.startswith(("http://", "https://")) else str(
        settings.resolve(soap.wsdl))
    cache = (settings.resolve(soap.cache_dir) if soap.cache_dir
             else settings.state_path.parent / "netsuite-wsdl")
    return SoapOptions(
        endpoint=str(soap.endpoint), wsdl=wsdl, version=soap.version,
        credentials=TokenCredentials(account_id(settings), secret("consumer_key_env"),
                                     secret("consumer_secret_env"), secret("token_id_env"),
                                     secret("token_secret_env")),
        cache_dir=cache, page_size=soap.page_size, add_batch_size=soap.add_batch_size,
        initialize_batch_size=soap.initialize_batch_size, get_batch_size=soap.get_batch_size,
        connect_timeout=soap.connect_timeout_seconds,
        read_timeout=settings.model.netsuite.timeout_seconds, max_attempts=soap.max_attempts,
        unexpected_error_attempts=soap.unexpected_error_attempts,
        backoff=soap.backoff_seconds, backoff_cap=soap.backoff_cap_seconds,
        tls=settings.tls_policy)
