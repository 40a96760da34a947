"""Concurrency on real PostgreSQL: many connections at once, each in its own thread."""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from admin_jobs.handlers import JobSuccess
from admin_jobs.models import BackgroundJob, JobAttempt, JobDirection, JobKind, JobState, JobTrigger
from admin_jobs.services import job_enqueue, job_run
from tests.billing.factories import CustomerFactory, EntityFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) in `count` threads released together; each thread has its own connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 -- reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def test_fifty_concurrent_sync_presses_make_one_job_and_one_run(
    published: Any, register: Any
) -> None:
    customer = CustomerFactory(name="Harbour Cafe")

    def press_sync(i: int) -> int:
        with transaction.atomic():
            job = job_enqueue(
                kind=JobKind.PUSH_CONTACT,
                entity=customer.entity,
                target=customer,
                description="Harbour Cafe",
                direction=JobDirection.EXPORT,
                triggered_by=JobTrigger.USER,
            )
            time.sleep(0.01)  # hold the transaction open so the presses overlap
        return job.pk

    job_ids = in_threads(50, press_sync)

    assert len(set(job_ids)) == 1
    assert BackgroundJob.objects.count() == 1
    assert published.ids == job_ids[:1]

    runs: list[int] = []
    runs_lock = threading.Lock()

    def handle(job: BackgroundJob) -> JobSuccess:
        with runs_lock:
            runs.append(job.pk)
        time.sleep(0.05)
        return JobSuccess()

    register(JobKind.PUSH_CONTACT, handle)
    # Fifty deliveries of the same message at once (redelivery, sweeper, duplicates).
    in_threads(50, lambda i: job_run(job_id=job_ids[0]))

    job = BackgroundJob.objects.get()
    assert runs == [job.pk]
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 1
    assert JobAttempt.objects.count() == 1


def test_concurrent_batch_claims_run_every_job_exactly_once(register: Any) -> None:
    entity = EntityFactory()
    with transaction.atomic():
        job_ids = [
            job_enqueue(
                kind=JobKind.PUSH_INVOICE,
                entity=entity,
                target=CustomerFactory(entity=entity),
                description=f"Invoice {n}",
                direction=JobDirection.EXPORT,
                triggered_by=JobTrigger.SCHEDULE,
            ).pk
            for n in range(200)
        ]
    handled: Counter[int] = Counter()
    lock = threading.Lock()

    def push_invoices(jobs: list[BackgroundJob]) -> dict[int, Any]:
        with lock:
            handled.update(job.pk for job in jobs)
        time.sleep(0.01)
        return {job.pk: JobSuccess() for job in jobs}

    register(JobKind.PUSH_INVOICE, push_invoices, batch_size=50)

    def worker(i: int) -> None:
        order = list(job_ids)
        random.Random(i).shuffle(order)
        for job_id in order:
            job_run(job_id=job_id)

    in_threads(8, worker)

    assert sorted(handled) == sorted(job_ids)
    assert set(handled.values()) == {1}
    assert BackgroundJob.objects.filter(state=JobState.SUCCEEDED).count() == 200
    assert JobAttempt.objects.count() == 200
