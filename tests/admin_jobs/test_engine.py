"""The engine on whatever database the suite runs on (SQLite or PostgreSQL)."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.transaction import TransactionManagementError

from admin_jobs import services
from admin_jobs.errors import JobSkipped, JobWait, PermanentJobError, TransientJobError
from admin_jobs.handlers import JobSuccess
from admin_jobs.models import (
    BackgroundJob,
    JobAttempt,
    JobAttemptOutcome,
    JobDirection,
    JobKind,
    JobState,
    JobTrigger,
    JobWaitKind,
)
from admin_jobs.services import (
    JobChild,
    job_cancel,
    job_claim,
    job_enqueue,
    job_enqueue_children,
    job_resolve,
    job_retry,
    job_run,
    job_sweep,
    jobs_resume,
)
from bms import clock
from tests.billing.factories import CustomerFactory, EntityFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def enqueue(target: Any = None, **overrides: Any) -> BackgroundJob:
    kwargs: dict[str, Any] = {
        "kind": JobKind.PUSH_CONTACT,
        "entity": target.entity if target is not None else None,
        "target": target,
        "description": f"Contact {target.name}" if target is not None else "Entity-wide",
        "direction": JobDirection.EXPORT,
        "triggered_by": JobTrigger.USER,
    }
    kwargs.update(overrides)
    with transaction.atomic():
        return job_enqueue(**kwargs)


def reload(job: BackgroundJob) -> BackgroundJob:
    return BackgroundJob.objects.get(pk=job.pk)


def delay_after_last_attempt(job: BackgroundJob) -> float:
    """Seconds from the end of the job's last attempt to its next not_before."""
    attempt = JobAttempt.objects.filter(job=job).order_by("-number").first()
    assert attempt is not None and attempt.ended_at is not None and job.not_before is not None
    return (job.not_before - attempt.ended_at).total_seconds()


# --- Enqueue and dedupe -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueue_outside_a_transaction_is_refused() -> None:
    customer = CustomerFactory()

    with pytest.raises(TransactionManagementError):
        job_enqueue(
            kind=JobKind.PUSH_CONTACT,
            entity=customer.entity,
            target=customer,
            description="x",
            direction=JobDirection.EXPORT,
            triggered_by=JobTrigger.USER,
        )

    assert BackgroundJob.objects.count() == 0


