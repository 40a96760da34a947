from celery import shared_task
from django.db import transaction

from admin_jobs.models import JobDirection, JobKind, JobTrigger
from admin_jobs.services import job_enqueue
from xero_integration.models import XeroEntityLink
from xero_integration.payment_tasks import payments_pull_schedule_task  # noqa: F401 - registers


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


@shared_task(name="xero_integration.tasks.invoices_push_schedule_task")
def invoices_push_schedule_task() -> None:
    """Hourly: queue pushes of released invoices that are not in Xero or changed since."""
    from xero_integration.invoice_sync import invoices_push_due  # noqa: PLC0415 - task body

    for entity_id in XeroEntityLink.objects.filter(connection__isnull=False).values_list(
        "entity_id", flat=True
    ):
        invoices_push_due(entity_id=entity_id)
