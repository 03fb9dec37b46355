"""The on-call person's commands: filter the queue, own a unit, close one, rerun a batch."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ar_sync.cli import cli
from ar_sync.config import Settings, load_settings
from ar_sync.demo import write_demo_dir
from ar_sync.netsuite.seed import PLANTED_PROBLEMS
from ar_sync.runner import run_cycle
from ar_sync.store import Store

AS_OF = dt.date(2026, 11, 30)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(write_demo_dir(tmp_path / "demo", AS_OF))
    run_cycle(s, as_of=AS_OF)
    return s


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(settings.path), *args])


def queue(settings: Settings, *args: str) -> list[dict[str, Any]]:
    result = invoke(settings, "failures", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_failures_filters_and_sorts(settings: Settings) -> None:
    everything = queue(settings)
    assert len(everything) == len(PLANTED_PROBLEMS)
    po = queue(settings, "--reason", "po.required")
    assert {it["order_number"] for it in po} == {
        o for o, r in PLANTED_PROBLEMS.items() if r == "po.required"}
    one = everything[0]
    assert {it["key"] for it in queue(settings, "--customer", one["customer_entity"])} >= {
        one["key"]}
    by_amount = [Decimal(it["total"]) for it in queue(settings, "--sort", "amount")]
    assert by_amount == sorted(by_amount, reverse=True)
    assert queue(settings, "--older-than", "2d") == []  # all of them were held just now
    assert invoke(settings, "failures", "--older-than", "soon").exit_code == 1


def test_ack_and_resolve_record_the_operator(settings: Settings) -> None:
    key = queue(settings)[0]["key"]
    assert invoke(settings, "ack", key, "--as", "alice", "--note", "calling AP").exit_code == 0
    item = next(it for it in queue(settings) if it["key"] == key)
    assert item["owner"] == "alice" and item["owned_since"]
    assert "owner alice since" in invoke(settings, "failures").output
    short = invoke(settings, "resolve", key, "--note", "done")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert invoke(settings, "resolve", key, "--as", "alice", "--note",
                  "billed by hand as INV-9999 after call").exit_code == 0
    assert key not in {it["key"] for it in queue(settings)}
    story = json.loads(invoke(settings, "show", key, "--json").output)
    assert story["state"] == "resolved"
    assert [(e["kind"], e["actor"]) for e in story["events"][-2:]] == [
        ("acknowledged", "alice"), ("resolved", "alice")]
    run_cycle(settings, as_of=AS_OF)  # the next cycle leaves a resolved unit alone
    assert json.loads(invoke(settings, "show", key, "--json").output)["state"] == "resolved"
    assert invoke(settings, "ack", key).exit_code == 1


def test_rerun_a_batch_by_reason_after_fixing_the_data(settings: Settings) -> None:
    orders = [o for o, r in PLANTED_PROBLEMS.items() if r == "po.required"]
    for order in orders:
        store = Store.open(settings.state_path)
        entity = store.rows("SELECT customer_entity FROM units WHERE order_number = ?",
                            (order,))[0]["customer_entity"]
        store.close()
        hint = settings.requirements[entity].po_pattern_hint
        assert invoke(settings, "sandbox", "set-order", order, "otherRefNum", hint).exit_code == 0
    result = invoke(settings, "rerun", "--reason", "po.required", "--note", "POs added",
                    "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    assert result.output.count(": delivered") == len(orders)
    assert queue(settings, "--reason", "po.required") == []


def test_rerun_without_keys_or_reason_is_a_usage_error(settings: Settings) -> None:
    assert invoke(settings, "rerun").exit_code == 2


def test_each_escalated_invoice_says_what_to_do_next(settings: Settings) -> None:
    """The suggested action follows the finding: fix-and-rerun or approve for a checklist
    finding, with the rule named; every held invoice has one."""
    items = queue(settings)
    assert all(it["suggested_action"] for it in items)
    po = next(it for it in items if it["hold_reason"] == "po.required")
    assert "PO on the sales order" in po["suggested_action"]
    assert "`approve --rule po.required`" in po["suggested_action"]
    dup = next(it for it in items if it["hold_reason"] == "duplicate.invoice")
    assert "resolve" in dup["suggested_action"]
    text = invoke(settings, "failures").output
    assert f"> next: {po['suggested_action'][:40]}" in text


def test_a_channel_rejection_shows_the_portals_words_and_the_forced_rerun(
        settings: Settings) -> None:
    from ar_sync.advice import suggest

    item = {"key": "k", "state": "held", "hold_stage": "delivery", "channel": "coupa",
            "hold_reason": "channel.tax_error", "retries": 0}
    assert suggest(item) == "Fix what coupa named (`show`), then `rerun --force`."
    exhausted = item | {"hold_stage": "deliver", "hold_reason": "retry.exhausted"}
    assert "health in `ar-sync status`" in suggest(exhausted)
    assert "`rerun`" in suggest(exhausted) and "--force" not in suggest(exhausted)
    assert "netsuite ping" in suggest(exhausted | {"hold_stage": "netsuite"})
    waiting = item | {"state": "retry", "retries": 3}
    assert suggest(waiting, max_attempts=8).startswith("Nothing yet")
    assert "attempt 3 of 8" in suggest(waiting, max_attempts=8)

    store = Store.open(settings.state_path)  # a portal rejected one invoice: its words show
    key = next(it["key"] for it in queue(settings) if it["hold_reason"] == "po.required")
    with store.transaction():
        attempt = store.begin_attempt(key, "channel:coupa", "deliver")
        store.finish_attempt(attempt, "rejected", code="MISSING_PO",
                             message="400 PO number required")
    store.close()
    shown = next(it for it in queue(settings) if it["key"] == key)
    assert shown["last_answer"]["code"] == "MISSING_PO"
    assert "channel:coupa said at" in invoke(settings, "failures").output
    assert "MISSING_PO 400 PO number required" in invoke(settings, "failures").output


def test_show_prints_the_document_exactly_as_sent(settings: Settings) -> None:
    """What did we send to Coupa? The stored document of the attempt, byte for byte."""
    store = Store.open(settings.state_path)
    row = store.rows("SELECT a.id, a.key FROM attempts a JOIN units u ON u.key = a.key WHERE "
                     "u.channel = 'coupa' AND a.operation = 'deliver' AND a.outcome = 'ok' "
                     "LIMIT 1")[0]
    store.close()
    story = invoke(settings, "show", row["key"]).output
    assert f"`ar-sync show {row['key']} --document {row['id']}`" in story
    sent = invoke(settings, "show", row["key"], "--document", str(row["id"]))
    published = (settings.base / "outbox" / "coupa" /
                 (row["key"].replace(":", "_") + ".json")).read_text()
    assert sent.exit_code == 0 and sent.output == published
    other = invoke(settings, "show", row["key"], "--document", "999999")
    assert other.exit_code == 1 and "has no attempt #999999" in other.output
