"""Benchmark the REST gateway: one full cycle over the loopback fake NetSuite.

    /work/venv/bin/python bench/netsuite_rest.py [--orders 5000] [--latency 0.15]
        [--account-limit 5] [--concurrency 5] [--batch-size 1000] [--workdir DIR] [--json]

Builds a generated account (``bench/cycle.py``'s ``prepare``: one unit due per billable
order, ~1% with a planted line-amount error), serves it with the fake NetSuite REST API of
``tests/netsuite_rest_fake.py`` — every request answered after ``--latency`` seconds, more
than ``--account-limit`` requests in flight answered 429, as the account's governance does —
and runs one ``Cycle`` with ``api = "rest"`` and channels that render but submit nowhere.
The fake runs in a process of its own, as NetSuite does: its CPU is not the client's.

Figures:

* **requests per invoice**: every HTTP request the client sent (token, SuiteQL pages,
  transforms, look-ups, read-backs, retries) ÷ invoices created. One transform per invoice
  is the floor; target **≤ 1.05**.
* **invoices per minute** over the whole cycle (pull to delivery), against the bound the
  concurrency limit and latency set: ``limit × 60 / latency`` (2,000/min for 5 and 150 ms,
  at one request per invoice). Target **≥ 80 %** of it.

``--batch-size`` is ``[billing] batch_size``; 1000 (the largest) is the setting for the REST
gateway. Each batch costs a few round trips one after the other (the cycle's duplicate-check
read, the look-up before creating, the read-back), during which the concurrency share idles:
with the default 200 they are five times as many.

A script run on demand, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from netsuite_rest_fake import FakeNetSuite, key_pair, use_rest  # noqa: E402

from ar_sync import log  # noqa: E402
from ar_sync.config import load_settings  # noqa: E402
from ar_sync.connector import open_connector  # noqa: E402
from ar_sync.netsuite import open_gateway  # noqa: E402
from ar_sync.pipeline import Cycle  # noqa: E402
from ar_sync.store import Store  # noqa: E402


def serve(account: Path, latency: float, limit: int, certificates: Path) -> None:
    """The fake NetSuite in a process of its own (as NetSuite is): print its URL, serve until
    stdin closes, then print its figures as JSON."""
    with FakeNetSuite(account, latency=latency, concurrency_limit=limit,
                      certificates=certificates) as fake:
        print(json.dumps({"url": fake.url, "token_url": fake.token_url,
                          "account_id": fake.account_id}), flush=True)
        sys.stdin.read()
        stats = fake.stats
        print(json.dumps({"requests": dict(stats.requests), "max_in_flight": stats.max_in_flight,
                          "over_limit": stats.over_limit, "cpu_s": time.process_time()}))


def measure(orders: int, latency: float, limit: int, concurrency: int, batch_size: int,
            workdir: Path) -> dict[str, Any]:
    anchor = date.today()
    account = prepare(workdir, orders, anchor)
    config = workdir / "ar-sync.toml"
    key_pair("rsa").write(workdir / "keys")  # the M2M certificate the fake is to trust
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(workdir / "sandbox.db"), "--latency",
         str(latency), "--account-limit", str(limit)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    assert server.stdin and server.stdout
    try:
        fake = SimpleNamespace(**json.loads(server.stdout.readline()))
        os.environ.update(use_rest(config, fake, concurrency=concurrency))  # type: ignore[arg-type]
        text = config.read_text()
        text = re.sub(r"^\[billing\]\n", f"[billing]\nbatch_size = {batch_size}\n", text,
                      flags=re.M)
        config.write_text(text)
        settings = load_settings(config)
        log.configure("warning", "console")
        store, gateway = Store.open(settings.state_path), open_gateway(settings)
        connectors: Any = {c: NullConnector(open_connector(settings, c)) for c in CHANNELS}
        cycle = Cycle(settings, store, gateway, connectors, as_of=anchor)
        wall, cpu = time.perf_counter(), time.process_time()
        report = cycle.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        sent = dict(gateway.client.sent)  # type: ignore[attr-defined]
        gateway.close()
        store.close()
    finally:
        server.stdin.close()
        figures = json.loads(server.stdout.read() or "{}")
        server.wait(timeout=30)
    made = report.created + report.adopted
    bound = limit * 60 / latency
    rate = made / wall * 60
    return {
        "orders": orders, "billable_orders": account.billable_orders,
        "planted_problems": len(account.planted), "units_found": report.found,
        "invoices_created": made, "delivered": report.delivered, "held": report.held,
        "held_reasons": dict(report.reasons), "retrying": report.retrying,
        "latency_s": latency, "account_limit": limit, "concurrency": concurrency,
        "batch_size": batch_size, "wall_s": wall, "cpu_s": cpu,
        "requests": sent, "requests_total": sum(sent.values()),
        "requests_per_invoice": sum(sent.values()) / max(made, 1),
        "invoices_per_minute": rate, "bound_per_minute": bound,
        "percent_of_bound": 100 * rate / bound,
        "server_requests": figures.get("requests"),
        "server_max_in_flight": figures.get("max_in_flight"),
        "server_429": figures.get("over_limit"), "server_cpu_s": figures.get("cpu_s"),
    }


def print_table(f: dict[str, Any]) -> None:
    rows = [
        ("orders / units found", f"{f['orders']:,} / {f['units_found']:,}"),
        ("created / delivered / held", f"{f['invoices_created']:,} / {f['delivered']:,} / "
                                       f"{f['held']:,} (planted {f['planted_problems']})"),
        ("latency / account limit / concurrency",
         f"{f['latency_s'] * 1000:.0f} ms / {f['account_limit']} / {f['concurrency']}"),
        ("wall / CPU", f"{f['wall_s']:.1f} s / {f['cpu_s']:.1f} s (the fake: "
                       f"{f['server_cpu_s'] or 0:.1f} s CPU in its own process)"),
        ("REQUESTS / INVOICE", f"{f['requests_per_invoice']:.4f}   (target <= 1.05)"),
        ("INVOICES / MINUTE", f"{f['invoices_per_minute']:,.0f} of {f['bound_per_minute']:,.0f}"
                              f" = {f['percent_of_bound']:.1f} %   (target >= 80 %)"),
        ("requests by kind", ", ".join(f"{k} {v:,}" for k, v in sorted(f["requests"].items()))),
        ("fake: max in flight / 429s", f"{f['server_max_in_flight']} / {f['server_429']}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=5000)
    p.add_argument("--latency", type=float, default=0.15, help="seconds per request")
    p.add_argument("--account-limit", type=int, default=5, help="requests in flight (429 above)")
    p.add_argument("--concurrency", type=int, default=5, help="[netsuite.rest] concurrency")
    p.add_argument("--batch-size", type=int, default=1000, help="[billing] batch_size")
    p.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # internal: the fake's process
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.latency, args.account_limit, args.serve.parent / "keys")
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ar-sync-bench-rest-"))
    try:
        result = measure(args.orders, args.latency, args.account_limit, args.concurrency,
                         args.batch_size, workdir)
        print(json.dumps(result, indent=1)) if args.json else print_table(result)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
