"""The public connector contract: how an invoice reaches a customer's channel.

A connector renders an invoice into the channel's document, submits it, and can re-read
the status of a submission so that a crash between sending and recording is reconciled
rather than resent. A connector never retries and never touches the state store: it
returns a :class:`~ar_sync.models.DeliveryOutcome` or raises from the error tree
(``TransientError``, ``AmbiguousError`` when the document may have arrived, ``FatalError``
when the channel is unusable).

Connectors are found through the entry-point group ``ar_sync.connectors``; the object
registered is a class implementing :class:`ConnectorFactory`. A third party ships one by
installing a package with such an entry point (see docs/connectors.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from ar_sync.errors import FatalError
from ar_sync.models import DeliveryOutcome, Invoice

if TYPE_CHECKING:
    from ar_sync.config import Settings

GROUP = "ar_sync.connectors"


class RejectionReason(StrEnum):
    """Why a channel refused an invoice, in one taxonomy shared by every channel.

    A connector maps its portal's own codes onto these (keeping the portal's code and text
    in ``remote_code``/``remote_text``); the remediation playbook acts on them.
    """

    MISSING_PO = "MISSING_PO"  # no PO where the buyer needs one
    INVALID_PO = "INVALID_PO"  # unknown, closed, or not this supplier's PO (or PO line)
    PO_OVER_INVOICED = "PO_OVER_INVOICED"  # more than the PO has left
    DUPLICATE = "DUPLICATE"  # the portal already has this invoice number
    FORMAT_ERROR = "FORMAT_ERROR"  # the document does not parse or validate
    TAX_ERROR = "TAX_ERROR"  # tax amounts, rates or tax ids
    ADDRESS_MISMATCH = "ADDRESS_MISMATCH"  # remit-to or bill-to does not match
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # price, quantity or totals differ from the PO
    AUTHENTICATION = "AUTHENTICATION"  # credentials refused
    CHANNEL_NOT_ENABLED = "CHANNEL_NOT_ENABLED"  # the portal does not take invoices from us
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class Document:
    """A rendered invoice: the exact bytes that go to the channel (stored for audit)."""

    key: str
    media_type: str
    filename: str
    body: bytes
    attachments: tuple[tuple[str, bytes], ...] = ()


class Connector(Protocol):
    """One configured delivery channel."""

    channel: str

    def render(self, invoice: Invoice) -> Document:
        """The channel's document for ``invoice``; pure and deterministic."""
        ...

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        """Send ``document``; the outcome says accepted, pending or rejected (and why)."""
        ...

    def status(self, key: str) -> DeliveryOutcome | None:
        """What the channel knows of a submission for ``key``; ``None`` if it has none."""
        ...


class ConnectorFactory(Protocol):
    """What an entry point names: builds connectors and validates their settings."""

    def __call__(self, channel: str, settings: Mapping[str, Any]) -> Connector: ...

    def validate_settings(self, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with a channel's settings as ``(key, message)``; empty when fine."""
        ...


class ConnectorLoadError(FatalError):
    """Raised when the config names a connector that is not installed or won't load."""


def load_factory(name: str) -> ConnectorFactory:
    """The connector class registered under ``name``, with a clear error if there is none."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConnectorLoadError(f"unknown connector {name!r} (installed: {known})")
    try:
        factory: ConnectorFactory = found[name].load()
    except Exception as exc:  # a broken plugin must not take the config check down
        raise ConnectorLoadError(f"connector {name!r} failed to load: {exc}") from exc
    return factory


def validate_channel(settings: Settings, channel: str) -> list[tuple[str, str]]:
    """Problems with one ``[channels.<name>]`` table, as the connector sees them."""
    factory = load_factory(settings.model.channels[channel].connector)
    return factory.validate_settings(settings.channel_settings(channel))


def open_connector(settings: Settings, channel: str) -> Connector:
    """Build the connector for a configured channel."""
    factory = load_factory(settings.model.channels[channel].connector)
    # every connector also receives the issuer ([seller]) under the reserved key "seller",
    # and how to connect out over TLS ([tls], an ar_sync.tls.TlsPolicy) under "tls"
    return factory(channel, settings.channel_settings(channel)
                   | {"seller": settings.model.seller.model(), "tls": settings.tls_policy})


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_filename(key: str) -> str:
    """A file name for a unit key (``so:12:2026-11-01`` -> ``so_12_2026-11-01``)."""
    return _UNSAFE.sub("_", key)
