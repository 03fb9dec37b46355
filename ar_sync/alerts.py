"""Alerts to the on-call person: batched per cycle, deduplicated, with enough to act.

After each cycle, the events it wrote are turned into alerts: invoices newly held for a
person (with the rule and its message), channels that stopped working, and a cycle that
failed — escalated to "no cycle has succeeded for twice the schedule interval" when that is
so. The same problem (same fingerprint) alerts at most once per ``[alerts] dedup_hours``.
One message per cycle goes to each configured sink: a generic webhook whose JSON ``text``
Slack and Teams incoming webhooks both accept, and e-mail over SMTP with STARTTLS.
A sink that fails is logged and its alerts are tried again after the next cycle.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import requests

from ar_sync import log
from ar_sync.advice import suggest
from ar_sync.config import Settings
from ar_sync.store import Store, now
from ar_sync.tls import TlsPolicy, verification_failure


@dataclass(frozen=True)
class Alert:
    fingerprint: str  # what makes two alerts the same problem
    line: str  # one line a person reads


def enabled(settings: Settings) -> bool:
    cfg = settings.model.alerts
    return webhook_url(settings) is not None or cfg.email is not None


def webhook_url(settings: Settings) -> str | None:
    """The webhook's URL: from the environment (``webhook_url_env``), else the file."""
    secret = settings.secrets.get("alerts.webhook_url_env")
    if secret is not None:
        return secret.get_secret_value()
    url = settings.model.alerts.webhook_url
    return str(url) if url is not None else None


def watermark(store: Store) -> int:
    """The last event id before a cycle: its alerts are the events after it."""
    row = store.conn.execute("SELECT MAX(id) FROM events").fetchone()
    return int(row[0] or 0)


def collect(store: Store, after_event: int) -> list[Alert]:
    """Alerts for what the events after ``after_event`` say happened."""
    alerts = []
    for e in store.conn.execute("SELECT key, kind, detail FROM events WHERE id > ? AND kind IN "
                                "('held', 'channel_alert', 'breaker_opened') ORDER BY id",
                                (after_event,)):
        detail = json.loads(e["detail"])
        if e["kind"] == "held":
            unit = store.unit(e["key"])
            rules = ", ".join(detail.get("rules", []))
            first = (detail.get("messages") or [""])[0]
            who = (f"{unit['order_number']} {unit['customer_name']} {unit['total']} "
                   f"{unit['currency']}") if unit else ""
            todo = suggest(dict(unit) | {"state": "held"}) if unit else ""
            alerts.append(Alert(f"held:{e['key']}:{rules}",
                                f"HELD {e['key']} {who}: {rules} — {first}"
                                + (f" Next: {todo}" if todo else "")))
        elif e["kind"] == "breaker_opened":
            name = detail.get("breaker", "?")
            alerts.append(Alert(f"breaker:{name}", f"CIRCUIT OPEN for {name} after "
                                f"{detail.get('failures')} failures, until {detail.get('until')}"
                                f" (then one probe): {detail.get('reason', '')}"))
        else:
            channel = detail.get("channel", "?")
            problem = detail.get("problem", "")
            alerts.append(Alert(f"channel:{channel}:{problem[:60]}",
                                f"CHANNEL {channel} is not usable: {problem}. "
                                f"{detail.get('action', '')}"))
    return alerts


def still_waiting(settings: Settings, store: Store) -> list[Alert]:
    """A reminder, at most once per ``dedup_hours``, of invoices that have waited for a
    person longer than that: an alert is sent once, but the problem may still be there.

    One line for all of them (how many, how many nobody has taken, the oldest), not one per
    invoice: the invoices were each alerted when they were held.
    """
    cutoff = (dt.datetime.now(dt.UTC)
              - dt.timedelta(hours=settings.model.alerts.dedup_hours)).isoformat()
    row = store.conn.execute(
        "SELECT COUNT(*), SUM(owner IS NULL), MIN(updated_at) FROM units "
        "WHERE state = 'held' AND updated_at < ?", (cutoff,)).fetchone()
    count, unowned, oldest = int(row[0] or 0), int(row[1] or 0), row[2]
    if not count:
        return []
    return [Alert("still_waiting", f"STILL WAITING: {count} invoice(s) held for a person for "
                                   f"over {settings.model.alerts.dedup_hours:g} h, {unowned} "
                                   f"taken by nobody (`ar-sync ack KEY`); the oldest since "
                                   f"{oldest[:16].replace('T', ' ')} UTC. See "
                                   "`ar-sync failures --older-than "
                                   f"{max(1, round(settings.model.alerts.dedup_hours))}h`.")]


def cycle_failed(settings: Settings, store: Store, error: str) -> Alert:
    """The alert for a failed cycle, stronger when nothing has succeeded for too long."""
    stale = no_success(settings, store, f"Last error: {error}")
    return stale or Alert(f"cycle_failed:{error[:80]}", f"CYCLE FAILED: {error}")