def test_enqueue_publishes_only_after_commit(
    published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    customer = CustomerFactory(name="Harbour Cafe")
    user = UserFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = enqueue(customer, description="Contact Harbour Cafe", user=user)
        assert published.ids == []

    assert len(callbacks) == 1
    assert published.calls == [(job.pk, None)]
    job = reload(job)
    assert job.state == JobState.QUEUED
    assert job.not_before == job.created_at
    assert job.published_at == job.created_at
    assert job.dedupe_key == f"push_contact:billing.customer:{customer.pk}"
    assert job.triggered_by_user == user
    assert job.target == customer
    assert job.attempts == 0


def test_second_sync_press_returns_the_unstarted_job(
    published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    customer = CustomerFactory()

    with django_capture_on_commit_callbacks(execute=True):
        first = enqueue(customer)
        second = enqueue(customer)

    assert second.pk == first.pk
    assert BackgroundJob.objects.count() == 1
    assert published.ids == [first.pk]


def test_entity_wide_jobs_dedupe_on_kind_and_entity() -> None:
    entity = EntityFactory()
    other = EntityFactory()

    first = enqueue(kind=JobKind.PULL_PAYMENTS, entity=entity, direction=JobDirection.IMPORT)
    again = enqueue(kind=JobKind.PULL_PAYMENTS, entity=entity, direction=JobDirection.IMPORT)
    elsewhere = enqueue(kind=JobKind.PULL_PAYMENTS, entity=other, direction=JobDirection.IMPORT)

    assert again.pk == first.pk
    assert elsewhere.pk != first.pk
    assert first.dedupe_key == f"pull_payments:entity:{entity.pk}"


def test_change_during_a_running_push_queues_one_follow_up_that_waits_for_it(
    published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    customer = CustomerFactory()
    running = enqueue(customer)
    assert job_claim(job_id=running.pk) is not None

    follow_up = enqueue(customer)
    follow_up_again = enqueue(customer)

    assert follow_up.pk != running.pk
    assert follow_up_again.pk == follow_up.pk
    assert BackgroundJob.objects.count() == 2
    # The follow-up may not start while the earlier job for the same record runs.
    assert job_claim(job_id=follow_up.pk) is None
    assert reload(follow_up).state == JobState.QUEUED
    assert reload(follow_up).attempts == 0

    # When the running one finishes, the follow-up is woken and can be claimed.
    running = reload(running)
    with django_capture_on_commit_callbacks(execute=True):
        assert services._job_record_outcome(job=running, outcome=JobSuccess())
    assert published.ids == [follow_up.pk]
    claimed = job_claim(job_id=follow_up.pk)
    assert claimed is not None
    assert claimed.state == JobState.RUNNING


# --- Claim and lease --------------------------------------------------------------------------


def test_claim_takes_a_lease_and_opens_an_attempt() -> None:
    job = enqueue(CustomerFactory())
    now = clock.now()

    claimed = job_claim(job_id=job.pk)

    assert claimed is not None
    assert claimed.state == JobState.RUNNING
    assert claimed.attempts == 1
    assert len(claimed.lease_token) == 32
    assert (
        now + timedelta(seconds=360) <= claimed.lease_until <= clock.now() + timedelta(seconds=360)
    )
    attempt = JobAttempt.objects.get(job=job)
    assert (attempt.number, attempt.lease_token, attempt.outcome) == (
        1,
        claimed.lease_token,
        JobAttemptOutcome.RUNNING,
    )


def test_claim_does_nothing_for_a_duplicate_early_or_finished_message() -> None:
    customer = CustomerFactory()
    early = enqueue(customer, not_before=clock.now() + timedelta(minutes=5))
    job = enqueue(CustomerFactory())
    claimed = job_claim(job_id=job.pk)
    assert claimed is not None

    assert job_claim(job_id=job.pk) is None  # duplicate message while it runs
    assert job_claim(job_id=early.pk) is None  # not due yet
    assert job_claim(job_id=999_999) is None  # gone
    services._job_record_outcome(job=claimed, outcome=JobSuccess())
    assert job_claim(job_id=job.pk) is None  # finished

    assert reload(job).attempts == 1
    assert reload(early).attempts == 0
    assert JobAttempt.objects.count() == 1


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_record(
    published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = enqueue(CustomerFactory())
    first = job_claim(job_id=job.pk)
    assert first is not None
    assert job_claim(job_id=job.pk) is None  # lease still valid

    clock.advance(seconds=361)
    second = job_claim(job_id=job.pk)

    assert second is not None
    assert second.lease_token != first.lease_token
    assert second.attempts == 2
    attempts = list(JobAttempt.objects.filter(job=job).order_by("number"))
    assert [a.outcome for a in attempts] == [JobAttemptOutcome.LOST, JobAttemptOutcome.RUNNING]
    # The worker that lost its lease finishes late: nothing it says is written.
    assert (
        services._job_record_outcome(job=first, outcome=JobSuccess(result={"by": "old"})) is False
    )
    assert reload(job).state == JobState.RUNNING
    assert reload(job).lease_token == second.lease_token
    # The new holder's outcome is.
    assert services._job_record_outcome(job=second, outcome=JobSuccess(result={"by": "new"}))
    job = reload(job)
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"by": "new"}
    assert job.lease_until is None


def test_a_job_that_kills_its_worker_three_times_is_stopped() -> None:
    job = enqueue(CustomerFactory())
    for _ in range(3):
        assert job_claim(job_id=job.pk) is not None
        clock.advance(seconds=361)

    assert job_claim(job_id=job.pk) is None

    job = reload(job)
    assert job.state == JobState.FAILED
    assert "stopped 3 times in a row" in job.error_message
    assert job.attempts == 4


# --- Running, retries and waits ---------------------------------------------------------------


def test_success_records_result_link_and_attempt(register: Any) -> None:
    register(
        JobKind.PUSH_CONTACT,
        lambda job: JobSuccess(
            result={"contact_id": "c-1"}, external_url="https://go.xero.com/c/1"
        ),
    )
    job = enqueue(CustomerFactory())

    job_run(job_id=job.pk)

    job = reload(job)
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"contact_id": "c-1"}
    assert job.external_url == "https://go.xero.com/c/1"
    assert job.finished_at == job.updated_at
    attempt = JobAttempt.objects.get(job=job)
    assert attempt.outcome == JobAttemptOutcome.SUCCEEDED
    assert attempt.ended_at is not None


def test_permanent_error_fails_at_once_and_is_never_retried(register: Any, published: Any) -> None:
    def handle(job: BackgroundJob) -> None:
        raise PermanentJobError(
            "Xero rejected the contact: the email address is not valid. Fix it and retry.",
            detail={"ValidationErrors": [{"Message": "Email address must be valid."}]},
        )

    register(JobKind.PUSH_CONTACT, handle)
    job = enqueue(CustomerFactory())

    job_run(job_id=job.pk)
    clock.advance(seconds=3 * 86400)
    swept = job_sweep()
    job_run(job_id=job.pk)  # a stray duplicate message

    job = reload(job)
    assert swept == 0
    assert job.state == JobState.FAILED
    assert job.attempts == 1
    assert job.error_message.startswith("Xero rejected the contact")
    assert job.error_detail == {"ValidationErrors": [{"Message": "Email address must be valid."}]}
    assert job.resolved_at is None
    assert published.ids == []
    attempt = JobAttempt.objects.get(job=job)
    assert attempt.outcome == JobAttemptOutcome.PERMANENT


def test_transient_error_retries_with_growing_delays(
    register: Any, published: Any, no_jitter: None, django_capture_on_commit_callbacks: Any
) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(TransientJobError("Xero 503")))
    job = enqueue(CustomerFactory())

    delays = []
    for _ in range(9):
        job_run(job_id=job.pk)
        job = reload(job)
        assert job.state == JobState.QUEUED
        assert job.published_at is None  # no long countdown: the sweeper wakes it
        delays.append(delay_after_last_attempt(job))
        # Not due yet: the sweeper leaves it, a stray message cannot claim it.
        clock.advance(seconds=delays[-1] - 1)
        assert job_sweep() == 0
        assert job_claim(job_id=job.pk) is None
        clock.advance(seconds=1)
        published.clear()
        with django_capture_on_commit_callbacks(execute=True):
            assert job_sweep() == 1
        assert published.ids == [job.pk]

    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert job.failure_streak == 9
    assert job.attempts == 9
    assert job.error_message == "Xero 503"


def test_jitter_adds_at_most_a_quarter(register: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "_jitter_fraction", lambda: 0.999)
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(TransientJobError("down")))
    job = enqueue(CustomerFactory())

    job_run(job_id=job.pk)

    assert 37.4 < delay_after_last_attempt(reload(job)) < 37.5


