"""Invoice push to Xero: calls for 1,000 invoices of new customers, and invoices per minute.

    .venv/bin/python bench/invoices_bench.py                  # all three parts
    .venv/bin/python bench/invoices_bench.py --part calls --invoices 1000
    .venv/bin/python bench/invoices_bench.py --part rate --time-scale 4
    .venv/bin/python bench/invoices_bench.py --part orgs --orgs 10

Real processes throughout (bench/harness.py): scratch PostgreSQL database, the Xero sandbox
enforcing Xero's limits (60 calls per rolling minute, 5 concurrent, per app + organisation) on a
clock running --time-scale times fast (BMS's limiter window scaled to match:
XERO_RATE_LIMIT_WINDOW_SECONDS = 60 / scale), Celery workers, Redis DB 9, and the job sweeper
every 30 sandbox seconds (beat's 30 s, scaled). Entities are connected with BMS's own OAuth flow
and their accounts pulled first, so the pre-push checks run as in production. Invoices are
released rows written with bulk_create (one line: 200 Sales, GST on Income = OUTPUT2, 115.00).

Part "calls" (target 3, ≤ 45 calls): --invoices invoices for as many never-synced customers,
queued by invoices_push_due() (the hourly schedule's own function: each invoice push waits for its
customer's contact push). Counted from the sandbox's request log.

Part "rate" (target 4, ≥ 2,700 invoices per sandbox minute, zero 429s): one organisation whose
customers are already in Xero, a backlog of invoice pushes queued in one transaction. The rate is
measured from the sandbox's request log on the sandbox clock: invoices carried by the PUT
/Invoices calls in [first call + --warmup, + --measure] sandbox minutes (default minutes 1–4),
element counts from BMS's stored requests (XeroRequest, joined by Idempotency-Key). Xero's limit
is 60 calls in any rolling minute, so a backlog's first minute is a burst of 60 calls followed by
a pause until the first of them leaves the window; the sustained rate shows from the second
minute on, which is why the first minute is not measured (its figure is printed too).

Part "orgs" (target 5): the same with --orgs organisations at once (each its own entity and a
backlog that does not drain while measured, default 10,000 invoices each, minutes 1–3): on 2
cores the CPU, not only Xero, is the limit. Per-organisation and aggregate rates, and every
limiter wait by reason per organisation (an "app" wait would be one organisation waiting on the
shared app budget). The aggregate is compared with the last rate part's figure at the same time
scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from itertools import zip_longest
from pathlib import Path
from typing import Any

import harness
from harness import log, print_figure

NZ_TENANT = "ff7f7db9-7320-55f4-8ab2-59f3cfac12d0"  # xero_sandbox.seed.DEMO_NZ_TENANT_ID
CALLS_TARGET = 45
RATE_TARGET = 2700
PREPUSH_CUSTOMERS = 50
RATE_FILE = Path(tempfile.gettempdir()) / "bms_bench_invoices_rate.json"


def _setup_orgs(stack: harness.Stack, count: int) -> list[tuple[Any, str]]:
    """`count` entities, each connected to its own organisation (the demo NZ one first)."""
    tenants = [NZ_TENANT] + [
        stack.sandbox.add_org(f"Bench Org {n:02d} Ltd") for n in range(1, count)
    ]
    pairs = [(harness.make_entity(f"E{n:02d}"), tenant) for n, tenant in enumerate(tenants)]
    stack.connect_entities(pairs)
    return pairs


def _prepush_customers(stack: harness.Stack, pairs: list[tuple[Any, str]]) -> dict[int, list[int]]:
    """Customers already in Xero (pushed by a bulk sync) for each entity: entity id -> ids."""
    from xero_integration.customer_services import customers_bulk_sync_start  # noqa: PLC0415

    customers = {}
    for entity, _ in pairs:
        customers[entity.pk] = harness.make_customers(entity, PREPUSH_CUSTOMERS)
        customers_bulk_sync_start(entity=entity, customer_ids=None, user=None)
    if not stack.wait_for_jobs(timeout=180):
        raise RuntimeError("the customers' contact pushes did not finish")
    return customers


def _enqueue_backlog(per_org: list[list[int]]) -> None:
    """Queue the invoices' pushes in one transaction (the whole backlog appears at once),
    round-robin over the organisations, as a mixed backlog would arrive."""
    from django.db import transaction  # noqa: PLC0415

    from billing.models import Invoice  # noqa: PLC0415
    from xero_integration.invoice_sync import invoices_push_enqueue  # noqa: PLC0415

    order = [i for group in zip_longest(*per_org) for i in group if i is not None]
    with transaction.atomic():
        for start in range(0, len(order), 2000):
            chunk = order[start : start + 2000]
            found = Invoice.objects.select_related("entity", "customer").in_bulk(chunk)
            invoices_push_enqueue(invoices=[found[invoice_id] for invoice_id in chunk])


def _invoice_calls(stack: harness.Stack, since: int) -> list[dict[str, Any]]:
    """PUT /Invoices calls after `since` with `elements` (from the stored request)."""
    from xero_integration.models import XeroRequest  # noqa: PLC0415

    entries = [
        e
        for e in stack.sandbox.requests_log(since)
        if e["method"] == "PUT" and e["path"].endswith("/Invoices")
    ]
    rows = XeroRequest.objects.filter(
        idempotency_key__in=[e["idempotency_key"] for e in entries]
    ).values_list("idempotency_key", "body")
    sizes = {key: len(body) for key, body in rows}
    for entry in entries:
        entry["elements"] = sizes.get(entry["idempotency_key"], 0) if entry["status"] == 200 else 0
        entry["t"] = harness.sandbox_seconds(entry)
    return entries


def _rate(calls: list[dict[str, Any]], *, start: float, warmup: float, measure: float) -> float:
    """Invoices per sandbox minute carried by calls in [start + warmup, + measure] minutes."""
    lo, hi = start + warmup * 60, start + (warmup + measure) * 60
    return sum(c["elements"] for c in calls if lo <= c["t"] < hi) / measure


def _wait_sandbox_until(stack: harness.Stack, moment: float) -> None:
    while stack.sandbox.now().timestamp() < moment:
        if stack.workers is not None and not all(p.alive() for p in stack.workers.processes):
            raise harness.WorkerDied("a worker died")
        time.sleep(0.5)


def _limiter_waits() -> dict[int, Counter[str]]:
    """Per entity: job attempts that ended waiting for the rate limiter, by limit."""
    from admin_jobs.models import JobAttempt, JobAttemptOutcome  # noqa: PLC0415

    waits: dict[int, Counter[str]] = defaultdict(Counter)
    rows = JobAttempt.objects.filter(outcome=JobAttemptOutcome.WAIT).values_list(
        "job__entity_id", "error_message"
    )
    for entity_id, message in rows:
        reason = "other"
        for name in ("minute", "concurrent", "day", "paused", "app"):
            if f"({name} limit)" in message or f"{name} rate limit" in message:
                reason = name
                break
        waits[entity_id][reason] += 1
    return waits


# --- Parts ----------------------------------------------------------------------------------------


def part_calls(args: argparse.Namespace) -> bool:
    stack = harness.Stack(name="invoices_calls", time_scale=args.time_scale, keep_db=args.keep_db)
    with stack:
        stack.setup_django()
        from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415
        from django.db import transaction  # noqa: PLC0415

        from admin_jobs.models import JobTrigger  # noqa: PLC0415
        from billing.models import Invoice  # noqa: PLC0415
        from xero_integration.invoice_sync import invoices_push_due  # noqa: PLC0415
        from xero_integration.models import XeroRecordLink  # noqa: PLC0415

        ((entity, tenant),) = _setup_orgs(stack, 1)
        customer_ids = harness.make_customers(entity, args.invoices)
        harness.make_invoices(entity, customer_ids)
        stack.start_workers(count=args.workers, concurrency=args.concurrency)
        stack.start_sweeper()
        since = stack.sandbox.last_seq()
        started = time.perf_counter()
        if args.one_transaction:
            # What the hourly task would do if it queued the whole backlog in one transaction.
            with transaction.atomic():
                job_ids = invoices_push_due(entity_id=entity.pk, triggered_by=JobTrigger.SCHEDULE)
        else:
            job_ids = invoices_push_due(entity_id=entity.pk, triggered_by=JobTrigger.SCHEDULE)
        log(f"invoices_push_due() queued {len(job_ids):,} invoice pushes (and their customers') "
            f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        done = stack.wait_for_jobs(timeout=args.timeout)
        elapsed = time.perf_counter() - started
        calls = stack.sandbox.calls(since, tenant_id=tenant)
        pushed = XeroRecordLink.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice)
        ).count()
        sizes = [c["elements"] for c in _invoice_calls(stack, since)]
        log(f"{harness.format_calls(calls)} in {elapsed:.0f} s real")
        log(f"job states: {dict(stack.job_states())}")
        log(f"PUT /Invoices batch sizes: {sizes}")
        failed = stack.failed_jobs()
        if failed:
            log(f"failed jobs: {failed}")
        ok = done and calls["total"] <= CALLS_TARGET and not failed
        print_figure(
            f"3 Xero calls to push {args.invoices:,} invoices for {args.invoices:,} new customers",
            f"{calls['total']} ({calls['429']} × 429; {pushed:,} invoices linked; "
            f"{'one transaction' if args.one_transaction else 'invoices_push_due() as is'})",
            f"≤ {CALLS_TARGET}",
            ok,
        )
    return ok


def _run_backlog(
    args: argparse.Namespace,
    *,
    orgs: int,
    per_org: int,
    name: str,
    warmup: float,
    measure: float,
) -> dict[str, Any]:
    with harness.Stack(name=name, time_scale=args.time_scale, keep_db=args.keep_db) as stack:
        stack.setup_django()
        pairs = _setup_orgs(stack, orgs)
        concurrency = args.concurrency if orgs == 1 else args.orgs_concurrency
        stack.start_workers(count=args.workers, concurrency=concurrency)
        stack.start_sweeper()
        customers = _prepush_customers(stack, pairs)
        invoices = {}
        for entity, _ in pairs:
            ids = customers[entity.pk]
            invoices[entity.pk] = harness.make_invoices(
                entity, [ids[n % len(ids)] for n in range(per_org)]
            )
        since = stack.sandbox.last_seq()
        started = time.perf_counter()
        _enqueue_backlog(list(invoices.values()))
        log(f"queued {orgs * per_org:,} invoice pushes ({orgs} org(s)) in "
            f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        # Measure from the first invoice call on the sandbox clock.
        while not _invoice_calls(stack, since):
            time.sleep(0.5)
        first = min(c["t"] for c in _invoice_calls(stack, since))
        end = first + (warmup + measure) * 60
        _wait_sandbox_until(stack, end + 1)
        cpu = _cpu_seconds(stack)
        assert stack.workers is not None
        stack.workers.stop()
        stack.workers = None
        calls = _invoice_calls(stack, since)
        all_calls = stack.sandbox.calls(since)
        waits = _limiter_waits()
        result: dict[str, Any] = {"orgs": [], "429": all_calls["429"], "calls": all_calls}
        for entity, tenant in pairs:
            mine = [c for c in calls if c["tenant_id"] == tenant]
            start = min((c["t"] for c in mine), default=first)
            rate = _rate(mine, start=start, warmup=warmup, measure=measure)
            sent = sum(c["elements"] for c in mine)
            drained = sent >= per_org
            if drained and len(mine) > 1:
                # The backlog ran out inside the window: its rate is what it took to drain.
                rate = sent / ((max(c["t"] for c in mine) - start) / 60)
            result["orgs"].append(
                {
                    "entity": entity.code,
                    "tenant": tenant,
                    "rate": rate,
                    "calls": len(mine),
                    "429": sum(1 for c in mine if c["status"] == 429),
                    "sent": sent,
                    "drained": drained,
                    "first_minute": sum(c["elements"] for c in mine if c["t"] < start + 60),
                    "waits": dict(waits.get(entity.pk, {})),
                }
            )
        if calls:
            # Calls per 10 sandbox seconds from the first one: shows bursts and idle gaps.
            buckets = Counter(int((c["t"] - first) // 10) for c in calls)
            timeline = [buckets.get(n, 0) for n in range(max(buckets) + 1)]
            log(f"PUT /Invoices per 10 sandbox s: {timeline}")
        result["aggregate"] = sum(o["rate"] for o in result["orgs"])
        if any(o["drained"] for o in result["orgs"]) and calls:
            span = (max(c["t"] for c in calls) - min(c["t"] for c in calls)) / 60
            result["aggregate"] = sum(c["elements"] for c in calls) / span
            log(f"a backlog drained: aggregate = all invoices / {span:.2f} sandbox min of calls")
        result["cpu"] = cpu
        result["wall"] = time.perf_counter() - started
        for org in result["orgs"]:
            log(f"  {org['entity']} {org['tenant'][:8]}: {org['rate']:7.0f} invoices/sandbox-min "
                f"(first minute {org['first_minute']}), {org['calls']} PUT calls, "
                f"{org['429']} × 429, {org['sent']:,} sent"
                f"{' (BACKLOG DRAINED)' if org['drained'] else ''}, "
                f"limiter waits {org['waits']}")  # fmt: skip
        log(f"all calls: {harness.format_calls(all_calls)}; CPU seconds by process: {cpu}")
        return result


def _cpu_seconds(stack: harness.Stack) -> dict[str, float]:
    """CPU time used so far by the workers, the sandbox and PostgreSQL (from /proc)."""
    ticks = 100.0

    def cpu(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks

    result: dict[str, float] = {}
    if stack.workers is not None:
        result["workers"] = round(
            sum(cpu(p) for root in stack.workers.pids() for p in harness.process_tree(root)), 1
        )
    result["sandbox"] = round(cpu(stack.sandbox.process.pid or 0), 1)
    postgres = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (p / "comm").exists() and _comm(p) == "postgres"
    ]
    result["postgres (all, since start)"] = round(sum(cpu(p) for p in postgres), 1)
    return result


def _comm(path: Path) -> str:
    try:
        return (path / "comm").read_text().strip()
    except OSError:
        return ""


def part_rate(args: argparse.Namespace) -> bool:
    per_org = args.backlog or int(3000 * (args.warmup + args.measure) * 1.15)
    result = _run_backlog(
        args,
        orgs=1,
        per_org=per_org,
        name="invoices_rate",
        warmup=args.warmup,
        measure=args.measure,
    )
    org = result["orgs"][0]
    RATE_FILE.write_text(json.dumps({"rate": org["rate"], "time_scale": args.time_scale}))
    ok = org["rate"] >= RATE_TARGET and result["429"] == 0 and not org["drained"]
    print_figure(
        "4 invoices pushed per sandbox minute, one organisation with a backlog "
        f"(time scale {args.time_scale:g}, minutes {args.warmup:g}–{args.warmup + args.measure:g})",
        f"{org['rate']:.0f}/min, {result['429']} × 429",
        f"≥ {RATE_TARGET}/min, 0 × 429",
        ok,
    )
    return ok


def part_orgs(args: argparse.Namespace) -> bool:
    per_org = args.orgs_backlog
    result = _run_backlog(
        args,
        orgs=args.orgs,
        per_org=per_org,
        name="invoices_orgs",
        warmup=args.orgs_warmup,
        measure=args.orgs_measure,
    )
    rates = [o["rate"] for o in result["orgs"]]
    app_waits = sum(o["waits"].get("app", 0) for o in result["orgs"])
    single = args.single_rate
    if not single and RATE_FILE.exists():
        previous = json.loads(RATE_FILE.read_text())
        if previous["time_scale"] == args.time_scale:
            single = round(previous["rate"])
            log(f"one organisation's rate from the last rate part: {single}/min")
    single = single or RATE_TARGET
    ok = result["aggregate"] >= 5 * single and app_waits == 0 and result["429"] == 0
    print_figure(
        f"5 aggregate invoices per sandbox minute, {args.orgs} organisations at once "
        f"(per org min {min(rates):.0f} / max {max(rates):.0f})",
        f"{result['aggregate']:.0f}/min = {result['aggregate'] / single:.1f} × one org "
        f"({single}/min); {result['429']} × 429; {app_waits} waits on the app-wide budget",
        "≥ 5 × one organisation, no waits on another's budget",
        ok,
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["all", "calls", "rate", "orgs"], default="all")
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument(
        "--one-transaction", action="store_true",
        help="calls part: call invoices_push_due() inside one transaction (an experiment)",
    )  # fmt: skip
    parser.add_argument(
        "--time-scale", type=float, default=0.0,
        help="sandbox clock speed (default: 4 for calls, 1 for rate and orgs: see README)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=float, default=1.0,
        help="rate part: sandbox minutes not measured (the first minute is a burst of up to 60 "
        "calls; a backlog's sustained rate shows from the second)",
    )  # fmt: skip
    parser.add_argument("--measure", type=float, default=3.0, help="rate part: minutes measured")
    parser.add_argument("--backlog", type=int, default=0, help="rate part: invoices queued")
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument(
        "--orgs-backlog", type=int, default=10000,
        help="invoices per org: enough that no backlog drains while it is measured",
    )  # fmt: skip
    parser.add_argument("--orgs-warmup", type=float, default=1.0)
    parser.add_argument("--orgs-measure", type=float, default=2.0)
    parser.add_argument("--orgs-concurrency", type=int, default=10)
    parser.add_argument(
        "--single-rate", type=int, default=0,
        help="one organisation's rate to compare the orgs part with (default: the last rate "
        "part's figure at the same time scale, else the 2,700 target)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.part == "all":
        # Each part in its own process: its own scratch database, sandbox and time scale.
        script = str(Path(__file__).resolve())
        parts = ("calls", "rate", "orgs")
        results = [harness.run_part(script, sys.argv[1:], part) for part in parts]
        return 0 if all(results) else 1
    if not args.time_scale:
        args.time_scale = 4.0 if args.part == "calls" else 1.0
    run = {"calls": part_calls, "rate": part_rate, "orgs": part_orgs}[args.part]
    return harness.main_guard(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
