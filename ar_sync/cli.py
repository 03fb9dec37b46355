"""The ``ar-sync`` command line: run the cycle, and let on-call people see and act.

Exit codes: 0 done, 1 the cycle could not complete, 2 usage or configuration error.
Human output goes to stdout and fits 100 columns; logs go to stderr.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from ar_sync import log
from ar_sync.config import Settings, find_config, load_settings
from ar_sync.errors import ArSyncError, ConfigError
from ar_sync.store import Store

EXIT_FAILED = 1
EXIT_USAGE = 2


class Context:
    def __init__(self, config: str | None) -> None:
        self.config_arg = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(find_config(self.config_arg))
            log.configure(self._settings.logging.level, self._settings.logging.format)
        return self._settings

    def store(self) -> Store:
        path = self.settings.state_path
        if not path.exists():
            raise click.ClickException(f"no state file at {path} yet: run `ar-sync run --once`")
        return Store.open(path)


pass_ctx = click.make_pass_decorator(Context)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
as_of_option = click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
                            help="Bill what is due on this date (default: today in the "
                                 "configured time zone).")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class Main(click.Group):
    """Maps ar-sync errors to exit codes and one clear message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(log.mask(exc.render()), err=True)
            sys.exit(EXIT_USAGE)
        except ArSyncError as exc:
            click.echo(f"error: {log.mask(str(exc))}", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=Main)
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $AR_SYNC_CONFIG, then ./config/ar-sync.toml).")
@click.version_option(package_name="ar-sync")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """ar-sync: bill what is due in NetSuite, check it, deliver it, and record everything."""
    ctx.obj = Context(config)


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run one cycle and exit.")
@as_of_option
@pass_ctx
def run(c: Context, once: bool, as_of: dt.datetime | None) -> None:
    """Run one invoice cycle now (the daemon runs it on a schedule)."""
    from ar_sync.runner import run_cycle

    report = run_cycle(c.settings, as_of=as_of.date() if as_of else None)
    click.echo(f"found {report.found}, created {report.created}, adopted {report.adopted}, "
               f"delivered {report.delivered}, held {report.held} "
               f"(still held {report.still_held}), retrying {report.retrying}")


@cli.command()
@pass_ctx
def daemon(c: Context) -> None:
    """Run cycles on the configured schedule until SIGTERM or SIGINT."""
    from ar_sync.daemon import serve

    serve(c.settings)


@cli.command()
@json_option
@pass_ctx
def status(c: Context, as_json: bool) -> None:
    """Units by state, the oldest of each, and the last cycles."""
    from ar_sync.views import format_status, status_data

    store = c.store()
    data = status_data(store, c.settings)
    warning = _certificate_warning(c.settings)
    if warning:
        data["warnings"] = [warning]
    _echo_json(data) if as_json else click.echo(format_status(data))
    if warning and not as_json:
        click.echo(f"warning: {warning}")


def _certificate_warning(settings: Settings) -> str | None:
    """The NetSuite M2M certificate's expiry warning, when the REST gateway is in use."""
    if settings.netsuite.api != "rest":
        return None
    from ar_sync.netsuite.rest.options import certificate_warning

    return certificate_warning(settings)


@cli.command()
@click.option("--customer", default=None, help="Only this customer (entity id or name).")
@click.option("--channel", default=None, help="Only this channel.")
@click.option("--reason", default=None, help="Only units held for this rule or reason "
              "(e.g. po.required, missing_po).")
@click.option("--older-than", default=None, help="Only what has waited longer (90m, 4h, 3d).")
@click.option("--sort", type=click.Choice(["age", "amount"]), default="age", show_default=True)
@json_option
@pass_ctx
def failures(c: Context, customer: str | None, channel: str | None, reason: str | None,
             older_than: str | None, sort: str, as_json: bool) -> None:
    """Invoices held for a person or waiting for a retry, with the reasons."""
    from ar_sync.oncall import parse_age, select
    from ar_sync.views import failures_data, format_failures

    items = select(failures_data(c.store(), max_attempts=c.settings.model.retry.max_attempts),
                   customer=customer, channel=channel, reason=reason,
                   older_than=parse_age(older_than) if older_than else None, sort=sort)
    _echo_json(items) if as_json else click.echo(format_failures(items))


