"""The real-process fault test: BMS pushes invoices to Xero while its processes are killed.

Full counts (the "Prove it" requirement; about 7 minutes)::

    .venv/bin/python bench/process_faults.py

CI runs it with smaller counts through ``tests/process/test_real_processes.py`` (``.ci/run``,
about 3 minutes); the same test takes the full counts from the environment::

    BMS_PROCESS_INVOICES=500 BMS_PROCESS_KILLS=30 BMS_PROCESS_RELEASE_SECONDS=240 \\
      python3 dev.py test tests/process -s

What runs, every piece a real process over real sockets (bench/harness.py):

* PostgreSQL: a scratch database ``bms_bench_process_faults_<pid>``, created, migrated, dropped;
* Redis: a private ``redis-server`` (no persistence) on a free port, broker and rate limiter;
* the Xero sandbox (``python -m xero_sandbox``) with three organisations (the demo NZ one and two
  seeded), its webhooks posted to BMS's web server;
* BMS: web (gunicorn), 3 Celery worker processes (prefork) and celery beat (the job sweeper
  every 30 s), with ``BMS_JOB_LEASE_SECONDS=20``.

Each organisation has an entity connected through BMS's real OAuth flow (its chart pulled),
never-synced customers and draft invoices. A staff user logs in to the web server and releases
the invoices one by one (HTTP POST), spread over ``--release-seconds`` in random order; release
queues the contact push and the invoice push. A fraction (``--invalid``, 5 %) uses account 090
(a BANK account: active in Xero's chart, so BMS's pre-push check passes, but Xero refuses it on a
sales invoice). Meanwhile:

* ``--kills`` SIGKILLs of a worker (with its pool) at random times, four times in five one that
  is running a job if any is within 3 s; each is restarted 1-3 s later (a job it was running
  is taken over once its 20 s lease has expired and the sweeper has re-published it);
* Redis is killed (SIGKILL) and restarted on the same port ``--redis-restarts`` times (queued
  wake-ups are lost with it; the job table and the sweeper must recover them);
* the sandbox commits and then drops the reply (no response) of ``--drop`` (10 %) of
  ``PUT /Contacts``, ``PUT /Invoices`` and ``POST /Invoices`` calls;
* every API call takes ``--slow`` (0.25 s) in the sandbox, so calls overlap and kills land
  mid-call;
* a worker that exits by itself (Celery 5.7's consumer can die when Redis goes away) is
  restarted 1-3 s later, as a supervisor would, and counted.

When the chaos ends the faults are cleared, every worker is running again, and the test waits
until no job is unfinished. Then it checks, and prints as FIGURE lines:

* Xero holds exactly the valid invoices, each once, in its own organisation; no duplicate
  contact or invoice; nothing in the wrong organisation (invoice, its contact, BMS's link);
* each invalid invoice is absent from Xero and its push job failed with a recorded error;
* limits: per organisation the most calls in any rolling 60 s of the sandbox clock (≤ 60), the
  most calls in flight (sampled from the sandbox's own counter every 20 ms, ≤ 5), and the 429s
  (the sandbox refuses a 6th concurrent or a 61st call in a minute with a 429, so "0 × 429"
  means neither limit was ever reached, not only that the samples missed it);
* how much chaos actually happened: kills, attempts lost with a killed worker, replies dropped.

Exit status 0 when every check passed, 1 otherwise. ``--keep-logs`` keeps the process logs
(web, workers, beat, sandbox, redis) in the printed directory; they are kept anyway on failure.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402 - after the path
from harness import log, print_figure  # noqa: E402

NZ_TENANT = "ff7f7db9-7320-55f4-8ab2-59f3cfac12d0"  # xero_sandbox.seed.DEMO_NZ_TENANT_ID
WEBHOOK_KEY = "bms-demo-webhook-key"
DROP_ROUTES = ("PUT /Contacts", "PUT /Invoices", "POST /Invoices")
DB_PREFIX = "bms_bench_process_faults_"
PASSWORD = "chaos-monkey-pw-1"  # noqa: S105 - a throwaway user in a scratch database
MINUTE_LIMIT = 60
CONCURRENT_LIMIT = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--invoices", type=int, default=500)
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--redis-restarts", type=int, default=2)
    parser.add_argument("--drop", type=float, default=0.10, help="share of replies dropped")
    parser.add_argument("--invalid", type=float, default=0.05, help="share of invalid invoices")
    parser.add_argument(
        "--slow", type=float, default=0.25, help="seconds the sandbox takes per API call"
    )
    parser.add_argument("--release-seconds", type=float, default=240.0)
    parser.add_argument("--tail-seconds", type=float, default=20.0, help="chaos after releases")
    parser.add_argument("--settle-timeout", type=float, default=420.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--lease-seconds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep-logs", action="store_true")
    return parser.parse_args(argv)


# --- Cleanup ------------------------------------------------------------------------------------


def _server_url() -> str:
    """The PostgreSQL server of DATABASE_URL (the test run's), else the harness's default."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return urlunparse(urlparse(url)._replace(scheme="postgresql", path="/postgres"))
    return harness.DEFAULT_PG


def drop_stale_databases(server_url: str) -> None:
    """Scratch databases of earlier runs whose process is gone (killed before its cleanup)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",)
            )
        ]
        for name in names:
            pid = name.removeprefix(DB_PREFIX)
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                log(f"dropping stale scratch database {name}")
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cleanup:
    """Runs once: from `finally`, atexit, or SIGTERM/SIGINT/SIGHUP (turned into SystemExit)."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Any]] = []
        self.done = False
        atexit.register(self.run)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log(f"signal {signum}: cleaning up")
        raise SystemExit(128 + signum)

    def add(self, name: str, action: Any) -> None:
        self.actions.append((name, action))

    def run(self) -> None:
        if self.done:
            return
        self.done = True
        # Ignore further signals while tearing down (a second Ctrl-C must not leave orphans).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for name, action in reversed(self.actions):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
                log(f"cleanup {name}: {exc!r}")


# --- Measurements -------------------------------------------------------------------------------


class InFlightSampler:
    """Polls the sandbox's own per-organisation in-flight counter (GET /__sandbox__/limits)."""

    def __init__(self, sandbox: harness.Sandbox, interval: float = 0.02) -> None:
        self.url = sandbox.url + "/__sandbox__/limits"
        self.interval = interval
        self.peak: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="in-flight", daemon=True)

    def start(self) -> InFlightSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        http = requests.Session()
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                usage = http.get(self.url, timeout=5).json().get("usage", {})
                self.samples += 1
                for key, row in usage.items():
                    tenant = key.rsplit("/", 1)[-1]
                    self.peak[tenant] = max(self.peak[tenant], int(row.get("in_flight", 0)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def max_in_rolling_window(times: list[float], span: float = 60.0) -> int:
    """Most entries in any window (t - span, t] (sorted epoch seconds)."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - span:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- The run ------------------------------------------------------------------------------------


@dataclass
class Org:
    tenant_id: str
    entity: Any
    prefix: str
    customer_prefix: str
    valid: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)


@dataclass
class Chaos:
    kills: int = 0
    killed_busy: int = 0
    redis_restarts: int = 0
    worker_restarts: int = 0
    self_exits: int = 0
    release_posts: int = 0
    release_retries: int = 0
    release_errors: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def event(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        log(text)


def setup_orgs(stack: harness.Stack, count: int) -> list[Org]:
    from billing.models import Account, AccountType  # noqa: PLC0415

    tenants = [NZ_TENANT] + [stack.sandbox.add_org(f"Chaos Org {n} Ltd") for n in range(1, count)]
    orgs = []
    for n, tenant in enumerate(tenants):
        code = f"P{n}"
        entity = harness.make_entity(code)
        # Active in Xero's chart (pulled), so the pre-push check passes; Xero refuses a BANK
        # account on a sales invoice line.
        Account.objects.create(entity=entity, code="090", name="Bank", type=AccountType.BANK)
        orgs.append(Org(tenant, entity, f"{code}-INV-", f"{code} Customer "))
    stack.connect_entities([(o.entity, o.tenant_id) for o in orgs])
    return orgs


def make_drafts(orgs: list[Org], total: int, invalid_share: float, rng: random.Random) -> list[int]:
    """Draft invoices through billing's own service, spread over the organisations; returns
    their ids. A few (at least one) use account 090."""
    from billing.models import Account, Customer, TaxRate  # noqa: PLC0415
    from billing.services import LineInput, invoice_create  # noqa: PLC0415
    from bms import clock  # noqa: PLC0415

    per_org = [total // len(orgs) + (1 if n < total % len(orgs) else 0) for n in range(len(orgs))]
    invalid_total = max(1, round(total * invalid_share)) if invalid_share > 0 else 0
    slots = [(n, i) for n, size in enumerate(per_org) for i in range(size)]
    invalid_slots = set(rng.sample(slots, invalid_total))
    ids = []
    for n, org in enumerate(orgs):
        customer_ids = harness.make_customers(org.entity, max(1, per_org[n] // 3 + 1))
        customers = list(Customer.objects.filter(pk__in=customer_ids).order_by("pk"))
        sales = Account.objects.get(entity=org.entity, code="200")
        bank = Account.objects.get(entity=org.entity, code="090")
        tax = TaxRate.objects.get(entity=org.entity)
        today = clock.today_in(org.entity.timezone)
        for i in range(per_org[n]):
            bad = (n, i) in invalid_slots
            invoice = invoice_create(
                entity=org.entity,
                customer=customers[i % len(customers)],
                issue_date=today,
                due_date=today,
                lines=[
                    LineInput(
                        description=f"Chaos beans {i}",
                        quantity=Decimal("2"),
                        unit_price=Decimal("50.00"),
                        account_id=(bank if bad else sales).pk,
                        tax_rate_id=tax.pk,
                    )
                ],
            )
            (org.invalid if bad else org.valid).add(invoice.number)
            ids.append(invoice.pk)
    return ids


class WebClient:
    """A staff user's browser session on BMS's web server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def login(self, username: str, password: str) -> None:
        page = self.http.get(f"{self.base}/accounts/login/", timeout=30)
        page.raise_for_status()
        reply = self.http.post(
            f"{self.base}/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.http.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.base}/accounts/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if reply.status_code != 302 or "sessionid" not in self.http.cookies:
            raise RuntimeError(f"login failed: {reply.status_code} {reply.text[:300]}")

    def release(self, invoice_id: int) -> int:
        reply = self.http.post(
            f"{self.base}/billing/invoices/{invoice_id}/release/",
            data={"csrfmiddlewaretoken": self.http.cookies["csrftoken"]},
            headers={"Referer": f"{self.base}/billing/invoices/{invoice_id}/"},
            allow_redirects=False,
            timeout=60,
        )
        return reply.status_code


def release_all(
    web: WebClient, invoice_ids: list[int], seconds: float, chaos: Chaos, stop: threading.Event
) -> None:
    """POST every release, evenly spread over `seconds`; a release the web server did not
    complete (it answered 5xx or the connection failed) is pressed again, as a user would."""
    from billing.models import DocumentStatus, Invoice  # noqa: PLC0415

    started = time.monotonic()
    gap = seconds / max(1, len(invoice_ids))
    for n, invoice_id in enumerate(invoice_ids):
        if stop.is_set():
            return
        delay = started + n * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for attempt in range(1, 6):
            try:
                status = web.release(invoice_id)
            except requests.RequestException as exc:
                status = 0
                chaos.release_errors.append(f"invoice {invoice_id}: {exc!r}"[:200])
            chaos.release_posts += 1
            released = Invoice.objects.filter(
                pk=invoice_id, status=DocumentStatus.RELEASED
            ).exists()
            if released:
                break
            if status:
                chaos.release_errors.append(f"invoice {invoice_id}: HTTP {status}")
            chaos.release_retries += 1
            time.sleep(attempt)
    from django.db import connection  # noqa: PLC0415

    connection.close()


def busy_workers(stack: harness.Stack) -> set[str]:
    """Worker pids (the pool processes) holding a running job's lease right now."""
    from admin_jobs.models import JobAttempt, JobAttemptOutcome  # noqa: PLC0415

    return {
        worker.rsplit(":", 1)[-1]
        for worker in JobAttempt.objects.filter(outcome=JobAttemptOutcome.RUNNING).values_list(
            "worker", flat=True
        )
    }


def run_chaos(
    stack: harness.Stack,
    redis_server: harness.RedisServer,
    args: argparse.Namespace,
    chaos: Chaos,
    rng: random.Random,
    releaser: threading.Thread,
) -> None:
    assert stack.workers is not None
    workers = stack.workers
    duration = args.release_seconds + args.tail_seconds
    kill_times = sorted(rng.uniform(2.0, duration) for _ in range(args.kills))
    gaps = args.redis_restarts + 1
    redis_times = [duration * (k + 1) / gaps for k in range(args.redis_restarts)]
    restarts: list[tuple[float, int]] = []
    started = time.monotonic()
    patience = 0.0  # how long the due kill has waited for a worker that is running a job
    while True:
        now = time.monotonic() - started
        if kill_times and now >= kill_times[0]:
            alive = [i for i, p in enumerate(workers.processes) if p.alive()]
            running = busy_workers(stack)
            busy_ones = [
                i
                for i in alive
                if running & {str(p) for p in harness.process_tree(workers.processes[i].pid or 0)}
            ]
            if not busy_ones and patience < 3.0:
                # Most kills should interrupt work: wait up to 3 s for a worker to take a job.
                patience += 0.1
                time.sleep(0.1)
                continue
            kill_times.pop(0)
            patience = 0.0
            if alive:
                # A random worker; four times in five one that is running a job, if any is.
                pool = busy_ones if busy_ones and rng.random() < 0.8 else alive
                index = rng.choice(pool)
                busy = index in busy_ones
                workers.kill(index)
                chaos.kills += 1
                chaos.killed_busy += busy
                chaos.event(f"kill #{chaos.kills}: worker {index} ({'busy' if busy else 'idle'})")
                restarts.append((now + rng.uniform(1.0, 3.0), index))
            else:
                kill_times.insert(0, now + 0.5)  # all down: kill once one is back
        if redis_times and now >= redis_times[0]:
            redis_times.pop(0)
            redis_server.process.kill()
            time.sleep(rng.uniform(1.0, 3.0))
            redis_server.start()
            chaos.redis_restarts += 1
            chaos.event(f"Redis restart #{chaos.redis_restarts} (killed, restarted empty)")
        pending = {index for _, index in restarts}
        for index, process in enumerate(workers.processes):
            if index not in pending and not process.alive():
                # Nobody killed it: it exited by itself (seen: Celery's consumer dies with
                # "Unrecoverable error: AttributeError(... 'hostname')" when Redis goes away).
                # Restart it as a supervisor would (restart: always).
                chaos.self_exits += 1
                chaos.event(f"worker {index} exited by itself; restarting it")
                restarts.append((now + rng.uniform(1.0, 3.0), index))
        for item in [r for r in restarts if now >= r[0]]:
            restarts.remove(item)
            if not workers.processes[item[1]].alive():
                workers.restart(item[1])
                chaos.worker_restarts += 1
        if not kill_times and not redis_times and now >= duration and not releaser.is_alive():
            break
        time.sleep(0.1)
    for index, process in enumerate(workers.processes):
        if not process.alive():
            workers.restart(index)
            chaos.worker_restarts += 1


def wait_settled(stack: harness.Stack, args: argparse.Namespace, chaos: Chaos) -> bool:
    """Until no job is unfinished; a worker that died by itself meanwhile is reported and
    restarted (nothing kills workers any more)."""
    assert stack.workers is not None
    deadline = time.monotonic() + args.settle_timeout
    next_progress = 0.0
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        left = stack.unfinished_jobs()
        if not left:
            # Quiet for 5 s: a webhook delivered just now may still queue a payments pull.
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 5:
                return True
            time.sleep(0.5)
            continue
        quiet_since = None
        for index, process in enumerate(stack.workers.processes):
            if not process.alive():
                chaos.self_exits += 1
                chaos.event(f"worker {index} exited by itself:\n{process.tail(10)}")
                stack.workers.restart(index)
        if time.monotonic() >= next_progress:
            log(f"  unfinished: {dict(left)}")
            next_progress = time.monotonic() + 15
        time.sleep(1)
    return False


# --- Checks -------------------------------------------------------------------------------------


def check(  # noqa: C901, PLR0912, PLR0915
    stack: harness.Stack,
    orgs: list[Org],
    baseline: dict[str, set[str]],
    chaos: Chaos,
    in_flight_peak: Counter[str],
) -> bool:
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415

    from admin_jobs.models import (  # noqa: PLC0415
        BackgroundJob,
        JobAttempt,
        JobAttemptOutcome,
        JobKind,
        JobState,
    )
    from billing.models import Invoice  # noqa: PLC0415
    from xero_integration.models import XeroRecordLink  # noqa: PLC0415

    ok = True
    state = stack.sandbox.get("state")
    xero_orgs = state["orgs"]
    by_tenant = {o.tenant_id: o for o in orgs}
    all_valid = {n for o in orgs for n in o.valid}
    all_invalid = {n for o in orgs for n in o.invalid}
    number_re = re.compile(r"^(P\d+-INV-)")

    # Xero's side.
    where_number: dict[str, list[str]] = defaultdict(list)
    wrong_org: list[str] = []
    duplicate_contacts: list[str] = []
    for tenant, data in xero_orgs.items():
        contacts = data["contacts"]
        names = Counter(c["Name"] for c in contacts.values())
        duplicate_contacts += [f"{tenant[:8]}:{n}×{c}" for n, c in names.items() if c > 1]
        org = by_tenant.get(tenant)
        for invoice_id, invoice in data["invoices"].items():
            if invoice_id in baseline.get(tenant, set()):
                continue
            number = invoice["InvoiceNumber"]
            where_number[number].append(tenant)
            match = number_re.match(number)
            contact = contacts.get(invoice.get("ContactID") or "")
            if org is None or match is None or match.group(1) != org.prefix:
                wrong_org.append(f"invoice {number} in {tenant}")
            elif contact is None or not contact["Name"].startswith(org.customer_prefix):
                wrong_org.append(f"invoice {number}: contact not in its organisation")
        if org is not None:
            foreign = [
                c["Name"]
                for c in contacts.values()
                if re.match(r"^P\d+ Customer ", c["Name"])
                and not c["Name"].startswith(org.customer_prefix)
            ]
            wrong_org += [f"contact {name} in {tenant}" for name in foreign]
    in_xero = set(where_number)
    duplicates = {n: t for n, t in where_number.items() if len(t) > 1}
    missing = sorted(all_valid - in_xero)
    invalid_in_xero = sorted(all_invalid & in_xero)
    unexpected = sorted(in_xero - all_valid - all_invalid)

    # BMS's side: links point into the right organisation, at records that exist there.
    invoice_type = ContentType.objects.get_for_model(Invoice)
    bad_links = []
    for link in XeroRecordLink.objects.filter(content_type=invoice_type).select_related("entity"):
        org = next(o for o in orgs if o.entity.pk == link.entity_id)
        if (
            link.tenant_id != org.tenant_id
            or link.xero_id not in xero_orgs[org.tenant_id]["invoices"]
        ):
            bad_links.append(f"{link.xero_number} → {link.tenant_id[:8]}/{link.xero_id[:8]}")

    # Jobs: every invoice's last push succeeded (valid) or failed with an error (invalid).
    numbers = dict(Invoice.objects.values_list("pk", "number"))
    last_push: dict[str, BackgroundJob] = {}
    for job in BackgroundJob.objects.filter(kind=JobKind.PUSH_INVOICE).order_by("pk"):
        last_push[numbers.get(job.target_object_id or 0, "?")] = job
    linked = set(
        XeroRecordLink.objects.filter(content_type=invoice_type).values_list(
            "xero_number", flat=True
        )
    )

    def push_done(number: str) -> bool:
        # A takeover whose predecessor was killed after linking the invoice, before recording
        # its outcome, finds it "already up to date in Xero" and ends skipped: fine, if linked.
        job = last_push.get(number)
        if job is None or number not in linked:
            return False
        return job.state == JobState.SUCCEEDED or (
            job.state == JobState.SKIPPED
            and "already up to date" in (job.result or {}).get("skipped_reason", "")
        )

    valid_not_ok = sorted(
        f"{n}: job {last_push[n].pk} {last_push[n].state} {last_push[n].error_message[:160]}"
        if n in last_push
        else f"{n}: no push job"
        for n in all_valid
        if not push_done(n)
    )
    skipped_done = sum(
        1 for n in all_valid if n in last_push and last_push[n].state == JobState.SKIPPED
    )
    invalid_not_failed = sorted(
        n
        for n in all_invalid
        if n not in last_push
        or last_push[n].state != JobState.FAILED
        or not last_push[n].error_message
    )
    states = stack.job_states()
    failed_other = list(
        BackgroundJob.objects.filter(state=JobState.FAILED)
        .exclude(kind=JobKind.PUSH_INVOICE)
        .values_list("pk", "kind", "error_message")[:10]
    )
    lost = JobAttempt.objects.filter(outcome=JobAttemptOutcome.LOST).count()
    stuck = stack.unfinished_jobs()

    # Limits, from the sandbox's request log.
    entries = stack.sandbox.requests_log()
    per_tenant: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        if entry.get("tenant_id") and not entry.get("rate_limited"):
            per_tenant[entry["tenant_id"]].append(harness.sandbox_seconds(entry))
    window_max = {t: max_in_rolling_window(sorted(v)) for t, v in per_tenant.items()}
    too_many = Counter(e.get("problem") or "?" for e in entries if e.get("rate_limited"))
    dropped = Counter(
        f"{e['method']} {e['path'].removeprefix('/api.xro/2.0')}"
        for e in entries
        if e.get("dropped")
    )

    def figure(label: str, value: Any, target: str = "", good: bool | None = None) -> None:
        nonlocal ok
        if good is False:
            ok = False
        print_figure(label, str(value), target, good)

    total = len(all_valid) + len(all_invalid)
    print(flush=True)
    figure("invoices released", f"{total} ({len(all_valid)} valid, {len(all_invalid)} invalid)")
    figure("valid invoices in Xero", f"{len(all_valid & in_xero)} of {len(all_valid)}",
           f"{len(all_valid)}", not missing)  # fmt: skip
    figure("valid invoices missing from Xero", len(missing), "0", not missing)
    figure("invalid invoices in Xero", len(invalid_in_xero), "0", not invalid_in_xero)
    figure("invalid invoices with a failed job and an error",
           f"{len(all_invalid) - len(invalid_not_failed)} of {len(all_invalid)}",
           f"{len(all_invalid)}", not invalid_not_failed)  # fmt: skip
    figure("duplicate invoices in Xero", len(duplicates), "0", not duplicates)
    figure("duplicate contacts in Xero", len(duplicate_contacts), "0", not duplicate_contacts)
    figure("records in the wrong organisation", len(wrong_org) + len(unexpected), "0",
           not wrong_org and not unexpected)  # fmt: skip
    figure("BMS links not pointing at their record in their organisation", len(bad_links),
           "0", not bad_links)  # fmt: skip
    figure("valid invoices not linked or whose push job did not succeed", len(valid_not_ok),
           "0", not valid_not_ok)  # fmt: skip
    figure("valid invoices whose takeover found them already in Xero (skipped)", skipped_done)
    figure("jobs unfinished at the end", sum(stuck.values()), "0", not stuck)
    figure("other failed jobs", len(failed_other), "0", not failed_other)
    for org in orgs:
        tenant = org.tenant_id
        figure(f"max calls in a rolling 60 s, {org.prefix[:2]} ({tenant[:8]})",
               window_max.get(tenant, 0), f"≤ {MINUTE_LIMIT}",
               window_max.get(tenant, 0) <= MINUTE_LIMIT)  # fmt: skip
        peak = in_flight_peak.get(tenant, 0)
        figure(f"max calls in flight (sampled), {org.prefix[:2]} ({tenant[:8]})", peak,
               f"≤ {CONCURRENT_LIMIT}", peak <= CONCURRENT_LIMIT)  # fmt: skip
    figure("429 responses", f"{sum(too_many.values())} {dict(too_many) or ''}".strip(),
           "0 (a 429 would mean a limit was reached)", not too_many)  # fmt: skip
    figure("API calls", f"{len(entries)} ({sum(len(v) for v in per_tenant.values())} per org)")
    figure("worker SIGKILLs", f"{chaos.kills} ({chaos.killed_busy} while running a job)")
    figure("job attempts lost with a killed worker (taken over after the lease)", lost)
    figure("Redis restarts", chaos.redis_restarts)
    figure("workers that exited by themselves (restarted as a supervisor would)", chaos.self_exits)
    figure("replies dropped after commit", f"{sum(dropped.values())} {dict(dropped)}")
    figure("release POSTs through the web server",
           f"{chaos.release_posts} ({chaos.release_retries} pressed again)")  # fmt: skip
    figure("job states", dict(sorted(states.items())))
    reasons = Counter(
        f"{outcome}: {message[:90]}"
        for outcome, message in JobAttempt.objects.exclude(
            outcome__in=[JobAttemptOutcome.SUCCEEDED, JobAttemptOutcome.RUNNING]
        ).values_list("outcome", "error_message")
    )
    for reason, count in reasons.most_common(8):
        print(f"  attempts {count:4d} × {reason}", flush=True)

    problems = {
        "missing": missing,
        "invalid in Xero": invalid_in_xero,
        "invalid without failed job": invalid_not_failed,
        "duplicates": duplicates,
        "duplicate contacts": duplicate_contacts,
        "wrong organisation": wrong_org + [f"unexpected {n}" for n in unexpected],
        "bad links": bad_links,
        "valid not succeeded": valid_not_ok,
        "unfinished": dict(stuck),
        "other failed jobs": failed_other,
        "release errors": chaos.release_errors[:10],
    }
    for name, items in problems.items():
        if items:
            print(f"DETAIL {name}: {str(items)[:3000]}", flush=True)
    return ok


# --- Main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)  # noqa: S311 - chaos dice
    log(
        f"seed {seed}: {args.invoices} invoices, {args.orgs} organisations, {args.kills} kills, "
        f"{args.redis_restarts} Redis restarts, {args.drop:.0%} replies dropped, releases over "
        f"{args.release_seconds:g} s"
    )
    cleanup = Cleanup()
    server_url = _server_url()
    drop_stale_databases(server_url)
    stack = harness.Stack(
        name=f"process_faults_{os.getpid()}",
        time_scale=1.0,
        pg_url=server_url,
        env_overrides={
            "BMS_JOB_LEASE_SECONDS": str(args.lease_seconds),
            "XERO_WEBHOOK_KEY": WEBHOOK_KEY,
        },
    )
    passed = False
    cleanup.add("logs", lambda: _logs_keep_or_drop(stack, keep=args.keep_logs or not passed))
    redis_server = harness.RedisServer(log_dir=stack.log_dir)
    cleanup.add("redis", redis_server.stop)
    cleanup.add("stack", stack.close)
    sampler: InFlightSampler | None = None
    stop_releases = threading.Event()
    try:
        redis_server.start()
        stack.redis_url = redis_server.url
        stack.start()
        stack.setup_django()
        from django.contrib.auth import get_user_model  # noqa: PLC0415

        orgs = setup_orgs(stack, args.orgs)
        drafts = make_drafts(orgs, args.invoices, args.invalid, rng)
        rng.shuffle(drafts)
        get_user_model().objects.create_user(
            "chaos", password=PASSWORD, is_staff=True, email="chaos@example.com"
        )
        baseline = {
            tenant: set(data["invoices"])
            for tenant, data in stack.sandbox.get("state")["orgs"].items()
        }
        web = stack.start_web()
        web_url = f"http://127.0.0.1:{web.name.removeprefix('web-')}"
        stack.sandbox.post(
            "webhooks/config",
            {"client_id": harness.DEMO_CLIENT_ID, "url": f"{web_url}/xero/webhooks/",
             "key": WEBHOOK_KEY},
        )  # fmt: skip
        stack.start_workers(count=args.workers, concurrency=args.concurrency)
        stack.start_beat()
        client = WebClient(web_url)
        client.login("chaos", PASSWORD)
        for route in DROP_ROUTES:
            stack.sandbox.faults_add(
                kind="commit_then_drop", route=route, probability=args.drop, count=None
            )
        if args.slow > 0:
            # Calls that take a while: concurrency builds up, and the sampler can see it.
            stack.sandbox.faults_add(kind="slow", route="*", delay=args.slow, count=None)
        sampler = InFlightSampler(stack.sandbox).start()

        chaos = Chaos()
        releaser = threading.Thread(
            target=release_all,
            args=(client, drafts, args.release_seconds, chaos, stop_releases),
            name="releaser",
            daemon=True,
        )
        log(f"chaos for {args.release_seconds + args.tail_seconds:g} s; logs in {stack.log_dir}")
        started = time.monotonic()
        releaser.start()
        run_chaos(stack, redis_server, args, chaos, rng, releaser)
        stack.sandbox.faults_clear()
        log(f"chaos over after {time.monotonic() - started:.0f} s; faults cleared, settling")
        settled = wait_settled(stack, args, chaos)
        sampler.stop()
        log(f"settled: {settled} after {time.monotonic() - started:.0f} s")
        passed = check(stack, orgs, baseline, chaos, sampler.peak)
        print_figure("seed", str(seed))
        print_figure("verdict", "PASS" if passed else "FAIL")
        return 0 if passed else 1
    finally:
        stop_releases.set()
        if sampler is not None:
            sampler.stop()
        cleanup.run()


def _logs_keep_or_drop(stack: harness.Stack, *, keep: bool) -> None:
    if keep:
        log(f"process logs kept in {stack.log_dir}")
    else:
        shutil.rmtree(stack.log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
