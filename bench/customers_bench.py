"""Customer push to Xero: calls per 5,000 new customers, and memory of a 100,000-customer bulk sync.

    .venv/bin/python bench/customers_bench.py                 # both parts, ~5 + ~5 minutes
    .venv/bin/python bench/customers_bench.py --part push --customers 5000 --time-scale 4
    .venv/bin/python bench/customers_bench.py --part memory --bulk-customers 100000

Everything is real processes (bench/harness.py): a scratch PostgreSQL database, the Xero sandbox
(`python -m xero_sandbox`, Xero's real limits on a scaled clock), Celery workers, Redis DB 9.
Entities are connected through BMS's own OAuth flow (sandbox auto-approve) and their accounts
pulled, as in production.

Part "push" (target 1, ≤ 105 Xero calls for 5,000 new customers), twice:
  A. per-customer: one customer_push_enqueue() per customer (NZ organisation), in one
     transaction, as a bulk edit would;
  B. bulk sync: customers_bulk_sync_start() (UK organisation), whose handler inserts one
     PUSH_CONTACT part per customer.
  Calls are counted from the sandbox's request log (GET /__sandbox__/requests), per tenant.

Part "memory" (target 2, ≤ 300 MB): a bulk sync of --bulk-customers customers. The bulk job's
handler inserts all the parts (and publishes their wake-ups); the parts then push for
--push-seconds (all of them if they finish sooner), the rest are cancelled. Printed: the peak
RSS (VmHWM, read from /proc before each process exits) of every worker process (Celery main and
pool processes), ru_maxrss of the waited-for children, and the RSS growth of this process (the
web/enqueue side) while it called customers_bulk_sync_start(). Pushing all 100,000 to the
sandbox is not possible in a benchmark: its contact-name uniqueness check scans every contact
(xero_sandbox/accounting.py), so a 50-contact PUT takes ~2 s at 15,000 contacts and grows
linearly; the parts' memory is per batch of 50, so a bounded run shows their peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import harness
from harness import log, print_figure

NZ_TENANT = "ff7f7db9-7320-55f4-8ab2-59f3cfac12d0"  # xero_sandbox.seed.DEMO_NZ_TENANT_ID
UK_TENANT = "f3adbeb9-081c-532a-8642-d05a87f4dbd6"  # xero_sandbox.seed.DEMO_UK_TENANT_ID
CALL_TARGET = 105
MEMORY_TARGET_MB = 300


def _minutes(stack: harness.Stack, since: int, tenant_id: str) -> float:
    entries = [e for e in stack.sandbox.requests_log(since) if e.get("tenant_id") == tenant_id]
    if len(entries) < 2:
        return 0.0
    return (harness.sandbox_seconds(entries[-1]) - harness.sandbox_seconds(entries[0])) / 60


def part_push(args: argparse.Namespace) -> bool:
    stack = harness.Stack(name="customers_push", time_scale=args.time_scale, keep_db=args.keep_db)
    with stack:
        stack.setup_django()
        from django.db import transaction  # noqa: PLC0415

        from admin_jobs.models import JobTrigger  # noqa: PLC0415
        from billing.models import Customer  # noqa: PLC0415
        from xero_integration.contact_sync import customer_push_enqueue  # noqa: PLC0415
        from xero_integration.customer_services import customers_bulk_sync_start  # noqa: PLC0415
        from xero_integration.models import XeroRecordLink  # noqa: PLC0415

        nz = harness.make_entity("NZ")
        uk = harness.make_entity("UK", currency="GBP", timezone="Europe/London")
        stack.connect_entities([(nz, NZ_TENANT), (uk, UK_TENANT)])
        with harness.timed(f"created {args.customers:,} customers × 2 entities"):
            harness.make_customers(nz, args.customers)
            harness.make_customers(uk, args.customers)
        stack.start_workers(count=args.workers, concurrency=args.concurrency)
        stack.start_sweeper()
        ok = True

        # A. One push job per customer, enqueued in one transaction.
        since = stack.sandbox.last_seq()
        started = time.perf_counter()
        with transaction.atomic():
            for customer in Customer.objects.filter(entity=nz).select_related("entity"):
                customer_push_enqueue(customer=customer, triggered_by=JobTrigger.USER)
        log(f"A. enqueued {args.customers:,} pushes in {time.perf_counter() - started:.1f} s")
        done = stack.wait_for_jobs(timeout=args.timeout)
        elapsed = time.perf_counter() - started
        calls = stack.sandbox.calls(since, tenant_id=NZ_TENANT)
        linked = XeroRecordLink.objects.filter(entity=nz).count()
        log(f"A. {harness.format_calls(calls)}; {linked:,} linked; {elapsed:.0f} s real, "
            f"{_minutes(stack, since, NZ_TENANT):.1f} sandbox min")  # fmt: skip
        good = done and linked == args.customers and calls["total"] <= CALL_TARGET
        ok &= good
        print_figure(
            f"1A Xero calls to push {args.customers:,} new customers (one push job each)",
            f"{calls['total']} ({calls['429']} × 429)",
            f"≤ {CALL_TARGET}",
            good,
        )

        # B. The bulk sync: one parent job whose handler inserts a part per customer.
        since = stack.sandbox.last_seq()
        started = time.perf_counter()
        customers_bulk_sync_start(entity=uk, customer_ids=None, user=None)
        done = stack.wait_for_jobs(timeout=args.timeout)
        elapsed = time.perf_counter() - started
        calls = stack.sandbox.calls(since, tenant_id=UK_TENANT)
        linked = XeroRecordLink.objects.filter(entity=uk).count()
        log(f"B. {harness.format_calls(calls)}; {linked:,} linked; {elapsed:.0f} s real, "
            f"{_minutes(stack, since, UK_TENANT):.1f} sandbox min")  # fmt: skip
        good = done and linked == args.customers and calls["total"] <= CALL_TARGET
        ok &= good
        print_figure(
            f"1B Xero calls to push {args.customers:,} new customers (bulk sync)",
            f"{calls['total']} ({calls['429']} × 429)",
            f"≤ {CALL_TARGET}",
            good,
        )
        failed = stack.failed_jobs()
        if failed:
            log(f"failed jobs: {failed}")
    return ok


def part_memory(args: argparse.Namespace) -> bool:
    with harness.Stack(
        name="customers_memory", time_scale=args.memory_time_scale, keep_db=args.keep_db
    ) as stack:
        stack.setup_django()
        from admin_jobs.models import BackgroundJob, JobKind, JobState  # noqa: PLC0415
        from admin_jobs.services import job_cancel  # noqa: PLC0415
        from xero_integration.customer_services import customers_bulk_sync_start  # noqa: PLC0415
        from xero_integration.models import XeroRecordLink  # noqa: PLC0415

        entity = harness.make_entity("NZ")
        stack.connect_entities([(entity, NZ_TENANT)])
        with harness.timed(f"created {args.bulk_customers:,} customers"):
            harness.make_customers(entity, args.bulk_customers)
        workers = stack.start_workers(count=args.workers, concurrency=args.concurrency)
        stack.start_sweeper()
        time.sleep(2)
        workers.monitor.sample()
        baseline = workers.peak_rss_mb()
        log(f"workers idle: largest process {baseline:.0f} MiB")

        web_before, _ = harness.rss_mb()
        started = time.perf_counter()
        parent = customers_bulk_sync_start(entity=entity, customer_ids=None, user=None)
        web_after, _ = harness.rss_mb()
        took = time.perf_counter() - started
        log(f"enqueue side: customers_bulk_sync_start() took {took:.2f} s, "
            f"RSS {web_before:.0f} → {web_after:.0f} MiB")  # fmt: skip

        # 1. The bulk job's own handler inserts every part and publishes their wake-ups (after
        # its insert transaction commits); the parent waits for its parts once it returns.
        deadline = time.monotonic() + args.timeout
        inserted_after = 0.0
        while time.monotonic() < deadline:
            parent.refresh_from_db()
            if not inserted_after and parent.progress_total >= args.bulk_customers:
                inserted_after = time.perf_counter() - started
            if parent.state not in (JobState.QUEUED, JobState.RUNNING):
                break
            time.sleep(0.5)
        handler_done = time.perf_counter() - started
        parts = BackgroundJob.objects.filter(parent=parent).count()
        log(f"bulk handler: {parts:,} parts committed after {inserted_after:.1f} s, handler "
            f"done (wake-ups published) after {handler_done:.1f} s, parent {parent.state}; "
            f"largest worker so far {workers.peak_rss_mb():.0f} MiB")  # fmt: skip

        # 2. Parts push for a bounded time.
        push_deadline = time.monotonic() + args.push_seconds
        while time.monotonic() < push_deadline:
            if not stack.unfinished_jobs():
                break
            time.sleep(2)
        pushed = XeroRecordLink.objects.filter(entity=entity).count()
        log(f"parts pushed {pushed:,} customers in {args.push_seconds:.0f} s (bounded); "
            f"largest worker {workers.peak_rss_mb():.0f} MiB")  # fmt: skip
        parent.refresh_from_db()
        if parent.state in (JobState.QUEUED, JobState.WAITING):
            job_cancel(job=parent, user=None)
        while BackgroundJob.objects.filter(
            kind=JobKind.PUSH_CONTACT, state=JobState.RUNNING
        ).exists():
            time.sleep(0.5)
        codes = workers.stop()
        stack.workers = None
        peak = workers.peak_rss_mb()
        for pid, mb, name in workers.monitor.report():
            log(f"  pid {pid:>7} {name:<40} VmHWM {mb:6.1f} MiB")
        log(f"workers exited {codes}; ru_maxrss of waited children "
            f"{harness.children_peak_rss_mb():.0f} MiB; "
            f"sandbox VmHWM {stack.sandbox.memory_mb():.0f} MiB")  # fmt: skip
        ok = peak <= MEMORY_TARGET_MB
        print_figure(
            f"2 peak RSS of a worker process in a bulk sync of {args.bulk_customers:,} customers "
            f"({parts:,} parts inserted, {pushed:,} pushed)",
            f"{peak:.0f} MiB (idle {baseline:.0f} MiB; "
            f"enqueue side +{web_after - web_before:.1f} MiB)",
            f"≤ {MEMORY_TARGET_MB} MB",
            ok,
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["all", "push", "memory"], default="all")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--bulk-customers", type=int, default=100_000)
    parser.add_argument("--push-seconds", type=float, default=60.0)
    parser.add_argument("--time-scale", type=float, default=4.0)
    parser.add_argument("--memory-time-scale", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.part == "all":
        # Each part in its own process: its own scratch database, sandbox and time scale.
        script = str(Path(__file__).resolve())
        results = [harness.run_part(script, sys.argv[1:], part) for part in ("push", "memory")]
        return 0 if all(results) else 1
    part = part_push if args.part == "push" else part_memory
    return harness.main_guard(lambda: part(args))


if __name__ == "__main__":
    sys.exit(main())
