"""Rendering + validation cost per document: cXML (DTD), UBL (XSD + EN 16931 + Peppol
schematron) and the invoice PDF.

    /work/venv/bin/python bench/render.py [--n 200] [--json]

Needs ../shared/einvoice (the official DTD, XSD and schematron). Setup (loading schemas,
compiling the schematron) is reported apart from the per-document figures: a daemon pays it
once per process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ar_sync.documents.cxml import Credentials, invoice_request  # noqa: E402
from ar_sync.documents.pdf import render_pdf  # noqa: E402
from ar_sync.documents.ubl import build  # noqa: E402
from ar_sync.documents.validation import DtdValidator, UblValidator  # noqa: E402
from tests.conftest import CXML_DTD, SCHEMATRON, SELLER, UBL_XSD_DIR  # noqa: E402
from tests.ubl_corpus import corpus  # noqa: E402

CRED = Credentials("NetworkID", "AN01", "NetworkID", "AN02", "NetworkID", "AN01")


def timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(samples),
            "p95_ms": sorted(samples)[int(0.95 * (len(samples) - 1))], "max_ms": max(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="documents per format")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for path in (CXML_DTD, UBL_XSD_DIR, *SCHEMATRON):
        if not path.exists():
            sys.exit(f"missing {path}: this benchmark needs ../shared/einvoice")
    start = time.perf_counter()
    dtd = DtdValidator(CXML_DTD)
    ubl_xsd = UblValidator(UBL_XSD_DIR)
    ubl_full = UblValidator(UBL_XSD_DIR, SCHEMATRON)
    setup = time.perf_counter() - start
    invoices = list(corpus().values())
    k = len(invoices)

    def each(fn: Callable[[object], object]) -> Callable[[], object]:
        counter = iter(range(10**9))
        return lambda: fn(invoices[next(counter) % k])

    results = {
        "cxml render": timed(each(lambda i: invoice_request(i, SELLER, CRED)), args.n),  # type: ignore[arg-type]
        "cxml render+DTD": timed(each(lambda i: dtd.errors(
            invoice_request(i, SELLER, CRED))), args.n),  # type: ignore[arg-type]
        "ubl render": timed(each(lambda i: build(i, SELLER)), args.n),  # type: ignore[arg-type]
        "ubl render+XSD": timed(each(lambda i: ubl_xsd.errors(build(i, SELLER))),  # type: ignore[arg-type]
                                args.n),
        "ubl render+XSD+schematron": timed(each(lambda i: ubl_full.errors(
            build(i, SELLER))), args.n),  # type: ignore[arg-type]
        "pdf render": timed(each(lambda i: render_pdf(i, SELLER)), args.n),  # type: ignore[arg-type]
    }
    if args.json:
        print(json.dumps({"setup_seconds": setup, "documents": args.n, **results}, indent=2))
        return
    print(f"setup (DTD + 3 XSDs + compile 2 schematron XSLTs): {setup:.2f} s; "
          f"{args.n} documents per row, {k} invoice shapes")
    print(f"{'':<28} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(f"{name:<28} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['max_ms']:>8.2f}")


if __name__ == "__main__":
    main()
