"""The narrow interface between the invoice cycle and a NetSuite account.

Every gateway (sandbox, REST, SOAP) implements :class:`Gateway` and passes the same
contract tests (``tests/test_gateway_contract.py``). Methods take and return batches so that
an adapter can use NetSuite's bulk operations (SuiteQL, ``addList``, ``getList``) and stay
frugal with the account's shared concurrency pool.

Gateways only classify failures into the error tree (:mod:`ar_sync.errors`); they never
retry across calls and never touch the state store.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, Self, TypeVar, runtime_checkable

from ar_sync.errors import ArSyncError
from ar_sync.models import BillableUnit, Invoice, TaxCode, UnreadableRecord

if TYPE_CHECKING:
    from ar_sync.config import Settings


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """An existing invoice, as much as the duplicate check needs."""

    netsuite_id: str
    tran_id: str
    external_id: str
    customer_id: str
    order_id: str
    po_number: str
    currency: str
    total: Decimal
    period_start: dt.date | None
    period_end: dt.date | None


CreateResult = Invoice | ArSyncError


class Gateway(Protocol):
    """What the cycle needs from NetSuite, and nothing more."""

    name: str

    def iter_billable(self, as_of: dt.date,
                      batch_size: int) -> Iterator[list[BillableUnit | UnreadableRecord]]:
        """Yield, in batches, every unit due to bill on or before ``as_of``.

        Sales orders pending billing (in full) and billing-schedule instalments whose
        date has come. An order that already has its invoice is not listed again. An order
        whose data cannot be read is yielded as an ``UnreadableRecord`` naming the field,
        never raised: one bad record must not stop the listing.
        """
        ...

    def fetch_units(self, keys: Sequence[str],
                    as_of: dt.date) -> dict[str, BillableUnit | UnreadableRecord]:
        """Re-read specific units from NetSuite; a key that is no longer due is absent.

        An ``so:<id>:unreadable`` key brings every due unit of that order (it was fixed)
        or its ``UnreadableRecord`` again (it was not).
        """
        ...

    def create_invoices(self, drafts: Sequence[Invoice]) -> list[CreateResult]:
        """Create one invoice per draft with ``externalId = draft.key``; one result per draft.

        A per-record failure is returned in place (``RejectedError`` with NetSuite's own
        code and message, ``DuplicateExternalIdError`` when the key is taken); a failure of
        the whole call raises (``TransientError``, ``AmbiguousError``, ``FatalError``).
        """
        ...

    def find_invoices(self, external_ids: Sequence[str]) -> dict[str, Invoice]:
        """The invoices that exist under these external ids, keyed by external id."""
        ...

    def read_invoices(self, netsuite_ids: Sequence[str]) -> dict[str, Invoice]:
        """Read invoices back as NetSuite holds them (its totals and tax), keyed by id."""
        ...

    def invoices_for_customers(
        self, customer_ids: Sequence[str], since: dt.date
    ) -> list[InvoiceSummary]:
        """Invoices of these customers dated on or after ``since`` (for the duplicate check)."""
        ...

    def tax_codes(self) -> dict[str, TaxCode]:
        """The account's tax codes with their rates and kinds (read once per cycle)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class PurchaseOrderSource(Protocol):
    """What the remediation playbook needs to fix a PO a portal refused (ar_sync.playbook).

    Separate from :class:`Gateway` so a gateway without it still works: the playbook then
    holds the invoice with a drafted PO request instead of re-reading NetSuite.
    """

    def current_po(self, order_id: str) -> str:
        """The PO number on the sales order now (``otherRefNum``), ``""`` if none."""
        ...

    def set_invoice_po(self, netsuite_id: str, po: str) -> Invoice:
        """Put ``po`` on the invoice in NetSuite and return the invoice as it is now."""
        ...


def open_gateway(settings: Settings) -> Gateway:
    """Build the gateway the config names; imports only what that gateway needs."""
    api = settings.netsuite.api
    if api == "sandbox":
        from ar_sync.netsuite.sandbox import SandboxGateway

        return SandboxGateway.open(settings.sandbox_path)
    if api == "rest":
        from ar_sync.netsuite.rest import RestGateway

        return RestGateway.from_settings(settings)
    if api == "soap":
        from ar_sync.netsuite.soap.gateway import SoapGateway

        return SoapGateway.from_settings(settings)
    raise ArSyncError(f"NetSuite api {api!r} is not available in this build")


T = TypeVar("T")


def rebatch(pages: Iterable[Iterable[T]], size: int) -> Iterator[list[T]]:
    """The items of ``pages`` (in whatever sizes NetSuite pages them) as batches of ``size``,
    in order; only the last batch may be smaller. A page is read only when the batch in hand
    needs it, so memory holds at most one page and one batch."""
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    pending: list[T] = []
    for page in pages:
        pending.extend(page)
        while len(pending) >= size:
            yield pending[:size]
            del pending[:size]
    if pending:
        yield pending


class Closing(ABC):
    """``with gateway:`` for every gateway: the block closes it (its ``close()``)."""

    @abstractmethod
    def close(self) -> None:
        """Release the gateway's connection (each gateway has its own)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
