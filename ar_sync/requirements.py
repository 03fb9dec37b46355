"""The customer requirements library: each customer's own rules, as versioned config.

One TOML file with a ``[customers."<entity id>"]`` table per customer. It says how the
customer wants invoices (channel), whether a PO is required and what it looks like, who
their AP contact is, and notes for the on-call person. Validated like the main config;
its content hash is recorded with check results as audit evidence.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ar_sync.models import CustomerRequirements

Problem = tuple[str, str, str]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = ""
    po_required: bool = False
    po_pattern: str = ""
    po_pattern_hint: str = ""
    ap_email: str = ""
    notes: str = ""

    @field_validator("po_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class _Library(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customers: dict[str, _Entry] = {}


def load_library(path: Path, channels: set[str]) -> tuple[dict[str, CustomerRequirements],
                                                           list[Problem]]:
    """Read the library; return the entries and every problem found (file, key, message)."""
    name = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, [(name, "-", "customer requirements library not found "
                     "(set [requirements] library in the config)")]
    except tomllib.TOMLDecodeError as exc:
        return {}, [(name, "-", f"not valid TOML: {exc}")]
    try:
        lib = _Library.model_validate(data)
    except ValidationError as exc:
        return {}, [(name, ".".join(map(str, e["loc"])),
                     "unknown key" if e["type"] == "extra_forbidden" else e["msg"])
                    for e in exc.errors()]
    problems: list[Problem] = [
        (name, f"customers.{cid}.channel", f"channel {e.channel!r} is not defined in the config")
        for cid, e in lib.customers.items() if e.channel and e.channel not in channels
    ]
    entries = {cid: CustomerRequirements(customer=cid, **e.model_dump())
               for cid, e in lib.customers.items()}
    return entries, problems


def library_version(path: Path) -> str:
    """Content hash of the library file, stored with every check result."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        return "absent"
