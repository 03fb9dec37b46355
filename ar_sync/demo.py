"""``ar-sync demo``: a working directory on the sandbox account, one cycle, a summary."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from ar_sync import log
from ar_sync.config import Settings, load_settings
from ar_sync.pipeline import CycleReport
from ar_sync.store import Store

# channel name -> what it demands of an invoice (the checklist holds what it would reject)
CHANNELS = {"coupa": "cxml", "ariba": "cxml", "peppol": "peppol", "email": "email"}
DEMO_ZONE = "America/New_York"

CONFIG_TEMPLATE = """\
# ar-sync demo configuration: the built-in sandbox account, delivering into ./outbox.
# Every key is documented in config/ar-sync.example.toml of the ar-sync repository.

[netsuite]
api = "sandbox"
account_id = "SANDBOX"
sandbox_file = "state/sandbox.db"   # the simulated NetSuite account (created on first use)

[state]
path = "state/ar-sync.db"

[billing]
timezone = "{zone}"

[schedule]
interval_minutes = 60

[requirements]
library = "customers.toml"

[delivery]
default_channel = "email"

[checks]
nexus_states = [{nexus}]

[logging]
level = "warning"
{channels}"""


def write_demo_dir(directory: Path, anchor: dt.date | None = None) -> Path:
    """Create ``directory`` with a config, the customer library and a freshly seeded
    sandbox account whose work is due on ``anchor`` (default: today in the billing time
    zone), unless it has a config already."""
    from ar_sync.netsuite.seed import (
        build_demo_account,
        demo_check_settings,
        write_requirements_library,
    )

    config = directory / "ar-sync.toml"
    if config.exists():
        return config
    directory.mkdir(parents=True, exist_ok=True)
    channels = "".join(f'\n[channels.{name}]\nconnector = "outbox"\nprofile = "{profile}"\n'
                       f'directory = "outbox/{name}"\n' for name, profile in CHANNELS.items())
    nexus = ", ".join(f'"{s}"' for s in demo_check_settings()["nexus_states"])
    config.write_text(CONFIG_TEMPLATE.format(channels=channels, zone=DEMO_ZONE, nexus=nexus),
                      encoding="utf-8")
    write_requirements_library(directory / "customers.toml")
    (directory / "state").mkdir(mode=0o700, exist_ok=True)
    today = anchor or dt.datetime.now(ZoneInfo(DEMO_ZONE)).date()
    build_demo_account(directory / "state" / "sandbox.db", anchor=today)
    return config


def run_demo(directory: Path, as_of: dt.date | None) -> None:
    """Set up (or reuse) the demo directory, run one cycle and explain what happened."""
    from ar_sync.runner import run_cycle

    fresh = not (directory / "ar-sync.toml").exists()
    config = write_demo_dir(directory, as_of)
    settings = load_settings(config)
    log.configure(settings.logging.level, settings.logging.format)
    click.echo(f"{'Created' if fresh else 'Using'} {directory}/ with a sandbox NetSuite account "
               f"and an outbox per channel.")
    click.echo("Billing everything due on the sandbox account …")
    progress = _Progress()
    report = run_cycle(settings, as_of=as_of, progress=progress)
    progress.done()
    click.echo(summary(report, config, _example(settings)))


def _example(settings: Settings) -> tuple[str, str, str] | None:
    """A held unit a person can fix in the demo: (key, order number, a valid PO)."""
    store = Store.open(settings.state_path)
    try:
        for row in store.rows("SELECT key, order_number, customer_entity FROM units "
                              "WHERE state = 'held' AND hold_reason = 'po.required' ORDER BY key"):
            req = settings.requirements.get(row["customer_entity"])
            if req and req.po_pattern_hint:
                return row["key"], row["order_number"], req.po_pattern_hint
    finally:
        store.close()
    return None


class _Progress:
    """A one-line progress display on a terminal; a line per batch elsewhere."""

    def __init__(self) -> None:
        self.created = 0
        self.tty = sys.stdout.isatty()

    def __call__(self, step: str, n: int) -> None:
        self.created += n
        text = f"  … {self.created} invoices sent to NetSuite for creation"
        click.echo(f"\r{text}", nl=not self.tty)

    def done(self) -> None:
        if self.tty and self.created:
            click.echo("")


def program() -> str:
    """How the person ran ar-sync, so the suggested commands work as printed."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if invoked is not None and invoked.name == "ar-sync":
        found = shutil.which("ar-sync")
        if found and Path(found).resolve() == invoked.resolve():
            return "ar-sync"
        return os.path.relpath(invoked) if not invoked.is_absolute() else str(invoked)
    return "ar-sync" if shutil.which("ar-sync") else f"{sys.executable} -m ar_sync"


def summary(report: CycleReport, config: Path,
            example: tuple[str, str, str] | None = None) -> str:
    """The demo's closing words: what happened, and the exact commands to try next."""
    c = f"{program()} --config {config}"
    key, order, po = example or ("KEY", "SO-NNNNN", "PO-123456")
    lines = [
        "",
        f"Units due:            {report.found}",
        f"Invoices created:     {report.created}" + (f" (+{report.adopted} adopted)"
                                                     if report.adopted else ""),
        f"Delivered:            {report.delivered}",
        f"Held for review:      {report.held + report.still_held}",
    ]
    if report.reasons:
        lines.append("Top reasons held:")
        lines += [f"  {n:>3} × {rule}" for rule, n in report.reasons.most_common(6)]
        if len(report.reasons) > 6:
            rest = sum(n for _, n in report.reasons.most_common()[6:])
            lines.append(f"  {rest:>3} × {len(report.reasons) - 6} other rules (see `failures`)")
    lines += [
        "",
        "Next, try (what is held and why; one invoice's story; its sales order in NetSuite;",
        "add the missing PO there; check and deliver it again; a second run does nothing new):",
        f"  {c} failures",
        f"  {c} show {key}",
        f"  {c} sandbox order {order}",
        f"  {c} sandbox set-order {order} otherRefNum {po}",
        f"  {c} rerun {key}",
        f"  {c} run --once",
        f"  {c} status",
        f"Delivered invoices (JSON and text) are in {config.parent / 'outbox'}/<channel>/.",
    ]
    return "\n".join(lines)
