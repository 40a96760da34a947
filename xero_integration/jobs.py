"""Job handlers of the Xero connection: pulling an organisation's accounts, refreshing tokens."""

from collections.abc import Mapping

from admin_jobs.handlers import JobSuccess, Outcome, job_handler
from admin_jobs.models import BackgroundJob, JobKind
from billing.models import CreditNote, Invoice
from xero_integration import payment_jobs  # noqa: F401 - registers its handlers
from xero_integration.contact_sync import customers_push
from xero_integration.customer_services import contacts_import_preview, customers_bulk_sync_run
from xero_integration.invoice_sync import documents_push
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


@job_handler(JobKind.BULK_CUSTOMER_SYNC)
def bulk_customer_sync(job: BackgroundJob) -> JobSuccess:
    return customers_bulk_sync_run(job=job)


@job_handler(JobKind.IMPORT_CONTACTS)
def import_contacts(job: BackgroundJob) -> JobSuccess:
    return contacts_import_preview(job=job)


@job_handler(JobKind.PUSH_INVOICE, batch_size=50)
def push_invoices(jobs: list[BackgroundJob]) -> Mapping[int, Outcome]:
    return documents_push(jobs=jobs, model=Invoice)


@job_handler(JobKind.PUSH_CREDIT_NOTE, batch_size=50)
def push_credit_notes(jobs: list[BackgroundJob]) -> Mapping[int, Outcome]:
    return documents_push(jobs=jobs, model=CreditNote)
