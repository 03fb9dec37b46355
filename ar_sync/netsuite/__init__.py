"""NetSuite gateways: the sandbox account now; REST and SOAP plug into the same interface."""

from ar_sync.netsuite.gateway import Gateway, InvoiceSummary, open_gateway

__all__ = ["Gateway", "InvoiceSummary", "open_gateway"]
