"""The SuiteTalk REST gateway (``[netsuite] api = "rest"``).

=============  ===============================================================
``auth``       OAuth 2.0 client credentials (JWT assertion) and TBA (OAuth 1.0a)
``suiteql``    the one formatter every query value goes through; keyset paging
``queries``    every SuiteQL query, and which column names are unverified
``records``    SuiteQL rows to units, invoices and summaries
``errors``     NetSuite's error bodies to the error tree
``client``     one session, timeouts, the concurrency limit, bounded backoff
``gateway``    :class:`RestGateway`, the :class:`~ar_sync.netsuite.gateway.Gateway`
``options``    ``[netsuite.rest]``: validation, and the client built from it
``ping``       ``ar-sync netsuite ping``
=============  ===============================================================
"""

from ar_sync.netsuite.rest.gateway import RestGateway

__all__ = ["RestGateway"]
