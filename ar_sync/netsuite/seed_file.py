"""Writing a sandbox account file so that nobody ever sees half of one.

An account is built into a temporary file beside its final path and put in place in one
step: a process killed mid-seed leaves nothing behind, and two processes seeding the same
path at once end with one complete file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ar_sync.netsuite import sandbox_records as records

T = TypeVar("T")


def write_account(path: Path, fill: Callable[[sqlite3.Connection], T], overwrite: bool) -> T:
    """Build into a temporary file, then put it in place in one step.

    A process killed mid-seed leaves no half-built account behind, and two processes
    seeding the same path at once end with one complete file (``link`` fails if taken).
    """
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; not replacing a sandbox account")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.building")
    _remove(tmp)
    db = records.connect(tmp)
    try:
        with records.transaction(db):
            result = fill(db)
    except BaseException:
        db.close()
        _remove(tmp)
        raise
    db.close()  # checkpoints the WAL into the file and removes it
    try:
        if overwrite:
            _remove(path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            os.replace(tmp, path)
        else:
            _link(tmp, path)
    finally:
        _remove(tmp)
    return result


def _link(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that is taken (rename where links are refused)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        os.replace(tmp, path)


def _remove(*paths: Path) -> None:
    for p in paths:
        for q in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
            q.unlink(missing_ok=True)