@cli.command()
@click.argument("key")
@click.option("--note", default="", help="What you are going to do.")
@click.option("--as", "as_user", default=None, help="Operator name (default: the OS user).")
@pass_ctx
def ack(c: Context, key: str, note: str, as_user: str | None) -> None:
    """Take ownership of a held or retrying invoice, so others see who is on it."""
    from ar_sync.oncall import acknowledge

    store = c.store()
    try:
        acknowledge(store, key, as_user or getpass.getuser(), note)
    finally:
        store.close()
    click.echo(f"{key}: yours now ({as_user or getpass.getuser()})")


@cli.command()
@click.argument("key")
@click.option("--note", required=True, help="What was done about it (audit record).")
@click.option("--as", "as_user", default=None, help="Operator name (default: the OS user).")
@pass_ctx
def resolve(c: Context, key: str, note: str, as_user: str | None) -> None:
    """Close a held invoice that was dealt with outside ar-sync; it is not billed again."""
    from ar_sync.oncall import resolve as close

    store = c.store()
    try:
        close(store, key, as_user or getpass.getuser(), note)
    finally:
        store.close()
    click.echo(f"{key}: resolved")


@cli.command()
@click.argument("key")
@click.option("--document", type=int, default=None, metavar="ATTEMPT",
              help="Print the document sent in this attempt (#id in the story), as sent.")
@json_option
@pass_ctx
def show(c: Context, key: str, document: int | None, as_json: bool) -> None:
    """The whole story of one invoice: findings, attempts, history; or the document sent."""
    from ar_sync.views import format_show, show_data

    store = c.store()
    data = show_data(store, key)
    if data is None:
        raise click.ClickException(f"no invoice with key {key!r} (see `ar-sync failures`)")
    if document is not None:
        attempt = next((a for a in data["attempts"] if a["id"] == document), None)
        if attempt is None:
            raise click.ClickException(f"{key} has no attempt #{document} (see `ar-sync show "
                                       f"{key}`)")
        if attempt["pruned_at"]:
            raise click.ClickException(f"the document of attempt #{document} was pruned on "
                                       f"{attempt['pruned_at']} under {attempt['pruned_policy']}")
        body = store.document(document)
        if body is None:
            raise click.ClickException(f"attempt #{document} sent no document")
        click.echo(body, nl=False)  # the bytes as sent (a redirect gets exactly them)
        if sys.stdout.isatty() and not body.endswith(b"\n"):
            click.echo()
        return
    _echo_json(data) if as_json else click.echo(format_show(data))


@cli.command()
@click.argument("keys", nargs=-1)
@click.option("--reason", "held_for", default=None,
              help="Every held invoice with this rule or reason (e.g. missing_po).")
@click.option("--customer", default=None, help="With --reason: only this customer.")
@click.option("--force", is_flag=True,
              help="Send again what the channel rejected (after fixing the cause).")
