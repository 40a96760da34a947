"""Real Celery worker processes on PostgreSQL and Redis: killed workers, lost messages."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kombu.pools
import pytest
import redis
from django.conf import settings
from django.db import transaction

from admin_jobs import services
from admin_jobs.models import (
    BackgroundJob,
    JobAttempt,
    JobAttemptOutcome,
    JobDirection,
    JobKind,
    JobState,
    JobTrigger,
)
from admin_jobs.services import job_enqueue, job_sweep
from bms.celery import app as celery_app

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(settings.BASE_DIR)


def database_url() -> str:
    db = settings.DATABASES["default"]
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def offset_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clock offset shared by this process and the workers (bms.clock reads it on every call)."""
    path = tmp_path / "clock-offset"
    path.write_text("0")
    monkeypatch.setenv("BMS_CLOCK_OFFSET_FILE", str(path))
    return path


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[str]:
    """Point this process's Celery app at the test Redis so the engine's publishes reach workers."""
    redis.Redis.from_url(redis_url).flushdb()
    previous = celery_app.conf.broker_url

    def use(url: str) -> None:
        # kombu caches connection and producer pools per URL; drop them so the new URL is used.
        kombu.pools.reset()
        celery_app.conf.broker_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    use(redis_url)
    yield redis_url
    use(previous)
    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def start_worker(
    redis_broker: str, offset_file: Path, tmp_path: Path
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bms.settings.local",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": redis_broker,
            "BMS_CLOCK_OFFSET_FILE": str(offset_file),
            "DATABASE_CONN_MAX_AGE": "0",
        }
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [
                str(BASE_DIR / ".venv/bin/celery"),
                "-A",
                "bms",
                "worker",
                "--pool=prefork",
                "-c",
                "1",
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so SIGKILL reaches the pool child too
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def records(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(event, int(job_id), token) for event, job_id, token, _pid in lines]


def enqueue_noop(payload: dict[str, Any], *, key: str) -> BackgroundJob:
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.NOOP,
            entity=None,
            description=f"Worker test {key}",
            direction=JobDirection.EXPORT,
            triggered_by=JobTrigger.SYSTEM,
            payload=payload,
            dedupe_key=f"noop:{key}",
        )


def test_a_job_killed_mid_run_is_finished_once_by_another_worker_after_its_lease(
    start_worker: Callable[[str], subprocess.Popen[bytes]], offset_file: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    first = start_worker("first")
    job = enqueue_noop(
        {"sleep": 60, "sleep_until_attempt": 1, "record_file": str(runs)}, key="killed"
    )

    wait_for(lambda: len(records(runs)) == 1, timeout=60, what="the first worker to start the job")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.RUNNING, 1)
    second = start_worker("second")
    assert job_sweep() == 0  # the lease is still valid: nobody may take the job over yet
    offset_file.write_text(str(settings.BMS_JOB_LEASE_SECONDS + 1))
    assert job_sweep() == 1

    wait_for(
        lambda: BackgroundJob.objects.get(pk=job.pk).state == JobState.SUCCEEDED,
        timeout=60,
        what="the second worker to finish the job",
    )
    assert second.poll() is None
    job.refresh_from_db()
    assert job.attempts == 2
    events = records(runs)
    assert [(event, job_id) for event, job_id, _ in events] == [
        ("start", job.pk),
        ("start", job.pk),
        ("done", job.pk),
    ]
    assert events[0][2] != events[1][2]  # two different leases
    assert events[2][2] == events[1][2] == job.lease_token
    outcomes = list(
        JobAttempt.objects.filter(job=job).order_by("number").values_list("outcome", flat=True)
    )
    assert outcomes == [JobAttemptOutcome.LOST, JobAttemptOutcome.SUCCEEDED]


