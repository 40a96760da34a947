"""Shared by the Xero commands: choosing entities, and waiting for jobs with a progress bar."""

import time
from collections.abc import Sequence
from typing import TextIO

from django.core.management.base import CommandError, OutputWrapper

from admin_jobs.models import BackgroundJob, JobState
from billing.models import Entity
from xero_integration.models import XeroEntityLink

FINISHED = {JobState.SUCCEEDED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED}


def bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def wait_for_jobs(
    job_ids: Sequence[int], *, out: TextIO | OutputWrapper, timeout: float, poll: float = 1.0
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


def connected_entities(codes: list[str] | None) -> list[Entity]:
    connected = Entity.objects.filter(
        pk__in=XeroEntityLink.objects.filter(connection__isnull=False).values("entity_id")
    )
    if not codes:
        found = list(connected.order_by("code"))
        if not found:
            raise CommandError("No entity is connected to Xero (Admin → Integrations).")
        return found
    found = list(Entity.objects.filter(code__in=codes).order_by("code"))
    missing = sorted(set(codes) - {e.code for e in found})
    if missing:
        raise CommandError(f"No entity with code {', '.join(missing)}.")
    unconnected = [e.code for e in found if e not in connected]
    if unconnected:
        raise CommandError(f"Not connected to Xero: {', '.join(unconnected)}.")
    return found
