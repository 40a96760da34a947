"""Push invoices to Xero from the terminal: `manage.py xero_push_invoices [--entity CODE]
[--wait]`. Queues every released invoice that is not in Xero or changed since its last push
(its customer first when needed); with --wait it shows a progress bar and exits non-zero if any
push failed."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from admin_jobs.models import BackgroundJob, JobState
from xero_integration.invoice_sync import invoices_push_due
from xero_integration.management.commands._progress import connected_entities, wait_for_jobs


class Command(BaseCommand):
    help = "Push released invoices to their entity's Xero organisation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--entity", action="append", help="entity code (default: all connected)"
        )
        parser.add_argument(
            "--wait", action="store_true", help="wait and report; exit 1 on failure"
        )
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")

    def handle(self, *args: Any, **options: Any) -> None:
        job_ids: list[int] = []
        for entity in connected_entities(options["entity"]):
            ids = invoices_push_due(entity_id=entity.pk, triggered_by="user")
            self.stdout.write(f"{entity.code}: {len(ids)} invoice push(es) queued.")
            job_ids += ids
        if not options["wait"] or not job_ids:
            return
        jobs = wait_for_jobs(job_ids, out=self.stdout, timeout=options["timeout"])
        failed = [j for j in jobs if j.state == JobState.FAILED]
        for job in failed[:20]:
            self.stdout.write(f"  failed: {job.description}: {job.error_message}")
        done = sum(j.state == JobState.SUCCEEDED for j in jobs)
        self.stdout.write(
            f"{done} pushed, {len(failed)} failed, {len(jobs) - done - len(failed)} other."
        )
        unfinished = BackgroundJob.objects.filter(
            pk__in=job_ids, state__in=[JobState.QUEUED, JobState.WAITING, JobState.RUNNING]
        ).count()
        if unfinished:
            raise CommandError(f"{unfinished} job(s) had not finished when the wait ended.")
        if failed:
            raise CommandError(f"{len(failed)} invoice push(es) failed; see Background Jobs.")