def no_success(settings: Settings, store: Store, why: str,
               since: dt.datetime | None = None) -> Alert | None:
    """"No successful cycle for over twice the schedule interval", if that is so.

    ``since``: when watching began (a daemon's start), so a fresh install that never had a
    cycle is not stale until two intervals after it started.
    """
    row = store.conn.execute("SELECT MAX(finished_at) FROM cycles WHERE outcome = 'ok'"
                             ).fetchone()
    last_ok = row[0]
    limit = 2 * schedule_interval(settings)
    now = dt.datetime.now(dt.UTC)
    last = dt.datetime.fromisoformat(last_ok) if last_ok else since
    if last is not None and last >= now - limit:
        return None
    return Alert("no_success", f"NO SUCCESSFUL CYCLE for over {limit} (last: "
                               f"{last_ok or 'never'}). {why}")


def schedule_interval(settings: Settings) -> dt.timedelta:
    """How often the daemon runs: the interval, or the gap between two cron firings."""
    sched = settings.model.schedule
    if not sched.cron:
        return dt.timedelta(minutes=sched.interval_minutes or 60)
    from ar_sync.daemon import trigger_for

    trigger = trigger_for(settings)
    first = trigger.get_next_fire_time(None, dt.datetime.now(settings.zone))
    second = trigger.get_next_fire_time(first, first + dt.timedelta(seconds=1))
    return dt.timedelta(seconds=(second - first).total_seconds())


def send(settings: Settings, store: Store, alerts: Sequence[Alert]) -> int:
    """Send the alerts not sent within the dedup period, as one message; return how many."""
    cfg = settings.model.alerts
    if not enabled(settings):
        return 0
    waiting = [Alert(r[0], r[1]) for r in store.conn.execute(
        "SELECT fingerprint, line FROM alerts_pending ORDER BY at")]
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=cfg.dedup_hours)).isoformat()
    recent = {r[0] for r in store.conn.execute(
        "SELECT fingerprint FROM alerts_sent WHERE last_sent_at > ?", (cutoff,))}
    fresh = list({a.fingerprint: a for a in [*waiting, *alerts]
                  if a.fingerprint not in recent}.values())
    if not fresh:
        return 0
    text = _message(fresh)
    hook = webhook_url(settings)
    delivered = all([_webhook(cfg, hook, text, settings.tls_policy) if hook else True,
                     _email(settings, text, len(fresh)) if cfg.email else True])
    with store.transaction():
        for a in fresh:
            if delivered:
                store.conn.execute(
                    "INSERT INTO alerts_sent (fingerprint, first_at, last_sent_at, times) "
                    "VALUES (?, ?, ?, 1) ON CONFLICT(fingerprint) DO UPDATE SET "
                    "last_sent_at = excluded.last_sent_at, times = times + 1",
                    (a.fingerprint, now(), now()))
                store.conn.execute("DELETE FROM alerts_pending WHERE fingerprint = ?",
                                   (a.fingerprint,))
            else:  # kept, and sent with the next cycle's alerts
                store.conn.execute("INSERT OR IGNORE INTO alerts_pending (fingerprint, line, "
                                   "at) VALUES (?, ?, ?)", (a.fingerprint, a.line, now()))
        store.event(None, "alert_sent" if delivered else "alert_deferred", count=len(fresh),
                    fingerprints=[a.fingerprint for a in fresh])
    return len(fresh) if delivered else 0


def _message(alerts: Sequence[Alert]) -> str:
    head = f"ar-sync: {len(alerts)} thing(s) need a person"
    body = "\n".join(f"- {a.line}" for a in alerts[:50])
    more = f"\n… and {len(alerts) - 50} more" if len(alerts) > 50 else ""
    return (f"{head}\n{body}{more}\n\nSee `ar-sync failures` and `ar-sync show KEY`; "
            "`ar-sync status` for the health of NetSuite and the channels.")


def _webhook(cfg: Any, url: str, text: str, tls: TlsPolicy) -> bool:
    try:
        with tls.session() as session:  # always verified ([tls] ca_bundle)
            answer = session.post(url, json={"text": text},
                                  timeout=cfg.timeout_seconds)
        answer.raise_for_status()
    except requests.RequestException as exc:
        log.get("ar_sync.alerts").warning("alert_webhook_failed",
                                          error=verification_failure(exc) or str(exc))
        return False
    return True


def _email(settings: Settings, text: str, count: int) -> bool:
    cfg = settings.model.alerts.email
    assert cfg is not None
    msg = EmailMessage()
    msg["Subject"] = f"ar-sync: {count} thing(s) need a person"
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg.set_content(text)
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds) as smtp:
            if cfg.starttls:  # verified (smtplib's default context would not verify)
                smtp.starttls(context=settings.tls_policy.ssl_context())
            secret = settings.secrets.get("alerts.email.password_env")
            if cfg.username and secret is not None:
                smtp.login(cfg.username, secret.get_secret_value())
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.get("ar_sync.alerts").warning("alert_email_failed",
                                          error=verification_failure(exc) or str(exc))
        return False
    return True
