from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from admin_jobs.models import BackgroundJob, JobAttempt, JobState
from bms import clock
from tests.admin_jobs.factories import BackgroundJobFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def failed(**overrides: Any) -> BackgroundJob:
    return BackgroundJobFactory(
        state=JobState.FAILED, not_before=None, error_message="Xero said no.", **overrides
    )


def test_list_filters_by_state_and_limit() -> None:
    job = failed(description="Invoice INV-0042 — Harbour Cafe")
    BackgroundJobFactory(description="Queued one")

    output = run("list", "--state", "failed", "--limit", "5")

    assert output.splitlines() == [
        f"{job.pk:>8}  failed     noop                      0  "
        f"{job.created_at:%Y-%m-%d %H:%M}  Invoice INV-0042 — Harbour Cafe  — Xero said no."
    ]


def test_show_prints_the_job_and_its_attempts() -> None:
    job = failed(description="Harbour Cafe")
    JobAttempt.objects.create(
        job=job,
        number=1,
        lease_token="t" * 32,
        started_at=clock.now(),
        outcome="permanent",
        error_message="Xero said no.",
    )

    output = run("show", str(job.pk))

    assert f"Job:          #{job.pk} No-op (diagnostic) — Harbour Cafe" in output
    assert "Error:        Xero said no." in output
    assert "attempt 1:" in output and "permanent — Xero said no." in output


def test_retry_ids_and_all_failed(published: Any) -> None:
    first, second, third = failed(), failed(), failed()

    output = run("retry", str(first.pk), str(second.pk))

    assert output.splitlines() == [
        f"Job {first.pk}: queued again (job {first.pk} will run).",
        f"Job {second.pk}: queued again (job {second.pk} will run).",
    ]
    assert BackgroundJob.objects.get(pk=third.pk).state == JobState.FAILED
    assert run("retry", "--all-failed") == "1 failed job queued again.\n"
    assert BackgroundJob.objects.filter(state=JobState.QUEUED).count() == 3


def test_a_bad_id_fails_with_a_clear_message_and_changes_nothing() -> None:
    job = failed()

    with pytest.raises(CommandError, match="No job with id 999999."):
        run("retry", str(job.pk), "999999")
    with pytest.raises(CommandError, match="No job with id 999999."):
        run("show", "999999")

    assert BackgroundJob.objects.get(pk=job.pk).state == JobState.FAILED
