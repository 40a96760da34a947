"""Job handlers of the journals app: pushing a cost-of-sales journal, reconciling with Xero."""

from admin_jobs.errors import JobSkipped, PermanentJobError
from admin_jobs.handlers import JobSuccess, job_handler
from admin_jobs.models import BackgroundJob, JobKind
from journals.models import CostOfSalesJournal
from journals.reconciliation import xero_reconcile
from journals.selectors import journal_xero_url
from journals.services import cost_of_sales_journal_push, journal_push_result
from xero_integration.models import XeroConnection


@job_handler(JobKind.COST_OF_SALES_JOURNAL)
def cost_of_sales_journal(job: BackgroundJob) -> JobSuccess:
    journal = (
        CostOfSalesJournal.objects.filter(pk=job.target_object_id).first()
        if job.target_object_id is not None
        else None
    )
    if journal is None:
        raise JobSkipped("The journal no longer exists.")
    journal = cost_of_sales_journal_push(journal=journal)
    return JobSuccess(
        result=journal_push_result(journal=journal), external_url=journal_xero_url(journal=journal)
    )


@job_handler(JobKind.RECONCILE)
def reconcile(job: BackgroundJob) -> JobSuccess:
    connection = (
        XeroConnection.objects.filter(pk=job.target_object_id).first()
        if job.target_object_id is not None
        else None
    )
    if connection is None:
        raise JobSkipped("The Xero organisation is no longer connected.")
    report = xero_reconcile(connection=connection)
    if report.drifts:
        # One failed job per organisation and run: it lists every drift with links to both
        # records, and the next clean run supersedes (auto-resolves) it.
        raise PermanentJobError(report.message, detail=report.as_detail())
    return JobSuccess(result=report.as_detail())
