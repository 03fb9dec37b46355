"""The sandbox account: the demo data is what the README promises, and it acts like NetSuite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import tomllib
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_gateway_contract import all_units, make_draft

from ar_sync.errors import FatalError, RejectedError
from ar_sync.models import BillableUnit, Invoice, UnitKind
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import (
    PLANTED_PROBLEMS,
    build_demo_account,
    build_generated_account,
    demo_requirements,
    write_requirements_library,
)

ANCHOR = dt.date(2026, 3, 15)
EU = {"DE", "FR", "NL", "IE", "BE", "AT", "ES", "IT"}


def docs(path: Path, table: str) -> list[dict[str, Any]]:
    """Every document of ``table``, read straight from the file; floats are refused."""
    def no_float(text: str) -> Any:
        raise AssertionError(f"a float {text} is stored in {table}")

    with closing(sqlite3.connect(path)) as db:
        return [json.loads(r[0], parse_float=no_float)
                for r in db.execute(f"SELECT doc FROM {table} ORDER BY id")]


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "netsuite.db"
    build_demo_account(path, anchor=ANCHOR)
    return path


@pytest.fixture
def gw(demo_path: Path) -> Any:
    gateway = SandboxGateway.open(demo_path)
    yield gateway
    gateway.close()


@pytest.fixture
def due(gw: SandboxGateway) -> list[BillableUnit]:
    return all_units(gw, ANCHOR)


# -- the demo account ----------------------------------------------------------------------

def test_demo_has_a_realistic_spread_of_customers(demo_path: Path) -> None:
    customers = docs(demo_path, "customers")
    addresses = [c["defaultAddress"] for c in customers]
    assert len(customers) == 35
    assert len({a["state"] for a in addresses if a["country"] == "US"}) >= 5
    assert len({a["country"] for a in addresses} & EU) >= 2
    assert {c["currency"] for c in customers} >= {"USD", "EUR", "GBP"}
    assert {c["currency"] for c in customers if c["defaultAddress"]["country"] in EU} == {"EUR"}
    assert {c["terms"]["daysUntilNetDue"] for c in customers} == {15, 30, 45, 60}
    assert {c["custentity_ar_channel"] for c in customers} == {"coupa", "ariba", "peppol",
                                                                "email"}
    exempt = [c for c in customers if not c["taxable"]]
    assert any(c["resaleNumber"] for c in exempt) and any(not c["resaleNumber"] for c in exempt)
    expiry = [c["custentity_exempt_cert_expires"] for c in exempt if c["resaleNumber"]]
    assert all(expiry) and min(expiry) < ANCHOR.isoformat() < max(expiry)  # one has expired
    no_vat = [c["entityId"] for c in customers
              if c["defaultAddress"]["country"] in EU and not c["vatRegNumber"]]
    assert no_vat == ["CUST-1034"]  # the reverse-charge plant
    peppol = [c for c in customers if c["custentity_ar_channel"] == "peppol"]
    assert [c["entityId"] for c in peppol if not c["custentity_peppol_endpoint"]] == ["CUST-1035"]
    assert all(re.fullmatch(r"\d{4}:\w+", c["custentity_peppol_endpoint"])
               for c in peppol if c["custentity_peppol_endpoint"])


def test_demo_has_orders_of_every_kind_and_some_not_billable(
        demo_path: Path, due: list[BillableUnit]) -> None:
    orders = docs(demo_path, "sales_orders")
    assert len(orders) == 119
    assert {o["status"] for o in orders} >= {"pendingApproval", "pendingFulfillment",
                                             "fullyBilled", "closed", "pendingBilling",
                                             "pendingBillingPartFulfilled"}
    assert set(Counter(u.kind for u in due)) == set(UnitKind)
    billable = {"pendingBilling", "pendingBillingPartFulfilled"}
    not_billable = {o["internalId"] for o in orders if o["status"] not in billable}
    assert not {u.order_id for u in due} & not_billable
    frequencies = Counter(o["billingSchedule"]["frequency"] for o in orders
                          if "billingSchedule" in o)
    assert set(frequencies) == {"monthly", "annually", "milestone"}
    monthly = [o for o in orders if o.get("billingSchedule", {}).get("frequency") == "monthly"]
    dates = [i["date"] for o in monthly for i in o["billingSchedule"]["instalments"]]
    assert any(d < ANCHOR.isoformat() for d in dates) and any(d > ANCHOR.isoformat()
                                                              for d in dates)
    assert {u.currency for u in due} == {"USD", "EUR", "GBP"}
    assert ANCHOR in {u.bill_date for u in due}  # work due on the day the file was made


def test_demo_renewals_start_the_day_after_the_renewed_term(demo_path: Path) -> None:
    orders = {o["internalId"]: o for o in docs(demo_path, "sales_orders")}
    renewals = [o for o in orders.values() if o.get("custbody_renewal_of")
                and o["tranId"] not in PLANTED_PROBLEMS]
    assert len(renewals) >= 3
    for renewal in renewals:
        old = orders[renewal["custbody_renewal_of"]["internalId"]]
        end = dt.date.fromisoformat(old["endDate"])
        assert dt.date.fromisoformat(renewal["startDate"]) == end + dt.timedelta(days=1)
        assert old["status"] == "fullyBilled"


def test_demo_has_history_billed_before_ar_sync(demo_path: Path, gw: SandboxGateway) -> None:
    invoices = docs(demo_path, "invoices")
    assert len(invoices) >= 20
    assert any(not i["externalId"] for i in invoices)
    assert any(i["externalId"].startswith("BILLRUN-") for i in invoices)
    customer = invoices[0]["entity"]["internalId"]
    listed = gw.invoices_for_customers([customer], dt.date(2000, 1, 1))
    assert {s.netsuite_id for s in listed} == {i["internalId"] for i in invoices
                                               if i["entity"]["internalId"] == customer}


def test_seeding_is_deterministic(tmp_path: Path) -> None:
    def dump(path: Path) -> list[Any]:
        with closing(sqlite3.connect(path)) as db:
            return [db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                    for t in ("meta", "tax_codes", "customers", "sales_orders", "invoices")]

    build_demo_account(tmp_path / "a.db", anchor=ANCHOR)
    build_demo_account(tmp_path / "b.db", anchor=ANCHOR)
    assert dump(tmp_path / "a.db") == dump(tmp_path / "b.db")
    build_demo_account(tmp_path / "c.db", anchor=ANCHOR + dt.timedelta(days=40))
    numbers = [[o["tranId"] for o in docs(tmp_path / p, "sales_orders")] for p in ("a.db", "c.db")]
    assert numbers[0] == numbers[1]
    assert dump(tmp_path / "a.db")[3] != dump(tmp_path / "c.db")[3]


def test_seeding_refuses_to_replace_an_account_unless_told(demo_path: Path) -> None:
    with pytest.raises(FileExistsError, match="netsuite.db"):
        build_demo_account(demo_path, anchor=ANCHOR)
    build_demo_account(demo_path, anchor=ANCHOR + dt.timedelta(days=1), overwrite=True)
    with SandboxGateway.open(demo_path) as gateway:
        assert all_units(gateway, ANCHOR + dt.timedelta(days=1))
    assert not list(demo_path.parent.glob("*.building*"))


# -- the file ------------------------------------------------------------------------------

def test_open_seeds_a_new_owner_only_file_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sandbox" / "netsuite.db"
    with SandboxGateway.open(path) as gateway:
        assert all_units(gateway, dt.date.today())
        gateway.set_order_field("SO-10001", "memo", "kept across opens")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        for sidecar in path.parent.glob("netsuite.db-*"):
            assert stat.S_IMODE(os.stat(sidecar).st_mode) == 0o600
    with SandboxGateway.open(path) as gateway:
        assert gateway.get_order("SO-10001")["memo"] == "kept across opens"
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_account_of_an_older_ar_sync_is_refused_saying_what_to_do(demo_path: Path) -> None:
    with closing(sqlite3.connect(demo_path)) as db, db:
        db.execute("UPDATE meta SET value = 'ar-sync-sandbox/1' WHERE key = 'format'")
    with pytest.raises(FatalError, match="another version of ar-sync.*move it aside"):
        SandboxGateway.open(demo_path)


def test_open_refuses_a_file_that_is_not_a_sandbox_account(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping list\n")
    with pytest.raises(FatalError, match="not a sandbox account"):
        SandboxGateway.open(path)


# -- acting like NetSuite ------------------------------------------------------------------

def test_inactive_customer_is_refused_with_netsuites_code(gw: SandboxGateway,
                                                          due: list[BillableUnit]) -> None:
    unit = due[0]
    gw.set_customer_field(unit.customer.entity_id, "isInactive", "true")
    [result] = gw.create_invoices([make_draft(unit)])
    assert isinstance(result, RejectedError)
    assert result.remote_code == "USER_ERROR" and "inactive" in str(result)
    assert unit.customer.entity_id in str(result) and result.field == "entity"
    assert gw.find_invoices([unit.key]) == {}
    assert unit.key in {u.key for u in all_units(gw, ANCHOR)}


def test_an_order_that_is_not_pending_billing_is_refused(demo_path: Path,
                                                         gw: SandboxGateway) -> None:
    order = next(o for o in docs(demo_path, "sales_orders") if o["status"] == "pendingApproval")
    gw.set_order_field(order["tranId"], "status", "pendingBilling")
    [unit] = gw.fetch_units([f"so:{order['internalId']}:{order['tranDate']}"],
                            dt.date(2099, 1, 1)).values()
    gw.set_order_field(order["tranId"], "status", "closed")
    [result] = gw.create_invoices([make_draft(unit)])
    assert isinstance(result, RejectedError)
    assert result.remote_code == "INVALID_INITIALIZE_REF" and order["tranId"] in str(result)


def test_netsuite_applies_its_own_tax_rate_and_refuses_unknown_codes(
        gw: SandboxGateway, due: list[BillableUnit]) -> None:
    unit = next(u for u in due if u.lines[0].tax_code == "CA-STATE")
    wrong = [dataclasses.replace(ln, tax_rate=Decimal("7.00")) for ln in unit.lines]
    draft = make_draft(dataclasses.replace(unit, lines=tuple(wrong)))
    [created] = gw.create_invoices([draft])
    assert isinstance(created, Invoice)
    assert {ln.tax_rate for ln in created.lines} == {Decimal("7.25")}
    assert created.tax_total != draft.tax_total  # what netsuite.matches_draft will flag
    other = next(u for u in due if u.key != unit.key)
    bad = dataclasses.replace(other, lines=(dataclasses.replace(other.lines[0],
                                                                tax_code="XX-STATE"),))
    [refused] = gw.create_invoices([make_draft(bad)])
    assert isinstance(refused, RejectedError) and refused.remote_code == "INVALID_KEY_OR_REF"
    assert refused.field == "item[1].taxCode"


def test_the_account_has_tax_codes_of_every_kind(gw: SandboxGateway) -> None:
    codes = gw.tax_codes()
    kinds = {code: (str(t.rate), t.kind.value) for code, t in codes.items()}
    assert kinds["CA-STATE"] == ("7.25", "standard")
    assert kinds["EXEMPT"] == ("0", "exempt")
    assert kinds["EU-RC"] == kinds["GB-RC"] == ("0", "reverse_charge")
    assert kinds["US-ZERO"] == kinds["EXPORT"] == ("0", "zero")
    assert all(t.description for t in codes.values())
    assert gw.request_counts()["tax_codes"] == 1


def test_billing_an_order_in_full_marks_its_lines_billed(gw: SandboxGateway,
                                                        due: list[BillableUnit]) -> None:
    unit = next(u for u in due if u.kind is UnitKind.ORDER
                and u.order_number not in PLANTED_PROBLEMS)
    assert all(ln.quantity_remaining == ln.quantity for ln in unit.lines)
    [created] = gw.create_invoices([make_draft(unit)])
    assert isinstance(created, Invoice)
    order = gw.get_order(unit.order_number)
    assert [ln["quantityBilled"] for ln in order["item"]] == [ln["quantity"]
                                                               for ln in order["item"]]
    assert [ln.quantity_remaining for ln in created.lines] == [ln.quantity for ln in unit.lines]


def test_billing_the_last_instalment_makes_the_order_fully_billed(
        gw: SandboxGateway, due: list[BillableUnit]) -> None:
    last = [u for u in due if u.kind is UnitKind.MILESTONE
            and sum(i["invoice"] is None for i in
                    gw.get_order(u.order_number)["billingSchedule"]["instalments"]) == 1]
    assert last, "the demo has a project whose final milestone is due"
    [created] = gw.create_invoices([make_draft(last[0])])
    assert isinstance(created, Invoice)
    order = gw.get_order(last[0].order_number)
    assert order["status"] == "fullyBilled"
    assert order["billingSchedule"]["instalments"][-1]["invoice"] == created.netsuite_id


def test_requests_are_logged_per_round_trip(gw: SandboxGateway,
                                            due: list[BillableUnit]) -> None:
    gw.create_invoices([make_draft(u) for u in due[:3]])
    gw.find_invoices([due[0].key])
    counts = gw.request_counts()
    assert counts["create_invoices"] == 1 and counts["find_invoices"] == 1
    assert counts["iter_billable"] == 1  # the whole demo fits one page of 1,000


_CHILD = """
import sys, datetime as dt
from pathlib import Path
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from ar_sync.netsuite.sandbox import SandboxGateway
from test_gateway_contract import make_draft
gw = SandboxGateway.open(Path(sys.argv[1]))
for batch in gw.iter_billable(dt.date.fromisoformat(sys.argv[2]), 1):
    gw.create_invoices([make_draft(batch[0])])
