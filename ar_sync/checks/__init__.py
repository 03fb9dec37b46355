"""The review checklist engine.

A rule is a small pure function ``(invoice, context) -> findings`` registered with a stable
id, a severity and the stage it runs at: ``draft`` (before anything exists in NetSuite)
and/or ``invoice`` (on the invoice as NetSuite created it, before delivery). A finding of
severity ``error`` holds the invoice; a ``warning`` is recorded only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ar_sync.models import CustomerRequirements, Finding, Invoice, Severity
from ar_sync.netsuite.gateway import InvoiceSummary

Stage = Literal["draft", "invoice"]


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What rules may consult besides the invoice itself."""

    as_of: dt.date
    requirements: CustomerRequirements | None = None
    existing: Sequence[InvoiceSummary] = ()
    draft: Invoice | None = None  # at stage "invoice": what we asked NetSuite to create
    channels: frozenset[str] = field(default_factory=frozenset)
    channel: str = ""


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


def run_checks(invoice: Invoice, context: CheckContext, stage: Stage) -> list[Finding]:
    """Every finding of every rule for ``stage``; a rule that crashes is itself a finding."""
    findings: list[Finding] = []
    for r in RULES:
        if stage not in r.stages:
            continue
        try:
            findings.extend(r.fn(invoice, context))
        except Exception as exc:  # one broken rule must not stop the cycle
            findings.append(Finding(r.id, Severity.ERROR, "-", type(exc).__name__, "no error",
                                    f"rule {r.id} could not run: {exc}"))
    return findings


def rules_version() -> str:
    """A short hash of the registered rules (ids, severities, stages), stored as evidence."""
    blob = ";".join(f"{r.id}:{r.severity}:{','.join(r.stages)}" for r in RULES)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Import for registration side effects.
from ar_sync.checks import rules as _rules  # noqa: E402,F401