def test_jobs_whose_message_was_lost_are_run_by_the_sweeper_and_duplicates_do_nothing(
    start_worker: Callable[[str], subprocess.Popen[bytes]],
    offset_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = tmp_path / "runs.txt"
    start_worker("only")
    # The broker loses the wake-up (crash between COMMIT and publish, Redis restart …).
    monkeypatch.setattr(services, "_publish", lambda job_ids, countdown: None)
    lost = enqueue_noop({"record_file": str(runs)}, key="lost")
    monkeypatch.undo()
    monkeypatch.setenv("BMS_CLOCK_OFFSET_FILE", str(offset_file))

    time.sleep(2)
    assert records(runs) == []
    offset_file.write_text("61")
    assert job_sweep() == 1
    wait_for(lambda: len(records(runs)) == 2, timeout=60, what="the swept job to run")

    # Duplicate wake-ups for a finished job find nothing to claim.
    for _ in range(3):
        services._publish([lost.pk], None)
    duplicate = enqueue_noop({"record_file": str(runs)}, key="duplicate")
    services._publish([duplicate.pk, duplicate.pk], None)
    wait_for(
        lambda: BackgroundJob.objects.get(pk=duplicate.pk).state == JobState.SUCCEEDED,
        timeout=60,
        what="the duplicate-published job to run",
    )
    time.sleep(2)  # give the duplicate messages time to be consumed

    assert [(e, j) for e, j, _ in records(runs)] == [
        ("start", lost.pk),
        ("done", lost.pk),
        ("start", duplicate.pk),
        ("done", duplicate.pk),
    ]
    assert BackgroundJob.objects.get(pk=lost.pk).attempts == 1
    assert BackgroundJob.objects.get(pk=duplicate.pk).attempts == 1


def wait_for_attempts(job: BackgroundJob, count: int) -> BackgroundJob:
    def finished_attempt() -> bool:
        return (
            JobAttempt.objects.filter(job=job, number=count, ended_at__isnull=False).exists()
            and BackgroundJob.objects.get(pk=job.pk).state != JobState.RUNNING
        )

    wait_for(finished_attempt, timeout=60, what=f"attempt {count} of job {job.pk} to end")
    return BackgroundJob.objects.get(pk=job.pk)


def test_a_worker_retries_transient_errors_with_growing_delays_and_never_permanent_ones(
    start_worker: Callable[[str], subprocess.Popen[bytes]], offset_file: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    start_worker("only")
    permanent = enqueue_noop({"raise": "permanent", "record_file": str(runs)}, key="permanent")
    transient = enqueue_noop(
        {"raise": "transient", "raise_until_attempt": 3, "record_file": str(runs)},
        key="transient",
    )

    delays = []
    offset = 0.0
    for attempt in (1, 2, 3):
        job = wait_for_attempts(transient, attempt)
        assert job.state == JobState.QUEUED
        ended = JobAttempt.objects.get(job=job, number=attempt).ended_at
        assert ended is not None and job.not_before is not None
        delays.append((job.not_before - ended).total_seconds())
        # Move the shared clock to the retry time; the sweeper, not a countdown, wakes it.
        offset += delays[-1] + 1
        offset_file.write_text(str(offset))
        assert job_sweep() >= 1
    job = wait_for_attempts(transient, 4)

    # 30 s, 60 s, 120 s, each plus at most 25 % jitter.
    assert 30 <= delays[0] <= 37.5
    assert 60 <= delays[1] <= 75
    assert 120 <= delays[2] <= 150
    assert job.state == JobState.SUCCEEDED
    assert job.attempts == 4
    permanent.refresh_from_db()
    assert permanent.state == JobState.FAILED
    assert permanent.attempts == 1
    assert permanent.error_message == "Diagnostic permanent failure."
    assert permanent.error_detail == {"attempt": 1}
    events = [(event, job_id) for event, job_id, _ in records(runs)]
    assert events.count(("raise-permanent", permanent.pk)) == 1
    assert events.count(("raise-transient", transient.pk)) == 3
    assert events.count(("done", transient.pk)) == 1
