"""``ar-sync netsuite ping``: are the credentials good, and may the role do what the cycle does?

Each step says plainly what is wrong, in the terms of NetSuite's setup screens, because
NetSuite itself answers most mistakes with the same "Invalid login attempt":

1. the config (endpoints, key file, realm) — a problem here is a config error (exit 2);
2. authentication — OAuth 2.0: an access token from the token endpoint; TBA: the first
   signed request below;
3. SuiteQL over customers, sales orders and invoices, one row each (``limit=1``): a 401
   with a freshly issued token means the role lacks *REST Web Services* (or *Log in using
   OAuth 2.0 Access Tokens*); a 403 or a permission message names the record.

Creating invoices (*Transactions > Invoice: Create*) cannot be checked without creating
one; the first run does.
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ar_sync.errors import ArSyncError, ConfigError, TransientError
from ar_sync.netsuite.rest import queries as q
from ar_sync.netsuite.rest.auth import M2MAuth, TokenRefused
from ar_sync.netsuite.rest.client import RestClient
from ar_sync.netsuite.rest.errors import CredentialsRefused, PermissionRefused
from ar_sync.netsuite.rest.options import (
    authenticator,
    certificate_warning,
    client_options,
    config_problems,
)
from ar_sync.netsuite.rest.suiteql import Key, keyset_rows, sql_enum

if TYPE_CHECKING:
    from ar_sync.config import Settings

OK, FAIL, WARN, INFO = "ok", "FAIL", "warn", "info"
_TABLES = (
    ("customers", q.PING_CUSTOMERS, q.CUSTOMER_KEYS, None,
     "Lists > Customers (View) and Reports > SuiteAnalytics Workbook"),
    ("sales orders", q.PING_TRANSACTIONS, q.ID_KEYS, q.SALES_ORDER,
     "Transactions > Sales Order (View)"),
    ("invoices", q.PING_TRANSACTIONS, q.ID_KEYS, q.INVOICE, "Transactions > Invoice"),
)


@dataclass(frozen=True, slots=True)
class Check:
    status: str  # ok | FAIL | warn | info
    what: str
    detail: str = ""


def ping(settings: Settings) -> list[Check]:
    """Run the checks in order; stop at the first failure that makes the rest meaningless."""
    problems = config_problems(settings)
    if problems:
        raise ConfigError([(str(settings.path), key, message) for key, message in problems])
    rest = settings.model.netsuite.rest
    checks = [Check(OK, "configuration", f"{rest.base_url} (auth {rest.auth}, concurrency "
                                         f"{rest.concurrency})")]
    if (warning := certificate_warning(settings)):
        checks.append(Check(WARN, "certificate", warning))
    options = client_options(settings)
    client = RestClient(options, sleep=lambda s: time.sleep(min(s, 2.0)))
    try:
        client.auth = authenticator(settings, client)
        if isinstance(client.auth, M2MAuth):
            checks.append(_token(client.auth))
            if checks[-1].status == FAIL:
                return checks
        for label, template, keys, record_type, permission in _TABLES:
            checks.append(_table(client, label, template, keys, record_type, permission))
            if checks[-1].status == FAIL and ("credentials" in checks[-1].what
                                              or "TLS verification" in checks[-1].detail):
                return checks  # every other table would fail the same way
    finally:
        client.close()
    checks.append(Check(INFO, "creating invoices",
                        "needs Transactions > Invoice (Create): not checked without creating one"))
    return checks


def _token(auth: M2MAuth) -> Check:
    try:
        auth.auth()
    except TokenRefused as exc:
        return Check(FAIL, "access token", str(exc))
    except TransientError as exc:
        return Check(FAIL, "access token", f"the token endpoint did not answer: {exc}")
    except ArSyncError as exc:  # e.g. TLS verification failed
        return Check(FAIL, "access token", str(exc))
    return Check(OK, "access token", f"issued by {auth.token_url} ({auth.algorithm}, "
                                     f"certificate id {auth.certificate_id})")


def _table(client: RestClient, label: str, template: str, keys: tuple[Key, ...],
           record_type: str | None, permission: str) -> Check:
    values = {"type": sql_enum(record_type, q.TYPES)} if record_type else {}
    try:
        rows = keyset_rows(client.suiteql, template, keys, values, limit=1)
        next(rows, None)
    except CredentialsRefused as exc:
        oauth = isinstance(client.auth, M2MAuth)
        why = ("role lacks REST Web Services permission (or 'Log in using OAuth 2.0 Access "
               "Tokens'): NetSuite issued a token but refuses to use it" if oauth else str(exc))
        return Check(FAIL, "credentials", f"{why} — {exc}" if oauth else why)
    except PermissionRefused as exc:
        return Check(FAIL, f"SuiteQL: {label}", f"role lacks {permission}: {exc}")
    except TokenRefused as exc:
        return Check(FAIL, "credentials", str(exc))
    except ArSyncError as exc:
        return Check(FAIL, f"SuiteQL: {label}", str(exc))
    return Check(OK, f"SuiteQL: {label}", "readable")


def format_checks(checks: list[Check]) -> str:
    """One check per paragraph, wrapped at 100 columns (continuation lines indented)."""
    return "\n".join(textwrap.fill(f"{c.status:<5} {c.what}" + (f": {c.detail}" if c.detail
                                                                 else ""),
                                   width=100, subsequent_indent=" " * 6,
                                   break_on_hyphens=False, break_long_words=False)
                     for c in checks)
