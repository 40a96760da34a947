"""The hourly payments-pull beat (imported from xero_integration/tasks.py for autodiscovery)."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="xero_integration.tasks.payments_pull_schedule_task", ignore_result=True)
def payments_pull_schedule_task() -> None:
    """Hourly: queue a payments pull for each organisation in business hours and due (≥ 2 h)."""
    # The one allowed local import: keeps the worker's task module free of service imports.
    from xero_integration.payment_sync import payments_pull_schedule  # noqa: PLC0415

    jobs = payments_pull_schedule()
    if jobs:
        logger.info("payments_pull_schedule_task queued %d pulls", len(jobs))
