"""Asynchronous cXML StatusUpdateRequest messages (rejected, reconciled, paid …) from a
portal, received by a small HTTP endpoint the daemon runs, and recorded against the invoice.

Enabled per channel with ``status_listen = "127.0.0.1:8088"``; put it behind the TLS proxy
the portal is allowed to reach. Each request is parsed with the network off and answered as
cXML requires: a Response with Status 200 when recorded, 400 for a document that is not a
StatusUpdateRequest. The update is an event on the unit found by our key (the
``ar-sync-key`` extrinsic, when the portal echoes it) or by the NetSuite invoice number; a
``rejected`` invoice status also holds the unit for a person.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ar_sync import log
from ar_sync.config import Settings
from ar_sync.documents.cxml import StatusUpdate, parse_status_update, response
from ar_sync.store import State, Store

MAX_BODY = 1_000_000


def record_status_update(store: Store, channel: str, update: StatusUpdate) -> str | None:
    """Record ``update`` against its unit; the unit key, or None when no unit matches."""
    row = store.unit(update.key) if update.key else None
    if row is None and update.invoice_id:
        found = store.rows("SELECT key FROM units WHERE tran_id = ? OR key = ?",
                           (update.invoice_id, update.invoice_id))
        row = store.unit(found[0]["key"]) if found else None
    key = row["key"] if row is not None else None
    detail = {"channel": channel, "invoice_id": update.invoice_id, "code": update.status_code,
              "text": update.status_text, "invoice_status": update.invoice_status,
              "comments": update.comments, "payload_id": update.payload_id}
    with store.transaction():
        store.event(key, "portal_status", actor=channel, **detail)
        if key is not None and update.invoice_status == "rejected":
            reason = f"channel.portal_rejected: {update.comments or update.status_text}"[:200]
            store.set_state(key, State.HELD, hold_stage="delivery", hold_reason=reason)
    return key


class StatusListener:
    """An HTTP server in a thread that takes StatusUpdateRequests for one channel."""

    def __init__(self, state_path: Path, channel: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.channel = channel
        self.state_path = state_path
        self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.2,),
                                       name=f"cxml-status-{channel}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StatusListener:
        self.thread.start()
        log.get("ar_sync.cxml_listener").info("status_listener_started", channel=self.channel,
                                              url=self.url)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, body: bytes) -> tuple[int, bytes]:
        try:
            update = parse_status_update(body)
        except ValueError as exc:
            return 400, response(400, "Bad Request", str(exc)[:200])
        store = Store.open(self.state_path)
        try:
            key = record_status_update(store, self.channel, update)
        finally:
            store.close()
        log.get("ar_sync.cxml_listener").info("portal_status", key=key, channel=self.channel,
                                              invoice_status=update.invoice_status)
        return 200, response(200, "OK", "" if key else "recorded; no matching invoice")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    code, body = 413, response(413, "Request Entity Too Large")
                else:
                    code, body = listener.handle(self.rfile.read(length))
                self.send_response(200 if code == 200 else code)
                self.send_header("Content-Type", "text/xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def start_listeners(settings: Settings) -> list[StatusListener]:
    """One listener per channel that sets ``status_listen``."""
    out = []
    for name, section in settings.model.channels.items():
        address = (section.model_extra or {}).get("status_listen")
        if address:
            out.append(StatusListener(settings.state_path, name, str(address)).start())
    return out