@click.option("--note", default="rerun requested", help="Why, for the record.")
@click.option("--as", "actor", default=None, help="Operator name (default: the OS user).")
@as_of_option
@pass_ctx
def rerun(c: Context, keys: tuple[str, ...], held_for: str | None, customer: str | None,
          force: bool, note: str, actor: str | None, as_of: dt.datetime | None) -> None:
    """Re-read these invoices from NetSuite, check them again and deliver what passes."""
    from ar_sync.oncall import select
    from ar_sync.runner import LockHeldError, run_cycle
    from ar_sync.views import failures_data

    store = c.store()
    if held_for:
        keys = (*keys, *(it["key"] for it in select(failures_data(store), reason=held_for,
                                                     customer=customer)))
    if not keys:
        raise click.UsageError("name the invoices (KEY...) or a --reason to rerun")
    rejected = [r["key"] for r in store.rows(
        f"SELECT key FROM units WHERE hold_stage = 'delivery' AND key IN "
        f"({','.join('?' * len(keys))})", keys)] if not force else []
    for key in rejected:
        click.echo(f"{key}: the channel rejected it; fix the cause, then rerun with --force "
                   "(never resent blindly)", err=True)
    keys = tuple(k for k in keys if k not in rejected)
    found = store.request_rerun(keys, actor or getpass.getuser(),
                                note + (" (forced resend)" if force else ""))
    store.close()
    missing = sorted(set(keys) - set(found))
    if missing:
        click.echo(f"unknown key(s): {', '.join(missing)}", err=True)
    if not found:
        sys.exit(EXIT_USAGE)
    try:
        run_cycle(c.settings, as_of=as_of.date() if as_of else None, only_keys=found)
    except LockHeldError as exc:
        click.echo(f"{exc}\nThe rerun is recorded; the running daemon will do it next cycle.")
        return
    from ar_sync.views import show_data

    for key in found:
        d = show_data(c.store(), key) or {}
        click.echo(f"{key}: {d.get('state')} {d.get('hold_reason') or d.get('delivery_ref') or ''}")


@cli.command()
@click.argument("key")
@click.option("--rule", required=True, help="The rule id of the finding to accept.")
@click.option("--reason", required=True, help="Why it is acceptable (audit evidence).")
@click.option("--as", "as_user", default=None, help="Approver name (default: the OS user).")
@pass_ctx
def approve(c: Context, key: str, rule: str, reason: str, as_user: str | None) -> None:
    """Accept one finding on one held invoice; it is released on the next cycle."""
    from ar_sync.overrides import ApprovalRefused, who
    from ar_sync.overrides import approve as record

    actor, os_user = who(as_user)
    store = c.store()
    try:
        done = record(store, key, rule, reason, actor=actor, os_user=os_user,
                      service_user=c.settings.checks.service_user)
    except ApprovalRefused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        store.close()
    click.echo(f"{key}: {rule} approved by {done.actor} ({', '.join(done.found)}); "
               "the invoice is released on the next cycle (or `ar-sync rerun` it now).")


@cli.command()
@click.argument("key")
@as_of_option
@json_option
@pass_ctx
def check(c: Context, key: str, as_of: dt.datetime | None, as_json: bool) -> None:
    """Run the whole checklist on one invoice now and print every rule, passed or not."""
    from ar_sync.inspection import check_unit, format_check

    result = check_unit(c.settings, key, as_of.date() if as_of else None)
    _echo_json(result) if as_json else click.echo(format_check(result))


@cli.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@json_option
@pass_ctx
def config_check(c: Context, as_json: bool) -> None:
    """Validate the config and the customer library; exit 2 on any error."""
    if not as_json:
        settings = c.settings
        click.echo(f"{settings.path}: ok ({len(settings.model.channels)} channels, "
                   f"{len(settings.requirements)} customers in the requirements library)")
        return
    try:
        settings = c.settings
    except ConfigError as exc:
        _echo_json({"ok": False, "problems": [{"file": f, "key": k, "message": log.mask(m)}
                                              for f, k, m in exc.problems]})
        sys.exit(EXIT_USAGE)
    _echo_json({"ok": True, "file": str(settings.path),
                "channels": sorted(settings.model.channels),
                "customers": len(settings.requirements)})


@cli.group()
def audit() -> None:
    """Audit evidence: verify the event history, export a bundle."""


@audit.command("verify")
@json_option
@pass_ctx
def audit_verify(c: Context, as_json: bool) -> None:
    """Check the hash chain of the event history; exit 1 naming the first broken event."""
    from ar_sync.audit import verify

    store = c.store()
    try:
        count, broken = verify(store)
    finally:
        store.close()
    if as_json:
        _echo_json({"ok": broken is None, "events": count,
                    "broken": None if broken is None else {"event_id": broken.event_id,
                                                           "problem": broken.problem}})
        if broken is not None:
            sys.exit(EXIT_FAILED)
        return
    if broken is None:
        click.echo(f"ok: {count} events, chain intact")
        return
    click.echo(f"BROKEN at event {broken.event_id} (of {count} checked): it {broken.problem}.",
               err=True)
    sys.exit(EXIT_FAILED)


