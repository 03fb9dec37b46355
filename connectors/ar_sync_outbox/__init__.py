"""The ``outbox`` connector: delivers an invoice by writing it into a directory.

Each delivery writes ``<key>.json`` (the invoice as data) and ``<key>.txt`` (what a person
reads). Like a portal, the outbox refuses a second submission of the same invoice
(``DUPLICATE``) instead of silently overwriting it: the JSON file is published with an
atomic hard link, which fails if it already exists. A crash mid-write leaves either the
whole document or nothing, and :meth:`OutboxConnector.status` tells which; the temporary
file such a crash leaves behind (``.tmp-*``) is removed when the connector next opens, once
it is older than :data:`STALE_TEMP_SECONDS` (only one ar-sync works a state file and its
outboxes at a time, so an older temporary file belongs to no write in progress).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ar_sync import failpoints
from ar_sync.connector import Document, safe_filename
from ar_sync.errors import TransientError
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus, to_jsonable
from ar_sync.rendering import render_text

STALE_TEMP_SECONDS = 600


class OutboxConnector:
    """Writes rendered invoices into ``directory``."""

    def __init__(self, channel: str, settings: Mapping[str, Any]) -> None:
        self.channel = channel
        self.directory = Path(settings["directory"])
        _remove_stale_temps(self.directory)

    @staticmethod
    def validate_settings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = [(k, "unknown key") for k in settings if k != "directory"]
        if "directory" not in settings:
            problems.append(("directory", "required: the directory invoices are written to"))
        return problems

    def render(self, invoice: Invoice) -> Document:
        name = safe_filename(invoice.key)
        # compact, so the C encoder runs; the .txt beside it is the copy people read
        body = json.dumps(to_jsonable(invoice), sort_keys=True, separators=(",", ":")).encode()
        text = render_text(invoice).encode()
        return Document(invoice.key, "application/json", f"{name}.json", body,
                        attachments=((f"{name}.txt", text),))

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for filename, data in document.attachments:
                _write_atomic(self.directory / filename, data)
            failpoints.hit("outbox_write")  # the crash test stops here, half delivered
            published = _publish(self.directory, document.filename, document.body)
        except OSError as exc:
            raise TransientError(f"outbox {self.directory} not writable: {exc.strerror}") from exc
        if not published:
            return DeliveryOutcome(OutcomeStatus.REJECTED, reason_code="DUPLICATE",
                                   remote_code="EEXIST",
                                   remote_text=f"{document.filename} was already delivered")
        return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=self._reference(document.filename))

    def status(self, key: str) -> DeliveryOutcome | None:
        filename = f"{safe_filename(key)}.json"
        if (self.directory / filename).exists():
            return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=self._reference(filename))
        return None

    def _reference(self, filename: str) -> str:
        return f"outbox:{self.channel}/{filename}"


def _publish(directory: Path, filename: str, data: bytes) -> bool:
    """Write ``data`` to a temp file and hard-link it into place; False if it existed."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, directory / filename)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _remove_stale_temps(directory: Path) -> None:
    """Remove what a write killed half-way left behind (never a published document)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    try:
        for path in directory.glob(".tmp-*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue
    except OSError:
        return  # an unreadable directory shows up, clearly, at the first submit
