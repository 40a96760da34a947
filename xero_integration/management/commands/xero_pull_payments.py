"""Pull payments from Xero now: `manage.py xero_pull_payments [--entity CODE] [--wait]`.

One pull per Xero organisation (entities sharing one are pulled once). With --wait it shows a
progress bar, prints what each pull found, and exits non-zero if any pull failed."""

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from admin_jobs.models import BackgroundJob, JobState
from billing.models import Entity
from xero_integration.management.commands._progress import wait_for_jobs
from xero_integration.models import ConnectionStatus, XeroEntityLink
from xero_integration.payment_sync import payments_pull_enqueue


class Command(BaseCommand):
    help = "Pull payments made in Xero into BMS, for each connected organisation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--entity", action="append", help="entity code (default: all connected)"
        )
        parser.add_argument(
            "--wait", action="store_true", help="wait and report; exit 1 on failure"
        )
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")

    def handle(self, *args: Any, **options: Any) -> None:
        links = self._links(options["entity"])
        jobs: list[BackgroundJob] = []
        seen: set[int] = set()
        not_connected: list[str] = []
        for link in links:
            connection = link.connection
            assert connection is not None
            if connection.pk in seen:
                continue  # another entity of the same organisation already asked
            seen.add(connection.pk)
            if connection.status != ConnectionStatus.CONNECTED:
                # Its pull would only wait for a re-authorisation: say so instead of waiting.
                not_connected.append(connection.tenant_name)
                self.stderr.write(
                    f"{connection.tenant_name} is {connection.get_status_display().lower()}: "
                    "re-authorise it in Admin → Integrations, then pull again."
                )
                continue
            job = payments_pull_enqueue(connection=connection)
            if job is None:
                continue
            jobs.append(job)
            self.stdout.write(f"{connection.tenant_name}: job #{job.pk} — {job.description}")
        if options["wait"] and jobs:
            self._wait(jobs, timeout=options["timeout"])
        if not_connected:
            raise CommandError(f"Not pulled, re-authorise first: {', '.join(not_connected)}.")

    def _wait(self, jobs: list[BackgroundJob], *, timeout: float) -> None:
        finished = wait_for_jobs(
            [j.pk for j in jobs], out=cast(TextIO, self.stdout), timeout=timeout
        )
        failed = [j for j in finished if j.state == JobState.FAILED]
        unfinished = [j for j in finished if not j.is_finished]
        for job in finished:
            self.stdout.write(f"  #{job.pk} {job.description}: {self._summary(job)}")
        totals = {"created": 0, "reversed": 0, "ignored_unlinked": 0}
        for job in finished:
            for key in totals:
                totals[key] += int((job.result or {}).get(key, 0) or 0)
        self.stdout.write(
            f"{len(finished)} pull(s): {totals['created']} new payment(s), {totals['reversed']} "
            f"reversed, {totals['ignored_unlinked']} on invoices BMS does not know; "
            f"{len(failed)} failed."
        )
        if unfinished:
            raise CommandError(f"{len(unfinished)} pull(s) had not finished when the wait ended.")
        if failed:
            raise CommandError(f"{len(failed)} payments pull(s) failed; see Background Jobs.")

    def _summary(self, job: BackgroundJob) -> str:
        if job.state == JobState.FAILED:
            return f"failed: {job.error_message}"
        if job.state != JobState.SUCCEEDED:
            return f"{job.get_state_display().lower()} {job.wait_reason or job.error_message}"
        result = job.result or {}
        return (
            f"{result.get('calls', 0)} call(s), {result.get('seen', 0)} seen, "
            f"{result.get('created', 0)} new, {result.get('reversed', 0)} reversed, "
            f"{result.get('ignored_unlinked', 0)} not linked"
        )

    def _links(self, codes: list[str] | None) -> list[XeroEntityLink]:
        connected = XeroEntityLink.objects.select_related("entity", "connection").filter(
            connection__isnull=False
        )
        if not codes:
            found = list(connected.order_by("entity__code"))
            if not found:
                raise CommandError("No entity is connected to Xero (Admin → Integrations).")
            return found
        entities = list(Entity.objects.filter(code__in=codes).order_by("code"))
        missing = sorted(set(codes) - {e.code for e in entities})
        if missing:
            raise CommandError(f"No entity with code {', '.join(missing)}.")
        links = {link.entity_id: link for link in connected.filter(entity__in=entities)}
        unconnected = [e.code for e in entities if e.pk not in links]
        if unconnected:
            raise CommandError(f"Not connected to Xero: {', '.join(unconnected)}.")
        return [links[e.pk] for e in entities]
