"""A loopback fake of NetSuite's SuiteTalk SOAP port, for tests and the benchmark.

A real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1, port 0) over NetSuite's real WSDL:

* every request's header and body elements are validated with lxml against the real XSDs
  (compiled once per process and WSDL directory: it takes seconds); an invalid request is
  answered with a ``soapenv:Client`` fault and recorded in ``invalid``;
* the token passport is checked as NetSuite does: account spelled exactly, HMAC-SHA256
  signature, a nonce never seen before, a timestamp within five minutes, and no
  ``applicationInfo`` beside it (``InvalidCredentialsFault`` otherwise);
* answers are built with zeep from the WSDL's own types and validated against the XSDs too
  (``invalid_responses`` must stay empty); faults are shaped as NetSuite shapes them
  (``soapenv:Server.userException``, ``detail/platformFaults:*Fault/code+message``);
* search pages are served by ``searchMoreWithId`` from a stored search id; ``get`` reads
  one record, ``update`` sets an invoice's ``otherRefNum`` through the sandbox;
* injectable: faults per operation (concurrency, ``UnexpectedErrorFault``, invalid
  credentials, HTTP 5xx, slow answers), an ``addList`` record limit
  (``ExceededRecordCountFault``), expired search ids, empty pages in the middle, and
  per-record results by external id (an error code and message, or ``afterSubmitFailed``).

Data lives in a sandbox account file (:mod:`netsuite_soap_fake_data`).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import os
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import zeep
from lxml import etree
from netsuite_soap_fake_data import Refused, SoapAccount

from ar_sync.netsuite.soap.client import SETTINGS, namespaces

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "1234567_SB1"
SECRETS = {"consumer_key": "ck-" + "a1" * 16, "consumer_secret": "cs-" + "b2" * 16,
           "token_id": "ti-" + "c3" * 16, "token_secret": "ts-" + "d4" * 16}
ENV = {f"AR_SYNC_TEST_SOAP_{k.upper()}": v for k, v in SECRETS.items()}
SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_SCHEMAS: dict[str, etree.XMLSchema] = {}
_CLIENTS: dict[str, zeep.Client] = {}
_LOCK = threading.Lock()


def wsdl_dir() -> Path:
    """``../shared/netsuite-wsdl/2023_2`` beside the repository: skipped when missing,
    except under CI (``CI=true``), where a missing WSDL fails the run."""
    path = ROOT.parent / "shared" / "netsuite-wsdl" / "2023_2"
    if not (path / "netsuite.wsdl").is_file():
        reason = f"NetSuite's 2023_2 WSDL is not at {path} (the shared/ directory)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def schema(directory: Path) -> etree.XMLSchema:
    """The XSDs of a WSDL directory as one lxml schema (a wrapper importing each)."""
    key = str(directory)
    with _LOCK:
        if key not in _SCHEMAS:
            imports = []
            for path in sorted(glob.glob(str(directory / "xsd" / "*.xsd"))):
                ns = re.search(r'targetNamespace="([^"]+)"', Path(path).read_text())
                assert ns, path
                imports.append(f'<xsd:import namespace="{ns[1]}" '
                               f'schemaLocation="{Path(path).as_uri()}"/>')
            wrapper = ('<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                       'targetNamespace="urn:ar-sync-test:all">' + "".join(imports)
                       + "</xsd:schema>")
            _SCHEMAS[key] = etree.XMLSchema(etree.fromstring(wrapper.encode(), _PARSER))
        return _SCHEMAS[key]


def wsdl_client(path: Path) -> zeep.Client:
    with _LOCK:
        if str(path) not in _CLIENTS:
            _CLIENTS[str(path)] = zeep.Client(str(path), settings=SETTINGS)
        return _CLIENTS[str(path)]


@dataclass
class Injected:
    """What to do to the next ``times`` requests of ``operation`` ("any" for all):
    ``concurrency``, ``unexpected``, ``credentials``, ``http503``, ``slow`` (answer after
    ``delay`` seconds), ``expire`` (searchMoreWithId: the search id has expired)."""

    operation: str
    kind: str
    times: int = 1
    delay: float = 0.0


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    passports: list[tuple[str, int]] = field(default_factory=list)
    records: Counter[str] = field(default_factory=Counter)  # records sent per operation


class FakeSoap:
    """The SOAP port over one sandbox account file; a context manager serving on 127.0.0.1."""

    def __init__(self, account_path: Path, *, wsdl: Path | None = None, version: str = "2023_2",
                 validate_responses: bool = True) -> None:
        directory = wsdl or wsdl_dir()
        self.wsdl_path = directory / "netsuite.wsdl"
        self.version = version
        self.schema = schema(directory)
        self.client = wsdl_client(self.wsdl_path)
        self.ns = namespaces(version)
        self.binding = self.client.wsdl.bindings[f"{{{self.ns['platform']}}}NetSuiteBinding"]
        self.account = SoapAccount(account_path, self.client, version)
        self.validate_responses = validate_responses
        self.faults: list[Injected] = []
        self.record_errors: dict[str, tuple[str, str]] = {}  # externalId -> (code, message)
        self.after_submit_failed: set[str] = set()
        self.max_add_records = 200
        self.updates: list[tuple[str, str, list[str]]] = []  # (record type, id, fields sent)
        self.empty_pages: set[int] = set()  # page indexes answered empty (records come later)
        self.stats = Stats()
        self.invalid: list[str] = []
        self.invalid_responses: list[str] = []
        self._nonces: set[str] = set()
        self._searches: dict[str, tuple[str, list[str], bool, int]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{base}/services/NetSuitePort_{version}"
        self.wsdl_url = f"{base}/wsdl/netsuite.wsdl"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> FakeSoap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.account.close()

    # -- the wire -------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        operation = handler.headers.get("SOAPAction", "").strip('"')
        with self._lock:
            self.stats.requests[operation] += 1
        status, payload = self.answer(operation, body)
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _take(self, operation: str) -> Injected | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.operation in ("any", operation):
                    fault.times -= 1
                    return fault
        return None

    def answer(self, operation: str, body: bytes) -> tuple[int, bytes]:
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as exc:
            return 500, self.fault("Client", f"not XML: {exc}", None)
        header = envelope.find(f"{{{SOAPENV}}}Header")
        parts = [*(header if header is not None else []),
                 *envelope.find(f"{{{SOAPENV}}}Body")]
        for element in parts:
            if not self.schema.validate(element):
                self.invalid.append(f"{operation}: {self.schema.error_log.last_error}")
                return 500, self.fault("Client", "org.xml.sax.SAXException: "
                                       f"{self.schema.error_log.last_error}", None)
        injected = self._take(operation)
        if injected is not None and injected.kind == "slow":
            time.sleep(injected.delay)
        elif injected is not None and injected.kind == "http503":
            return 503, b"<html><body>503 Service Unavailable</body></html>"
        elif injected is not None and injected.kind in _FAULTS:
            return 500, self.fault("Server.userException", "", _FAULTS[injected.kind])
        names = {etree.QName(e).localname: e for e in parts}
        if "applicationInfo" in names:
            return 500, self.fault("Server.userException", "", (
                "invalidCredentialsFault", "USER_ERROR", "Ambiguous authentication"))
        if not self._passport_ok(names.get("tokenPassport")):
            return 500, self.fault("Server.userException", "", (
                "invalidCredentialsFault", "INVALID_LOGIN_CREDENTIALS", "Invalid login attempt."))
        message = self.binding.get(operation).input.deserialize(envelope)
        try:
            result = self.dispatch(operation, message.body, message.header,
                                   injected.kind if injected else "")
        except _Fault as exc:
            return 500, self.fault("Server.userException", "", exc.args[0])
        return 200, self.serialize(operation, result)

    def _passport_ok(self, element: Any) -> bool:
        if element is None:
            return False
        core = self.ns["core"]
        get = {k: element.findtext(f"{{{core}}}{k}") or "" for k in
               ("account", "consumerKey", "token", "nonce", "timestamp", "signature")}
        base = "&".join(get[k] for k in ("account", "consumerKey", "token", "nonce",
                                         "timestamp"))
        key = f"{SECRETS['consumer_secret']}&{SECRETS['token_secret']}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(),
                                             hashlib.sha256).digest()).decode()
        with self._lock:
            fresh = get["nonce"] not in self._nonces
            self._nonces.add(get["nonce"])
            self.stats.passports.append((get["nonce"], int(get["timestamp"] or 0)))
        return (fresh and get["account"] == ACCOUNT
                and get["consumerKey"] == SECRETS["consumer_key"]
                and get["token"] == SECRETS["token_id"]
                and abs(time.time() - int(get["timestamp"] or 0)) < 300
                and hmac.compare_digest(expected, get["signature"]))

    def serialize(self, operation: str, result: Any) -> bytes:
        output = self.binding.get(operation).output
        [(part, _)] = output.body.type.elements
        envelope = output.serialize(**{part: result}).content
        if self.validate_responses:
            element = envelope.find(f"{{{SOAPENV}}}Body")[0]
            if not self.schema.validate(element):
                self.invalid_responses.append(f"{operation}: {self.schema.error_log.last_error}")
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")

    def fault(self, code: str, text: str, detail: tuple[str, str, str] | None) -> bytes:
        """A SOAP fault as NetSuite shapes it; its detail validated against the XSDs."""
        env = etree.Element(f"{{{SOAPENV}}}Envelope", nsmap={"soapenv": SOAPENV})
        fault = etree.SubElement(etree.SubElement(env, f"{{{SOAPENV}}}Body"),
                                 f"{{{SOAPENV}}}Fault")
        etree.SubElement(fault, "faultcode").text = f"soapenv:{code}"
        etree.SubElement(fault, "faultstring").text = detail[2] if detail else text
        if detail is not None:
            name, fault_code, message = detail
            faults = self.ns["faults"]
            holder = etree.SubElement(etree.SubElement(fault, "detail"), f"{{{faults}}}{name}",
                                      nsmap={"platformFaults": faults})
            etree.SubElement(holder, f"{{{faults}}}code").text = fault_code
            etree.SubElement(holder, f"{{{faults}}}message").text = message
            if self.validate_responses and not self.schema.validate(holder):
                self.invalid_responses.append(f"fault: {self.schema.error_log.last_error}")
        return etree.tostring(env, xml_declaration=True, encoding="utf-8")

    # -- the operations -------------------------------------------------------------------

    def dispatch(self, operation: str, body: Any, header: Any, injected: str) -> Any:
        a, core, msgs = self.account, self.account.core, self.client.type_factory(
            self.ns["messages"])
        if operation == "search":
            return self.search(body.searchRecord, header.searchPreferences)
        if operation == "searchMoreWithId":
            if injected == "expire" or body.searchId not in self._searches:
                return core.SearchResult(status=self._status("INVALID_JOB_ID",
                                                             "The search has expired."))
            return self.page(body.searchId, body.pageIndex)
        if operation == "getList":
            responses = []
            for ref in body.baseRef:
                record = a.record(str(ref.type), str(ref.internalId or ""))
                responses.append(msgs.ReadResponse(status=core.Status(isSuccess=True),
                                                   record=record) if record is not None else
                                 msgs.ReadResponse(status=self._status(
                                     "RCRD_DSNT_EXIST", "That record does not exist.")))
            return msgs.ReadResponseList(status=core.Status(isSuccess=True),
                                         readResponse=responses)
        if operation == "get":
            ref = body.baseRef
            record = a.record(str(ref.type), str(ref.internalId or ""))
            return (msgs.ReadResponse(status=core.Status(isSuccess=True), record=record)
                    if record is not None else msgs.ReadResponse(status=self._status(
                        "RCRD_DSNT_EXIST", "That record does not exist.")))
        if operation == "update":
            return self.update(body.record)
        if operation == "initializeList":
            responses = []
            for item in body.initializeRecord:
                try:
                    record = a.initialize(str(item.reference.internalId))
                    responses.append(msgs.ReadResponse(status=core.Status(isSuccess=True),
                                                       record=record))
                except Refused as exc:
                    responses.append(msgs.ReadResponse(status=self._status(exc.code,
                                                                           exc.message)))
            return msgs.ReadResponseList(status=core.Status(isSuccess=True),
                                         readResponse=responses)
        if operation == "addList":
            if len(body.record) > self.max_add_records:
                raise _Fault(("exceededRecordCountFault", "MAX_RCRDS_EXCEEDED",
                              f"The maximum number of records is {self.max_add_records}."))
            with self._lock:
                self.stats.records["addList"] += len(body.record)
            return msgs.WriteResponseList(status=core.Status(isSuccess=True),
                                          writeResponse=[self.add(r) for r in body.record])
        raise _Fault(("unexpectedErrorFault", "UNEXPECTED_ERROR",
                      f"{operation} is not served by the fake"))

    def add(self, record: Any) -> Any:
        core, msgs = self.account.core, self.client.type_factory(self.ns["messages"])
        key = str(record.externalId or "")
        if key in self.record_errors:
            code, message = self.record_errors[key]
            return msgs.WriteResponse(status=self._status(code, message))
        try:
            with self._lock:
                invoice = self.account.add_invoice(record)
        except Refused as exc:
            return msgs.WriteResponse(status=self._status(exc.code, exc.message))
        ref = core.RecordRef(internalId=invoice.netsuite_id, externalId=key, type="invoice")
        if key in self.after_submit_failed:
            return msgs.WriteResponse(status=self._status(
                "USER_ERROR", "An afterSubmit script failed: TypeError", after_submit=True),
                baseRef=ref)
        return msgs.WriteResponse(status=core.Status(isSuccess=True), baseRef=ref)

    def update(self, record: Any) -> Any:
        """``update`` of an invoice's ``otherRefNum`` (the one update ar-sync makes), through
        the sandbox; the fields sent are kept in ``updates`` for tests to look at."""
        core, msgs = self.account.core, self.client.type_factory(self.ns["messages"])
        kind = record._xsd_type.name if hasattr(record, "_xsd_type") else type(record).__name__
        internal_id = str(record.internalId or "")
        sent = sorted(k for k, v in record.__values__.items() if v is not None)
        with self._lock:
            self.updates.append((kind, internal_id, sent))
        if kind != "Invoice" or set(sent) - {"internalId", "otherRefNum"}:
            raise _Fault(("unexpectedErrorFault", "UNEXPECTED_ERROR",
                          f"the fake updates only an invoice's otherRefNum, not {kind} {sent}"))
        if self.account.doc("invoices", internal_id) is None:
            return msgs.WriteResponse(status=self._status("RCRD_DSNT_EXIST",
                                                          "That record does not exist."))
        if record.otherRefNum is not None:
            with self._lock:
                self.account.sandbox.set_invoice_po(internal_id, str(record.otherRefNum))
        return msgs.WriteResponse(status=core.Status(isSuccess=True), baseRef=core.RecordRef(
            internalId=internal_id, type="invoice"))

    def _status(self, code: str, message: str, after_submit: bool = False) -> Any:
        core = self.account.core
        return core.Status(isSuccess=False, statusDetail=[core.StatusDetail(
            code=code, message=message, afterSubmitFailed=after_submit or None, type="ERROR")])

    def search(self, record: Any, prefs: Any) -> Any:
        a = self.account
        lines = prefs is not None and prefs.bodyFieldsOnly is False
        size = int(prefs.pageSize) if prefs is not None and prefs.pageSize else 1000
        kind = type(record).__name__ if not hasattr(record, "_xsd_type") else \
            record._xsd_type.name
        if kind == "SalesTaxItemSearchBasic":
            items = [a.tax_item(row) for row in a.tax_rows()]
            return a.core.SearchResult(status=a.core.Status(isSuccess=True),
                                       totalRecords=len(items), pageSize=size,
                                       totalPages=1, pageIndex=1,
                                       recordList=a.core.RecordList(record=items))
        types = list(record.type.searchValue) if record.type is not None else []
        if types == ["_salesOrder"]:
            ids, what = a.order_ids(list(record.status.searchValue)), "salesOrder"
        else:
            ext = ([str(r.externalId) for r in record.externalId.searchValue]
                   if record.externalId is not None else None)
            ents = ([str(r.internalId) for r in record.entity.searchValue]
                    if record.entity is not None else None)
            since = (record.tranDate.searchValue.date().isoformat()
                     if record.tranDate is not None else None)
            ids, what = a.invoice_ids(ext, ents, since), "invoice"
        search_id = f"WEBSERVICES_{ACCOUNT}_{uuid.uuid4().hex}"
        with self._lock:
            self._searches[search_id] = (what, ids, lines, size)
        return self.page(search_id, 1)

    def page(self, search_id: str, index: int) -> Any:
        a = self.account
        what, ids, lines, size = self._searches[search_id]
        pages = max(1, -(-len(ids) // size))
        chosen = [] if index in self.empty_pages else ids[(index - 1) * size:index * size]
        records = [a.record(what, i, lines) for i in chosen]
        return a.core.SearchResult(
            status=a.core.Status(isSuccess=True), totalRecords=len(ids), pageSize=size,
            totalPages=pages, pageIndex=index, searchId=search_id,
            recordList=a.core.RecordList(record=[r for r in records if r is not None]))


class _Fault(Exception):
    """Answer with a NetSuite fault: (detail element, code, message)."""


_FAULTS = {
    "concurrency": ("exceededConcurrentRequestLimitFault", "WS_REQUEST_BLOCKED",
                    "SuiteTalk concurrent request limit exceeded. Request blocked."),
    "unexpected": ("unexpectedErrorFault", "UNEXPECTED_ERROR",
                   "An unexpected error occurred. Error ID: lx9f2k1a1u8c0d2xq7s1"),
    "credentials": ("invalidCredentialsFault", "INVALID_LOGIN_CREDENTIALS",
                    "Invalid login attempt."),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.server.fake.handle(self)  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        """``/wsdl/netsuite.wsdl`` and ``/wsdl/xsd/*.xsd``: the WSDL as NetSuite publishes it."""
        fake: FakeSoap = self.server.fake  # type: ignore[attr-defined]
        name = self.path.removeprefix("/wsdl/").lstrip("./")
        home = fake.wsdl_path.parent.resolve()  # shared/ may be a link: compare real paths
        path = (home / name).resolve()
        if not self.path.startswith("/wsdl/") or home not in path.parents \
                or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        with fake._lock:
            fake.stats.requests["GET wsdl"] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- wiring a config or a gateway to the fake -------------------------------------------------

def use_soap(config: Path, fake: Any, *, extra: str = "", wsdl: str = "") -> dict[str, str]:
    """Point a demo config at ``fake`` (``api = "soap"``); the env its ``*_env`` keys need."""
    creds = "".join(f'{k}_env = "AR_SYNC_TEST_SOAP_{k.upper()}"\n' for k in SECRETS)
    section = (f'[netsuite]\napi = "soap"\naccount_id = "{ACCOUNT}"\n'
               f'sandbox_file = "state/sandbox.db"\ntimeout_seconds = 10\n\n[netsuite.soap]\n'
               f'endpoint = "{fake.url}"\nwsdl = "{wsdl or fake.wsdl_path}"\n'
               f'version = "{fake.version}"\n{creds}backoff_seconds = 0.01\n'
               f"backoff_cap_seconds = 0.05\n{extra}\n")
    text = config.read_text(encoding="utf-8")
    text, n = re.subn(r"^\[netsuite\]\n.*?(?=^\[)", lambda _: section, text, count=1,
                      flags=re.M | re.S)
    assert n == 1, "the config has a [netsuite] table"
    config.write_text(text, encoding="utf-8")
    return dict(ENV)


def soap_gateway(fake: FakeSoap, *, cache_dir: Path, **overrides: Any) -> Any:
    """A SoapGateway on ``fake`` without a config file (unit and contract tests)."""
    from ar_sync.netsuite.soap.client import SoapClient
    from ar_sync.netsuite.soap.gateway import SoapGateway
    from ar_sync.netsuite.soap.options import SoapOptions
    from ar_sync.netsuite.soap.passport import TokenCredentials

    sleep = overrides.pop("sleep", time.sleep)
    creds = TokenCredentials(overrides.pop("account", ACCOUNT), SECRETS["consumer_key"],
                             SECRETS["consumer_secret"], SECRETS["token_id"],
                             SECRETS["token_secret"])
    wsdl = overrides.pop("wsdl", str(fake.wsdl_path))
    options = SoapOptions(endpoint=fake.url, wsdl=wsdl, version=fake.version,
                          credentials=creds, cache_dir=cache_dir, backoff=0.01,
                          backoff_cap=0.05, read_timeout=overrides.pop("read_timeout", 10.0),
                          **overrides)
    return SoapGateway(SoapClient(options, sleep=sleep))
