"""Benchmark one full invoice cycle over a large generated sandbox account.

    /work/venv/bin/python bench/cycle.py [--orders 10000] [--workdir DIR] [--null-connector]
                                         [--trace] [--profile N] [--scaling] [--json]

Builds a generated sandbox account with N billable orders and a config dir (outbox channels,
a requirements library for the generated customers), runs one ``Cycle`` and measures:

* wall and CPU time of ``Cycle.run`` (building the account, opening store/gateway excluded);
* time inside the gateway (a proxy times every Gateway method call, each ``next()`` of
  ``iter_billable`` included) and inside the connectors (``render``, ``submit``, ``status``);
* **local cost per invoice** = (wall - gateway - connector submit/status) / invoices created.
  Target: **under 1 ms**. ``--null-connector`` renders as the outbox does but submits
  nowhere (accepted, with a reference): channel latency out of the picture;
* peak memory: ``tracemalloc`` peak of Python allocations (``--trace``: about 4x slower, so
  off by default) and ``ru_maxrss``. ``--scaling`` runs 2,500 / 5,000 / 10,000 orders traced,
  each in a fresh process; target: **roughly flat** (the cycle streams in batches);
* state store size, gateway round trips by method (``request_counts()``), per invoice.

``--profile N``: the top N functions by own time under cProfile, paused inside gateway calls
and connector submit/status (local cost only). A script run on demand, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import inspect
import json
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from ar_sync import log
from ar_sync.config import load_settings
from ar_sync.connector import Connector, Document, open_connector
from ar_sync.models import DeliveryOutcome, Invoice, OutcomeStatus
from ar_sync.netsuite.sandbox import SandboxGateway
from ar_sync.netsuite.seed import build_generated_account, write_requirements_library
from ar_sync.pipeline import Cycle
from ar_sync.store import Store

CHANNELS = ("coupa", "ariba", "peppol", "email")
CONFIG = ('[netsuite]\napi = "sandbox"\nsandbox_file = "sandbox.db"\n[state]\npath = "state/'
          'ar-sync.db"\n[billing]\ntimezone = "UTC"\nbatch_size = {batch}\n'
          '[requirements]\nlibrary = "customers.toml"'
          '\n[delivery]\ndefault_channel = "email"\n[logging]\nlevel = "warning"\n')
BATCH = [200]  # --batch-size


class Meter:
    """Wall and CPU seconds by label. Inside gateway calls and submit/status, it pauses
    ``profiler`` and keeps their allocation peaks out of ``local_peak``."""

    def __init__(self) -> None:
        self.wall: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()
        self.profiler: cProfile.Profile | None = None
        self.local_peak = self.peak = 0  # bytes: outside gateway/submit calls, overall

    def timed(self, label: str, fn: Callable[..., Any], *, pause: bool = True) -> Any:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            profiler = self.profiler if pause else None
            if profiler:
                profiler.disable()
            if pause and tracemalloc.is_tracing():
                self.local_peak = max(self.local_peak, tracemalloc.get_traced_memory()[1])
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[label] += time.perf_counter() - wall  # type: ignore[assignment]
                self.cpu[label] += time.process_time() - cpu  # type: ignore[assignment]
                if pause and tracemalloc.is_tracing():
                    self.peak = max(self.peak, tracemalloc.get_traced_memory()[1])
                    tracemalloc.reset_peak()
                if profiler:
                    profiler.enable()
        return call

    def timed_iter(self, label: str, gen: Callable[..., Any]) -> Any:
        @functools.wraps(gen)
        def iterate(*args: Any, **kwargs: Any) -> Any:
            step = self.timed(label, functools.partial(next, gen(*args, **kwargs), None))
            while (item := step()) is not None:
                yield item
        return iterate

    def total(self, prefix: str, counter: Counter[str] | None = None) -> float:
        return sum(v for k, v in (counter or self.wall).items() if k.startswith(prefix))


class TimedGateway:
    """Every Gateway method of ``inner``, timed under ``gateway.<method>``."""

    def __init__(self, inner: SandboxGateway, meter: Meter) -> None:
        self.inner, self.meter = inner, meter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr
        wrap = self.meter.timed_iter if inspect.isgeneratorfunction(attr) else self.meter.timed
        setattr(self, name, wrapped := wrap(f"gateway.{name}", attr))
        return wrapped


class TimedConnector:
    """A connector with render (local work: stays profiled), submit and status timed."""

    def __init__(self, inner: Any, meter: Meter) -> None:
        self.channel = inner.channel
        self.render = meter.timed("connector.render", inner.render, pause=False)
        self.submit = meter.timed("connector.submit", inner.submit)
        self.status = meter.timed("connector.status", inner.status)


class NullConnector:
    """Renders as the real connector does; submits nowhere and answers accepted."""

    def __init__(self, real: Connector) -> None:
        self.channel, self.render = real.channel, real.render

    def submit(self, invoice: Invoice, document: Document) -> DeliveryOutcome:
        return DeliveryOutcome(OutcomeStatus.ACCEPTED, reference=f"null:{document.filename}")

    def status(self, key: str) -> DeliveryOutcome | None:
        return None


def prepare(workdir: Path, orders: int, anchor: date) -> Any:
    """A fresh generated account, config dir and empty state/outboxes in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for old in ("state", "outbox"):
        shutil.rmtree(workdir / old, ignore_errors=True)
    account = build_generated_account(workdir / "sandbox.db", orders, anchor, overwrite=True)
    db = sqlite3.connect(workdir / "sandbox.db")
    docs = [json.loads(d) for (d,) in db.execute("SELECT doc FROM customers")]
    db.close()
    write_requirements_library(workdir / "customers.toml", {  # generated POs are free-form
        d["entityId"]: {"channel": d["custentity_ar_channel"], "po_required": False,
                        "ap_email": d["email"]} for d in docs})
    (workdir / "ar-sync.toml").write_text(CONFIG.format(batch=BATCH[0]) + "".join(
        f'[channels.{c}]\nconnector = "outbox"\ndirectory = "outbox/{c}"\n' for c in CHANNELS))
    return account