def test_retry_after_is_a_lower_bound_on_the_delay(register: Any, no_jitter: None) -> None:
    register(
        JobKind.PUSH_CONTACT,
        lambda job: (_ for _ in ()).throw(TransientJobError("429", retry_after=500)),
    )
    job = enqueue(CustomerFactory())

    job_run(job_id=job.pk)

    assert delay_after_last_attempt(reload(job)) == 500


def test_transient_failures_give_up_after_the_horizon(
    register: Any, settings: Any, no_jitter: None
) -> None:
    settings.BMS_JOB_RETRY_HORIZON_HOURS = 1
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(TransientJobError("Xero 502")))
    job = enqueue(CustomerFactory())
    first_failure = clock.now()

    runs = 0
    while reload(job).state == JobState.QUEUED:
        clock.advance(seconds=max(0, (reload(job).not_before - clock.now()).total_seconds()))
        job_run(job_id=job.pk)
        runs += 1

    job = reload(job)
    assert job.state == JobState.FAILED
    # 30+60+...+1920 = 3810 s ≥ 1 h: the 8th failure is past the horizon.
    assert runs == 8
    assert clock.now() - first_failure == timedelta(seconds=3810)
    assert job.error_message == (
        "Gave up after retrying for 1 hours: Xero 502 Press Retry now once the cause is fixed."
    )
    assert job.resolved_at is None


