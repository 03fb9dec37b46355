"""``ar-sync sandbox``: look at and fix records of the built-in sandbox account.

This is how a demo user plays the part of the AR specialist fixing data in NetSuite
(adding a missing PO, completing an address) before ``ar-sync rerun``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click


def _gateway(ctx: click.Context) -> Any:
    from ar_sync.netsuite.sandbox import SandboxGateway

    settings = ctx.obj.settings
    if settings.netsuite.api != "sandbox":
        raise click.ClickException("the config does not use the sandbox account")
    return SandboxGateway.open(settings.sandbox_path)


def _do(ctx: click.Context, action: Callable[[Any], Any]) -> Any:
    gw = _gateway(ctx)
    try:
        return action(gw)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    finally:
        gw.close()


@click.group()
def sandbox() -> None:
    """Look at and change records of the built-in sandbox NetSuite account."""


@sandbox.command("order")
@click.argument("ref")
@click.pass_context
def order(ctx: click.Context, ref: str) -> None:
    """Print a sales order (tranId like SO-10042, or internal id) as NetSuite holds it."""
    click.echo(json.dumps(_do(ctx, lambda gw: gw.get_order(ref)), indent=2))


@sandbox.command("customer")
@click.argument("ref")
@click.pass_context
def customer(ctx: click.Context, ref: str) -> None:
    """Print a customer (entityId like CUST-1004, or internal id)."""
    click.echo(json.dumps(_do(ctx, lambda gw: gw.get_customer(ref)), indent=2))


@sandbox.command("set-order")
@click.argument("ref")
@click.argument("field")
@click.argument("value")
@click.pass_context
def set_order(ctx: click.Context, ref: str, field: str, value: str) -> None:
    """Change a field of a sales order, e.g. `otherRefNum PO-123456` or `item[2].amount 90.00`."""
    doc = _do(ctx, lambda gw: gw.set_order_field(ref, field, value))
    _note_change(ctx, "order_id", str(doc["internalId"]), {f"salesOrder.{field}": value})
    click.echo(f"sales order {ref}: {field} = {value!r}")


@sandbox.command("set-customer")
@click.argument("ref")
@click.argument("field")
@click.argument("value")
@click.pass_context
def set_customer(ctx: click.Context, ref: str, field: str, value: str) -> None:
    """Change a field of a customer, e.g. `defaultAddress.zip 94107`."""
    doc = _do(ctx, lambda gw: gw.set_customer_field(ref, field, value))
    _note_change(ctx, "customer_id", str(doc["internalId"]), {f"customer.{field}": value})
    click.echo(f"customer {ref}: {field} = {value!r}")


def _note_change(ctx: click.Context, column: str, value: str, what: dict[str, str]) -> None:
    """Record who changed the data of not-yet-delivered units (segregation of duties)."""
    from ar_sync.overrides import record_data_change, who
    from ar_sync.store import State, Store

    path = ctx.obj.settings.state_path
    if not path.exists():
        return
    store = Store.open(path)
    try:
        keys = [r["key"] for r in store.rows(
            f"SELECT key FROM units WHERE {column} = ? AND state != ?", (value, State.DELIVERED))]
        record_data_change(store, keys, who(None)[0], what)
    finally:
        store.close()
