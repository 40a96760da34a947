"""Thin Celery entry points for the beat schedule; the services and the job engine do the work."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="journals.tasks.cost_of_sales_journals_run_task", ignore_result=True)
def cost_of_sales_journals_run_task() -> None:
    """Hourly: post the journals of every entity whose local journal hour has passed."""
    # The one allowed local import: the services import the job engine, which imports Celery tasks.
    from journals.services import cost_of_sales_journals_run  # noqa: PLC0415

    done = cost_of_sales_journals_run()
    logger.info(
        "cost-of-sales journals: %s",
        {code: len(results) for code, results in done.items() if results},
    )


@shared_task(name="journals.tasks.xero_reconcile_schedule_task", ignore_result=True)
def xero_reconcile_schedule_task() -> None:
    """Daily: one reconciliation job per connected Xero organisation."""
    from journals.reconciliation import xero_reconcile_schedule  # noqa: PLC0415

    logger.info("reconciliation jobs queued: %d", len(xero_reconcile_schedule()))
