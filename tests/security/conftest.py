"""The Xero sandbox fixtures (an entity connected to the demo organisation) for these tests."""

from tests.xero_integration.conftest import world, xero_env  # noqa: F401
