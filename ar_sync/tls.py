"""Outbound TLS: certificates are always verified; ``[tls] ca_bundle`` adds CAs to trust.

Every client ar-sync opens — the NetSuite REST session, the SOAP (zeep) transport, the cXML
and Peppol connectors, the alert webhook, and SMTP for e-mail delivery and alerts — takes its
TLS settings from one :class:`TlsPolicy`, so there is one place that decides:

* **Verification is always on.** :func:`TlsPolicy.ssl_context` is ``CERT_REQUIRED`` with host
  name checking; the requests adapter sends every request with ``verify`` on, whatever a
  caller or the environment says (a ``verify`` of False, ``CURL_CA_BUNDLE=""`` or
  ``REQUESTS_CA_BUNDLE=""`` change nothing). No config key turns it off
  (:func:`disabling_keys` rejects the usual spellings with a pointer to ``ca_bundle``).
* **The bundle is added, not substituted.** The certificates in ``ca_bundle`` are trusted in
  addition to the usual roots (the system's, and certifi's for HTTPS), so a bundle holding
  only a company CA or a TLS-inspecting proxy's CA does not break NetSuite's public
  certificate.
* **A verification failure says so.** :func:`verification_failure` turns the error buried in
  requests' or smtplib's exception chain into one sentence naming TLS verification and the
  fix; gateways and connectors raise it as a :class:`~ar_sync.errors.FatalError` (retrying
  cannot help: a person must add the CA or find who is intercepting the connection).

Connectors get the policy under the reserved settings key ``"tls"`` (see
docs/connectors.md) and call :func:`policy_of` then :meth:`TlsPolicy.session` or
:meth:`TlsPolicy.ssl_context`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

SETTINGS_KEY = "tls"  # the reserved key a connector's settings carry the policy under

FIX = ("ar-sync always verifies certificates: if a private CA or a TLS-inspecting proxy "
       "signs this certificate, add that CA with [tls] ca_bundle")

# Keys people write to switch verification off, in any table of the config.
DISABLING_KEYS = frozenset({
    "verify", "verify_ssl", "ssl_verify", "verify_tls", "tls_verify", "verify_certificate",
    "verify_certificates", "verify_cert", "insecure", "insecure_skip_verify", "skip_verify",
    "no_verify", "ssl_no_verify", "check_hostname", "cert_reqs", "disable_ssl_verification",
    "disable_tls_verification", "tls_insecure", "ssl_insecure",
})


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """How ar-sync connects out over TLS: always verified, optionally trusting more CAs."""

    ca_bundle: Path | None = None

    def ssl_context(self, extra_ca: str | Path | None = None) -> ssl.SSLContext:
        """A client context: system roots plus ``ca_bundle`` (and ``extra_ca``), verified."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        for bundle in (self.ca_bundle, extra_ca):
            if bundle:
                context.load_verify_locations(cafile=str(bundle))
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        return context

    def adapter(self, **adapter_kwargs: Any) -> requests.adapters.HTTPAdapter:
        """A requests transport adapter that always verifies against this policy."""
        adapter: requests.adapters.HTTPAdapter = _adapter_class()(self.ssl_context(),
                                                                  **adapter_kwargs)
        return adapter

    def mount(self, session: requests.Session, **adapter_kwargs: Any) -> None:
        """Make ``session`` verify by this policy (for sessions made elsewhere, e.g. zeep's)."""
        adapter = self.adapter(**adapter_kwargs)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.verify = True

    def session(self, **adapter_kwargs: Any) -> requests.Session:
        """A new ``requests.Session`` that verifies by this policy."""
        import requests

        session = requests.Session()
        self.mount(session, **adapter_kwargs)
        return session


DEFAULT = TlsPolicy()


def policy_of(settings: Mapping[str, Any]) -> TlsPolicy:
    """The policy a connector was given (reserved key ``"tls"``); the default without one."""
    found = settings.get(SETTINGS_KEY)
    return found if isinstance(found, TlsPolicy) else DEFAULT


_ADAPTER: type[Any] | None = None


def _adapter_class() -> type[Any]:
    """``VerifyingAdapter``, defined on first use so that ``config check`` needs no requests."""
    global _ADAPTER
    if _ADAPTER is not None:
        return _ADAPTER
    from requests.adapters import HTTPAdapter

    class VerifyingAdapter(HTTPAdapter):
        """Every pool uses the policy's SSL context; ``verify`` can only add CAs, never
        switch verification off (a falsy value is taken as ``True``)."""

        def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
            self._context = context
            super().__init__(**kwargs)

        def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                             **pool_kwargs: Any) -> None:
            pool_kwargs["ssl_context"] = self._context
            super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            proxy_kwargs["ssl_context"] = self._context
            return super().proxy_manager_for(proxy, **proxy_kwargs)

        def send(self, request: Any, stream: bool = False, timeout: Any = None,
                 verify: bool | str = True, cert: Any = None,
                 proxies: dict[str, str] | None = None) -> Any:
            return super().send(request, stream=stream, timeout=timeout,
                                verify=verify or True, cert=cert, proxies=proxies)

        def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
            super().cert_verify(conn, url, verify or True, cert)

    _ADAPTER = VerifyingAdapter
    return _ADAPTER


def verification_failure(exc: BaseException) -> str | None:
    """One sentence naming TLS verification when ``exc`` is (or wraps) a certificate failure."""
    for error in _chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = error.verify_message or error.reason or "certificate verify failed"
            return f"TLS verification failed ({reason}); {FIX}"
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason`` and wrapped args."""
    todo: list[Any] = [exc]
    seen: set[int] = set()
    while todo and len(seen) < 50:
        error = todo.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo.extend([error.__cause__, error.__context__, getattr(error, "reason", None),
                     *error.args])


def disabling_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of keys in the config that try to switch verification off."""
    found: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.extend(disabling_keys(value, path + "."))
        elif isinstance(key, str) and key.lower() in DISABLING_KEYS:
            found.append(path)
    return found


def bundle_problem(path: Path) -> str:
    """Why ``path`` cannot serve as a CA bundle; empty when it can."""
    if path.is_dir():
        return f"{path} is a directory; name one PEM file (concatenate the certificates)"
    if not path.is_file():
        return f"no such file: {path}"
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        return f"{path} holds no PEM certificates ({exc})"
    return ""
