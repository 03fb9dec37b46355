"""Configuration: one TOML file, validated completely at start.

Found by ``--config``, then ``$AR_SYNC_CONFIG``, then ``./config/ar-sync.toml``. Relative
paths in the file are relative to the file's own directory, so a config directory can be
moved as a whole. Secrets never live in the file: a key ending in ``_env`` names the
environment variable that holds the secret, and validation checks that it is set.

Every problem is reported at once (unknown keys, wrong types, bad URLs, missing secrets,
unknown connectors), each as ``file: key: message``; :class:`ConfigError` carries them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from ar_sync.errors import ConfigError
from ar_sync.log import register_secrets
from ar_sync.models import Address, CustomerRequirements, Seller
from ar_sync.tls import FIX as TLS_FIX
from ar_sync.tls import TlsPolicy, bundle_problem, disabling_keys

ENV_VAR = "AR_SYNC_CONFIG"
DEFAULT_PATH = Path("config/ar-sync.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetSuiteRest(_Section):
    """The REST gateway (``api = "rest"``); required keys are checked by
    :func:`ar_sync.netsuite.rest.options.config_problems` when it is selected."""

    base_url: AnyHttpUrl | None = None
    token_url: AnyHttpUrl | None = None
    auth: Literal["oauth2", "tba"] = "oauth2"
    client_id_env: str | None = None  # OAuth 2.0 M2M
    certificate_id: str = ""
    private_key_file: str = ""
    certificate_file: str = ""
    scope: str = "rest_webservices"
    consumer_key_env: str | None = None  # TBA
    consumer_secret_env: str | None = None
    token_id_env: str | None = None
    token_secret_env: str | None = None
    concurrency: int = Field(default=2, ge=1, le=100)
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=4, ge=1, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    backoff_cap_seconds: float = Field(default=30.0, ge=0, le=600)


class NetSuiteSoap(_Section):
    """The SOAP gateway (``api = "soap"``); required keys are checked by
    :func:`ar_sync.netsuite.soap.options.config_problems` when it is selected."""

    endpoint: AnyHttpUrl | None = None
    wsdl: str = ""
    version: str = "2023_2"
    account_id: str = ""  # default: [netsuite] account_id
    consumer_key_env: str | None = None
    consumer_secret_env: str | None = None
    token_id_env: str | None = None
    token_secret_env: str | None = None
    page_size: int = Field(default=1000, ge=5, le=1000)
    add_batch_size: int = Field(default=200, ge=1, le=200)
    initialize_batch_size: int = Field(default=200, ge=1, le=1000)
    get_batch_size: int = Field(default=1000, ge=1, le=1000)
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=5, ge=1, le=15)
    unexpected_error_attempts: int = Field(default=2, ge=1, le=5)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    backoff_cap_seconds: float = Field(default=30.0, ge=0, le=600)
    cache_dir: str = ""


class NetSuiteSection(_Section):
    api: Literal["sandbox", "rest", "soap"] = "sandbox"
    account_id: str = "SANDBOX"
    sandbox_file: str = "sandbox.db"
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    rest: NetSuiteRest = NetSuiteRest()
    soap: NetSuiteSoap = NetSuiteSoap()


class StateSection(_Section):
    path: str = "ar-sync.db"


class BillingSection(_Section):
    timezone: str = "UTC"
    # 200 keeps memory flat however many orders are due; over REST or SOAP set 1000 (one
    # SuiteQL page or search page), which keeps the account's request pool busy
    batch_size: int = Field(default=200, ge=1, le=1000)
    duplicate_lookback_days: int = Field(default=400, ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class ScheduleSection(_Section):
    # minutes; fractions are allowed (0.5 = every 30 s), for trials and tests
    interval_minutes: float | None = Field(default=None, gt=0)
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"cron {value!r} must have 5 fields (minute hour day month weekday)")
        return value


class RequirementsSection(_Section):
    library: str = "customers.toml"


class DeliverySection(_Section):
    default_channel: str = "email"


class RetrySection(_Section):
    """Backoff for transient failures: in-call (seconds) and across cycles (persisted)."""

    in_call_attempts: int = Field(default=3, ge=1, le=10)
    in_call_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    base_seconds: int = Field(default=60, ge=1)
    cap_seconds: int = Field(default=3600, ge=1)
    max_attempts: int = Field(default=8, ge=1)
    # Circuit breakers (NetSuite, each channel): open after this many consecutive transient
    # failures, stay open this long, then let one probe through.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: int = Field(default=300, ge=1)


class HealthSection(_Section):
    """The daemon's /healthz and Prometheus /metrics endpoint (off unless ``listen`` is set)."""

    listen: str | None = None  # host:port, e.g. 127.0.0.1:9109

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", value):
            raise ValueError(f"use host:port, e.g. 127.0.0.1:9109 (got {value!r})")
        return value