def test_wait_until_is_not_a_failure(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    until = clock.now() + timedelta(minutes=10)
    outcomes: list[Exception] = [
        TransientJobError("timeout"),
        JobWait("Xero's minute limit reached; waiting for the window to reset", until=until),
    ]

    def handle(job: BackgroundJob) -> JobSuccess:
        if outcomes:
            raise outcomes.pop(0)
        return JobSuccess()

    register(JobKind.PUSH_CONTACT, handle)
    job = enqueue(CustomerFactory())
    job_run(job_id=job.pk)
    assert reload(job).failure_streak == 1
    clock.advance(seconds=60)
    job_run(job_id=job.pk)

    job = reload(job)
    assert job.state == JobState.WAITING
    assert job.wait_kind == JobWaitKind.UNTIL
    assert job.wait_reason == "Xero's minute limit reached; waiting for the window to reset"
    assert job.not_before == until
    assert job.failure_streak == 0
    assert job.first_failure_at is None
    assert JobAttempt.objects.filter(job=job).last().outcome == JobAttemptOutcome.WAIT  # type: ignore[union-attr]

    clock.advance(seconds=500)
    assert job_sweep() == 0
    clock.advance(seconds=60)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_sweep() == 1
    assert published.ids == [job.pk]
    job_run(job_id=job.pk)
    assert reload(job).state == JobState.SUCCEEDED


def test_short_wait_uses_a_short_countdown(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    register(
        JobKind.PUSH_CONTACT,
        lambda job: (_ for _ in ()).throw(
            JobWait("busy", until=clock.now() + timedelta(seconds=3))
        ),
    )
    job = enqueue(CustomerFactory())

    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=job.pk)

    assert len(published.calls) == 1
    job_id, countdown = published.calls[0]
    assert job_id == job.pk
    assert countdown is not None and 2.9 < countdown <= 3


def test_paused_connection_waits_until_resumed(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    register(
        JobKind.PUSH_CONTACT,
        lambda job: (_ for _ in ()).throw(
            JobWait("The Xero connection needs re-authorising", until=None)
        ),
    )
    customer = CustomerFactory()
    other = CustomerFactory()
    job = enqueue(customer)
    other_job = enqueue(other)
    job_run(job_id=job.pk)
    job_run(job_id=other_job.pk)
    clock.advance(seconds=10 * 86400)
    assert job_sweep() == 0

    assert jobs_resume(entity_ids=[customer.entity_id], reason_contains="nothing like it") == 0
    with django_capture_on_commit_callbacks(execute=True):
        resumed = jobs_resume(entity_ids=[customer.entity_id], reason_contains="re-authoris")

    assert resumed == 1
    assert published.ids == [job.pk]
    job = reload(job)
    assert job.state == JobState.QUEUED
    assert job.not_before == clock.now()
    assert reload(other_job).state == JobState.WAITING
    assert jobs_resume() == 1


# --- Dependencies -----------------------------------------------------------------------------


def test_dependent_waits_then_runs_when_its_dependency_succeeds(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: JobSuccess())
    customer = CustomerFactory(name="Harbour Cafe")
    contact = enqueue(customer, description="Harbour Cafe")
    invoice = enqueue(
        customer,
        kind=JobKind.PUSH_INVOICE,
        description="Invoice INV-0042 — Harbour Cafe",
        depends_on=contact,
    )

    assert invoice.state == JobState.WAITING
    assert invoice.wait_kind == JobWaitKind.DEPENDENCY
    assert invoice.wait_reason == "Waiting for: Contact push — Harbour Cafe"
    assert job_claim(job_id=invoice.pk) is None
    assert jobs_resume() == 0  # a dependency wait is not a pause

    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=contact.pk)

    invoice = reload(invoice)
    assert invoice.state == JobState.QUEUED
    assert invoice.wait_reason == ""
    assert published.ids == [invoice.pk]


def test_dependent_fails_with_its_dependencys_reason_and_retry_requeues_it(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    outcomes: list[Any] = [PermanentJobError("Xero says the contact name is already used.")]

    def contact_push(job: BackgroundJob) -> JobSuccess:
        if outcomes:
            raise outcomes.pop(0)
        return JobSuccess()

    register(JobKind.PUSH_CONTACT, contact_push)
    admin = UserFactory()
    customer = CustomerFactory(name="Harbour Cafe")
    contact = enqueue(customer, description="Harbour Cafe")
    invoice = enqueue(customer, kind=JobKind.PUSH_INVOICE, description="INV-1", depends_on=contact)

    job_run(job_id=contact.pk)

    invoice = reload(invoice)
    assert invoice.state == JobState.FAILED
    assert invoice.error_message == (
        "Sync the customer first: its contact push failed — "
        "Xero says the contact name is already used."
    )
    assert invoice.attempts == 0

    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=contact, user=admin)
    assert published.ids == [contact.pk]
    invoice = reload(invoice)
    assert invoice.state == JobState.WAITING
    assert invoice.wait_kind == JobWaitKind.DEPENDENCY
    assert invoice.error_message == ""

    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=contact.pk)
    assert reload(invoice).state == JobState.QUEUED
    assert published.ids == [invoice.pk]


def test_enqueue_after_the_dependency_failed_fails_and_after_it_succeeded_queues(
    register: Any,
) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(PermanentJobError("bad")))
    customer = CustomerFactory()
    contact = enqueue(customer)
    job_run(job_id=contact.pk)

    invoice = enqueue(customer, kind=JobKind.PUSH_INVOICE, depends_on=contact)
    assert invoice.state == JobState.FAILED
    assert invoice.error_message == "Sync the customer first: its contact push failed — bad"

    other = CustomerFactory()
    register(JobKind.PUSH_CONTACT, lambda job: JobSuccess())
    done = enqueue(other)
    job_run(job_id=done.pk)
    queued = enqueue(other, kind=JobKind.PUSH_INVOICE, depends_on=done)
    assert queued.state == JobState.QUEUED


