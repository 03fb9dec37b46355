"""The connector example in docs/connectors.md works: it passes the conformance kit against a
fake endpoint on 127.0.0.1 that speaks what the example expects."""

from __future__ import annotations

import json
import re
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ar_sync.errors import FatalError
from ar_sync.testing import ConnectorConformance, sample_invoice

DOC = Path(__file__).resolve().parent.parent / "docs" / "connectors.md"


def example_module() -> types.ModuleType:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    source = next(block for block in code if "class JsonPostConnector" in block)
    module = types.ModuleType("ar_sync_jsonpost")
    exec(compile(source, str(DOC), "exec"), module.__dict__)
    return module


class FakeEndpoint(BaseHTTPRequestHandler):
    store: dict[str, Any] = {}
    token = "test-token"

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._reply(401, {"error": "bad token"})
            return False
        return True

    def do_POST(self) -> None:
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["key"] in self.store:
            self._reply(409, {"error": "invoice already received"})
            return
        self.store[body["key"]] = f"ACME-{len(self.store) + 1}"
        self._reply(201, {"id": self.store[body["key"]]})

    def do_GET(self) -> None:
        if not self._authorised():
            return
        key = self.path.rsplit("/", 1)[-1]
        if key in self.store:
            self._reply(200, {"id": self.store[key]})
        else:
            self._reply(404, {"error": "unknown"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    FakeEndpoint.store = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestDocumentedExample(ConnectorConformance):
    @pytest.fixture
    def connector(self, endpoint: str) -> Any:
        return example_module().JsonPostConnector(
            "acme-portal", {"url": endpoint, "token": SecretStr("test-token")})


def test_the_example_reports_bad_credentials_as_fatal(endpoint: str) -> None:
    conn = example_module().JsonPostConnector("acme", {"url": endpoint,
                                                       "token": SecretStr("wrong")})
    inv = sample_invoice()
    with pytest.raises(FatalError, match="refused our credentials"):
        conn.submit(inv, conn.render(inv))


def test_the_example_validates_its_settings() -> None:
    cls = example_module().JsonPostConnector
    assert cls.validate_settings({"url": "https://x.example.com", "token": "t"}) == []
    problems = dict(cls.validate_settings({"url": "ftp://x", "colour": "red"}))
    assert set(problems) == {"url", "token_env", "colour"}