class AlertEmail(_Section):
    """SMTP for alerts to the on-call mailbox (STARTTLS; password from the environment)."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str = ""
    password_env: str = ""
    sender: str
    to: list[str]
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)


class AlertsSection(_Section):
    """Where alerts go: new holds and escalations, channels that stop working, failed cycles.

    Batched: one message per cycle. Deduplicated: the same problem alerts at most once per
    ``dedup_hours``.
    """

    # Slack or Teams incoming webhook (JSON "text"). Its URL is a credential (whoever has it
    # can post to the channel): prefer webhook_url_env, which keeps it out of the file and
    # masks it everywhere; webhook_url is for endpoints that are not secret.
    webhook_url: AnyHttpUrl | None = None
    webhook_url_env: str | None = None
    email: AlertEmail | None = None
    dedup_hours: float = Field(default=24.0, ge=0)
    timeout_seconds: float = Field(default=15.0, gt=0, le=120)


class RetentionSection(_Section):
    """How long attempt payloads are kept (docs/operations.md, "Retention").

    Evidence (the documents sent and the answers received) for ``evidence_days``; the
    transport log (what a failed try sent and the error it met) for ``transport_days``.
    Only units in a final state (delivered, resolved) are pruned; rows, metadata and the
    event history are kept.
    """

    evidence_days: int = Field(default=2557, ge=1, le=36525)  # 7 years
    transport_days: int = Field(default=90, ge=1, le=36525)


class TlsSection(_Section):
    """Outbound TLS: always verified; ``ca_bundle`` (PEM) adds CAs to trust (see ar_sync/tls.py)."""

    ca_bundle: str = ""


class LoggingSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class ChecksSection(_Section):
    """Settings of the review checklist that are the seller's, not a customer's."""

    # US states where the seller has nexus: a taxable line there must not go out untaxed.
    nexus_states: list[str] = []
    # Invoices dated on or before this day fall in a closed accounting period.
    periods_closed_through: dt.date | None = None
    # The OS user the service runs as: it may never approve an override.
    service_user: str = "ar-sync"

    @field_validator("nexus_states")
    @classmethod
    def _states(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not re.fullmatch(r"[A-Z]{2}", s)]
        if bad:
            raise ValueError(f"use two-letter state codes, got {bad}")
        return value


class ChannelSection(BaseModel):
    """A delivery channel: a connector plus its own settings (validated by the connector).

    ``profile`` says what the channel demands of an invoice before it is sent (PO line
    numbers and units for cXML portals, endpoint and buyer reference for Peppol, an AP
    address for e-mail), so the checklist can hold what the channel would reject.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    connector: str
    profile: Literal["cxml", "peppol", "email", "none"] = "none"


class AddressSection(_Section):
    addressee: str = ""
    addr1: str = ""
    addr2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = Field(default="US", pattern=r"^[A-Z]{2}$")  # ISO 3166 alpha-2


class SellerSection(_Section):
    """The issuer printed and sent on every document (name, addresses, tax ids, bank)."""

    name: str = "Your Company Inc."
    address: AddressSection = AddressSection()
    remit_to: AddressSection | None = None  # defaults to address
    vat_id: str = ""
    tax_id: str = ""
    peppol_id: str = Field(default="", pattern=r"^([0-9]{4}:\S+)?$")  # scheme:value
    email: str = ""
    phone: str = ""
    iban: str = ""
    bic: str = ""
    bank_account: str = ""
    bank_routing: str = ""
    bank_name: str = ""
    payment_note: str = ""

    def model(self) -> Seller:
        address = Address(**self.address.model_dump())
        remit = Address(**self.remit_to.model_dump()) if self.remit_to else address
        fields = self.model_dump(exclude={"name", "address", "remit_to"})
        return Seller(name=self.name, address=address, remit_to=remit, **fields)