@audit.command("export")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def audit_export(c: Context, start: dt.datetime, end: dt.datetime, directory: Path) -> None:
    """Write the evidence bundle for a period (events, checks, overrides, documents, SoD)."""
    from ar_sync.audit import export

    store = c.store()
    try:
        manifest = export(store, start.date(), end.date(), directory)
    finally:
        store.close()
    chain = manifest["chain"]
    click.echo(f"wrote {len(manifest['files'])} files to {directory}; event chain "
               f"{'intact' if chain['verified'] else 'BROKEN'} ({chain['events']} events)")


@cli.group()
def state() -> None:
    """State store maintenance."""


@state.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def state_backup(c: Context, target: Path) -> None:
    """Copy the state store to TARGET with SQLite's online backup (safe while running)."""
    store = c.store()
    try:
        pages = store.backup(target)
    finally:
        store.close()
    click.echo(f"backed up {store.path} to {target} ({pages} pages)")


@state.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be pruned; change nothing.")
@click.option("--vacuum", is_flag=True, help="Then rewrite the file to give the freed space "
              "back to the disk (takes the state lock: stop the daemon first).")
@click.option("--as", "actor", default=None, help="Operator name (default: the OS user).")
@json_option
@pass_ctx
def state_prune(c: Context, dry_run: bool, vacuum: bool, actor: str | None,
                as_json: bool) -> None:
    """Drop attempt payloads past [retention]: finished invoices only; rows, digests and the
    event history are kept, and the prune is recorded as an event."""
    from contextlib import nullcontext

    from ar_sync.retention import describe, prune
    from ar_sync.runner import state_lock

    if vacuum and dry_run:
        raise click.UsageError("--vacuum rewrites the file; it cannot be a dry run")
    store = c.store()
    try:
        with state_lock(c.settings.state_path) if vacuum else nullcontext():
            summary = prune(c.settings, store, actor=actor or getpass.getuser(),
                            dry_run=dry_run)
            if vacuum:
                before = store.space()["bytes"]
                store.vacuum()
                summary["store"] = store.space()
                summary["vacuumed_bytes"] = before - summary["store"]["bytes"]
    finally:
        store.close()
    if as_json:
        _echo_json(summary)
        return
    click.echo(describe(summary))
    if vacuum:
        click.echo(f"vacuumed: the file is {summary['vacuumed_bytes']} bytes smaller")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("ar-sync-demo"), show_default=True, help="Working directory to create.")
@click.option("--no-run", is_flag=True,
              help="Only create the directory (to start `ar-sync daemon` on it yourself).")
@as_of_option
def demo(directory: Path, no_run: bool, as_of: dt.datetime | None) -> None:
    """Create a working directory on the built-in sandbox account and run one cycle."""
    from ar_sync.demo import run_demo, write_demo_dir

    if no_run:
        config = write_demo_dir(directory, as_of.date() if as_of else None)
        click.echo(f"Created {directory}/ (nothing billed yet). Start the service with:\n"
                   f"  ar-sync --config {config} daemon")
        return
    run_demo(directory, as_of.date() if as_of else None)


@cli.group()
def netsuite() -> None:
    """NetSuite account commands (the REST gateway)."""


@netsuite.command("ping")
@json_option
@pass_ctx
def netsuite_ping(c: Context, as_json: bool) -> None:
    """Check the [netsuite.rest] credentials and the role's permissions; exit 1 on a failure."""
    from ar_sync.netsuite.rest.ping import FAIL, format_checks, ping

    checks = ping(c.settings)
    if as_json:
        _echo_json([dataclasses.asdict(check) for check in checks])
    else:
        click.echo(format_checks(checks))
    if any(check.status == FAIL for check in checks):
        sys.exit(EXIT_FAILED)


from ar_sync.sandbox_cli import sandbox  # noqa: E402

cli.add_command(sandbox)


def main() -> None:
    cli(prog_name="ar-sync")
