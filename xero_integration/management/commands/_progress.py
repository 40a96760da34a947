"""Waiting for bulk jobs from a management command, with a progress bar on the terminal."""

import time
from collections.abc import Sequence
from typing import TextIO

from admin_jobs.models import BackgroundJob, JobState

FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED}


def bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def wait_for_jobs(
    job_ids: Sequence[int], *, out: TextIO, timeout: float, poll: float = 1.0
) -> list[BackgroundJob]:
    """Poll until every job has finished (or the timeout passes); returns the jobs as last seen."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = list(BackgroundJob.objects.filter(pk__in=job_ids).order_by("pk"))
        done = sum(j.progress_done if j.progress_total else int(j.state in FINISHED) for j in jobs)
        total = sum(j.progress_total or 1 for j in jobs)
        out.write(f"\r{bar(done, total)}")
        out.flush()
        if all(j.state in FINISHED for j in jobs) or time.monotonic() > deadline:
            out.write("\n")
            return jobs
        time.sleep(poll)
