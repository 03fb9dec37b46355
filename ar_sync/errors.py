"""The error tree: every error says what should happen next.

::

    ArSyncError
    ├── ConfigError        bad or missing configuration: exit 2 at start, naming file and key
    ├── TransientError     try again later: timeouts, resets, 429, 5xx without a business answer
    │   └── AmbiguousError the request may have taken effect: look it up before trying again
    ├── RejectedError      permanent for this invoice: hold it for a person (carries the reason)
    └── FatalError         stop the cycle and alert: authentication, a connector that won't load

Gateways and connectors only classify; the pipeline catches by branch in one place.
Messages never contain secrets: callers pass field names and record ids, not credentials.
"""

from __future__ import annotations


class ArSyncError(Exception):
    """Base of every error ar-sync raises on purpose."""


class ConfigError(ArSyncError):
    """Raised at start when the configuration is invalid; carries every problem found.

    Each problem is ``(file, key, message)`` so the operator can go straight to the line.
    """

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{file}: {key}: {message}" for file, key, message in self.problems]
        return "invalid configuration:\n  " + "\n  ".join(lines)


class TransientError(ArSyncError):
    """Raised when a call failed in a way that may succeed later (timeout, 429, 5xx)."""


class AmbiguousError(TransientError):
    """Raised when a request was sent but no answer came: it may have taken effect.

    The pipeline must look the result up (by external id, or the channel's status) before
    it tries again, never resend blindly.
    """


class RejectedError(ArSyncError):
    """Raised when the other side refused this one record for a business reason.

    ``code`` is our reason code, ``remote_code``/``field`` what the other side said.
    """

    def __init__(
        self, message: str, *, code: str = "OTHER", remote_code: str = "", field: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.remote_code = remote_code
        self.field = field


class FatalError(ArSyncError):
    """Raised when continuing would be wrong or useless: stop the cycle and alert."""


class DuplicateExternalIdError(RejectedError):
    """Raised by a gateway's raw create when the external id is already taken."""

    def __init__(self, external_id: str) -> None:
        super().__init__(
            f"an invoice with external id {external_id!r} already exists",
            code="DUPLICATE_EXTERNAL_ID",
            field="externalId",
        )
        self.external_id = external_id
