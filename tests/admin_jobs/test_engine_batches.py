"""Batches: outcomes written together, one wake-up per batch, bulk enqueue."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from admin_jobs import services
from admin_jobs.errors import JobWait, PermanentJobError
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
from admin_jobs.services import JobSpec, job_claim, job_enqueue_many, job_run
from billing.models import Customer, Entity
from bms import clock
from tests.billing.factories import CustomerFactory, EntityFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def spec(customer: Customer, **overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "kind": JobKind.PUSH_INVOICE,
        "entity": customer.entity,
        "target": customer,
        "description": f"Invoice for {customer.name}",
        "direction": JobDirection.EXPORT,
        "triggered_by": JobTrigger.SCHEDULE,
    }
    fields.update(overrides)
    return JobSpec(**fields)


def queue(entity: Entity, count: int, **overrides: Any) -> list[BackgroundJob]:
    customers = [CustomerFactory(entity=entity) for _ in range(count)]
    with transaction.atomic():
        return job_enqueue_many(specs=[spec(c, **overrides) for c in customers])


def reload(job: BackgroundJob) -> BackgroundJob:
    return BackgroundJob.objects.get(pk=job.pk)


def statements_to_run_a_batch(register: Any, size: int) -> int:
    register(
        JobKind.PUSH_INVOICE,
        lambda batch: {j.pk: JobSuccess(result={"id": j.pk}) for j in batch},
        batch_size=50,
    )
    jobs = queue(EntityFactory(), size)
    with CaptureQueriesContext(connection) as queries:
        job_run(job_id=jobs[0].pk)
    assert [reload(j).state for j in jobs] == [JobState.SUCCEEDED] * size
    assert [reload(j).result for j in jobs] == [{"id": j.pk} for j in jobs]
    outcomes = JobAttempt.objects.filter(job__in=jobs).values_list("outcome", flat=True)
    assert list(outcomes) == [JobAttemptOutcome.SUCCEEDED] * size
    return len(queries)


def test_a_batch_is_recorded_in_as_many_statements_for_50_jobs_as_for_2(register: Any) -> None:
    assert statements_to_run_a_batch(register, 2) == statements_to_run_a_batch(register, 50)


def test_mixed_outcomes_of_one_batch_are_each_recorded(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    entity = EntityFactory()
    jobs = queue(entity, 4)
    until = clock.now() + timedelta(seconds=40)
    register(
        JobKind.PUSH_INVOICE,
        lambda batch: {
            batch[0].pk: JobSuccess(result={"xero_id": "a"}, external_url="https://x/a"),
            batch[1].pk: JobWait("Pacing calls (minute limit)", until=until),
            batch[2].pk: PermanentJobError("Account 999 is not valid.", detail={"n": 2}),
            batch[3].pk: PermanentJobError("Contact is archived.", detail={"n": 3}),
        },
        batch_size=50,
    )
    published.clear()

    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=jobs[0].pk)

    done, waiting, bad, archived = (reload(j) for j in jobs)
    assert (done.state, done.result, done.external_url) == (
        JobState.SUCCEEDED,
        {"xero_id": "a"},
        "https://x/a",
    )
    assert (waiting.state, waiting.not_before, waiting.wait_kind) == (
        JobState.WAITING,
        until,
        JobWaitKind.UNTIL,
    )
    assert (bad.state, bad.error_message, bad.error_detail) == (
        JobState.FAILED,
        "Account 999 is not valid.",
        {"n": 2},
    )
    assert (archived.error_message, archived.error_detail) == ("Contact is archived.", {"n": 3})
    attempts = {
        a.job_id: (a.outcome, a.error_message, a.error_detail)
        for a in JobAttempt.objects.filter(job__in=jobs)
    }
    assert attempts == {
        done.pk: (JobAttemptOutcome.SUCCEEDED, "", None),
        waiting.pk: (JobAttemptOutcome.WAIT, "Pacing calls (minute limit)", None),
        bad.pk: (JobAttemptOutcome.PERMANENT, "Account 999 is not valid.", {"n": 2}),
        archived.pk: (JobAttemptOutcome.PERMANENT, "Contact is archived.", {"n": 3}),
    }
    assert published.calls == [(waiting.pk, 40.0)]


def test_a_job_whose_lease_was_taken_over_mid_batch_is_left_to_its_new_holder(
    register: Any,
) -> None:
    jobs = queue(EntityFactory(), 3)

    def push(batch: list[BackgroundJob]) -> dict[int, Any]:
        # Meanwhile another worker took jobs[1] over (its lease had expired).
        BackgroundJob.objects.filter(pk=jobs[1].pk).update(lease_token="other-worker")
        return {j.pk: JobSuccess() for j in batch}

    register(JobKind.PUSH_INVOICE, push, batch_size=50)

    job_run(job_id=jobs[0].pk)

    taken = reload(jobs[1])
    assert (taken.state, taken.lease_token) == (JobState.RUNNING, "other-worker")
    assert JobAttempt.objects.get(job=taken).outcome == JobAttemptOutcome.RUNNING
    assert [reload(j).state for j in (jobs[0], jobs[2])] == [JobState.SUCCEEDED] * 2


def test_a_batch_of_waits_sends_one_wake_up(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    jobs = queue(EntityFactory(), 50)
    until = clock.now() + timedelta(seconds=30)
    register(
        JobKind.PUSH_INVOICE,
        lambda batch: {j.pk: JobWait("Pacing calls", until=until) for j in batch},
        batch_size=50,
    )
    published.clear()

    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=jobs[0].pk)

    assert {reload(j).state for j in jobs} == {JobState.WAITING}
    assert published.calls == [(jobs[0].pk, 30.0)]


def test_a_wake_up_whose_job_another_batch_took_claims_the_next_due_one(register: Any) -> None:
    seen: list[list[int]] = []
    register(
        JobKind.PUSH_INVOICE,
        lambda batch: seen.append([j.pk for j in batch]) or {j.pk: JobSuccess() for j in batch},
        batch_size=2,
    )
    entity = EntityFactory()
    jobs = queue(entity, 3)
    other_entity = queue(EntityFactory(), 1)

    job_run(job_id=jobs[0].pk)
    job_run(job_id=jobs[1].pk)  # its own wake-up: taken by the first batch
    job_run(job_id=jobs[1].pk)  # nothing of its kind and entity is due any more

    assert seen == [[jobs[0].pk, jobs[1].pk], [jobs[2].pk]]
    assert reload(other_entity[0]).state == JobState.QUEUED


def test_a_wake_up_for_a_finished_single_job_runs_nothing_else(register: Any) -> None:
    seen: list[int] = []
    register(JobKind.PUSH_PAYMENT, lambda job: seen.append(job.pk) or JobSuccess())
    entity = EntityFactory()
    customers = [CustomerFactory(entity=entity) for _ in range(2)]
    with transaction.atomic():
        first, second = job_enqueue_many(
            specs=[spec(c, kind=JobKind.PUSH_PAYMENT) for c in customers]
        )

    job_run(job_id=first.pk)
    job_run(job_id=first.pk)

    assert seen == [first.pk]
    assert reload(second).state == JobState.QUEUED


# --- job_enqueue_many ---------------------------------------------------------------------------


def test_enqueue_many_publishes_one_wake_up_per_batch_after_commit(
    register: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    register(JobKind.PUSH_INVOICE, lambda batch: {}, batch_size=50)
    entity = EntityFactory()
    customers = [CustomerFactory(entity=entity) for _ in range(120)]
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        jobs = job_enqueue_many(specs=[spec(c) for c in customers])
        assert published.calls == []

    assert [job.state for job in jobs] == [JobState.QUEUED] * 120
    assert len({job.pk for job in jobs}) == BackgroundJob.objects.count() == 120
    assert published.ids == [jobs[0].pk, jobs[50].pk, jobs[100].pk]


def test_enqueue_many_returns_the_unstarted_job_for_the_same_work(published: Any) -> None:
    customer = CustomerFactory()
    with transaction.atomic():
        (first,) = job_enqueue_many(specs=[spec(customer)])
    with transaction.atomic():
        again, twice = job_enqueue_many(specs=[spec(customer), spec(customer)])

    assert again.pk == twice.pk == first.pk
    assert BackgroundJob.objects.count() == 1


def test_enqueue_many_waits_for_an_unfinished_dependency_and_fails_after_a_failed_one() -> None:
    entity = EntityFactory()
    with transaction.atomic():
        running, failed = job_enqueue_many(
            specs=[spec(CustomerFactory(entity=entity), kind=JobKind.PUSH_CONTACT) for _ in "ab"]
        )
    assert job_claim(job_id=running.pk) is not None
    BackgroundJob.objects.filter(pk=failed.pk).update(
        state=JobState.FAILED, error_message="Xero refused the contact."
    )
    failed.refresh_from_db()

    customers = [CustomerFactory(entity=entity) for _ in range(2)]
    with transaction.atomic():
        waits, fails = job_enqueue_many(
            specs=[
                spec(customers[0], depends_on=running),
                spec(customers[1], depends_on=failed),
            ]
        )

    assert (waits.state, waits.wait_kind, waits.not_before) == (
        JobState.WAITING,
        JobWaitKind.DEPENDENCY,
        None,
    )
    assert (fails.state, fails.error_message) == (
        JobState.FAILED,
        "Sync the customer first: its contact push failed — Xero refused the contact.",
    )


def test_enqueue_many_when_another_transaction_queued_the_same_job_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = CustomerFactory()
    real_build = services._job_build

    def build_after_another_enqueue(**kwargs: Any) -> BackgroundJob:
        # Another request queues the same push between the lookup and the insert.
        monkeypatch.setattr(services, "_job_build", real_build)
        with transaction.atomic():
            services.job_enqueue(
                kind=JobKind.PUSH_INVOICE,
                entity=customer.entity,
                target=customer,
                description="queued by another request",
                direction=JobDirection.EXPORT,
                triggered_by=JobTrigger.USER,
            )
        return real_build(**kwargs)

    monkeypatch.setattr(services, "_job_build", build_after_another_enqueue)
    with transaction.atomic():
        (job,) = job_enqueue_many(specs=[spec(customer)])

    assert BackgroundJob.objects.count() == 1
    assert job.pk == BackgroundJob.objects.get().pk
    assert job.description == "queued by another request"
