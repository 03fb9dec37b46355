"""Fault tolerance: 1,000 units under 20 % injected transient faults, against a fault-free run.

    /work/venv/bin/python bench/faults.py [--units 1000] [--fault-rate 0.2] [--seed 7]
                                          [--max-cycles 25] [--workdir DIR] [--json]

The scenario of ``tests/test_faults.py`` (whose helpers this imports): a generated account of
``--units`` due orders (~1 % with a planted line-amount error the checks hold) served by the
loopback NetSuite REST fake, delivered through the Coupa cXML portal fake with ``status_url``
set, each behind ``tests/fault_proxy.py``; every customer bills through Coupa. It runs cycles
in process until nothing waits for a retry (``[retry]`` base and cap 1 s), twice: once with
the proxies passing everything through, once injecting ``--fault-rate`` faults of every kind
(resets before and after the work, read timeouts, 429, 503 bursts, malformed and truncated
bodies, slow answers) on both sides, and prints for each:

* **completion**: units delivered / held (and why) / stuck (in any other state: must be 0);
* **duplicates**: invoices NetSuite holds twice under one external id, and invoices the portal
  accepted twice (both must be 0), and how often NetSuite had to refuse a second transform
  under a taken external id (the product looks up before it creates, so this stays near 0);
* **requests per unit**, NetSuite and portal, as the proxies counted them (every retry,
  look-up and status request included), and the faults they injected;
* **cycles and wall time to drain**, and CPU time (everything runs in one process);
* retries scheduled, circuit-breaker openings and the deliveries they deferred, and the most
  attempts any one unit needed (create, deliver).

A script run on demand, not a test. All requests stay on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_faults import SEED, UNITS, drain, outcome, scenario  # noqa: E402


def measure(units: int, fault_rate: float, seed: int, max_cycles: int,
            workdir: Path) -> dict[str, Any]:
    """One drained run; its figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    cpu = time.process_time()
    with scenario(workdir, units=units, fault_rate=fault_rate, seed=seed) as sc:
        run = drain(sc, max_cycles=max_cycles)
        ns, cx = sc.netsuite_proxy.snapshot(), sc.portal_proxy.snapshot()
        got = outcome(sc)
        refused = dict(sc.fake.stats.refusals)
        planted = len(sc.planted)
    cpu = time.process_time() - cpu
    db = sqlite3.connect(workdir / "state" / "ar-sync.db")
    try:
        events = Counter(dict(db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind")))
        retries = db.execute("SELECT operation, MAX(n) FROM (SELECT operation, COUNT(*) AS n "
                             "FROM attempts GROUP BY key, operation) GROUP BY operation")
        most_attempts = dict(retries.fetchall())
    finally:
        db.close()
    reasons = Counter(got.held.values())
    return {
        "units": units, "fault_rate": fault_rate, "seed": seed, "planted": planted,
        "delivered": got.states.get("delivered", 0), "held": sum(reasons.values()),
        "held_reasons": dict(reasons), "stuck": got.stuck, "states": dict(got.states),
        "duplicates_netsuite": got.duplicates_netsuite,
        "duplicates_portal": got.duplicates_portal,
        "netsuite_duplicate_refusals": refused.get("DUP_RCRD", 0),
        "netsuite_requests": ns["requests"], "portal_requests": cx["requests"],
        "netsuite_per_unit": ns["requests"] / units, "portal_per_unit": cx["requests"] / units,
        "netsuite_routes": ns["routes"], "portal_routes": cx["routes"],
        "netsuite_faults": ns["faults"], "portal_faults": cx["faults"],
        "netsuite_faulted_share": ns["faulted"] / max(ns["eligible"], 1),
        "portal_faulted_share": cx["faulted"] / max(cx["eligible"], 1),
        "cycles": run.cycles, "drained": run.drained, "failed_cycles": len(run.failures),
        "wall_s": run.wall_s, "cpu_s": cpu,
        "retries_scheduled": events.get("retry_scheduled", 0),
        "breaker_openings": events.get("breaker_opened", 0),
        "deferred_deliveries": events.get("retry_deferred", 0),
        "most_attempts": most_attempts,
        "integrity": got.integrity, "audit_chain_ok": got.chain[1] is None,
    }


def by_kind(routes: dict[str, int]) -> str:
    """Requests by what they were: the route's last path segment (transform, suiteql,
    token; invoices, status)."""
    kinds: Counter[str] = Counter()
    for route, n in routes.items():
        last = route.rstrip("/").rsplit("/", 1)[-1]
        kinds[{"invoice": "transform", "{id}": "status", "invoices": "submit"}.get(last, last)] += n
    return ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))