def test_retrying_a_dependent_retries_its_failed_dependency_first(register: Any) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(PermanentJobError("bad")))
    customer = CustomerFactory()
    contact = enqueue(customer)
    invoice = enqueue(customer, kind=JobKind.PUSH_INVOICE, depends_on=contact)
    job_run(job_id=contact.pk)

    job_retry(job=invoice, user=None)

    assert reload(contact).state == JobState.QUEUED
    assert reload(invoice).state == JobState.WAITING


# --- Batch handlers ---------------------------------------------------------------------------


def test_batch_handler_gets_due_jobs_of_one_kind_and_entity_and_each_outcome_is_recorded(
    register: Any,
) -> None:
    seen: list[list[int]] = []
    entity = EntityFactory()
    customers = [CustomerFactory(entity=entity) for _ in range(5)]
    jobs = [enqueue(c, kind=JobKind.PUSH_INVOICE) for c in customers]
    elsewhere = enqueue(CustomerFactory(), kind=JobKind.PUSH_INVOICE)
    later = enqueue(
        CustomerFactory(entity=entity),
        kind=JobKind.PUSH_INVOICE,
        not_before=clock.now() + timedelta(hours=1),
    )
    contact = enqueue(CustomerFactory(entity=entity), kind=JobKind.PUSH_CONTACT)

    def push_invoices(batch: list[BackgroundJob]) -> dict[int, Any]:
        seen.append([job.pk for job in batch])
        return {
            batch[0].pk: JobSuccess(result={"n": 0}),
            batch[1].pk: TransientJobError("Xero 500"),
            batch[2].pk: PermanentJobError("Account code 999 is not valid."),
            batch[3].pk: JobSkipped("Already in Xero unchanged"),
        }

    register(JobKind.PUSH_INVOICE, push_invoices, batch_size=4)

    job_run(job_id=jobs[2].pk)

    assert seen == [[jobs[2].pk, jobs[0].pk, jobs[1].pk, jobs[3].pk]]
    states = {job.pk: reload(job).state for job in [*jobs, elsewhere, later, contact]}
    assert states == {
        jobs[2].pk: JobState.SUCCEEDED,
        jobs[0].pk: JobState.QUEUED,
        jobs[1].pk: JobState.FAILED,
        jobs[3].pk: JobState.SKIPPED,
        jobs[4].pk: JobState.QUEUED,
        elsewhere.pk: JobState.QUEUED,
        later.pk: JobState.QUEUED,
        contact.pk: JobState.QUEUED,
    }
    assert reload(jobs[1]).error_message == "Account code 999 is not valid."
    assert reload(jobs[3]).skipped_reason == "Already in Xero unchanged"
    assert reload(jobs[0]).failure_streak == 1
    assert JobAttempt.objects.filter(job__in=jobs[:4]).count() == 4
    assert reload(jobs[4]).attempts == 0


def test_batch_claim_respects_per_target_order(register: Any) -> None:
    seen: list[list[int]] = []
    register(
        JobKind.PUSH_INVOICE,
        lambda batch: seen.append([j.pk for j in batch]) or {j.pk: JobSuccess() for j in batch},
        batch_size=10,
    )
    entity = EntityFactory()
    customer = CustomerFactory(entity=entity)
    first = enqueue(customer, kind=JobKind.PUSH_INVOICE)
    assert job_claim(job_id=first.pk) is not None  # a worker is pushing it
    follow_up = enqueue(customer, kind=JobKind.PUSH_INVOICE)
    other = enqueue(CustomerFactory(entity=entity), kind=JobKind.PUSH_INVOICE)

    job_run(job_id=other.pk)

    assert seen == [[other.pk]]
    assert reload(follow_up).state == JobState.QUEUED


def test_batch_handler_exception_applies_to_every_job(register: Any) -> None:
    def boom(batch: list[BackgroundJob]) -> dict[int, Any]:
        raise TransientJobError("Xero unreachable")

    register(JobKind.PUSH_INVOICE, boom, batch_size=50)
    entity = EntityFactory()
    jobs = [enqueue(CustomerFactory(entity=entity), kind=JobKind.PUSH_INVOICE) for _ in range(3)]

    job_run(job_id=jobs[0].pk)

    assert [reload(j).state for j in jobs] == [JobState.QUEUED] * 3
    assert [reload(j).error_message for j in jobs] == ["Xero unreachable"] * 3


