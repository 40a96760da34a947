"""Job handlers for payments (registered from xero_integration/jobs.py): thin, the work is in
xero_integration/payment_sync.py."""

from admin_jobs.errors import JobSkipped
from admin_jobs.handlers import JobSuccess, job_handler
from admin_jobs.models import BackgroundJob, JobKind
from xero_integration.models import XeroConnection
from xero_integration.payment_sync import payment_push, payments_pull


@job_handler(JobKind.PULL_PAYMENTS)
def pull_payments(job: BackgroundJob) -> JobSuccess:
    connection = XeroConnection.objects.filter(pk=job.target_object_id or 0).first()
    if connection is None:
        raise JobSkipped("The Xero organisation was removed from BMS.")
    result = payments_pull(connection=connection, job=job)
    return JobSuccess(result=result.to_json())


@job_handler(JobKind.PUSH_PAYMENT)
def push_payment(job: BackgroundJob) -> JobSuccess:
    return payment_push(job=job)