def measure(orders: int, workdir: Path, *, null: bool, trace: bool = False,
            profile: int = 0) -> dict[str, Any]:
    """Build the account, then run and measure one cycle over it."""
    anchor = date.today()
    account = prepare(workdir, orders, anchor)
    settings = load_settings(workdir / "ar-sync.toml")
    log.configure(settings.logging.level, settings.logging.format)
    meter, sandbox = Meter(), SandboxGateway.open(settings.sandbox_path)
    store = Store.open(settings.state_path)
    connectors: Any = {c: TimedConnector(NullConnector(real) if null else real, meter)
                       for c in CHANNELS for real in [open_connector(settings, c)]}
    gateway: Any = TimedGateway(sandbox, meter)
    cycle = Cycle(settings, store, gateway, connectors, as_of=anchor)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if trace:
        tracemalloc.start()
    if profile:
        meter.profiler = cProfile.Profile()
        meter.profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    report = cycle.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if meter.profiler:
        meter.profiler.disable()
    last = tracemalloc.get_traced_memory()[1]
    peaks = [max(meter.peak, last) / 2**20, max(meter.local_peak, last) / 2**20] if trace else []
    tracemalloc.stop()
    requests = sandbox.request_counts()
    sandbox.close()
    store.close()
    made = report.created + report.adopted
    in_gateway, channel = meter.total("gateway."), meter.total("connector.s")  # submit, status
    return {
        "orders": orders, "customers": account.customers,
        "planted_problems": len(account.planted), "connector": "null" if null else "outbox",
        "units_found": report.found, "invoices_created": made, "delivered": report.delivered,
        "held": report.held, "held_reasons": dict(report.reasons), "retrying": report.retrying,
        "wall_s": wall, "cpu_s": cpu, "gateway_s": in_gateway,
        "gateway_cpu_s": meter.total("gateway.", meter.cpu), "connector_submit_s": channel,
        "connector_render_s": meter.wall["connector.render"],
        "local_ms_per_invoice": (wall - in_gateway - channel) * 1000 / max(made, 1),
        "local_cpu_ms_per_invoice": (cpu - meter.total("gateway.", meter.cpu) - meter.total(
            "connector.s", meter.cpu)) * 1000 / max(made, 1),
        "gateway_s_by_method": {k[8:]: v for k, v in meter.wall.items() if k[:8] == "gateway."},
        "requests": requests, "requests_per_invoice": sum(requests.values()) / max(made, 1),
        "state_store_bytes": sum(p.stat().st_size for p in
                                 settings.state_path.parent.glob("ar-sync.db*")),
        "traced": trace, "tracemalloc_peak_mb": peaks[0] if peaks else None,
        "tracemalloc_local_peak_mb": peaks[1] if peaks else None, "maxrss_before_mb": rss_before,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "profile": _top(meter.profiler, profile) if meter.profiler else None,
    }