def test_missing_batch_outcome_fails_that_job(register: Any) -> None:
    register(JobKind.PUSH_INVOICE, lambda batch: {batch[0].pk: JobSuccess()}, batch_size=2)
    entity = EntityFactory()
    jobs = [enqueue(CustomerFactory(entity=entity), kind=JobKind.PUSH_INVOICE) for _ in range(2)]

    job_run(job_id=jobs[0].pk)

    assert reload(jobs[0]).state == JobState.SUCCEEDED
    assert reload(jobs[1]).state == JobState.FAILED
    assert "reported no outcome" in reload(jobs[1]).error_message


# --- Unexpected problems ----------------------------------------------------------------------


def test_a_crashing_handler_is_recorded_not_retried(register: Any) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: 1 / 0)
    job = enqueue(CustomerFactory())

    job_run(job_id=job.pk)

    job = reload(job)
    assert job.state == JobState.FAILED
    assert job.error_message.startswith("BMS hit an unexpected error (ZeroDivisionError)")
    assert "ZeroDivisionError" in job.error_detail["traceback"]


def test_kind_without_handler_fails(monkeypatch: Any) -> None:
    from admin_jobs import handlers

    monkeypatch.delitem(handlers._registry, JobKind.RECONCILE, raising=False)
    job = enqueue(kind=JobKind.RECONCILE, entity=EntityFactory(), direction=JobDirection.IMPORT)

    job_run(job_id=job.pk)

    assert reload(job).state == JobState.FAILED
    assert "No handler is registered for Reconcile jobs" in reload(job).error_message


def test_skipped_job(register: Any) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(JobSkipped("Archived")))
    job = enqueue(CustomerFactory())

    job_run(job_id=job.pk)

    assert reload(job).state == JobState.SKIPPED
    assert reload(job).skipped_reason == "Archived"


# --- Sweeper ----------------------------------------------------------------------------------


