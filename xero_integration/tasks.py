from celery import shared_task
from django.db import transaction

from admin_jobs.models import JobDirection, JobKind, JobTrigger
from admin_jobs.services import job_enqueue


@shared_task(name="xero_integration.tasks.tokens_refresh_schedule_task")
def tokens_refresh_schedule_task() -> None:
    """Daily: keep idle authorisations alive long before their 60-day expiry."""
    with transaction.atomic():
        job_enqueue(
            kind=JobKind.REFRESH_TOKENS,
            entity=None,
            description="Refresh idle Xero authorisations",
            direction=JobDirection.IMPORT,
            triggered_by=JobTrigger.SCHEDULE,
        )
