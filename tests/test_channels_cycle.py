"""The demo account delivering through Coupa, SAP Business Network, Peppol and e-mail, against
loopback fakes and a real SMTP server: every clean invoice is accepted, every planted problem
is held before it reaches a portal, and portal-side PO rejections follow the playbook."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle
from ar_sync.store import State, Store
from tests.conftest import CXML_DTD, UBL_XSD_DIR, need_shared
from tests.cxml_fake import SECRET, FakePortal, serve_portal
from tests.peppol_fake import TOKEN, FakeAccessPoint, serve_access_point
from tests.test_email_channel import PASSWORD, USER, Mailbox, smtp_server  # noqa: F401

ANCHOR = dt.date(2026, 11, 30)
SELLER = """
[seller]
name = "Meridian Cloud Systems Inc."
vat_id = "IE3456789OH"
tax_id = "46-1234567"
peppol_id = "0088:5790000436057"
email = "billing@meridian.example.com"
iban = "IE29AIBK93115212345678"
bic = "AIBKIE2D"
[seller.address]
addr1 = "200 Clarendon St"
city = "Boston"
state = "MA"
zip = "02116"
country = "US"
"""


def channels(coupa: FakePortal, ariba: FakePortal, ap: FakeAccessPoint, box: Mailbox,
             sent: Path) -> str:
    def cxml(name: str, portal: FakePortal) -> str:
        return (f'\n[channels.{name}]\nconnector = "{name}"\nprofile = "cxml"\n'
                f'url = "{portal.url}/cxml/invoices"\ndtd_file = "{CXML_DTD}"\n'
                f'shared_secret_env = "AR_SYNC_TEST_CXML_SECRET"\nfrom_identity = "MERIDIAN"\n'
                f'to_identity = "BUYER"\nremit_to_id = "RT-1"\n'
                f'status_url = "{portal.url}/status"\n')
    return (cxml("coupa", coupa) + cxml("ariba", ariba)
            + f'\n[channels.peppol]\nconnector = "peppol"\nprofile = "peppol"\n'
              f'url = "{ap.url}"\ntoken_env = "AR_SYNC_TEST_AP_TOKEN"\nxsd_dir = "{UBL_XSD_DIR}"\n'
            + f'\n[channels.email]\nconnector = "email"\nprofile = "email"\nhost = "localhost"\n'
              f'port = {box.port}\nusername = "{USER}"\npassword_env = "AR_SYNC_TEST_SMTP"\n'
              f'from_address = "billing@meridian.example.com"\nca_file = "{box.ca_file}"\n'
              f'sent_dir = "{sent}"\n')


@pytest.fixture
def portals(cxml_dtd: Path) -> Iterator[tuple[FakePortal, FakePortal]]:
    with serve_portal("coupa", cxml_dtd) as coupa, serve_portal("ariba", cxml_dtd) as ariba:
        yield coupa, ariba


@pytest.fixture
def demo(tmp_path: Path, portals: tuple[FakePortal, FakePortal], ubl_validator: object,
         smtp_server: Mailbox,  # noqa: F811
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, FakePortal, FakePortal,
                                                            FakeAccessPoint]]:
    need_shared(UBL_XSD_DIR)
    monkeypatch.setenv("AR_SYNC_TEST_CXML_SECRET", SECRET)
    monkeypatch.setenv("AR_SYNC_TEST_AP_TOKEN", TOKEN)
    monkeypatch.setenv("AR_SYNC_TEST_SMTP", PASSWORD)
    config = write_demo_dir(tmp_path / "demo", ANCHOR)
    text = config.read_text()
    head = text[:text.index("\n[channels.")]
    coupa, ariba = portals
    with serve_access_point(ubl_validator) as ap:  # type: ignore[arg-type]
        config.write_text(head + SELLER + channels(coupa, ariba, ap, smtp_server,
                                                   tmp_path / "sent"))
        yield load_settings(config), coupa, ariba, ap


def coupa_orders(settings: Settings) -> list[tuple[str, str, str]]:
    """(unit key, order number, customer entity) of clean Coupa units due at the anchor."""
    with SandboxGateway.open(settings.sandbox_path) as gw:
        units = [u for batch in gw.iter_billable(ANCHOR, 200) for u in batch
                 if hasattr(u, "customer")]
    out = []
    for u in units:
        req = settings.requirements.get(u.customer.entity_id)  # type: ignore[union-attr]
        if (req and req.channel == "coupa" and u.order_number not in PLANTED_PROBLEMS
                and u.po_number):  # type: ignore[union-attr]
            out.append((u.key, u.order_number, u.customer.entity_id))  # type: ignore[union-attr]
    return sorted(set(out))


@pytest.mark.slow
def test_demo_through_every_channel_follows_the_playbook(
        demo: tuple[Settings, FakePortal, FakePortal, FakeAccessPoint],
        smtp_server: Mailbox) -> None:  # noqa: F811
    settings, coupa, _ariba, ap = demo
    (fixed_key, fixed_order, fixed_cust), (lost_key, _, _) = coupa_orders(settings)[:2]
    with SandboxGateway.open(settings.sandbox_path) as gw:
        for order in (fixed_order, coupa_orders(settings)[1][1]):
            coupa.invalid_pos.add(gw.get_order(order)["otherRefNum"])

    report = run_cycle(settings, as_of=ANCHOR)
    store = Store.open(settings.state_path)
    try:
        rows = {r["key"]: r for r in store.rows("SELECT * FROM units")}
        planted = {r["order_number"]: r for r in rows.values()
                   if r["order_number"] in PLANTED_PROBLEMS}
        assert set(planted) == set(PLANTED_PROBLEMS)
        for order, rule in PLANTED_PROBLEMS.items():
            row = planted[order]
            assert row["state"] == State.HELD and rule in row["hold_reason"], order
            assert not store.rows("SELECT 1 FROM attempts WHERE key = ? AND operation = "
                                  "'deliver'", (row["key"],)), f"{order} reached a portal"
        for key in (fixed_key, lost_key):
            assert rows[key]["state"] == State.HELD
            assert rows[key]["hold_reason"] == "channel.invalid_po"
            drafted = store.rows("SELECT detail FROM events WHERE key = ? AND kind = "
                                 "'po_request_drafted'", (key,))
            assert drafted and "purchase order number" in drafted[0]["detail"]
        clean = [r for k, r in rows.items() if r["order_number"] not in PLANTED_PROBLEMS
                 and k not in (fixed_key, lost_key)]
        assert clean and all(r["state"] == State.DELIVERED for r in clean), [
            (r["key"], r["state"], r["hold_reason"]) for r in clean
            if r["state"] != State.DELIVERED]
        by_channel = {r["channel"] for r in clean}
        assert by_channel == {"coupa", "ariba", "peppol", "email"}
        assert report.delivered == len(clean)
        assert len(ap.docs) == sum(r["channel"] == "peppol" for r in clean)
        assert len(smtp_server.messages) >= sum(r["channel"] == "email" for r in clean)

        # the customer sends the PO; AR puts it on the sales order; a rerun resubmits once
        req = settings.requirements[fixed_cust]
        new_po = _po_like(req.po_pattern_hint or "PO-000000")
        with SandboxGateway.open(settings.sandbox_path) as gw:
            gw.set_order_field(fixed_order, "otherRefNum", new_po)
        store.request_rerun([fixed_key], "ar-person", "PO received from the customer")
    finally:
        store.close()
    run_cycle(settings, as_of=ANCHOR, only_keys=[fixed_key])
    store = Store.open(settings.state_path)
    try:
        row = store.unit(fixed_key)
        assert row is not None and row["state"] == State.DELIVERED, row and row["hold_reason"]
        kinds = [r["kind"] for r in store.rows("SELECT kind FROM events WHERE key = ?",
                                               (fixed_key,))]
        assert kinds.count("po_resubmitted") == 1
        assert store.unit(lost_key)["state"] == State.HELD  # type: ignore[index]
    finally:
        store.close()
    with SandboxGateway.open(settings.sandbox_path) as gw:
        inv = gw.find_invoices([fixed_key])[fixed_key]
    assert inv.po_number == new_po


def _po_like(hint: str) -> str:
    """A PO in the customer's format that no fake rejects (digits replaced)."""
    return re.sub(r"\d", "7", hint)