def test_sweeper_republishes_a_job_whose_message_was_lost(
    published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = enqueue(CustomerFactory())  # its on_commit publish never ran: the message is lost

    assert job_sweep() == 0  # published a moment ago: its message may still be in the queue
    clock.advance(seconds=61)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_sweep() == 1
    assert published.ids == [job.pk]
    assert reload(job).published_at == clock.now()
    assert job_sweep() == 0  # not again until that message has had its chance


def test_sweeper_republishes_running_jobs_whose_lease_expired(
    published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = enqueue(CustomerFactory())
    assert job_claim(job_id=job.pk) is not None

    clock.advance(seconds=359)
    assert job_sweep() == 0
    clock.advance(seconds=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_sweep() == 1

    assert published.ids == [job.pk]


def test_sweeper_skips_follow_ups_blocked_by_a_running_job_and_is_bounded() -> None:
    customer = CustomerFactory()
    running = enqueue(customer)
    assert job_claim(job_id=running.pk) is not None
    enqueue(customer)
    others = [enqueue(CustomerFactory()) for _ in range(3)]
    clock.advance(seconds=61)

    assert job_sweep(limit=2) == 2
    assert job_sweep(limit=2) == 1
    assert set(
        BackgroundJob.objects.filter(published_at=clock.now()).values_list("id", flat=True)
    ) == {j.pk for j in others}


# --- Bulk jobs --------------------------------------------------------------------------------


def test_bulk_job_progress_and_finish(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failures = {"Customers 3–4"}

    def sync_part(job: BackgroundJob) -> JobSuccess:
        if job.description in failures:
            raise PermanentJobError("Two contacts have no name.")
        return JobSuccess()

    register(JobKind.BULK_CUSTOMER_SYNC, sync_part)
    entity = EntityFactory()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        parent = job_enqueue(
            kind=JobKind.BULK_CUSTOMER_SYNC,
            entity=entity,
            description="All customers",
            direction=JobDirection.EXPORT,
            triggered_by=JobTrigger.USER,
        )
        added = job_enqueue_children(
            parent=parent,
            children=(
                JobChild(description=d, size=s, payload={"ids": list(range(s))})
                for d, s in [("Customers 1–2", 2), ("Customers 3–4", 2), ("Customer 5", 1)]
            ),
        )
    assert added == 3
    parent = reload(parent)
    assert (parent.state, parent.wait_kind) == (JobState.WAITING, JobWaitKind.CHILDREN)
    assert (parent.progress_done, parent.progress_total) == (0, 5)
    children = list(parent.children.order_by("id"))
    assert set(published.ids) == {parent.pk, *(c.pk for c in children)}
    assert job_claim(job_id=parent.pk) is None

    for child in children:
        job_run(job_id=child.pk)

    parent = reload(parent)
    assert parent.state == JobState.FAILED
    assert (parent.progress_done, parent.progress_total) == (5, 5)
    assert parent.error_message.startswith("1 of 3 parts failed.")

    # Retry runs only the failed part again.
    failures.clear()
    job_retry(job=parent, user=None)
    parent = reload(parent)
    assert (parent.state, parent.progress_done) == (JobState.WAITING, 3)
    assert [reload(c).state for c in children] == [
        JobState.SUCCEEDED,
        JobState.QUEUED,
        JobState.SUCCEEDED,
    ]
    job_run(job_id=children[1].pk)
    parent = reload(parent)
    assert parent.state == JobState.SUCCEEDED
    assert (parent.progress_done, parent.progress_total) == (5, 5)
    assert parent.error_message == ""


def test_bulk_parent_handler_adds_parts_and_waits_for_them(register: Any) -> None:
    def bulk(job: BackgroundJob) -> JobSuccess:
        if job.parent_id is None:
            job_enqueue_children(
                parent=job,
                children=(JobChild(description=f"Part {n}", size=10) for n in range(250)),
                batch_size=100,
            )
        return JobSuccess()

    register(JobKind.BULK_CUSTOMER_SYNC, bulk)
    parent = enqueue(kind=JobKind.BULK_CUSTOMER_SYNC, entity=EntityFactory())

    job_run(job_id=parent.pk)

    parent = reload(parent)
    assert parent.state == JobState.WAITING
    assert (parent.progress_done, parent.progress_total) == (0, 2500)
    child_ids = list(parent.children.order_by("id").values_list("id", flat=True))
    assert len(child_ids) == 250
    for child_id in child_ids[:-1]:
        job_run(job_id=child_id)
    assert reload(parent).progress_done == 2490
    assert reload(parent).state == JobState.WAITING
    job_run(job_id=child_ids[-1])
    assert reload(parent).state == JobState.SUCCEEDED


# --- Admin actions ----------------------------------------------------------------------------


def test_retry_now_makes_a_backing_off_job_due(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(TransientJobError("down")))
    job = enqueue(CustomerFactory())
    job_run(job_id=job.pk)

    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=job, user=None)

    assert reload(job).not_before == clock.now()
    assert published.ids == [job.pk]


def test_retry_of_running_or_succeeded_job_is_refused() -> None:
    job = enqueue(CustomerFactory())
    claimed = job_claim(job_id=job.pk)
    assert claimed is not None

    with pytest.raises(ValidationError):
        job_retry(job=job, user=None)
    assert reload(job).state == JobState.RUNNING
    assert reload(job).attempts == 1


def test_retry_of_failed_job_when_a_newer_one_is_queued_resolves_it_as_superseded(
    register: Any,
) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(PermanentJobError("bad")))
    customer = CustomerFactory()
    failed = enqueue(customer)
    job_run(job_id=failed.pk)
    newer = enqueue(customer)

    runs = job_retry(job=failed, user=None)

    assert runs.pk == newer.pk
    failed = reload(failed)
    assert failed.state == JobState.FAILED
    assert (
        failed.resolved_reason == f"Superseded by job #{newer.pk}, already queued for this record."
    )


def test_success_resolves_earlier_failures_of_the_same_record(register: Any) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(PermanentJobError("bad")))
    customer = CustomerFactory()
    failed = enqueue(customer)
    job_run(job_id=failed.pk)
    register(JobKind.PUSH_CONTACT, lambda job: JobSuccess())
    later = enqueue(customer)

    job_run(job_id=later.pk)

    assert reload(failed).resolved_at == clock.now()
    assert reload(failed).resolved_reason == (
        f"Superseded: job #{later.pk} for the same record succeeded."
    )


def test_cancel_fails_dependents_and_refuses_started_jobs() -> None:
    admin = UserFactory(username="ops")
    customer = CustomerFactory(name="Harbour Cafe")
    contact = enqueue(customer, description="Harbour Cafe")
    invoice = enqueue(customer, kind=JobKind.PUSH_INVOICE, depends_on=contact)

    job_cancel(job=contact, user=admin)

    contact = reload(contact)
    assert contact.state == JobState.CANCELLED
    assert contact.resolved_reason == "Cancelled by ops"
    assert reload(invoice).state == JobState.FAILED
    assert (
        reload(invoice).error_message == "Sync the customer first: its contact push was cancelled"
    )

    running = enqueue(CustomerFactory())
    job_claim(job_id=running.pk)
    with pytest.raises(ValidationError):
        job_cancel(job=running, user=admin)
    assert reload(running).state == JobState.RUNNING


def test_resolve_needs_a_reason_and_only_applies_to_unresolved_failures(register: Any) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(PermanentJobError("bad")))
    admin = UserFactory()
    job = enqueue(CustomerFactory())
    job_run(job_id=job.pk)

    with pytest.raises(ValidationError):
        job_resolve(job=job, user=admin, reason="   ")
    assert reload(job).resolved_at is None

    job_resolve(job=job, user=admin, reason="Created by hand in Xero")
    job = reload(job)
    assert (job.resolved_by, job.resolved_reason) == (admin, "Created by hand in Xero")
    with pytest.raises(ValidationError):
        job_resolve(job=job, user=admin, reason="again")


