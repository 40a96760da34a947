"""Build and push cost-of-sales journals on demand.

    manage.py journals_post --entity KIWI --date 2026-11-20
    manage.py journals_post --from 2026-11-01 --to 2026-11-20 --wait

Without --entity, every entity connected to Xero. Exits 1 if any journal failed (to build, or,
with --wait, to post). --wait runs each due push job here too (claiming it exactly as a worker
would, so it is safe beside running workers) and waits until every job has finished.
"""

import time
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from admin_jobs.models import FINISHED_STATES, BackgroundJob, JobState, JobTrigger
from admin_jobs.services import job_run
from billing.models import Entity
from bms import clock
from journals.models import CostOfSalesJournal, JournalStatus
from journals.services import JournalPostResult, cost_of_sales_journal_post

POLL_SECONDS = 1.0


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date: use YYYY-MM-DD.") from None


class Command(BaseCommand):
    help = "Build and push the cost-of-sales journals of one date or a range of dates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--entity", help="entity code (default: every connected entity)")
        parser.add_argument("--date", type=_date, help="one local date, YYYY-MM-DD")
        parser.add_argument("--from", dest="date_from", type=_date, help="first date")
        parser.add_argument("--to", dest="date_to", type=_date, help="last date")
        parser.add_argument("--wait", action="store_true", help="wait for the pushes")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        dates = self._dates(options)
        if options["entity"]:
            entities = list(Entity.objects.filter(code=options["entity"]))
            if not entities:
                raise CommandError(f"No entity with code {options['entity']!r}.")
        else:
            entities = list(Entity.objects.filter(xero_link__isnull=False).order_by("code"))
        results: list[JournalPostResult] = []
        failed = False
        for entity in entities:
            for day in dates:
                try:
                    result = cost_of_sales_journal_post(
                        entity=entity, journal_date=day, triggered_by=JobTrigger.USER
                    )
                except ValidationError as exc:
                    self.stderr.write(f"{entity.code} {day}: {' '.join(exc.messages)}")
                    failed = True
                    continue
                results.append(result)
                journal = result.journal
                self.stdout.write(
                    f"{entity.code} {day} {journal.label}: {journal.get_status_display()}"
                    + (f" (job #{result.job.pk})" if result.job else "")
                )
        if options["wait"]:
            self._wait([r.job.pk for r in results if r.job], timeout=options["timeout"])
            failed = self._summary(results) or failed
        elif any(r.journal.status == JournalStatus.FAILED for r in results):
            failed = True
        if failed:
            raise CommandError("Some journals failed; see above.", returncode=1)

    def _dates(self, options: dict[str, Any]) -> list[date]:
        if options["date"] and (options["date_from"] or options["date_to"]):
            raise CommandError("Give --date, or --from and --to, not both.")
        if options["date"]:
            return [options["date"]]
        if options["date_from"] and options["date_to"]:
            first, last = options["date_from"], options["date_to"]
            if last < first:
                raise CommandError("--to is before --from.")
            return [first + timedelta(days=n) for n in range((last - first).days + 1)]
        raise CommandError("Give --date YYYY-MM-DD, or --from and --to.")

    def _wait(self, job_ids: list[int], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = list(
                BackgroundJob.objects.filter(pk__in=job_ids)
                .exclude(state__in=FINISHED_STATES)
                .order_by("id")
            )
            if not pending:
                return
            for job in pending:
                if job.not_before is not None and job.not_before <= clock.now():
                    job_run(job_id=job.pk)
            time.sleep(POLL_SECONDS)
        self.stderr.write(f"Gave up waiting after {timeout:.0f} s; the jobs carry on.")

    def _summary(self, results: list[JournalPostResult]) -> bool:
        failed = False
        self.stdout.write("")
        self.stdout.write("Summary:")
        for result in results:
            journal = CostOfSalesJournal.objects.get(pk=result.journal.pk)
            job = BackgroundJob.objects.get(pk=result.job.pk) if result.job else None
            line = (
                f"  {journal.entity.code} {journal.journal_date} {journal.label}: "
                f"{journal.get_status_display()} {journal.total_debit} {journal.currency}"
            )
            if journal.xero_journal_id:
                line += f" → Xero {journal.xero_journal_id}"
            if job is not None and job.state != JobState.SUCCEEDED:
                line += f" [job #{job.pk} {job.get_state_display()}: {job.error_message}]"
            if (
                journal.status == JournalStatus.FAILED
                or (job is not None and job.state in (JobState.FAILED, JobState.CANCELLED))
                or (job is not None and job.state not in FINISHED_STATES)
            ):
                failed = True
            self.stdout.write(line)
        return failed
