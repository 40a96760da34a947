"""Thin Celery entry points. The job table decides what runs; these only wake the engine up.

No Celery retries here: a job's retries, waits and back-off are rows with a not_before, written by
the engine, so a message is never redelivered into a loop and never carries a long countdown.
"""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="admin_jobs.tasks.job_run_task", ignore_result=True, acks_late=True)
def job_run_task(job_id: int) -> None:
    # The one allowed local import: services imports this module to publish wake-ups.
    from admin_jobs.services import job_run  # noqa: PLC0415

    logger.debug("job_run_task job_id=%s", job_id)
    job_run(job_id=job_id)


@shared_task(name="admin_jobs.tasks.job_sweep_task", ignore_result=True)
def job_sweep_task() -> None:
    from admin_jobs.services import job_sweep  # noqa: PLC0415

    published = job_sweep()
    if published:
        logger.info("job_sweep_task published %d jobs", published)
