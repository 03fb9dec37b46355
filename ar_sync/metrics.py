"""This process's own counters: what the state store does not record.

The store has every create and delivery attempt; it does not have the reads (SuiteQL pages,
searches, read-backs, token requests) nor how NetSuite answered each HTTP request. Those are
counted here, by API (``rest``/``soap``), kind of request and result (``ok``, ``429``,
``4xx``, ``5xx``, ``timeout``, ``connection``, or the SOAP fault's name), and served by the
daemon's ``/metrics`` beside the store's figures (:mod:`ar_sync.health`). They start at zero
with each process, as Prometheus counters do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)

NETSUITE_REQUESTS = Counter(
    "arsync_netsuite_requests", "Requests sent to NetSuite, by API, kind and result",
    ["api", "kind", "result"], registry=REGISTRY)


def netsuite_request(api: str, kind: str, result: str) -> None:
    NETSUITE_REQUESTS.labels(api, kind, result).inc()


def http_result(status: int) -> str:
    """An HTTP status as a result label: ``ok`` below 400, 429 by itself, else the class."""
    if status < 400:
        return "ok"
    return "429" if status == 429 else f"{status // 100}xx"
