"""A stateful local stand-in for the Xero Accounting and Identity APIs (see README.md)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
