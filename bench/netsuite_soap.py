"""Benchmark the SOAP gateway: one full cycle over the loopback fake SuiteTalk SOAP port.

    /work/venv/bin/python bench/netsuite_soap.py [--orders 5000] [--batch-size 1000]
        [--workdir DIR] [--json]

Builds a generated account (``bench/cycle.py``'s ``prepare``: one unit due per billable
order, ~1% with a planted line-amount error), serves it with the fake SOAP port of
``tests/netsuite_soap_fake.py`` (NetSuite's real 2023_2 WSDL from ``../shared``; every
request validated against the XSDs) in a process of its own, as NetSuite is, and runs one
``Cycle`` with ``api = "soap"`` and channels that render but submit nowhere. The WSDL is
given as the fake's URL, so the first start downloads it into the state directory's cache.

Figures:

* **SOAP requests per 1,000 invoices**: every search, searchMoreWithId, getList,
  initializeList and addList the client sent ÷ invoices created × 1,000. Target **< 20**.
* **cold start to first request**: a new process (``python -m``-style: interpreter, imports,
  config, WSDL from the cache, passport) until its first SOAP request leaves. Target
  **< 1.5 s**.
* **peak memory** (max RSS) of the process that ran the cycle.

A script run on demand, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cycle import CHANNELS, NullConnector, prepare  # noqa: E402

COLD = """
import time, sys
from pathlib import Path
started = time.perf_counter()
from ar_sync.config import load_settings
from ar_sync.netsuite import open_gateway
gateway = open_gateway(load_settings(Path(sys.argv[1]), check_connectors=False))
gateway.tax_codes()
first = gateway.client.transport.first_request_at
print(first - started)
"""


def serve(account: Path) -> None:
    """The fake in a process of its own: print its URLs, serve until stdin closes, then
    print its figures as JSON."""
    from netsuite_soap_fake import FakeSoap

    with FakeSoap(account) as fake:
        print(json.dumps({"url": fake.url, "wsdl_url": fake.wsdl_url, "version": fake.version,
                          "wsdl_path": str(fake.wsdl_path)}), flush=True)
        sys.stdin.read()
        print(json.dumps({"requests": dict(fake.stats.requests), "invalid": fake.invalid,
                          "invalid_responses": fake.invalid_responses,
                          "cpu_s": time.process_time()}))


def cold_start(config: Path) -> float:
    """Seconds from a new process's start (interpreter included) to its first request."""
    out = subprocess.run([sys.executable, "-c", COLD, str(config)], capture_output=True,
                         text=True, check=True, env=os.environ.copy())
    return float(out.stdout.strip().splitlines()[-1]) + _interpreter_start()


def _interpreter_start() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - began


def measure(orders: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    from netsuite_soap_fake import use_soap

    from ar_sync import log
    from ar_sync.config import load_settings
    from ar_sync.connector import open_connector
    from ar_sync.netsuite import open_gateway
    from ar_sync.pipeline import Cycle
    from ar_sync.store import Store

    anchor = date.today()
    account = prepare(workdir, orders, anchor)
    config = workdir / "ar-sync.toml"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(workdir / "sandbox.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin and server.stdout
    try:
        fake = SimpleNamespace(**json.loads(server.stdout.readline()))
        os.environ.update(use_soap(config, fake, wsdl=fake.wsdl_url))
        text = config.read_text()
        config.write_text(re.sub(r"^\[billing\]\n", f"[billing]\nbatch_size = {batch_size}\n",
                                 text, flags=re.M))
        settings = load_settings(config)
        log.configure("warning", "console")
        store, gateway = Store.open(settings.state_path), open_gateway(settings)
        connectors: Any = {c: NullConnector(open_connector(settings, c)) for c in CHANNELS}
        cycle = Cycle(settings, store, gateway, connectors, as_of=anchor)
        wall, cpu = time.perf_counter(), time.process_time()
        report = cycle.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        sent = dict(gateway.client.requests)  # type: ignore[attr-defined]
        gateway.close()
        store.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cold = min(cold_start(config) for _ in range(3))
    finally:
        server.stdin.close()
        figures = json.loads(server.stdout.read() or "{}")
        server.wait(timeout=30)
    made = report.created + report.adopted
    total = sum(sent.values())
    return {
        "orders": orders, "billable_orders": account.billable_orders,
        "units_found": report.found, "invoices_created": made, "delivered": report.delivered,
        "held": report.held, "batch_size": batch_size, "wall_s": wall, "cpu_s": cpu,
        "requests": sent, "requests_total": total,
        "requests_per_1000_invoices": total / max(made, 1) * 1000,
        "cold_start_to_first_request_s": cold, "peak_rss_mib": peak,
        "server_requests": figures.get("requests"), "server_cpu_s": figures.get("cpu_s"),
        "invalid_requests": figures.get("invalid"),
        "invalid_responses": figures.get("invalid_responses"),
    }


def print_table(f: dict[str, Any]) -> None:
    rows = [
        ("orders / units found", f"{f['orders']:,} / {f['units_found']:,}"),
        ("created / delivered / held", f"{f['invoices_created']:,} / {f['delivered']:,} / "
                                       f"{f['held']:,}"),
        ("wall / CPU", f"{f['wall_s']:.1f} s / {f['cpu_s']:.1f} s (the fake: "
                       f"{f['server_cpu_s'] or 0:.1f} s CPU in its own process)"),
        ("SOAP REQUESTS / 1,000 INVOICES", f"{f['requests_per_1000_invoices']:.1f}   "
                                           "(target < 20)"),
        ("COLD START TO FIRST REQUEST", f"{f['cold_start_to_first_request_s']:.2f} s   "
                                        "(cached WSDL; target < 1.5 s)"),
        ("PEAK MEMORY", f"{f['peak_rss_mib']:.0f} MiB (max RSS of the cycle's process)"),
        ("requests by kind", ", ".join(f"{k} {v:,}" for k, v in sorted(f["requests"].items()))),
        ("schema-invalid requests / answers", f"{len(f['invalid_requests'] or [])} / "
                                              f"{len(f['invalid_responses'] or [])}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=1000, help="[billing] batch_size")
    p.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the fake's process
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ar-sync-bench-soap-"))
    try:
        result = measure(args.orders, args.batch_size, workdir)
        print(json.dumps(result, indent=1)) if args.json else print_table(result)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
