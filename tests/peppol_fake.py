"""A loopback Peppol access point API (see ar_sync_peppol's docstring for its shape) that
validates every document it is given and keeps them by our reference."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from ar_sync.documents.validation import UblValidator

TOKEN = "ap-test-token"


class FakeAccessPoint:
    def __init__(self, validator: UblValidator) -> None:
        self.validator = validator
        self.docs: dict[str, dict[str, Any]] = {}
        self.response_xml: dict[str, str] = {}
        self.url = ""

    def post(self, ref: str, body: bytes, token: str) -> tuple[int, dict[str, Any]]:
        if token != f"Bearer {TOKEN}":
            return 401, {"error": "unauthorized"}
        errors = self.validator.errors(body)
        if errors:
            return 422, {"errors": [{"rule": e.split(":")[0], "text": e} for e in errors]}
        if ref in self.docs:
            return 409, {"error": "duplicate"}
        self.docs[ref] = {"id": f"AP-{len(self.docs) + 1:04d}", "status": "sent"}
        return 201, self.docs[ref]

    def get(self, ref: str) -> tuple[int, dict[str, Any]]:
        if ref not in self.docs:
            return 404, {}
        return 200, self.docs[ref] | {"response": self.response_xml.get(ref)}



@contextmanager
def serve_access_point(validator: UblValidator) -> Iterator[FakeAccessPoint]:
    ap = FakeAccessPoint(validator)

    class Handler(BaseHTTPRequestHandler):
        def _ref(self) -> str:
            return parse_qs(urlparse(self.path).query)["reference"][0]

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self._send(*ap.post(self._ref(), body, self.headers.get("Authorization", "")))

        def do_GET(self) -> None:
            self._send(*ap.get(self._ref()))

        def _send(self, code: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    ap.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        yield ap
    finally:
        server.shutdown()
        server.server_close()


