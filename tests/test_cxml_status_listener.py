"""The StatusUpdateRequest endpoint: answers as cXML requires and records the update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from lxml import etree

from ar_sync.config import load_settings
from ar_sync.connector import open_connector
from ar_sync.cxml_listener import StatusListener
from ar_sync.documents.cxml import SAFE_PARSER, parse_status
from ar_sync.documents.validation import DtdValidator
from ar_sync.store import State, Store
from tests.conftest import CXML_DTD, CXML_MAIN_DTD, UBL_XSD_DIR, need_shared

SUR = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.063/cXML.dtd">
<cXML payloadID="sur-1@network" timestamp="2026-12-02T10:00:00+00:00">
  <Header>
    <From><Credential domain="NetworkID"><Identity>AN02</Identity></Credential></From>
    <To><Credential domain="NetworkID"><Identity>AN01</Identity></Credential></To>
    <Sender><Credential domain="NetworkID"><Identity>AN02</Identity>
      <SharedSecret>x</SharedSecret></Credential><UserAgent>net</UserAgent></Sender>
  </Header>
  <Request>
    <StatusUpdateRequest>
      <Status code="200" text="OK"/>
      <InvoiceStatus type="{status}">
        <InvoiceIDInfo invoiceID="INV-9001"/>
        <Comments>{comments}</Comments>
      </InvoiceStatus>
    </StatusUpdateRequest>
  </Request>
</cXML>"""


def _unit(store: Store) -> None:
    with store.transaction():
        store.upsert_unit({"key": "so:100:2026-11-01", "kind": "order", "order_id": "100",
                           "order_number": "SO-10100", "customer_id": "1",
                           "customer_entity": "C-1", "customer_name": "N", "channel": "ariba",
                           "currency": "USD", "total": "1", "bill_date": "2026-11-01",
                           "state": State.DELIVERED, "fingerprint": "f", "draft": "{}"})
        store.set_state("so:100:2026-11-01", State.DELIVERED, tran_id="INV-9001")


def test_status_updates_are_answered_and_recorded(tmp_path: Path) -> None:
    need_shared(CXML_MAIN_DTD)
    dtd = DtdValidator(CXML_MAIN_DTD)
    assert dtd.errors(SUR.format(status="paid", comments="paid").encode()) == []
    store = Store.open(tmp_path / "state.db")
    _unit(store)
    listener = StatusListener(tmp_path / "state.db", "ariba", "127.0.0.1:0").start()
    try:
        for status, comments in (("reconciled", "matched"), ("rejected", "Wrong PO number")):
            answer = requests.post(listener.url, data=SUR.format(status=status,
                                                                 comments=comments), timeout=5)
            assert answer.status_code == 200
            parsed = parse_status(answer.content)
            assert parsed is not None and parsed.code == "200"
            assert dtd.errors(answer.content) == []
        bad = requests.post(listener.url, data=b"<cXML><Request/></cXML>", timeout=5)
        assert bad.status_code == 400 and etree.fromstring(bad.content, SAFE_PARSER) is not None
    finally:
        listener.stop()
    events = [json.loads(r["detail"]) for r in store.rows(
        "SELECT detail FROM events WHERE kind = 'portal_status' AND key = ?",
        ("so:100:2026-11-01",))]
    assert [e["invoice_status"] for e in events] == ["reconciled", "rejected"]
    row = store.unit("so:100:2026-11-01")
    assert row is not None and row["state"] == State.HELD
    assert "Wrong PO number" in row["hold_reason"]
    store.close()


def test_channels_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/channels.example.toml is a valid config, each channel checked by its connector."""
    need_shared(CXML_DTD, UBL_XSD_DIR)
    for var in ("AR_SYNC_COUPA_SECRET", "AR_SYNC_ARIBA_SECRET", "AR_SYNC_PEPPOL_TOKEN",
                "AR_SYNC_SMTP_PASSWORD"):
        monkeypatch.setenv(var, "example-secret")
    config = Path(__file__).resolve().parents[1] / "config" / "channels.example.toml"
    settings = load_settings(config)
    assert set(settings.model.channels) == {"coupa", "ariba", "peppol", "email"}
    assert settings.model.seller.model().remit_to.addr1 == "PO Box 84512"
    for name in settings.model.channels:
        assert open_connector(settings, name).channel == name
