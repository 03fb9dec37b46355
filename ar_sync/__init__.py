"""ar-sync: unattended NetSuite invoicing — pull, create exactly once, check, deliver, record."""

__version__ = "0.1.0"
