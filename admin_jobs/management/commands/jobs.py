"""Background jobs for operators without a browser.

manage.py jobs list [--state failed] [--kind push_invoice] [--limit 50]
manage.py jobs show ID
manage.py jobs retry ID [ID ...]
manage.py jobs retry --all-failed
"""

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from admin_jobs import selectors, services
from admin_jobs.models import BackgroundJob, JobKind, JobState


class Command(BaseCommand):
    help = "List, show and retry background jobs."
    # An operator reaches for this when something is wrong, e.g. Xero settings are missing; the
    # system checks that would refuse to start must not hide the jobs that explain it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List jobs, newest first.")
        listing.add_argument("--state", choices=JobState.values)
        listing.add_argument("--kind", choices=JobKind.values)
        listing.add_argument("--limit", type=int, default=50)
        show = sub.add_parser("show", help="Show one job with its attempts.")
        show.add_argument("job_id", type=int)
        retry = sub.add_parser("retry", help="Retry jobs now.")
        retry.add_argument("job_ids", type=int, nargs="*")
        retry.add_argument("--all-failed", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list(state=options["state"], kind=options["kind"], limit=options["limit"])
        elif action == "show":
            self._show(self._job(options["job_id"]))
        else:
            self._retry(job_ids=options["job_ids"], all_failed=options["all_failed"])

    def _job(self, job_id: int) -> BackgroundJob:
        job = selectors.job_get(job_id=job_id)
        if job is None:
            raise CommandError(f"No job with id {job_id}.")
        return job

    def _list(self, *, state: str | None, kind: str | None, limit: int) -> None:
        jobs = BackgroundJob.objects.select_related("entity").order_by("-id")
        if state:
            jobs = jobs.filter(state=state)
        if kind:
            jobs = jobs.filter(kind=kind)
        for job in jobs[: max(limit, 0)]:
            line = (
                f"{job.pk:>8}  {job.state:<9}  {job.kind:<22}  {job.attempts:>3}  "
                f"{job.created_at:%Y-%m-%d %H:%M}  {job.description}"
            )
            if job.state == JobState.FAILED and job.error_message:
                line += f"  — {job.error_message}"
            self.stdout.write(line)

    def _show(self, job: BackgroundJob) -> None:
        rows = [
            ("Job", f"#{job.pk} {job.get_kind_display()} — {job.description}"),
            (
                "State",
                job.get_state_display() + (f" ({job.wait_reason})" if job.wait_reason else ""),
            ),
            ("Entity", str(job.entity or "—")),
            ("Direction", job.get_direction_display()),
            ("Triggered by", job.get_triggered_by_display()),
            ("Created", f"{job.created_at:%Y-%m-%d %H:%M:%S}"),
            ("Not before", f"{job.not_before:%Y-%m-%d %H:%M:%S}" if job.not_before else "—"),
            ("Attempts", str(job.attempts)),
            (
                "Progress",
                f"{job.progress_done} / {job.progress_total}" if job.progress_total else "—",
            ),
            ("Error", job.error_message or "—"),
            ("Error detail", str(job.error_detail) if job.error_detail else "—"),
            ("In Xero", job.external_url or "—"),
            ("Resolved", job.resolved_reason or "—"),
        ]
        for label, value in rows:
            self.stdout.write(f"{label + ':':<14}{value}")
        for attempt in selectors.job_attempts(job=job):
            ended = f"{attempt.ended_at:%H:%M:%S}" if attempt.ended_at else "—"
            self.stdout.write(
                f"  attempt {attempt.number}: {attempt.started_at:%Y-%m-%d %H:%M:%S} → {ended} "
                f"{attempt.outcome}{' — ' + attempt.error_message if attempt.error_message else ''}"
            )

    def _retry(self, *, job_ids: list[int], all_failed: bool) -> None:
        if all_failed == bool(job_ids):
            raise CommandError("Give job ids or --all-failed (not both).")
        if all_failed:
            count = services.job_retry_all_failed(user=None)
            self.stdout.write(f"{count} failed job{'s' if count != 1 else ''} queued again.")
            return
        jobs = [self._job(job_id) for job_id in job_ids]  # all ids checked before any retry
        for job in jobs:
            try:
                runs = services.job_retry(job=job, user=None)
            except ValidationError as exc:
                raise CommandError(f"Job {job.pk}: {' '.join(exc.messages)}") from exc
            self.stdout.write(f"Job {job.pk}: queued again (job {runs.pk} will run).")
