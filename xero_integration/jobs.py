"""Job handlers of the Xero connection: pulling an organisation's accounts, refreshing tokens."""

from collections.abc import Mapping

from admin_jobs.handlers import JobSuccess, Outcome, job_handler
from admin_jobs.models import BackgroundJob, JobKind
from xero_integration.contact_sync import customers_push
from xero_integration.models import XeroConnection
from xero_integration.services import authorisations_refresh_idle, xero_accounts_pull


@job_handler(JobKind.PULL_ACCOUNTS)
def pull_accounts(job: BackgroundJob) -> JobSuccess:
    connection = XeroConnection.objects.get(pk=job.payload["connection_id"])
    accounts, tax_rates = xero_accounts_pull(connection=connection)
    return JobSuccess(result={"accounts": accounts, "tax_rates": tax_rates})


@job_handler(JobKind.REFRESH_TOKENS)
def refresh_tokens(job: BackgroundJob) -> JobSuccess:
    return JobSuccess(result={"refreshed": authorisations_refresh_idle()})


@job_handler(JobKind.PUSH_CONTACT, batch_size=50)
def push_contacts(jobs: list[BackgroundJob]) -> Mapping[int, Outcome]:
    return customers_push(jobs=jobs)