def print_table(clean: dict[str, Any], faulty: dict[str, Any]) -> None:
    def completion(f: dict[str, Any]) -> str:
        why = ", ".join(f"{k} {v}" for k, v in sorted(f["held_reasons"].items()))
        return f"{f['delivered']:,} / {f['held']:,} ({why or '-'}) / {f['stuck']}"

    def faults(f: dict[str, Any], side: str) -> str:
        kinds = f[f"{side}_faults"]
        share = f[f"{side}_faulted_share"] * 100
        return f"{share:.1f} %: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))

    rows = [
        ("", "fault-free", f"{faulty['fault_rate'] * 100:.0f} % faults"),
        ("delivered / held / stuck", completion(clean), completion(faulty)),
        ("duplicates NetSuite / portal", f"{clean['duplicates_netsuite']} / "
         f"{clean['duplicates_portal']}", f"{faulty['duplicates_netsuite']} / "
         f"{faulty['duplicates_portal']}"),
        ("2nd transform refused (DUP_RCRD)", str(clean["netsuite_duplicate_refusals"]),
         str(faulty["netsuite_duplicate_refusals"])),
        ("NetSuite requests (per unit)", f"{clean['netsuite_requests']:,} "
         f"({clean['netsuite_per_unit']:.3f})", f"{faulty['netsuite_requests']:,} "
         f"({faulty['netsuite_per_unit']:.3f})"),
        ("portal requests (per unit)", f"{clean['portal_requests']:,} "
         f"({clean['portal_per_unit']:.3f})", f"{faulty['portal_requests']:,} "
         f"({faulty['portal_per_unit']:.3f})"),
        ("  vs fault-free", "1.00 / 1.00",
         f"{faulty['netsuite_per_unit'] / clean['netsuite_per_unit']:.2f} / "
         f"{faulty['portal_per_unit'] / clean['portal_per_unit']:.2f}"),
        ("cycles to drain (failed)", f"{clean['cycles']} ({clean['failed_cycles']})",
         f"{faulty['cycles']} ({faulty['failed_cycles']})"),
        ("wall time to drain / CPU", f"{clean['wall_s']:.1f} s / {clean['cpu_s']:.1f} s",
         f"{faulty['wall_s']:.1f} s / {faulty['cpu_s']:.1f} s"),
        ("retries / breaker openings / deferred", f"{clean['retries_scheduled']} / "
         f"{clean['breaker_openings']} / {clean['deferred_deliveries']}",
         f"{faulty['retries_scheduled']} / {faulty['breaker_openings']} / "
         f"{faulty['deferred_deliveries']}"),
        ("most attempts of one unit", json.dumps(clean["most_attempts"]),
         json.dumps(faulty["most_attempts"])),
        ("state file / audit chain", f"{clean['integrity']} / "
         f"{'ok' if clean['audit_chain_ok'] else 'BROKEN'}",
         f"{faulty['integrity']} / {'ok' if faulty['audit_chain_ok'] else 'BROKEN'}"),
    ]
    width = max(len(r[0]) for r in rows)
    mid = max(len(r[1]) for r in rows)
    print("\n".join(f"{a:<{width}}  {b:<{mid}}  {c}" for a, b, c in rows))
    print(f"NetSuite requests: fault-free {by_kind(clean['netsuite_routes'])}; "
          f"faulty {by_kind(faulty['netsuite_routes'])}")
    print(f"portal requests:   fault-free {by_kind(clean['portal_routes'])}; "
          f"faulty {by_kind(faulty['portal_routes'])}")
    print(f"faults injected, NetSuite: {faults(faulty, 'netsuite')}")
    print(f"faults injected, portal:   {faults(faulty, 'portal')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--units", type=int, default=UNITS)
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--max-cycles", type=int, default=25)
    p.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ar-sync-bench-faults-"))
    try:
        clean = measure(args.units, 0.0, args.seed, args.max_cycles, workdir / "clean")
        faulty = measure(args.units, args.fault_rate, args.seed, args.max_cycles,
                         workdir / "faulty")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"fault_free": clean, "faulty": faulty}, indent=1))
    else:
        print_table(clean, faulty)


if __name__ == "__main__":
    main()
