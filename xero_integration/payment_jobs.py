"""Job handlers for payments and webhooks (registered from xero_integration/jobs.py)."""