"""


def test_a_process_killed_mid_create_leaves_whole_invoices_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    build_generated_account(path, 3000, ANCHOR)
    here, root = Path(__file__).parent, Path(__file__).parent.parent
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), ANCHOR.isoformat(),
                              str(here), str(root)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(path, timeout=5)) as db:
            if db.execute("SELECT count(*) FROM invoices").fetchone()[0] >= 50:
                break
        assert child.poll() is None, child.communicate()[1].decode()
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    invoiced = {(i["createdFrom"]["internalId"], i["externalId"].split(":")[2])
                for i in docs(path, "invoices")}
    billed = set()
    for order in docs(path, "sales_orders"):
        schedule = order.get("billingSchedule")
        if schedule:
            billed |= {(order["internalId"], i["date"]) for i in schedule["instalments"]
                       if i["invoice"]}
        elif order["status"] == "fullyBilled":
            billed.add((order["internalId"], order["tranDate"]))
    assert len(invoiced) >= 50 and invoiced == billed
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- fixing data "in NetSuite" -------------------------------------------------------------

def test_set_order_field_changes_the_order_and_what_is_due(gw: SandboxGateway,
                                                           due: list[BillableUnit]) -> None:
    unit = next(u for u in due if u.order_number == "SO-10082")
    gw.set_order_field("SO-10082", "otherRefNum", "PO-123456")
    gw.set_order_field(unit.order_id, "memo", "fixed by AR")
    gw.set_order_field("so-10082", "item[1].amount", "3747.00")
    order = gw.get_order("SO-10082")
    assert (order["otherRefNum"], order["memo"]) == ("PO-123456", "fixed by AR")
    assert order["item"][0]["amount"] == "3747.00"
    [fixed] = gw.fetch_units([unit.key], ANCHOR).values()
    assert fixed.lines[0].amount == fixed.lines[0].quantity * fixed.lines[0].rate
    gw.set_order_field("SO-10082", "status", "closed")
    assert unit.key not in {u.key for u in all_units(gw, ANCHOR)}
    scheduled = next(u for u in due if u.kind is UnitKind.INSTALMENT)
    gw.set_order_field(scheduled.order_number, "billingSchedule.instalments[1].item[1].rate",
                       "1.50")


@pytest.mark.parametrize(("ref", "field", "value", "error", "words"), [
    ("SO-99999", "memo", "x", KeyError, ["SO-99999"]),
    ("SO-10082", "otherRefNumber", "x", ValueError, ["SO-10082", "otherRefNumber"]),
    ("SO-10082", "item[9].amount", "1", ValueError, ["SO-10082", "item[9]", "numbered from 1"]),
    ("SO-10082", "item[1].amount", "12,50", ValueError, ["SO-10082", "item[1].amount"]),
    ("SO-10082", "item[1]", "1", ValueError, ["SO-10082", "item[1]"]),
    ("SO-10082", "tranId", "SO-1", ValueError, ["SO-10082", "read-only"]),
    ("SO-10082", "status", "billed", ValueError, ["SO-10082", "pendingBilling"]),
    ("SO-10082", "tranDate", "15/03/2026", ValueError, ["SO-10082", "tranDate", "YYYY-MM-DD"]),
])
def test_set_order_field_names_the_record_and_field_on_error(
        gw: SandboxGateway, ref: str, field: str, value: str, error: type[Exception],
        words: list[str]) -> None:
    before = gw.get_order("SO-10082")
    with pytest.raises(error) as raised:
        gw.set_order_field(ref, field, value)
    assert all(w in str(raised.value) for w in words), str(raised.value)
    assert gw.get_order("SO-10082") == before


def test_set_customer_field_fixes_an_address(gw: SandboxGateway,
                                             due: list[BillableUnit]) -> None:
    unit = next(u for u in due if u.customer.entity_id == "CUST-1013")
    assert unit.customer.bill_to.zip == ""
    gw.set_customer_field("CUST-1013", "defaultAddress.zip", "92108")
    gw.set_customer_field(unit.customer.id, "email", "payables@bayside.example.com")
    [fixed] = gw.fetch_units([unit.key], ANCHOR).values()
    assert fixed.customer.bill_to.zip == "92108"
    assert fixed.customer.email == "payables@bayside.example.com"
    assert fixed.fingerprint() != unit.fingerprint()
    assert gw.set_customer_field("CUST-1013", "isInactive", "T")["isInactive"] is True


def test_custom_fields_are_fixed_like_any_other(gw: SandboxGateway,
                                               due: list[BillableUnit]) -> None:
    peppol = next(u for u in due if u.order_number == "SO-10117")
    gw.set_customer_field("CUST-1035", "custentity_peppol_endpoint", "0208:0412345678")
    expired = next(u for u in due if u.order_number == "SO-10115")
    gw.set_customer_field("CUST-1033", "custentity_exempt_cert_expires", "2031-06-30")
    partial = next(u for u in due if u.order_number == "SO-10101")
    gw.set_order_field("SO-10101", "item[1].quantityBilled", "0")
    fixed = gw.fetch_units([peppol.key, expired.key, partial.key], ANCHOR)
    assert fixed[peppol.key].customer.peppol_id == "0208:0412345678"
    assert fixed[expired.key].customer.exemption_expires == dt.date(2031, 6, 30)
    assert fixed[partial.key].lines[0].quantity_remaining == Decimal(10)
    gw.set_customer_field("CUST-1033", "custentity_exempt_cert_expires", "")
    assert gw.get_customer("CUST-1033")["custentity_exempt_cert_expires"] is None
    with pytest.raises(ValueError, match="custentity_exempt_cert_expires"):
        gw.set_customer_field("CUST-1033", "custentity_exempt_cert_expires", "June 2031")


@pytest.mark.parametrize(("ref", "field", "value", "error", "words"), [
    ("CUST-9999", "email", "x", KeyError, ["CUST-9999"]),
    ("CUST-1013", "defaultAddress.postcode", "1", ValueError, ["CUST-1013", "postcode"]),
    ("CUST-1013", "isInactive", "maybe", ValueError, ["CUST-1013", "isInactive"]),
    ("CUST-1013", "defaultAddress", "x", ValueError, ["CUST-1013", "group of fields"]),
])
def test_set_customer_field_names_the_record_and_field_on_error(
        gw: SandboxGateway, ref: str, field: str, value: str, error: type[Exception],
        words: list[str]) -> None:
    with pytest.raises(error) as raised:
        gw.set_customer_field(ref, field, value)
    assert all(w in str(raised.value) for w in words), str(raised.value)


# -- the requirements library --------------------------------------------------------------

def test_requirements_cover_every_customer_and_round_trip_as_toml(demo_path: Path,
                                                                  tmp_path: Path) -> None:
    requirements = demo_requirements()
    customers = docs(demo_path, "customers")
    assert set(requirements) == {c["entityId"] for c in customers}
    for c in customers:
        entry = requirements[c["entityId"]]
        assert entry["channel"] == c["custentity_ar_channel"]
        assert entry["ap_email"].endswith(".example.com") or c["entityId"] == "CUST-1031"
        if entry.get("po_pattern"):
            assert re.fullmatch(entry["po_pattern"], entry["po_pattern_hint"])
    assert {k for e in requirements.values() for k in e} >= {
        "ap_contact", "buyer_reference", "required_fields", "attachments", "purchase_orders"}
    assert sum(e["po_required"] for e in requirements.values()) >= 10
    path = tmp_path / "customers.toml"
    write_requirements_library(path)
    assert tomllib.loads(path.read_text())["customers"] == requirements
    library = pytest.importorskip("ar_sync.requirements")
    entries, problems = library.load_library(path, {"coupa", "ariba", "peppol", "email"})
    assert problems == [] and set(entries) == set(requirements)


def test_requirements_library_escapes_strings(tmp_path: Path) -> None:
    tricky = {'ACME "West"': {"channel": "email", "po_required": False,
                              "notes": 'Say "hi"\\n to C:\\AP\n\ttab \x01 é',
                              "required_fields": ["memo", 'a "b"'],
                              "purchase_orders": {"PO 1/\"2\"": {
                                  "amount": "1.00", "expires": dt.date(2027, 2, 28)}}}}
    write_requirements_library(tmp_path / "c.toml", tricky)
    assert tomllib.loads((tmp_path / "c.toml").read_text())["customers"] == tricky


# -- the generated account -----------------------------------------------------------------

def test_generated_account_has_n_billable_orders(tmp_path: Path) -> None:
    summary = build_generated_account(tmp_path / "g.db", 420, ANCHOR, seed=7)
    assert (summary.customers, summary.billable_orders, summary.other_orders) == (21, 420, 42)
    with SandboxGateway.open(tmp_path / "g.db") as gateway:
        units = all_units(gateway, ANCHOR, batch_size=100)
    assert len(units) == len({u.order_id for u in units}) == 420
    assert {u.kind for u in units} == {UnitKind.ORDER, UnitKind.INSTALMENT}
    assert all(1 <= len(u.lines) <= 5 for u in units)
    wrong = {u.order_number for u in units
             if any(ln.amount != ln.quantity * ln.rate for ln in u.lines)}
    assert wrong == set(summary.planted)
    again = build_generated_account(tmp_path / "h.db", 420, ANCHOR, seed=7)
    assert again == summary
