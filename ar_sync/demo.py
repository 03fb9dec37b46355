"""``ar-sync demo``: a working directory on the sandbox account, one cycle, a summary."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ar_sync import log
from ar_sync.config import load_settings
from ar_sync.pipeline import CycleReport

CHANNELS = ("coupa", "ariba", "peppol", "email")

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
timezone = "America/New_York"

[schedule]
interval_minutes = 60

[requirements]
library = "customers.toml"

[delivery]
default_channel = "email"

[logging]
level = "warning"
{channels}"""


def write_demo_dir(directory: Path) -> Path:
    """Create ``directory`` with a config and the customer library, unless it has one."""
    from ar_sync.netsuite.seed import write_requirements_library

    config = directory / "ar-sync.toml"
    if config.exists():
        return config
    directory.mkdir(parents=True, exist_ok=True)
    channels = "".join(f'\n[channels.{name}]\nconnector = "outbox"\ndirectory = "outbox/{name}"\n'
                       for name in CHANNELS)
    config.write_text(CONFIG_TEMPLATE.format(channels=channels), encoding="utf-8")
    write_requirements_library(directory / "customers.toml")
    return config


def run_demo(directory: Path, as_of: dt.date | None) -> None:
    """Set up (or reuse) the demo directory, run one cycle and explain what happened."""
    from ar_sync.runner import run_cycle

    fresh = not (directory / "ar-sync.toml").exists()
    config = write_demo_dir(directory)
    settings = load_settings(config)
    log.configure(settings.logging.level, settings.logging.format)
    click.echo(f"{'Created' if fresh else 'Using'} {directory}/ with a sandbox NetSuite account "
               f"and an outbox per channel.")
    click.echo("Billing everything due on the sandbox account …")
    progress = _Progress()
    report = run_cycle(settings, as_of=as_of, progress=progress)
    progress.done()
    click.echo(summary(report, config))


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


def summary(report: CycleReport, config: Path) -> str:
    c = f"ar-sync --config {config}"
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
    lines += [
        "",
        "Next, try:",
        f"  {c} failures              # what is held, and why",
        f"  {c} show KEY              # the whole story of one invoice",
        f"  {c} sandbox order SO-NNNN # the sales order behind it, as NetSuite has it",
        f"  {c} sandbox set-order SO-NNNN otherRefNum PO-123456   # fix it 'in NetSuite'",
        f"  {c} rerun KEY             # check it again and deliver it",
        f"  {c} run --once            # a second run creates and delivers nothing new",
        f"  {c} status",
        f"Delivered invoices are in {config.parent / 'outbox'}/<channel>/.",
    ]
    return "\n".join(lines)
