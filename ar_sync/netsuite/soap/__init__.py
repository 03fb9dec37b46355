"""The SuiteTalk SOAP gateway (``[netsuite] api = "soap"``), over NetSuite's own WSDL.

=============  ===============================================================
``options``    ``[netsuite.soap]``: validation, and the options built from it
``passport``   the TBA token passport (HMAC-SHA256), fresh for every request
``client``     the zeep client: WSDL loaded once and cached, namespaces from the
               version, one place that retries and classifies faults
``records``    NetSuite's SOAP records to units, invoices, summaries, tax codes
``gateway``    :class:`SoapGateway`, the :class:`~ar_sync.netsuite.gateway.Gateway`
=============  ===============================================================

Only ``client``, ``records`` and ``gateway`` import zeep, and only this package imports
them: a command that does not talk to NetSuite never pays for zeep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ar_sync.netsuite.soap.gateway import SoapGateway

__all__ = ["SoapGateway"]


def __getattr__(name: str) -> object:
    if name == "SoapGateway":
        from ar_sync.netsuite.soap.gateway import SoapGateway

        return SoapGateway
    raise AttributeError(name)