def test_a_sync_press_while_the_push_waits_to_retry_queues_a_follow_up_that_runs_after_it(
    register: Any,
) -> None:
    outcomes: list[Any] = [TransientJobError("Xero 503")]
    runs: list[int] = []

    def handle(job: BackgroundJob) -> JobSuccess:
        runs.append(job.pk)
        if outcomes:
            raise outcomes.pop(0)
        return JobSuccess()

    register(JobKind.PUSH_CONTACT, handle)
    customer = CustomerFactory()
    first = enqueue(customer)
    assert job_claim(job_id=first.pk) is not None
    follow_up = enqueue(customer)  # the record changed while it was being pushed
    services._job_record_outcome(job=reload(first), outcome=TransientJobError("Xero 503"))
    outcomes.clear()

    assert reload(first).state == JobState.QUEUED
    assert enqueue(customer).pk == follow_up.pk  # still one follow-up
    assert job_claim(job_id=follow_up.pk) is None  # the retrying job goes first
    clock.advance(seconds=60)
    job_run(job_id=first.pk)
    job_run(job_id=follow_up.pk)

    assert runs == [first.pk, follow_up.pk]
    assert reload(first).state == reload(follow_up).state == JobState.SUCCEEDED


def test_retrying_a_superseded_dependency_moves_its_dependents_to_the_newer_job(
    register: Any,
) -> None:
    register(JobKind.PUSH_CONTACT, lambda job: (_ for _ in ()).throw(PermanentJobError("bad")))
    customer = CustomerFactory(name="Harbour Cafe")
    contact = enqueue(customer, description="Harbour Cafe")
    invoice = enqueue(customer, kind=JobKind.PUSH_INVOICE, depends_on=contact)
    job_run(job_id=contact.pk)
    assert reload(invoice).state == JobState.FAILED
    newer = enqueue(customer, description="Harbour Cafe")

    assert job_retry(job=contact, user=None).pk == newer.pk

    invoice = reload(invoice)
    assert (invoice.state, invoice.depends_on_id) == (JobState.WAITING, newer.pk)
    assert invoice.wait_reason == "Waiting for: Contact push — Harbour Cafe"
    assert reload(contact).resolved_reason == (
        f"Superseded by job #{newer.pk}, already queued for this record."
    )


def test_a_wait_that_has_already_passed_still_waits_a_second(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    register(
        JobKind.PUSH_CONTACT,
        lambda job: (_ for _ in ()).throw(JobWait("busy", until=clock.now() - timedelta(hours=1))),
    )
    job = enqueue(CustomerFactory())

    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=job.pk)

    assert published.calls == [(job.pk, 1.0)]
    assert reload(job).not_before == clock.now() + timedelta(seconds=1)


def test_enqueue_with_a_parent_adds_one_part(register: Any) -> None:
    entity = EntityFactory()
    with transaction.atomic():
        parent = job_enqueue(
            kind=JobKind.BULK_CUSTOMER_SYNC,
            entity=entity,
            description="All customers",
            direction=JobDirection.EXPORT,
            triggered_by=JobTrigger.USER,
        )
        customer = CustomerFactory(entity=entity)
        part = job_enqueue(
            kind=JobKind.PUSH_CONTACT,
            entity=entity,
            target=customer,
            description=customer.name,
            direction=JobDirection.EXPORT,
            triggered_by=JobTrigger.USER,
            parent=parent,
        )

    assert (part.parent_id, part.kind, part.progress_total) == (parent.pk, JobKind.PUSH_CONTACT, 1)
    parent = reload(parent)
    assert (parent.state, parent.progress_total) == (JobState.WAITING, 1)
    register(JobKind.PUSH_CONTACT, lambda job: JobSuccess())
    job_run(job_id=part.pk)
    assert reload(parent).state == JobState.SUCCEEDED