def _top(profiler: cProfile.Profile, n: int) -> list[tuple[str, int, float, float]]:
    """The ``n`` functions with the most own time: (function, calls, tottime, cumtime);
    local cost only (the profiler is paused in gateway calls and submit/status)."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return [(f"{f.replace(root, '').rpartition('lib/python3.11/')[2]}:{line}({fn})", nc, tt, ct)
            for (f, line, fn), (_, nc, tt, ct, _) in rows]


def print_table(f: dict[str, Any]) -> None:
    traced, local = f["tracemalloc_peak_mb"], f["tracemalloc_local_peak_mb"]
    rows = [
        ("orders / units found", f"{f['orders']:,} / {f['units_found']:,}"),
        ("created / delivered / held", f"{f['invoices_created']:,} / {f['delivered']:,} / "
                                       f"{f['held']:,} (planted {f['planted_problems']})"),
        ("held reasons", ", ".join(f"{k} {v}" for k, v in f["held_reasons"].items()) or "-"),
        ("wall / CPU", f"{f['wall_s']:.2f} s / {f['cpu_s']:.2f} s"),
        ("in gateway (sandbox)", f"{f['gateway_s']:.2f} s ({f['gateway_cpu_s']:.2f} s CPU)"),
        (f"connector submit ({f['connector']})", f"{f['connector_submit_s']:.2f} s"),
        ("connector render (local)", f"{f['connector_render_s']:.2f} s"),
        ("LOCAL COST / invoice", f"{f['local_ms_per_invoice']:.3f} ms (target < 1 ms); CPU "
                                 f"{f['local_cpu_ms_per_invoice']:.3f} ms"),
        ("tracemalloc peak", f"{traced:.1f} MB, {local:.1f} MB outside gateway/submit calls"
         if f["traced"] else "(not traced)"),
        ("ru_maxrss", f"{f['maxrss_mb']:.1f} MB ({f['maxrss_before_mb']:.1f} before the cycle)"
                      + (" inflated by cProfile" if f["profile"] else "")),
        ("state store", f"{f['state_store_bytes'] / 2**20:.1f} MB, "
                        f"{f['state_store_bytes'] / max(f['units_found'], 1) / 1024:.1f} KB/unit"),
        ("gateway requests / invoice", f"{f['requests_per_invoice']:.3f}"),
    ] + [(f"  {m}", f"{n:>5} calls {f['gateway_s_by_method'].get(m, 0):7.2f} s")
         for m, n in sorted(f["requests"].items())]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    for name, calls, tottime, cumtime in f["profile"] or ():
        print(f"  {tottime:7.3f} s own {cumtime:7.3f} s cum {calls:>10,}  {name}")


def scaling(null: bool, workdir: Path) -> list[dict[str, Any]]:
    """2,500 / 5,000 / 10,000 orders traced, each in a fresh process (ru_maxrss is per
    process), two at a time: the memory figures do not depend on the other process."""
    def one(n: int) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--orders", str(n), "--json", "--trace",
               "--workdir", str(workdir / f"scale-{n}"), *["--null-connector"] * null]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return dict(json.loads(out))

    with ThreadPoolExecutor(2) as pool:
        return sorted(pool.map(one, (10_000, 2_500, 5_000)), key=lambda r: int(r["orders"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    p.add_argument("--null-connector", action="store_true", help="no channel latency")
    p.add_argument("--trace", action="store_true", help="tracemalloc (about 4x slower)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="top N local functions")
    p.add_argument("--scaling", action="store_true", help="peak memory at 2.5k/5k/10k orders")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--batch-size", type=int, default=200, help="[billing] batch_size")
    args = p.parse_args()
    BATCH[0] = args.batch_size
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ar-sync-bench-"))
    try:
        result: Any = scaling(args.null_connector, workdir) if args.scaling else measure(
            args.orders, workdir, null=args.null_connector, trace=args.trace, profile=args.profile)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=1))
    elif not args.scaling:
        print_table(result)
    else:
        print(" orders invoices  tracemalloc peak (outside gateway)  ru_maxrss (before cycle)")
        for r in result:
            print(f"{r['orders']:>7,} {r['invoices_created']:>8,} {r['tracemalloc_peak_mb']:>14.1f}"
                  f" MB ({r['tracemalloc_local_peak_mb']:5.1f} MB) {r['maxrss_mb']:>15.1f} MB "
                  f"({r['maxrss_before_mb']:5.1f} MB)")


if __name__ == "__main__":
    main()
