"""Push customers to Xero from the terminal: `manage.py xero_push_customers [--entity CODE]
[--all] [--wait]`. Without --all only customers never synced or changed since their last push
are pushed. With --wait it shows a progress bar and exits non-zero if any push failed."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from admin_jobs.models import BackgroundJob, JobState
from billing.models import Customer, Entity
from xero_integration.customer_services import customers_bulk_sync_start
from xero_integration.management.commands._progress import connected_entities, wait_for_jobs
from xero_integration.selectors import sync_rows_attach


class Command(BaseCommand):
    help = "Push customers to their entity's Xero organisation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--entity", action="append", help="entity code (default: all connected)"
        )
        parser.add_argument(
            "--all", action="store_true", help="push every customer, not only changes"
        )
        parser.add_argument(
            "--wait", action="store_true", help="wait and report; exit 1 on failure"
        )
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")

    def handle(self, *args: Any, **options: Any) -> None:
        entities = self._entities(options["entity"])
        parents: list[BackgroundJob] = []
        for entity in entities:
            ids = None if options["all"] else self._changed(entity)
            if ids == []:
                self.stdout.write(f"{entity.code}: every customer is already up to date in Xero.")
                continue
            try:
                parent = customers_bulk_sync_start(entity=entity, customer_ids=ids, user=None)
            except ValidationError as exc:
                raise CommandError(f"{entity.code}: {' '.join(exc.messages)}") from None
            parents.append(parent)
            self.stdout.write(f"{entity.code}: job #{parent.pk} — {parent.description}")
        if not options["wait"] or not parents:
            return
        jobs = wait_for_jobs([p.pk for p in parents], out=self.stdout, timeout=options["timeout"])
        failed = BackgroundJob.objects.filter(
            parent__in=[p.pk for p in parents], state=JobState.FAILED
        )
        for job in failed[:20]:
            self.stdout.write(f"  failed: {job.description}: {job.error_message}")
        unfinished = [j for j in jobs if j.state not in {JobState.SUCCEEDED, JobState.FAILED}]
        self.stdout.write(
            f"{sum(j.progress_done for j in jobs)} pushed or tried, {failed.count()} failed."
        )
        if unfinished:
            raise CommandError(f"{len(unfinished)} job(s) had not finished when the wait ended.")
        if failed.exists():
            raise CommandError(f"{failed.count()} customer push(es) failed; see Background Jobs.")

    def _entities(self, codes: list[str] | None) -> list[Entity]:
        return connected_entities(codes)

    def _changed(self, entity: Entity) -> list[int]:
        """Customers never synced or changed since their last push (one query per 2,000)."""
        customers = Customer.objects.filter(entity=entity, is_archived=False).order_by("pk")
        changed: list[int] = []
        for start in range(0, customers.count(), 2000):
            chunk = list(customers[start : start + 2000])
            sync_rows_attach(objects=chunk)
            changed += [c.pk for c in chunk if c.xero_sync.colour != "blue"]  # type: ignore[attr-defined]
        return changed
