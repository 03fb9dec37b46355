"""The contract every NetSuite gateway passes: the sandbox here, REST and SOAP later.

To run it against another gateway, subclass :class:`GatewayContract` (import it with
``from test_gateway_contract import GatewayContract``) and override the ``account`` fixture
to return an :class:`Account`: a gateway on a fresh test account, the day on which that
account has units due (at least two ORDER units, an INSTALMENT unit, a line with tax and
lines with units of measure), and a way to edit a sales order "in NetSuite".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from ar_sync.errors import DuplicateExternalIdError, RejectedError
from ar_sync.models import (
    BillableUnit,
    Invoice,
    InvoiceLine,
    TaxCode,
    TaxKind,
    UnitKind,
    unit_key,
)
from ar_sync.money import round_money
from ar_sync.netsuite.gateway import Gateway
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import build_demo_account

ANCHOR = dt.date(2026, 3, 15)
LONG_AGO = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class Account:
    gateway: Gateway
    as_of: dt.date  # a day on which units of every kind are due
    edit_order: Callable[[str, str, str], object]  # (order internal id, field, value)


def make_draft(unit: BillableUnit) -> Invoice:
    """The invoice the cycle asks for: amounts as given, tax per line rounded half-up."""
    lines = tuple(InvoiceLine(
        order_line=ln.order_line, item=ln.item, description=ln.description,
        quantity=ln.quantity, rate=ln.rate, amount=ln.amount, tax_code=ln.tax_code,
        tax_rate=ln.tax_rate, tax_amount=round_money(ln.amount * ln.tax_rate / 100,
                                                     unit.currency),
        units=ln.units, quantity_remaining=ln.quantity_remaining) for ln in unit.lines)
    subtotal = sum((ln.amount for ln in lines), Decimal(0))
    tax = sum((ln.tax_amount for ln in lines), Decimal(0))
    return Invoice(
        key=unit.key, order_id=unit.order_id, order_number=unit.order_number,
        customer=unit.customer, tran_date=unit.bill_date,
        due_date=unit.bill_date + dt.timedelta(days=unit.customer.terms.days),
        currency=unit.currency, po_number=unit.po_number, lines=lines, subtotal=subtotal,
        tax_total=tax, total=subtotal + tax, period_start=unit.period_start,
        period_end=unit.period_end, memo=unit.memo,
        entity_name=unit.entity_name or unit.customer.name, contract_start=unit.contract_start,
        contract_end=unit.contract_end, renews_term_ending=unit.renews_term_ending)


def all_units(gateway: Gateway, as_of: dt.date, batch_size: int = 1000) -> list[BillableUnit]:
    return [u for batch in gateway.iter_billable(as_of, batch_size) for u in batch]


def first(units: list[BillableUnit], kind: UnitKind, n: int = 1) -> list[BillableUnit]:
    """The first ``n`` units of ``kind``, from different orders."""
    picked: list[BillableUnit] = []
    for u in units:
        if u.kind is kind and u.order_id not in {p.order_id for p in picked}:
            picked.append(u)
    assert len(picked) >= n, f"the test account needs {n} due {kind} units"
    return picked[:n]


class GatewayContract:
    """What the cycle relies on from any gateway. Override ``account`` in a subclass."""

    @pytest.fixture
    def account(self, tmp_path: Path) -> Iterator[Account]:
        raise NotImplementedError("a gateway's test class provides the account fixture")

    @pytest.fixture
    def gateway(self, account: Account) -> Gateway:
        return account.gateway

    @pytest.fixture
    def as_of(self, account: Account) -> dt.date:
        return account.as_of

    @pytest.fixture
    def units(self, gateway: Gateway, as_of: dt.date) -> list[BillableUnit]:
        return all_units(gateway, as_of)

    # -- listing -------------------------------------------------------------------------

    def test_lists_only_due_units_with_deterministic_keys_in_stable_order(
            self, gateway: Gateway, as_of: dt.date, units: list[BillableUnit]) -> None:
        assert units
        assert all(u.bill_date <= as_of for u in units)
        assert all(u.key == unit_key(u.order_id, u.bill_date) for u in units)
        assert len({u.key for u in units}) == len(units)
        order = sorted(units, key=lambda u: (int(u.order_id), u.bill_date))
        assert [u.key for u in units] == [u.key for u in order]
        again = all_units(gateway, as_of, batch_size=5)
        assert [u.fingerprint() for u in again] == [u.fingerprint() for u in units]

    def test_an_earlier_day_lists_only_what_was_due_then(
            self, gateway: Gateway, as_of: dt.date, units: list[BillableUnit]) -> None:
        earlier = as_of - dt.timedelta(days=20)
        early = all_units(gateway, earlier)
        assert all(u.bill_date <= earlier for u in early)
        assert {u.key for u in early} < {u.key for u in units}

    @pytest.mark.parametrize("size", [1, 3, 7, 50])
    def test_batches_lose_and_repeat_nothing(self, gateway: Gateway, as_of: dt.date,
                                             units: list[BillableUnit], size: int) -> None:
        batches = list(gateway.iter_billable(as_of, size))
        assert all(len(b) == size for b in batches[:-1]) and 0 < len(batches[-1]) <= size
        assert [u.key for b in batches for u in b] == [u.key for u in units]

    def test_billing_between_batches_loses_and_repeats_nothing(
            self, gateway: Gateway, as_of: dt.date, units: list[BillableUnit]) -> None:
        seen, refused = [], set()
        for batch in gateway.iter_billable(as_of, 7):
            seen += [u.key for u in batch]
            results = gateway.create_invoices([make_draft(u) for u in batch])
            refused |= {u.key for u, r in zip(batch, results, strict=True)
                        if not isinstance(r, Invoice)}
        assert seen == [u.key for u in units]
        assert {u.key for u in all_units(gateway, as_of)} == refused

    # -- creating ------------------------------------------------------------------------

    def test_create_returns_the_invoice_with_netsuite_numbers_and_tax(
            self, gateway: Gateway, units: list[BillableUnit]) -> None:
        unit = next(u for u in units if any(ln.tax_rate for ln in u.lines))
        draft = make_draft(unit)
        [created] = gateway.create_invoices([draft])
        assert isinstance(created, Invoice)
        assert created.key == unit.key and created.netsuite_id and created.tran_id
        read = gateway.read_invoices([created.netsuite_id])[created.netsuite_id]
        assert (read.key, read.order_id, read.tran_id) == (unit.key, unit.order_id,
                                                           created.tran_id)
        for line in read.lines:
            assert line.tax_amount == round_money(line.amount * line.tax_rate / 100,
                                                  read.currency)
        assert read.subtotal == sum(ln.amount for ln in read.lines)
        assert read.tax_total == sum(ln.tax_amount for ln in read.lines)
        assert read.total == read.subtotal + read.tax_total
        assert read.due_date == read.tran_date + dt.timedelta(days=unit.customer.terms.days)
        assert (read.subtotal, read.tax_total, read.total) == (draft.subtotal, draft.tax_total,
                                                               draft.total)
        assert (read.po_number, read.period_start, read.period_end) == (
            unit.po_number, unit.period_start, unit.period_end)
        assert read.customer.id == unit.customer.id

    def test_a_second_create_under_the_same_key_is_refused_and_creates_nothing(
            self, gateway: Gateway, units: list[BillableUnit]) -> None:
        unit = units[0]
        [created] = gateway.create_invoices([make_draft(unit)])
        assert isinstance(created, Invoice)
        before = gateway.invoices_for_customers([unit.customer.id], LONG_AGO)
        again = dataclasses.replace(make_draft(unit), memo="sent twice after a timeout")
        [result] = gateway.create_invoices([again])
        assert isinstance(result, DuplicateExternalIdError)
        assert result.external_id == unit.key
        assert gateway.invoices_for_customers([unit.customer.id], LONG_AGO) == before
        assert gateway.find_invoices([unit.key])[unit.key].netsuite_id == created.netsuite_id

    def test_a_billed_order_is_no_longer_listed(
            self, gateway: Gateway, as_of: dt.date, units: list[BillableUnit]) -> None:
        [unit] = first(units, UnitKind.ORDER)
        [created] = gateway.create_invoices([make_draft(unit)])
        assert isinstance(created, Invoice)
        remaining = all_units(gateway, as_of)
        assert unit.key not in {u.key for u in remaining}
        assert len(remaining) == len(units) - 1
        assert gateway.fetch_units([unit.key], as_of) == {}

    def test_a_billed_instalment_is_no_longer_listed_but_its_siblings_are(
            self, gateway: Gateway, as_of: dt.date, units: list[BillableUnit]) -> None:
        by_order = {u.order_id: [v for v in units if v.order_id == u.order_id] for u in units}
        scheduled = [u for u in units if u.kind is UnitKind.INSTALMENT]
        assert scheduled, "the test account needs a due instalment"
        unit = max(scheduled, key=lambda u: len(by_order[u.order_id]))
        siblings = {u.key for u in by_order[unit.order_id]} - {unit.key}
        [created] = gateway.create_invoices([make_draft(unit)])
        assert isinstance(created, Invoice)
        keys = {u.key for u in all_units(gateway, as_of)}
        assert unit.key not in keys and siblings <= keys
        assert gateway.fetch_units([unit.key, *siblings], as_of).keys() == siblings

    def test_a_refused_record_leaves_the_rest_of_the_batch_created(
            self, gateway: Gateway, units: list[BillableUnit]) -> None:
        one, two = first(units, UnitKind.ORDER, 2)
        bogus = dataclasses.replace(make_draft(one), order_id="999999999",
                                    key=unit_key("999999999", one.bill_date))
        results = gateway.create_invoices([make_draft(one), bogus, make_draft(two)])
        assert isinstance(results[0], Invoice) and isinstance(results[2], Invoice)
        assert isinstance(results[1], RejectedError)
        assert not isinstance(results[1], DuplicateExternalIdError)
        assert gateway.find_invoices([one.key, bogus.key, two.key]).keys() == {one.key, two.key}

    def test_what_the_checks_read_survives_create_and_read_back(
            self, gateway: Gateway, units: list[BillableUnit]) -> None:
        """Units of measure, what remains to bill, the name and the contract term: the
        checks run again on NetSuite's invoice and must see what they saw on the draft."""
        renewals = [u for u in units if u.kind is UnitKind.RENEWAL][:1]
        picked = [*first(units, UnitKind.ORDER), *first(units, UnitKind.INSTALMENT), *renewals]
        drafts = [make_draft(u) for u in picked]
        created = gateway.create_invoices(drafts)
        assert all(isinstance(c, Invoice) for c in created)
        ids = [c.netsuite_id or "" for c in created if isinstance(c, Invoice)]
        read = gateway.read_invoices(ids)
        found = gateway.find_invoices([d.key for d in drafts])
        for draft, netsuite_id in zip(drafts, ids, strict=True):
            for back in (read[netsuite_id], found[draft.key]):
                assert [(ln.order_line, ln.units, ln.quantity_remaining) for ln in back.lines] == [
                    (ln.order_line, ln.units, ln.quantity_remaining) for ln in draft.lines]
                assert (back.entity_name, back.contract_start, back.contract_end,
                        back.renews_term_ending) == (draft.entity_name, draft.contract_start,
                                                     draft.contract_end, draft.renews_term_ending)
                assert (back.discount_total, back.shipping, back.is_credit) == (0, 0, False)

    def test_units_carry_the_name_the_term_and_units_of_measure(
            self, units: list[BillableUnit]) -> None:
        assert all(u.entity_name for u in units)
        assert any(ln.units for u in units for ln in u.lines)
        scheduled = [u for u in units if u.kind is UnitKind.INSTALMENT]
        assert all(u.contract_start and u.contract_end for u in scheduled)
        assert all(ln.quantity_remaining is not None and ln.quantity_remaining >= 0
                   for u in units if u.kind is UnitKind.ORDER for ln in u.lines)
        assert all(u.renews_term_ending for u in units if u.kind is UnitKind.RENEWAL)

    def test_tax_codes_are_the_accounts_with_rates_and_kinds(
            self, gateway: Gateway, units: list[BillableUnit]) -> None:
        codes = gateway.tax_codes()
        assert codes and all(isinstance(t, TaxCode) and t.code == code and t.rate >= 0
                             and isinstance(t.kind, TaxKind) for code, t in codes.items())
        assert any(t.kind is TaxKind.STANDARD and t.rate > 0 for t in codes.values())
        used = {ln.tax_code for u in units for ln in u.lines if ln.tax_code}
        assert used <= codes.keys()
        unit = next(u for u in units if any(ln.tax_rate for ln in u.lines))
        [created] = gateway.create_invoices([make_draft(unit)])
        assert isinstance(created, Invoice)
        assert all(ln.tax_rate == codes[ln.tax_code].rate for ln in created.lines if ln.tax_code)

    # -- looking up ----------------------------------------------------------------------

    def test_find_invoices_by_external_id(self, gateway: Gateway,
                                          units: list[BillableUnit]) -> None:
        created = gateway.create_invoices([make_draft(u) for u in units[:2]])
        missing = unit_key("999999999", LONG_AGO)
        found = gateway.find_invoices([units[0].key, units[1].key, missing])
        assert found.keys() == {units[0].key, units[1].key}
        assert [found[u.key].netsuite_id for u in units[:2]] == [
            c.netsuite_id for c in created if isinstance(c, Invoice)]
        assert gateway.find_invoices([]) == {}

    def test_fetch_units_rereads_an_order_fixed_in_netsuite(
            self, account: Account, units: list[BillableUnit]) -> None:
        [unit] = first(units, UnitKind.ORDER)
        account.edit_order(unit.order_id, "otherRefNum", "PO-777777")
        fetched = account.gateway.fetch_units(
            [unit.key, unit_key("999999999", LONG_AGO)], account.as_of)
        assert fetched.keys() == {unit.key}
        assert fetched[unit.key].po_number == "PO-777777"
        assert fetched[unit.key].fingerprint() != unit.fingerprint()
        assert account.gateway.fetch_units([unit.key], unit.bill_date - dt.timedelta(1)) == {}

    def test_invoices_for_customers_lists_created_invoices(
            self, gateway: Gateway, units: list[BillableUnit]) -> None:
        unit = units[0]
        [created] = gateway.create_invoices([make_draft(unit)])
        assert isinstance(created, Invoice)
        mine = [s for s in gateway.invoices_for_customers([unit.customer.id], unit.bill_date)
                if s.external_id == unit.key]
        assert [(s.netsuite_id, s.order_id, s.po_number, s.currency, s.total, s.period_start,
                 s.period_end, s.customer_id) for s in mine] == [
            (created.netsuite_id, unit.order_id, unit.po_number, unit.currency, created.total,
             unit.period_start, unit.period_end, unit.customer.id)]
        later = unit.bill_date + dt.timedelta(days=1)
        assert unit.key not in {s.external_id for s in
                                gateway.invoices_for_customers([unit.customer.id], later)}


class TestSandboxGateway(GatewayContract):
    @pytest.fixture
    def account(self, tmp_path: Path) -> Iterator[Account]:
        path = tmp_path / "netsuite.db"
        build_demo_account(path, anchor=ANCHOR)
        gateway = SandboxGateway.open(path)
        yield Account(gateway, ANCHOR, gateway.set_order_field)
        gateway.close()