PlaybookAction = Literal["refresh_po", "check_status", "stop_channel", "hold_defect", "hold"]


class PlaybookSection(_Section):
    """What to do when a channel rejects an invoice, by reason (see ar_sync/playbook.py)."""

    missing_po: PlaybookAction = "refresh_po"
    invalid_po: PlaybookAction = "refresh_po"
    po_over_invoiced: PlaybookAction = "hold"
    duplicate: PlaybookAction = "check_status"
    format_error: PlaybookAction = "hold_defect"
    tax_error: PlaybookAction = "hold"
    address_mismatch: PlaybookAction = "hold"
    amount_mismatch: PlaybookAction = "hold"
    authentication: PlaybookAction = "stop_channel"
    channel_not_enabled: PlaybookAction = "stop_channel"
    other: PlaybookAction = "hold"
    po_request_subject: str = "Purchase order needed for invoice {invoice}"


class FileModel(_Section):
    netsuite: NetSuiteSection = NetSuiteSection()
    state: StateSection = StateSection()
    billing: BillingSection = BillingSection()
    schedule: ScheduleSection = ScheduleSection()
    requirements: RequirementsSection = RequirementsSection()
    delivery: DeliverySection = DeliverySection()
    checks: ChecksSection = ChecksSection()
    retry: RetrySection = RetrySection()
    alerts: AlertsSection = AlertsSection()
    health: HealthSection = HealthSection()
    retention: RetentionSection = RetentionSection()
    tls: TlsSection = TlsSection()
    logging: LoggingSection = LoggingSection()
    channels: dict[str, ChannelSection] = {}
    seller: SellerSection = SellerSection()
    playbook: PlaybookSection = PlaybookSection()


class Settings:
    """The validated configuration, with paths resolved and secrets read from the env."""

    def __init__(self, path: Path, model: FileModel, secrets: dict[str, SecretStr],
                 requirements: dict[str, CustomerRequirements]) -> None:
        self.path = path
        self.base = path.parent
        self.model = model
        self.secrets = secrets
        self.requirements = requirements

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def resolve(self, value: str) -> Path:
        """A path from the file, relative to the file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p)

    @property
    def state_path(self) -> Path:
        return self.resolve(self.model.state.path)

    @property
    def sandbox_path(self) -> Path:
        return self.resolve(self.model.netsuite.sandbox_file)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.model.billing.timezone)

    @property
    def tls_policy(self) -> TlsPolicy:
        """How every outbound TLS client verifies: always, plus ``[tls] ca_bundle``."""
        bundle = self.model.tls.ca_bundle
        return TlsPolicy(self.resolve(bundle) if bundle else None)

    def channel_settings(self, name: str) -> dict[str, Any]:
        """A channel's connector settings with ``*_env`` secrets resolved and paths absolute."""
        section = self.model.channels[name]
        raw = dict(section.model_extra or {})
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key.endswith("_env"):
                secret = self.secrets.get(f"channels.{name}.{key}")
                if secret is not None:  # a missing one is reported by validation already
                    out[key[:-4]] = secret
            elif (key in ("directory", "path") or key.endswith(("_file", "_dir"))) and \
                    isinstance(value, str):
                out[key] = self.resolve(value)
            else:
                out[key] = value
        return out


