"""Fixtures for the sandbox's own suite come from the reusable module."""

from xero_sandbox.testing import sandbox, sandbox_server, xero

__all__ = ["sandbox", "sandbox_server", "xero"]
