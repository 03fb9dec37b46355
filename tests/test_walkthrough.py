"""The README's "Operations: an outage from start to finish", run line by line.

The shell blocks of that section are taken from README.md as they are and run in order (the
venv's own ``ar-sync`` for ``.venv/bin/ar-sync``, a free port for 8025, and an in-process
aiosmtpd as the mailbox in place of ``python -m aiosmtpd``): a daemon on the demo account, a
channel broken on purpose, exactly one alert about it, the cause in ``status`` and
``failures``, the fix, and the retry queue draining to zero. If the README drifts from what
ar-sync does, this fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Inbox

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent
SECTION = "### Operations: an outage from start to finish"


def shell_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def wait_for(what: str, condition: Callable[[], bool], daemon: subprocess.Popen[bytes],
             timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon.poll() is not None:
            pytest.fail(f"the daemon exited ({daemon.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_the_readme_outage_walkthrough(tmp_path: Path, smtp: tuple[int, Inbox]) -> None:
    port, box = smtp
    blocks = shell_blocks()
    assert len(blocks) == 5, "setup, mailbox, break + daemon, look, fix"
    setup, _mailbox_cmd, break_and_run, look, fix = blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith("AR_SYNC")}

    def local(text: str) -> str:
        """README lines as they run here: this venv's ar-sync, the test's mail port."""
        return re.sub(r"(?<![\w/.-])\.venv/bin/", f"{BIN}/", text).replace("8025", str(port))

    def sh(script: str) -> str:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    sh(local(setup))
    c = next(local(line) for line in setup.splitlines() if line.startswith("C=")) + "\n"
    breaking, run_daemon = break_and_run.strip().splitlines()
    sh(local(breaking))
    assert run_daemon.startswith("$C daemon")
    err = (tmp_path / "daemon.err").open("w")
    daemon = subprocess.Popen(["bash", "-c", c + "exec $C daemon"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=err)
    try:
        def circuit_alerts() -> list[str]:
            return [m for m in box.texts() if "CIRCUIT OPEN for channel:coupa" in m]

        wait_for("alert about the Coupa circuit", lambda: bool(circuit_alerts()), daemon)
        alert = circuit_alerts()[0]
        assert "not writable" in alert, alert
        assert "HELD so:" in alert and "Next:" in alert, "held invoices come with a next step"

        status_cmd, failures_cmd = (line.split("#")[0].strip() for line in
                                    look.strip().splitlines())
        status = sh(c + status_cmd)
        coupa = next(line for line in status.splitlines() if line.startswith("channel:coupa"))
        assert "DOWN until" in coupa, status
        assert "not writable" in status and "Next run:" in status, status
        queue = sh(c + failures_cmd)
        assert "retry" in queue and "Nothing yet: ar-sync retries" in queue, queue
        assert all(line.split()[0] for line in queue.splitlines() if "coupa" in line.lower())

        fix_cmd = fix.strip().splitlines()[0]
        assert fix_cmd.startswith("rm ")
        sh(local(fix_cmd))

        def drained() -> bool:
            data = json.loads(sh(c + "$C status --json"))
            return ("retry" not in data["units"]
                    and data["health"]["channel:coupa"]["verdict"] == "ok")

        wait_for("drained retry queue", drained, daemon)
        time.sleep(7)  # one more cycle: the open circuit is not alerted again
        assert len(circuit_alerts()) == 1, box.texts()
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        err.close()
    assert code == 0, (tmp_path / "daemon.err").read_text()
    data = json.loads(sh(c + "$C status --json"))
    coupa_files = list((tmp_path / "ops" / "outbox" / "coupa").glob("*.json"))
    assert data["units"]["delivered"]["count"] == 64
    assert len(coupa_files) == 16, "every Coupa invoice delivered once, after the fix"
    assert data["daemon"]["running"] is False
    sh(c + "$C audit verify")