def find_config(explicit: str | Path | None) -> Path:
    """Where the config is: ``--config``, then ``$AR_SYNC_CONFIG``, then the default."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def load_settings(path: Path, *, check_connectors: bool = True) -> Settings:
    """Read, validate and resolve the config; raise one ConfigError with every problem."""
    name = str(path)
    data = _read_toml(path, name)
    problems: list[tuple[str, str, str]] = []
    secrets = _read_secrets(data, name, problems)
    insecure = disabling_keys(data)  # reported as such, not as "unknown key"
    tls_problems = [(name, key, "TLS certificate verification cannot be turned off; "
                     f"{TLS_FIX}") for key in insecure]
    try:
        model = FileModel.model_validate(data)
    except ValidationError as exc:  # report these with the secrets; cross-checks need a model
        schema = [(name, _loc(e["loc"]), _msg(e)) for e in exc.errors()]
        raise ConfigError([p for p in schema + problems if p[1] not in insecure]
                          + tls_problems) from None
    settings = Settings(path, model, secrets, {})
    if model.tls.ca_bundle and (problem := bundle_problem(settings.resolve(model.tls.ca_bundle))):
        problems.append((name, "tls.ca_bundle", problem))
    if model.retention.transport_days > model.retention.evidence_days:
        problems.append((name, "retention.transport_days",
                         f"{model.retention.transport_days} is longer than "
                         f"retention.evidence_days ({model.retention.evidence_days}): the "
                         "transport log cannot outlive the evidence"))
    hook = secrets.get("alerts.webhook_url_env")
    if model.alerts.webhook_url and model.alerts.webhook_url_env:
        problems.append((name, "alerts.webhook_url_env", "set webhook_url or webhook_url_env, "
                         "not both"))
    elif hook is not None and not re.fullmatch(r"https?://[^\s/]+/\S*",
                                               hook.get_secret_value()):
        problems.append((name, "alerts.webhook_url_env", f"environment variable "
                         f"{model.alerts.webhook_url_env} does not hold an http(s) URL"))
    if model.netsuite.api == "soap":
        from ar_sync.netsuite.soap.options import config_problems as soap_problems

        problems.extend((name, key, message) for key, message in soap_problems(settings))
    elif model.netsuite.api == "rest":
        from ar_sync.netsuite.rest.options import config_problems

        problems.extend((name, key, message) for key, message in config_problems(settings))
    if model.delivery.default_channel not in model.channels:
        problems.append((name, "delivery.default_channel",
                         f"channel {model.delivery.default_channel!r} is not defined "
                         "under [channels]"))
    settings.requirements = _load_requirements(settings, problems)
    if check_connectors:
        _check_connectors(settings, problems)
    problems = [p for p in problems if p[1] not in insecure] + tls_problems
    if problems:
        raise ConfigError(problems)
    return settings


def _read_toml(path: Path, name: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([(name, "-", "file not found (set --config or AR_SYNC_CONFIG, "
                            "or run `ar-sync demo` to create one)")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(name, "-", f"not valid TOML: {exc}")]) from None


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "-"


def _msg(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"{error['msg']}{shown}"


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _read_secrets(data: Mapping[str, Any], name: str,
                  problems: list[tuple[str, str, str]]) -> dict[str, SecretStr]:
    """Resolve every ``*_env`` key anywhere in the file to its environment value."""
    secrets: dict[str, SecretStr] = {}
    for key, var in _env_keys(data, ""):
        if not isinstance(var, str) or not _ENV_NAME.match(var):
            # never echo the value: a secret pasted here by mistake must not be printed
            problems.append((name, key, "must name an environment variable (letters, digits "
                             "and _), not hold a value; put secrets in the environment"))
        elif not os.environ.get(var):
            problems.append((name, key,
                             f"environment variable {var} is not set (it holds a secret)"))
        else:
            value = os.environ[var]
            secrets[key] = SecretStr(value)
            register_secrets([value, *_url_parts(value)])  # masked in every line and store
    return secrets


def _url_parts(value: str) -> list[str]:
    """The parts of a secret URL that libraries quote on their own (a webhook's token path:
    requests' errors say ``url: /services/T0/B0/XXXX`` without the host)."""
    if not re.match(r"https?://", value):
        return []
    parts = urlsplit(value)
    return [p for p in (parts.path, parts.query) if len(p) >= 8]


def _env_keys(data: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.extend(_env_keys(value, path + "."))
        elif key.endswith("_env"):
            found.append((path, value))
    return found


def _load_requirements(settings: Settings,
                       problems: list[tuple[str, str, str]]) -> dict[str, CustomerRequirements]:
    from ar_sync.requirements import load_library

    path = settings.resolve(settings.model.requirements.library)
    library, errors = load_library(path, set(settings.model.channels))
    problems.extend(errors)
    return library


def _check_connectors(settings: Settings, problems: list[tuple[str, str, str]]) -> None:
    from ar_sync.connector import ConnectorLoadError, validate_channel

    for channel in settings.model.channels:
        try:
            for key, message in validate_channel(settings, channel):
                problems.append((str(settings.path), f"channels.{channel}.{key}", message))
        except ConnectorLoadError as exc:
            problems.append((str(settings.path), f"channels.{channel}.connector", str(exc)))
