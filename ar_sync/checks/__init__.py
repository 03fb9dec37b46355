"""The review checklist engine.

A rule is a small pure function ``(invoice, context) -> findings`` registered with a stable
id, a severity and the stages it runs at: ``draft`` (before anything exists in NetSuite)
and/or ``invoice`` (on the invoice as NetSuite created it, before delivery). A finding of
severity ``error`` holds the invoice unless a person approved that very finding; a
``warning`` is recorded only. The rules live in the sibling modules, one per area.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ar_sync.models import CustomerRequirements, Finding, Invoice, Severity, TaxCode
from ar_sync.netsuite.gateway import InvoiceSummary

Stage = Literal["draft", "invoice"]


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What rules may consult besides the invoice itself."""

    as_of: dt.date
    requirements: CustomerRequirements | None = None
    existing: Sequence[InvoiceSummary] = ()  # the customer's recent invoices in NetSuite
    draft: Invoice | None = None  # at stage "invoice": what we asked NetSuite to create
    channels: frozenset[str] = field(default_factory=frozenset)
    channel: str = ""
    profile: str = "none"  # what the channel demands: cxml, peppol, email, none
    tax_codes: Mapping[str, TaxCode] = field(default_factory=dict)
    nexus_states: frozenset[str] = field(default_factory=frozenset)
    closed_through: dt.date | None = None


RuleFn = Callable[[Invoice, CheckContext], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    stages: tuple[Stage, ...]
    fn: RuleFn
    summary: str


RULES: list[Rule] = []


def rule(rule_id: str, summary: str, *, stages: tuple[Stage, ...] = ("draft", "invoice"),
         severity: Severity = Severity.ERROR) -> Callable[[RuleFn], RuleFn]:
    """Register a rule under a stable id."""

    def register(fn: RuleFn) -> RuleFn:
        RULES.append(Rule(rule_id, severity, stages, fn, summary))
        return fn

    return register


def finding(rule_id: str, field: str, found: object, expected: str, message: str,
            severity: Severity = Severity.ERROR) -> Finding:
    """A finding in the shape every rule uses."""
    return Finding(rule_id, severity, field, str(found), expected, message)


def evaluate(invoice: Invoice, context: CheckContext,
             stage: Stage) -> list[tuple[Rule, list[Finding]]]:
    """Every rule of ``stage`` with its findings (empty: passed); a crash is a finding."""
    results: list[tuple[Rule, list[Finding]]] = []
    for r in RULES:
        if stage not in r.stages:
            continue
        try:
            results.append((r, list(r.fn(invoice, context))))
        except Exception as exc:  # one broken rule must not stop the cycle
            results.append((r, [Finding(r.id, Severity.ERROR, "-", type(exc).__name__,
                                        "no error", f"rule {r.id} could not run: {exc}")]))
    return results


def run_checks(invoice: Invoice, context: CheckContext, stage: Stage) -> list[Finding]:
    """Every finding of every rule for ``stage``."""
    return [f for _, found in evaluate(invoice, context, stage) for f in found]


def approved(findings: Sequence[Finding],
             approvals: Mapping[str, set[str]]) -> tuple[list[Finding], list[Finding]]:
    """Split error findings into (holding, approved).

    An approval covers one rule *and the value it found*: if the data changes, the new
    finding is not covered and holds again.
    """
    holding: list[Finding] = []
    ok: list[Finding] = []
    for f in findings:
        if not f.holds:
            continue
        (ok if f.found in approvals.get(f.rule, set()) else holding).append(f)
    return holding, ok


def rules_version() -> str:
    """A hash of the registered rules' ids, stages and code, stored as audit evidence."""
    digest = hashlib.sha256()
    for r in RULES:
        digest.update(f"{r.id}:{r.severity}:{','.join(r.stages)}".encode())
        with contextlib.suppress(OSError, TypeError):  # no source: ids and stages still count
            digest.update(inspect.getsource(r.fn).encode())
    return digest.hexdigest()[:12]


# Import the rule modules for their registrations, in the order a reviewer reads them.
from ar_sync.checks import customer  # noqa: E402, F401, I001
from ar_sync.checks import amounts  # noqa: E402, F401
from ar_sync.checks import dates  # noqa: E402, F401
from ar_sync.checks import po  # noqa: E402, F401
from ar_sync.checks import tax  # noqa: E402, F401
from ar_sync.checks import channel  # noqa: E402, F401
