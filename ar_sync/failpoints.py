"""Failpoints: let the crash test kill the process at an exact step.

``AR_SYNC_FAILPOINT=N`` makes the process SIGKILL itself at the N-th failpoint it passes
(``name:N`` counts only failpoints of that name). Failpoints sit after every state
transaction and around every call to NetSuite or a channel, so the crash test can stop a
real ``ar-sync run --once`` between a side effect and its record, not only between
invoices. Unset (always, outside tests), ``hit`` is one global lookup.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("AR_SYNC_FAILPOINT", "")
_NAME, _, _COUNT = _SPEC.rpartition(":") if ":" in _SPEC else ("", "", _SPEC)
_TARGET = int(_COUNT) if _COUNT.isdigit() else 0
_seen = 0


def hit(name: str) -> None:
    """Count a failpoint; kill this process without cleanup when the target is reached."""
    global _seen
    if not _TARGET or (_NAME and name != _NAME):
        return
    _seen += 1
    if _seen == _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
