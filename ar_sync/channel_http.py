"""HTTP for channel connectors: requests' failures as ar-sync's errors, the same way for all.

What a failure means for an invoice depends on whether the document may have arrived, and
every HTTP connector (cXML portals, Peppol access points, a connector someone writes next)
must answer that question alike:

* **not sent** — no connection could be made (refused, DNS, connect timeout):
  :class:`~ar_sync.errors.TransientError`; retrying cannot send it twice;
* **maybe arrived** — the request went out and no whole answer came back (read timeout, a
  connection lost after sending, an answer cut off mid-body):
  :class:`~ar_sync.errors.AmbiguousError`; the retry asks the channel's status first;
* **certificate not trusted** — :class:`~ar_sync.errors.FatalError` naming TLS verification:
  nothing was sent, and retrying cannot help until a person adds the CA.

:func:`send` does that for a submission, :func:`status_json` for a status look-up (where
nothing is at stake: every failure there is transient, and 404 means "not there").
"""

from __future__ import annotations

from typing import Any

import requests

from ar_sync.errors import AmbiguousError, FatalError, TransientError
from ar_sync.tls import verification_failure


def send(session: requests.Session, method: str, url: str, *, channel: str, peer: str,
         **kwargs: Any) -> requests.Response:
    """Send a document to ``peer`` (a name for messages: "Coupa", "the access point")."""
    try:
        return session.request(method, url, **kwargs)
    except requests.ConnectTimeout as exc:
        raise TransientError(f"{channel}: cannot connect to {peer}") from exc
    except requests.ConnectionError as exc:
        if (tls := verification_failure(exc)) is not None:  # nothing was sent
            raise FatalError(f"{channel}: {peer}: {tls}") from exc
        if "NewConnectionError" in repr(exc) or "Failed to establish" in str(exc):
            raise TransientError(f"{channel}: {peer} refused the connection") from exc
        raise AmbiguousError(f"{channel}: connection lost after sending") from exc
    except requests.Timeout as exc:
        raise AmbiguousError(f"{channel}: no answer after sending") from exc
    except (requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as exc:  # sent; the answer broke off
        raise AmbiguousError(f"{channel}: the answer was cut off after sending") from exc


def status_json(session: requests.Session, url: str, *, channel: str,
                **kwargs: Any) -> dict[str, Any] | None:
    """GET a status: the JSON object, ``None`` on 404; anything else is transient."""
    try:
        answer = session.get(url, **kwargs)
    except requests.RequestException as exc:
        tls = verification_failure(exc)
        raise TransientError(f"{channel}: status unavailable"
                             + (f": {tls}" if tls else "")) from exc
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise TransientError(f"{channel}: status answered HTTP {answer.status_code}")
    try:
        data = answer.json()
    except ValueError as exc:  # a proxy's page or an answer cut short: ask again later
        raise TransientError(f"{channel}: the status answer is not JSON") from exc
    if not isinstance(data, dict):
        raise TransientError(f"{channel}: the status answer is not a JSON object")
    return data
