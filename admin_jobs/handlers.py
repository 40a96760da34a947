"""The handler registry: how sync code plugs into the engine without touching leases or retries.

    from admin_jobs.handlers import JobSuccess, job_handler

    @job_handler(JobKind.PUSH_CONTACT)
    def push_contact(job: BackgroundJob) -> JobSuccess:
        contact = xero_contact_push(customer=job.target)  # raises TransientJobError / ...
        return JobSuccess(result={"contact_id": contact.id}, external_url=contact.url)

Batch handlers (Xero accepts 50 records a request) receive up to `batch_size` claimed jobs of one
kind and entity and return one outcome per job id:

    @job_handler(JobKind.PUSH_INVOICE, batch_size=50)
    def push_invoices(jobs: list[BackgroundJob]) -> dict[int, Outcome]: ...

Handlers live in each app's `jobs.py`; AdminJobsConfig.ready() imports them in every process
(web and worker), so registering a handler never means editing admin_jobs.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from django.core.exceptions import ImproperlyConfigured

from admin_jobs.errors import JobError
from admin_jobs.models import BackgroundJob, JobKind


@dataclass(frozen=True)
class JobSuccess:
    result: dict[str, Any] | None = None
    external_url: str = ""  # link to the record in Xero, shown on the job and the record page


# One job's outcome: a success, or one of the JobError family (as an instance, not raised).
Outcome = Union[JobSuccess, JobError]  # noqa: UP007 -- used at runtime in isinstance checks
SingleHandler = Callable[[BackgroundJob], JobSuccess | None]
BatchHandler = Callable[[list[BackgroundJob]], Mapping[int, Outcome]]
HandlerFunc = SingleHandler | BatchHandler
F = TypeVar("F", bound=HandlerFunc)


@dataclass(frozen=True)
class JobHandler:
    kind: str
    func: HandlerFunc
    batch_size: int


_registry: dict[str, JobHandler] = {}


def job_handler(kind: str, *, batch_size: int = 1) -> Callable[[F], F]:
    """Register `func` as the handler of `kind`. batch_size > 1 makes it a batch handler."""
    if kind not in JobKind.values:
        raise ImproperlyConfigured(f"Unknown job kind {kind!r}; add it to JobKind first.")
    if batch_size < 1:
        raise ImproperlyConfigured("batch_size must be at least 1.")

    def register(func: F) -> F:
        existing = _registry.get(kind)
        if existing is not None and existing.func is not func:
            raise ImproperlyConfigured(
                f"Job kind {kind!r} already has a handler: {existing.func.__module__}."
                f"{existing.func.__qualname__}"
            )
        _registry[kind] = JobHandler(kind=kind, func=func, batch_size=batch_size)
        return func

    return register


def job_handler_get(*, kind: str) -> JobHandler | None:
    return _registry.get(kind)
